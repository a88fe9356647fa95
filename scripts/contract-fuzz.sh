#!/usr/bin/env bash
# Contract fuzzing of the Dapr-compatible API, long mode: schemathesis runs
# docs/dapr-openapi.yaml against a live `wasm-state serve --dapr-listen`
# (every check, tests/schemathesis.toml's exceptions) and fails on any 5xx
# or answer the document does not allow. The CI mode, bounded and seeded,
# is tests/tests/dapr_contract.rs.
#
#   scripts/contract-fuzz.sh [MAX_EXAMPLES]    default 500 per operation
#
# Environment: SEED (default: random, printed), MAX_TIME (seconds, a time
# budget for the whole run: fuzzing and stateful testing repeat until it is
# spent), WORKERS (default 1), ST_ARGS (more `st run` flags), NICE (default
# 19, for the cargo build). Needs `pip install schemathesis==4.32.5`.
# Writes the report, the server log and the schemathesis output to
# target/contract-fuzz/.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="4.32.5"
MAX_EXAMPLES="${1:-500}"
WORKERS="${WORKERS:-1}"
OUT="$ROOT/target/contract-fuzz"

ST=""
for c in schemathesis st; do
  if command -v "$c" >/dev/null && "$c" --version 2>/dev/null | grep -q "version $VERSION"; then
    ST="$c"
    break
  fi
done
if [ -z "$ST" ]; then
  echo "schemathesis $VERSION not found: pip install schemathesis==$VERSION" >&2
  exit 2
fi

nice -n "${NICE:-19}" cargo build -j 1 -q -p wasm-state-host --bin wasm-state \
  --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/debug/wasm-state"

mkdir -p "$OUT"
DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export DAPR_API_TOKEN="contract-fuzz-$RANDOM$RANDOM"
"$BIN" --data "$DATA" serve --dapr-listen "127.0.0.1:$PORT" >"$OUT/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$SERVER" || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done

args=(--url "http://127.0.0.1:$PORT" --max-examples "$MAX_EXAMPLES" --workers "$WORKERS"
  --generation-database none --no-color --report junit --report-dir "$OUT")
[ -n "${SEED:-}" ] && args+=(--seed "$SEED")
[ -n "${MAX_TIME:-}" ] && args+=(--max-time "$MAX_TIME")
# shellcheck disable=SC2206 # ST_ARGS is a list of flags
[ -n "${ST_ARGS:-}" ] && args+=($ST_ARGS)

echo "== $ST $("$ST" --version | sed 's/.*version //') on 127.0.0.1:$PORT, $MAX_EXAMPLES examples per operation"
start=$(date +%s)
# Run from $OUT so schemathesis's own cache (.schemathesis/) stays out of the repo.
set +e
(cd "$OUT" && "$ST" --config-file "$ROOT/tests/schemathesis.toml" run "$ROOT/docs/dapr-openapi.yaml" "${args[@]}") \
  2>&1 | tee "$OUT/schemathesis.txt"
status=${PIPESTATUS[0]}
set -e
echo "== $(($(date +%s) - start)) s; output in $OUT"
if grep -q "panicked" "$OUT/server.log"; then
  echo "the server panicked:" >&2
  grep -A5 "panicked" "$OUT/server.log" >&2
  status=1
fi
kill -0 "$SERVER" 2>/dev/null || { echo "the server died" >&2; status=1; }
exit "$status"
