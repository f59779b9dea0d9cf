-- Move an order record forward by compare-and-set: the transition happens only if the
-- record is still in the status AND at the revision the caller read, so a handler acting
-- on a stale read (another loop, another gateway, an older batch) can never act; a
-- final record is never touched. Every successful transition increments `rev`.
-- Moving to OPEN also follows the order (open set) and publishes its non-final report.
--
-- Keys (k_*) and arguments: TRANSITION_KEYS and TransitionArgs in
-- services/gateway/scripts.py (any_status: from any status that is not final).
-- Returns {'ok', rev} | {'final', status} | {'stale', status, rev} | {'missing'}

local cur = redis.call('HMGET', k_order, REC.STATUS, REC.REV)
local status, rev = cur[1], cur[2] or '0'
if not status then return {'missing'} end
if FINAL[status] then return {'final', status} end
if not any_status and (status ~= expected_status or rev ~= expected_rev) then
  return {'stale', status, rev}
end
local next_rev = tostring((tonumber(rev) or 0) + 1)  -- a counter, not money
local args = {REC.STATUS, new_status, REC.REV, next_rev, REC.UPDATED_AT, now}
for _, f in ipairs(fields) do
  args[#args + 1] = f[1]
  args[#args + 1] = f[2]
end
redis.call('HSET', k_order, unpack(args))
if new_status == ST.OPEN then
  redis.call('SADD', k_open, cid)
  if report ~= '' then
    redis.call('XADD', k_executions, 'MAXLEN', '~', maxlen, '*', 'type', report_type,
      'data', report)
  end
end
return {'ok', next_rev}
