-- list.lua ↔ kv/ops/list.rs: list operations with Redis semantics. Items
-- are records keyed by a seq; the meta holds head..tail, so index, set, pops
-- and length cost O(log n) whatever the list's size. Insert and remove move
-- only the shorter side.

local floor, min, max, abs, sort = math.floor, math.min, math.max, math.abs, table.sort

local list = {}

-- Redis LRANGE/LTRIM index rules: the inclusive span (s, e) within 0..len,
-- or nil if it selects nothing.
function list.span(len, start, stop)
  local s = start
  if s < 0 then s = len + s end
  s = max(s, 0)
  local e = stop
  if e < 0 then e = len + e end
  if s > e or s >= len then return nil end
  return s, min(e, len - 1)
end

-- LINDEX/LSET index rule: the offset within 0..len, if any.
function list.offset(len, index)
  local i = index
  if i < 0 then i = len + i end
  if i >= 0 and i < len then return i end
  return nil
end

local function bounds(m)
  if m.kind == 'list' then return m.head, m.tail end
  return 0, 0
end

local function with_bounds(m, head, tail)
  return { kind = 'list', version = m.version, expires_at = m.expires_at, head = head, tail = tail }
end

-- Items with seqs in from..to (exclusive), in order: {{seq, value}, ...}.
-- (`budget`, for a reply: each item counts against it, and past it the read
-- stops with reply-too-large; limits.rs ReplyBudget.)
local function items(r, prefix, from, to, budget)
  local out = {}
  if from >= to then return out end
  local seq = from
  r:scan(layout.item_key(prefix, from), layout.item_key(prefix, to), false, function(_, v)
    if budget then
      budget.used = budget.used + #v
      if budget.used > budget.max then error({ code = 'reply-too-large', max = budget.max }) end
    end
    out[#out + 1] = { seq, v }
    seq = seq + 1
    return true
  end)
  return out
end

local function live_list(old)
  if old then keyspace.expect(old, 'list') end
  return old
end

-- Store the list with new bounds, or delete it if empty. Returns its version.
local function save(c, sk, key, m, head, tail)
  if head >= tail then
    keyspace.purge(c, sk, key, with_bounds(m, head, tail))
    return nil
  end
  return keyspace.store(c, sk, key, m.expires_at, with_bounds(m, head, tail))
end

-- RPUSH / LPUSH. Returns new length, version.
function list.push(c, sk, key, old, values, at_end)
  local m = live_list(old) or { kind = 'list', version = 0, expires_at = meta.NEVER, head = 0, tail = 0 }
  local head, tail = bounds(m)
  local prefix = sk:items(key)
  for _, v in ipairs(values) do
    if at_end then
      cx.put_new(c, layout.item_key(prefix, tail), v)
      tail = tail + 1
    else
      head = head - 1
      cx.put_new(c, layout.item_key(prefix, head), v)
    end
  end
  local v = keyspace.store(c, sk, key, old and old.expires_at, with_bounds(m, head, tail))
  return tail - head, v
end

-- LPOP / RPOP with a count. Returns values, version after.
function list.pop(c, sk, key, old, count, from_end)
  local m = live_list(old)
  if not m then return {}, nil end
  local head, tail = bounds(m)
  local n = min(count, tail - head)
  if n == 0 then return {}, m.version end
  local prefix = sk:items(key)
  if not c.reply then c.reply = { max = c.limits.max_reply, used = 0 } end
  local taken
  if from_end then
    taken = items(c.reader, prefix, tail - n, tail, c.reply)
    local rev = {}
    for i = #taken, 1, -1 do rev[#rev + 1] = taken[i] end
    taken = rev
  else
    taken = items(c.reader, prefix, head, head + n, c.reply)
  end
  for _, t in ipairs(taken) do cx.delete(c, layout.item_key(prefix, t[1])) end
  if from_end then tail = tail - n else head = head + n end
  local v = save(c, sk, key, m, head, tail)
  local out = {}
  for i, t in ipairs(taken) do out[i] = t[2] end
  return out, v
end

-- LTRIM. Returns the version after.
function list.trim(c, sk, key, old, start, stop)
  local m = live_list(old)
  if not m then return nil end
  local head, tail = bounds(m)
  local s, e = list.span(tail - head, start, stop)
  if not s then
    keyspace.purge(c, sk, key, m)
    return nil
  end
  local new_head, new_tail = head + s, head + e + 1
  if new_head == head and new_tail == tail then return m.version end
  local prefix = sk:items(key)
  cx.delete_range(c, layout.item_key(prefix, head), layout.item_key(prefix, new_head))
  cx.delete_range(c, layout.item_key(prefix, new_tail), layout.item_key(prefix, tail))
  return save(c, sk, key, m, new_head, new_tail)
end

-- LREM. Returns removed, version after.
function list.remove(c, sk, key, old, v, count)
  local m = live_list(old)
  if not m then return 0, nil end
  local head, tail = bounds(m)
  local prefix = sk:items(key)
  local limit = count == 0 and math.huge or abs(count)
  local hits = {}
  local seq, step = head, 1
  if count < 0 then seq, step = tail - 1, -1 end
  c.reader:scan(layout.item_key(prefix, head), layout.item_key(prefix, tail), count < 0, function(_, item)
    if item == v then hits[#hits + 1] = seq end
    seq = seq + step
    return #hits < limit
  end)
  if #hits == 0 then return 0, m.version end
  sort(hits)
  local is_hit = {}
  for _, h in ipairs(hits) do is_hit[h] = true end
  local lo, hi = hits[1], hits[#hits]
  local new_head, new_tail
  if tail - lo <= hi - head + 1 then
    -- Close the gaps by moving the tail side toward the head.
    local at = lo
    for _, t in ipairs(items(c.reader, prefix, lo, tail)) do
      if not is_hit[t[1]] then
        cx.put(c, layout.item_key(prefix, at), t[2])
        at = at + 1
      end
    end
    cx.delete_range(c, layout.item_key(prefix, at), layout.item_key(prefix, tail))
    new_head, new_tail = head, at
  else
    -- Move the head side toward the tail.
    local kept = {}
    for _, t in ipairs(items(c.reader, prefix, head, hi + 1)) do
      if not is_hit[t[1]] then kept[#kept + 1] = t end
    end
    new_head = hi + 1 - #kept
    for i, t in ipairs(kept) do
      cx.put(c, layout.item_key(prefix, new_head + i - 1), t[2])
    end
    cx.delete_range(c, layout.item_key(prefix, head), layout.item_key(prefix, new_head))
    new_tail = tail
  end
  return #hits, save(c, sk, key, m, new_head, new_tail)
end

-- LINSERT. Returns new length | -1 no pivot | 0 no list, version after.
function list.insert(c, sk, key, old, before, pivot, v)
  local m = live_list(old)
  if not m then return 0, nil end
  local head, tail = bounds(m)
  local prefix = sk:items(key)
  local found
  local seq = head
  c.reader:scan(layout.item_key(prefix, head), layout.item_key(prefix, tail), false, function(_, item)
    if item == pivot then
      found = seq
      return false
    end
    seq = seq + 1
    return true
  end)
  if not found then return -1, m.version end
  -- The new item takes offset i; items from there on move one place.
  local i = found - head + (before and 0 or 1)
  local len = tail - head
  local new_head, new_tail
  if i <= floor(len / 2) then
    for _, t in ipairs(items(c.reader, prefix, head, head + i)) do
      cx.put(c, layout.item_key(prefix, t[1] - 1), t[2])
    end
    cx.put(c, layout.item_key(prefix, head + i - 1), v)
    new_head, new_tail = head - 1, tail
  else
    local moved = items(c.reader, prefix, head + i, tail)
    for j = #moved, 1, -1 do
      cx.put(c, layout.item_key(prefix, moved[j][1] + 1), moved[j][2])
    end
    cx.put(c, layout.item_key(prefix, head + i), v)
    new_head, new_tail = head, tail + 1
  end
  return new_tail - new_head, save(c, sk, key, m, new_head, new_tail)
end

-- LSET. Returns the version after.
function list.set(c, sk, key, old, index, v)
  local m = live_list(old)
  if not m then error({ code = 'not-found' }) end
  local head, tail = bounds(m)
  local i = list.offset(tail - head, index)
  if not i then error({ code = 'index-out-of-range', len = tail - head }) end
  cx.put(c, layout.item_key(sk:items(key), head + i), v)
  return keyspace.store(c, sk, key, m.expires_at, meta.clone(m))
end

-- The live bounds of a list key (error wrong-type for others), or nil.
local function load_list(r, sk, key, now)
  local m = keyspace.load(r, sk, key, now)
  if not m then return nil end
  keyspace.expect(m, 'list')
  return m.head, m.tail
end

-- (LLEN is a point read, run in Rust: kv/ops/list.rs length over one HMGET,
-- store/redis/read.rs.)

-- LINDEX (false if none).
function list.index(r, sk, key, i, now)
  local head, tail = load_list(r, sk, key, now)
  if not head then return false end
  local o = list.offset(tail - head, i)
  if not o then return false end
  return r:get(layout.item_key(sk:items(key), head + o)) or false
end

-- LRANGE.
function list.range(r, sk, key, start, stop, now, budget)
  local head, tail = load_list(r, sk, key, now)
  if not head then return {} end
  local s, e = list.span(tail - head, start, stop)
  if not s then return {} end
  local out = {}
  for i, t in ipairs(items(r, sk:items(key), head + s, head + e + 1, budget)) do out[i] = t[2] end
  return out
end

return list
