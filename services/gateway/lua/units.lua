-- Once per Redis: amounts an older gateway wrote as decimal strings ('1000.50000000')
-- become integer units (money.lua), by string operations only (exact). Then the marker
-- says so, and this never runs again (a second run would scale units by 1e8).
--
-- Keys (k_*) and arguments: UNITS_KEYS and UnitsArgs in services/gateway/scripts.py;
-- the order records still active follow, from position first_record.
-- Returns the number of values converted, or -1 if already done.

if redis.call('EXISTS', k_marker) == 1 then return -1 end
local converted = 0
local function convert(key, skip)
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do
    local f, v = flat[i], flat[i + 1]
    if f ~= skip and string.find(v, '.', 1, true) then
      local u = units_of(v)
      if u then
        redis.call('HSET', key, f, u)
        converted = converted + 1
      end
    end
  end
end
convert(k_risk_state, RISK.OPEN_POSITIONS)
-- paper balances were seeded as str(Decimal): '100000' is 100000 of the asset, not units
local flat = redis.call('HGETALL', k_paper_balances)
for i = 1, #flat, 2 do
  local u = units_of(flat[i + 1])
  if u then
    redis.call('HSET', k_paper_balances, flat[i], u)
    converted = converted + 1
  end
end
for i = first_record, #KEYS do
  local reserved = redis.call('HGET', KEYS[i], REC.RESERVED)
  if reserved and string.find(reserved, '.', 1, true) then
    redis.call('HSET', KEYS[i], REC.RESERVED, units_of(reserved) or '0')
    converted = converted + 1
  end
end
redis.call('SET', k_marker, PLACES)
return converted
