# Sourced by scripts/lua-profile.sh and scripts/lua-ab.sh (after
# scripts/redis-bench-build.sh, with `here` set and the current directory
# there): builds nothing more; makes `work` (a temporary directory, removed
# on exit with the server below) and writes to "$work/call" one write call
# (an FCALL of a commit) of kind `what`, as a host sends it, captured with
# `redis-cli monitor` from benches/redis_calls.rs writing through the Lua
# library to a redis-server of its own (no persistence) on `port`.
work=$(mktemp -d)
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
redis-server --port "$port" --save '' --appendonly no --dir "$work" --daemonize yes --logfile "$work/log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$port" monitor >"$work/monitor" &
mon=$!
sleep 0.3
WASM_STATE_BENCH_REDIS="redis://127.0.0.1:$port?module=off" "$bench" "$what" 5 >/dev/null
sleep 0.3
kill "$mon" 2>/dev/null || true
# The last write call (a commit) the bench made.
grep '"FCALL"' "$work/monitor" | grep ' "commit" ' | tail -1 >"$work/call"
[ -s "$work/call" ] || { echo "no FCALL of a commit was captured" >&2; exit 1; }
