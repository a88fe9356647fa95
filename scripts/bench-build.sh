# Sourced by the bench scripts: `bench_build NAME` builds the host's bench
# NAME (benches/NAME.rs, release) and prints the path of its executable, or
# says how to see the build's errors and exits.
bench_build() {
  local name=$1 path
  path=$(cargo bench -q -p wasm-state-host --bench "$name" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
name = sys.argv[1]
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name and m.get("executable"):
        print(m["executable"])' "$name" || true)
  [ -n "$path" ] && [ -x "$path" ] || {
    echo "building benches/$name.rs failed; see: cargo bench -p wasm-state-host --bench $name --no-run" >&2
    exit 1
  }
  echo "$path"
}
