-- Answer a repeated intent whose record is final: publish the stored terminal report
-- again, once per stream entry that carries it. Nothing for the entry that was admitted
-- (its report is the original) nor for a redelivery of an entry already answered.
--
-- Keys (k_*) and arguments: REPUBLISH_KEYS and RepublishArgs in
-- services/gateway/scripts.py (answered_field: the record field marking this entry).
-- Returns 1 when the report was published again, else 0

local rec = redis.call('HMGET', k_order, REC.STATUS, REC.ENTRY, REC.REPORT)
local status, first, report = rec[1], rec[2], rec[3]
if not status or not FINAL[status] or not report or not first or first == '' or first == entry then
  return 0
end
if redis.call('HSETNX', k_order, answered_field, '1') == 0 then return 0 end
redis.call('XADD', k_executions, 'MAXLEN', '~', maxlen, '*', 'type', report_type,
  'data', report)
return 1
