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
--       then asset, delta pairs from ARGV 18, then the record retention s (0 = keep),
--       then (optional) the only status to end it from ('' = any that is not final)
-- Returns {'done', status, halt_reason} | {'already', status} | {'moved', status}
--   | {'missing'}

local FINAL = {FILLED = true, CANCELED = true, EXPIRED = true, REJECTED = true}
local rec = redis.call('HMGET', KEYS[1], 'status', 'reserved', 'opened')
local status = rec[1]
if not status then return {'missing'} end
if FINAL[status] then return {'already', status} end
local only_from = ARGV[19 + 2 * tonumber(ARGV[16])] or ''
if only_from ~= '' and status ~= only_from then return {'moved', status} end

-- Amounts are kept as decimal strings with 8 places (exact for magnitudes below ~1e7).
local function fmt(x)
  if math.abs(x) < 5e-9 then return '0.00000000' end
  return string.format('%.8f', x)
end
-- A write-back cache of hash fields: one HMGET per hash to load, one HSET to store.
local cache = {}
local function load(key, fields)
  local values = redis.call('HMGET', key, unpack(fields))
  local c = cache[key] or {vals = {}, dirty = {}}
  for i, f in ipairs(fields) do c.vals[f] = tonumber(values[i] or '0') or 0 end
  cache[key] = c
end
local function get(key, field) return cache[key].vals[field] end
local function add(key, field, delta)
  local c = cache[key]
  c.vals[field] = c.vals[field] + delta
  c.dirty[field] = true
  return c.vals[field]
end
local function flush()
  for key, c in pairs(cache) do
    local args = {}
    for f, _ in pairs(c.dirty) do
      args[#args + 1] = f
      args[#args + 1] = fmt(c.vals[f])
    end
    if #args > 0 then redis.call('HSET', key, unpack(args)) end
  end
end

local final_status, report = ARGV[1], ARGV[3]
local qty, quote = tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
local n = tonumber(ARGV[16])
local assets = {}
for i = 1, n do assets[i] = ARGV[17 + 2 * i - 1] .. ':free' end
if ARGV[13] ~= '' then assets[#assets + 1] = ARGV[13] .. ':free' end
if #assets > 0 then load(KEYS[8], assets) end
if ARGV[13] ~= '' and get(KEYS[8], ARGV[13] .. ':free') < tonumber(ARGV[14]) then
  final_status, report, qty, quote = 'REJECTED', ARGV[15], 0, 0
end
if final_status ~= 'REJECTED' then
  for i = 1, n do add(KEYS[8], ARGV[17 + 2 * i - 1] .. ':free', tonumber(ARGV[17 + 2 * i])) end
end

local side, symbol, bot = ARGV[4], ARGV[5], ARGV[6]
local R = KEYS[4]
local qf, cf = 'pos:' .. bot .. ':' .. symbol .. ':qty', 'pos:' .. bot .. ':' .. symbol .. ':cost'
local ef, sf = 'exposure', 'exposure:' .. symbol
local reserved = tonumber(rec[2] or '0') or 0
local opened = rec[3] == '1'
local halt_reason = ''

if side == 'BUY' then
  load(R, {ef, sf, qf, cf})
  local delta = quote - reserved
  if delta ~= 0 then
    add(R, ef, delta)
    add(R, sf, delta)
  end
  if qty > 0 then
    local before = get(R, qf)
    add(R, qf, qty)
    add(R, cf, quote)
    if not opened and before <= 0 then
      -- an exit-flagged BUY (or a re-entry without reservation) opened a position
      redis.call('HINCRBY', R, 'open_positions', 1)
    end
  elseif opened then
    redis.call('HINCRBY', R, 'open_positions', -1)
  end
elseif qty > 0 then
  local day_f = 'realized:' .. ARGV[9]
  load(R, {ef, sf, qf, cf, day_f, 'realized_total', 'realized_peak'})
  local held, cost = get(R, qf), get(R, cf)
  local sold = math.min(qty, held)
  if sold > 0 then
    local cost_out = cost * sold / held
    local closes = held - sold <= held * 1e-12
    if closes then
      cost_out = cost
      redis.call('HDEL', R, qf, cf)
      redis.call('HINCRBY', R, 'open_positions', -1)
    else
      add(R, qf, -qty)
      add(R, cf, -cost_out)
    end
    add(R, ef, -cost_out)
    add(R, sf, -cost_out)
    local realized = quote * sold / qty - cost_out
    local day = add(R, day_f, realized)
    local total = add(R, 'realized_total', realized)
    local peak = get(R, 'realized_peak')
    if total > peak then
      peak = add(R, 'realized_peak', total - peak)
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
flush()

local entry = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', 'type', ARGV[2],
  'data', report)
redis.call('HSET', KEYS[1], 'status', final_status, 'report', report, 'report_id', entry,
  'updated_at', ARGV[10])
local retention = tonumber(ARGV[18 + 2 * n] or '0') or 0
if retention > 0 then redis.call('EXPIRE', KEYS[1], retention) end
redis.call('SREM', KEYS[6], ARGV[12])
if status == 'OPEN' then redis.call('SREM', KEYS[7], ARGV[12]) end
return {'done', final_status, halt_reason}
