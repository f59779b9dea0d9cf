-- End an admitted order: its terminal report on stream:executions, the record's final
-- state, the portfolio figures (exposure, the bot's position, realized PnL) and, in
-- paper mode, the balances -- all in one atomic step, so a crash can never leave a
-- final record without its report or publish a report twice.
-- A daily-loss breach sets risk:halt (the caller emits the event); the drawdown needs
-- a quotient, so the caller judges it from the figures returned (risk_state.py).
--
-- Keys (k_*) and arguments: FINALIZE_KEYS and FinalizeArgs in services/gateway/
-- scripts.py. Money is integer units (money.lua), changed only with HINCRBY. A sell's
-- figures (sold, cost_out, realized) were computed in Python from the position
-- expect_qty/expect_cost; if the position is not that any more, nothing is written and
-- the caller recomputes ('conflict').
-- Returns {'done', status, halt_reason, realized_total, realized_peak, drawdown limit}
--   | {'already', status} | {'moved', status} (not in only_from) | {'missing'}
--   | {'conflict'} | an error (a figure out of range)

local rec = redis.call('HMGET', k_order, REC.STATUS, REC.RESERVED, REC.OPENED)
local record_status = rec[1]
if not record_status then return {'missing'} end
if FINAL[record_status] then return {'already', record_status} end
if only_from ~= '' and record_status ~= only_from then return {'moved', record_status} end

local R, B = k_risk_state, k_balances
local st = redis.call('HMGET', R, RISK.EXPOSURE, symbol_exposure_field, pos_qty_field,
  pos_cost_field, day_field, RISK.REALIZED_TOTAL)
if sell and ((st[3] or '') ~= expect_qty or (st[4] or '') ~= expect_cost) then
  return {'conflict'}
end

local final_status, report = status, report
local fields = {}
for i, d in ipairs(deltas) do fields[i] = d[1] end
if check_field ~= '' then fields[#fields + 1] = check_field end
local bal = {}
if #fields > 0 then bal = redis.call('HMGET', B, unpack(fields)) end
local refused = check_field ~= '' and cmp(bal[#fields] or '0', check_needed) < 0
if refused then
  final_status, report, qty, quote, sell = ST.REJECTED, rejection, '0', '0', false
end
for i = 1, 6 do
  if not in_range(st[i]) then return redis.error_reply('risk figure out of range') end
end
for i = 1, #deltas do
  if not in_range(bal[i]) then return redis.error_reply('balance out of range: ' .. fields[i]) end
end

if final_status ~= ST.REJECTED then
  for _, d in ipairs(deltas) do redis.call('HINCRBY', B, d[1], d[2]) end
end

local reserved = rec[2] or '0'
local opened = rec[3] == '1'
local halt_reason, total, peak, max_dd = '', '', '', ''

if side == SIDE.BUY then
  -- the reservation made at admission gives way to what was spent: in one change when
  -- the caller knew the reservation (the same call admitted it), else in two
  local known = not refused and reserved_hint ~= '' and reserved == reserved_hint
  if known then
    if exposure_change ~= '0' then
      redis.call('HINCRBY', R, RISK.EXPOSURE, exposure_change)
      redis.call('HINCRBY', R, symbol_exposure_field, exposure_change)
    end
  else
    if reserved ~= '0' then
      redis.call('HINCRBY', R, RISK.EXPOSURE, neg(reserved))
      redis.call('HINCRBY', R, symbol_exposure_field, neg(reserved))
    end
    if quote ~= '0' then
      redis.call('HINCRBY', R, RISK.EXPOSURE, quote)
      redis.call('HINCRBY', R, symbol_exposure_field, quote)
    end
  end
  if positive(qty) then
    redis.call('HINCRBY', R, pos_qty_field, qty)
    redis.call('HINCRBY', R, pos_cost_field, quote)
    if not opened and not positive(st[3]) then
      -- an exit-flagged BUY (or a re-entry without reservation) opened a position
      redis.call('HINCRBY', R, RISK.OPEN_POSITIONS, 1)
    end
  elseif opened then
    redis.call('HINCRBY', R, RISK.OPEN_POSITIONS, -1)
  end
elseif sell and positive(sold) then
  if closes then
    redis.call('HDEL', R, pos_qty_field, pos_cost_field)
    redis.call('HINCRBY', R, RISK.OPEN_POSITIONS, -1)
  else
    redis.call('HINCRBY', R, pos_qty_field, neg(sold))
    redis.call('HINCRBY', R, pos_cost_field, neg(cost_out))
  end
  redis.call('HINCRBY', R, RISK.EXPOSURE, neg(cost_out))
  redis.call('HINCRBY', R, symbol_exposure_field, neg(cost_out))
  redis.call('HINCRBY', R, day_field, realized)
  redis.call('HINCRBY', R, RISK.REALIZED_TOTAL, realized)
  local now_st = redis.call('HMGET', R, day_field, RISK.REALIZED_TOTAL, RISK.REALIZED_PEAK)
  local day
  day, total, peak = now_st[1], now_st[2], now_st[3] or '0'
  if cmp(total, peak) > 0 then
    peak = total
    redis.call('HSET', R, RISK.REALIZED_PEAK, peak)
  end
  local lim = redis.call('HMGET', k_risk_limits, LIM.max_daily_loss_quote, LIM.max_drawdown_pct)
  max_dd = lim[2] or ''
  local max_loss = units_of(lim[1])
  if positive(max_loss) and cmp(neg(day), max_loss) >= 0 then
    halt_reason = LIM.max_daily_loss_quote .. ': realized ' .. decimal(day) ..
      ' today, limit ' .. lim[1]
    if redis.call('EXISTS', k_risk_halt) == 0 then
      redis.call('SET', k_risk_halt, halt_reason)
    else
      halt_reason = ''
    end
  end
end

local entry = redis.call('XADD', k_executions, 'MAXLEN', '~', maxlen, '*', 'type',
  report_type, 'data', report)
redis.call('HSET', k_order, REC.STATUS, final_status, REC.REPORT, report, REC.REPORT_ID,
  entry, REC.UPDATED_AT, now)
if retention > 0 then redis.call('EXPIRE', k_order, retention) end
redis.call('SREM', k_active, cid)
if record_status == ST.OPEN then redis.call('SREM', k_open, cid) end
return {'done', final_status, halt_reason, total, peak, max_dd}
