#!/usr/bin/env python3
"""Relay benchmark (group `relay`): ironhouse's relay against tlspyo 0.3.0 and
against NATS, in the same run, interleaved (odd runs anchor first, even runs
ours first), each result a median over the runs with its spread.

    python3 bench/relay.py [--runs N] [--quick] [--scenario NAME ...]
                           [--ironhouse target/release/ironhouse]

Scenarios (ours: `ironhouse bench relay-*`; see crates/ironhouse-cli/src/bench/relay.rs):
  produce-tls     100 B objects, producer -> consumer holding one big credit,
                  <= 1000 in flight; TLS + password   vs bench/tlspyo_anchor.py
  broadcast-tls   1 MiB broadcasts, <= 4 in flight; TLS + password   vs tlspyo
  rtt-tls         100 B broadcast ping-pong, median and p99   vs tlspyo
  fanout-1, -4    128 B broadcasts to 1 and 4 subscribers, as fast as the
                  publisher goes, per-subscriber rate   vs nats-server + async-nats
                  (bench/nats_bench.py)

tlspyo runs in the venv of scripts/test-all.sh (`.venv`, or IRONHOUSE_PYTHON).
Writes OUT/relay.jsonl (one line per scenario and metric: scenario, metric,
unit, ours, anchor, ratio, runs, min/max of each) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

# name: (ours args, anchor kind, anchor args, metrics [(key, unit, better)])
SCENARIOS = {
    "produce-tls": (["relay-produce", "100", "{n}", "--tls"], "tlspyo",
                    ["produce", "100", "{m}", "--security", "tls"],
                    [("objs_per_sec", "obj/s", "higher")], (1_000_000, 100_000), (100_000, 20_000)),
    "broadcast-tls": (["relay-broadcast", "1048576", "{n}", "--tls"], "tlspyo",
                      ["broadcast", "1048576", "{m}", "--security", "tls"],
                      [("mb_per_sec", "MB/s", "higher")], (2000, 300), (300, 60)),
    "rtt-tls": (["relay-rtt", "{n}", "--tls"], "tlspyo", ["rtt", "{m}", "--security", "tls"],
                [("median_us", "µs", "lower"), ("p99_us", "µs", "lower")], (20_000, 60), (2000, 30)),
    "fanout-1": (["relay-fanout", "1", "128", "{n}"], "nats", [1, 128],
                 [("msgs_per_sec", "msg/s", "higher")], (5_000_000, 5_000_000), (500_000, 500_000)),
    "fanout-4": (["relay-fanout", "4", "128", "{n}"], "nats", [4, 128],
                 [("msgs_per_sec", "msg/s", "higher")], (5_000_000, 5_000_000), (500_000, 500_000)),
}


def python() -> str:
    p = os.environ.get("IRONHOUSE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    if not Path(p).exists():
        sys.exit(f"no venv python at {p}: run scripts/test-all.sh first (it makes .venv)")
    return p


def run_json(cmd: list[str], timeout: float) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_side(name: str, side: str, binary: str, quick: bool) -> dict:
    ours, kind, anchor, _, full, small = SCENARIOS[name]
    n, m = small if quick else full
    if side == "ours":
        return run_json([binary, "bench"] + [a.format(n=n) for a in ours], 300)
    if kind == "tlspyo":
        return run_json([python(), str(BENCH / "tlspyo_anchor.py")] + [str(a).format(m=m) for a in anchor], 300)
    import nats_bench  # noqa: E402  (stdlib-only helper next to this file)
    subs, size = anchor
    return nats_bench.run_anchor(subs, size, m, 300)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scenario", action="append")
    ap.add_argument("--ironhouse", default=None)
    ap.add_argument("--out", default=str(BENCH / "out"))
    a = ap.parse_args()
    names = a.scenario or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            sys.exit(f"unknown scenario {n}; known: {', '.join(SCENARIOS)}")
    binary = a.ironhouse
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-p", "ironhouse-cli"], cwd=ROOT, check=True)
        binary = str(ROOT / "target" / "release" / "ironhouse")
    if any(SCENARIOS[n][1] == "nats" for n in names):
        import nats_bench  # noqa: E402
        nats_bench.prepare()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    rows, failures = [], []
    for name in names:
        results = {"ours": [], "anchor": []}
        for r in range(a.runs):
            order = ["anchor", "ours"] if r % 2 == 0 else ["ours", "anchor"]
            for side in order:
                try:
                    results[side].append(run_side(name, side, binary, a.quick))
                except Exception as e:  # noqa: BLE001 - reported, the run goes on
                    failures.append(f"{name} {side} run {r + 1}: {e}")
                    print(f"FAILED {name} {side}: {e}", file=sys.stderr)
        anchor_label = "tlspyo 0.3.0" if SCENARIOS[name][1] == "tlspyo" else "NATS"
        for key, unit, better in SCENARIOS[name][3]:
            ours = [x[key] for x in results["ours"] if x.get(key) is not None]
            anch = [x[key] for x in results["anchor"] if x.get(key) is not None]
            if not ours or not anch:
                continue
            mo, ma = statistics.median(ours), statistics.median(anch)
            ratio = mo / ma if better == "higher" else ma / mo
            row = dict(scenario=name, metric=key, unit=unit, ours=mo, anchor=ma,
                       anchor_name=anchor_label, ratio=round(ratio, 2), runs=len(ours),
                       ours_min=min(ours), ours_max=max(ours), anchor_min=min(anch),
                       anchor_max=max(anch), better=better, quick=a.quick,
                       lost=[x.get("lost") for x in results["ours"]],
                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
            rows.append(row)
            with open(Path(a.out) / "relay.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
    print("\n| scenario | metric | ironhouse median [min–max] | anchor median [min–max] | ratio (×, >1 = ironhouse better) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['metric']} ({r['unit']}) | {r['ours']:,.1f} [{r['ours_min']:,.1f}–{r['ours_max']:,.1f}] "
              f"| {r['anchor_name']} {r['anchor']:,.1f} [{r['anchor_min']:,.1f}–{r['anchor_max']:,.1f}] | {r['ratio']} |")
    for f in failures:
        print(f"- FAILED: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
