#!/usr/bin/env bash
# The crash-safety harness (tests/tests/crash.rs) in its long mode: every
# test with WASM_STATE_CRASH_TRIALS trials (default 50) — redb (SIGKILL of
# the host under concurrent writers, during the sweeper, around instance
# destroy) and Redis with appendfsync always (SIGKILL of the host, and of
# redis-server itself once per 10 trials) — then a summary: trials, kills,
# acknowledged writes, items checked, violations (must be 0).
#
#   scripts/crash-long.sh                 # 50 trials per test
#   TRIALS=200 scripts/crash-long.sh      # longer
#   WASM_STATE_CRASH_SEED=N scripts/crash-long.sh   # replay a schedule
#   WASM_STATE_CRASH_REDIS_MODULE=1 scripts/crash-long.sh   # Redis trials with wasm-state's Redis module loaded
#
# Needs redis-server on PATH. The full log is kept in target/crash-long.log.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${TRIALS:-50}
LOG=target/crash-long.log
mkdir -p target
echo "crash harness, long mode: $TRIALS trials per test (log: $LOG)"
started=$(date +%s)
status=0
# One test at a time: the kill moments are random, but the machine's load
# should not make them all land in the same phase.
WASM_STATE_CRASH_TRIALS=$TRIALS cargo test -p wasm-state-e2e --test crash -- \
  --nocapture --test-threads 1 >"$LOG" 2>&1 || status=$?
elapsed=$(($(date +%s) - started))
grep -E '^(CRASH-SUMMARY|VIOLATION|destroy trials|.*: seed )' "$LOG" || true
grep -E '^sweeper trial' "$LOG" | awk '
  { for (i = 1; i <= NF; i++) if ($i == "bytes") { b = $(i - 1); n++; if (b > 0) left++ } }
  END { if (n) printf "sweeper: %d of %d restarts found expired keys still to sweep\n", left, n }'
awk '
  /^CRASH-SUMMARY/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    trials += v["trials"]; kills += v["kills"]; acked += v["acked"];
    checked += v["checked"]; failed += v["failed_ops"]; violations += v["violations"]; tests++
  }
  END {
    printf "\nTOTAL: %d tests, %d trials, %d kills, %d writes acknowledged, %d acknowledged items checked, %d failing batches checked, %d violations\n",
      tests, trials, kills, acked, checked, failed, violations
  }' "$LOG"
echo "elapsed: ${elapsed}s"
if [ "$status" -ne 0 ]; then
  echo "the harness FAILED (exit $status); see $LOG" >&2
  grep -E 'panicked|VIOLATION' "$LOG" | head -20 >&2 || true
fi
exit "$status"
