-- value.lua ↔ kv/ops/value.rs: value and whole-key operations — set,
-- delete, increment (counters), expire, persist. (Reading a value is a
-- point read, done in Rust: store/redis/read.rs.)
--
-- Counters are i64 stored as canonical decimal text. Lua 5.1 numbers are
-- doubles, exact only to 2^53, so increments are done on the decimal text
-- itself (exact over the whole i64 range, with the same overflow rule).

local sub, byte, char, find, gsub, reverse, floor, concat = string.sub, string.byte, string.char, string.find, string.gsub, string.reverse, math.floor, table.concat

local value = {}

local I64_MAX = '9223372036854775807'
local I64_MIN_MAGNITUDE = '9223372036854775808'

-- Compare two magnitudes (digit strings without leading zeros).
local function mag_cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return bytes.lt(a, b) and -1 or 1 -- equal lengths of digits: byte order is numeric order
end

local function mag_add(a, b)
  local out, carry = {}, 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = carry + (i > 0 and byte(a, i) - 48 or 0) + (j > 0 and byte(b, j) - 48 or 0)
    out[#out + 1] = char(48 + s % 10)
    carry = floor(s / 10)
    i, j = i - 1, j - 1
  end
  return reverse(concat(out))
end

-- a - b for magnitudes with a >= b.
local function mag_sub(a, b)
  local out, borrow = {}, 0
  local i, j = #a, #b
  while i > 0 do
    local s = byte(a, i) - 48 - borrow - (j > 0 and byte(b, j) - 48 or 0)
    if s < 0 then s, borrow = s + 10, 1 else borrow = 0 end
    out[#out + 1] = char(48 + s)
    i, j = i - 1, j - 1
  end
  local r = gsub(reverse(concat(out)), '^0+', '')
  if r == '' then r = '0' end
  return r
end

-- Parse a stored counter: the canonical decimal text of an i64, as
-- (negative, magnitude); error not-an-integer otherwise.
function value.parse_counter(b)
  local neg, mag = false, b
  if sub(b, 1, 1) == '-' then neg, mag = true, sub(b, 2) end
  local canonical = mag == '0' and not neg or find(mag, '^[1-9][0-9]*$') ~= nil
  if not canonical or #mag > 19 then error({ code = 'not-an-integer' }) end
  if mag_cmp(mag, neg and I64_MIN_MAGNITUDE or I64_MAX) > 0 then error({ code = 'not-an-integer' }) end
  return neg, mag
end

-- a + d as canonical decimal text, or error overflow outside the i64 range.
function value.add(a, d)
  local an, am = value.parse_counter(a)
  local dn, dm = value.parse_counter(d)
  local neg, mag
  if an == dn then
    neg, mag = an, mag_add(am, dm)
  elseif mag_cmp(am, dm) >= 0 then
    neg, mag = an, mag_sub(am, dm)
  else
    neg, mag = dn, mag_sub(dm, am)
  end
  if mag == '0' then return '0' end
  if mag_cmp(mag, neg and I64_MIN_MAGNITUDE or I64_MAX) > 0 then error({ code = 'overflow' }) end
  return (neg and '-' or '') .. mag
end

-- SET: overwrite (any old type), clear or set the TTL. `expires_at` was
-- computed by the caller (meta.NEVER = none). Returns the version.
function value.set(c, sk, key, old, v, expires_at)
  local old_expiry, m = nil, nil
  if old and old.kind ~= 'value' then
    keyspace.purge(c, sk, key, old)
  elseif old then
    -- `old` is this request's own decoded copy: it becomes the new meta.
    old_expiry, m = old.expires_at, old
    m.expires_at, m.value = expires_at, v
  end
  m = m or { kind = 'value', version = 0, expires_at = expires_at, value = v }
  return keyspace.store(c, sk, key, old_expiry, m)
end

-- INCRBY: a missing key counts as 0; keeps the TTL. Returns (new value as
-- text, version).
function value.increment(c, sk, key, old, delta)
  local current, expires_at = '0', meta.NEVER
  if old then
    if old.kind ~= 'value' then
      error({ code = 'wrong-type', expected = 'value', found = old.kind })
    end
    current, expires_at = old.value, old.expires_at
  end
  local n = value.add(current, delta)
  local m = { kind = 'value', version = 0, expires_at = expires_at, value = n }
  local v = keyspace.store(c, sk, key, old and old.expires_at, m)
  return n, v
end

-- EXPIRE with NX/XX/GT/LT at time `at` (8 bytes BE, computed and checked by
-- the caller; a time before 1970 comes as 0); `delete` (seconds <= 0)
-- deletes. Returns whether it applied and the version after.
function value.expire(c, sk, key, old, delete, at, mode)
  if not old then return false, nil end
  local cur = old.expires_at
  local never = cur == meta.NEVER
  local applies
  if mode == 'always' then applies = true
  elseif mode == 'nx' then applies = never
  elseif mode == 'xx' then applies = not never
  elseif mode == 'gt' then applies = not never and bytes.lt(cur, at)
  else applies = never or bytes.lt(at, cur) end
  if not applies then return false, old.version end
  if delete then
    keyspace.purge(c, sk, key, old)
    return true, nil
  end
  local new = meta.clone(old)
  new.expires_at = at
  return true, keyspace.store(c, sk, key, cur, new)
end

-- PERSIST: drop the TTL. Returns whether there was one and the version.
function value.persist(c, sk, key, old)
  if old and old.expires_at ~= meta.NEVER then
    local new = meta.clone(old)
    new.expires_at = meta.NEVER
    return true, keyspace.store(c, sk, key, old.expires_at, new)
  end
  return false, old and old.version
end

-- (GET is a point read, run in Rust: kv/ops/value.rs get_value over one
-- HMGET, store/redis/read.rs.)

return value
