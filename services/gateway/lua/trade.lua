-- Paper fast path: for each intent of a batch whose outcome is known before admission
-- (a paper fill, expiry or refusal): admit, then refuse or complete; then one XACK for
-- the batch. One atomic call per batch (not per intent): the per-call cost of EVALSHA,
-- argument parsing and the reply, in Redis and in the gateway, is paid once.
--
-- services/gateway/scripts.py puts above this body: admit(K, A), reject(K, A) and
-- finalize(K, A) (the bodies of admit.lua, reject.lua, finalize.lua), K (the keys by
-- name: TRADE_KEYS, and per intent TRADE_ITEM_KEYS set by item_keys(base)), P (the
-- TradeArgs: group, report_type, reason_mark, items), and named_*/array_* converters of the Structs.
-- A stale-epoch refusal is published as a non-final notice and writes no record.
-- Returns per intent {'done', status, halt, realized_total, realized_peak, drawdown limit}
--   | {'rejected', kind, reason} | {'exists', status, acked} | {'conflict'} (a sell whose
--   position changed since its figures were computed: admitted, left for the caller)

local to_ack = {}

local function ack(ids)
  for _, id in ipairs(ids) do to_ack[#to_ack + 1] = id end
end

local function one(i, item)
  item_keys(SHARED_KEYS + ITEM_KEYS * (i - 1))
  local a = admit(K, item.admit)
  if a[1] == 'exists' then
    local st = a[2]
    if FINAL[st] or st == ST.OPEN then
      ack(item.ids)
      return {'exists', st, '1'}
    end
    return {'exists', st, '0'}
  end
  if a[1] == 'reject' then
    local reason = a[3]
    local quoted = string.gsub(cjson.encode(reason), '%%', '%%%%')
    local report = string.gsub(item.template, string.gsub(P.reason_mark, '%p', '%%%0'), quoted)
    local fin = named_FinalizeArgs(item.finalize)
    if a[2] == 'fence' then
      -- a stale-epoch copy is a notice, not the intent's end: no record, not final, so
      -- the adopting runner's re-send under the new epoch is placed normally
      report = string.gsub(report, '"final":true', '"final":false', 1)
      redis.call('XADD', K.executions, 'MAXLEN', '~', fin.maxlen, '*', 'type', P.report_type,
        'data', report)
    else
      local adm = named_AdmitArgs(item.admit)
      reject(K, array_RejectArgs({cid = adm.cid, intent = adm.intent,
        report_type = P.report_type, report = report, now = adm.now, mode = adm.mode,
        instance = adm.instance, reason = reason, maxlen = fin.maxlen,
        retention = fin.retention, entry = item.ids[1]}))
    end
    ack(item.ids)
    return {'rejected', a[2], reason}
  end
  local f = finalize(K, item.finalize)
  -- a sell whose position moved, or (f.err) a figure out of range: nothing written past
  -- the admission; the caller completes it on the two-step path (which raises the error)
  if f.err or f[1] == 'conflict' then return {'conflict'} end
  ack(item.ids)
  f[1] = 'done'
  return f
end

local results = {}
for i, item in ipairs(P.items) do results[i] = one(i, named_TradeItem(item)) end
for start = 1, #to_ack, 1000 do
  redis.call('XACK', K.intents, P.group, unpack(to_ack, start, math.min(start + 999, #to_ack)))
end
return results
