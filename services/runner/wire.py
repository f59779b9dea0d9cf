"""The runner's own Redis wire: its connections (:class:`Lanes`), requests packed in C,
and the one blocking XREAD over every stream the runner reads.

The client's Python packer costs about a microsecond per argument; a chunk of bots has
thousands of them, and the XREAD names two streams per symbol (0.44 ms a call with 401
streams, 0.05 ms packed by hiredis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import hiredis

Entry = tuple[bytes, dict[bytes, bytes]]  # entry id, fields


def pack_command(args: Sequence[bytes | str | int]) -> bytes:
    """One RESP request, packed in C (hiredis)."""
    return hiredis.pack_command(tuple(args))  # type: ignore[arg-type]  # stub: a 1-tuple


class Lanes:
    """The connections of the runner's scripts and its XREAD: its own, taken and given back
    without the client pool's lock, its probe of every checked-out connection (a loop
    turn each) and its release event. A connection is reused only after a call on it
    read its whole reply."""

    def __init__(self, redis: Any, keep: int = 16) -> None:
        self.pool = redis.connection_pool
        self.keep = keep
        self.idle: list[Any] = []
        self.busy: set[Any] = set()

    async def take(self) -> Any:
        while self.idle:
            conn = self.idle.pop()
            if conn.is_connected:
                self.busy.add(conn)
                return conn
        conn = self.pool.make_connection()
        self.busy.add(conn)
        try:
            await conn.connect()
        except BaseException:
            self.busy.discard(conn)
            raise
        return conn

    async def give_back(self, conn: Any, *, broken: bool = False) -> None:
        """Return ``conn``; ``broken`` (a call failed midway: a half-read reply must
        never reach the next user) or one too many closes it."""
        self.busy.discard(conn)
        if broken or len(self.idle) >= self.keep:
            await conn.disconnect()
        else:
            self.idle.append(conn)

    async def close(self) -> None:
        conns = [*self.idle, *self.busy]
        self.idle, self.busy = [], set()
        for conn in conns:
            await conn.disconnect()


async def send_request(conn: Any, request: bytes) -> None:
    """Write ``request`` (bounded by the connection's socket timeout)."""
    # With a socket timeout set, the client wraps the write in wait_for, a task of its
    # own: several loop turns (~0.3 ms) before the request leaves. The same bound as a
    # plain timeout scope instead, and no health-check PING.
    timeout = conn.socket_timeout
    conn.socket_timeout = None
    try:
        async with asyncio.timeout(timeout):
            await conn.send_packed_command(request, check_health=False)
    finally:
        conn.socket_timeout = timeout


async def read_streams(
    lanes: Lanes, streams: dict[str, str], count: int, block_ms: int
) -> list[tuple[str, list[Entry]]]:
    """XREAD COUNT ``count`` BLOCK ``block_ms`` over ``streams`` (name -> last id read):
    the entries after each id, by stream; empty when nothing came within the block."""
    request = pack_command(
        ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *streams, *streams.values())
    )
    conn = await lanes.take()
    broken = True
    try:
        await send_request(conn, request)
        reply = await conn.read_response()
        broken = False
    finally:
        await lanes.give_back(conn, broken=broken)
    out: list[tuple[str, list[Entry]]] = []
    for name, entries in reply or ():
        stream = name.decode() if isinstance(name, bytes) else str(name)
        out.append((stream, [(entry_id, _fields(flat)) for entry_id, flat in entries]))
    return out


def _fields(flat: list[bytes] | None) -> dict[bytes, bytes]:
    if not flat:
        return {}
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=True))
