#!/usr/bin/env python3
"""Frames benchmark (group `frames` of bench/run.py): one sender streams
640x480x3 uint8 frames to 1 or 2 receivers, either ironhouse <-> ironhouse
(`ironhouse frames send|recv`) or vidgear NetGear <-> NetGear
(interop/netgear/peer.py, the pinned vidgear in the venv). Prints one JSON
line, the shape bench/run.py validates:

    {"impl": "ironhouse"|"netgear", "mode": "frames", "count": N, "curve": bool,
     "size": 921600, "frames_per_sec": ..., "mb_per_sec": ..., ...}

frames_per_sec is measured at each receiver, from its first frame to its last
(so the frames after the first count), and averaged over the receivers; with
pattern 2 it is what a receiver got while the sender published as fast as it
could for 2 s (both sides drop frames beyond NetGear's high-water mark of 1,
the default of both implementations). Keys for secure modes are made with
`ironhouse keygen --layout vidgear` in a temporary folder; both
implementations read the same files.

    python3 bench/frames.py --impl ironhouse --pattern 1 --secure 2 --count 3000
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
PEER = ROOT / "interop" / "netgear" / "peer.py"
W, H, C = 640, 480, 3
FRAME_BYTES = W * H * C
# Pattern 2: both senders publish as fast as they can for this long (at most
# --count frames); receivers get what the high-water mark lets through.
PUB_SECONDS = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_python() -> str:
    py = os.environ.get("IRONHOUSE_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
    ok = subprocess.run([py, "-c", "from vidgear.gears import NetGear"], capture_output=True)
    if ok.returncode != 0:
        raise SystemExit(f"frames.py: {py} cannot import vidgear's NetGear; run "
                         "scripts/test-all.sh (it makes .venv from interop/requirements.txt) "
                         "or set IRONHOUSE_PYTHON")
    return py


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_line(p: subprocess.Popen, stream: str, prefix: str, deadline: float) -> None:
    f = p.stdout if stream == "stdout" else p.stderr
    while time.monotonic() < deadline:
        line = f.readline()
        if not line:
            raise SystemExit(f"frames.py: {p.args[:3]} exited before {prefix!r}: "
                             f"{p.stderr.read()[-500:] if stream == 'stdout' else ''}")
        if line.startswith(prefix) or prefix in line:
            return
    raise SystemExit(f"frames.py: no {prefix!r} from {p.args[:3]}")


def kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # our own child's session only
        except ProcessLookupError:
            pass
    p.wait()


def run(a) -> dict:
    keys = tempfile.mkdtemp(prefix="ironhouse-frames-bench-")
    procs: list[subprocess.Popen] = []
    try:
        if a.secure:
            for mode in ("server", "client"):
                subprocess.run([a.ironhouse, "keygen", "--layout", "vidgear", "--dir",
                                str(Path(keys) / ".vidgear"), "--mode", mode],
                               check=True, capture_output=True)
        ports = [free_port() for _ in range(a.receivers)]
        deadline = time.monotonic() + 60
        py = venv_python() if a.impl == "netgear" else None
        receivers = []
        for port in ports:
            if a.impl == "ironhouse":
                cmd = [a.ironhouse, "frames", "recv", "--bind", f"tcp://127.0.0.1:{port}",
                       "--pattern", str(a.pattern), "--json", "--timeout", "30"]
                if a.secure:
                    cmd += ["--secure", str(a.secure), "--keys", keys]
                p = start(cmd)
                wait_line(p, "stderr", "bound ", deadline)
            else:
                cmd = [py, "-u", str(PEER), "recv", "--port", str(port), "--pattern",
                       str(a.pattern), "--quiet"]
                if a.pattern == 2:
                    # NetGear's multi-client PUB never sends termination.
                    cmd += ["--timeout", "3"]
                if a.secure:
                    cmd += ["--secure", str(a.secure), "--keys", keys]
                p = start(cmd)
                wait_line(p, "stdout", '"ready"', deadline)
            procs.append(p)
            receivers.append(p)
        if a.impl == "ironhouse":
            cmd = [a.ironhouse, "frames", "send", "--pattern", str(a.pattern), "--count",
                   str(a.count), "--size", f"{W}x{H}x{C}", "--json"]
            if a.pattern == 2:
                cmd += ["--duration", str(PUB_SECONDS)]
            if a.window > 1:
                cmd += ["--window", str(a.window)]
            for port in ports:
                cmd += ["--connect", f"tcp://127.0.0.1:{port}"]
            if a.secure:
                cmd += ["--secure", str(a.secure), "--keys", keys]
        else:
            cmd = [py, "-u", str(PEER), "send", "--port", ",".join(map(str, ports)),
                   "--pattern", str(a.pattern), "--count", str(a.count), "--bench",
                   "--shape", f"{H}x{W}x{C}"]
            if a.receivers > 1:
                cmd += ["--multiclient"]
            if a.pattern == 2:
                cmd += ["--settle", "0.5", "--duration", str(PUB_SECONDS)]
            if a.secure:
                cmd += ["--secure", str(a.secure), "--keys", keys]
        sender = start(cmd)
        procs.append(sender)
        s_out, s_err = sender.communicate(timeout=a.timeout)
        if sender.returncode != 0:
            raise SystemExit(f"frames.py: sender failed ({sender.returncode}): {s_err[-800:]}")
        results = []
        for p in receivers:
            out, err = p.communicate(timeout=a.timeout)
            lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
            if not lines:
                raise SystemExit(f"frames.py: receiver said nothing: {err[-800:]}")
            r = lines[-1]
            if a.impl == "ironhouse":
                frames, secs = r["frames"], r["seconds"]
            else:
                frames, secs = r["timed_frames"], r["seconds"]
            if frames <= 0 or secs <= 0:
                raise SystemExit(f"frames.py: a receiver got too few frames to time: {r}")
            results.append((frames, secs))
        fps = [f / s for f, s in results]
        mean_fps = sum(fps) / len(fps)
        return {
            "impl": a.impl, "mode": "frames", "count": a.count, "curve": a.secure > 0,
            "size": FRAME_BYTES, "pattern": a.pattern, "secure": a.secure,
            "receivers": a.receivers,
            "frames_per_sec": mean_fps, "mb_per_sec": mean_fps * FRAME_BYTES / 1e6,
            "received": [f + 1 for f, _ in results],
        }
    finally:
        for p in procs:
            kill(p)
        shutil.rmtree(keys, ignore_errors=True)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="frames.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--impl", choices=["ironhouse", "netgear"], required=True)
    p.add_argument("--pattern", type=int, choices=[0, 1, 2], default=1)
    p.add_argument("--secure", type=int, choices=[0, 1, 2], default=0)
    p.add_argument("--receivers", type=int, default=1)
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--window", type=int, default=1,
                   help="ironhouse's sender: frames in flight (pattern 1); NetGear has none")
    p.add_argument("--ironhouse", default=str(ROOT / "target" / "release" / "ironhouse"))
    p.add_argument("--timeout", type=float, default=110.0)
    a = p.parse_args(argv)
    print(json.dumps(run(a)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
