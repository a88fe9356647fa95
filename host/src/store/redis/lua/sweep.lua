-- sweep.lua ↔ kv/sweep.rs: one bounded sweep step of one owner — walk the
-- key and session expiry indexes up to now and free what is really expired
-- (an index entry whose key's expiry has since changed is just dropped).

local sub = string.sub

local sweep = {}

-- Index entries with a time before `now` under `tag`, at most `limit`.
local function due(c, tag, now, limit)
  local out = {}
  c.reader:scan(tag, tag .. now, false, function(k, _)
    if #k >= 9 then out[#out + 1] = { sub(k, 2, 9), k } end
    return #out < limit
  end)
  return out
end

-- Free at most `limit` expired keys and `limit` expired sessions. Returns
-- keys freed, sessions freed.
function sweep.step(c, limit)
  local keys, sess = 0, 0
  local now = c.now
  local r = c.reader
  for _, d in ipairs(due(c, layout.KEY_EXPIRY, now, limit)) do
    local at, index_key = d[1], d[2]
    local meta_key = sub(index_key, 10)
    local sk, key = layout.from_meta_key(meta_key)
    local raw = sk and r:get(meta_key)
    if raw then
      local m = meta.decode(raw)
      if m.expires_at == at and meta.expired(m, now) then
        keyspace.purge(c, sk, key, m)
        keys = keys + 1
      end
    end
    cx.delete(c, index_key)
  end
  for _, d in ipairs(due(c, layout.SESSION_EXPIRY, now, limit)) do
    local at, index_key = d[1], d[2]
    local instance, id = layout.split_pair(sub(index_key, 10))
    local dropped = false
    if instance and sessions.stored_expiry(r, instance, id) == at then
      sessions.drop(c, instance, id, at)
      sess = sess + 1
      dropped = true
    end
    if not dropped then cx.delete(c, index_key) end
  end
  return keys, sess
end

-- When the owner's next key or session expires (8 bytes BE), or nil.
function sweep.next_due(r)
  local first
  for _, tag in ipairs({ layout.KEY_EXPIRY, layout.SESSION_EXPIRY }) do
    r:scan(tag, bytes.prefix_end(tag), false, function(k, _)
      local at = sub(k, 2, 9)
      if not first or bytes.lt(at, first) then first = at end
      return false
    end)
  end
  return first
end

return sweep
