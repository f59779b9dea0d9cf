"""The runner's Lua scripts: claim, renew and release leases, load bots, commit changes
to bots' books, and the reconcile scan, each over a chunk of bots in one call.

Every per-bot step inside a script is fenced on its own: a bot's change is written
only while ``bot:{id}:lease`` holds this runner's name and ``bot:{id}`` ``epoch`` is
the epoch the runner claimed (a zombie runner writes and emits nothing), and a bot
whose fence fails is reported back (0) while the others of the chunk go on. A script
runs atomically, so each bot's records change all together (DESIGN "Redis contract").

One call per chunk instead of one per bot is what makes a burst cheap: the per-command
costs (the client's packing and reply reading, the server's dispatch) are paid once per
chunk. The keys of a chunk cross hash slots, which a single Redis primary allows
(Redis Cluster is not a target, DESIGN "Scale"); every key is still passed in ``KEYS``,
named by :mod:`shared.keys`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from services.runner.wire import Lanes, pack_command, send_request
from shared import keys

# KEYS: per bot: lease, bot. ARGV: owner, lease_ms, now_ms.
# Returns per bot {epoch, previous owner}: epoch is the new epoch, 0 when the lease is
# held by someone, -1 when the bot does not exist, -2 when it needs no runner (desired
# stopped and status stopped/error).
CLAIM = """
local out = {}
for i = 1, #KEYS, 2 do
  local lease, bot = KEYS[i], KEYS[i + 1]
  local epoch, previous = 0, ''
  if redis.call('EXISTS', bot) == 0 then
    epoch = -1
  else
    local desired = redis.call('HGET', bot, 'desired')
    local status = redis.call('HGET', bot, 'status')
    if desired ~= 'running' and (not status or status == 'stopped' or status == 'error') then
      epoch = -2
    elseif redis.call('SET', lease, ARGV[1], 'NX', 'PX', ARGV[2]) then
      previous = redis.call('HGET', bot, 'owner') or ''
      epoch = redis.call('HINCRBY', bot, 'epoch', 1)
      redis.call('HSET', bot, 'owner', ARGV[1], 'updated_at', ARGV[3])
    end
  end
  out[#out + 1] = epoch
  out[#out + 1] = previous
end
return out
"""

# KEYS: per bot: lease, bot. ARGV: owner, lease_ms, then one epoch per bot.
# Returns per bot 1 when renewed, 0 when lost.
RENEW = """
local out = {}
for i = 1, #KEYS / 2 do
  local lease, bot = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('GET', lease) == ARGV[1] and redis.call('HGET', bot, 'epoch') == ARGV[2 + i] then
    redis.call('PEXPIRE', lease, ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: per bot: lease, bot. ARGV: owner. Deletes each lease and clears ``owner`` if
# still ours.
RELEASE = """
for i = 1, #KEYS, 2 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
  if redis.call('HGET', KEYS[i + 1], 'owner') == ARGV[1] then
    redis.call('HSET', KEYS[i + 1], 'owner', '')
  end
end
return 1
"""

# KEYS: per bot: bot, position, stats, pending. Returns per bot the four HGETALLs.
LOAD = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""

# KEYS: stream:order-intents, then per bot: lease, bot, position, stats, trades, log,
# pending (7 keys). ARGV: owner, log_maxlen, trades_maxlen, then per bot: epoch and its
# operations, a MessagePack array of strings: ``tag, count, count values`` for each
# operation (values are field/value pairs unless said otherwise):
#   I  intent: type, data       XADD stream:order-intents (no MAXLEN: consumer group)
#   J  another intent: as I     (a re-sent unresolved intent; ``q`` copies only I's data)
#   P  position                 replace bot:{id}:position (count 0: delete it)
#   S  stats                    HSET bot:{id}:stats
#   T  one round trip           XADD bot:{id}:trades MAXLEN ~ trades_maxlen
#   L  one decision             XADD bot:{id}:log MAXLEN ~ log_maxlen
#   Q  pending                  write bot:{id}:pending (count 0: delete it); every
#                               field is written, so nothing stale stays
#   q  pending of the intent    as Q, plus ``intent``: the data of this bot's I
#   D  field names              HDEL bot:{id}:pending (one of its two intents goes)
#   E  new epoch (count 1)      HSET bot:{id} epoch: the bot moves to a new epoch (the
#                               commit was fenced on the old one), which fences off
#                               every copy of its older intents (a superseded exit)
#   B  bot fields               HSET bot:{id}
#   R  release (count 0)        let go of the lease and clear ``owner`` (a stopped bot:
#                               never ``stopped`` while still leased)
# MessagePack rather than JSON or one argument per value: of the three it costs Redis the
# least per bot (cmsgpack decodes faster than cjson, and thousands of small arguments
# cost more to read than one string each), and the values go to the commands as they
# came (unpack of a range).
# Returns per bot 1, or 0 (nothing written) when its lease or epoch is no longer ours.
COMMIT = """
local owner, log_maxlen, trades_maxlen = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 1, (#ARGV - 3) / 2 do
  local k = 1 + (i - 1) * 7
  if redis.call('GET', KEYS[k + 1]) == owner and redis.call('HGET', KEYS[k + 2], 'epoch') == ARGV[2 + 2 * i] then
    local p = cmsgpack.unpack(ARGV[3 + 2 * i])
    local intent = nil
    local a = 1
    while a <= #p do
      local tag, count = p[a], tonumber(p[a + 1])
      local first, last = a + 2, a + 1 + count
      if tag == 'I' then
        intent = p[first + 1]
        redis.call('XADD', KEYS[1], '*', 'type', p[first], 'data', intent)
      elseif tag == 'J' then
        redis.call('XADD', KEYS[1], '*', 'type', p[first], 'data', p[first + 1])
      elseif tag == 'E' then
        redis.call('HSET', KEYS[k + 2], 'epoch', p[first])
      elseif tag == 'D' then
        redis.call('HDEL', KEYS[k + 7], unpack(p, first, last))
      elseif tag == 'L' then
        redis.call('XADD', KEYS[k + 6], 'MAXLEN', '~', log_maxlen, '*', unpack(p, first, last))
      elseif tag == 'S' then
        redis.call('HSET', KEYS[k + 4], unpack(p, first, last))
      elseif tag == 'q' then
        redis.call('HSET', KEYS[k + 7], 'intent', intent, unpack(p, first, last))
      elseif tag == 'Q' then
        if count == 0 then redis.call('DEL', KEYS[k + 7])
        else redis.call('HSET', KEYS[k + 7], unpack(p, first, last)) end
      elseif tag == 'P' then
        redis.call('DEL', KEYS[k + 3])
        if count > 0 then redis.call('HSET', KEYS[k + 3], unpack(p, first, last)) end
      elseif tag == 'T' then
        redis.call('XADD', KEYS[k + 5], 'MAXLEN', '~', trades_maxlen, '*', unpack(p, first, last))
      elseif tag == 'B' then
        redis.call('HSET', KEYS[k + 2], unpack(p, first, last))
      elseif tag == 'R' then
        redis.call('DEL', KEYS[k + 1]); redis.call('HSET', KEYS[k + 2], 'owner', '')
      else
        return redis.error_reply('COMMIT: unknown operation ' .. tostring(tag))
      end
      a = last + 1
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# The same decision for many bots, group by group (a HOLD of each group's shared strategy
# computation). KEYS: per bot: lease, bot, stats, log. ARGV: owner, log_maxlen, then per
# group: last_candle, its bot count b, n, n field/value pairs of the log entry (n = 0: no
# log entry), then b epochs; the groups' bots' keys follow each other in KEYS.
# Returns per bot 1, or 0 when its lease or epoch is no longer ours.
DECIDED = """
local owner, maxlen = ARGV[1], ARGV[2]
local out = {}
local a, k = 3, 0
while a <= #ARGV do
  local last_candle, bots, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local first, last = a + 3, a + 2 + 2 * n
  a = last + 1
  for _ = 1, bots do
    if redis.call('GET', KEYS[k + 1]) == owner and redis.call('HGET', KEYS[k + 2], 'epoch') == ARGV[a] then
      redis.call('HSET', KEYS[k + 3], 'last_candle', last_candle)
      if n > 0 then redis.call('XADD', KEYS[k + 4], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, first, last)) end
      out[#out + 1] = 1
    else
      out[#out + 1] = 0
    end
    a = a + 1
    k = k + 4
  end
end
return out
"""

# KEYS: per bot: bot, lease. ARGV: owner, then per bot the SHA-1 of the config this
# runner runs it with, or "" when this runner does not hold it.
# Returns {index, code} pairs (1-based index) only for bots that need something:
#   held bots:     "stop" (desired is not running, or the bot is gone),
#                  "config" (its config changed since this runner loaded it);
#   other bots:    "claim" (desired running, or a status left active by a dead runner,
#                  needs_attention included, and nobody holds the lease).
RECONCILE = """
local out = {}
for i = 1, #KEYS / 2 do
  local bot, lease = KEYS[2 * i - 1], KEYS[2 * i]
  local held = ARGV[1 + i]
  local desired, status, config = unpack(redis.call('HMGET', bot, 'desired', 'status', 'config'))
  if held ~= '' then
    if desired ~= 'running' then
      out[#out + 1] = i; out[#out + 1] = 'stop'
    elseif config and redis.sha1hex(config) ~= held then
      out[#out + 1] = i; out[#out + 1] = 'config'
    end
  elseif desired == 'running' or status == 'starting' or status == 'running' or status == 'stopping'
      or status == 'needs_attention' then
    if redis.call('EXISTS', lease) == 0 then
      out[#out + 1] = i; out[#out + 1] = 'claim'
    end
  end
end
return out
"""


def config_digest(raw: str | bytes) -> str:
    """SHA-1 hex of a stored config, as :data:`RECONCILE` computes it (``redis.sha1hex``)."""
    return hashlib.sha1(raw.encode() if isinstance(raw, str) else raw).hexdigest()


def commit_keys(bot_id: str) -> tuple[str, ...]:
    """A bot's seven KEYS in :data:`COMMIT`."""
    return (
        keys.bot_lease(bot_id),
        keys.bot(bot_id),
        keys.bot_position(bot_id),
        keys.bot_stats(bot_id),
        keys.bot_trades(bot_id),
        keys.bot_log(bot_id),
        keys.bot_pending(bot_id),
    )


class Script:
    """One script called by EVALSHA (loaded once, and again after a NOSCRIPT, e.g. when
    Redis restarted) on a lane of its own (:class:`Lanes`), packed in C and without the
    client's SCRIPT EXISTS round trip. A broken connection is retried as the client
    retries its own commands (bounded, with backoff), on a new connection. A call whose
    reply was lost may so run twice: every script is fenced, and the second run at
    worst repeats a log entry or an intent (placed once, by its id), or has CLAIM
    report a bot it had just won as taken (its lease then lapses and it is claimed
    again)."""

    def __init__(self, lanes: Lanes, text: str) -> None:
        self.lanes = lanes
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(
        self,
        keys_: Sequence[str | bytes],
        args: Sequence[Any],
        written: asyncio.Event | None = None,
    ) -> Any:
        """The script's reply. With ``written``, that event is set as soon as the request
        is on its way, so that the caller goes on working while Redis runs it."""
        try:
            conn = await self.lanes.take()
        except BaseException:
            if written is not None:
                written.set()
            raise
        request = pack_command(("EVALSHA", self.sha, len(keys_), *keys_, *args))

        async def run() -> Any:
            await send_request(conn, request)
            if written is not None:
                written.set()
            try:
                return await conn.read_response()
            except NoScriptError:  # nothing ran: load and call again
                await send_request(conn, pack_command(("SCRIPT", "LOAD", self.text)))
                await conn.read_response()
                await send_request(conn, request)
                return await conn.read_response()

        async def drop(_: BaseException) -> None:
            await conn.disconnect()  # a half-read reply must never reach the next call

        broken = True
        try:
            reply = await conn.retry.call_with_retry(run, drop)
            broken = False
            return reply
        except ResponseError:
            broken = False  # a whole error reply was read: the connection is fine
            raise
        finally:
            if written is not None:
                written.set()
            await self.lanes.give_back(conn, broken=broken)


class Scripts:
    """The runner's scripts on one client."""

    def __init__(self, redis: Any) -> None:
        self.lanes = lanes = Lanes(redis)
        self.claim = Script(lanes, CLAIM)
        self.renew = Script(lanes, RENEW)
        self.release = Script(lanes, RELEASE)
        self.load = Script(lanes, LOAD)
        self.commit = Script(lanes, COMMIT)
        self.decided = Script(lanes, DECIDED)
        self.reconcile = Script(lanes, RECONCILE)

    async def close(self) -> None:
        await self.lanes.close()
