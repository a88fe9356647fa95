#!/usr/bin/env python3
"""Print criterion results as ratio tables.

store groups: wasm_state time / native_redb time (same run, same process);
read_dispatch: spawn_blocking time / inline time.
guest groups (tests/benches/guest.rs): guest component time / native Rust on
the same Store.
scale groups: time at the largest size / time at the smallest size.
Usage: cargo bench -p wasm-state-host && python3 scripts/bench-ratios.py
       cargo bench -p wasm-state-e2e --bench guest && python3 scripts/bench-ratios.py
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def mean_ns(path):
    est = json.loads((path / "new" / "estimates.json").read_text())
    return est["mean"]["point_estimate"]


def fmt(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.2f} {unit}"
    return f"{ns:.0f} ns"


# (measured, baseline) pairs of function names within a group.
PAIRS = [("wasm_state", "native_redb"), ("wasm_state", "native_redis"), ("spawn_blocking", "inline"), ("guest", "native")]
# Further measured functions of a group, against the same baseline (the
# Redis engine with wasm-state's Redis module next to it without).
EXTRA = [("wasm_state_module", "native_redis")]

rows = []
for group in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "report"):
    runs = {p.name: mean_ns(p) for p in group.iterdir() if (p / "new" / "estimates.json").exists()}
    pair = next(((x, y) for x, y in PAIRS if {x, y} <= runs.keys()), None)
    if pair:
        x, y = pair
        a, b = runs[x], runs[y]
        rows.append((group.name, f"{x} {fmt(a)}", f"{y} {fmt(b)}", f"{a / b:.2f}x"))
        for x, y in EXTRA:
            if {x, y} <= runs.keys():
                a, b = runs[x], runs[y]
                rows.append((group.name, f"{x} {fmt(a)}", f"{y} {fmt(b)}", f"{a / b:.2f}x"))
    elif all(k.isdigit() for k in runs) and len(runs) >= 2:
        sizes = sorted(runs, key=int)
        lo, hi = sizes[0], sizes[-1]
        rows.append((group.name, f"n={lo}: {fmt(runs[lo])}", f"n={hi}: {fmt(runs[hi])}",
                     f"{runs[hi] / runs[lo]:.2f}x"))

print("| benchmark | ours / small | baseline / large | ratio |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
