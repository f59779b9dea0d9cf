-- Admit one order intent, atomically across every gateway instance.
-- Owns: idempotency (order record exists?), fencing (bot epoch), the rate guard rails,
-- portfolio risk for entries (halt, exposure per symbol and total, open positions,
-- daily loss) and the reservation of the entry's notional in risk:state.
-- Exits verified against the gateway's own record of the bot's position skip the rails
-- and risk; other exits (is_exit SELL) skip only risk. Writes nothing on a rejection.
--
-- KEYS: 1 order:{cid}  2 bot:{id}  3 risk:limits  4 risk:halt  5 risk:state
--       6 bot rate counter  7 fleet rate counter  8 active-orders set
-- ARGV: 1 cid  2 intent json  3 epoch  4 side  5 is_exit(0/1)  6 symbol  7 bot id
--       8 quantity ('' if quote-sized)  9 notional  10 static rail verdict ('' = ok)
--       11 bot orders/window (0 = none)  12 fleet orders/window  13 counter ttl s
--       14 now ms  15 mode  16 instance  17 epoch field name  18 day (YYYYMMDD)
--       19 the admitted stream entry id (optional)
-- Returns {'exists', status} | {'reject', kind, reason} | {'ok', verified_exit, reserved}
-- (kind: fence | rail | risk | halt | halt-set, the last when this call set the halt)

local status = redis.call('HGET', KEYS[1], 'status')
if status then
  return {'exists', status}
end

local epoch = tonumber(ARGV[3])
local current = redis.call('HGET', KEYS[2], ARGV[17])
if current and tonumber(current) and epoch < tonumber(current) then
  return {'reject', 'fence', 'stale epoch ' .. ARGV[3] .. ' < bot epoch ' .. current}
end

local side, is_exit, symbol, bot = ARGV[4], ARGV[5] == '1', ARGV[6], ARGV[7]
local pos_qty_field = 'pos:' .. bot .. ':' .. symbol .. ':qty'
local st = redis.call('HMGET', KEYS[5], pos_qty_field, 'exposure', 'exposure:' .. symbol,
  'open_positions', 'realized:' .. ARGV[18])
local held = tonumber(st[1] or '0') or 0
local qty = tonumber(ARGV[8])
local verified = is_exit and side == 'SELL' and qty ~= nil and held > 0 and qty <= held

if not verified then
  if ARGV[10] ~= '' then
    return {'reject', 'rail', ARGV[10]}
  end
  local bot_limit, fleet_limit = tonumber(ARGV[11]), tonumber(ARGV[12])
  if bot_limit > 0 and (tonumber(redis.call('GET', KEYS[6]) or '0') >= bot_limit) then
    return {'reject', 'rail', 'max_bot_order_rate: ' .. bot_limit .. ' orders per window'}
  end
  if fleet_limit > 0 and (tonumber(redis.call('GET', KEYS[7]) or '0') >= fleet_limit) then
    return {'reject', 'rail', 'max_fleet_order_rate: ' .. fleet_limit .. ' orders per window'}
  end
end

local notional = tonumber(ARGV[9]) or 0
local reserved = 0
local opened = '0'
if side == 'BUY' and not is_exit then
  local halt = redis.call('GET', KEYS[4])
  if halt then
    return {'reject', 'halt', 'portfolio halted: ' .. halt}
  end
  -- risk:limits fields: shared/risk_limits.py (missing = no limit)
  local lim = redis.call('HMGET', KEYS[3], 'max_exposure_quote', 'max_symbol_exposure_quote',
    'max_open_positions', 'max_daily_loss_quote', 'max_position_quote')
  local max_total, max_sym = tonumber(lim[1] or '0') or 0, tonumber(lim[2] or '0') or 0
  local max_open, max_loss = tonumber(lim[3] or '0') or 0, tonumber(lim[4] or '0') or 0
  local max_order = tonumber(lim[5] or '0') or 0
  local total, sym = tonumber(st[2] or '0') or 0, tonumber(st[3] or '0') or 0
  local open_n, day_pnl = tonumber(st[4] or '0') or 0, tonumber(st[5] or '0') or 0
  if max_loss > 0 and -day_pnl >= max_loss then
    local reason = 'max_daily_loss_quote: realized ' .. st[5] .. ' today, limit ' .. lim[4]
    redis.call('SET', KEYS[4], reason)
    return {'reject', 'halt-set', 'portfolio halted: ' .. reason}
  end
  if max_order > 0 and notional > max_order then
    return {'reject', 'risk', 'max_position_quote: order notional ' .. ARGV[9] .. ' > ' .. lim[5]}
  end
  if max_sym > 0 and sym + notional > max_sym then
    return {'reject', 'risk', 'max_symbol_exposure_quote: ' .. symbol .. ' exposure would be ' ..
      string.format('%.8f', sym + notional) .. ' > ' .. lim[2]}
  end
  if max_total > 0 and total + notional > max_total then
    return {'reject', 'risk', 'max_exposure_quote: exposure would be ' ..
      string.format('%.8f', total + notional) .. ' > ' .. lim[1]}
  end
  if held <= 0 then
    if max_open > 0 and open_n + 1 > max_open then
      return {'reject', 'risk', 'max_open_positions: ' .. open_n .. ' open, limit ' .. lim[3]}
    end
    opened = '1'
    redis.call('HINCRBY', KEYS[5], 'open_positions', 1)
  end
  reserved = notional
  redis.call('HSET', KEYS[5], 'exposure', string.format('%.8f', total + notional),
    'exposure:' .. symbol, string.format('%.8f', sym + notional))
end

if not verified then
  local ttl = tonumber(ARGV[13])
  if redis.call('INCR', KEYS[6]) == 1 then redis.call('EXPIRE', KEYS[6], ttl) end
  if redis.call('INCR', KEYS[7]) == 1 then redis.call('EXPIRE', KEYS[7], ttl) end
end

redis.call('HSET', KEYS[1], 'status', 'ACCEPTED', 'cid', ARGV[1], 'intent', ARGV[2],
  'mode', ARGV[15], 'reserved', tostring(reserved == 0 and '0' or ARGV[9]), 'opened', opened,
  'created_at', ARGV[14], 'updated_at', ARGV[14], 'instance', ARGV[16])
if (ARGV[19] or '') ~= '' then redis.call('HSET', KEYS[1], 'entry', ARGV[19]) end
redis.call('SADD', KEYS[8], ARGV[1])
return {'ok', verified and '1' or '0', tostring(reserved == 0 and '0' or ARGV[9])}
