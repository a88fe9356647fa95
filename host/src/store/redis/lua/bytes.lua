-- bytes.lua: byte strings as the Rust side sees them — big-endian integers
-- and byte-wise order. Lua 5.1 numbers are doubles: every integer here stays
-- below 2^53 in magnitude (versions, times, list seqs), so it is exact.
-- (No Rust counterpart: Rust has u64/i64 and &[u8] ordering built in.)

local sub, byte, char, format, floor, min = string.sub, string.byte, string.char, string.format, math.floor, math.min

local bytes = {}

local TWO32 = 4294967296

local function u32(n)
  return char(floor(n / 16777216) % 256, floor(n / 65536) % 256,
    floor(n / 256) % 256, n % 256)
end

-- Two u32 halves as 8 bytes (one string built, not three).
local function u32_pair(hi, lo)
  return char(floor(hi / 16777216) % 256, floor(hi / 65536) % 256, floor(hi / 256) % 256, hi % 256,
    floor(lo / 16777216) % 256, floor(lo / 65536) % 256, floor(lo / 256) % 256, lo % 256)
end

-- A non-negative integer as 8 bytes, big-endian (u64::to_be_bytes).
function bytes.be_u64(n)
  local hi = floor(n / TWO32)
  return u32_pair(hi, n - hi * TWO32)
end

-- A signed integer as 8 bytes, big-endian two's complement (i64::to_be_bytes).
function bytes.be_i64(n)
  local hi = floor(n / TWO32)
  local lo = n - hi * TWO32
  if hi < 0 then hi = hi + TWO32 end
  return u32_pair(hi, lo)
end

-- A signed integer with its sign bit flipped, so that byte order is numeric
-- order ((seq as u64) ^ (1 << 63)).
function bytes.ordered_i64(n)
  local hi = floor(n / TWO32)
  local lo = n - hi * TWO32
  return u32_pair(hi + 2147483648, lo)
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
  return char(floor(#s / 256), #s % 256) .. s
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
function bytes.hex16(n)
  local hi = floor(n / TWO32)
  return format('%08x%08x', hi, n - hi * TWO32)
end

return bytes
