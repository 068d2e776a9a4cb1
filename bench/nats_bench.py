#!/usr/bin/env python3
"""The NATS anchor of the relay fan-out scenarios (issue 5), stdlib only.

Runs `bench/nats_anchor` (async-nats 0.51.0, one publisher thread and SUBS
subscriber threads, each with its own current_thread runtime and connection;
see bench/nats_anchor/README.md) against Debian's `nats-server`, started on
127.0.0.1 on a free port for each run and stopped by its PID afterwards.

Contract, for bench/run.py:

    prepare() -> None
        Installs nats-server with apt-get if it is missing (apt-get update,
        then apt-get install -y nats-server) and builds the anchor with
        `cargo build --release --manifest-path bench/nats_anchor/Cargo.toml`
        if the binary is missing or older than its Cargo.toml, Cargo.lock or
        sources. Prints every command it runs, and their output, on stderr.
        Raises RuntimeError if either step fails. Call it once before the
        timed runs; run_anchor() calls it too (a no-op when all is in place).

    run_anchor(subs: int, size: int, count: int, timeout: float) -> dict
        One run: a fresh nats-server (`listen: 127.0.0.1:PORT`,
        `max_payload: 1048576`), then
        `nats_anchor fanout nats://127.0.0.1:PORT SUBS SIZE COUNT --timeout T`,
        then the server is stopped (SIGTERM to its PID, SIGKILL after 5 s).
        `timeout` (seconds) bounds the server start plus the anchor run;
        prepare() is not counted. Returns the anchor's JSON object:
            impl "nats", mode "fanout", subs, size, count, curve false, tls false,
            msgs_per_sec      per-subscriber delivery rate (COUNT / first->last
                              message), median over the subscribers
            mb_per_sec        msgs_per_sec * size / 1e6
            pub_msgs_per_sec  COUNT / (first publish .. flush done)
            lost              SUBS*COUNT minus the messages received (always 0
                              in a returned result)
            sub_msgs_per_sec  each subscriber's rate
        plus "nats_server" (the server's version string). Raises RuntimeError
        (message with the anchor's and the server's stderr tails) on a
        non-zero exit, a loss, a timeout, or output that is not one JSON line.
        Both processes are children of the caller, in its process group, so
        RUSAGE_CHILDREN counts their CPU and a killpg of the caller's group
        stops them too.

Manual use (stdout: one JSON line per run, nothing else; logs on stderr):

    python3 bench/nats_bench.py SUBS SIZE COUNT [--runs N] [--timeout SECS]
    python3 bench/nats_bench.py 4 128 5000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
ANCHOR_DIR = BENCH_DIR / "nats_anchor"
MANIFEST = ANCHOR_DIR / "Cargo.toml"
ANCHOR_BIN = ANCHOR_DIR / "target" / "release" / "nats_anchor"
SERVER_CONFIG = "listen: 127.0.0.1:{port}\nmax_payload: 1048576\n"
BUILD_TIMEOUT_S = 1800.0
SERVER_START_TIMEOUT_S = 10.0
SERVER_STOP_TIMEOUT_S = 5.0


def _log(msg: str) -> None:
    print(f"[nats_bench] {msg}", file=sys.stderr, flush=True)


def _run_logged(cmd: list[str], timeout: float, **kw) -> None:
    """Runs cmd with its output on our stderr; raises RuntimeError on failure."""
    _log("+ " + " ".join(cmd))
    try:
        rc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, timeout=timeout,
                            **kw).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"{cmd[0]} failed: {e}") from None
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {rc}")


def find_server() -> str | None:
    """The nats-server binary (Debian puts it in /usr/sbin, not always on PATH)."""
    found = shutil.which("nats-server")
    if found:
        return found
    for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if os.access(p, os.X_OK):
            return p
    return None


def ensure_server() -> str:
    server = find_server()
    if server:
        return server
    _log("nats-server not found; installing it with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _run_logged(["apt-get", "update"], BUILD_TIMEOUT_S, env=env)
    _run_logged(["apt-get", "install", "-y", "nats-server"], BUILD_TIMEOUT_S, env=env)
    server = find_server()
    if not server:
        raise RuntimeError("apt-get installed nats-server but the binary is not found")
    return server


def _anchor_stale() -> bool:
    if not ANCHOR_BIN.exists():
        return True
    built = ANCHOR_BIN.stat().st_mtime
    inputs = [MANIFEST, ANCHOR_DIR / "Cargo.lock", *(ANCHOR_DIR / "src").rglob("*.rs")]
    return any(p.exists() and p.stat().st_mtime > built for p in inputs)


def ensure_anchor() -> Path:
    if _anchor_stale():
        _run_logged(["cargo", "build", "--release", "--manifest-path", str(MANIFEST)],
                    BUILD_TIMEOUT_S, cwd=ROOT)
        if not ANCHOR_BIN.exists():
            raise RuntimeError(f"cargo build succeeded but {ANCHOR_BIN} is missing")
        ANCHOR_BIN.touch()  # cargo may keep an older mtime when nothing changed
    return ANCHOR_BIN


def prepare() -> None:
    ensure_server()
    ensure_anchor()


def server_version(server: str) -> str:
    try:
        out = subprocess.run([server, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out or "unknown"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 800) -> str:
    try:
        return path.read_text(errors="replace").strip()[-n:]
    except OSError:
        return ""


def _stop(proc: subprocess.Popen) -> None:
    """Stops one child we started, by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass


def _start_server(server: str, tmp: Path, deadline: float) -> tuple[subprocess.Popen, int, Path]:
    """Starts nats-server on a free port and waits until it accepts connections.

    The port is free when picked but could be taken before the server binds it;
    then the server exits and we try another port (3 attempts)."""
    last_err = ""
    for attempt in range(3):
        port = _free_port()
        conf = tmp / f"nats-{port}.conf"
        conf.write_text(SERVER_CONFIG.format(port=port))
        log = tmp / f"nats-{port}.log"
        with open(log, "wb") as lf:
            proc = subprocess.Popen([server, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                    stdout=lf, stderr=subprocess.STDOUT)
        while True:
            if proc.poll() is not None:
                last_err = f"nats-server exited with {proc.returncode}: {_tail(log)}"
                break
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return proc, port, log
            except OSError:
                pass
            if time.monotonic() > deadline:
                _stop(proc)
                raise RuntimeError(f"nats-server did not accept connections on port {port} "
                                   f"in time: {_tail(log)}")
            time.sleep(0.02)
        _log(f"nats-server start attempt {attempt + 1} failed: {last_err}")
    raise RuntimeError(f"could not start nats-server: {last_err}")


def run_anchor(subs: int, size: int, count: int, timeout: float) -> dict:
    """One fan-out run against a fresh nats-server; see the module docstring."""
    if min(subs, size, count) <= 0 or timeout <= 0:
        raise ValueError("subs, size, count and timeout must be positive")
    prepare()
    server = ensure_server()
    version = server_version(server)
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="nats_bench-") as tmpdir:
        tmp = Path(tmpdir)
        proc, port, log = _start_server(server, tmp,
                                        min(deadline, time.monotonic() + SERVER_START_TIMEOUT_S))
        try:
            left = max(1.0, deadline - time.monotonic())
            # The anchor bounds itself; our own timeout, a little later, catches a hang.
            cmd = [str(ANCHOR_BIN), "fanout", f"nats://127.0.0.1:{port}", str(subs), str(size),
                   str(count), "--timeout", f"{left:.1f}"]
            _log("+ " + " ".join(cmd))
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=left + 10.0,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as e:
                tail = e.stderr or ""
                if isinstance(tail, bytes):
                    tail = tail.decode(errors="replace")
                raise RuntimeError(f"nats_anchor timed out after {left + 10.0:.0f} s; "
                                   f"stderr: {tail.strip()[-800:]}") from None
        finally:
            _stop(proc)
        err = r.stderr.strip()[-800:]
        if r.returncode != 0:
            raise RuntimeError(f"nats_anchor exited with status {r.returncode}: {err}; "
                               f"nats-server log: {_tail(log)}")
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        if len(lines) != 1:
            raise RuntimeError(f"expected one JSON line from nats_anchor, got {r.stdout!r}")
        try:
            data = json.loads(lines[0])
        except json.JSONDecodeError as e:
            raise RuntimeError(f"nats_anchor printed no JSON ({e}): {lines[0]!r}") from None
        if not isinstance(data, dict) or data.get("lost") != 0:
            raise RuntimeError(f"unexpected result (loss?): {lines[0]}")
        if err:
            _log(f"nats_anchor stderr: {err}")
        data["nats_server"] = version
        return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="NATS fan-out anchor (see module docstring)")
    ap.add_argument("subs", type=int)
    ap.add_argument("size", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds per run (server start + anchor), default 120")
    a = ap.parse_args(argv)
    try:
        prepare()
        for _ in range(a.runs):
            print(json.dumps(run_anchor(a.subs, a.size, a.count, a.timeout)), flush=True)
    except (RuntimeError, ValueError) as e:
        print(f"nats_bench: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
