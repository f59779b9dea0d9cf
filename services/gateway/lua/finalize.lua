-- End an admitted order: its terminal report on stream:executions, the record's final
-- state, the portfolio figures (exposure, the bot's position, realized PnL) and, in
-- paper mode, the balances -- all in one atomic step, so a crash can never leave a
-- final record without its report or publish a report twice.
-- A daily-loss or drawdown breach sets risk:halt (the caller emits the event).
--
-- KEYS: 1 order:{cid}  2 risk:limits  3 risk:halt  4 risk:state  5 stream:executions
--       6 active set  7 open set  8 balances
-- ARGV: 1 final status  2 report type  3 report json  4 side  5 symbol  6 bot
--       7 base qty for the position (net of base commission)  8 quote amount (BUY: spent
--       incl. quote fee; SELL: received net of quote fee)  9 day  10 now ms  11 maxlen
--       12 cid  13 balance check asset ('' = none)  14 amount needed
--       15 rejection report json (used when the balance check fails)
--       16 number of balance deltas  17 equity base (quote; drawdown, 0 = none)
--       then asset, delta pairs from ARGV 18
-- Returns {'done', status, halt_reason} | {'already', status} | {'missing'}

local FINAL = {FILLED = true, CANCELED = true, EXPIRED = true, REJECTED = true}
local rec = redis.call('HMGET', KEYS[1], 'status', 'reserved', 'opened')
local status = rec[1]
if not status then return {'missing'} end
if FINAL[status] then return {'already', status} end

-- Amounts are kept as decimal strings with 8 places (exact for magnitudes below ~1e7).
local function fmt(x)
  if math.abs(x) < 5e-9 then return '0.00000000' end
  return string.format('%.8f', x)
end
local function add(key, field, delta)
  local value = (tonumber(redis.call('HGET', key, field) or '0') or 0) + delta
  redis.call('HSET', key, field, fmt(value))
  return value
end

local final_status, report = ARGV[1], ARGV[3]
local qty, quote = tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
if ARGV[13] ~= '' then
  local free = tonumber(redis.call('HGET', KEYS[8], ARGV[13] .. ':free') or '0') or 0
  if free < tonumber(ARGV[14]) then
    final_status, report, qty, quote = 'REJECTED', ARGV[15], 0, 0
  end
end
if final_status ~= 'REJECTED' then
  local n = tonumber(ARGV[16])
  for i = 1, n do
    add(KEYS[8], ARGV[17 + 2 * i - 1] .. ':free', tonumber(ARGV[17 + 2 * i]))
  end
end

local side, symbol, bot = ARGV[4], ARGV[5], ARGV[6]
local qf, cf = 'pos:' .. bot .. ':' .. symbol .. ':qty', 'pos:' .. bot .. ':' .. symbol .. ':cost'
local reserved = tonumber(rec[2] or '0') or 0
local opened = rec[3] == '1'
local halt_reason = ''

if side == 'BUY' then
  local delta = quote - reserved
  if delta ~= 0 then
    add(KEYS[4], 'exposure', delta)
    add(KEYS[4], 'exposure:' .. symbol, delta)
  end
  if qty > 0 then
    add(KEYS[4], qf, qty)
    add(KEYS[4], cf, quote)
    if not opened and reserved == 0 and tonumber(redis.call('HGET', KEYS[4], qf)) == qty then
      -- an exit-flagged BUY (or a re-entry without reservation) opened a position
      redis.call('HINCRBY', KEYS[4], 'open_positions', 1)
    end
  elseif opened then
    redis.call('HINCRBY', KEYS[4], 'open_positions', -1)
  end
elseif qty > 0 then
  local held = tonumber(redis.call('HGET', KEYS[4], qf) or '0') or 0
  local cost = tonumber(redis.call('HGET', KEYS[4], cf) or '0') or 0
  local sold = math.min(qty, held)
  if sold > 0 then
    local cost_out = cost * sold / held
    local closes = held - sold <= held * 1e-12
    if closes then
      cost_out = cost
      redis.call('HDEL', KEYS[4], qf, cf)
      redis.call('HINCRBY', KEYS[4], 'open_positions', -1)
    else
      add(KEYS[4], qf, -qty)
      add(KEYS[4], cf, -cost_out)
    end
    add(KEYS[4], 'exposure', -cost_out)
    add(KEYS[4], 'exposure:' .. symbol, -cost_out)
    local realized = quote * sold / qty - cost_out
    local day = (add(KEYS[4], 'realized:' .. ARGV[9], realized))
    local total = (add(KEYS[4], 'realized_total', realized))
    local peak = tonumber(redis.call('HGET', KEYS[4], 'realized_peak') or '0') or 0
    if total > peak then
      peak = total
      redis.call('HSET', KEYS[4], 'realized_peak', fmt(total))
    end
    local lim = redis.call('HMGET', KEYS[2], 'max_daily_loss_quote', 'max_drawdown_pct')
    local max_loss, max_dd = tonumber(lim[1] or '0') or 0, tonumber(lim[2] or '0') or 0
    local base = tonumber(ARGV[17]) or 0
    if max_loss > 0 and -day >= max_loss then
      halt_reason = 'max_daily_loss_quote: realized ' .. fmt(day) .. ' today, limit ' .. lim[1]
    elseif max_dd > 0 and base > 0 and base + peak > 0 then
      -- fleet equity = equity base + cumulative realized PnL; drawdown from its peak
      local dd = (peak - total) / (base + peak) * 100
      if dd >= max_dd then
        halt_reason = 'max_drawdown_pct: ' .. string.format('%.4f', dd) .. '% below peak, limit ' .. lim[2]
      end
    end
    if halt_reason ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then
      redis.call('SET', KEYS[3], halt_reason)
    else
      halt_reason = ''
    end
  end
end

local entry = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', 'type', ARGV[2],
  'data', report)
redis.call('HSET', KEYS[1], 'status', final_status, 'report', report, 'report_id', entry,
  'updated_at', ARGV[10])
redis.call('SREM', KEYS[6], ARGV[12])
if status == 'OPEN' then redis.call('SREM', KEYS[7], ARGV[12]) end
return {'done', final_status, halt_reason}
