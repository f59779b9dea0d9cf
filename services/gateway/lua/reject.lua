-- Record a refusal and publish its terminal report, atomically (one report per intent).
-- Only for an intent that was never admitted: if a record exists (final, or admitted by
-- another instance) nothing is written.
--
-- Keys (k_*) and arguments: REJECT_KEYS and RejectArgs in services/gateway/scripts.py.
-- Returns {'rejected'} | {'exists', status}

local status = redis.call('HGET', k_order, REC.STATUS)
if status then
  return {'exists', status}
end
local entry = redis.call('XADD', k_executions, 'MAXLEN', '~', maxlen, '*', 'type',
  report_type, 'data', report)
redis.call('HSET', k_order, REC.STATUS, ST.REJECTED, REC.CID, cid, REC.INTENT, intent,
  REC.MODE, mode, REC.REASON, reason, REC.REPORT, report, REC.REPORT_ID, entry,
  REC.CREATED_AT, now, REC.UPDATED_AT, now, REC.INSTANCE, instance, REC.ENTRY, entry)
if retention > 0 then redis.call('EXPIRE', k_order, retention) end
return {'rejected'}
