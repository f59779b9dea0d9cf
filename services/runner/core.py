"""The runner's pure decision core: one bot's state and what it does with a closed
candle's signal, a price, an execution report or a stop. No I/O: every function
returns a :class:`Change` that the shell (:mod:`.holdings`) writes atomically.

Rules (issue 6, DESIGN "Data flow"):

- Entries only on closed candles, only when flat, with no intent pending, not in a
  cooldown, not stopping and not on stale data (issue 10's stale gate).
- Exits (stop-loss, take-profit, trailing stop) on every price; a strategy SELL also
  closes a position on a closed candle. Exits are allowed on stale data.
- One pending intent at a time. Intent ids come from the decision
  (:func:`shared.bots.intent_id`): bot, trigger (candle open time, tick event time, or
  the position's opening time for a close-on-stop) and action.
- Books change only from final execution reports (:class:`BotBook` applies each
  intent once). A copy refused by fencing (:func:`fenced`: a non-final notice, or an
  old-style final REJECTED of an older epoch with nothing executed) never ends an
  intent: only :func:`ends` does.
- A bounded wait (issue 15): a pending intent whose outcome is not known within the
  bound (:meth:`BotState.check_pending`) moves aside as ``unresolved`` and the bot goes
  to ``needs_attention``: no new entries, but exits fire (new intent ids) and a stop
  completes. Its late final report still applies and the bot runs again by itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from shared.binance.intervals import interval_ms
from shared.bots import BotStatus, intent_id
from shared.messages import (
    Candle,
    ExecutionReport,
    ExecutionStatus,
    OrderIntent,
    OrderType,
    Side,
    encode_json,
)
from shared.strategies.accounting import BotBook, RoundTrip
from shared.strategies.base import Signal, SignalAction
from shared.strategies.config import BotConfig, RiskSizing
from shared.strategies.sizing import size_entry, stop_distance

ZERO = Decimal(0)
_MONTH_MS = 31 * 86_400_000
_intent_decoder = msgspec.json.Decoder(OrderIntent)


def interval_length_ms(interval: str) -> int:
    """Interval length; ``1M`` counts as 31 days (a bound, for staleness and cooldowns)."""
    return _MONTH_MS if interval == "1M" else interval_ms(interval)


class Delete(enum.Enum):
    """Marker: delete the key (pending intent, position)."""

    KEY = "del"


DELETE = Delete.KEY


# Field names of ``bot:{id}:pending``: the pending intent's, and the unresolved one's
# (an intent whose outcome was not known within the bound), both in the same hash.
PENDING_FIELDS = ("intent", "intent_id", "exec_from", "sent_at")
UNRESOLVED_PREFIX = "u_"
UNRESOLVED_FIELDS = (*(UNRESOLVED_PREFIX + f for f in PENDING_FIELDS), "u_superseded")


@dataclass(slots=True)
class Pending:
    """The bot's one in-flight intent (``bot:{id}:pending``)."""

    intent: OrderIntent
    exec_from: str = "0-0"  # stream:executions id before the intent was sent
    sent_at: int = 0
    # Where the bound runs from: the decision (the intent's ``created_at``), whichever
    # runner made it, so an adoption does not restart the wait.
    since: int = 0
    # Past the bound while another intent was already unresolved: a stop no longer
    # waits for it (it stays recorded; its report still applies).
    overdue: bool = False
    # An unresolved exit superseded by a protective exit: the epoch the bot moved to so
    # that every copy of it is refused by fencing (0: not superseded). Never re-sent.
    superseded: int = 0

    def __post_init__(self) -> None:
        if not self.since:
            self.since = self.intent.created_at or self.sent_at

    @property
    def intent_id(self) -> str:
        return self.intent.intent_id

    def to_hash(self, *, with_intent: bool = True, prefix: str = "") -> dict[str, str]:
        """The hash; without ``intent`` when the writer adds the intent's JSON itself
        (the commit script copies it from the intent it appends). Side, epoch and the
        rest are in that JSON: copies of them in fields of their own cost Redis about
        a tenth of a burst's writing. ``prefix`` names the unresolved intent's fields."""
        h = {
            prefix + "intent_id": self.intent.intent_id,
            prefix + "exec_from": self.exec_from,
            prefix + "sent_at": str(self.sent_at),
        }
        if with_intent:
            h[prefix + "intent"] = encode_json(self.intent).decode()
        if prefix:  # only an unresolved intent is ever superseded
            h[prefix + "superseded"] = str(self.superseded)
        return h

    @classmethod
    def from_hash(cls, data: dict[Any, Any], prefix: str = "") -> Pending | None:
        """The intent recorded under ``prefix`` (None when there is none)."""
        d = {_text(k): _text(v) for k, v in data.items()}
        if prefix + "intent" not in d and prefix + "intent_id" not in d:
            return None
        try:
            intent = _intent_decoder.decode(d[prefix + "intent"])
        except (KeyError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValueError(f"invalid pending intent hash: {exc}") from exc
        return cls(
            intent,
            d.get(prefix + "exec_from") or "0-0",
            int(d.get(prefix + "sent_at") or 0),
            superseded=int(d.get(prefix + "superseded") or 0),
        )


# How a gateway words a refusal by fencing (services/gateway/lua/admit.lua). Only an
# old-style final refusal needs it: a final REJECTED of an older epoch for any other
# reason (a rail, risk) is that intent's real outcome, e.g. republished by the gateway
# from its record for the adopter's re-send, and must end it.
FENCE_REASON = "stale epoch"


def fenced(report: ExecutionReport, sent_epoch: int) -> bool:
    """A copy of an intent refused by fencing, which is never its outcome: nothing
    executed, REJECTED, an epoch older than the one the intent was last sent under, and
    either the gateway's notice (``final`` false) or an old-style final refusal
    (its reason says "stale epoch")."""
    return (
        report.status is ExecutionStatus.REJECTED
        and report.executed_qty == 0
        and report.epoch < sent_epoch
        and (not report.final or report.reason.startswith(FENCE_REASON))
    )


def ends(report: ExecutionReport, pending: Pending) -> bool:
    """Whether ``report`` is the outcome that ends ``pending``: its final report, not a
    fenced copy's; for a superseded exit, also a copy refused by fencing (none of its
    copies can be placed any more: nothing executed)."""
    if report.intent_id != pending.intent_id:
        return False
    if pending.superseded:
        return report.final or fenced(report, pending.superseded)
    return report.final and not fenced(report, pending.intent.epoch)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class Change:
    """What one decision writes. ``lazy`` changes (HOLD logs, marks) may wait."""

    intent: OrderIntent | None = None
    pending: Pending | Delete | None = None
    unresolved: Pending | Delete | None = None  # the u_ fields of the pending hash
    book: bool = False  # write position + stats hashes
    candle: bool = False  # write the newest decided candle (stats ``last_candle``)
    trades: list[RoundTrip] = field(default_factory=list)
    log: list[dict[str, str]] = field(default_factory=list)
    bot: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, level, message)
    resent: list[OrderIntent] = field(default_factory=list)  # further intents (re-sends)
    release: bool = False  # the bot is done here: release the lease afterwards
    # The bot moves to a new epoch (its state's) in this commit, fenced on this one.
    epoch_from: int = 0

    @property
    def empty(self) -> bool:
        return not (
            self.intent
            or self.pending
            or self.unresolved
            or self.book
            or self.candle
            or self.trades
            or self.log
            or self.bot
            or self.resent
            or self.release
        )

    def merge(self, other: Change) -> Change:
        self.intent = other.intent or self.intent
        self.pending = other.pending if other.pending is not None else self.pending
        self.unresolved = other.unresolved if other.unresolved is not None else self.unresolved
        self.book = self.book or other.book
        self.candle = self.candle or other.candle
        self.trades.extend(other.trades)
        self.log.extend(other.log)
        self.bot.update(other.bot)
        self.events.extend(other.events)
        self.resent.extend(other.resent)
        self.release = self.release or other.release
        self.epoch_from = self.epoch_from or other.epoch_from
        return self


_last_values: list[Any] = [None, ""]  # (signal, its values): bots of a group share one


def signal_values(signal: Signal) -> str:
    """The indicator values a decision was based on (the signal's metadata), as JSON with
    every float exact (shortest round-trip repr): what a decision's log entry carries, so
    that twins can be compared on any runner."""
    if _last_values[0] is not signal:
        _last_values[0], _last_values[1] = signal, msgspec.json.encode(signal.metadata).decode()
    return str(_last_values[1])


def hold_entry(ts: int, signal: Signal, price: Decimal, open_time: int = 0) -> dict[str, str]:
    """The log entry of a HOLD decision (what :meth:`BotState.on_signal` logs) on the
    candle that opened at ``open_time``."""
    return {
        "ts": str(ts),
        "kind": "hold",
        "reason": signal.reason,
        "signal": signal.action.value,
        "price": str(price),
        "candle": str(open_time),
        "values": signal_values(signal),
    }


def log_entry(ts: int, kind: str, reason: str, **extra: Any) -> dict[str, str]:
    entry = {"ts": str(ts), "kind": kind, "reason": reason}
    for key, value in extra.items():
        if value is not None:
            entry[key] = str(value)
    return entry


@dataclass(slots=True)
class BotState:
    """Everything the runner holds about one bot it owns."""

    bot_id: str
    config: BotConfig
    epoch: int
    book: BotBook
    pending: Pending | None = None
    unresolved: Pending | None = None  # outcome unknown past the bound (needs_attention)
    status: str = BotStatus.STARTING.value
    status_reason: str = ""
    stale: str = ""  # symbols whose data is stale, comma-separated ("" when fresh)
    last_exit_at: int = 0
    last_open_time: int = 0  # newest candle the bot has decided on
    stopping: bool = False
    interval_ms: int = 60_000
    config_digest: str = ""  # SHA-1 of the stored config it runs with (reconcile compares)

    @classmethod
    def create(
        cls, bot_id: str, config: BotConfig, epoch: int, book: BotBook, **kwargs: Any
    ) -> BotState:
        return cls(
            bot_id, config, epoch, book, interval_ms=interval_length_ms(config.interval), **kwargs
        )

    # --- helpers --------------------------------------------------------------------

    def _intent(
        self,
        trigger: str,
        action: str,
        side: Side,
        now: int,
        reason: str,
        *,
        quantity: Decimal | None = None,
        quote_quantity: Decimal | None = None,
        is_exit: bool = False,
    ) -> OrderIntent:
        return OrderIntent(
            intent_id=intent_id(self.bot_id, trigger, action),
            bot_id=self.bot_id,
            epoch=self.epoch,
            symbol=self.config.symbol,
            side=side,
            order_type=OrderType.MARKET,
            quantity=quantity,
            quote_quantity=quote_quantity,
            is_exit=is_exit,
            reason=reason,
            created_at=now,
        )

    def _send(self, intent: OrderIntent, exec_from: str, now: int, log: dict[str, str]) -> Change:
        unresolved = self.unresolved
        if unresolved is not None and intent.side is Side.SELL and not unresolved.superseded:
            # needs_attention with an exit of this position whose outcome is unknown:
            # both selling it would sell it twice. The bot moves to a new epoch in the
            # same commit, so that the gateway refuses every copy of the old exit (its
            # record is checked before the fence: a refusal means none was placed) and
            # only this one can sell.
            change = self._supersede(unresolved, intent, now)
            intent = msgspec.structs.replace(intent, epoch=self.epoch)
        else:
            change = Change()
        self.pending = Pending(intent, exec_from, now)
        return change.merge(Change(intent=intent, pending=self.pending, log=[log]))

    def _supersede(self, unresolved: Pending, intent: OrderIntent, now: int) -> Change:
        change = Change(epoch_from=self.epoch, unresolved=unresolved)
        self.epoch += 1
        unresolved.superseded = self.epoch
        why = (
            f"exit {unresolved.intent_id} (outcome unknown) superseded by {intent.intent_id}: "
            f"epoch {self.epoch} fences off its copies"
        )
        change.log.append(log_entry(now, "supersede", why, intent_id=unresolved.intent_id))
        return change

    def set_status(self, status: BotStatus, reason: str, now: int) -> Change:
        """A status change (no change when equal), with an event for people."""
        if self.status == status.value and self.status_reason == reason:
            return Change()
        self.status, self.status_reason = status.value, reason
        text = f"bot {self.bot_id} {status.value}" + (f": {reason}" if reason else "")
        return Change(
            bot={"status": status.value, "status_reason": reason, "updated_at": str(now)},
            log=[log_entry(now, "status", reason or status.value, status=status.value)],
            events=[("bot_status", "info" if status != BotStatus.ERROR else "error", text)],
        )

    def in_cooldown(self, candle_close_time: int) -> str:
        """Why the bot is still cooling down after its last exit ("" when it is not).

        Measured on the exchange's clock, from the exit report's time to the close of
        the candle being decided, never on this host's clock: the verdict on a candle is
        the same on whichever runner decides it, as its intent id is, and a sped-up
        simulator cools down in market time."""
        if not self.last_exit_at:
            return ""
        cfg = self.config
        since = candle_close_time - self.last_exit_at
        if cfg.cooldown_seconds and since < cfg.cooldown_seconds * 1000:
            left = (cfg.cooldown_seconds * 1000 - since) // 1000
            return f"cooldown: {left}s left of {cfg.cooldown_seconds}s after the last exit"
        if cfg.cooldown_candles:
            seen = since // self.interval_ms
            if seen < cfg.cooldown_candles:
                return f"cooldown: {seen} of {cfg.cooldown_candles} candles since the last exit"
        return ""

    # --- decisions ------------------------------------------------------------------

    def on_signal(
        self, candle: Candle, signal: Signal, now: int, exec_from: str, *, log_holds: bool = True
    ) -> Change:
        """Decide on a closed candle and its strategy signal."""
        if candle.open_time <= self.last_open_time:
            return Change()  # already decided (replay, shared warm-up)
        self.last_open_time = candle.open_time
        change = self._decide(candle, signal, now, exec_from, log_holds)
        change.candle = True
        return change

    def _decide(
        self, candle: Candle, signal: Signal, now: int, exec_from: str, log_holds: bool
    ) -> Change:
        price = candle.close
        self.book.mark(price)
        action = signal.action
        if action is SignalAction.HOLD:
            if not log_holds:
                return Change()
            return Change(log=[hold_entry(now, signal, price, candle.open_time)])
        said = {
            "signal": action.value,
            "price": price,
            "candle": candle.open_time,
            "values": signal_values(signal),
        }
        if self.stopping:
            return Change(log=[log_entry(now, "skip", "stopping: " + signal.reason, **said)])
        if self.pending is not None:
            why = f"intent {self.pending.intent_id} still pending; {signal.reason}"
            return Change(log=[log_entry(now, "skip", why, **said)])
        if action is SignalAction.SELL:
            if not self.book.is_open:
                return Change(log=[log_entry(now, "hold", "flat; " + signal.reason, **said)])
            intent = self._intent(
                str(candle.open_time),
                "sell",
                Side.SELL,
                now,
                signal.reason,
                quantity=self.book.qty,
                is_exit=True,
            )
            return self._send(intent, exec_from, now, log_entry(now, "exit", signal.reason, **said))
        # BUY
        if self.book.is_open:
            return Change(log=[log_entry(now, "hold", "in position; " + signal.reason, **said)])
        if self.unresolved is not None:
            why = f"entry skipped: needs attention ({self.unresolved.intent_id} outcome unknown)"
            return Change(log=[log_entry(now, "skip", f"{why}; {signal.reason}", **said)])
        if self.stale:
            why = f"entry skipped: stale data for {self.stale}; {signal.reason}"
            return Change(log=[log_entry(now, "skip", why, **said)])
        cooling = self.in_cooldown(candle.close_time)
        if cooling:
            return Change(log=[log_entry(now, "skip", f"{cooling}; {signal.reason}", **said)])
        cfg = self.config
        # ATR stops of the entry are measured in the ATR the signal carries.
        self.book.note_atr(signal.metadata.get("atr"))
        distance = None
        if isinstance(cfg.sizing, RiskSizing) and cfg.stop_loss_pct is not None:
            distance = stop_distance(price, cfg.stop_loss_pct)
        cash = self.book.cash
        size = size_entry(
            cfg.sizing,
            equity=self.book.equity,
            price=price,
            stop_distance=distance,
            available=cash,
        )
        if size.quote <= 0:
            why = f"entry skipped: nothing to spend (cash {cash}); {signal.reason}"
            return Change(log=[log_entry(now, "skip", why, **said)])
        intent = self._intent(
            str(candle.open_time), "buy", Side.BUY, now, signal.reason, quote_quantity=size.quote
        )
        # The hot path of a burst: the entry as log_entry() writes it, without its loop.
        entry = {
            "ts": str(now),
            "kind": "entry",
            "reason": signal.reason,
            "quote": str(size.quote),
            "signal": "BUY",
            "price": str(price),
            "candle": str(candle.open_time),
            "values": signal_values(signal),
        }
        return self._send(intent, exec_from, now, entry)

    def catch_up(
        self,
        missed: list[tuple[Candle, Signal]],
        limit: int,
        stale: str,
        now: int,
        exec_from: str,
    ) -> Change:
        """Decide, oldest first, candles that closed while the bot had no owner (with the
        signals of its strategy on them), as its owner would have: same trigger, same
        intent id. Only one intent can be pending, so the candles after a catch-up's
        first intent are decided with it pending (logged as skipped, like live). Skipped
        and logged instead: all of them when the newest is stale (``stale`` says why),
        and the oldest beyond the last ``limit``."""
        missed = [(c, sig) for c, sig in missed if c.open_time > self.last_open_time]
        if not missed:
            return Change()
        change = Change()
        skip: list[tuple[Candle, Signal]] = []
        if stale:
            skip = missed
            why = f"{stale}: not acted on"
        elif len(missed) > limit:
            skip = missed[: len(missed) - limit]
            why = f"{len(missed)} behind, more than {limit}: the {len(skip)} oldest not acted on"
        if skip:
            first, last = skip[0][0].open_time, skip[-1][0].open_time
            reason = (
                f"catch-up: {len(skip)} candles closed without an owner skipped "
                f"(open {first}..{last}): {why}"
            )
            change.log.append(log_entry(now, "skip", reason))
            self.last_open_time = last
            change.candle = True
        for candle, signal in missed[len(skip) :]:
            change.merge(self.on_signal(candle, signal, now, exec_from))
        return change

    def on_hold(self, candle: Candle) -> bool:
        """A HOLD of the bot's strategy on ``candle``: the same decision for every bot of
        its group, so the shell logs it for all of them at once (:func:`hold_entry`).
        Marks the book; False when the bot had already decided this candle."""
        if candle.open_time <= self.last_open_time:
            return False
        self.last_open_time = candle.open_time
        self.book.mark(candle.close)
        return True

    def on_price(self, price: Decimal, event_time: int, now: int, exec_from: str) -> Change:
        """Exit rules on a price. Returns a lazy change (book marks) or an exit intent."""
        if not self.book.is_open:
            self.book.mark(price)
            return Change()
        check = self.book.check_exit(price)
        if check.reason is None or self.pending is not None or self.stopping:
            return Change(book=True)
        reason = f"{check.reason.value} at {price} (level {check.level})"
        intent = self._intent(
            f"t{event_time}",
            "exit-" + check.reason.value.lower(),
            Side.SELL,
            now,
            reason,
            quantity=self.book.qty,
            is_exit=True,
        )
        change = self._send(intent, exec_from, now, log_entry(now, "exit", reason, price=price))
        change.book = True
        return change

    def on_report(self, report: ExecutionReport, now: int) -> Change:
        """Apply an execution report; the one that ends the pending (or unresolved)
        intent clears it. Fenced copies (:func:`fenced`) are logged and ignored."""
        pending, unresolved = self.pending, self.unresolved
        if (
            unresolved is not None
            and unresolved.superseded
            and report.intent_id == unresolved.intent_id
            and fenced(report, unresolved.superseded)
        ):
            # A copy of a superseded exit refused: none of them can be placed any more.
            self.unresolved = None
            why = f"superseded exit {report.intent_id} refused by fencing: nothing executed"
            change = Change(unresolved=DELETE, log=[log_entry(now, "report", why)])
            return change.merge(self._known_again(report.intent_id, now))
        for slot in (pending, unresolved):
            if (
                slot is not None
                and report.intent_id == slot.intent_id
                and fenced(report, slot.intent.epoch)
            ):
                # An older epoch's copy refused by fencing; the copy sent under our
                # epoch brings the outcome. It is sent again at once, same id: a gateway
                # that met both copies together may have taken ours for a duplicate of
                # the refused one (it places an intent once, and republishes the stored
                # report of one already done).
                what = "report" if report.final else "notice"
                why = f"ignored fenced {what} of epoch {report.epoch}: {report.reason}"
                change = Change(log=[log_entry(now, "report", why, intent_id=report.intent_id)])
                return change.merge(self._resend(slot, now, "a fenced copy was refused"))
        if not report.final:
            return Change()
        result = self.book.apply(report)
        change = Change()
        if pending is not None and report.intent_id == pending.intent_id:
            self.pending = None
            change.pending = DELETE
        elif unresolved is not None and report.intent_id == unresolved.intent_id:
            self.unresolved = None
            change.unresolved = DELETE
            if self.pending is not None and self.pending.overdue:
                # the next overdue intent becomes the unresolved one (exits go on)
                self.unresolved, self.pending = self.pending, None
                change.pending, change.unresolved = DELETE, self.unresolved
            else:
                change.merge(self._known_again(report.intent_id, now))
        if not result.applied:
            change.log.append(
                log_entry(now, "report", f"not applied: {result.note}", intent_id=report.intent_id)
            )
            return change
        change.book = True
        change.trades.extend(result.round_trips)
        if result.round_trips:
            self.last_exit_at = report.ts or now
        what = (
            f"{report.side.value} {report.status.value}: {report.executed_qty} @ {report.avg_price}"
        )
        if report.reason:
            what += f" ({report.reason})"
        if result.note:
            what += f"; {result.note}"
        change.log.append(
            log_entry(
                now,
                "fill" if report.executed_qty > 0 else "report",
                what,
                intent_id=report.intent_id,
                realized=result.realized_pnl,
            )
        )
        return change

    def _known_again(self, intent: str, now: int) -> Change:
        """The outcome of the unresolved intent is known: ``running`` again."""
        if self.status != BotStatus.NEEDS_ATTENTION.value or self.stopping:
            return Change()
        why = f"outcome of {intent} known late: running again"
        if self.stale:
            why += f"; stale data for {self.stale}: no new entries"
        return self.set_status(BotStatus.RUNNING, why, now)

    def check_pending(self, now: int, bound_ms: int, exec_from: str) -> Change:
        """The bounded wait (issue 15): a pending intent without a final report for
        ``bound_ms`` since it was decided moves aside as ``unresolved`` (kept
        recorded, still re-sent, its late report still applies) and the bot needs
        attention: no new entries, exits fire again (new intent ids), a stop goes on.
        When another intent is already unresolved, this one stays pending but overdue
        (a stop no longer waits for it)."""
        pending = self.pending
        if pending is None or pending.overdue or now - pending.since < bound_ms:
            return Change()
        seconds = bound_ms // 1000
        if self.unresolved is None:
            self.unresolved, self.pending = pending, None
            change = Change(pending=DELETE, unresolved=pending)
            reason = (
                f"no final report for intent {pending.intent_id} within {seconds}s: outcome "
                "unknown; exits still work, no new entries"
            )
        else:
            pending.overdue = True
            change = Change()
            reason = (
                f"no final report for intents {self.unresolved.intent_id} and "
                f"{pending.intent_id} within {seconds}s: outcomes unknown; no new intents"
            )
        change.log.append(log_entry(now, "needs_attention", reason, intent_id=pending.intent_id))
        if self.stopping:
            return change.merge(self.on_stop(now, exec_from))
        return change.merge(self.needs_attention(reason, now))

    def needs_attention(self, reason: str, now: int) -> Change:
        """Status ``needs_attention`` with its reason and a ``bot_needs_attention`` event."""
        self.status, self.status_reason = BotStatus.NEEDS_ATTENTION.value, reason
        return Change(
            bot={
                "status": BotStatus.NEEDS_ATTENTION.value,
                "status_reason": reason,
                "updated_at": str(now),
            },
            events=[
                ("bot_needs_attention", "warning", f"bot {self.bot_id} needs attention: {reason}")
            ],
        )

    def resend(self, now: int, sent_before: int) -> Change:
        """Send the pending and unresolved intents last sent at or before ``sent_before``
        again, same ids, under this owner's epoch (never one it does not hold): the
        gateway places an intent once and republishes the final report it stored for one
        already done."""
        change = Change()
        for slot in (self.pending, self.unresolved):
            if slot is not None and not slot.superseded and slot.sent_at <= sent_before:
                change.merge(self._resend(slot, now, "no final report yet"))
        return change

    def _resend(self, slot: Pending, now: int, why: str) -> Change:
        if slot.intent.epoch != self.epoch:
            slot.intent = msgspec.structs.replace(slot.intent, epoch=self.epoch)
        slot.sent_at = now
        change = Change()
        if slot is self.pending:
            change.intent, change.pending = slot.intent, slot
        else:
            # The unresolved one is re-sent as an intent of its own; at most one per
            # change goes through ``intent``, so it rides on ``resent``.
            change.unresolved = slot
            change.resent.append(slot.intent)
        change.log.append(log_entry(now, "resend", f"{why} for {slot.intent_id}: sent again"))
        return change

    def on_stop(self, now: int, exec_from: str) -> Change:
        """Work towards ``stopped``: wait for a pending intent (at most the bound, see
        :meth:`check_pending`), close the position when ``close_on_stop``, then stop and
        release. An intent whose outcome stays unknown is named in ``status_reason``."""
        self.stopping = True
        pending = self.pending
        if pending is not None and not pending.overdue:
            return self.set_status(
                BotStatus.STOPPING, f"waiting for pending intent {pending.intent_id}", now
            )
        unknown = [x.intent_id for x in (self.unresolved, pending) if x is not None]
        note = f"; outcome of {' and '.join(unknown)} unknown" if unknown else ""
        if self.book.is_open and self.config.close_on_stop and pending is None:
            change = self.set_status(BotStatus.STOPPING, "closing position before stop" + note, now)
            reason = "close on stop"
            trigger = f"stop{self.book.opened_at}"
            if self.unresolved is not None and self.unresolved.intent_id == intent_id(
                self.bot_id, trigger, "sell"
            ):
                trigger += f"n{now}"  # never the unresolved intent's id
            intent = self._intent(
                trigger,
                "sell",
                Side.SELL,
                now,
                reason,
                quantity=self.book.qty,
                is_exit=True,
            )
            return change.merge(self._send(intent, exec_from, now, log_entry(now, "exit", reason)))
        reason = ""
        if self.book.is_open:
            why = "close_on_stop is off" if not self.config.close_on_stop else "left open"
            reason = f"stopped with an open position of {self.book.qty} ({why})"
        reason = (reason or "stopped") + note if note else reason
        change = self.set_status(BotStatus.STOPPED, reason, now)
        if note:
            change.events.append(
                ("bot_stopped_unresolved", "warning", f"bot {self.bot_id}: {reason}")
            )
        change.release = True
        return change

    def set_stale(self, stale: str, now: int) -> Change:
        """Stale-data gate (issue 10): pause entries while ``stale`` names symbols."""
        if stale == self.stale:
            return Change()
        was, self.stale = self.stale, stale
        if self.stopping or self.status != BotStatus.RUNNING.value:
            return Change(bot={"stale": stale})
        if stale:
            reason = f"stale data for {stale}: no new entries until fresh data returns"
            kind, level = "bot_stale", "warning"
        else:
            reason = ""
            kind, level = "bot_fresh", "info"
        self.status_reason = reason
        message = reason or f"fresh data again for {was}: entries resumed"
        return Change(
            bot={"stale": stale, "status_reason": reason, "updated_at": str(now)},
            log=[log_entry(now, "stale" if stale else "fresh", message)],
            events=[(kind, level, f"bot {self.bot_id}: {message}")],
        )


def stale_reason(
    symbol: str,
    interval_length: int,
    last_close_time: int | None,
    last_price_at: int | None,
    now: int,
    grace_ms: int,
) -> str:
    """Why the data of ``symbol`` is stale ("" when fresh): the latest closed candle or
    price is older than one interval plus the grace. Unknown price times are ignored
    (a feed without ticks relies on candles alone); an unknown candle is stale."""
    limit = interval_length + grace_ms
    if last_close_time is None or now - last_close_time > limit:
        return symbol
    if last_price_at is not None and now - last_price_at > limit:
        return symbol
    return ""
