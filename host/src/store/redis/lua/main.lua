-- main.lua ↔ kv/mod.rs (the engine's calls): decode one call's arguments,
-- run it on the owner's records, and encode its answer. Every call is one
-- function call (FCALL): atomic, one round trip. keys[1], keys[2] are the
-- owner's hash and sorted set; a write also names keys[3], its idempotency
-- marker: a write retried after a lost answer returns the first answer
-- instead of applying twice.
--
-- Answers: {'K', payload} or {'E', code, index (-1: none), details...}.
--
-- The library is loaded once (FUNCTION LOAD); each call only decodes its
-- arguments (`call` holds them and the position read so far).

local sub = string.sub

local argv, at, base, reader

local function arg()
  local v = argv[at]
  at = at + 1
  return v
end
local function num() return tonumber(arg()) end
-- An optional argument that may be the empty string: '' is none, anything
-- else is a '+' and the value (redis/mod.rs present_arg). The empty field
-- or key is a real bound: after field "" is not from the start.
local function present() local v = arg(); if v == '' then return nil end; return sub(v, 2) end

-- (These two read their arguments in place: they run on every call.)
local function scope_arg()
  local a, p = argv, at
  local s = { kind = a[p], name = a[p + 1], id = a[p + 2] }
  at = p + 3
  return s, layout.scope_keys(layout.scope_prefix(s))
end

-- The write context of a call: now, then the owner's nonce-to-be and quotas.
local function write_cx(now)
  local a, p = argv, at
  local origin = a[p + 6]
  if origin == '' then origin = nil end
  local limits = { nonce = a[p], instance_quota = tonumber(a[p + 1]), account_quota = tonumber(a[p + 2]), watch_queue = tonumber(a[p + 3]), max_sessions = tonumber(a[p + 4]), max_reply = tonumber(a[p + 5]), origin = origin }
  at = p + 7
  return cx.new(base, now, limits)
end

-- The etag text of a stored version, for reads.
local function etag_for(version)
  local c = reader:get(layout.COUNTER)
  return sub(c or '', 1, 8) .. bytes.hex16(version)
end

local function decode_ops(n)
  local list_of_ops, a, p = {}, argv, at
  for i = 1, n do
    local key, kind, ck, ce, nargs = a[p], a[p + 1], a[p + 2], a[p + 3], tonumber(a[p + 4])
    p = p + 5
    -- The op's arguments in its own array part (one table per op).
    local op = { key = key, kind = kind }
    for j = 1, nargs do op[j] = a[p + j - 1] end
    p = p + nargs
    if ck ~= '' then op.cond = { kind = ck, etag = ce } end
    if kind == 'set' and op[2] == '' then op[2] = meta.NEVER end
    list_of_ops[i] = op
  end
  at = p
  return list_of_ops
end

local function encode_error(e)
  if type(e) ~= 'table' then
    return { 'E', 'internal', -1, 'msg', tostring(e) }
  end
  -- An error of Redis itself (a redis.call that failed: {err = ...}) has
  -- no code of ours: internal, with Redis's words.
  if e.code == nil then
    return { 'E', 'internal', e.index or -1, 'msg', 'Redis refused a command of the script: ' .. tostring(e.err or 'no message') }
  end
  local out = { 'E', e.code, e.index or -1 }
  for _, f in ipairs({ 'expected', 'found', 'len', 'etag', 'owner', 'would_use', 'quota', 'instance', 'max', 'msg' }) do
    if e[f] ~= nil then
      out[#out + 1] = f
      out[#out + 1] = tostring(e[f])
    end
  end
  return out
end

local commands = {}

-- ---- reads of one scope ----
-- Point reads (get, get-many, info, map get, map and list length, a
-- session's expiry, an instance's registration and usage) are not here: the
-- host reads their records with one HMGET and runs the kv engine's Rust
-- read functions over them (store/redis/read.rs).

function commands.keys()
  local scope, sk = scope_arg()
  local now = arg()
  keyspace.ensure_scope(reader, scope, now)
  local q = { prefix = present(), start = present(), stop = present(), reverse = arg() == '1', after = present() }
  local page = num()
  local keys, more = keyspace.keys(reader, sk, q, page, now)
  local out = { more and 1 or 0 }
  for _, k in ipairs(keys) do out[#out + 1] = k end
  return out
end

function commands.mfields()
  local scope, sk = scope_arg()
  local now, key = arg(), arg()
  keyspace.ensure_scope(reader, scope, now)
  local after, count, max_bytes = present(), num(), num()
  local entries, last = map.fields(reader, sk, key, after, count, max_bytes, now)
  local out = { last or false }
  for _, e in ipairs(entries) do
    out[#out + 1] = e[1]
    out[#out + 1] = e[2]
  end
  return out
end

function commands.lrange()
  local scope, sk = scope_arg()
  local now, key = arg(), arg()
  keyspace.ensure_scope(reader, scope, now)
  local start, stop = num(), num()
  return list.range(reader, sk, key, start, stop, now, { max = num(), used = 0 })
end

function commands.lindex()
  local scope, sk = scope_arg()
  local now, key = arg(), arg()
  keyspace.ensure_scope(reader, scope, now)
  return list.index(reader, sk, key, num(), now)
end

-- Up to `limit` live values under `prefix` after key `after`, within
-- `max_bytes`: {more, key, etag, value, ...} (queries page through these).
function commands.values()
  local scope, sk = scope_arg()
  local now = arg()
  keyspace.ensure_scope(reader, scope, now)
  local prefix, after, limit, max_bytes = arg(), present(), num(), num()
  local out, n, size = { 0 }, 0, 0
  keyspace.each_live_value(reader, sk, prefix, after, now, function(key, version, v)
    -- at most `limit` values, and `max_bytes` of keys and values (one at
    -- least)
    size = size + #key + #v
    if n == limit or (n > 0 and size > max_bytes) then
      out[1] = 1
      return false
    end
    n = n + 1
    out[#out + 1] = key
    out[#out + 1] = etag_for(version)
    out[#out + 1] = v
    return true
  end)
  return out
end

-- ---- writes of one scope ----

function commands.commit()
  local scope, sk = scope_arg()
  local now = arg()
  local c = write_cx(now)
  local list_of_ops = decode_ops(num())
  -- What every op reads first, fetched in one round: the keys' meta
  -- records, the etag counter, the owner's usage, the session's record.
    local first = { layout.COUNTER, layout.usage_key(layout.owner_of(sk.prefix)),
    layout.watchers_key(layout.watch_prefix_of(sk.prefix)) }
  if scope.kind == 's' then first[#first + 1] = layout.session_key(scope.name, scope.id) end
  for _, op in ipairs(list_of_ops) do first[#first + 1] = sk:meta(op.key) end
  overlay.prefetch(c.raw, first)
  keyspace.ensure_scope(c.reader, scope, now)
  local results = ops.apply_all(c, sk, list_of_ops)
  cx.finish(c)
  return results
end

function commands.delprefix()
  local scope, sk = scope_arg()
  local now = arg()
  local c = write_cx(now)
  keyspace.ensure_scope(c.reader, scope, now)
  local n = keyspace.delete_prefix(c, sk, arg())
  cx.finish(c)
  return n
end

-- ---- sessions (the instance's records) ----

function commands.screate()
  local instance, id, now, expires = arg(), arg(), arg(), arg()
  local c = write_cx(now)
  sessions.put(c, instance, id, nil, expires)
  cx.finish(c)
  return expires
end

function commands.sextend()
  local instance, id, now, expires = arg(), arg(), arg(), arg()
  local c = write_cx(now)
  local old = keyspace.session_expiry(c.reader, instance, id, now)
  sessions.put(c, instance, id, old, expires)
  cx.finish(c)
  return expires
end

function commands.send()
  local instance, id, now = arg(), arg(), arg()
  local c = write_cx(now)
  local stored = sessions.stored_expiry(c.reader, instance, id)
  if not stored then return 0 end
  sessions.drop(c, instance, id, stored)
  cx.finish(c)
  if bytes.lt(stored, now) then return 0 end
  return 1
end

function commands.slist()
  local instance, now = arg(), arg()
  return sessions.list(reader, instance, now)
end

function commands.scount()
  local instance, now = arg(), arg()
  return sessions.live_count(reader, instance, now)
end

-- ---- the owner as a whole ----

-- Delete every record of the owner (an instance: its state, sessions,
-- usage and etag counter; a new life gets a new nonce).
function commands.destroy()
  redis.call('UNLINK', base.h, base.z)
  return 1
end

function commands.sweep()
  local now, limit = arg(), num()
  local c = write_cx(now)
  local keys, sess = sweep.step(c, limit)
  cx.finish(c)
  return { keys, sess, sweep.next_due(reader) or false }
end

-- ---- watchers ----

function commands.watching()
  local watcher, targets, now = arg(), arg(), arg()
  local c = write_cx(now)
  local old = watch.set_watching(c, watcher, targets)
  cx.finish(c)
  return old
end

function commands.wowner()
  local watcher, owner, now = arg(), arg(), arg()
  local c = write_cx(now)
  local wanted, unwanted = {}, {}
  for _ = 1, num() do wanted[#wanted + 1] = arg() end
  while at <= #argv do unwanted[#unwanted + 1] = arg() end
  watch.set_owner(c, watcher, owner, wanted, unwanted)
  cx.finish(c)
  return 1
end

function commands.wpending()
  local watcher, owner, holder, now = arg(), arg(), arg(), arg()
  local c = write_cx(now)
  local lease_ms, limit = num(), num()
  local out = watch.pending(c, watcher, owner, holder, lease_ms, limit)
  cx.finish(c)
  return out
end

function commands.wack()
  local watcher, owner, now = arg(), arg(), arg()
  local c = write_cx(now)
  watch.ack(c, watcher, owner, num())
  cx.finish(c)
  return 1
end

-- ---- the registry ----

function commands.register()
  local instance, account, now = arg(), arg(), arg()
  local c = write_cx(now)
  local acct, created = instances.register(c, instance, account, now)
  cx.finish(c)
  return { acct, created }
end

function commands.ilist()
  return instances.list(reader)
end

function commands.iforget()
  local instance, now = arg(), arg()
  local c = write_cx(now)
  instances.forget(c, instance)
  cx.finish(c)
  return 1
end

-- ---- dispatch ----

-- The commands that only read: the library's read-only function (flag
-- no-writes) runs these and nothing else, so Redis lets them run when it
-- refuses writes (maxmemory reached, too few replicas).
local READS = { keys = true, mfields = true, lrange = true, lindex = true, values = true, slist = true, scount = true, ilist = true }

-- One call: KEYS as `keys`, ARGV as `args`; `read_only` for the read-only
-- function.
local function dispatch(keys, args, read_only)
  argv, at = args, 1
  -- One view of the owner's keys, pointed at each call's (Redis runs one
  -- call at a time, to its end).
  if base then
    base.h, base.z = keys[1], keys[2]
  else
    base = backend.new(keys[1], keys[2])
    reader = backend.reader(base)
  end
  -- 'f': a first attempt; 'R': a write asked again after its answer was
  -- lost. Both run the same way (below).
  arg()
  local name = arg()
  local run = commands[name]
  local marker = keys[3]
  if not run or (read_only and not READS[name]) then
    local answer = { 'E', 'internal', -1, 'msg', 'unknown command ' .. tostring(name) .. (read_only and ' (read-only function)' or '') }
    -- A write answers packed, even this.
    if marker then return cmsgpack.pack(answer) end
    return answer
  end
  -- A request whose answer is kept ran already: a retry ('R'), or a first
  -- attempt delivered twice (redis-rs's cluster client sends a command
  -- again when its connection drops; a late first attempt can arrive after
  -- its retry). Either gets the kept answer (native.rs `run`, the same).
  if marker then
    local seen = redis.call('GET', marker)
    if seen then return seen end
  end
  local ok, res = pcall(run)
  local answer
  if ok then answer = { 'K', res } else answer = encode_error(res) end
  if not marker then return answer end
  -- A write answers as its marker keeps the answer: packed (MessagePack),
  -- one bulk string to send and to parse (native.rs `answer_of`).
  local packed = cmsgpack.pack(answer)
  redis.call('SET', marker, packed, 'PX', '120000')
  return packed
end

return dispatch
