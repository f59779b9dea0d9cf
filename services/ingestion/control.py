"""Which streams go on which connection, and the SUBSCRIBE/UNSUBSCRIBE messages to send.

Owns, purely (no socket, no clock of its own — ``now`` is passed in):

- :func:`shard_of`: the stable shard of a ``SYMBOL:INTERVAL`` subscription;
- :func:`assign_streams`: spread the wanted streams over connections, at most
  ``max_per_connection`` each (reference §2.1: 1024), moving as few as possible;
- :class:`ControlPlanner`: per connection, the diff between the streams wanted and
  the streams the server confirmed, turned into batched control requests spaced so
  the connection never sends more than its share of the 5 messages/s limit (§2.1:
  pings, pongs and control messages all count, so the default leaves room for pongs).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


def shard_of(member: str, shards: int) -> int:
    """The shard of a subscription member (stable across processes and restarts)."""
    return zlib.crc32(member.encode()) % shards if shards > 1 else 0


def assign_streams(
    wanted: Iterable[str], current: Mapping[int, set[str]], max_per_connection: int
) -> dict[int, set[str]]:
    """New placement of ``wanted`` streams on connections (id -> streams).

    Streams already placed stay where they are; unwanted ones are dropped; new ones
    fill the existing connections with room (lowest id first), then new connections.
    Connections left empty disappear.
    """
    wanted_set = set(wanted)
    placement = {cid: streams & wanted_set for cid, streams in current.items()}
    placed = set().union(*placement.values()) if placement else set()
    todo = sorted(wanted_set - placed)
    next_id = max(placement, default=-1) + 1
    for cid in sorted(placement):
        room = max_per_connection - len(placement[cid])
        if room > 0 and todo:
            placement[cid] |= set(todo[:room])
            todo = todo[room:]
    while todo:
        placement[next_id] = set(todo[:max_per_connection])
        todo = todo[max_per_connection:]
        next_id += 1
    return {cid: streams for cid, streams in placement.items() if streams}


@dataclass(frozen=True, slots=True)
class ControlRequest:
    id: int
    method: str  # SUBSCRIBE | UNSUBSCRIBE
    streams: tuple[str, ...]


@dataclass(slots=True)
class ControlPlanner:
    """Subscription state of one connection: wanted vs confirmed, and what to send."""

    messages_per_second: float = 3.0
    max_streams_per_message: int = 200
    reply_timeout_s: float = 10.0
    wanted: set[str] = field(default_factory=set)
    confirmed: set[str] = field(default_factory=set)
    pending: dict[int, tuple[ControlRequest, float]] = field(default_factory=dict)
    _next_id: int = 1
    _last_sent: float = float("-inf")
    errors: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.messages_per_second <= 5:
            raise ValueError("messages_per_second must be in (0, 5] (reference §2.1)")

    def want(self, streams: Iterable[str]) -> None:
        self.wanted = set(streams)

    def on_connected(self, in_url: Iterable[str] = ()) -> None:
        """A fresh connection: streams named in its URL are subscribed, nothing else."""
        self.confirmed = set(in_url)
        self.pending.clear()

    def _in_flight(self, method: str) -> set[str]:
        out: set[str] = set()
        for request, _ in self.pending.values():
            if request.method == method:
                out.update(request.streams)
        return out

    def due(self, now: float) -> list[ControlRequest]:
        """Requests to send at ``now`` (at most one per spacing interval)."""
        for rid, (_request, sent_at) in list(self.pending.items()):
            if now - sent_at > self.reply_timeout_s:
                del self.pending[rid]  # no answer: the streams are requested again
                self.errors += 1
        if now - self._last_sent < 1.0 / self.messages_per_second:
            return []
        to_sub = sorted(self.wanted - self.confirmed - self._in_flight("SUBSCRIBE"))
        to_unsub = sorted(self.confirmed - self.wanted - self._in_flight("UNSUBSCRIBE"))
        if to_unsub:
            method, streams = "UNSUBSCRIBE", to_unsub
        elif to_sub:
            method, streams = "SUBSCRIBE", to_sub
        else:
            return []
        request = ControlRequest(
            self._next_id, method, tuple(streams[: self.max_streams_per_message])
        )
        self._next_id += 1
        self._last_sent = now
        self.pending[request.id] = (request, now)
        return [request]

    def next_due_in(self, now: float) -> float | None:
        """Seconds until :meth:`due` may return something, or None if nothing is to do."""
        if self.synced() and not self.pending:
            return None
        return max(0.0, self._last_sent + 1.0 / self.messages_per_second - now)

    def on_reply(self, request_id: int | str | None, ok: bool) -> ControlRequest | None:
        """A ``{"result":..,"id":N}`` (ok) or ``{"error":..,"id":N}`` reply."""
        if not isinstance(request_id, int):
            return None
        entry = self.pending.pop(request_id, None)
        if entry is None:
            return None
        request = entry[0]
        if not ok:
            self.errors += 1
            return request
        if request.method == "SUBSCRIBE":
            self.confirmed.update(request.streams)
        else:
            self.confirmed.difference_update(request.streams)
        return request

    def synced(self) -> bool:
        return self.confirmed == self.wanted
