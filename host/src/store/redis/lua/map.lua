-- map.lua ↔ kv/ops/map.rs: map (Redis hash) operations — one record per
-- field under the key's field prefix, the field count in the meta record.

local sub, char, max = string.sub, string.char, math.max

local map = {}

local function map_len(m)
  if m.kind == 'map' then return m.len end
  return 0
end

local function writable(old)
  if not old then
    return { kind = 'map', version = 0, expires_at = meta.NEVER, len = 0 }
  end
  keyspace.expect(old, 'map')
  return meta.clone(old)
end

-- HSET: entries {{field, value}, ...}. Returns fields added, version.
function map.set(c, sk, key, old, entries)
  local m = writable(old)
  local prefix = sk:fields(key)
  local added = 0
  local r = c.reader
  for _, e in ipairs(entries) do
    local fk = layout.field_key(prefix, e[1])
    if r:value_len(fk) == nil then added = added + 1 end
    cx.put(c, fk, e[2])
  end
  m.len = map_len(m) + added
  local v = keyspace.store(c, sk, key, old and old.expires_at, m)
  return added, v
end

-- HDEL: returns fields removed, version after (nil if the map is gone).
function map.delete(c, sk, key, old, fields)
  if not old then return 0, nil end
  keyspace.expect(old, 'map')
  local prefix = sk:fields(key)
  local removed = 0
  local r = c.reader
  for _, f in ipairs(fields) do
    local fk = layout.field_key(prefix, f)
    if r:value_len(fk) ~= nil then
      cx.delete(c, fk)
      removed = removed + 1
    end
  end
  if removed == 0 then return 0, old.version end
  local len = max(map_len(old) - removed, 0)
  if len == 0 then
    keyspace.purge(c, sk, key, old)
    return removed, nil
  end
  local m = meta.clone(old)
  m.len = len
  return removed, keyspace.store(c, sk, key, old.expires_at, m)
end

-- HINCRBY: returns the new value (text), version.
function map.increment(c, sk, key, old, field, delta)
  local m = writable(old)
  local fk = layout.field_key(sk:fields(key), field)
  local b = c.reader:get(fk)
  local current, new_field = '0', true
  if b ~= nil then current, new_field = b, false end
  local n = value.add(current, delta)
  cx.put(c, fk, n)
  if new_field then m.len = map_len(m) + 1 end
  local v = keyspace.store(c, sk, key, old and old.expires_at, m)
  return n, v
end

-- The live meta of a map key (error wrong-type for others).
function map.load_map(r, sk, key, now)
  local m = keyspace.load(r, sk, key, now)
  if m then keyspace.expect(m, 'map') end
  return m
end

-- (HMGET and HLEN are point reads, run in Rust: kv/ops/map.rs get_many and
-- length over one HMGET, store/redis/read.rs.)

-- Up to `count` fields (with values) after field `after` (from the first if
-- nil), in field order, and the last field examined if more remain. The
-- page also ends before a field that would take its fields and values over
-- `max_bytes` (it holds one field at least).
function map.fields(r, sk, key, after, count, max_bytes, now)
  local entries = {}
  if not map.load_map(r, sk, key, now) then return entries, nil end
  local prefix = sk:fields(key)
  local lower = prefix
  if after then lower = layout.field_key(prefix, after) .. char(0) end
  local examined, last, more, size = 0, nil, false, 0
  r:scan(lower, bytes.prefix_end(prefix), false, function(k, v)
    -- The first field is taken whatever its size: a page is never empty
    -- while fields remain.
    size = size + #k - #prefix + #v
    if examined == count or (examined > 0 and size > max_bytes) then
      more = true
      return false
    end
    examined = examined + 1
    last = sub(k, #prefix + 1)
    entries[#entries + 1] = { last, v }
    return true
  end)
  if more then return entries, last end
  return entries, nil
end

return map
