#!/usr/bin/env bash
# Start-up time of `wasm-state serve` with 1 and 20 apps, with the compiled
# component cache cold (emptied before each run: every app is compiled) and
# warm (every app is loaded from DATA/cache). The 20 apps are
# examples/guests/hello-http with a distinct custom section each, so each is
# a different component (its own cache entry) of the same size.
#
# Measured: from exec until the server answers HTTP on its port (hyperfine,
# 10 runs each). Needs hyperfine and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
cargo build --release -q -p wasm-state-host --bin wasm-state
cargo build --release -q --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml \
  --target-dir target/wasm-guests -p hello-http
BIN=$PWD/target/release/wasm-state
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$PWD/target/wasm-guests/wasm32-wasip2/release/hello-http.wasm" "$WORK" <<'PY'
import sys
src, out = sys.argv[1], sys.argv[2]
base = open(src, "rb").read()
def leb(n):
    b = bytearray()
    while True:
        x = n & 0x7f; n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n: return bytes(b)
for i in range(20):
    name = b"wasm-state-bench"
    payload = leb(len(name)) + name + f"app {i}".encode()
    open(f"{out}/app{i}.wasm", "wb").write(base + b"\x00" + leb(len(payload)) + payload)
PY
cat > "$WORK/start.sh" <<EOF
#!/usr/bin/env bash
# start serve with \$1 apps, wait until it answers, stop it
apps=()
for i in \$(seq 0 \$((\$1 - 1))); do apps+=("app\$i=$WORK/app\$i.wasm"); done
"$BIN" --data "$WORK/data\$1" serve --listen 127.0.0.1:18190 "\${apps[@]}" 2>/dev/null &
pid=\$!
until curl -s -o /dev/null http://127.0.0.1:18190/app0/; do sleep 0.002; done
kill \$pid; wait \$pid 2>/dev/null || true
EOF
chmod +x "$WORK/start.sh"
for n in 1 20; do
  "$WORK/start.sh" "$n"   # creates the data dir
  hyperfine -N --runs "$RUNS" --export-json "$WORK/cold$n.json" \
    --prepare "rm -rf $WORK/data$n/cache" "$WORK/start.sh $n" >/dev/null
  hyperfine -N --runs "$RUNS" --export-json "$WORK/warm$n.json" "$WORK/start.sh $n" >/dev/null
done
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
def stat(name):
    r = json.load(open(f"{w}/{name}.json"))["results"][0]
    return r["mean"] * 1000, r["stddev"] * 1000
print("| apps | cache cold (compile) | cache warm (load) | speed-up |")
print("|---|---|---|---|")
for n in (1, 20):
    (c, cs), (h, hs) = stat(f"cold{n}"), stat(f"warm{n}")
    print(f"| {n} | {c:.0f} ± {cs:.0f} ms | {h:.0f} ± {hs:.0f} ms | {c / h:.1f}x |")
PY
