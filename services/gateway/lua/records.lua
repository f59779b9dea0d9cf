-- Read what the hot path needs before admission, in one call instead of one HGETALL
-- per intent: each order record's status (final and OPEN records: only the status; a
-- record still in progress: every field, for the executor) and the symbols' prices.
-- Read-only.
--
-- KEYS: the order:{cid} keys, then the price:{SYMBOL} keys
-- ARGV: 1 number of order keys
-- Returns {records, prices}: records[i] is '' (no record), {status} (OPEN),
-- {status, entry} (final: the admitted stream entry) or the flat
-- HGETALL of the record; prices[j] is the price or false

local n = tonumber(ARGV[1])
local DONE = {FILLED = true, CANCELED = true, EXPIRED = true, REJECTED = true, OPEN = true}
local records = {}
for i = 1, n do
  local status = redis.call('HGET', KEYS[i], 'status')
  if not status then
    records[i] = ''
  elseif status == 'OPEN' then
    records[i] = {'status', status}
  elseif DONE[status] then
    records[i] = {'status', status, 'entry', redis.call('HGET', KEYS[i], 'entry') or ''}
  else
    records[i] = redis.call('HGETALL', KEYS[i])
  end
end
local prices = {}
if #KEYS > n then prices = redis.call('MGET', unpack(KEYS, n + 1, #KEYS)) end
return {records, prices}
