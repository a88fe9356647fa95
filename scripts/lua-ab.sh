#!/usr/bin/env bash
# Two versions of the Redis engine's Lua library, call by call on one
# redis-server: the library of git revision REV against the working tree's,
# both loaded side by side, the same captured write sent to each in turn
# (scripts/lua-ab/ab.py). The fair wall-clock A/B of a library change:
# `redis-ratios.sh` runs of two host builds differ in more than the library
# (a build whose module version does not match the loaded module sends its
# "module" calls through the library, which changes what the other calls
# find in the caches).
#
#   scripts/lua-ab.sh REV [set|map|list|tx] [CALLS] [durable|memory]
#
# durable (default): appendonly yes, appendfsync always; memory: none.
# Needs: apt-get install redis-server.
set -euo pipefail
rev=${1:?usage: scripts/lua-ab.sh REV [set|map|list|tx] [CALLS] [durable|memory]}
what=${2:-list}
calls=${3:-1500}
mode=${4:-durable}
case $what in set|map|list|tx) ;; *) echo "what to call is set, map, list or tx, not $what" >&2; exit 2 ;; esac
[[ $calls =~ ^[1-9][0-9]*$ ]] || { echo "CALLS is a whole number ≥ 1, not $calls" >&2; exit 2; }
case $mode in durable) persist=always ;; memory) persist=none ;; *) echo "the mode is durable or memory, not $mode" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
git rev-parse --verify -q "$rev^{commit}" >/dev/null || { echo "no such revision: $rev" >&2; exit 2; }
source "$here/scripts/redis-bench-build.sh"
source "$here/scripts/redis-capture-call.sh"
mkdir "$work/old"
git archive "$rev" host/src/store/redis/lua | tar -x -C "$work/old" --strip-components=5
MODE=$persist python3 scripts/lua-ab/ab.py "$work/call" "$calls" "old_$(git rev-parse --short "$rev")=$work/old" "new=host/src/store/redis/lua"
