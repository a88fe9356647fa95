-- The Redis engine's Lua library with a table-backed stand-in for Redis
-- (see scripts/lua-profile.sh). Arguments: which (set | tx | txu), rounds,
-- the assembled library.

-- A stand-in for the commands the library calls.
local H, Z, S = {}, {}, {}
local calls = 0
local function hash(k) H[k] = H[k] or {}; return H[k] end
local function zs(k) Z[k] = Z[k] or {}; return Z[k] end
redis = {}
function redis.call(cmd, ...)
  calls = calls + 1
  local a = {...}
  if cmd == 'HGET' then local v = hash(a[1])[a[2]]; return v == nil and false or v
  elseif cmd == 'HMGET' then local h, out = hash(a[1]), {}; for i = 2, #a do local v = h[a[i]]; out[i-1] = v == nil and false or v end; return out
  elseif cmd == 'HSET' then local h = hash(a[1]); for i = 2, #a, 2 do h[a[i]] = a[i+1] end; return 1
  elseif cmd == 'HDEL' then local h = hash(a[1]); for i = 2, #a do h[a[i]] = nil end; return 1
  elseif cmd == 'ZADD' then local z = zs(a[1]); for i = 3, #a, 2 do z[a[i]] = true end; return 1
  elseif cmd == 'ZREM' then local z = zs(a[1]); for i = 2, #a do z[a[i]] = nil end; return 1
  elseif cmd == 'ZRANGEBYLEX' or cmd == 'ZREVRANGEBYLEX' then return {}
  elseif cmd == 'SET' then S[a[1]] = a[2]; return 'OK'
  elseif cmd == 'GET' then return S[a[1]] or false
  elseif cmd == 'UNLINK' then return 1
  else error('mock: ' .. cmd) end
end
cmsgpack = { pack = function(t) return 'x' end, unpack = function(s) return {} end }
local fn
function redis.register_function(name, f) fn = f end
dofile(arg[3] or 'lib.lua')

local function be64(n) local t = {} for i = 8, 1, -1 do t[i] = string.char(n % 256); n = math.floor(n / 256) end return table.concat(t) end
local now = be64(1767225600000)
local which = arg[1] or 'set'
local N = tonumber(arg[2] or '20000')
local function args_for(i)
  local a = { 'f', 'commit', 'i', 'bench', '', now, 'abcd1234', '1073741824', '1073741824', '1000', '10000', '' }
  local nops = (which == 'tx' or which == 'txu') and 10 or 1
  a[#a+1] = tostring(nops)
  for j = 1, nops do
    local key = (which == 'txu' and ('u' .. i .. ':' .. j)) or (which == 'tx' and ('k' .. j)) or 'hot'
    a[#a+1] = key; a[#a+1] = 'set'; a[#a+1] = ''; a[#a+1] = ''; a[#a+1] = '2'
    a[#a+1] = '{"name":"Ada","phone":"+441234"}'; a[#a+1] = ''
  end
  return a
end
local keys = { '{ws:i:bench}h', '{ws:i:bench}z', '{ws:i:bench}m:x' }
-- warm
for i = 1, 100 do local r = fn(keys, args_for(i)); assert(r[1] == 'K', tostring(r[2]) .. tostring(r[4]) .. tostring(r[5])) end
local prof = os.getenv('PROF')
local counts = {}
if prof then
  debug.sethook(function()
    local info = debug.getinfo(2, "Sl"); if os.getenv("FN") == "1" then local f = debug.getinfo(2, "S"); info = { short_src = f.short_src, currentline = f.linedefined } end
    if info then local k = info.short_src .. ':' .. (info.currentline or 0); counts[k] = (counts[k] or 0) + 1 end
  end, '', 1000)
end
calls = 0
local a = args_for(0)
local t0 = os.clock()
for i = 1, N do fn(keys, a) end
local dt = os.clock() - t0
debug.sethook()
print(string.format('%s: %.2f us per call, %.1f redis.calls per call', which, dt / N * 1e6, calls / N))
if prof then
  local lines = {}
  for k, v in pairs(counts) do lines[#lines+1] = { k, v } end
  table.sort(lines, function(x, y) return x[2] > y[2] end)
  local total = 0 for _, l in ipairs(lines) do total = total + l[2] end
  for i = 1, math.min(40, #lines) do print(string.format('%5.1f%% %s', lines[i][2] * 100 / total, lines[i][1])) end
end
if which == 'txu' then
  -- distinct keys through the memo resets: every record must be where it belongs
  for i = 1, 1000 do local r = fn(keys, args_for(i)); assert(r[1] == 'K') end
  local h = H['{ws:i:bench}h']
  local n = 0
  for k, v in pairs(h) do if k:sub(1,1) == 'd' then n = n + 1 end end
  local usage = h['u' .. 'i' .. string.char(0, 5) .. 'bench']
  print('data records', n, 'usage bytes', usage and #usage)
end
if which == 'txu' then
  local h = H['{ws:i:bench}h']
  local sum = 0
  for k, v in pairs(h) do if k:sub(1,1) == 'd' then sum = sum + #k + #v end end
  local u = h['u' .. 'i' .. string.char(0, 5) .. 'bench']
  local a, b, c, d, e, f, g, hh = u:byte(1, 8)
  local used = ((((((a*256+b)*256+c)*256+d)*256+e)*256+f)*256+g)*256+hh
  print('usage', used, 'sum of records', sum, used == sum and 'OK' or 'MISMATCH')
end
