# Sourced by scripts/redis-instructions.sh and scripts/redis-ratios.sh (with
# `here` set to the repository and the current directory there): builds
# wasm-state's Redis module and benches/redis_calls.rs (release), and sets
# `module` and `bench` to their paths and `port` to a free loopback port.
cargo build -q --release -p wasm-state-redis-module
module=$here/target/release/libwasm_state_redis.so
bench=$(cargo bench -q -p wasm-state-host --bench redis_calls --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "redis_calls" and m.get("executable"):
        print(m["executable"])' || true)
[ -n "$bench" ] && [ -x "$bench" ] || {
  echo "building benches/redis_calls.rs failed; see: cargo bench -p wasm-state-host --bench redis_calls --no-run" >&2
  exit 1
}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
