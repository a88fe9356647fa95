#!/usr/bin/env bash
# Profile the Redis engine's Lua library outside Redis: Debian's lua5.1
# runs the same modules (assembled in the order of store/redis/script.rs)
# with a table-backed stand-in for redis.call, times a 1-set commit and a
# 10-set transaction, and with --profile samples every 1,000 VM
# instructions and prints the hottest functions (module:line).
#
#   scripts/lua-profile.sh              # times
#   scripts/lua-profile.sh --profile tx # where a transaction's time goes
#
# Needs: apt-get install lua5.1. Redis's own CPU per call, with the real
# commands, is printed by `cargo bench -p wasm-state-host --bench redis`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lua_dir="$here/../host/src/store/redis/lua"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v lua5.1 >/dev/null || { echo "lua5.1 is needed: apt-get install lua5.1" >&2; exit 1; }
# The module order, read from script.rs so the two cannot drift apart.
modules=$(grep -oE '^\s*\("[a-z]+", include_str!' "$here/../host/src/store/redis/script.rs" | grep -oE '"[a-z]+"' | tr -d '"')
{
  for m in $modules; do echo "local $m"; done
  echo "local dispatch"
  echo "local function init()"
  for m in $modules; do echo "$m = (function()"; cat "$lua_dir/$m.lua"; echo; echo "end)()"; done
  echo "dispatch = (function()"; cat "$lua_dir/main.lua"; echo; echo "end)()"
  echo "end"
  echo "local function entry(keys, args)"
  echo "  if not dispatch then init() end"
  echo "  return dispatch(keys, args)"
  echo "end"
  echo "redis.register_function('f', entry)"
} > "$work/lib.lua"
cd "$work"
if [ "${1:-}" = "--profile" ]; then
  which="${2:-tx}"
  FN=1 PROF=1 lua5.1 "$here/lua-profile/harness.lua" "$which" 3000 "$work/lib.lua" | python3 -c '
import re, sys
lines = open(sys.argv[1]).read().split("\n")
starts = []
for i, l in enumerate(lines, 1):
    m = re.match(r"^(\w+) = \(function\(\)$", l)
    if m: starts.append((i + 1, m.group(1)))
    if l == "dispatch = (function()": starts.append((i + 1, "main"))
def where(n):
    best = None
    for s, name in starts:
        if s <= n: best = (s, name)
    return f"{best[1]}.lua:{n - best[0] + 1}" if best else f"lib:{n}"
for l in sys.stdin:
    m = re.match(r"\s*([\d.]+)% (.*):(\d+)", l)
    if m and "lib.lua" in m.group(2):
        n = int(m.group(3))
        print(f"{m.group(1):>5}% {where(n):24} {lines[n - 1].strip()[:80]}")
    else:
        print(l.rstrip())
' "$work/lib.lua" | head -40
else
  lua5.1 "$here/lua-profile/harness.lua" set 20000 "$work/lib.lua"
  lua5.1 "$here/lua-profile/harness.lua" tx 5000 "$work/lib.lua"
  lua5.1 "$here/lua-profile/harness.lua" txu 10 "$work/lib.lua" | tail -1
fi
