#!/usr/bin/env bash
# Where the Redis engine's Lua library spends its work per call, outside
# Redis (inside, callgrind of redis-server shows only the interpreter, whose
# functions have no symbols): Debian's lua5.1 — the Lua Redis embeds — runs
# the library over a table-backed stand-in for the Redis commands it calls
# (scripts/lua-profile/harness.lua), with a host's real arguments, captured
# with `redis-cli monitor` from `benches/redis_calls.rs` writing through the
# library. It prints the time per call, and by Lua function and line the
# VM instructions, bytes allocated and calls into C per call; then checks
# every owner's usage record against its records.
#
#   scripts/lua-profile.sh [set|map|list|tx] [CALLS] [distinct]
#
# distinct: new keys on every call (new records, the record-key memos
# dropped and refilled). Redis's own instructions per call, with the real
# commands: scripts/redis-instructions.sh.
#
# Needs: apt-get install lua5.1 redis-server.
set -euo pipefail
what=${1:-set}
calls=${2:-100}
distinct=${3:-}
case $what in set|map|list|tx) ;; *) echo "what to profile is set, map, list or tx, not $what" >&2; exit 2 ;; esac
[[ $calls =~ ^[1-9][0-9]*$ ]] || { echo "CALLS is a whole number ≥ 1, not $calls" >&2; exit 2; }
case $distinct in ''|distinct) ;; *) echo "the third argument is distinct or nothing, not $distinct" >&2; exit 2 ;; esac
for tool in lua5.1 redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install lua5.1 redis-server" >&2; exit 1; }
done
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
source "$here/scripts/redis-bench-build.sh"
source "$here/scripts/redis-capture-call.sh"
lua5.1 scripts/lua-profile/harness.lua host/src/store/redis "$work/call" "$calls" $distinct
