-- backend.lua ↔ kv/backend (RawRead/RawWrite over redb): one owner's
-- records as an ordered byte-key space on Redis — values in a hash, keys in
-- a sorted set with score 0 for ordered range scans (ZRANGEBYLEX compares
-- bytes, as redb does). Both Redis keys carry the owner's hash tag, so they
-- share a Cluster slot.

local min = math.min

local backend = {}

local BATCH = 256
-- Numbers given to redis.call are formatted with printf on every call;
-- constants go as text.
local BATCH_TEXT = '256'

function backend.new(hash, zset)
  return { h = hash, z = zset }
end

function backend.get(t, k)
  local v = redis.call('HGET', t.h, k)
  if v == false then return nil end
  return v
end

function backend.value_len(t, k)
  local v = backend.get(t, k)
  if v == nil then return nil end
  return #v
end

-- Visit entries with start <= key < stop (stop nil = unbounded), in key
-- order or reversed, until visit returns false.
function backend.scan(t, start, stop, reverse, visit)
  if stop and not bytes.lt(start, stop) then return end
  local lo, hi = '[' .. start, stop and ('(' .. stop) or '+'
  while true do
    local ks
    if reverse then
      ks = redis.call('ZREVRANGEBYLEX', t.z, hi, lo, 'LIMIT', '0', BATCH_TEXT)
    else
      ks = redis.call('ZRANGEBYLEX', t.z, lo, hi, 'LIMIT', '0', BATCH_TEXT)
    end
    if #ks == 0 then return end
    local vs = redis.call('HMGET', t.h, unpack(ks))
    for i = 1, #ks do
      if vs[i] ~= false and visit(ks[i], vs[i]) == false then return end
    end
    if #ks < BATCH then return end
    if reverse then hi = '(' .. ks[#ks] else lo = '(' .. ks[#ks] end
  end
end

-- Values of `keys` (false for absent), in one HMGET per batch.
function backend.get_many(t, keys)
  local n = #keys
  if n == 0 then return {} end
  if n <= BATCH then return redis.call('HMGET', t.h, unpack(keys)) end
  local out = {}
  for i = 1, #keys, BATCH do
    local part = { unpack(keys, i, min(i + BATCH - 1, #keys)) }
    local vs = redis.call('HMGET', t.h, unpack(part))
    for j = 1, #part do out[i + j - 1] = vs[j] end
  end
  return out
end

-- Store `kvs` ({k1, v1, k2, v2, ...}); `fresh` lists the keys that may be
-- new to the order (adding a present one changes nothing).
function backend.put_many(t, kvs, fresh)
  for i = 1, #kvs, 2 * BATCH do
    redis.call('HSET', t.h, unpack(kvs, i, min(i + 2 * BATCH - 1, #kvs)))
  end
  for i = 1, #fresh, BATCH do
    local args = {}
    for j = i, min(i + BATCH - 1, #fresh) do
      args[#args + 1] = '0'
      args[#args + 1] = fresh[j]
    end
    redis.call('ZADD', t.z, unpack(args))
  end
end

function backend.delete_many(t, keys)
  for i = 1, #keys, BATCH do
    local part = { unpack(keys, i, min(i + BATCH - 1, #keys)) }
    redis.call('HDEL', t.h, unpack(part))
    redis.call('ZREM', t.z, unpack(part))
  end
end

function backend.delete_range(t, start, stop)
  if stop and not bytes.lt(start, stop) then return end
  local lo, hi = '[' .. start, stop and ('(' .. stop) or '+'
  while true do
    local ks = redis.call('ZRANGEBYLEX', t.z, lo, hi, 'LIMIT', '0', BATCH_TEXT)
    if #ks == 0 then return end
    redis.call('HDEL', t.h, unpack(ks))
    redis.call('ZREM', t.z, unpack(ks))
    if #ks < BATCH then return end
  end
end

-- A read-only view (RawRead) of the records.
local Reader = {}
Reader.__index = Reader
function Reader:get(k) return backend.get(self.t, k) end
function Reader:value_len(k) return backend.value_len(self.t, k) end
function Reader:scan(start, stop, reverse, visit) return backend.scan(self.t, start, stop, reverse, visit) end

function backend.reader(t)
  return setmetatable({ t = t }, Reader)
end

return backend
