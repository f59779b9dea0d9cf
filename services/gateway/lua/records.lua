-- Read what the hot path needs before admission, in one call instead of one HGETALL
-- per intent: each order record's status (final and OPEN records: only the status; a
-- record still in progress: every field, for the executor), the symbols' prices and
-- the positions the batch's sells will change (their figures are computed in Python).
-- Read-only.
--
-- KEYS: the order:{cid} keys, then the price:{SYMBOL} keys, then risk:state
-- ARGV: 1 RecordsArgs (services/gateway/scripts.py) as MessagePack
-- Returns {records, prices, positions}: records[i] is '' (no record), {status} (OPEN),
-- {status, entry} (final: the admitted stream entry) or the flat HGETALL of the record; prices[j] is the price or false; positions[k] the value
-- of the k-th risk:state field asked for, or false

local A = cmsgpack.unpack(ARGV[1])
local a = named_RecordsArgs(A)
local records = {}
for i = 1, a.orders do
  local status = redis.call('HGET', KEYS[i], REC.STATUS)
  if not status then
    records[i] = ''
  elseif status == ST.OPEN then
    records[i] = {REC.STATUS, status}
  elseif FINAL[status] then  -- and the admitted stream entry (repeats get the report again)
    records[i] = {REC.STATUS, status, REC.ENTRY, redis.call('HGET', KEYS[i], REC.ENTRY) or ''}
  else
    records[i] = redis.call('HGETALL', KEYS[i])
  end
end
local prices = {}
if a.prices > 0 then prices = redis.call('MGET', unpack(KEYS, a.orders + 1, a.orders + a.prices)) end
local positions = {}
if #a.fields > 0 then
  positions = redis.call('HMGET', KEYS[a.orders + a.prices + 1], unpack(a.fields))
end
return {records, prices, positions}
