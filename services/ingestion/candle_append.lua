-- Append one closed candle to its list and stream, only if it is newer than the last.
-- Owned by services/ingestion/writer.py; DESIGN "Redis contract": every open time
-- exactly once, in order. Both keys share the symbol's hash tag.
--
-- KEYS[1] candles:{SYMBOL}:INTERVAL   (list, oldest first, capped)
-- KEYS[2] stream:candles:{SYMBOL}:INTERVAL
-- ARGV[1] open time (epoch ms)   ARGV[2] candle JSON (the message's `data`)
-- ARGV[3] list cap               ARGV[4] stream MAXLEN (approximate)
-- ARGV[5] message type (`type` field of the stream entry)
-- Returns {1, open_time} when appended, {0, last_open_time} when refused.
local open_time = tonumber(ARGV[1])
local last_open = nil
local last = redis.call('LINDEX', KEYS[1], -1)
if last then
  last_open = tonumber(string.match(last, '"open_time":(%d+)'))
else
  -- The list is gone but the stream may not be: never re-append what it holds.
  local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if entries[1] then
    local fields = entries[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'data' then
        last_open = tonumber(string.match(fields[i + 1], '"open_time":(%d+)'))
      end
    end
  end
end
if last_open and open_time <= last_open then
  return {0, last_open}
end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'type', ARGV[5], 'data', ARGV[2])
return {1, open_time}
