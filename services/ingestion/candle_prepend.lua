-- Put older closed candles in front of a candle list (a backfill into the past, for the
-- warm-up bots declare). Owned by services/ingestion/depth.py; the list stays in order
-- and gap-free: the page goes in only while the list's oldest candle is still the one
-- the page was fetched before. The stream is not touched (it carries new candles only).
--
-- KEYS[1] candles:{SYMBOL}:INTERVAL   (list, oldest first, capped)
-- ARGV[1] open time of the list's oldest candle when the page was asked for
-- ARGV[2] list cap               ARGV[3..] candle JSON, oldest first
-- Returns {1, length} when prepended, {0, length} when the list had changed.
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then
  return {0, 0}
end
local head_open = tonumber(string.match(head, '"open_time":(%d+)'))
if head_open ~= tonumber(ARGV[1]) then
  return {0, redis.call('LLEN', KEYS[1])}
end
for i = #ARGV, 3, -1 do
  redis.call('LPUSH', KEYS[1], ARGV[i])
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return {1, redis.call('LLEN', KEYS[1])}
