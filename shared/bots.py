"""The shape of a bot's records in Redis, shared by the API (config, desired state)
and the runners (status, owner, epoch): field names, statuses and the one function
that derives an intent id from a decision.

``bot:{id}`` hash fields:

==============  =========  ==========================================================
field           writer     meaning
==============  =========  ==========================================================
config          API        BotConfig as JSON
desired         API        ``running`` or ``stopped``: what should be
status          runner     :class:`BotStatus` (API writes ``stopped`` on create)
status_reason   runner     why, in words ("closing position before stop", "stale: ...",
                           which intent's outcome is unknown when ``needs_attention``)
stale           runner     comma-separated symbols whose data is stale ("" when fresh)
owner           runner     instance holding the lease ("" when none)
epoch           runner     incremented on every claim (HINCRBY); intents carry it
error           runner     last error, for people
created_at      API        epoch ms
updated_at      both       epoch ms of the last change
==============  =========  ==========================================================
"""

from __future__ import annotations

import enum
import hashlib


class Desired(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class BotStatus(enum.StrEnum):
    STOPPED = "stopped"  # not running, no position being managed
    STARTING = "starting"  # claimed, warming up (history, subscriptions)
    RUNNING = "running"
    STOPPING = "stopping"  # closing its position before it stops (close-on-stop)
    # An intent's outcome is unknown past the bound (no final report despite re-sends):
    # no new entries, exits still fire, ``status_reason`` says which intent; back to
    # ``running`` by itself when its final report arrives.
    NEEDS_ATTENTION = "needs_attention"
    ERROR = "error"  # stopped by a fault; ``error`` says which


class BotField(enum.StrEnum):
    CONFIG = "config"
    DESIRED = "desired"
    STATUS = "status"
    STATUS_REASON = "status_reason"
    STALE = "stale"
    OWNER = "owner"
    EPOCH = "epoch"
    ERROR = "error"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


# What an id may look like on a stream (shared.messages refuses anything else). A bot id
# names hash tags and is the first part of its intents' ids, so it has no braces and no
# colon; the API makes ULIDs, tests and benches shorter names. An intent id is
# ``{bot}:{trigger}:{action}`` (below). A client order id is Binance's pattern (§8).
BOT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
INTENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
CLIENT_ORDER_ID_PATTERN = r"^[a-zA-Z0-9_-]{1,36}$"


def intent_id(bot_id: str, trigger: str, action: str) -> str:
    """The id of the intent a decision produces: the same decision (bot, the candle or
    tick that triggered it, the action) always yields the same id, whichever runner
    makes it (DESIGN "Traps": intent ids come from the decision)."""
    return f"{bot_id}:{trigger}:{action}"


def client_order_id(intent: str) -> str:
    """Binance ``newClientOrderId`` (``^[a-zA-Z0-9-_]{1,36}$``) derived from an intent id."""
    digest = hashlib.blake2b(intent.encode(), digest_size=16).hexdigest()
    return "bf-" + digest[:33]
