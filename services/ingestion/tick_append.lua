-- Append a symbol's price updates of one batch to its tick stream and set its price.
-- Owned by services/ingestion/writer.py. Both keys share the symbol's hash tag.
--
-- KEYS[1] price:{SYMBOL}   KEYS[2] stream:ticks:{SYMBOL}
-- ARGV[1] stream MAXLEN (approximate)   ARGV[2] message type   ARGV[3] latest price
-- ARGV[4..n] tick JSON, oldest first
for i = 4, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[2], 'data', ARGV[i])
end
redis.call('SET', KEYS[1], ARGV[3])
return #ARGV - 3
