-- Move an order record forward by compare-and-set: the transition happens only if the
-- record is still in the status AND at the revision the caller read, so a handler acting
-- on a stale read (another loop, another gateway, an older batch) can never act; a
-- final record is never touched. Every successful transition increments `rev`.
-- Moving to OPEN also follows the order (open set) and publishes its non-final report.
--
-- KEYS: 1 order:{cid}  (OPEN only: 2 orders:open:{mode}  3 stream:executions)
-- ARGV: 1 expected status ('*' = any status that is not final)  2 expected rev
--       3 new status  4 now ms  5 cid  6 report type  7 report json ('' = none)
--       8 executions maxlen  then field, value pairs from 9
-- Returns {'ok', rev} | {'final', status} | {'stale', status, rev} | {'missing'}

local FINAL = {FILLED = true, CANCELED = true, EXPIRED = true, REJECTED = true}
local cur = redis.call('HMGET', KEYS[1], 'status', 'rev')
local status, rev = cur[1], cur[2] or '0'
if not status then return {'missing'} end
if FINAL[status] then return {'final', status} end
if ARGV[1] ~= '*' and (status ~= ARGV[1] or rev ~= ARGV[2]) then
  return {'stale', status, rev}
end
local next_rev = tostring((tonumber(rev) or 0) + 1)
local args = {'status', ARGV[3], 'rev', next_rev, 'updated_at', ARGV[4]}
for i = 9, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
if ARGV[3] == 'OPEN' then
  redis.call('SADD', KEYS[2], ARGV[5])
  if ARGV[7] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'type', ARGV[6], 'data', ARGV[7])
  end
end
return {'ok', next_rev}
