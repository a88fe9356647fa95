-- layout.lua ↔ kv/layout.rs: the record keys, byte for byte the same as the
-- kv engine's. On Redis every owner (an instance with its sessions, or an
-- account) keeps its records in its own hash + sorted set, so a request
-- touches one Cluster slot; the layout inside is unchanged.

local sub, byte = string.sub, string.byte

local layout = {}

layout.DATA = 'd'
layout.KEY_EXPIRY = 'x'
layout.SESSION = 'e'
layout.SESSION_EXPIRY = 't'
layout.USAGE = 'u'
layout.INSTANCE = 'n'
layout.COUNTER = 'c'
layout.WATCHERS = 'v'
layout.WATCHING = 'V'
layout.QUEUE = 'w'
layout.QUEUE_HEAD = 'W'
-- Redis only: which host delivers a watcher's queue at this owner (several
-- hosts share the store; the kv engine has one process).
layout.QUEUE_LEASE = 'l'

-- The owner record prefix of an instance (`i <lp16 name>`).
function layout.instance_owner(instance)
  return 'i' .. bytes.lp16(instance)
end

function layout.account_owner(account)
  return 'a' .. bytes.lp16(account)
end

-- The byte prefix of every data record of a scope. `scope` is
-- {kind = 'a'|'i'|'s', name = account-or-instance, id = session id}.
function layout.scope_prefix(scope)
  if scope.kind == 'a' then
    return layout.DATA .. layout.account_owner(scope.name)
  elseif scope.kind == 'i' then
    return layout.DATA .. layout.instance_owner(scope.name) .. 'I'
  else
    return layout.DATA .. layout.instance_owner(scope.name) .. 'S' .. bytes.lp16(scope.id)
  end
end

-- Every data record of an instance: its scope and all its sessions.
function layout.instance_data_prefix(instance)
  return layout.DATA .. layout.instance_owner(instance)
end

-- Pure functions of a record key called several times per record in a
-- request (quota accounting, watchers) remember their answers; the memo is
-- dropped whenever it reaches MEMO_MAX entries, so it stays small.
-- (Lua only: Rust computes these on byte slices without allocating.)
local MEMO_MAX = 4096
local function memo(f)
  local known, n = {}, 0
  return function(k)
    local v = known[k]
    if v == nil then
      v = f(k) or false
      if n >= MEMO_MAX then known, n = {}, 0 end
      known[k], n = v, n + 1
    end
    return v or nil
  end
end

local D_BYTE = byte(layout.DATA)

-- The owner (quota holder) of a data record key, or nil for other records.
layout.owner_of = memo(function(record_key)
  local tag, _, hi, lo = byte(record_key, 1, 4)
  if tag ~= D_BYTE or not lo then return nil end
  local n = hi * 256 + lo
  if #record_key < 4 + n then return nil end
  return sub(record_key, 2, 4 + n)
end)

-- Human name of an owner: `instance "x"` / `account "y"`.
function layout.owner_name(owner)
  local name = sub(owner, 4)
  if sub(owner, 1, 1) == 'a' then
    return 'account "' .. name .. '"'
  end
  return 'instance "' .. name .. '"'
end

function layout.owner_is_account(owner)
  return sub(owner, 1, 1) == 'a'
end

-- The usage record of an owner.
function layout.usage_key(owner)
  return layout.USAGE .. owner
end

-- Key → record key builder for one scope (ScopeKeys).
local ScopeKeys = {}
ScopeKeys.__index = ScopeKeys
function ScopeKeys:meta_prefix() return self.prefix .. 'M' end
function ScopeKeys:meta(key)
  -- Built once per key and request (ops ask for it several times).
  local m = self.metas[key]
  if not m then
    m = self.prefix .. 'M' .. key
    self.metas[key] = m
  end
  return m
end
function ScopeKeys:key_of_meta(meta_key) return sub(meta_key, #self.prefix + 2) end
function ScopeKeys:fields(key) return self.prefix .. 'F' .. bytes.lp32(key) end
function ScopeKeys:items(key) return self.prefix .. 'L' .. bytes.lp32(key) end

function layout.scope_keys(prefix)
  return setmetatable({ prefix = prefix, metas = {} }, ScopeKeys)
end

-- A field record key: fields prefix + field.
function layout.field_key(fields_prefix, field)
  return fields_prefix .. field
end

-- A list item record key: items prefix + ordered seq.
function layout.item_key(items_prefix, seq)
  return items_prefix .. bytes.ordered_i64(seq)
end

-- Key expiry index entry (`expires_at`: 8 bytes BE).
function layout.key_expiry(expires_at, meta_key)
  return layout.KEY_EXPIRY .. expires_at .. meta_key
end

-- Instance registration key.
function layout.instance_key(instance)
  return layout.INSTANCE .. bytes.lp16(instance)
end

-- Session record key.
function layout.session_key(instance, id)
  return layout.SESSION .. bytes.lp16(instance) .. bytes.lp16(id)
end

-- Prefix of every session record of an instance.
function layout.sessions_of(instance)
  return layout.SESSION .. bytes.lp16(instance)
end

-- Session expiry index entry (`expires_at`: 8 bytes BE).
function layout.session_expiry(expires_at, instance, id)
  return layout.SESSION_EXPIRY .. expires_at .. bytes.lp16(instance) .. bytes.lp16(id)
end

-- Split `<lp16 a><lp16 b>` into a, b (nil if malformed).
function layout.split_pair(s)
  if #s < 2 then return nil end
  local n = byte(s, 1) * 256 + byte(s, 2)
  local a = sub(s, 3, 2 + n)
  local rest = sub(s, 3 + n)
  if #a ~= n or #rest < 2 then return nil end
  local m = byte(rest, 1) * 256 + byte(rest, 2)
  local b = sub(rest, 3)
  if #b ~= m then return nil end
  return a, b
end

-- The length of the scope prefix of a meta record key (the 'M' follows it),
-- or nil if `record_key` is no meta record (meta_scope_len).
layout.meta_scope_len = memo(function(record_key)
  local owner = layout.owner_of(record_key)
  if not owner then return nil end
  local at = 2 + #owner -- 1-based index of the byte after the owner
  if sub(owner, 1, 1) == 'i' then
    local tag = sub(record_key, at, at)
    if tag == 'I' then
      at = at + 1
    elseif tag == 'S' then
      if #record_key < at + 2 then return nil end
      local n = byte(record_key, at + 1) * 256 + byte(record_key, at + 2)
      at = at + 3 + n
    else
      return nil
    end
  end
  if sub(record_key, at, at) ~= 'M' then return nil end
  return at - 1
end)

-- The watch prefix whose watchers see changes of the scope with this
-- prefix: the scope itself, or for a session every session of its instance.
layout.watch_prefix_of = memo(function(scope_prefix)
  local owner = layout.owner_of(scope_prefix)
  if not owner then return scope_prefix end
  local at = 2 + #owner
  if sub(owner, 1, 1) == 'i' and sub(scope_prefix, at, at) == 'S' then
    return sub(scope_prefix, 1, at)
  end
  return scope_prefix
end)

-- The watch prefix of the scope of a meta record key (nil if it is no meta
-- record key).
layout.watch_prefix_of_meta = memo(function(meta_key)
  local n = layout.meta_scope_len(meta_key)
  if not n then return nil end
  return layout.watch_prefix_of(sub(meta_key, 1, n))
end)

-- The registration of the watchers of a watch prefix.
function layout.watchers_key(watch_prefix)
  return layout.WATCHERS .. watch_prefix
end

-- The registration of what a watcher watches.
function layout.watching_key(watcher)
  return layout.WATCHING .. bytes.lp16(watcher)
end

-- The prefix of a watcher's change queue at an owner.
function layout.queue_prefix(owner, watcher)
  return layout.QUEUE .. owner .. bytes.lp16(watcher)
end

-- A change queue entry.
function layout.queue_key(owner, watcher, seq)
  return layout.queue_prefix(owner, watcher) .. bytes.be_u64(seq)
end

-- The head record of a watcher's change queue at an owner.
function layout.queue_head_key(owner, watcher)
  return layout.QUEUE_HEAD .. owner .. bytes.lp16(watcher)
end

-- The lease record of a watcher's change queue at an owner (Redis only).
function layout.queue_lease_key(owner, watcher)
  return layout.QUEUE_LEASE .. owner .. bytes.lp16(watcher)
end

-- The scope keys and user key of a meta record key (ScopeKeys::from_meta_key).
function layout.from_meta_key(meta_key)
  local n = layout.meta_scope_len(meta_key)
  if not n then return nil end
  return layout.scope_keys(sub(meta_key, 1, n)), sub(meta_key, n + 2)
end

return layout
