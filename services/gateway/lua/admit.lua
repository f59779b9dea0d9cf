-- Admit one order intent, atomically across every gateway instance.
-- Owns: idempotency (order record exists?), fencing (bot epoch), the rate guard rails,
-- portfolio risk for entries (halt, exposure per symbol and total, open positions,
-- daily loss) and the reservation of the entry's notional in risk:state.
-- Exits verified against the gateway's own record of the bot's position skip the rails
-- and risk; other exits (is_exit SELL) skip only risk. Writes nothing on a rejection.
--
-- Keys (k_*) and arguments: ADMIT_KEYS and AdmitArgs in services/gateway/scripts.py,
-- which binds them above this body. Money is integer units (money.lua).
-- Returns {'exists', status} | {'reject', kind, reason} | {'ok', verified_exit, reserved}
-- (kind: fence | rail | risk | halt | halt-set, the last when this call set the halt)

local status = redis.call('HGET', k_order, REC.STATUS)
if status then
  return {'exists', status}
end

local current = redis.call('HGET', k_bot, BOT.EPOCH)
if current and tonumber(current) and epoch < tonumber(current) then
  return {'reject', 'fence', 'stale epoch ' .. epoch .. ' < bot epoch ' .. current}
end

local st = redis.call('HMGET', k_risk_state, pos_qty_field, RISK.EXPOSURE,
  symbol_exposure_field, RISK.OPEN_POSITIONS, day_field)
local held = st[1] or '0'
-- exact at the last unit: the quantity and the position are compared as integers
local verified = is_exit and side == SIDE.SELL and qty ~= '' and positive(held)
  and cmp(qty, held) <= 0

if not verified then
  if rail_verdict ~= '' then
    return {'reject', 'rail', rail_verdict}
  end
  if bot_limit > 0 and (tonumber(redis.call('GET', k_bot_rate) or '0') >= bot_limit) then
    return {'reject', 'rail', 'max_bot_order_rate: ' .. bot_limit .. ' orders per window'}
  end
  if fleet_limit > 0 and (tonumber(redis.call('GET', k_fleet_rate) or '0') >= fleet_limit) then
    return {'reject', 'rail', 'max_fleet_order_rate: ' .. fleet_limit .. ' orders per window'}
  end
end

local reserved = '0'
local opened = '0'
if side == SIDE.BUY and not is_exit then
  local halt = redis.call('GET', k_risk_halt)
  if halt then
    return {'reject', 'halt', 'portfolio halted: ' .. halt}
  end
  local lim = redis.call('HMGET', k_risk_limits, LIM.max_exposure_quote,
    LIM.max_symbol_exposure_quote, LIM.max_open_positions, LIM.max_daily_loss_quote,
    LIM.max_position_quote)
  local max_total, max_sym = units_of(lim[1]), units_of(lim[2])  -- nil: no limit
  local max_open = tonumber(lim[3] or '0') or 0  -- a count, not money
  local max_loss, max_order = units_of(lim[4]), units_of(lim[5])
  for _, i in ipairs({1, 2, 4, 5}) do
    if lim[i] and not units_of(lim[i]) then  -- unreadable is not "no limit": refuse
      return {'reject', 'risk', 'risk limit unreadable: ' .. lim[i]}
    end
  end
  local day_pnl = st[5] or '0'
  if positive(max_loss) and cmp(neg(day_pnl), max_loss) >= 0 then
    local reason = LIM.max_daily_loss_quote .. ': realized ' .. decimal(day_pnl) ..
      ' today, limit ' .. lim[4]
    redis.call('SET', k_risk_halt, reason)
    return {'reject', 'halt-set', 'portfolio halted: ' .. reason}
  end
  if positive(max_order) and cmp(notional, max_order) > 0 then
    return {'reject', 'risk', LIM.max_position_quote .. ': order notional ' ..
      decimal(notional) .. ' > ' .. lim[5]}
  end
  local opens = not positive(held)
  local open_n = tonumber(st[4] or '0') or 0
  if opens and max_open > 0 and open_n + 1 > max_open then
    return {'reject', 'risk', LIM.max_open_positions .. ': ' .. open_n .. ' open, limit ' ..
      lim[3]}
  end
  if not (in_range(st[2]) and in_range(st[3])) then
    return {'reject', 'risk', 'exposure out of range: ' .. decimal(st[2])}
  end
  -- reserve, then look: a sum is only exact in Redis (HINCRBY); undone on a refusal
  redis.call('HINCRBY', k_risk_state, symbol_exposure_field, notional)
  if positive(max_sym) then
    local sym = redis.call('HGET', k_risk_state, symbol_exposure_field)
    if cmp(sym, max_sym) > 0 then
      redis.call('HINCRBY', k_risk_state, symbol_exposure_field, neg(notional))
      return {'reject', 'risk', LIM.max_symbol_exposure_quote .. ': ' .. symbol ..
        ' exposure would be ' .. decimal(sym) .. ' > ' .. lim[2]}
    end
  end
  redis.call('HINCRBY', k_risk_state, RISK.EXPOSURE, notional)
  if positive(max_total) then
    local total = redis.call('HGET', k_risk_state, RISK.EXPOSURE)
    if cmp(total, max_total) > 0 then
      redis.call('HINCRBY', k_risk_state, symbol_exposure_field, neg(notional))
      redis.call('HINCRBY', k_risk_state, RISK.EXPOSURE, neg(notional))
      return {'reject', 'risk', LIM.max_exposure_quote .. ': exposure would be ' ..
        decimal(total) .. ' > ' .. lim[1]}
    end
  end
  if opens then
    opened = '1'
    redis.call('HINCRBY', k_risk_state, RISK.OPEN_POSITIONS, 1)
  end
  reserved = notional
end

if not verified then
  if redis.call('INCR', k_bot_rate) == 1 then redis.call('EXPIRE', k_bot_rate, counter_ttl) end
  if redis.call('INCR', k_fleet_rate) == 1 then
    redis.call('EXPIRE', k_fleet_rate, counter_ttl)
  end
end

redis.call('HSET', k_order, REC.STATUS, ST.ACCEPTED, REC.CID, cid, REC.INTENT, intent,
  REC.MODE, mode, REC.RESERVED, reserved, REC.OPENED, opened, REC.CREATED_AT, now,
  REC.UPDATED_AT, now, REC.INSTANCE, instance)
if entry ~= '' then redis.call('HSET', k_order, REC.ENTRY, entry) end
redis.call('SADD', k_active, cid)
return {'ok', verified and '1' or '0', reserved}
