-- meta.lua ↔ kv/meta.rs: the meta record of a key — kind, etag version,
-- expiry, and for a value the bytes, for a map its field count, for a list
-- the seq range of its items.
--   tag (1) | version (u64 BE) | expires_at (u64 BE) | body
-- A meta is a table {kind = 'value'|'map'|'list', version, expires_at,
-- value = bytes | len = n | head = h, tail = t}. Times (expires_at, now) stay
-- 8-byte big-endian strings: a TTL may reach i64::MAX ms, beyond what a
-- Lua number holds exactly, and byte order is numeric order.

local sub, byte, char, rep = string.sub, string.byte, string.char, string.rep

local meta = {}

local TAGS = { value = char(0), map = char(1), list = char(2) }

-- "Never" as a time.
meta.NEVER = rep(char(0), 8)

-- Has it expired at `now`? (At the exact millisecond it still lives.)
function meta.expired(m, now)
  return m.expires_at ~= meta.NEVER and bytes.lt(m.expires_at, now)
end

-- (One concatenation per record: each makes a new string.)
function meta.encode(m)
  local kind = m.kind
  if kind == 'value' then
    return TAGS.value .. bytes.be_u64(m.version) .. m.expires_at .. m.value
  elseif kind == 'map' then
    return TAGS.map .. bytes.be_u64(m.version) .. m.expires_at .. bytes.be_u64(m.len)
  end
  return TAGS[kind] .. bytes.be_u64(m.version) .. m.expires_at .. bytes.be_i64(m.head) .. bytes.be_i64(m.tail)
end

local function corrupt(what)
  error({ code = 'internal', msg = 'damaged record (' .. what .. '); the database may be corrupt' })
end

function meta.decode(b)
  local version = bytes.read_u64(b, 2)
  if not version or #b < 17 then corrupt('meta record') end
  local expires_at = sub(b, 10, 17)
  local tag = byte(b, 1)
  local m = { version = version, expires_at = expires_at }
  if tag == 0 then
    m.kind, m.value = 'value', sub(b, 18)
  elseif tag == 1 then
    m.kind, m.len = 'map', bytes.read_u64(b, 18)
    if not m.len then corrupt('meta record') end
  elseif tag == 2 then
    m.kind, m.head, m.tail = 'list', bytes.read_i64(b, 18), bytes.read_i64(b, 26)
    if not m.head or not m.tail then corrupt('meta record') end
  else
    corrupt('meta record')
  end
  return m
end

function meta.clone(m)
  local c = {}
  for k, v in pairs(m) do c[k] = v end
  return c
end

return meta
