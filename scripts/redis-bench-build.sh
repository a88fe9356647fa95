# Sourced by scripts/redis-instructions.sh and scripts/redis-ratios.sh (with
# `here` set to the repository and the current directory there): builds
# wasm-state's Redis module and benches/redis_calls.rs (release), and sets
# `module` and `bench` to their paths and `port` to a free loopback port.
cargo build -q --release -p wasm-state-redis-module
module=$here/target/release/libwasm_state_redis.so
source "$here/scripts/bench-build.sh"
bench=$(bench_build redis_calls) || exit 1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
