#!/usr/bin/env bash
# Issue 13's first goal, several times over: RUNS runs of
# `compare -- burst ROUNDS` (one round of 64 concurrent durable writes on
# wasm-state, as 64 native redb commits and as 64 SETs on Redis
# `appendfsync always`, taking turns), then each run's ratios of the
# medians, the median over the runs, and in how many runs each goal held
# (≥ 30× native redb, ≥ 2× Redis `always`). One run's ratio follows the
# disk's speed at the time, which swings here several-fold within minutes;
# the spread over runs is the figure to quote.
#
#   scripts/burst-runs.sh [RUNS] [ROUNDS]     # default 5 runs of 300 rounds
#
# Builds the bench (release). Needs redis-server on PATH
# (apt-get install redis-server).
set -euo pipefail
runs=${1:-5}
rounds=${2:-300}
for n in "$runs" "$rounds"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "RUNS and ROUNDS are whole numbers ≥ 1, not $n" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "redis-server is needed: apt-get install redis-server" >&2; exit 1; }
cd "$(dirname "$0")/.."
source scripts/bench-build.sh
bench=$(bench_build compare) || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$runs"); do
  "$bench" --bench burst "$rounds" | tee -a "$out" | grep -E '^(wasm-state|64 concurrent)' | sed "s/^/run $r: /"
done
python3 - "$out" <<'EOF'
import re, statistics, sys
native, redis = [], []
for line in open(sys.argv[1]):
    m = re.search(r"wasm-state ([\d.]+)× faster than native redb, ([\d.]+)× faster than Redis always", line)
    if m:
        native.append(float(m.group(1)))
        redis.append(float(m.group(2)))
if not native:
    sys.exit("no run printed its ratios")
n = len(native)
both = sum(1 for a, b in zip(native, redis) if a >= 30 and b >= 2)
print(f"÷ native redb: {', '.join(f'{x:.1f}×' for x in native)}; median {statistics.median(native):.1f}× (goal ≥ 30×, held in {sum(x >= 30 for x in native)} of {n} runs)")
print(f"÷ Redis always: {', '.join(f'{x:.2f}×' for x in redis)}; median {statistics.median(redis):.2f}× (goal ≥ 2×, held in {sum(x >= 2 for x in redis)} of {n} runs)")
print(f"both goals held in {both} of {n} runs")
EOF
