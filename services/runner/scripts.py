"""The runner's Lua scripts: claim, renew and release a bot's lease, and commit a change
to a bot's books atomically, fenced by lease owner and epoch.

Each script touches one bot's keys (they share the ``{id}`` hash tag); ``commit`` may
also append one intent to ``stream:order-intents``, so the intent leaves only while
the lease and the epoch are still this runner's (a zombie runner emits nothing).
That one extra key crosses slots, which a single Redis primary allows (Redis Cluster
is not a target, DESIGN "Scale").
"""

from __future__ import annotations

from typing import Any

from shared import keys
from shared.messages import OrderIntent, encode_json

# KEYS: lease, bot. ARGV: owner, lease_ms, now_ms.
# Returns {epoch, previous owner}: epoch is the new epoch, 0 when the lease is held by
# someone, -1 when the bot does not exist, -2 when it needs no runner (desired stopped
# and status stopped/error).
CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1, ''} end
local desired = redis.call('HGET', KEYS[2], 'desired')
local status = redis.call('HGET', KEYS[2], 'status')
if desired ~= 'running' and (not status or status == 'stopped' or status == 'error') then
  return {-2, ''}
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, ''} end
local previous = redis.call('HGET', KEYS[2], 'owner') or ''
local epoch = redis.call('HINCRBY', KEYS[2], 'epoch', 1)
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'updated_at', ARGV[3])
return {epoch, previous}
"""

# KEYS: lease, bot. ARGV: owner, lease_ms, epoch. 1 when renewed, 0 when lost.
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[3] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease, bot. ARGV: owner. Deletes the lease and clears ``owner`` if still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if redis.call('HGET', KEYS[2], 'owner') == ARGV[1] then redis.call('HSET', KEYS[2], 'owner', '') end
return 1
"""

# KEYS: lease, bot, position, stats, trades, log, pending, intents.
# ARGV: owner, epoch, payload (JSON):
#   bot: {field: value}           HSET on bot:{id}
#   position: {..} | "del"        replace / delete bot:{id}:position
#   stats: {..}                   HSET bot:{id}:stats
#   trades: [{..}], log: [{..}]   XADD (MAXLEN ~ trades_maxlen / log_maxlen)
#   pending: {..} | "del"         replace / delete bot:{id}:pending
#   intent: {type=.., data=..}    XADD stream:order-intents (no MAXLEN: consumer group)
# Returns 1, or 0 (nothing written) when the lease or the epoch is no longer ours.
COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'epoch') ~= ARGV[2] then return 0 end
local p = cjson.decode(ARGV[3])
local function hset(key, t)
  local flat = {}
  for k, v in pairs(t) do flat[#flat + 1] = k; flat[#flat + 1] = tostring(v) end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
end
local function xadd(key, maxlen, t)
  local flat = {}
  for k, v in pairs(t) do flat[#flat + 1] = k; flat[#flat + 1] = tostring(v) end
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(flat))
end
if p.position == 'del' then redis.call('DEL', KEYS[3])
elseif p.position then redis.call('DEL', KEYS[3]); hset(KEYS[3], p.position) end
if p.stats then hset(KEYS[4], p.stats) end
if p.trades then for _, t in ipairs(p.trades) do xadd(KEYS[5], p.trades_maxlen, t) end end
if p.log then for _, t in ipairs(p.log) do xadd(KEYS[6], p.log_maxlen, t) end end
if p.pending == 'del' then redis.call('DEL', KEYS[7])
elseif p.pending then redis.call('DEL', KEYS[7]); hset(KEYS[7], p.pending) end
if p.bot then hset(KEYS[2], p.bot) end
if p.intent then redis.call('XADD', KEYS[8], '*', 'type', p.intent.type, 'data', p.intent.data) end
return 1
"""


def bot_keys(bot_id: str) -> list[str]:
    """KEYS of :data:`COMMIT` for ``bot_id``."""
    return [
        keys.bot_lease(bot_id),
        keys.bot(bot_id),
        keys.bot_position(bot_id),
        keys.bot_stats(bot_id),
        keys.bot_trades(bot_id),
        keys.bot_log(bot_id),
        keys.bot_pending(bot_id),
        keys.ORDER_INTENTS,
    ]


class Scripts:
    """The scripts registered on one client (EVALSHA, loaded on NOSCRIPT)."""

    def __init__(self, redis: Any) -> None:
        self.claim = redis.register_script(CLAIM)
        self.renew = redis.register_script(RENEW)
        self.release = redis.register_script(RELEASE)
        self.commit = redis.register_script(COMMIT)


def intent_json(intent: OrderIntent) -> str:
    """The intent as the ``data`` field of its stream entry."""
    return encode_json(intent).decode()
