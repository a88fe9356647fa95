-- watch.lua ↔ kv/watch.rs: watchers — registrations, capturing the value
-- changes of watched scopes inside a write request, and each watcher's
-- bounded change queue, written with the change (same records as the kv
-- engine). One addition: a queue lease (`pending` takes it), because
-- several hosts may share this store.

local sub, byte, char, max, concat = string.sub, string.byte, string.char, math.max, table.concat

local watch = {}

local function decode_names(b)
  local out, at = {}, 1
  while at <= #b do
    local n = byte(b, at) * 256 + byte(b, at + 1)
    out[#out + 1] = sub(b, at + 2, at + 1 + n)
    at = at + 2 + n
  end
  return out
end

local function encode_names(names)
  local parts = {}
  for i, n in ipairs(names) do parts[i] = bytes.lp16(n) end
  return concat(parts)
end

-- The watchers of a watch prefix.
local function watchers(r, wp)
  local b = r:get(layout.watchers_key(wp))
  if not b then return {} end
  return decode_names(b)
end

-- The changes of one write request (Capture).
function watch.capture(origin)
  -- watchers (watch prefix → its watchers), changes and index (meta key →
  -- its change) are made when first needed: most writes have no watchers.
  return { origin = origin, meta_only = false }
end

-- Has the watch prefix `wp` any watchers?
local function watched(cap, r, wp)
  local known = cap.watchers
  if not known then
    known = {}
    cap.watchers = known
  end
  local w = known[wp]
  if w == nil then
    w = watchers(r, wp)
    known[wp] = w
  end
  return #w > 0
end

-- value: the new bytes, or false (no longer a value).
local function note(cap, meta_key, scope_len, value)
  if not cap.changes then cap.changes, cap.index = {}, {} end
  local i = cap.index[meta_key]
  if i then
    cap.changes[i][3] = value
  else
    cap.changes[#cap.changes + 1] = { meta_key, scope_len, value }
    cap.index[meta_key] = #cap.changes
  end
end

-- The bytes of a value's meta record (Meta::peek), nil for a map or list.
local function value_of(b)
  if not b or byte(b, 1) ~= 0 then return nil end
  return sub(b, 18)
end

-- A meta record is about to be written (`new` = its bytes) or deleted
-- (nil); `r` still shows the old record.
function watch.meta_write(cap, r, key, new)
  -- (nil for a record that is no meta record)
  local wp = layout.watch_prefix_of_meta(key)
  if not wp or not watched(cap, r, wp) then return end
  local scope_len = layout.meta_scope_len(key)
  local a, b = value_of(r:get(key)), value_of(new)
  if b ~= nil then
    -- Expiry changes of a live value change no value.
    if not (cap.meta_only and a ~= nil and a == b) then note(cap, key, scope_len, b) end
  elseif a ~= nil then
    note(cap, key, scope_len, false)
  end
end

-- Every record in [start, stop) is about to be deleted.
function watch.range_delete(cap, r, start, stop)
  local doomed = {}
  r:scan(start, stop, false, function(k, v)
    local scope_len = layout.meta_scope_len(k)
    if scope_len and value_of(v) ~= nil and watched(cap, r, layout.watch_prefix_of_meta(k)) then
      doomed[#doomed + 1] = { k, scope_len }
    end
    return true
  end)
  for _, d in ipairs(doomed) do note(cap, d[1], d[2], false) end
end

-- Queue entry: lp16 scope prefix, lp32 key, 1 + value (a set) or 0 (a delete).
local function encode_entry(scope_prefix, key, value)
  local tail = char(0)
  if value then tail = char(1) .. value end
  return bytes.lp16(scope_prefix) .. bytes.lp32(key) .. tail
end

-- A queue head: next seq, length, dropped so far, bytes of its entries
-- (0 in a head written before that count).
local function read_head(r, key)
  local b = r:get(key)
  if not b then return { next = 1, len = 0, dropped = 0, bytes = 0 } end
  local h = { next = bytes.read_u64(b, 1), len = bytes.read_u64(b, 9), dropped = bytes.read_u64(b, 17),
    bytes = bytes.read_u64(b, 25) or 0 }
  if not (h.next and h.len and h.dropped) then
    error({ code = 'internal', msg = 'damaged record (change queue head); the database may be corrupt' })
  end
  return h
end

local function write_head(c, key, h)
  cx.put(c, key, bytes.be_u64(h.next) .. bytes.be_u64(h.len) .. bytes.be_u64(h.dropped) .. bytes.be_u64(h.bytes))
end

-- The first `limit` entries of a queue: {record key, seq, bytes}.
local function first_entries(r, prefix, limit)
  local out = {}
  r:scan(prefix, bytes.prefix_end(prefix), false, function(k, v)
    out[#out + 1] = { k, bytes.read_u64(k, #prefix + 1), v }
    return #out < limit
  end)
  return out
end

-- Queue the request's changes for their watchers (called once, when the
-- request's ops succeeded).
function watch.flush(c, cap)
  if not cap.changes then return end
  local bound = max(c.limits.watch_queue or 1, 1)
  for _, ch in ipairs(cap.changes) do
    local meta_key, scope_len, value = ch[1], ch[2], ch[3]
    local scope_prefix = sub(meta_key, 1, scope_len)
    local owner = layout.owner_of(meta_key)
    local entry = encode_entry(scope_prefix, sub(meta_key, scope_len + 2), value)
    for _, w in ipairs(cap.watchers[layout.watch_prefix_of(scope_prefix)] or {}) do
      if w ~= cap.origin then
        local head_key = layout.queue_head_key(owner, w)
        local h = read_head(c.reader, head_key)
        cx.put(c, layout.queue_key(owner, w, h.next), entry)
        h.next = h.next + 1
        h.len = h.len + 1
        h.bytes = h.bytes + #entry
        -- Past the bounds (entries, and the bytes the owner may store) the
        -- oldest go, found by seq (a queue is its seqs next - len .. next):
        -- no scan over this request's own deletes.
        local max_bytes = c.limits.instance_quota
        if layout.owner_is_account(owner) then max_bytes = c.limits.account_quota end
        while h.len > bound or (h.len > 1 and h.bytes > max_bytes) do
          local oldest = layout.queue_key(owner, w, h.next - h.len)
          local v = c.reader:get(oldest)
          cx.delete(c, oldest)
          h.len = h.len - 1
          h.bytes = max(h.bytes - (v and #v or 0), 0)
          h.dropped = h.dropped + 1
        end
        write_head(c, head_key, h)
      end
    end
  end
end

-- Record what `watcher` watches now (`targets`: its encoding, opaque here);
-- returns what it watched before (set_watching).
function watch.set_watching(c, watcher, targets)
  local key = layout.watching_key(watcher)
  local old = c.reader:get(key) or ''
  if targets == '' then cx.delete(c, key) else cx.put(c, key, targets) end
  return old
end

-- At this owner, register `watcher` for the watch prefixes `wanted` and
-- unregister it from `unwanted`; with nothing wanted, its queue here goes
-- too (set_owner).
function watch.set_owner(c, watcher, owner, wanted, unwanted)
  local function update(prefix, add)
    local key = layout.watchers_key(prefix)
    local names = {}
    for _, n in ipairs(watchers(c.reader, prefix)) do
      if n ~= watcher then names[#names + 1] = n end
    end
    if add then names[#names + 1] = watcher end
    if #names == 0 then cx.delete(c, key) else cx.put(c, key, encode_names(names)) end
  end
  for _, p in ipairs(wanted) do update(p, true) end
  for _, p in ipairs(unwanted) do update(p, false) end
  if #wanted == 0 then
    local prefix = layout.queue_prefix(owner, watcher)
    cx.delete_range(c, prefix, bytes.prefix_end(prefix))
    -- The head stays with its next seq (watch.rs `set_owner`, the same).
    local head_key = layout.queue_head_key(owner, watcher)
    local h = read_head(c.reader, head_key)
    if h.next > 1 then write_head(c, head_key, { next = h.next, len = 0, dropped = 0, bytes = 0 }) end
    cx.delete(c, layout.queue_lease_key(owner, watcher))
  end
end

-- Take (or renew) the lease of a queue for `holder` until `now` + `ms`;
-- false if another holder's lease is still live.
local function lease(c, owner, watcher, holder, now, ms)
  local key = layout.queue_lease_key(owner, watcher)
  local b = c.reader:get(key)
  if b then
    local until_ = sub(b, 1, 8)
    if sub(b, 9) ~= holder and not bytes.lt(until_, now) then return false end
  end
  local t = bytes.read_u64(now, 1) + ms
  cx.put(c, key, bytes.be_u64(t) .. holder)
  return true
end

-- The oldest `limit` changes of `watcher`'s queue at `owner`: busy flag,
-- dropped count, then seq, entry pairs (pending).
function watch.pending(c, watcher, owner, holder, lease_ms, limit)
  local h = read_head(c.reader, layout.queue_head_key(owner, watcher))
  if not lease(c, owner, watcher, holder, c.now, lease_ms) then
    return { 1, h.dropped }
  end
  local out = { 0, h.dropped }
  for _, e in ipairs(first_entries(c.reader, layout.queue_prefix(owner, watcher), limit)) do
    out[#out + 1] = e[2]
    out[#out + 1] = e[3]
  end
  return out
end

-- Forget the changes of `watcher`'s queue at `owner` up to seq `upto` (ack).
function watch.ack(c, watcher, owner, upto)
  local prefix = layout.queue_prefix(owner, watcher)
  local done, freed = {}, 0
  c.reader:scan(prefix, layout.queue_key(owner, watcher, upto + 1), false, function(k, v)
    done[#done + 1] = k
    freed = freed + #v
    return true
  end)
  if #done == 0 then return end
  local head_key = layout.queue_head_key(owner, watcher)
  local h = read_head(c.reader, head_key)
  for _, k in ipairs(done) do cx.delete(c, k) end
  h.len = max(h.len - #done, 0)
  h.bytes = max(h.bytes - freed, 0)
  write_head(c, head_key, h)
end

return watch
