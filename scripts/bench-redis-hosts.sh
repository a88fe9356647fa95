#!/usr/bin/env bash
# Hosts sharing one Redis (a script, not a CI test): requests/s of the
# stateful handler (POST /visit: 1 read + 1 write) with 1 and with 3
# `wasm-state serve` hosts on one redis-server (appendfsync always), wrk on
# loopback, same machine, same run; checks the counter is exact afterwards.
# On a 2-core machine the three hosts, Redis and wrk share the cores, so
# the 3-host figure shows the cost of sharing, not the scaling of real
# separate machines.
# Needs: wrk, redis-server. Usage: scripts/bench-redis-hosts.sh [seconds] [connections per host]
# WASM_STATE_BIN=path runs that build of wasm-state instead of this
# checkout's (to compare two versions, alternate runs of each).
# WASM_STATE_REDIS_MODULE=path loads wasm-state's Redis module
# (libwasm_state_redis.so) into the server and runs each host count twice:
# writes through the Lua library (?module=off) and through the module.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is missing: apt-get install redis-server" >&2; exit 1; }
echo "== building (release)" >&2
cargo build --release -q -p wasm-state-host --bin wasm-state
cargo build --release -q --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml --target-dir target/wasm-guests
APP=target/wasm-guests/wasm32-wasip2/release/customers-http.wasm
BIN=${WASM_STATE_BIN:-target/release/wasm-state}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
MODULE_ARGS=()
if [ -n "${WASM_STATE_REDIS_MODULE:-}" ]; then MODULE_ARGS=(--loadmodule "$WASM_STATE_REDIS_MODULE"); fi
redis-server --port 16390 --save "" --appendonly yes --appendfsync always --dir "$TMP" "${MODULE_ARGS[@]}" --daemonize no >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5
POST_LUA="$TMP/post.lua"; echo 'wrk.method = "POST"' > "$POST_LUA"
wait_up() { for _ in $(seq 200); do curl -s -o /dev/null -X POST "http://$1/visit" && return 0; sleep 0.1; done; echo "no server on $1" >&2; exit 1; }
rps() { awk '/Requests\/sec/ {print $2}'; }

run() { # run N-hosts namespace [module=off|auto]
  local n=$1 ns=$2 module=${3:-off} ports=() outs=()
  for i in $(seq 1 "$n"); do
    local port=$((18300 + i))
    "$BIN" --store "redis://127.0.0.1:16390?namespace=$ns&module=$module" --data "$TMP/d$i" serve --listen "127.0.0.1:$port" "$APP" >/dev/null 2>&1 & PIDS+=($!)
    ports+=("$port")
  done
  for p in "${ports[@]}"; do wait_up "127.0.0.1:$p"; done
  for p in "${ports[@]}"; do wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$POST_LUA" "http://127.0.0.1:$p/visit" > "$TMP/wrk-$ns-$p" & outs+=($!); done
  wait "${outs[@]}"
  local total=0
  for p in "${ports[@]}"; do total=$(python3 -c "print($total + $(rps < "$TMP/wrk-$ns-$p"))"); done
  local count; count=$("$BIN" --store "redis://127.0.0.1:16390?namespace=$ns" state get visits -i customers-http 2>/dev/null)
  for p in "${PIDS[@]:1}"; do kill "$p" 2>/dev/null || true; done
  PIDS=("${PIDS[0]}")
  echo "$n $total $count $module" > "$TMP/result-$ns"
}
run 1 one
run 3 three
RESULTS=("$(cat "$TMP/result-one")" "$(cat "$TMP/result-three")")
if [ -n "${WASM_STATE_REDIS_MODULE:-}" ]; then
  run 1 onem auto
  run 3 threem auto
  RESULTS+=("$(cat "$TMP/result-onem")" "$(cat "$TMP/result-threem")")
fi
python3 - "$DURATION" "$CONNS" "${RESULTS[@]}" <<'PY'
import sys
rows = [l.split() for l in sys.argv[3:]]
base = float(rows[0][1])
print(f"POST /visit (1 read + 1 write), wrk -c{sys.argv[2]} per host, {sys.argv[1]} s, one redis-server (appendfsync always)")
print("| writes through | hosts | req/s (sum) | vs 1 host, Lua | visits counted |")
print("|---|---|---|---|---|")
for n, total, count, module in rows:
    via = "Lua library" if module == "off" else "Redis module"
    print(f"| {via} | {n} | {float(total):,.0f} | {float(total)/base:.2f}x | {count} |")
PY
