-- Paper fast path: for each intent of a batch whose outcome is known before admission
-- (a paper fill, expiry or refusal): admit, then refuse or complete; then one XACK for
-- the batch. One atomic call per batch (not per intent): the per-call cost of EVALSHA,
-- argument parsing and the reply, in Redis and in the gateway, is paid once.
-- The bodies of admit.lua, reject.lua and finalize.lua are prepended by store.py as
-- local functions admit(KEYS, ARGV), reject(KEYS, ARGV), finalize(KEYS, ARGV).
--
-- KEYS: 1 risk:limits  2 risk:halt  3 risk:state  4 fleet rate counter  5 active set
--       6 stream:executions  7 open set  8 balances  9 stream:order-intents
--       then per intent i (from 10 + 3 * (i - 1)): order:{cid}, bot:{id}, bot rate counter
-- ARGV: 1 one MessagePack array (cheaper to send than ~40 arguments per intent, and
--       cheaper than JSON to encode and decode: the report JSON inside needs no escaping):
--       [group, report type, [per intent: [[entry ids], refusal report template
--        (reason "@@REASON@@"), [admit.lua's 19 args], [finalize.lua's args]]]]
--   (a stale-epoch refusal is published as a non-final notice and writes no record)
-- Returns per intent {'done', status, halt} | {'rejected', kind, reason}
--   | {'exists', status, acked}

local p = cmsgpack.unpack(ARGV[1])
local group, report_type, items = p[1], p[2], p[3]
local to_ack = {}

local function ack(ids)
  for _, id in ipairs(ids) do to_ack[#to_ack + 1] = id end
end

local function one(i, item)
  local ids, template, aargv, fargv = item[1], item[2], item[3], item[4]
  local base = 9 + 3 * (i - 1)
  local order, bot, bot_rate = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  local akeys = {order, bot, KEYS[1], KEYS[2], KEYS[3], bot_rate, KEYS[4], KEYS[5]}
  local a = admit(akeys, aargv)
  if a[1] == 'exists' then
    local st = a[2]
    if st == 'FILLED' or st == 'CANCELED' or st == 'EXPIRED' or st == 'REJECTED' or st == 'OPEN' then
      ack(ids)
      return {'exists', st, '1'}
    end
    return {'exists', st, '0'}
  end
  if a[1] == 'reject' then
    local reason = a[3]
    local quoted = string.gsub(cjson.encode(reason), '%%', '%%%%')
    local report = string.gsub(template, '"@@REASON@@"', quoted)
    if a[2] == 'fence' then
      -- a stale-epoch copy is a notice, not the intent's end: no record, not final, so
      -- the adopting runner's re-send under the new epoch is placed normally
      report = string.gsub(report, '"final":true', '"final":false', 1)
      redis.call('XADD', KEYS[6], 'MAXLEN', '~', fargv[11], '*', 'type', report_type, 'data', report)
    else
      reject({order, KEYS[6]}, {aargv[1], aargv[2], report_type, report, aargv[14], aargv[15],
        aargv[16], reason, fargv[11], fargv[18 + 2 * tonumber(fargv[16])], ids[1]})
    end
    ack(ids)
    return {'rejected', a[2], reason}
  end
  local f = finalize({order, KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[5], KEYS[7], KEYS[8]},
    fargv)
  ack(ids)
  return {'done', f[2] or '', f[3] or ''}
end

local results = {}
for i, item in ipairs(items) do results[i] = one(i, item) end
for start = 1, #to_ack, 1000 do
  redis.call('XACK', KEYS[9], group, unpack(to_ack, start, math.min(start + 999, #to_ack)))
end
return results
