-- Paper fast path: admit, then refuse or complete, then XACK -- one atomic call per
-- intent whose outcome is known before admission (a paper fill, expiry or refusal).
-- The bodies of admit.lua, reject.lua and finalize.lua are prepended by store.py as
-- local functions admit(KEYS, ARGV), reject(KEYS, ARGV), finalize(KEYS, ARGV).
--
-- KEYS: 1-8 admit.lua's keys  9-16 finalize.lua's keys  17 stream:order-intents
-- ARGV: 1 one JSON array of strings (cheaper to send than ~40 arguments):
--       [group, [entry ids], refusal report template (reason "@@REASON@@"), report type,
--        [admit.lua's 18 args], [finalize.lua's args]]
-- Returns {'done', status, halt} | {'rejected', kind, reason} | {'exists', status, acked}

local p = cjson.decode(ARGV[1])
local group, ids, template, report_type, aargv, fargv = p[1], p[2], p[3], p[4], p[5], p[6]
local E = #ids
local akeys, fkeys = {}, {}
for i = 1, 8 do akeys[i] = KEYS[i]; fkeys[i] = KEYS[8 + i] end

local function ack()
  if E > 0 then redis.call('XACK', KEYS[17], group, unpack(ids)) end
end

local a = admit(akeys, aargv)
if a[1] == 'exists' then
  local st = a[2]
  if st == 'FILLED' or st == 'CANCELED' or st == 'EXPIRED' or st == 'REJECTED' or st == 'OPEN' then
    ack()
    return {'exists', st, '1'}
  end
  return {'exists', st, '0'}
end
if a[1] == 'reject' then
  local reason = a[3]
  local quoted = string.gsub(cjson.encode(reason), '%%', '%%%%')
  local report = string.gsub(template, '"@@REASON@@"', quoted)
  reject({akeys[1], fkeys[5]}, {aargv[1], aargv[2], report_type, report, aargv[14], aargv[15],
    aargv[16], reason, fargv[11]})
  ack()
  return {'rejected', a[2], reason}
end
local f = finalize(fkeys, fargv)
ack()
return {'done', f[2] or '', f[3] or ''}
