-- The Redis engine's Lua library outside Redis (scripts/lua-profile.sh runs
-- this): the time per call, and by Lua function and line the VM
-- instructions, the bytes allocated and the calls into C — exact counts,
-- every instruction hooked (a sampling period aliases with a call's
-- path, which is the same every time). By hand:
--
--   lua5.1 scripts/lua-profile/harness.lua host/src/store/redis CALL-FILE [CALLS] [distinct]
--
-- CALL-FILE holds one `FCALL` line as `redis-cli monitor` prints it (a
-- host's real arguments). The library is assembled as script.rs assembles
-- it (the module order read from there), and runs over a table-backed
-- stand-in for the few Redis commands it calls (counted, not profiled: in
-- Redis they are C); `cmsgpack.pack` is a stand-in too. `distinct` gives a
-- commit's keys a new suffix on every call (new records each time, the
-- record-key memos dropped and refilled). At the end, every owner's usage
-- record must equal the sum of its records' sizes.

local dir, call_file, calls, distinct = arg[1], arg[2], tonumber(arg[3] or '100'), arg[4] == 'distinct'

local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

local MODULES = {}
for name in read(dir .. '/script.rs'):gmatch('%("(%a+)", include_str!') do MODULES[#MODULES + 1] = name end
assert(#MODULES > 0, 'no modules found in ' .. dir .. '/script.rs')

-- The body as script.rs builds it, and which module each of its lines is.
local where = {}
local parts, line = {}, 0
local function add(text, module)
  parts[#parts + 1] = text
  local first = line + 1
  local _, n = text:gsub('\n', '')
  for i = 0, n - 1 do where[first + i] = { module, i + 1 } end
  line = line + n
end
for _, m in ipairs(MODULES) do add('local ' .. m .. '\n', '(glue)') end
add('local dispatch\nlocal function init()\n', '(glue)')
for _, m in ipairs(MODULES) do
  add(m .. ' = (function()\n', '(glue)')
  add(read(dir .. '/lua/' .. m .. '.lua') .. '\n', m)
  add('end)()\n', '(glue)')
end
add('dispatch = (function()\n', '(glue)')
add(read(dir .. '/lua/main.lua') .. '\n', 'main')
add('end)()\nend\n', '(glue)')
add('return function(keys, args)\n  if not dispatch then init() end\n  return dispatch(keys, args, false)\nend\n', '(glue)')

-- The Redis commands the library calls, over tables.
local db, ran = {}, {}
local function hash(k) db[k] = db[k] or {}; return db[k] end
local function lex_ok(m, bound, low)
  local c, b = bound:sub(1, 1), bound:sub(2)
  if c == '-' then return low end
  if c == '+' then return not low end
  if low then
    if c == '[' then return m >= b end
    return m > b
  end
  if c == '[' then return m <= b end
  return m < b
end
local function zrange(z, lo, hi, rev, limit)
  local ms = {}
  for m in pairs(hash(z)) do if lex_ok(m, lo, true) and lex_ok(m, hi, false) then ms[#ms + 1] = m end end
  table.sort(ms)
  if rev then
    local r = {}
    for i = #ms, 1, -1 do r[#r + 1] = ms[i] end
    ms = r
  end
  local out = {}
  for i = 1, math.min(#ms, limit) do out[i] = ms[i] end
  return out
end
local commands = {
  HGET = function(h, f) return hash(h)[f] or false end,
  HMGET = function(h, ...)
    local t, out = hash(h), {}
    for i, f in ipairs({ ... }) do out[i] = t[f] or false end
    return out
  end,
  HSET = function(h, ...)
    local t, a = hash(h), { ... }
    for i = 1, #a, 2 do t[a[i]] = a[i + 1] end
  end,
  HDEL = function(h, ...) local t = hash(h); for _, f in ipairs({ ... }) do t[f] = nil end end,
  ZADD = function(z, ...)
    local t, a = hash(z), { ... }
    for i = 1, #a, 2 do t[a[i + 1]] = true end
  end,
  ZREM = function(z, ...) local t = hash(z); for _, m in ipairs({ ... }) do t[m] = nil end end,
  ZRANGEBYLEX = function(z, lo, hi, _, _, n) return zrange(z, lo, hi, false, tonumber(n)) end,
  ZREVRANGEBYLEX = function(z, hi, lo, _, _, n) return zrange(z, lo, hi, true, tonumber(n)) end,
  GET = function(k) return db[k] or false end,
  SET = function(k, v) db[k] = v end,
  UNLINK = function(...) for _, k in ipairs({ ... }) do db[k] = nil end end,
}
redis = {
  call = function(cmd, ...)
    ran[cmd] = (ran[cmd] or 0) + 1
    local f = commands[cmd] or error('the stand-in has no ' .. cmd)
    return f(...)
  end,
}
-- (The answer comes back as the table, so that every call is checked.)
cmsgpack = { pack = function(t) return t end }

-- The call: a MONITOR line's quoted words.
local function words(s)
  local out, i, n = {}, 1, #s
  local esc = { n = '\n', r = '\r', t = '\t', a = '\a', b = '\b' }
  while true do
    i = s:find('"', i, true)
    if not i then return out end
    i = i + 1
    local buf = {}
    while true do
      local c = s:sub(i, i)
      if c == '"' or i > n then break end
      if c == '\\' then
        local d = s:sub(i + 1, i + 1)
        if d == 'x' then
          buf[#buf + 1] = string.char(tonumber(s:sub(i + 2, i + 3), 16))
          i = i + 4
        else
          buf[#buf + 1] = esc[d] or d
          i = i + 2
        end
      else
        buf[#buf + 1] = c
        i = i + 1
      end
    end
    out[#out + 1] = table.concat(buf)
    i = i + 1
  end
end
local w = words(read(call_file))
assert(w[1]:upper() == 'FCALL', call_file .. ' holds no FCALL line')
local nkeys = tonumber(w[3])
local keys, args = {}, {}
for i = 1, nkeys do keys[i] = w[3 + i] end
for i = 4 + nkeys, #w do args[#args + 1] = w[i] end

local entry = assert(loadstring(table.concat(parts), '=library'))()
-- A commit's op keys (their argument positions), for `distinct`: after
-- attempt, name, scope (3), now, nonce, limits (5), origin and the count
-- (main.lua `write_cx`, `decode_ops`).
local key_at = {}
if args[2] == 'commit' then
  local p = 15
  for _ = 1, tonumber(args[14]) do
    key_at[#key_at + 1] = p
    p = p + 5 + tonumber(args[p + 4])
  end
end
assert(not distinct or #key_at > 0, '`distinct` needs a commit call')
-- Each call a new request (a new marker).
local serial = 0
local function run()
  serial = serial + 1
  local a = args
  if distinct then
    a = {}
    for j, v in ipairs(args) do a[j] = v end
    for _, p in ipairs(key_at) do a[p] = args[p] .. ':' .. serial end
  end
  local answer = entry({ keys[1], keys[2], keys[3] and (keys[3] .. serial) }, a)
  if type(answer) == 'table' and answer[1] ~= 'K' then
    error('the call failed: ' .. table.concat(answer, ' ', 2))
  end
end
for _ = 1, 200 do run() end

-- The time per call (stand-in included), and the Redis commands a call runs.
for k in pairs(ran) do ran[k] = 0 end
local t0 = os.clock()
for _ = 1, calls do run() end
local micros = (os.clock() - t0) / calls * 1e6
local commands_run = {}
for k, v in pairs(ran) do commands_run[#commands_run + 1] = string.format('%s %.1f', k, v / calls) end
table.sort(commands_run)

local self_n, incl_n, line_n, total = {}, {}, {}, 0
local function name_of(info)
  local at = where[info.linedefined] or { '?', info.linedefined }
  return at[1] .. ':' .. at[2] .. ' ' .. (info.name or '?')
end
debug.sethook(function()
  local info = debug.getinfo(2, 'Sln')
  if not info or info.source ~= '=library' then return end
  total = total + 1
  local fn = name_of(info)
  self_n[fn] = (self_n[fn] or 0) + 1
  local at = where[info.currentline] or { '?', info.currentline }
  local l = at[1] .. ':' .. at[2]
  line_n[l] = (line_n[l] or 0) + 1
  local seen = {}
  for level = 2, 40 do
    local i = debug.getinfo(level, 'Sn')
    if not i then break end
    if i.source == '=library' then
      local f = name_of(i)
      if not seen[f] then
        seen[f] = true
        incl_n[f] = (incl_n[f] or 0) + 1
      end
    end
  end
end, '', 1)
for _ = 1, calls do run() end
debug.sethook()

-- Bytes allocated, by the line (and function) whose instruction allocated
-- them: the collector stopped, the heap's size read at every instruction.
-- (In Redis each allocation is a jemalloc call and later collector work.)
local alloc_line, alloc_fn = {}, {}
local last, last_line, last_fn = nil, nil, nil
collectgarbage('collect')
collectgarbage('stop')
debug.sethook(function()
  local now = collectgarbage('count')
  if last and last_line and now > last then
    local b = (now - last) * 1024
    alloc_line[last_line] = (alloc_line[last_line] or 0) + b
    alloc_fn[last_fn] = (alloc_fn[last_fn] or 0) + b
  end
  local info = debug.getinfo(2, 'Sln')
  if info and info.source == '=library' then
    local at = where[info.currentline] or { '?', info.currentline }
    last_line, last_fn = at[1] .. ':' .. at[2], name_of(info)
  else
    last_line = nil
  end
  last = collectgarbage('count')
end, '', 1)
for _ = 1, calls do run() end
debug.sethook()
collectgarbage('restart')

-- Calls into C (string.sub, string.char, tonumber, pcall, redis.call…) made
-- by the library's code: each costs far more than a VM instruction.
local c_calls = {}
debug.sethook(function()
  local callee = debug.getinfo(2, 'Sn')
  if not callee or callee.what ~= 'C' then return end
  local caller = debug.getinfo(3, 'S')
  if not caller or caller.source ~= '=library' then return end
  local name = callee.name or '?'
  c_calls[name] = (c_calls[name] or 0) + 1
end, 'c')
for _ = 1, calls do run() end
debug.sethook()

local function top(t, n, title, sum)
  local rows = {}
  for k, v in pairs(t) do rows[#rows + 1] = { k, v } end
  table.sort(rows, function(a, b) return a[2] > b[2] end)
  print(title)
  for i = 1, math.min(n, #rows) do
    print(string.format('%8d  %5.1f%%  %s', math.floor(rows[i][2] / calls), 100 * rows[i][2] / sum, rows[i][1]))
  end
end
local allocated = 0
for _, b in pairs(alloc_line) do allocated = allocated + b end
print(string.format('%s%s: %.1f µs per call in lua5.1 (stand-in included); the library: %d VM instructions, %d bytes allocated per call',
  call_file, distinct and ' (distinct keys)' or '', micros, math.floor(total / calls), math.floor(allocated / calls)))
print('Redis commands per call: ' .. table.concat(commands_run, ', '))
top(incl_n, 30, '-- VM instructions per call, inclusive, by function (module:line name)', total)
top(self_n, 25, '-- VM instructions per call, self, by function', total)
top(line_n, 30, '-- VM instructions per call, self, by line', total)
local c_total = 0
for _, n in pairs(c_calls) do c_total = c_total + n end
top(c_calls, 20, '-- calls into C per call, by name', c_total)
top(alloc_fn, 25, '-- bytes allocated per call, by function', allocated)
top(alloc_line, 40, '-- bytes allocated per call, by line', allocated)

-- Every owner's usage record holds the sum of its records' sizes (key and
-- value) — also across the memo resets of `distinct`.
local TWO32 = 4294967296
for name, t in pairs(db) do
  if type(t) == 'table' then
    local sums = {}
    for k, v in pairs(t) do
      if type(k) == 'string' and type(v) == 'string' and k:sub(1, 1) == 'd' and #k >= 4 then
        local n = k:byte(3) * 256 + k:byte(4)
        local owner = k:sub(2, 4 + n)
        sums[owner] = (sums[owner] or 0) + #k + #v
      end
    end
    for owner, sum in pairs(sums) do
      local u = t['u' .. owner]
      local a, b, c, d, e, f, g, h = (u or ''):byte(1, 8)
      local used = u and (((a * 256 + b) * 256 + c) * 256 + d) * TWO32 + ((e * 256 + f) * 256 + g) * 256 + h
      if used ~= sum then
        error(string.format('usage of %q in %s is %s, its records sum to %d', owner, name, tostring(used), sum))
      end
      print(string.format('usage of %q: %d bytes, the sum of its records (checked)', owner, sum))
    end
  end
end
