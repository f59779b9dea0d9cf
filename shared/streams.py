"""Redis Streams through the message codec of :mod:`shared.messages`.

``publish`` appends a typed message (capped with ``MAXLEN ~`` unless the stream has a
consumer group, see DESIGN "Traps"); ``decode_entry`` turns an entry into a Struct or,
when it does not decode, moves it to ``stream:dead-letter`` with the reason and the
original fields and returns None, so no loop ever dies on a bad entry.
``ensure_group`` creates a consumer group, tolerating one that exists;
``is_group_lost`` recognises every way Redis says the stream or the group is gone.
"""

from __future__ import annotations

from typing import Any, TypeVar

from redis.exceptions import ResponseError

from shared import keys
from shared.logging import get_logger
from shared.messages import (
    DeadLetter,
    Message,
    MessageDecodeError,
    decode,
    encode,
    stringify_fields,
)
from shared.redis import now_ms

log = get_logger(__name__)

M = TypeVar("M", bound=Message)

DEAD_LETTER_MAXLEN = 10_000
EVENTS_MAXLEN = 10_000


async def publish(redis: Any, stream: str, message: Message, *, maxlen: int | None = None) -> Any:
    """XADD ``message`` to ``stream``; ``redis`` may be a client or a pipeline."""
    if maxlen is None:
        return await _maybe_await(redis.xadd(stream, encode(message)))
    return await _maybe_await(redis.xadd(stream, encode(message), maxlen=maxlen, approximate=True))


def publish_nowait(pipe: Any, stream: str, message: Message, *, maxlen: int | None = None) -> None:
    """Queue an XADD on a pipeline (no await)."""
    if maxlen is None:
        pipe.xadd(stream, encode(message))
    else:
        pipe.xadd(stream, encode(message), maxlen=maxlen, approximate=True)


async def _maybe_await(result: Any) -> Any:
    if hasattr(result, "__await__"):
        return await result
    return result


async def dead_letter(
    redis: Any,
    source: str,
    entry_id: Any,
    fields: dict[Any, Any],
    reason: str,
    *,
    service: str = "",
) -> None:
    letter = DeadLetter(
        source=source,
        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
        reason=reason,
        fields=stringify_fields(fields),
        service=service,
        ts=now_ms(),
    )
    await redis.xadd(keys.DEAD_LETTER, encode(letter), maxlen=DEAD_LETTER_MAXLEN, approximate=True)
    log.warning("stream.dead_letter", source=source, entry_id=letter.entry_id, reason=reason)


async def decode_entry(
    redis: Any,
    source: str,
    entry_id: Any,
    fields: dict[Any, Any],
    expected: type[M] | tuple[type[Message], ...] = Message,  # type: ignore[assignment]
    *,
    service: str = "",
) -> M | None:
    """The entry as a Struct of ``expected``, or None after dead-lettering it."""
    try:
        message = decode(fields)
        if not isinstance(message, expected):
            raise MessageDecodeError(f"unexpected message type {message.TYPE!r} on {source}")
    except MessageDecodeError as exc:
        await dead_letter(redis, source, entry_id, fields, exc.reason, service=service)
        return None
    return message  # type: ignore[return-value]


async def ensure_group(redis: Any, stream: str, group: str, start_id: str = "0") -> None:
    """Create ``group`` on ``stream`` (and the stream), tolerating BUSYGROUP."""
    try:
        await redis.xgroup_create(stream, group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


# How Redis says a consumer group is gone: NOGROUP (the stream key was deleted, or Redis
# restarted empty), and a blocked XREADGROUP woken by the deletion of its stream
# ("UNBLOCKED the stream key no longer exists").
_GROUP_LOST = ("NOGROUP", "no longer exists")


def is_group_lost(exc: BaseException) -> bool:
    """The stream or its consumer group is gone: recreate the group and carry on."""
    if not isinstance(exc, ResponseError):
        return False
    text = str(exc)
    return any(mark in text for mark in _GROUP_LOST)


def is_nogroup(exc: BaseException) -> bool:
    """Kept for callers that predate :func:`is_group_lost` (same test)."""
    return is_group_lost(exc)


async def emit_event(redis: Any, event: Message) -> None:
    await publish(redis, keys.EVENTS, event, maxlen=EVENTS_MAXLEN)
