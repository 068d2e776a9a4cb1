#!/usr/bin/env python3
"""The `sqlite` group of bench/run.py: `ironhouse sqlite-server` against
sqlite_rx 1.3.0's own Python server, in the same run, interleaved.

Scenarios (each run starts a fresh `:memory:` server, loads it, stops it):

| scenario | load | anchor |
|---|---|---|
| sqlite-select1-py1 | sqlite_rx's Python client, 1 process, `SELECT 1` | same client, sqlite_rx server |
| sqlite-select1-py4 | 4 client processes, `SELECT 1` | same |
| sqlite-rows1000-py | 1 process, a 1,000-row x 3-column SELECT | same |
| sqlite-many10k-py | `executemany` of 10,000 rows (seconds per batch) | same |
| sqlite-select1-rust1 | Rust client, 16 requests in flight -> ironhouse server | Python client -> sqlite_rx server |
| sqlite-select1-rust4 | 4 Rust clients x 16 in flight (one process) | 4 Python processes -> sqlite_rx |
| sqlite-rows1000-rust | Rust client, 4 in flight -> ironhouse server | Python -> sqlite_rx |
| sqlite-many10k-rust | Rust client, one batch at a time -> ironhouse server | Python -> sqlite_rx |
| sqlite-select1-rust1-lockstep, sqlite-rows1000-rust-lockstep | Rust client waiting for each reply | Python -> sqlite_rx |
| sqlite-select1-{py1,rust1}-pin1 | as above, server and load both on CPU 0 | same, pinned |

The Python side runs in the venv (`--python`, default .venv/bin/python, which
scripts/test-all.sh makes from interop/requirements.txt). This file is also
the Python load generator: `python sqlite_bench.py --worker KIND ENDPOINT
SECONDS CLIENTS` prints one JSON line.

    python3 bench/run.py --scenario sqlite [--runs N] [--quick]
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
PY_SERVER = ROOT / "interop" / "sqlite_rx" / "py_server.py"

# name -> (kind, clients, client side of ours: "py" or "rust", requests in
# flight per Rust client). The Rust client pipelines: `in_flight` tasks share
# one client (one connection), as an application with concurrent requests
# would use it; sqlite_rx's Python client can only wait for each reply, so
# the `-lockstep` scenarios show ours used the same way.
SCENARIOS = {
    "sqlite-select1-py1": ("select1", 1, "py", 1),
    "sqlite-select1-py4": ("select1", 4, "py", 1),
    "sqlite-rows1000-py": ("rows1000", 1, "py", 1),
    "sqlite-many10k-py": ("many10k", 1, "py", 1),
    "sqlite-select1-rust1": ("select1", 1, "rust", 16),
    "sqlite-select1-rust4": ("select1", 4, "rust", 16),
    "sqlite-rows1000-rust": ("rows1000", 1, "rust", 4),
    "sqlite-many10k-rust": ("many10k", 1, "rust", 1),
    "sqlite-select1-rust1-lockstep": ("select1", 1, "rust", 1),
    "sqlite-rows1000-rust-lockstep": ("rows1000", 1, "rust", 1),
    # Server and load both on CPU 0 (`taskset -c 0`): no cross-vCPU wake-ups,
    # the software's own cost per round trip.
    "sqlite-select1-py1-pin1": ("select1", 1, "py", 1),
    "sqlite-select1-rust1-pin1": ("select1", 1, "rust", 1),
}
WHAT = {
    "select1": "`SELECT 1` round trips",
    "rows1000": "1,000-row x 3-column SELECT",
    "many10k": "`executemany` of 10,000 rows into :memory:",
}


def metric_of(kind: str) -> tuple[str, str, str]:
    if kind == "many10k":
        return ("seconds_per_batch", "s", "lower")
    return ("qps", "q/s", "higher")


# ------------------------------------------------------------------ worker

def _py_load(kind: str, endpoint: str, seconds: float, start_at: float, out) -> None:
    from sqlite_rx.client import SQLiteClient

    client = SQLiteClient(connect_address=endpoint)
    if kind == "rows1000":
        client.execute("CREATE TABLE IF NOT EXISTS bench_rows (a INTEGER, b REAL, c TEXT)")
        rows = [(i, i * 0.5, "row %d" % i) for i in range(1000)]
        client.execute("INSERT INTO bench_rows VALUES (?, ?, ?)", *rows, execute_many=True)
    if kind == "many10k":
        client.execute("CREATE TABLE IF NOT EXISTS bench_many (a INTEGER, b REAL, c TEXT, d TEXT)")
        rows = [(i, i * 1.5, "2006-03-28", "BUY") for i in range(10_000)]
        times = []
        t_end = time.monotonic() + seconds
        while len(times) < 3 or time.monotonic() < t_end:
            t = time.perf_counter()
            r = client.execute("INSERT INTO bench_many VALUES (?, ?, ?, ?)", *rows,
                               execute_many=True, request_timeout=55_000, retries=1)
            times.append(time.perf_counter() - t)
            assert r.get("rowcount") == 10_000, r
        out.put(sorted(times)[len(times) // 2])
        client.cleanup()
        return
    query = "SELECT 1" if kind == "select1" else "SELECT a, b, c FROM bench_rows"
    expect = 1 if kind == "select1" else 1000
    client.execute(query)  # connected and warm
    while time.time() < start_at:
        time.sleep(0.001)
    n = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        r = client.execute(query)
        assert len(r["items"]) == expect and r["error"] is None, r
        n += 1
    out.put(n)
    client.cleanup()


def worker(kind: str, endpoint: str, seconds: float, clients: int) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 1.0 + 0.3 * clients
    procs = [ctx.Process(target=_py_load, args=(kind, endpoint, seconds, start_at, q))
             for _ in range(clients)]
    for p in procs:
        p.start()
    results = [q.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    if kind == "many10k":
        med = results[0]
        print(json.dumps({"impl": "sqlite_rx", "kind": kind, "seconds_per_batch": med,
                          "rows_per_sec": 10_000 / med}))
    else:
        total = sum(results)
        print(json.dumps({"impl": "sqlite_rx", "kind": kind, "clients": clients,
                          "queries": total, "seconds": seconds, "qps": total / seconds}))


# ------------------------------------------------------------------ runner

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no server on port {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # our own child's session only
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def one_run(name: str, role: str, ironhouse: str, python: str, seconds: float) -> dict:
    """role: 'ours' or 'anchor'. Returns the load's JSON."""
    kind, clients, side, in_flight = SCENARIOS[name]
    pin = ["taskset", "-c", "0"] if name.endswith("-pin1") else []
    port = free_port()
    ep = f"tcp://127.0.0.1:{port}"
    if role == "ours":
        server = [ironhouse, "sqlite-server", "-l", "ERROR", "-a", ep, "-d", ":memory:"]
    else:
        server = [python, str(PY_SERVER), ep, ":memory:"]
    srv = subprocess.Popen(pin + server, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           start_new_session=True, cwd=ROOT)
    try:
        wait_port(port)
        if role == "ours" and side == "rust":
            load = [ironhouse, "sqlite-client", "-a", ep, "--request-timeout", "60",
                    "--retries", "1", "bench", kind, "--seconds", str(seconds),
                    "--clients", str(clients), "--in-flight", str(in_flight)]
        else:
            load = [python, str(Path(__file__).resolve()), "--worker", kind, ep, str(seconds),
                    str(clients)]
        out = subprocess.run(pin + load, capture_output=True, text=True, timeout=seconds * 4 + 180,
                             cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"{load[0]} failed: {out.stderr.strip()[-600:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        stop(srv)


def run_group(names: list[str], runs: int, quick: bool, ironhouse: str, python: str,
              out_dir: Path, command_line: str, commit: str) -> int:
    seconds = 2.0 if quick else 5.0
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    vals: dict[tuple[str, str], list[float]] = {}
    failed = 0
    for rep in range(1, runs + 1):
        for name in names:
            kind = SCENARIOS[name][0]
            metric, unit, _ = metric_of(kind)
            order = ["anchor", "ours"] if rep % 2 else ["ours", "anchor"]
            for role in order:
                try:
                    data = one_run(name, role, ironhouse, python, seconds)
                    v = float(data[metric])
                    vals.setdefault((name, role), []).append(v)
                    print(f"[{rep}/{runs}] {name:22} {role:6} {metric}={v:.4g} {unit}",
                          file=sys.stderr, flush=True)
                except Exception as e:  # one failed run must not hide the others
                    failed += 1
                    print(f"[{rep}/{runs}] {name:22} {role:6} FAILED: {e}", file=sys.stderr,
                          flush=True)
    lines = [
        "## ironhouse sqlite-server vs sqlite_rx 1.3.0",
        "",
        "```",
        command_line,
        "```",
        "",
        f"- date {stamp}, commit `{commit}`; {runs} interleaved run(s), {seconds:g} s each; "
        "cells are median [min–max]; fresh `:memory:` server per run",
        "- `-py` scenarios: sqlite_rx's Python client against both servers; `-rust`: the "
        "Rust client against ironhouse vs the Python client against sqlite_rx",
        "",
        "| scenario | what | unit | ironhouse | sqlite_rx | ratio |",
        "|---|---|---|---|---|---|",
    ]
    with open(out_dir / "results.jsonl", "a") as rf:
        for name in names:
            kind, clients, side, in_flight = SCENARIOS[name]
            metric, unit, better = metric_of(kind)
            o, a = vals.get((name, "ours"), []), vals.get((name, "anchor"), [])
            mo = statistics.median(o) if o else None
            ma = statistics.median(a) if a else None
            # ratio: how many times better ours is (speedup), whichever the direction.
            ratio = None
            if mo and ma:
                ratio = mo / ma if better == "higher" else ma / mo

            def cell(v: list[float]) -> str:
                if not v:
                    return "—"
                f = (lambda x: f"{x:,.0f}") if unit == "q/s" else (lambda x: f"{x:.4f}")
                return f"{f(statistics.median(v))} [{f(min(v))}–{f(max(v))}]"

            who = "Rust client" if side == "rust" else "Python client"
            what = f"{WHAT[kind]}, {clients} client(s), {who}"
            if side == "rust" and in_flight > 1:
                what += f", {in_flight} in flight per client"
            if name.endswith("-pin1"):
                what += ", all on CPU 0"
            lines.append(f"| {name} | {what} | {unit} | {cell(o)} | {cell(a)} | "
                         + (f"{ratio:.2f}x" if ratio else "—") + " |")
            rf.write(json.dumps({
                "scenario": name, "metric": metric, "unit": unit, "ours": mo, "anchor": ma,
                "ratio": ratio, "ratio_meaning": "speedup (ours better when > 1)",
                "runs": min(len(o), len(a)), "ours_min": min(o) if o else None,
                "ours_max": max(o) if o else None, "anchor_min": min(a) if a else None,
                "anchor_max": max(a) if a else None, "better": better, "timestamp": stamp,
                "commit": commit, "anchor_label": "sqlite_rx", "quick": quick,
                "command": command_line,
            }) + "\n")
    report = "\n".join(lines) + "\n"
    (out_dir / "latest_sqlite.md").write_text(report)
    print(report)
    return 1 if failed else 0


def main(names: list[str], runs: int, quick: bool, ironhouse: str, python: str | None,
         out_dir: Path, command_line: str, commit: str) -> int:
    python = python or str(ROOT / ".venv" / "bin" / "python")
    check = subprocess.run([python, "-c", "import sqlite_rx, msgpack, zmq"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"sqlite_bench: {python} cannot import sqlite_rx; make the venv with "
                         "interop/requirements.txt (scripts/test-all.sh does) or pass "
                         "SQLITE_BENCH_PYTHON")
    out_dir.mkdir(parents=True, exist_ok=True)
    return run_group(names, runs, quick, ironhouse, python, out_dir, command_line, commit)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("run it through bench/run.py --scenario sqlite (or --worker KIND EP SECS N)")
