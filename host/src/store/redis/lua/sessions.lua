-- sessions.lua ↔ kv/sessions.rs: session records — a record with its expiry
-- plus an expiry index entry; a session's state is the range of its scope
-- prefix, so ending one is a range delete. Sessions live in their
-- instance's records (one slot: liveness checks stay atomic with the ops).

local sub, max = string.sub, math.max

local sessions = {}

-- How many session records an instance holds (live or not yet swept): the
-- count record, or (records written before it existed) a count.
local function held(r, instance)
  local prefix = layout.sessions_of(instance)
  local b = r:get(prefix)
  if b ~= nil then
    if #b ~= 8 then error({ code = 'internal', msg = 'damaged record (session count); the database may be corrupt' }) end
    return bytes.read_u64(b, 1)
  end
  local n = 0
  r:scan(prefix, bytes.prefix_end(prefix), false, function(k, _)
    if layout.split_pair(sub(k, 2)) then n = n + 1 end
    return true
  end)
  return n
end

-- How many entries of the expiry index a create at the session limit looks
-- at for an expired session of its instance to free.
local RECLAIM_LOOK = 256

-- The sessions of `instance` that expired before `now` and are not yet
-- swept, as {expiry, id}, among the first `look` due entries of the expiry
-- index (here the instance's own index): an entry counts only while its
-- session's record still says that expiry, as the sweeper checks.
local function expired(r, instance, now, look)
  local due, looked = {}, 0
  r:scan(layout.SESSION_EXPIRY, layout.SESSION_EXPIRY .. now, false, function(k)
    looked = looked + 1
    local i, id = layout.split_pair(sub(k, 10))
    if id and i == instance then due[#due + 1] = { sub(k, 2, 9), id } end
    return look == nil or looked < look
  end)
  local out = {}
  for _, d in ipairs(due) do
    if sessions.stored_expiry(r, instance, d[2]) == d[1] then out[#out + 1] = d end
  end
  return out
end

-- Free one session of `instance` that expired before now and is not yet
-- swept, as the sweeper would, if one is among the first RECLAIM_LOOK
-- entries of the expiry index that are due: whether one was freed.
local function reclaim_one(c, instance)
  local d = expired(c.reader, instance, c.now, RECLAIM_LOOK)[1]
  if not d then return false end
  sessions.drop(c, instance, d[2], d[1])
  return true
end

-- Write (or move) a session's record and expiry index; a new session counts
-- against the instance's session limit. At the limit, one of the instance's
-- expired sessions not yet swept is freed first (if one is found:
-- reclaim_one), so the limit is on live sessions and the records stay
-- within it.
function sessions.put(c, instance, id, old, at)
  if old then
    cx.delete(c, layout.session_expiry(old, instance, id))
  elseif sessions.stored_expiry(c.reader, instance, id) == nil then
    local n = held(c.reader, instance)
    if n >= c.limits.max_sessions and reclaim_one(c, instance) then
      n = held(c.reader, instance)
    end
    if n >= c.limits.max_sessions then
      error({ code = 'too-many-sessions', instance = instance, max = c.limits.max_sessions })
    end
    cx.put(c, layout.sessions_of(instance), bytes.be_u64(n + 1))
  end
  cx.put(c, layout.session_key(instance, id), at)
  cx.put(c, layout.session_expiry(at, instance, id), '')
end

-- Delete a session's record, index entry and data.
function sessions.drop(c, instance, id, at)
  local n = held(c.reader, instance)
  cx.put(c, layout.sessions_of(instance), bytes.be_u64(max(n - 1, 0)))
  cx.delete(c, layout.session_key(instance, id))
  cx.delete(c, layout.session_expiry(at, instance, id))
  local prefix = layout.scope_prefix({ kind = 's', name = instance, id = id })
  cx.delete_range(c, prefix, bytes.prefix_end(prefix))
end

-- The stored expiry of a session, live or not (nil if none).
function sessions.stored_expiry(r, instance, id)
  local b = r:get(layout.session_key(instance, id))
  if b == nil then return nil end
  if #b < 8 then error({ code = 'internal', msg = 'damaged record (session record); the database may be corrupt' }) end
  return sub(b, 1, 8)
end

-- How many live sessions an instance has at `now`, without listing them:
-- the records it holds less those expired and not yet swept (the expiry
-- index before `now`, which the sweeper keeps short; an entry counts only
-- while its session's record still says that expiry, as the sweeper
-- checks). Each owner has an index of its own here, so every entry is the
-- instance's. At its last millisecond a session still lives, as a key does.
function sessions.live_count(r, instance, now)
  return max(held(r, instance) - #expired(r, instance, now), 0)
end

-- The live sessions of an instance at `now` (a session lives through its
-- last millisecond): {id, at, id, at, ...}.
function sessions.list(r, instance, now)
  local prefix = layout.sessions_of(instance)
  local out = {}
  r:scan(prefix, bytes.prefix_end(prefix), false, function(k, v)
    local _, id = layout.split_pair(sub(k, 2))
    local at = sub(v, 1, 8)
    if id and #at == 8 and not bytes.lt(at, now) then
      out[#out + 1] = id
      out[#out + 1] = at
    end
    return true
  end)
  return out
end

return sessions
