-- keyspace.lua ↔ kv/ops/keyspace.rs: what every operation shares — loading
-- a key's meta record (expired keys read as absent), purging a key, writing
-- a new meta with a fresh etag and its expiry index, conditions, scope
-- liveness, ordered listing and delete-prefix. `r` is a reader
-- (backend.reader, or a write context's `c.reader`), `c` a write context,
-- `sk` scope keys.

local sub, char, find = string.sub, string.char, string.find

local keyspace = {}

-- The meta record of `key`, expired or not.
function keyspace.load_any(r, sk, key)
  local b = r:get(sk:meta(key))
  if b == nil then return nil end
  return meta.decode(b)
end

-- The meta record of `key` if it exists and has not expired at `now`.
function keyspace.load(r, sk, key, now)
  local m = keyspace.load_any(r, sk, key)
  if m and meta.expired(m, now) then return nil end
  return m
end

-- For a write: the live meta of `key`; an expired key is purged first.
function keyspace.live(c, sk, key)
  local m = keyspace.load_any(c.reader, sk, key)
  if m and meta.expired(m, c.now) then
    keyspace.purge(c, sk, key, m)
    return nil
  end
  return m
end

-- Error unless `m` is of `kind`.
function keyspace.expect(m, kind)
  if m.kind ~= kind then
    error({ code = 'wrong-type', expected = kind, found = m.kind })
  end
end

-- Delete a key and everything it owns.
function keyspace.purge(c, sk, key, m)
  local meta_key = sk:meta(key)
  if m.expires_at ~= meta.NEVER then
    cx.delete(c, layout.key_expiry(m.expires_at, meta_key))
  end
  cx.delete(c, meta_key)
  local sub
  if m.kind == 'value' then return end
  if m.kind == 'map' then sub = sk:fields(key) else sub = sk:items(key) end
  cx.delete_range(c, sub, bytes.prefix_end(sub))
end

-- Write `new` as the meta of `key` with a fresh etag version, keeping the
-- expiry index in step with `old_expiry`. Returns the new version.
function keyspace.store(c, sk, key, old_expiry, new)
  new.version = cx.next_version(c)
  local meta_key = sk:meta(key)
  old_expiry = old_expiry or meta.NEVER
  if old_expiry ~= new.expires_at then
    if old_expiry ~= meta.NEVER then cx.delete(c, layout.key_expiry(old_expiry, meta_key)) end
    if new.expires_at ~= meta.NEVER then cx.put(c, layout.key_expiry(new.expires_at, meta_key), '') end
  end
  cx.put(c, meta_key, meta.encode(new))
  return new.version
end

-- Parse an etag of this engine: 8 hex digits of nonce, 16 of version.
local function parse_etag(etag)
  if #etag ~= 24 or not find(etag, '^[0-9a-f]+$') then return nil end
  local version = tonumber(sub(etag, 9), 16)
  if not version or version == 0 then return nil end
  return sub(etag, 1, 8), version
end

-- Check a write condition {kind = 'm'|'a'|'e', etag} against the key's
-- live meta.
function keyspace.check_condition(c, cond, m)
  if cond.kind == 'm' then
    local nonce, v = parse_etag(cond.etag)
    if not nonce then error({ code = 'invalid-etag', etag = cond.etag }) end
    local last, own = cx.last_version(c)
    if nonce ~= own then error({ code = 'etag-mismatch' }) end
    if v > last then error({ code = 'invalid-etag', etag = cond.etag }) end
    if not m or m.version ~= v then error({ code = 'etag-mismatch' }) end
  elseif cond.kind == 'a' and m then
    error({ code = 'already-exists' })
  elseif cond.kind == 'e' and not m then
    error({ code = 'not-found' })
  end
end

-- Error (no-such-session) unless the scope is alive at `now`.
function keyspace.ensure_scope(r, scope, now)
  if scope.kind == 's' then keyspace.session_expiry(r, scope.name, scope.id, now) end
end

-- The expiry of a live session, else error no-such-session.
function keyspace.session_expiry(r, instance, id, now)
  local rec = r:get(layout.session_key(instance, id))
  if rec == nil then error({ code = 'no-such-session' }) end
  if #rec < 8 then error({ code = 'internal', msg = 'damaged record (session record); the database may be corrupt' }) end
  local at = sub(rec, 1, 8)
  if bytes.lt(at, now) then error({ code = 'no-such-session' }) end
  return at
end

-- One page of keys of a scope in key order: q = {prefix, start, stop,
-- reverse, after (raw cursor bytes)}. Returns the keys and whether more
-- remain after the last one.
function keyspace.keys(r, sk, q, page, now)
  local base = sk:meta_prefix()
  local lower, upper = base, bytes.prefix_end(base)
  local function tighten_upper(cand)
    if cand and (upper == nil or bytes.lt(cand, upper)) then upper = cand end
  end
  local function raise_lower(cand)
    if bytes.lt(lower, cand) then lower = cand end
  end
  if q.prefix then
    raise_lower(base .. q.prefix)
    tighten_upper(bytes.prefix_end(base .. q.prefix))
  end
  if q.start then raise_lower(base .. q.start) end
  if q.stop then tighten_upper(base .. q.stop) end
  if q.after then
    if q.reverse then
      tighten_upper(base .. q.after)
    else
      raise_lower(base .. q.after .. char(0))
    end
  end
  local keys, more = {}, false
  if upper and not bytes.lt(lower, upper) then return keys, more end
  r:scan(lower, upper, q.reverse, function(k, v)
    if meta.expired(meta.decode(v), now) then return true end
    if #keys == page then
      more = true
      return false
    end
    keys[#keys + 1] = sub(k, #base + 1)
    return true
  end)
  return keys, more
end

-- Visit every live value key starting with `prefix`, in key order, with
-- its version and bytes; visit returns false to stop. Starts after the key
-- `after` if given.
function keyspace.each_live_value(r, sk, prefix, after, now, visit)
  local start = sk:meta(prefix)
  local stop = bytes.prefix_end(start)
  if after then start = sk:meta(after) .. char(0) end
  r:scan(start, stop, false, function(k, v)
    local m = meta.decode(v)
    if m.kind == 'value' and not meta.expired(m, now) then
      return visit(sk:key_of_meta(k), m.version, m.value)
    end
    return true
  end)
end

-- Delete every live key starting with `prefix`; returns how many.
function keyspace.delete_prefix(c, sk, prefix)
  local start = sk:meta(prefix)
  local found = {}
  c.reader:scan(start, bytes.prefix_end(start), false, function(k, v)
    found[#found + 1] = { sk:key_of_meta(k), meta.decode(v) }
    return true
  end)
  local live = 0
  for _, f in ipairs(found) do
    if not meta.expired(f[2], c.now) then live = live + 1 end
    keyspace.purge(c, sk, f[1], f[2])
  end
  return live
end

return keyspace
