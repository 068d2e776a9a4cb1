#!/usr/bin/env python3
"""ironhouse vs anchors benchmark harness (stdlib only).

Runs `ironhouse bench MODE ...` and the scenario's anchor back to back,
interleaved, N times per scenario, and prints one markdown table per scenario
plus JSON lines in OUT/results.jsonl. The anchor is libzmq
(`bench/build/zmq_bench MODE ...`) unless the scenario names another: the tls
group compares against a raw rustls stream (`ironhouse bench rawtls...`) or
against ironhouse itself over tcp://.

    python3 bench/run.py [--scenario NAME ...] [--runs N] [--quick]
                         [--ironhouse PATH] [--out bench/out]

See bench/README.md for what the scenarios measure and how to read them.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
ANCHOR_SRC = BENCH_DIR / "zmq_bench.c"
ANCHOR_BIN = BENCH_DIR / "build" / "zmq_bench"

# Roles, the keys of every per-run record; what the anchor *is* (its label,
# binary, arguments and JSON "impl") belongs to each scenario (Anchor below).
OURS = "ironhouse"
ANCHOR = "anchor"
ZMQ_BENCH = "zmq_bench"  # binaries an anchor can run on
IRONHOUSE_BIN = "ironhouse"

# metric name -> (unit, which direction is better)
METRICS = {
    "thr": [("msgs_per_sec", "msg/s", "higher"), ("mb_per_sec", "MB/s", "higher")],
    "lat": [("median_us", "µs", "lower"), ("p99_us", "µs", "lower")],
    "hs": [("median_us", "µs", "lower"), ("p99_us", "µs", "lower")],
    "frames": [("frames_per_sec", "fps", "higher"), ("mb_per_sec", "MB/s", "higher")],
}
# The frames group runs both sides through bench/frames.py (NetGear frames).
FRAMES_PY = "frames.py"


def _base_args(mode: str, size: int | None, count: int) -> list[str]:
    return [mode] + ([] if size is None else [str(size)]) + [str(count)]


@dataclass(frozen=True)
class Anchor:
    """What a scenario is compared against."""
    label: str  # column header and ratio name: "libzmq", "rustls", "tcp://"
    binary: str  # ZMQ_BENCH or IRONHOUSE_BIN (run as `ironhouse bench ...`)
    impl: str  # the JSON "impl" its output must carry
    # (scenario, quick) -> the arguments after the binary
    args: Callable[["Scenario", bool], list[str]]
    expect: tuple = ()  # further (field, value) pairs its JSON must carry


def _same_args(sc: "Scenario", quick: bool) -> list[str]:
    a = _base_args(sc.mode, sc.size, sc.count_for(quick))
    return a + (["--curve"] if sc.curve else [])


def _tcp_args(sc: "Scenario", quick: bool) -> list[str]:
    return _same_args(sc, quick)  # `ironhouse bench` without --tls


def _rawtls_args(sc: "Scenario", quick: bool) -> list[str]:
    mode = {"thr": "rawtls", "hs": "rawtls-hs"}[sc.mode]
    return _base_args(mode, sc.size, sc.count_for(quick))


def _frames_args(sc: "Scenario", quick: bool, impl: str = "netgear") -> list[str]:
    pattern, secure, receivers, window = sc.frames
    args = ["--impl", impl, "--pattern", str(pattern), "--secure", str(secure),
            "--receivers", str(receivers), "--count", str(sc.count_for(quick))]
    # NetGear's REQ sender has no window: its side always waits for each reply.
    if window > 1 and impl == "ironhouse":
        args += ["--window", str(window)]
    return args


LIBZMQ = Anchor("libzmq", ZMQ_BENCH, "libzmq", _same_args)
NETGEAR = Anchor("NetGear", FRAMES_PY, "netgear", _frames_args)
RUSTLS = Anchor("rustls", IRONHOUSE_BIN, "rustls", _rawtls_args, (("tls", True),))
TCP = Anchor("tcp://", IRONHOUSE_BIN, "ironhouse", _tcp_args, (("tls", False),))


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str  # thr | lat | hs
    size: int | None  # None for hs (fixed 64 B round trip)
    count: int
    quick_count: int
    curve: bool
    pin: bool = False  # run under `taskset -c 0`
    what: str = ""
    tls: bool = False  # ours runs with --tls
    anchor: Anchor = LIBZMQ
    # (pattern, secure mode, receivers, sender window) for mode "frames"
    frames: tuple | None = None

    def args(self, quick: bool) -> list[str]:
        """Arguments of `ironhouse bench` (ours)."""
        if self.mode == "frames":
            return _frames_args(self, quick, "ironhouse")
        a = _same_args(self, quick)
        return a + (["--tls"] if self.tls else [])

    def anchor_args(self, quick: bool) -> list[str]:
        return self.anchor.args(self, quick)

    def args_for(self, role: str, quick: bool) -> list[str]:
        return self.args(quick) if role == OURS else self.anchor_args(quick)

    def count_for(self, quick: bool) -> int:
        return self.quick_count if quick else self.count

    def label(self, role: str) -> str:
        return OURS if role == OURS else self.anchor.label

    def binary(self, role: str) -> str:
        if self.mode == "frames":
            return FRAMES_PY
        return IRONHOUSE_BIN if role == OURS else self.anchor.binary


def _scenarios() -> list[Scenario]:
    out = []
    for mech, curve in (("null", False), ("curve", True)):
        m = mech.upper()
        out += [
            Scenario(f"thr64-{mech}", "thr", 64, 5_000_000, 500_000, curve,
                     what=f"PUSH->PULL throughput, 64 B messages, {m}"),
            Scenario(f"thr1m-{mech}", "thr", 1_048_576, 5_000, 500, curve,
                     what=f"PUSH->PULL throughput, 1 MiB messages, {m}"),
            Scenario(f"lat64-{mech}", "lat", 64, 50_000, 5_000, curve,
                     what=f"REQ<->REP round-trip time, 64 B, {m}"),
            Scenario(f"lat64-{mech}-pin1", "lat", 64, 50_000, 5_000, curve, pin=True,
                     what=f"REQ<->REP round-trip time, 64 B, {m}, both ends on CPU 0"),
        ]
    out += [
        Scenario("hs-null", "hs", None, 1_000, 200, False,
                 what="new REQ: connect + ZMTP handshake + first 64 B round trip, NULL"),
        Scenario("hs-curve", "hs", None, 1_000, 200, True,
                 what="new REQ: connect + ZMTP handshake + first 64 B round trip, CURVE"),
    ]
    out += [
        Scenario("thr1m-tls", "thr", 1_048_576, 5_000, 500, False, tls=True, anchor=RUSTLS,
                 what="PUSH->PULL throughput over tls://, 1 MiB messages, vs a raw rustls "
                      "stream"),
        Scenario("lat64-tls", "lat", 64, 50_000, 5_000, False, tls=True, anchor=TCP,
                 what="REQ<->REP round-trip time, 64 B, tls:// vs ironhouse over tcp://"),
        Scenario("lat64-tls-pin1", "lat", 64, 50_000, 5_000, False, tls=True, anchor=TCP,
                 pin=True,
                 what="REQ<->REP round-trip time, 64 B, tls:// vs ironhouse over tcp://, "
                      "both ends on CPU 0"),
        Scenario("hs-tls", "hs", None, 1_000, 200, False, tls=True, anchor=RUSTLS,
                 what="new REQ: TCP connect + TLS handshake + ZMTP handshake + first 64 B "
                      "round trip, vs raw rustls connect + handshake + 64 B round trip"),
    ]
    out += _frames_scenarios()
    return out


def _frames_scenarios() -> list[Scenario]:
    """640x480x3 uint8 frames, raw; ironhouse frames vs NetGear (bench/frames.py)."""
    size = 640 * 480 * 3
    return [
        Scenario("frames-p1-s0", "frames", size, 3000, 300, False, anchor=NETGEAR,
                 frames=(1, 0, 1, 1),
                 what="frames/s, pattern 1 (REQ/REP), raw 640x480x3, secure mode 0"),
        Scenario("frames-p1-s2", "frames", size, 2000, 200, True, anchor=NETGEAR,
                 frames=(1, 2, 1, 1),
                 what="frames/s, pattern 1 (REQ/REP), raw 640x480x3, secure mode 2 (IronHouse)"),
        # The same wire, ironhouse's sender keeping 2 frames in flight
        # (`--window 2`); NetGear's sender waits for each reply.
        Scenario("frames-p1-s0-window2", "frames", size, 3000, 300, False, anchor=NETGEAR,
                 frames=(1, 0, 1, 2),
                 what="frames/s, pattern 1, raw 640x480x3, secure mode 0, ironhouse sender "
                      "with 2 frames in flight"),
        Scenario("frames-p1-s2-window2", "frames", size, 2000, 200, True, anchor=NETGEAR,
                 frames=(1, 2, 1, 2),
                 what="frames/s, pattern 1, raw 640x480x3, secure mode 2 (IronHouse), "
                      "ironhouse sender with 2 frames in flight"),
        # Pattern 2: senders publish for 2 s (bench/frames.py); the count
        # is only a ceiling.
        Scenario("frames-p2-fanout2-s0", "frames", size, 100_000_000, 100_000_000, False,
                 anchor=NETGEAR, frames=(2, 0, 2, 1),
                 what="frames/s per receiver, pattern 2 (PUB/SUB) to 2 receivers, raw "
                      "640x480x3, secure mode 0, 2 s of publishing as fast as possible, "
                      "high-water mark 1 (frames dropped)"),
    ]


SCENARIOS = _scenarios()
BY_NAME = {s.name: s for s in SCENARIOS}
GROUPS = {
    "null": [s.name for s in SCENARIOS if not s.curve and not s.tls and s.mode != "frames"],
    "curve": [s.name for s in SCENARIOS if s.curve and s.mode != "frames"],
    "frames": [s.name for s in SCENARIOS if s.mode == "frames"],
    "tls": [s.name for s in SCENARIOS if s.tls],
    "all": [s.name for s in SCENARIOS],
}
DEFAULT_GROUP = "null"  # CURVE is not implemented on the Rust side yet


def select_scenarios(specs: list[str]) -> list[Scenario]:
    """Names, groups (null/curve/tls/all) or shell patterns; comma lists allowed."""
    wanted: set[str] = set()
    for spec in specs:
        for item in filter(None, (x.strip() for x in spec.split(","))):
            if item in GROUPS:
                wanted.update(GROUPS[item])
            elif item in BY_NAME:
                wanted.add(item)
            else:
                hits = [n for n in BY_NAME if fnmatch.fnmatchcase(n, item)]
                if not hits:
                    raise SystemExit(
                        f"run.py: unknown scenario '{item}'. Known: "
                        + ", ".join(BY_NAME) + "; groups: " + ", ".join(GROUPS))
                wanted.update(hits)
    return [s for s in SCENARIOS if s.name in wanted]


# --------------------------------------------------------------------- utils

def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_visible(cmd: list[str] | str, **kw) -> int:
    shown = cmd if isinstance(cmd, str) else shlex.join(cmd)
    log(f"+ {shown}")
    return subprocess.run(cmd, shell=isinstance(cmd, str), **kw).returncode


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        commit = rev.stdout.strip() if rev.returncode == 0 else "no-commit"
        st = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                            cwd=ROOT, capture_output=True, text=True, timeout=10)
        if st.returncode == 0 and st.stdout.strip():
            commit += "-dirty"
        return commit
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ------------------------------------------------------------ load tracking

CLK_TCK = os.sysconf("SC_CLK_TCK")


def read_cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies summed over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    assert fields[0] == "cpu"
    v = [int(x) for x in fields[1:]]
    v += [0] * (8 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    # guest/guest_nice are already included in user/nice.
    busy = user + nice + system + irq + softirq + steal
    total = busy + idle + iowait
    return busy, total


def ncpus() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 1


def sample_idle(window: float = 0.5) -> float:
    b0, t0 = read_cpu_jiffies()
    time.sleep(window)
    b1, t1 = read_cpu_jiffies()
    dt = t1 - t0
    return 100.0 if dt <= 0 else 100.0 * (1.0 - (b1 - b0) / dt)


def wait_idle(threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait (bounded) until the machine is >= threshold % idle.

    Returns (last idle %, seconds waited)."""
    start = time.monotonic()
    idle = sample_idle()
    while idle < threshold and time.monotonic() - start < max_wait:
        idle = sample_idle()
    return idle, time.monotonic() - start


# -------------------------------------------------------------- single run

@dataclass
class RunResult:
    scenario: str
    impl: str  # role: OURS or ANCHOR
    rep: int
    cmd: list[str]
    ok: bool
    data: dict = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0
    child_cpu_s: float = 0.0
    foreign_pct: float = 0.0
    idle_before_pct: float | None = None
    idle_wait_s: float = 0.0


def validate_output(stdout: str, sc: Scenario, role: str, quick: bool) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ValueError(f"expected exactly one JSON line on stdout, got {len(lines)}: "
                         f"{stdout[:300]!r}")
    try:
        data = json.loads(lines[0])
    except json.JSONDecodeError as e:
        raise ValueError(f"stdout is not JSON ({e}): {lines[0][:300]!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"JSON is not an object: {lines[0][:300]!r}")
    expect = {"impl": OURS if role == OURS else sc.anchor.impl, "mode": sc.mode,
              "count": sc.count_for(quick), "curve": sc.curve}
    if sc.size is not None:
        expect["size"] = sc.size
    if role == OURS:
        expect["tls"] = sc.tls
    else:
        expect.update(sc.anchor.expect)
    for k, v in expect.items():
        # "tls" may be absent when false (zmq_bench never prints it).
        got = data.get(k, False) if k == "tls" else data.get(k)
        if got != v:
            raise ValueError(f"field {k!r} is {got!r}, expected {v!r}: {lines[0]}")
    for metric, _unit, _better in METRICS[sc.mode]:
        x = data.get(metric)
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) \
                or x <= 0:
            raise ValueError(f"metric {metric!r} missing or not a positive number: {lines[0]}")
    return data


def run_one(cmd: list[str], sc: Scenario, impl: str, rep: int, args) -> RunResult:
    res = RunResult(sc.name, impl, rep, cmd, ok=False)
    if args.idle_wait:
        res.idle_before_pct, res.idle_wait_s = wait_idle(args.idle_threshold,
                                                         args.idle_max_wait)
        if res.idle_before_pct < args.idle_threshold:
            log(f"  warning: machine only {res.idle_before_pct:.0f} % idle after "
                f"{res.idle_wait_s:.0f} s of waiting; running anyway")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, _ = read_cpu_jiffies()
    t0 = time.monotonic()
    stdout = stderr = ""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, start_new_session=True)
    except OSError as e:
        res.error = f"cannot start: {e}"
        return res
    try:
        stdout, stderr = proc.communicate(timeout=args.timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's session only
        except ProcessLookupError:
            pass
        stdout, stderr = proc.communicate()
        rc = None
    res.wall_s = time.monotonic() - t0
    b1, _ = read_cpu_jiffies()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res.child_cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    busy_s = (b1 - b0) / CLK_TCK
    foreign_s = max(0.0, busy_s - res.child_cpu_s)
    res.foreign_pct = min(100.0, 100.0 * foreign_s / (max(res.wall_s, 1e-6) * ncpus()))

    tail = stderr.strip()[-800:]
    if rc is None:
        res.error = f"timed out after {args.timeout:g} s" + (f"; stderr: {tail}" if tail else "")
        return res
    if rc != 0:
        res.error = f"exit status {rc}" + (f"; stderr: {tail}" if tail else "")
        return res
    try:
        res.data = validate_output(stdout, sc, impl, args.quick)
    except ValueError as e:
        res.error = str(e)
        return res
    res.ok = True
    return res


# ----------------------------------------------------------------- summary

def fmt_value(x: float, unit: str) -> str:
    if unit == "msg/s":
        if x >= 1e6:
            return f"{x / 1e6:.2f} M"
        if x >= 1e3:
            return f"{x / 1e3:.1f} k"
        return f"{x:.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}"


def fmt_cell(vals: list[float], unit: str) -> str:
    if not vals:
        return "—"
    med = statistics.median(vals)
    return f"{fmt_value(med, unit)} [{fmt_value(min(vals), unit)}–{fmt_value(max(vals), unit)}]"


def summarize(sc: Scenario, results: list[RunResult], runs_requested: int,
              stamp: str, commit: str, extra: dict | None = None) -> list[dict]:
    """One record per metric of the scenario (the results.jsonl rows)."""
    mine = [r for r in results if r.scenario == sc.name]
    ok = {impl: [r for r in mine if r.impl == impl and r.ok] for impl in (OURS, ANCHOR)}
    attempted = {impl: sum(1 for r in mine if r.impl == impl) for impl in (OURS, ANCHOR)}
    # Failed runs (often a few ms long) would only add tick-quantisation noise.
    foreign = [r.foreign_pct for r in mine if r.ok]
    rows = []
    for metric, unit, better in METRICS[sc.mode]:
        vals = {impl: [float(r.data[metric]) for r in ok[impl]] for impl in (OURS, ANCHOR)}
        med = {impl: statistics.median(v) if v else None for impl, v in vals.items()}
        ratio = (med[OURS] / med[ANCHOR]) if med[OURS] is not None and med[ANCHOR] else None
        present = [len(vals[i]) for i in (OURS, ANCHOR) if attempted[i]]
        row = {
            "scenario": sc.name,
            "metric": metric,
            "unit": unit,
            "ours": med[OURS],
            "anchor": med[ANCHOR],
            "ratio": ratio,
            "runs": min(present) if present else 0,
            "ours_min": min(vals[OURS]) if vals[OURS] else None,
            "ours_max": max(vals[OURS]) if vals[OURS] else None,
            "anchor_min": min(vals[ANCHOR]) if vals[ANCHOR] else None,
            "anchor_max": max(vals[ANCHOR]) if vals[ANCHOR] else None,
            "better": better,
            "timestamp": stamp,
            "commit": commit,
            "runs_requested": runs_requested,
            "ours_runs_ok": len(vals[OURS]),
            "anchor_runs_ok": len(vals[ANCHOR]),
            "foreign_load_max_pct": round(max(foreign), 1) if foreign else None,
            "args": sc.args(bool(extra and extra.get("quick"))),
            "anchor_label": sc.anchor.label,
            "anchor_args": sc.anchor_args(bool(extra and extra.get("quick"))),
            "tls": sc.tls,
            "pinned": sc.pin,
        }
        if extra:
            row.update(extra)
        row["_vals"] = vals  # for the table only; stripped before writing
        rows.append(row)
    return rows


def render_table(sc: Scenario, rows: list[dict], results: list[RunResult]) -> str:
    mine = [r for r in results if r.scenario == sc.name]
    attempted = {impl: sum(1 for r in mine if r.impl == impl) for impl in (OURS, ANCHOR)}
    quick = bool(rows and rows[0].get("quick"))
    pin = "taskset -c 0 " if sc.pin else ""
    anchor = sc.anchor.label
    ours_col = "ironhouse tls://" if sc.tls else "ironhouse"
    ours_args = " ".join(sc.args(quick))
    if sc.anchor is LIBZMQ:
        cmds = [f"`{pin}<impl> {ours_args}`"]
    else:
        cmds = [f"ironhouse: `{pin}{_binary_name(sc.binary(OURS))} {ours_args}`",
                f"{anchor}: `{pin}{_binary_name(sc.anchor.binary)} "
                f"{' '.join(sc.anchor_args(quick))}`"]
    out = [f"### {sc.name}: {sc.what}", ""] + [c + "  " for c in cmds[:-1]] + [cmds[-1], "",
           f"| metric | unit | {ours_col} median [min–max] | {anchor} median [min–max] "
           f"| ratio ironhouse/{anchor} | runs | foreign load max |",
           "|---|---|---|---|---|---|---|"]
    for row in rows:
        vals = row["_vals"]
        if row["ratio"] is None:
            ratio = "—"
        else:
            ratio = f"{row['ratio']:.2f} ({row['better']} is better)"
        tried = [i for i in (OURS, ANCHOR) if attempted[i]]
        if tried and all(len(vals[i]) == attempted[i] == attempted[tried[0]] for i in tried):
            runs = str(attempted[tried[0]])
        else:
            runs = ", ".join(f"{sc.label(i)} {len(vals[i])}/{attempted[i]}" for i in tried)
        fl = row["foreign_load_max_pct"]
        out.append(f"| {row['metric']} | {row['unit']} | {fmt_cell(vals[OURS], row['unit'])} "
                   f"| {fmt_cell(vals[ANCHOR], row['unit'])} | {ratio} | {runs or '0'} "
                   f"| {'—' if fl is None else f'{fl:.1f} %'} |")
    fails = [r for r in mine if not r.ok]
    for r in fails:
        out.append(f"\n- FAILED run {r.rep} {sc.label(r.impl)}: `{shlex.join(r.cmd)}`: "
                   f"{r.error}")
    return "\n".join(out)


def _binary_name(binary: str) -> str:
    if binary == FRAMES_PY:
        return "python3 bench/frames.py"
    return "ironhouse bench" if binary == IRONHOUSE_BIN else binary


# ------------------------------------------------------------------ builds

def ensure_libzmq_dev() -> None:
    def found() -> bool:
        try:
            return subprocess.run(["pkg-config", "--exists", "libzmq"]).returncode == 0
        except FileNotFoundError:
            return False
    if found():
        return
    log("run.py: pkg-config cannot find libzmq; installing libzmq3-dev and pkg-config")
    if shutil.which("apt-get") is None:
        raise SystemExit("run.py: apt-get not available; install libzmq (dev files) and "
                         "pkg-config by hand")
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if run_visible(prefix + ["apt-get", "update"], env=env) != 0 or \
            run_visible(prefix + ["apt-get", "install", "-y", "libzmq3-dev", "pkg-config"],
                        env=env) != 0:
        raise SystemExit("run.py: installing libzmq3-dev failed")
    if not found():
        raise SystemExit("run.py: libzmq still not found by pkg-config after install")


def build_anchor() -> Path:
    if ANCHOR_BIN.exists() and ANCHOR_BIN.stat().st_mtime >= ANCHOR_SRC.stat().st_mtime:
        return ANCHOR_BIN
    ensure_libzmq_dev()
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libzmq"],
                           capture_output=True, text=True, check=True).stdout.split()
    ANCHOR_BIN.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["gcc", "-O2", "-o", str(ANCHOR_BIN), str(ANCHOR_SRC)] + flags + ["-lpthread"]
    if run_visible(cmd) != 0:
        raise SystemExit("run.py: building the libzmq anchor failed")
    return ANCHOR_BIN


def build_ironhouse() -> Path:
    cmd = ["cargo", "build", "--release", "-p", "ironhouse-cli"]
    if run_visible(cmd, cwd=ROOT) != 0:
        raise SystemExit("run.py: `cargo build --release -p ironhouse-cli` failed "
                         "(use --ironhouse PATH to bench an existing binary)")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    binary = target / "release" / "ironhouse"
    if not binary.exists():
        raise SystemExit(f"run.py: build succeeded but {binary} does not exist")
    return binary


def libzmq_version() -> str:
    try:
        r = subprocess.run(["pkg-config", "--modversion", "libzmq"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# -------------------------------------------------------------------- main

def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="run.py",
        description="Benchmark ironhouse against libzmq, interleaved, side by side.")
    p.add_argument("--scenario", action="append", default=[], metavar="NAME",
                   help="scenario name, shell pattern (e.g. 'lat64*') or group "
                        "(null, curve, tls, all; sqlite: bench/sqlite_bench.py); "
                        "repeatable, comma lists allowed. "
                        f"Default: the '{DEFAULT_GROUP}' group")
    p.add_argument("--all", action="store_true", help="all scenarios, CURVE and TLS included")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    p.add_argument("--runs", type=int, default=5, metavar="N",
                   help="repetitions per scenario and implementation (default 5)")
    p.add_argument("--quick", action="store_true", help="10x smaller message counts")
    p.add_argument("--ironhouse", metavar="PATH",
                   help="ironhouse binary to bench (default: cargo build --release)")
    p.add_argument("--out", default=str(BENCH_DIR / "out"), metavar="DIR",
                   help="output directory for results.jsonl / runs.jsonl / latest.md")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="per-command timeout in seconds (default 120)")
    p.add_argument("--no-idle-wait", dest="idle_wait", action="store_false",
                   help="do not wait for an idle machine before each run")
    p.add_argument("--idle-threshold", type=float, default=85.0, metavar="PCT",
                   help="idle %% to wait for before each run (default 85)")
    p.add_argument("--idle-max-wait", type=float, default=30.0, metavar="S",
                   help="longest wait for an idle machine (default 30 s)")
    # Hidden: self-test helpers.
    p.add_argument("--anchor-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--self-test", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.runs < 1:
        p.error("--runs must be >= 1")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    if args.list:
        for s in SCENARIOS:
            tag = "" if s.name in GROUPS[DEFAULT_GROUP] else "  (not in default set)"
            print(f"{s.name:18} {' '.join(s.args(False)):34} vs {s.anchor.label:7} "
                  f"{s.what}{tag}")
        return 0
    specs = list(args.scenario)
    if "relay" in specs:
        # The relay group has its own runner (tlspyo and NATS anchors).
        specs.remove("relay")
        cmd = [sys.executable, str(BENCH_DIR / "relay.py"), "--runs", str(args.runs)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--ironhouse", args.ironhouse] if args.ironhouse else []
        rc = subprocess.run(cmd).returncode
        if not specs:
            return rc
    sqlite = [x.strip() for spec in specs for x in spec.split(",")
              if x.strip() == "sqlite" or x.strip().startswith("sqlite-")]
    if sqlite:  # the sqlite group lives in bench/sqlite_bench.py
        import sqlite_bench
        names = [n for n in sqlite_bench.SCENARIOS
                 if "sqlite" in sqlite or any(fnmatch.fnmatchcase(n, x) for x in sqlite)]
        ours = Path(args.ironhouse).absolute() if args.ironhouse else build_ironhouse()
        return sqlite_bench.main(names, args.runs, args.quick, str(ours),
                                 os.environ.get("SQLITE_BENCH_PYTHON"), Path(args.out),
                                 "python3 " + shlex.join([sys.argv[0]] + argv), git_commit())
    if args.all:
        specs.append("all")
    scenarios = select_scenarios(specs or [DEFAULT_GROUP])
    if not scenarios:
        raise SystemExit("run.py: no scenarios selected")
    if any(s.pin for s in scenarios) and shutil.which("taskset") is None:
        raise SystemExit("run.py: taskset (util-linux) is needed for the -pin1 scenarios")

    command_line = "python3 " + shlex.join([sys.argv[0]] + argv)
    roles = [ANCHOR] if args.anchor_only else [ANCHOR, OURS]
    needed = {sc.binary(role) for sc in scenarios for role in roles}
    binaries: dict[str, list[str]] = {}
    if ZMQ_BENCH in needed:
        binaries[ZMQ_BENCH] = [str(build_anchor())]
    if IRONHOUSE_BIN in needed:
        ours = Path(args.ironhouse).absolute() if args.ironhouse else build_ironhouse()
        if not ours.exists():
            raise SystemExit(f"run.py: ironhouse binary {ours} not found")
        binaries[IRONHOUSE_BIN] = [str(ours), "bench"]
    if FRAMES_PY in needed:
        ours = Path(args.ironhouse).absolute() if args.ironhouse else build_ironhouse()
        binaries[FRAMES_PY] = [sys.executable, str(BENCH_DIR / "frames.py"),
                               "--ironhouse", str(ours)]
    uses_libzmq = any(sc.anchor is LIBZMQ for sc in scenarios)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    zmq_ver = libzmq_version() if uses_libzmq else None
    log(f"run.py: {len(scenarios)} scenario(s) x {args.runs} run(s) x {len(roles)} impl(s); "
        f"commit {commit}")

    results: list[RunResult] = []
    order = roles  # anchor first on odd repetitions, ours first on even ones
    with open(out_dir / "runs.jsonl", "a") as raw:
        for rep in range(1, args.runs + 1):
            for sc in scenarios:
                seq = order if rep % 2 == 1 else order[::-1]
                for impl in seq:
                    cmd = (["taskset", "-c", "0"] if sc.pin else []) \
                        + binaries[sc.binary(impl)] + sc.args_for(impl, args.quick)
                    r = run_one(cmd, sc, impl, rep, args)
                    results.append(r)
                    if r.ok:
                        shown = ", ".join(f"{m}={fmt_value(r.data[m], u)} {u}"
                                          for m, u, _ in METRICS[sc.mode])
                        log(f"[{rep}/{args.runs}] {sc.name:17} {sc.label(impl):9} {shown} "
                            f"(foreign load {r.foreign_pct:.1f} %)")
                    else:
                        log(f"[{rep}/{args.runs}] {sc.name:17} {sc.label(impl):9} FAILED: "
                            f"{r.error}")
                    raw.write(json.dumps({
                        "timestamp": stamp, "commit": commit, "scenario": sc.name,
                        "impl": sc.label(impl), "role": impl, "rep": rep, "cmd": r.cmd, "ok": r.ok,
                        "result": r.data, "error": r.error, "wall_s": round(r.wall_s, 3),
                        "child_cpu_s": round(r.child_cpu_s, 3),
                        "foreign_load_pct": round(r.foreign_pct, 1),
                        "idle_before_pct": None if r.idle_before_pct is None
                        else round(r.idle_before_pct, 1),
                        "idle_wait_s": round(r.idle_wait_s, 1),
                    }) + "\n")
                    raw.flush()

    extra = {"quick": args.quick, "libzmq_version": zmq_ver, "command": command_line}
    labels = list(dict.fromkeys(sc.anchor.label for sc in scenarios))
    header = [
        f"## ironhouse vs {', '.join(labels)}",
        "",
        "```",
        command_line,
        "```",
        "",
        f"- date {stamp}, commit `{commit}`"
        + (f", libzmq {zmq_ver}" if zmq_ver else ""),
        f"- host: {cpu_model()}, {ncpus()} CPUs, Linux {platform.release()}",
        f"- {args.runs} interleaved run(s) per implementation; cells are median [min–max]; "
        "ratio = ironhouse median / anchor median (each table names its anchor)",
        "- foreign load = CPU busy time outside the benchmark process during the run, "
        f"% of {ncpus()} CPUs (max over the scenario's runs)",
        "",
    ]
    tables = []
    with open(out_dir / "results.jsonl", "a") as rf:
        for sc in scenarios:
            rows = summarize(sc, results, args.runs, stamp, commit, extra)
            tables.append(render_table(sc, rows, results))
            for row in rows:
                row.pop("_vals")
                rf.write(json.dumps(row, ensure_ascii=False) + "\n")
    report = "\n".join(header) + "\n" + "\n\n".join(tables) + "\n"
    (out_dir / "latest.md").write_text(report)
    print(report)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        log(f"run.py: {failed} of {len(results)} run(s) FAILED (see the tables and "
            f"{out_dir / 'runs.jsonl'})")
        return 1
    log(f"run.py: results appended to {out_dir / 'results.jsonl'}; table in "
        f"{out_dir / 'latest.md'}")
    return 0


# --------------------------------------------------------------- self-test

def self_test() -> int:
    """Exercise selection, output validation and the table code on fake data."""
    assert [s.name for s in select_scenarios(["null"])] == \
        ["thr64-null", "thr1m-null", "lat64-null", "lat64-null-pin1", "hs-null"]
    assert [s.name for s in select_scenarios(["lat64*", "hs-curve"])] == \
        ["lat64-null", "lat64-null-pin1", "lat64-curve", "lat64-curve-pin1", "hs-curve",
         "lat64-tls", "lat64-tls-pin1"]
    assert len(select_scenarios(["all"])) == len(SCENARIOS) == 19
    assert [s.name for s in select_scenarios(["frames"])] == \
        ["frames-p1-s0", "frames-p1-s2", "frames-p1-s0-window2", "frames-p1-s2-window2",
         "frames-p2-fanout2-s0"]
    assert BY_NAME["frames-p1-s2-window2"].args(True)[-2:] == ["--window", "2"]
    assert "--window" not in BY_NAME["frames-p1-s2-window2"].anchor_args(True)
    fr = BY_NAME["frames-p1-s2"]
    assert fr.binary(OURS) == fr.binary(ANCHOR) == FRAMES_PY and fr.curve
    assert fr.args(True) == ["--impl", "ironhouse", "--pattern", "1", "--secure", "2",
                             "--receivers", "1", "--count", "200"]
    assert fr.anchor_args(True)[:2] == ["--impl", "netgear"]
    assert [s.name for s in select_scenarios(["tls"])] == \
        ["thr1m-tls", "lat64-tls", "lat64-tls-pin1", "hs-tls"]
    assert not any(s.tls for s in select_scenarios(["null", "curve"]))
    assert BY_NAME["hs-null"].args(True) == ["hs", "200"]
    assert BY_NAME["thr1m-curve"].args(False) == ["thr", "1048576", "5000", "--curve"]

    thr = BY_NAME["thr64-null"]
    good = ('{"impl":"ironhouse","mode":"thr","size":64,"count":500000,"curve":false,'
            '"msgs_per_sec":5000000.0,"mb_per_sec":320.0}\n')
    assert validate_output(good, thr, OURS, True)["msgs_per_sec"] == 5e6
    for bad in ("", good + good, good.replace("ironhouse", "libzmq"),
                good.replace("500000", "5000000"), good.replace("320.0", "0"), "nope"):
        try:
            validate_output(bad, thr, OURS, True)
        except ValueError:
            pass
        else:
            raise AssertionError(f"accepted bad output {bad!r}")

    def fake(sc, impl, rep, ok=True, **metrics):
        return RunResult(sc.name, impl, rep, ["x"], ok, data=metrics,
                         error="" if ok else "exit status 1", foreign_pct=rep * 1.5)

    lat = BY_NAME["lat64-null-pin1"]
    results = [
        fake(thr, OURS, 1, msgs_per_sec=4e6, mb_per_sec=256.0),
        fake(thr, OURS, 2, msgs_per_sec=5e6, mb_per_sec=320.0),
        fake(thr, OURS, 3, msgs_per_sec=6e6, mb_per_sec=384.0),
        fake(thr, ANCHOR, 1, msgs_per_sec=5e6, mb_per_sec=320.0),
        fake(thr, ANCHOR, 2, msgs_per_sec=5.5e6, mb_per_sec=352.0),
        fake(thr, ANCHOR, 3, msgs_per_sec=4.5e6, mb_per_sec=288.0),
        fake(lat, OURS, 1, median_us=40.0, p99_us=60.0),
        fake(lat, OURS, 2, ok=False),
        fake(lat, ANCHOR, 1, median_us=20.0, p99_us=30.0),
        fake(lat, ANCHOR, 2, median_us=22.0, p99_us=33.0),
    ]
    rows = summarize(thr, results, 3, "T", "C", {"quick": True})
    assert rows[0]["ours"] == 5e6 and rows[0]["anchor"] == 5e6 and rows[0]["ratio"] == 1.0
    assert rows[0]["ours_min"] == 4e6 and rows[0]["anchor_max"] == 5.5e6
    assert rows[0]["runs"] == 3 and rows[0]["better"] == "higher"
    assert rows[0]["foreign_load_max_pct"] == 4.5
    t1 = render_table(thr, rows, results)
    assert "| msgs_per_sec | msg/s | 5.00 M [4.00 M–6.00 M] | 5.00 M [4.50 M–5.50 M] " \
           "| 1.00 (higher is better) | 3 | 4.5 % |" in t1, t1
    rows = summarize(lat, results, 2, "T", "C")
    assert rows[0]["ratio"] == 40.0 / 21.0 and rows[0]["better"] == "lower"
    assert rows[0]["runs"] == 1 and rows[0]["ours_runs_ok"] == 1
    t2 = render_table(lat, rows, results)
    assert "1.90 (lower is better) | ironhouse 1/2, libzmq 2/2 |" in t2 and "FAILED run 2 ironhouse" in t2, t2
    assert "`taskset -c 0 <impl> lat 64 50000`" in t2, t2
    # anchor-only: ours column empty, ratio dash
    only = [r for r in results if r.impl == ANCHOR]
    rows = summarize(thr, only, 3, "T", "C")
    assert rows[0]["ours"] is None and rows[0]["ratio"] is None
    t3 = render_table(thr, rows, only)
    assert "| — | 5.00 M [4.50 M–5.50 M] | — | 3 |" in t3, t3
    for row in rows:
        row.pop("_vals")
        json.dumps(row)

    # TLS scenarios: each carries its own anchor, binary, arguments and labels.
    tt, tl, th = BY_NAME["thr1m-tls"], BY_NAME["lat64-tls-pin1"], BY_NAME["hs-tls"]
    assert tt.args(False) == ["thr", "1048576", "5000", "--tls"]
    assert tt.anchor_args(False) == ["rawtls", "1048576", "5000"]
    assert th.args(True) == ["hs", "200", "--tls"] and th.anchor_args(True) == ["rawtls-hs", "200"]
    assert tl.args(True) == ["lat", "64", "5000", "--tls"] and tl.anchor_args(True) == \
        ["lat", "64", "5000"]
    assert tt.binary(ANCHOR) == tl.binary(ANCHOR) == IRONHOUSE_BIN
    assert BY_NAME["hs-null"].binary(ANCHOR) == ZMQ_BENCH
    assert (tt.label(ANCHOR), tl.label(ANCHOR), th.label(ANCHOR)) == ("rustls", "tcp://", "rustls")
    ours_tls = ('{"impl":"ironhouse","mode":"thr","size":1048576,"count":5000,"curve":false,'
                '"tls":true,"msgs_per_sec":4000.0,"mb_per_sec":4194.3}')
    raw_tls = ours_tls.replace('"ironhouse"', '"rustls"')
    assert validate_output(ours_tls, tt, OURS, False)["tls"] is True
    assert validate_output(raw_tls, tt, ANCHOR, False)["impl"] == "rustls"
    lat_tcp = ('{"impl":"ironhouse","mode":"lat","size":64,"count":50000,"curve":false,'
               '"tls":false,"median_us":14.0,"p99_us":20.0}')
    assert validate_output(lat_tcp, tl, ANCHOR, False)["median_us"] == 14.0
    assert validate_output(lat_tcp.replace('"tls":false,', ''), tl, ANCHOR, False)
    for bad, sc, role in ((ours_tls.replace("true", "false"), tt, OURS),  # not over TLS
                          (ours_tls, tt, ANCHOR),  # anchor must be rustls
                          (raw_tls, tt, OURS),
                          (raw_tls.replace('"tls":true,', ''), tt, ANCHOR),
                          (lat_tcp.replace("false,\"median", "true,\"median"), tl, ANCHOR),
                          (lat_tcp, tl, OURS)):
        try:
            validate_output(bad, sc, role, False)
        except ValueError:
            pass
        else:
            raise AssertionError(f"accepted bad output {bad!r} for {sc.name} {role}")
    tres = [fake(tt, OURS, 1, msgs_per_sec=3600.0, mb_per_sec=3774.9),
            fake(tt, ANCHOR, 1, msgs_per_sec=4000.0, mb_per_sec=4194.3),
            fake(tl, OURS, 1, median_us=16.0, p99_us=20.0),
            fake(tl, ANCHOR, 1, ok=False)]
    rows = summarize(tt, tres, 1, "T", "C")
    assert rows[0]["ratio"] == 0.9 and rows[0]["anchor_label"] == "rustls" and rows[0]["tls"]
    t4 = render_table(tt, rows, tres)
    assert "| ironhouse tls:// median [min–max] | rustls median [min–max] | ratio ironhouse/rustls |" \
        in t4 and "libzmq" not in t4, t4
    assert "ironhouse bench rawtls 1048576 5000`" in t4 and "thr 1048576 5000 --tls`" in t4, t4
    t5 = render_table(tl, summarize(tl, tres, 1, "T", "C"), tres)
    assert "| tcp:// median [min–max] | ratio ironhouse/tcp:// |" in t5 and "libzmq" not in t5
    assert "`taskset -c 0 ironhouse bench lat 64 50000`" in t5, t5
    assert "ironhouse 1/1, tcp:// 0/1" in t5 and "FAILED run 1 tcp://" in t5, t5
    print(t1, t2, t3, t4, t5, sep="\n\n")
    print("\nself-test: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
