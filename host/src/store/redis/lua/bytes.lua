-- bytes.lua: byte strings as the Rust side sees them — big-endian integers
-- and byte-wise order. Lua 5.1 numbers are doubles: every integer here stays
-- below 2^53 in magnitude (versions, times, list seqs), so it is exact.
-- (No Rust counterpart: Rust has u64/i64 and &[u8] ordering built in.)

local sub, byte, char, format, min = string.sub, string.byte, string.char, string.format, math.min

local bytes = {}

local TWO32 = 4294967296

-- Digits are split off with `%` and exact division, not `math.floor`: every
-- floor is a call into C, and these run several times per write.
local function u32(n)
  local d = n % 256
  n = (n - d) / 256
  local c = n % 256
  n = (n - c) / 256
  local b = n % 256
  return char((n - b) / 256, b, c, d)
end

-- Two u32 halves as 8 bytes (one string built, not three).
local function u32_pair(hi, lo)
  local h4 = hi % 256
  hi = (hi - h4) / 256
  local h3 = hi % 256
  hi = (hi - h3) / 256
  local h2 = hi % 256
  local l4 = lo % 256
  lo = (lo - l4) / 256
  local l3 = lo % 256
  lo = (lo - l3) / 256
  local l2 = lo % 256
  return char((hi - h2) / 256, h2, h3, h4, (lo - l2) / 256, l2, l3, l4)
end

-- (Below, `lo = n % TWO32` and `(n - lo) / TWO32` are the low half and the
-- floored high half of an integer n, negative or not.)

-- 0 <= n < 2^32 as 8 bytes, big-endian, after the high byte `top` (0, or
-- 128 with the sign bit flipped).
local function u32_as_u64(top, n)
  local d = n % 256
  n = (n - d) / 256
  local c = n % 256
  n = (n - c) / 256
  local b = n % 256
  return char(top, 0, 0, 0, (n - b) / 256, b, c, d)
end

-- A non-negative integer as 8 bytes, big-endian (u64::to_be_bytes).
-- (Versions, sizes and counts are nearly always below 2^32.)
function bytes.be_u64(n)
  if n < TWO32 then return u32_as_u64(0, n) end
  local lo = n % TWO32
  return u32_pair((n - lo) / TWO32, lo)
end

-- A signed integer as 8 bytes, big-endian two's complement (i64::to_be_bytes).
function bytes.be_i64(n)
  if n >= 0 and n < TWO32 then return u32_as_u64(0, n) end
  local lo = n % TWO32
  local hi = (n - lo) / TWO32
  if hi < 0 then hi = hi + TWO32 end
  return u32_pair(hi, lo)
end

-- A signed integer with its sign bit flipped, so that byte order is numeric
-- order ((seq as u64) ^ (1 << 63)).
function bytes.ordered_i64(n)
  if n >= 0 and n < TWO32 then return u32_as_u64(128, n) end
  local lo = n % TWO32
  return u32_pair((n - lo) / TWO32 + 2147483648, lo)
end

local function read_u32(s, at)
  local a, b, c, d = byte(s, at, at + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- The u64 at byte `at` (1-based) of `s`, or nil if `s` is too short.
function bytes.read_u64(s, at)
  if #s < at + 7 then return nil end
  local a, b, c, d, e, f, g, h = byte(s, at, at + 7)
  return (((a * 256 + b) * 256 + c) * 256 + d) * TWO32 + ((e * 256 + f) * 256 + g) * 256 + h
end

-- The i64 at byte `at` (1-based) of `s`, or nil if `s` is too short.
function bytes.read_i64(s, at)
  if #s < at + 7 then return nil end
  local hi = read_u32(s, at)
  if hi >= 2147483648 then hi = hi - TWO32 end
  return hi * TWO32 + read_u32(s, at + 4)
end

-- A u16 / u32 length prefix and the bytes (lp16 / lp32 in layout.rs).
function bytes.lp16(s)
  local n = #s
  local lo = n % 256
  return char((n - lo) / 256, lo) .. s
end

function bytes.lp32(s)
  return u32(#s) .. s
end

-- Byte-wise order (Lua's `<` on strings follows the locale).
function bytes.lt(a, b)
  local n = min(#a, #b)
  for i = 1, n do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The smallest string greater than every string starting with `p`, or nil
-- (layout::prefix_end).
function bytes.prefix_end(p)
  local s = p
  while #s > 0 do
    local last = byte(s, #s)
    s = sub(s, 1, #s - 1)
    if last < 255 then return s .. char(last + 1) end
  end
  return nil
end

-- 16 lower-case hex digits of a non-negative integer (etag_of).
-- (Lua 5.1 formats `%x` from a C long, 64 bits here: exact below 2^53.)
function bytes.hex16(n)
  return format('%016x', n)
end

return bytes
