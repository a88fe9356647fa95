#!/usr/bin/env bash
# Fuzz the host with cargo-fuzz (libFuzzer) on the stable toolchain.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   build, then fuzz each target
#   scripts/fuzz.sh replay [TARGET...]                  run each committed corpus once
#   scripts/fuzz.sh build [TARGET...]                   build only
#
# Targets: store_ops wit_boundary dapr_http serve_http transfer_parse manifest
# (default: all). Stable rustc runs cargo-fuzz's nightly flags with
# RUSTC_BOOTSTRAP=1. New corpus entries go to fuzz/target/corpus/TARGET
# (not committed; fuzz/corpus/TARGET holds the committed seeds), crashes to
# fuzz/artifacts/TARGET/, logs to fuzz/target/logs/TARGET.log. Exits non-zero
# if any target crashed.
#
# Environment: FUZZ_SANITIZER (none|address, default none; address builds in
# fuzz/target/address, a full rebuild of ~26 min on one core), FUZZ_JOBS (cargo
# jobs, default 1), FUZZ_NICE (default 19), FUZZ_RSS_MB (default 4096),
# FUZZ_ARGS (more libFuzzer flags, e.g. -ignore_crashes=1 -fork=1).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/fuzz"
ALL=(store_ops wit_boundary dapr_http serve_http transfer_parse manifest)
SAN="${FUZZ_SANITIZER:-none}"
JOBS="${FUZZ_JOBS:-1}"
NICE="${FUZZ_NICE:-19}"
RSS="${FUZZ_RSS_MB:-4096}"
TRIPLE="x86_64-unknown-linux-gnu"
# An ASan build gets a target dir of its own (other flags: a full rebuild).
TDIR="$FUZZ/target"
[ "$SAN" != none ] && TDIR="$FUZZ/target/$SAN"
BIN="$TDIR/$TRIPLE/release"
GUEST="$FUZZ/target/guests/wasm32-wasip2/release/customers-http.wasm"

mode=run
seconds=60
case "${1:-}" in
replay | build)
    mode="$1"
    shift
    ;;
'' | *[!0-9]*) ;;
*)
    seconds="$1"
    shift
    ;;
esac
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL[@]}")
for t in "${targets[@]}"; do
    [ -f "$FUZZ/fuzz_targets/$t.rs" ] || {
        echo "unknown target $t (targets: ${ALL[*]})" >&2
        exit 2
    }
done

cd "$ROOT"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    nice -n "$NICE" cargo install -j "$JOBS" cargo-fuzz --version 0.13.2 --locked || exit 1
fi

needs_guest=0
for t in "${targets[@]}"; do [ "$t" = serve_http ] && needs_guest=1; done
if [ "$needs_guest" = 1 ] && [ -z "${WASM_STATE_FUZZ_GUEST:-}" ]; then
    echo "== building the serve_http guest (customers-http, wasm32-wasip2)"
    rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
    CARGO_BUILD_JOBS="$JOBS" nice -n "$NICE" cargo build --release --locked \
        --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml \
        -p customers-http --target-dir "$FUZZ/target/guests" || exit 1
fi

echo "== building (sanitizer: $SAN)"
start=$(date +%s)
for t in "${targets[@]}"; do
    CARGO_BUILD_JOBS="$JOBS" RUSTC_BOOTSTRAP=1 nice -n "$NICE" \
        cargo fuzz build -s "$SAN" --target-dir "$TDIR" "$t" || exit 1
done
echo "== built in $(($(date +%s) - start)) s"
[ "$mode" = build ] && exit 0

mkdir -p "$FUZZ/target/logs"
status=0
for t in "${targets[@]}"; do
    log="$FUZZ/target/logs/$t.log"
    seeds="$FUZZ/corpus/$t"
    mkdir -p "$FUZZ/artifacts/$t" "$seeds"
    dict=()
    [ -f "$FUZZ/dict/$t.dict" ] && dict=("-dict=$FUZZ/dict/$t.dict")
    if [ "$mode" = replay ]; then
        echo "== $t: replaying $(find "$seeds" -type f | wc -l) committed inputs"
        nice -n "$NICE" "$BIN/$t" -runs=0 -rss_limit_mb="$RSS" -timeout=60 -print_final_stats=1 \
            -artifact_prefix="$FUZZ/artifacts/$t/" "$seeds" >"$log" 2>&1
        rc=$?
    else
        work="$FUZZ/target/corpus/$t"
        mkdir -p "$work"
        echo "== $t: fuzzing for $seconds s"
        # shellcheck disable=SC2086
        nice -n "$NICE" "$BIN/$t" "$work" "$seeds" -max_total_time="$seconds" \
            -rss_limit_mb="$RSS" -timeout=60 -print_final_stats=1 \
            -artifact_prefix="$FUZZ/artifacts/$t/" "${dict[@]}" ${FUZZ_ARGS:-} >"$log" 2>&1
        rc=$?
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
    ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
    corp=$(echo "$last" | grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' | cut -d' ' -f2)
    echo "   execs=${execs:-?} execs/s=${rate:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} rc=$rc"
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "   CRASH (log: $log)"
        grep -E 'panicked at|^==[0-9]+==ERROR|SUMMARY' "$log" | head -5 | sed 's/^/   /'
        grep -o 'Test unit written to .*' "$log" | sed 's/^/   /'
    fi
done
exit $status
