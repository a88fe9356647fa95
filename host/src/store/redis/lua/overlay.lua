-- overlay.lua ↔ kv/backend/overlay.rs: a write buffer over the owner's
-- records. Reads see the buffered writes; nothing reaches Redis until
-- flush, which runs only when the whole request succeeded — Redis has no
-- rollback, so a request that fails simply drops its overlay and leaves no
-- trace.

local sort = table.sort

local overlay = {}

function overlay.new(base)
  -- pending: key → value, or false for a delete; cleared: range deletes (a
  -- list: one request's few, made at the first; the Rust overlay keeps them
  -- merged in a BTreeMap because its group overlay gathers many requests');
  -- seen: what point reads found in Redis (false: absent), so a request
  -- reads each record from Redis once.
  return { base = base, pending = {}, cleared = nil, seen = {} }
end

-- No entries (shared, never written to).
local NONE = {}

local function in_range(k, start, stop)
  return not bytes.lt(k, start) and (stop == nil or bytes.lt(k, stop))
end

local function cleared(o, k)
  if not o.cleared then return false end
  for _, r in ipairs(o.cleared) do
    if in_range(k, r[1], r[2]) then return true end
  end
  return false
end

function overlay.get(o, k)
  local v = o.pending[k]
  if v ~= nil then
    if v == false then return nil end
    return v
  end
  if o.cleared and cleared(o, k) then return nil end
  local s = o.seen[k]
  if s == nil then
    s = backend.get(o.base, k) or false
    o.seen[k] = s
  end
  if s == false then return nil end
  return s
end

function overlay.value_len(o, k)
  local v = overlay.get(o, k)
  if v == nil then return nil end
  return #v
end

-- Buffered entries within [start, stop), in scan order.
local function mine(o, start, stop, reverse)
  local ks = {}
  for k, _ in pairs(o.pending) do
    if in_range(k, start, stop) then ks[#ks + 1] = k end
  end
  if reverse then
    sort(ks, function(a, b) return bytes.lt(b, a) end)
  else
    sort(ks, bytes.lt)
  end
  return ks
end

function overlay.scan(o, start, stop, reverse, visit)
  local ks = mine(o, start, stop, reverse)
  local i = 1
  local before = function(a, b)
    if reverse then return bytes.lt(b, a) end
    return bytes.lt(a, b)
  end
  local go_on = true
  backend.scan(o.base, start, stop, reverse, function(k, v)
    -- Emit buffered entries that come before this base entry.
    while i <= #ks and before(ks[i], k) do
      local mv = o.pending[ks[i]]
      i = i + 1
      if mv ~= false and visit(ks[i - 1], mv) == false then
        go_on = false
        return false
      end
    end
    if i <= #ks and ks[i] == k then
      local mv = o.pending[k]
      i = i + 1
      if mv ~= false then
        go_on = visit(k, mv) ~= false
      end
      return go_on
    end
    if cleared(o, k) then return true end
    go_on = visit(k, v) ~= false
    return go_on
  end)
  if not go_on then return end
  while i <= #ks do
    local mv = o.pending[ks[i]]
    if mv ~= false and visit(ks[i], mv) == false then return end
    i = i + 1
  end
end

function overlay.put(o, k, v)
  o.pending[k] = v
end

function overlay.delete(o, k)
  o.pending[k] = false
end

function overlay.delete_range(o, start, stop)
  for k, _ in pairs(o.pending) do
    if in_range(k, start, stop) then o.pending[k] = nil end
  end
  local c = o.cleared or {}
  c[#c + 1] = { start, stop }
  o.cleared = c
end

-- Read these records from Redis in one round (one HMGET) before the
-- request looks at them.
function overlay.prefetch(o, keys)
  local missing = keys
  -- (A request's first read needs no filtering.)
  if next(o.seen) ~= nil or next(o.pending) ~= nil or o.cleared then
    missing = {}
    for _, k in ipairs(keys) do
      if o.seen[k] == nil and o.pending[k] == nil then missing[#missing + 1] = k end
    end
  end
  local got = backend.get_many(o.base, missing)
  for i, k in ipairs(missing) do o.seen[k] = got[i] or false end
end

-- Apply every buffered write to Redis, in as few commands as possible:
-- range deletes, then one HSET of every put (and one ZADD of the keys that
-- may be new), one HDEL and ZREM of every delete.
function overlay.flush(o)
  for _, r in ipairs(o.cleared or NONE) do
    backend.delete_range(o.base, r[1], r[2])
  end
  -- (`fresh` and `dels` are often empty: made at their first entry.)
  local puts, fresh, dels = {}, NONE, NONE
  for k, v in pairs(o.pending) do
    if v == false then
      if o.seen[k] ~= false then
        if dels == NONE then dels = {} end
        dels[#dels + 1] = k
      end
    else
      puts[#puts + 1] = k
      puts[#puts + 1] = v
      if type(o.seen[k]) ~= 'string' or (o.cleared and cleared(o, k)) then
        if fresh == NONE then fresh = {} end
        fresh[#fresh + 1] = k
      end
    end
  end
  backend.put_many(o.base, puts, fresh)
  backend.delete_many(o.base, dels)
end

return overlay
