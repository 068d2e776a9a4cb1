"""Anchor for the relay benchmark: stock tlspyo 0.3.0, a Relay and two
Endpoints, each in its own OS process (each with its own Twisted child), on
127.0.0.1 — the setup of shared/reference/tlspyo.md §6.

    python bench/tlspyo_anchor.py produce SIZE COUNT   [--security tls|none]
    python bench/tlspyo_anchor.py broadcast SIZE COUNT [--security tls|none]
    python bench/tlspyo_anchor.py rtt COUNT            [--security tls|none]
    options: --keys-dir DIR (default: fresh tlspyo credentials in a temp
             folder), --timeout S (whole run, default 180), --window N,
             --feedback pipe|tlspyo

- produce: the producer produces COUNT objects of SIZE bytes to group "cons";
  the consumer holds one big notify credit ({"cons": COUNT}); at most 1000 in
  flight (the consumer reports progress every 100 objects).
- broadcast: COUNT objects of SIZE bytes broadcast to group "sub", at most 4 in
  flight (progress after every object).

The receiver's progress reports reach the sender through a pipe by default
(`--feedback pipe`): they are the benchmark's flow control, not tlspyo
traffic. With `--feedback tlspyo` they are tlspyo broadcasts instead, and
then each window waits on tlspyo's Nagle/delayed-ACK stall for small
frames (here that roughly halved both produce and 1 MiB broadcast rates).
- rtt: a 100-byte object broadcast to the other endpoint and broadcast back,
  COUNT times after 3 warm-up round trips.

Throughput is measured at the receiver from the first to the last object
(COUNT-1 intervals); objects carry a sequence number and order is checked.
Prints ONE JSON line: {"impl": "tlspyo", "mode", "security", "size", "count",
"objs_per_sec", "mb_per_sec"} or {..., "median_us", "p99_us"} (MB = 10^6
bytes). Every wait is bounded; all processes are stopped at the end. Needs
the venv of interop/requirements.txt.
"""
import argparse
import json
import os
import queue
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TLSPYO_DIR = os.path.join(os.path.dirname(HERE), "interop", "tlspyo")
sys.path.insert(0, TLSPYO_DIR)
import tlspyo_common as common  # noqa: E402

PASSWORD = "anchor-password"
# Object tags (first byte).
PROBE, READY, DATA, PROGRESS = b"P", b"R", b"D", b"A"


# ---------------------------------------------------------------------------
# Worker processes (one tlspyo Endpoint each)
# ---------------------------------------------------------------------------


class Inbox:
    """Bounded waits on a tlspyo Endpoint's receive queue."""

    def __init__(self, ep):
        self.ep = ep
        self.q = ep._Endpoint__obj_buffer  # tlspyo's local queue (private)

    def get(self, timeout):
        q = self.q
        with q.not_empty:
            if not q.not_empty.wait_for(lambda: q._qsize() > 0, timeout=timeout):
                return []
        return self.ep.receive_all(blocking=False)


def handshake_source(ep, inbox, peer_group, deadline):
    """Probe the peer until it answers: both are then registered at the relay."""
    while time.monotonic() < deadline:
        ep.broadcast(PROBE, peer_group)
        for o in inbox.get(0.2):
            if o[:1] == READY:
                return
    raise TimeoutError("no answer from the peer endpoint")


def worker(a):
    from tlspyo import Endpoint

    common.start_watchdog(a.timeout + 30, f"anchor worker {a.role}")
    security = common.security_arg(a.security)
    my_group = {"source": "prod", "sink": "cons" if a.mode == "produce" else "sub"}[a.role]
    peer_group = {"source": "cons" if a.mode == "produce" else "sub", "sink": "prod"}[a.role]
    with common.constructor_guard(30, "tlspyo Endpoint"):
        ep = Endpoint(
            ip_server="127.0.0.1",
            port=a.port,
            password=PASSWORD,
            groups=(my_group,),
            local_com_port=common.free_port(avoid=(a.port,)),
            security=security,
            keys_dir=a.keys_dir,
        )
    inbox = Inbox(ep)
    deadline = time.monotonic() + a.timeout
    common.emit({"event": "ready", "role": a.role})
    try:
        result = (source if a.role == "source" else sink)(a, ep, inbox, peer_group, deadline)
        common.emit({"event": "result", "role": a.role, **result})
    except Exception as e:  # noqa: BLE001 - reported to the orchestrator
        common.emit({"event": "error", "role": a.role, "error": f"{type(e).__name__}: {e}"})
    # Wait for the orchestrator to close stdin, then stop (bounded).
    sys.stdin.read()
    t = threading.Thread(target=ep.stop, daemon=True)
    t.start()
    t.join(20)
    common.kill_children()
    os._exit(0)


def data_obj(seq, size):
    head = DATA + struct.pack("<Q", seq)
    return head + b"\x00" * max(0, size - len(head))


class PipeProgress:
    """Progress counts from the sink, as 8-byte little-endian integers."""

    def __init__(self, fd):
        self.fd, self.buf = fd, b""

    def wait(self, timeout):
        import select

        r, _, _ = select.select([self.fd], [], [], max(timeout, 0))
        if not r:
            return None
        data = os.read(self.fd, 4096)
        if not data:
            raise RuntimeError("progress pipe closed")
        self.buf += data
        n = len(self.buf) // 8 * 8
        if n == 0:
            return None
        last = struct.unpack("<Q", self.buf[n - 8 : n])[0]
        self.buf = self.buf[n:]
        return last


def source(a, ep, inbox, peer_group, deadline):
    handshake_source(ep, inbox, peer_group, deadline)
    if a.mode == "rtt":
        rtts = []
        for i in range(a.count + 3):
            obj = data_obj(i, 100)
            t0 = time.perf_counter_ns()
            ep.broadcast(obj, peer_group)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no pong for ping {i}")
                if any(o == obj for o in inbox.get(left)):
                    break
            if i >= 3:
                rtts.append((time.perf_counter_ns() - t0) / 1000.0)
        return {"rtts_us": rtts}
    acked = 0
    pipe = PipeProgress(a.progress_fd) if a.progress_fd is not None else None
    for seq in range(a.count):
        while seq - acked >= a.window:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"stalled at {seq} sent, {acked} received")
            if pipe is not None:
                n = pipe.wait(left)
                if n is not None:
                    acked = max(acked, n)
                continue
            for o in inbox.get(left):
                if o[:1] == PROGRESS:
                    acked = max(acked, struct.unpack("<Q", o[1:9])[0])
        obj = data_obj(seq, a.size)
        if a.mode == "produce":
            ep.produce(obj, peer_group)
        else:
            ep.broadcast(obj, peer_group)
    return {"sent": a.count}


def sink(a, ep, inbox, peer_group, deadline):
    # Answer probes until the first data object (probes keep coming until the
    # source sees our answer).
    if a.mode == "produce":
        ep.notify({"cons": a.count})  # one big credit, before we answer
    got, t_first, t_last, order_ok = 0, None, None, True
    every = 1 if a.mode == "broadcast" else 100
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"received {got} of {a.count}")
        for o in inbox.get(left):
            tag = o[:1]
            if tag == PROBE:
                ep.broadcast(READY, peer_group)
                continue
            if tag != DATA:
                continue
            if a.mode == "rtt":
                ep.broadcast(o, peer_group)
                got += 1
                if got >= a.count + 3:
                    return {"ponged": got}
                continue
            now = time.perf_counter()
            if t_first is None:
                t_first = now
            t_last = now
            seq = struct.unpack("<Q", o[1:9])[0]
            order_ok &= seq == got
            got += 1
            if got % every == 0 or got == a.count:
                if a.progress_fd is not None:
                    os.write(a.progress_fd, struct.pack("<Q", got))
                else:
                    ep.broadcast(PROGRESS + struct.pack("<Q", got), peer_group)
            if got >= a.count:
                return {
                    "received": got,
                    "order_ok": order_ok,
                    "seconds": t_last - t_first,
                }


# ---------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------


class Child:
    def __init__(self, args, pass_fds=()):
        self.p = subprocess.Popen(
            [sys.executable] + args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=pass_fds,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read(self, timeout):
        try:
            line = self.lines.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            raise TimeoutError("child did not answer in time") from None
        if line is None:
            raise RuntimeError(f"child exited with {self.p.wait()}")
        return json.loads(line)

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def stop(self, timeout=30):
        self.close_stdin()
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def orchestrate(a):
    deadline = time.monotonic() + a.timeout
    children = []
    tmp = tempfile.TemporaryDirectory()
    try:
        keys = a.keys_dir
        if a.security == "tls" and keys is None:
            keys = os.path.join(tmp.name, "creds")
            subprocess.run(
                [sys.executable, os.path.join(TLSPYO_DIR, "make_credentials.py"), keys],
                check=True,
                timeout=120,
                stdout=subprocess.DEVNULL,
            )
        port = common.free_port()
        base = ["--port", str(port), "--security", a.security]
        if keys and a.security == "tls":
            base += ["--keys-dir", keys]
        relay = Child(
            [
                os.path.join(TLSPYO_DIR, "relay_driver.py"),
                "--password",
                PASSWORD,
                "--max-lifetime",
                str(a.timeout + 60),
            ]
            + base
        )
        children.append(relay)
        r = relay.read(deadline - time.monotonic())
        if not r.get("ok"):
            raise RuntimeError(f"relay: {r}")
        wargs = base + [
            "--mode", a.mode, "--size", str(a.size), "--count", str(a.count),
            "--window", str(a.window), "--timeout", str(max(5, deadline - time.monotonic())),
        ]
        me = [os.path.abspath(__file__), "_worker"]
        if a.feedback == "pipe" and a.mode != "rtt":
            rfd, wfd = os.pipe()
            sink_p = Child(me + ["--role", "sink", "--progress-fd", str(wfd)] + wargs, (wfd,))
            children.append(sink_p)
            src_p = Child(me + ["--role", "source", "--progress-fd", str(rfd)] + wargs, (rfd,))
            children.append(src_p)
            os.close(rfd)
            os.close(wfd)
        else:
            sink_p = Child(me + ["--role", "sink"] + wargs)
            children.append(sink_p)
            src_p = Child(me + ["--role", "source"] + wargs)
            children.append(src_p)
        results = {}
        for c in (sink_p, src_p):
            m = c.read(deadline - time.monotonic())
            if m.get("event") != "ready":
                raise RuntimeError(f"worker: {m}")
        for c in (sink_p, src_p):
            m = c.read(deadline - time.monotonic())
            if m.get("event") != "result":
                raise RuntimeError(f"worker: {m}")
            results[m["role"]] = m
        out = {"impl": "tlspyo", "mode": a.mode, "security": a.security}
        if a.mode != "rtt":
            out["window"] = a.window
            out["feedback"] = a.feedback
        if a.mode == "rtt":
            rtts = results["source"]["rtts_us"]
            out.update(
                size=100,
                count=len(rtts),
                median_us=round(percentile(rtts, 50), 1),
                p99_us=round(percentile(rtts, 99), 1),
            )
        else:
            s = results["sink"]
            if not s["order_ok"] or s["received"] != a.count:
                raise RuntimeError(f"bad delivery: {s}")
            secs = s["seconds"]
            rate = (a.count - 1) / secs if secs > 0 else None
            out.update(
                size=a.size,
                count=a.count,
                objs_per_sec=round(rate, 1) if rate else None,
                mb_per_sec=round(rate * a.size / 1e6, 2) if rate else None,
            )
        return out
    finally:
        # Endpoints and relay stop in parallel (tlspyo's stop() may take 10 s).
        for c in children:
            c.close_stdin()
        for c in reversed(children):
            c.stop()
        tmp.cleanup()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        ap = argparse.ArgumentParser()
        ap.add_argument("_worker")
        ap.add_argument("--role", choices=("source", "sink"), required=True)
        ap.add_argument("--mode", required=True)
        ap.add_argument("--size", type=int, required=True)
        ap.add_argument("--count", type=int, required=True)
        ap.add_argument("--window", type=int, required=True)
        ap.add_argument("--timeout", type=float, required=True)
        ap.add_argument("--port", type=int, required=True)
        ap.add_argument("--security", required=True)
        ap.add_argument("--keys-dir", default=None)
        ap.add_argument("--progress-fd", type=int, default=None)
        worker(ap.parse_args())
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("produce", "broadcast", "rtt"))
    ap.add_argument("args", nargs="+", type=int, help="SIZE COUNT (rtt: COUNT)")
    ap.add_argument("--security", choices=("tls", "none"), default="tls")
    ap.add_argument("--keys-dir", default=None)
    ap.add_argument("--timeout", type=float, default=180.0)
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--feedback", choices=("pipe", "tlspyo"), default="pipe")
    a = ap.parse_args()
    if a.mode == "rtt":
        if len(a.args) != 1:
            ap.error("rtt takes COUNT")
        a.size, a.count = 100, a.args[0]
    else:
        if len(a.args) != 2:
            ap.error(f"{a.mode} takes SIZE COUNT")
        a.size, a.count = a.args
    if a.window is None:
        a.window = 1000 if a.mode == "produce" else 4
    if a.count < 2 or a.size < 9:
        ap.error("COUNT must be >= 2 and SIZE >= 9 (objects carry a tag and a sequence number)")
    try:
        out = orchestrate(a)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"impl": "tlspyo", "mode": a.mode, "error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
