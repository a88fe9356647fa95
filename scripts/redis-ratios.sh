#!/usr/bin/env bash
# Wall-clock ratios of Redis-engine writes to the native redis-rs client
# that hold on a shared machine: the baseline, the engine through
# wasm-state's module and through the Lua library take turns call by call
# (the order rotating), 200 calls each per round, and each round gives its
# own ratios (`benches/redis_calls.rs alternate`). A criterion A/B times
# the two seconds apart and moves ±30 % run to run here; so did rounds of
# 200 calls in a row against a durable server, whose fsync latency changes
# from one 20 ms to the next.
#
#   scripts/redis-ratios.sh [durable|everysec|memory] [ROUNDS] [OPS…]
#
# durable (default): redis-server with `appendonly yes, appendfsync always`
# (what the engine's start-up check asks for); everysec: `appendfsync
# everysec` (the append-only file written before each reply and synced once
# a second — Redis's default sync policy for it); memory: no persistence.
# OPS: any of get set map list tx (default: all five). Builds the module and the
# bench (release), starts redis-server with the module on a free port in a
# temporary directory, stops it after.
# Needs: apt-get install redis-server.
set -euo pipefail
mode=${1:-durable}
rounds=${2:-30}
shift $(( $# > 2 ? 2 : $# ))
ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(get set map list tx)
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS is a whole number of rounds ≥ 1, not $rounds" >&2; exit 2; }
for op in "${ops[@]}"; do
  case $op in get|set|map|list|tx) ;; *) echo "an op is get, set, map, list or tx, not $op" >&2; exit 2 ;; esac
done
case $mode in
  durable) persist=(--appendonly yes --appendfsync always --save '') ;;
  memory) persist=(--appendonly no --save '') ;;
  everysec) persist=(--appendonly yes --appendfsync everysec --save '') ;;
  *) echo "the first argument is durable, everysec or memory, not $mode" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 1; }
source "$here/scripts/redis-bench-build.sh"
work=$(mktemp -d)
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" "${persist[@]}" --loadmodule "$module" \
  --daemonize yes --logfile "$work/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "redis-server $(redis-server --version | grep -o 'v=[0-9.]*'), $mode, $rounds rounds of 200 calls per side"
for op in "${ops[@]}"; do
  WASM_STATE_BENCH_REDIS="redis://127.0.0.1:$port" "$bench" alternate "$op" "$rounds"
done
calls=$(redis-cli -p "$port" info commandstats | grep -o 'cmdstat_wasmstate.commit:calls=[0-9]*' || true)
echo "module calls: ${calls#*=}"
