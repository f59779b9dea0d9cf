-- Money in the scripts: integer strings of units of 1e-8 (shared/money.py), never a Lua
-- number (a double: a sum of amounts is wrong by the ninth digit). Changed only with
-- HINCRBY (exact 64-bit integers in Redis); compared here as strings, exactly: sign,
-- then length, then the digits. Values are canonical ('0', '-5', no leading zeros):
-- what HINCRBY stores, what Python's str(int) writes and what units_of returns. A
-- missing hash field reads as false in Lua: every helper takes it (and nil, '') as '0'.

local function cmp(a, b)
  a, b = a or '0', b or '0'
  if a == '' then a = '0' end
  if b == '' then b = '0' end
  local na, nb = string.byte(a, 1) == 45, string.byte(b, 1) == 45  -- '-'
  if na ~= nb then return na and -1 or 1 end
  local c
  if #a ~= #b then
    c = #a < #b and -1 or 1
    if na then c = -c end  -- both negative: the sign is counted in both lengths
    return c
  end
  if a == b then return 0 end
  c = a < b and -1 or 1
  return na and -c or c
end

local function neg(a)
  if not a or a == '' or a == '0' then return '0' end
  if string.byte(a, 1) == 45 then return string.sub(a, 2) end
  return '-' .. a
end

local function positive(a)
  return a and cmp(a, '0') > 0 or false
end

-- A decimal string (a limit the API wrote: '1000', '0.5', '-3.25') as units; places
-- past 1e-8 are dropped. nil for nothing or no number.
local function units_of(text)
  if not text then return nil end
  local sign, int, frac = string.match(text, '^%s*([-+]?)(%d*)%.?(%d*)%s*$')
  if not sign or (int == '' and frac == '') then return nil end
  local digits = string.gsub(int .. string.sub(frac .. string.rep('0', PLACES), 1, PLACES),
    '^0+', '')
  if digits == '' then return '0' end
  return (sign == '-' and '-' or '') .. digits
end

-- Units as a readable decimal string ('150000000' -> '1.50000000').
local function decimal(u)
  if not u or u == '' then u = '0' end
  local sign = ''
  if string.byte(u, 1) == 45 then sign, u = '-', string.sub(u, 2) end
  if #u <= PLACES then u = string.rep('0', PLACES + 1 - #u) .. u end
  return sign .. string.sub(u, 1, #u - PLACES) .. '.' .. string.sub(u, #u - PLACES + 1)
end

-- Whether a stored figure may still change: |v| < FIGURE_LIMIT, so that two changes
-- of at most 1e18 units each (shared/money.py) cannot carry it past 64 bits.
local function in_range(v)
  if not v or v == '' then return true end
  if string.byte(v, 1) == 45 then v = string.sub(v, 2) end
  return cmp(v, FIGURE_LIMIT) < 0
end
