-- bytes.lua: byte strings as the Rust side sees them — big-endian integers
-- and byte-wise order. Lua 5.1 numbers are doubles: every integer here stays
-- below 2^53 in magnitude (versions, times, list seqs), so it is exact.
-- (No Rust counterpart: Rust has u64/i64 and &[u8] ordering built in.)

local bytes = {}

local TWO32 = 4294967296

local function u32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

-- A non-negative integer as 8 bytes, big-endian (u64::to_be_bytes).
function bytes.be_u64(n)
  local hi = math.floor(n / TWO32)
  return u32(hi) .. u32(n - hi * TWO32)
end

-- A signed integer as 8 bytes, big-endian two's complement (i64::to_be_bytes).
function bytes.be_i64(n)
  local hi = math.floor(n / TWO32)
  local lo = n - hi * TWO32
  if hi < 0 then hi = hi + TWO32 end
  return u32(hi) .. u32(lo)
end

-- A signed integer with its sign bit flipped, so that byte order is numeric
-- order ((seq as u64) ^ (1 << 63)).
function bytes.ordered_i64(n)
  local hi = math.floor(n / TWO32)
  local lo = n - hi * TWO32
  return u32(hi + 2147483648) .. u32(lo)
end

local function read_u32(s, at)
  local a, b, c, d = string.byte(s, at, at + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- The u64 at byte `at` (1-based) of `s`, or nil if `s` is too short.
function bytes.read_u64(s, at)
  if #s < at + 7 then return nil end
  return read_u32(s, at) * TWO32 + read_u32(s, at + 4)
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
  return string.char(math.floor(#s / 256), #s % 256) .. s
end

function bytes.lp32(s)
  return u32(#s) .. s
end

-- Byte-wise order (Lua's `<` on strings follows the locale).
function bytes.lt(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The smallest string greater than every string starting with `p`, or nil
-- (layout::prefix_end).
function bytes.prefix_end(p)
  local s = p
  while #s > 0 do
    local last = string.byte(s, #s)
    s = string.sub(s, 1, #s - 1)
    if last < 255 then return s .. string.char(last + 1) end
  end
  return nil
end

-- 16 lower-case hex digits of a non-negative integer (etag_of).
function bytes.hex16(n)
  local hi = math.floor(n / TWO32)
  return string.format('%08x%08x', hi, n - hi * TWO32)
end

return bytes
