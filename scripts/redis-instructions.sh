#!/usr/bin/env bash
# Instructions per Redis-engine write, on both sides, under valgrind's
# callgrind: a stable measure for A/B of the engine and the module on a
# shared machine, where wall-clock of a ~50 µs call moves ±30 % run to run.
#
#   scripts/redis-instructions.sh [set|map|list|tx|native-set|native-map|native-list|native-tx] [CALLS] [URL-QUERY]
#
# Builds the module and `benches/redis_calls.rs` (release), starts
# redis-server (no persistence) with the module under callgrind on a free
# port, runs CALLS writes (native-*: the redis-rs client's plain SET, HSET,
# RPUSH or MULTI/EXEC of 10 SETs, the baseline) after a warm-up and prints
# Redis's instructions per call (user space; counters zeroed after the warm-up); then runs the
# host process alone under callgrind against a plain server with the module
# and prints its instructions per call (start-up included, spread over the
# calls). URL-QUERY `module=off` measures the Lua library instead.
# KEEP=DIR keeps both callgrind files there (callgrind_annotate reads them).
# Needs: apt-get install valgrind redis-server.
set -euo pipefail
what=${1:-set}
calls=${2:-3000}
query=${3:-}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
for tool in valgrind callgrind_control redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "$tool is needed: apt-get install valgrind redis-server" >&2; exit 1; }
done
source "$here/scripts/redis-bench-build.sh"
# BENCH=PATH: another build of benches/redis_calls.rs (an A/B of two builds).
bench=${BENCH:-$bench}
work=$(mktemp -d)
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
url="redis://127.0.0.1:$port${query:+?$query}"

# 1. Redis under callgrind.
valgrind --tool=callgrind --callgrind-out-file="$work/redis.%p" \
  redis-server --port "$port" --save '' --appendonly no --dir "$work" --loadmodule "$module" \
  >"$work/redis.log" 2>&1 &
vg=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
WASM_STATE_BENCH_REDIS=$url AFTER_WARMUP="callgrind_control -z $vg >/dev/null 2>&1" "$bench" "$what" "$calls" >/dev/null
callgrind_control -d "$vg" >/dev/null 2>&1
sleep 0.5
redis_ir=$(grep -h '^summary:\|^totals:' "$work"/redis.*.1 | head -1 | awk '{print $2}')
used=$(redis-cli -p "$port" info commandstats | { grep -o 'cmdstat_\(wasmstate.commit\|fcall\|set\|hset\|rpush\|exec\)' || true; } | sed 's/cmdstat_//' | paste -sd, -)
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$vg" 2>/dev/null || true

# 2. The host process under callgrind, Redis plain.
redis-server --port "$port" --save '' --appendonly no --dir "$work" --loadmodule "$module" --daemonize yes --logfile "$work/plain.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
WASM_STATE_BENCH_REDIS=$url valgrind --tool=callgrind --callgrind-out-file="$work/host" "$bench" "$what" "$calls" >/dev/null 2>&1
host_ir=$(grep -h '^summary:\|^totals:' "$work/host" | head -1 | awk '{print $2}')
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$work"/redis.*.1 "$KEEP/redis.callgrind"; cp "$work/host" "$KEEP/host.callgrind"; fi

echo "$what (Redis ran: ${used:-?}): Redis $((redis_ir / calls)) instructions per call; host $((host_ir / (calls + 200))) instructions per call (start-up included)"
