-- cx.lua ↔ kv/ops/cx.rs: the context one write request runs in — its
-- buffered view of the owner's records, the time, the quotas, etag issuing,
-- and per-owner storage accounting that enforces quotas before anything is
-- kept.
--
-- Etags: the kv engine counts versions database-wide; here every owner has
-- its own counter, with a random nonce chosen when the owner's records are
-- first written (`c` = nonce .. u64 BE). An etag is nonce .. 16 hex digits,
-- so an etag of another owner, or of an owner destroyed and re-created,
-- can never match.

local sub, max = string.sub, math.max

local cx = {}

-- A reader of a request's view: its buffered writes over the records.
local Reader = {}
Reader.__index = Reader
function Reader:get(k) return overlay.get(self.o, k) end
function Reader:value_len(k) return overlay.value_len(self.o, k) end
function Reader:scan(start, stop, reverse, visit) return overlay.scan(self.o, start, stop, reverse, visit) end

-- A context over `base` at time `now`; `limits` holds the quotas and the
-- nonce to use if the owner has none yet.
function cx.new(base, now, limits)
  local raw = overlay.new(base)
  return {
    raw = raw,
    -- read access to the request's view (reads see its own writes)
    reader = setmetatable({ o = raw }, Reader),
    now = now,
    limits = limits,
    counter = nil, -- {nonce, version, moved}
    deltas = {},   -- owner → bytes added (or freed)
    -- value changes of watched scopes, queued for their watchers at the end
    watch = watch.capture(limits.origin),
    -- reply: what the request's pops may still return (limits.rs
    -- ReplyBudget), made by its first pop
  }
end

-- A record counts for its owner as its key's bytes plus its value's.
local function record_size(key, value_len)
  return #key + value_len
end

-- Count `delta` bytes for `owner` (layout.owner_of of the record's key).
local function account(c, owner, delta)
  local deltas = c.deltas
  deltas[owner] = (deltas[owner] or 0) + delta
end


-- Store a record.
function cx.put(c, key, value)
  local owner = layout.owner_of(key)
  if owner then
    watch.meta_write(c.watch, c.reader, key, value)
    local n = overlay.value_len(c.raw, key)
    -- (the key's bytes count once, whether the record was there or not)
    if n then
      account(c, owner, #value - n)
    else
      account(c, owner, record_size(key, #value))
    end
  end
  overlay.put(c.raw, key, value)
end

-- Store a record known not to exist — a list item past either end of its
-- list (items live only between the list's head and tail; every op that
-- moves them deletes what falls outside): its size counts for the owner
-- without a lookup of an old one.
function cx.put_new(c, key, value)
  local owner = layout.owner_of(key)
  if owner then account(c, owner, record_size(key, #value)) end
  overlay.put(c.raw, key, value)
end

-- Delete a record.
function cx.delete(c, key)
  local owner = layout.owner_of(key)
  if owner then
    local n = overlay.value_len(c.raw, key)
    if n then
      watch.meta_write(c.watch, c.reader, key, nil)
      account(c, owner, -record_size(key, n))
    end
  end
  overlay.delete(c.raw, key)
end

-- Delete every record in [start, stop).
function cx.delete_range(c, start, stop)
  if sub(start, 1, 1) == layout.DATA then
    watch.range_delete(c.watch, c.reader, start, stop)
    overlay.scan(c.raw, start, stop, false, function(k, v)
      local owner = layout.owner_of(k)
      if owner then account(c, owner, -record_size(k, #v)) end
      return true
    end)
  end
  overlay.delete_range(c.raw, start, stop)
end

local function load_counter(c)
  if not c.counter then
    local b = overlay.get(c.raw, layout.COUNTER)
    if b then
      c.counter = { nonce = sub(b, 1, 8), version = bytes.read_u64(b, 9), moved = false }
      if not c.counter.version then
        error({ code = 'internal', msg = 'damaged record (etag counter); the database may be corrupt' })
      end
    else
      c.counter = { nonce = c.limits.nonce, version = 0, moved = false }
    end
  end
  return c.counter
end

-- The last etag version issued so far, and the owner's nonce.
function cx.last_version(c)
  local k = load_counter(c)
  return k.version, k.nonce
end

-- Issue a new etag version.
function cx.next_version(c)
  local k = c.counter or load_counter(c)
  k.version = k.version + 1
  k.moved = true
  return k.version
end

-- The etag text of a version of this owner.
function cx.etag_of(c, version)
  local k = c.counter or load_counter(c)
  return k.nonce .. bytes.hex16(version)
end

-- Check quotas and record usage and the etag counter, then write
-- everything. Called once, after the request's ops succeeded; an error here
-- discards the whole request.
function cx.finish(c)
  local capture = c.watch
  c.watch = watch.capture(nil)
  watch.flush(c, capture)
  if c.counter and c.counter.moved then
    overlay.put(c.raw, layout.COUNTER, c.counter.nonce .. bytes.be_u64(c.counter.version))
  end
  for owner, delta in pairs(c.deltas) do
    if delta ~= 0 then
      local key = layout.usage_key(owner)
      local b = overlay.get(c.raw, key)
      local used = 0
      if b then
        used = bytes.read_u64(b, 1)
        if not used then
          error({ code = 'internal', msg = 'damaged record (usage record); the database may be corrupt' })
        end
      end
      local now_used = max(used + delta, 0)
      local quota = c.limits.instance_quota
      if layout.owner_is_account(owner) then quota = c.limits.account_quota end
      if delta > 0 and now_used > quota then
        error({ code = 'quota-exceeded', owner = layout.owner_name(owner), would_use = now_used, quota = quota })
      end
      if now_used == 0 then
        overlay.delete(c.raw, key)
      else
        overlay.put(c.raw, key, bytes.be_u64(now_used))
      end
    end
  end
  overlay.flush(c.raw)
end

return cx
