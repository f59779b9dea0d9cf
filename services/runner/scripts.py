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

from redis.exceptions import NoScriptError

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
# pending (7 keys). ARGV: owner, log_maxlen, trades_maxlen, then per bot: epoch, payload.
# The payload is JSON (all values strings):
#   bot: {field: value}           HSET on bot:{id}
#   position: {..} | "del"        replace / delete bot:{id}:position
#   stats: {..}                   HSET bot:{id}:stats
#   trades: [{..}], log: [{..}]   XADD (MAXLEN ~ trades_maxlen / log_maxlen)
#   pending: {..} | "del"         write (every field, so nothing stale stays) / delete
#                                 bot:{id}:pending; its ``intent`` field is the intent's
#                                 data when the payload carries the intent
#   intent: {type=.., data=..}    XADD stream:order-intents (no MAXLEN: consumer group)
#   release: "1"                  let go of the lease and clear ``owner`` (a stopped bot:
#                                 never ``stopped`` while still leased)
# Returns per bot 1, or 0 (nothing written) when its lease or epoch is no longer ours.
COMMIT = """
local owner = ARGV[1]
local function flat(t)
  local f = {}
  for k, v in pairs(t) do f[#f + 1] = k; f[#f + 1] = v end
  return f
end
local out = {}
for i = 1, (#ARGV - 3) / 2 do
  local k = 1 + (i - 1) * 7
  if redis.call('GET', KEYS[k + 1]) == owner and redis.call('HGET', KEYS[k + 2], 'epoch') == ARGV[2 + 2 * i] then
    local p = cjson.decode(ARGV[3 + 2 * i])
    if p.position == 'del' then redis.call('DEL', KEYS[k + 3])
    elseif p.position and next(p.position) then
      redis.call('DEL', KEYS[k + 3]); redis.call('HSET', KEYS[k + 3], unpack(flat(p.position)))
    end
    if p.stats and next(p.stats) then redis.call('HSET', KEYS[k + 4], unpack(flat(p.stats))) end
    if p.trades then
      for _, t in ipairs(p.trades) do
        redis.call('XADD', KEYS[k + 5], 'MAXLEN', '~', ARGV[3], '*', unpack(flat(t)))
      end
    end
    if p.log then
      for _, t in ipairs(p.log) do
        redis.call('XADD', KEYS[k + 6], 'MAXLEN', '~', ARGV[2], '*', unpack(flat(t)))
      end
    end
    if p.pending == 'del' then redis.call('DEL', KEYS[k + 7])
    elseif p.pending and (next(p.pending) or p.intent) then
      if p.intent and not p.pending.intent then p.pending.intent = p.intent.data end
      redis.call('HSET', KEYS[k + 7], unpack(flat(p.pending)))
    end
    if p.bot and next(p.bot) then redis.call('HSET', KEYS[k + 2], unpack(flat(p.bot))) end
    if p.intent then redis.call('XADD', KEYS[1], '*', 'type', p.intent.type, 'data', p.intent.data) end
    if p.release then
      redis.call('DEL', KEYS[k + 1]); redis.call('HSET', KEYS[k + 2], 'owner', '')
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# The same decision for many bots (a HOLD of their shared strategy computation).
# KEYS: per bot: lease, bot, stats, log. ARGV: owner, log_maxlen, last_candle, n, then
# n field/value pairs of the log entry (n = 0: no log entry), then one epoch per bot.
# Returns per bot 1, or 0 when its lease or epoch is no longer ours.
DECIDED = """
local owner, n = ARGV[1], tonumber(ARGV[4])
local entry = {}
for j = 1, 2 * n do entry[j] = ARGV[4 + j] end
local first = 4 + 2 * n
local out = {}
for i = 1, #KEYS / 4 do
  local k = 4 * (i - 1)
  if redis.call('GET', KEYS[k + 1]) == owner and redis.call('HGET', KEYS[k + 2], 'epoch') == ARGV[first + i] then
    redis.call('HSET', KEYS[k + 3], 'last_candle', ARGV[3])
    if n > 0 then redis.call('XADD', KEYS[k + 4], 'MAXLEN', '~', ARGV[2], '*', unpack(entry)) end
    out[i] = 1
  else
    out[i] = 0
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
#                  and nobody holds the lease).
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
  elseif desired == 'running' or status == 'starting' or status == 'running' or status == 'stopping' then
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
    Redis restarted) without the client's SCRIPT EXISTS round trip before each call."""

    def __init__(self, redis: Any, text: str) -> None:
        self.redis = redis
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys_: Sequence[str | bytes], args: Sequence[Any]) -> Any:
        try:
            return await self.redis.evalsha(self.sha, len(keys_), *keys_, *args)
        except NoScriptError:
            # A NOSCRIPT reply means the script did not run at all: load and call again.
            await self.redis.script_load(self.text)
            return await self.redis.evalsha(self.sha, len(keys_), *keys_, *args)

    async def call_early(
        self, keys_: Sequence[str | bytes], args: Sequence[Any], written: asyncio.Event
    ) -> Any:
        """The call on a pooled connection of its own, setting ``written`` as soon as
        the request is on its way, so that the caller goes on working while Redis runs
        the script (the client's own call first polls the connection for a loop turn
        or two). No retry here: the caller's loop handles Redis errors."""
        pool = self.redis.connection_pool
        try:
            conn = await pool.get_connection()
        except BaseException:
            written.set()
            raise
        try:
            packed = conn.pack_command("EVALSHA", self.sha, len(keys_), *keys_, *args)
            # With a socket timeout set, the client wraps the write in wait_for, a task
            # of its own: several loop turns (~0.3 ms) before the request leaves. The
            # same bound as a plain timeout scope instead; the pool has just checked the
            # connection, so no health-check PING either.
            timeout = conn.socket_timeout
            conn.socket_timeout = None
            try:
                async with asyncio.timeout(timeout):
                    await conn.send_packed_command(packed, check_health=False)
            finally:
                conn.socket_timeout = timeout
            written.set()
            try:
                return await conn.read_response()
            except NoScriptError:  # nothing ran: load and call again
                await conn.send_command("SCRIPT", "LOAD", self.text)
                await conn.read_response()
                await conn.send_command("EVALSHA", self.sha, len(keys_), *keys_, *args)
                return await conn.read_response()
        except BaseException:
            await conn.disconnect()  # a half-read reply must never reach the next user
            raise
        finally:
            written.set()
            await pool.release(conn)


class Scripts:
    """The runner's scripts on one client."""

    def __init__(self, redis: Any) -> None:
        self.claim = Script(redis, CLAIM)
        self.renew = Script(redis, RENEW)
        self.release = Script(redis, RELEASE)
        self.load = Script(redis, LOAD)
        self.commit = Script(redis, COMMIT)
        self.decided = Script(redis, DECIDED)
        self.reconcile = Script(redis, RECONCILE)
