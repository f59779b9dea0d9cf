-- Answer a repeated intent whose record is final: publish the stored terminal report
-- again, once per stream entry that carries it. Nothing for the entry that was admitted
-- (its report is the original) nor for a redelivery of an entry already answered.
--
-- KEYS: 1 order:{cid}  2 stream:executions
-- ARGV: 1 entry id  2 report type  3 executions maxlen
-- Returns 1 when the report was published again, else 0

local rec = redis.call('HMGET', KEYS[1], 'status', 'entry', 'report')
local status, entry, report = rec[1], rec[2], rec[3]
local FINAL = {FILLED = true, CANCELED = true, EXPIRED = true, REJECTED = true}
if not status or not FINAL[status] or not report or not entry or entry == '' or entry == ARGV[1] then
  return 0
end
if redis.call('HSETNX', KEYS[1], 'answered:' .. ARGV[1], '1') == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'type', ARGV[2], 'data', report)
return 1
