-- Record a refusal and publish its terminal report, atomically (one report per intent).
-- Only for an intent that was never admitted: if a record exists (final, or admitted by
-- another instance) nothing is written.
--
-- KEYS: 1 order:{cid}  2 stream:executions
-- ARGV: 1 cid  2 intent json  3 report type  4 report json  5 now ms  6 mode  7 instance
--       8 reason  9 executions maxlen  10 record retention s (0 = keep)  11 entry id
-- Returns {'rejected'} | {'exists', status}

local status = redis.call('HGET', KEYS[1], 'status')
if status then
  return {'exists', status}
end
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[9], '*', 'type', ARGV[3],
  'data', ARGV[4])
redis.call('HSET', KEYS[1], 'status', 'REJECTED', 'cid', ARGV[1], 'intent', ARGV[2],
  'mode', ARGV[6], 'reason', ARGV[8], 'report', ARGV[4], 'report_id', entry,
  'created_at', ARGV[5], 'updated_at', ARGV[5], 'instance', ARGV[7], 'entry', ARGV[11] or '')
local retention = tonumber(ARGV[10] or '0') or 0
if retention > 0 then redis.call('EXPIRE', KEYS[1], retention) end
return {'rejected'}
