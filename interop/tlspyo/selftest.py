"""Self-test of the tlspyo drivers against each other: a real tlspyo Relay
(relay_driver.py) and two real Endpoints (endpoint_driver.py) exchange a
broadcast and a produce/notify on 127.0.0.1, with TLS and without.

    python selftest.py [--security tls,none] [--keys-dir DIR] [--ironhouse BIN]

Without --keys-dir, credentials are made in a temporary folder with tlspyo's
own generator, or with `ironhouse cert generate --tlspyo` given --ironhouse. Exits 0 and prints "N passed, 0 failed" when every check holds.
Every wait is bounded; all processes are stopped at the end.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import queue

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tlspyo_common as common  # noqa: E402


class Proc:
    """A driver process speaking JSON lines, with bounded reads."""

    def __init__(self, args):
        self.p = subprocess.Popen(
            [sys.executable] + args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read(self, timeout=30):
        line = self.lines.get(timeout=timeout)
        if line is None:
            raise RuntimeError(f"driver exited (code {self.p.poll()})")
        return json.loads(line)

    def call(self, **cmd):
        """Send one command; wait for its answer (its own timeout + 30 s)."""
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        return self.read(float(cmd.get("timeout", 0)) + 30)

    def close(self, timeout=40):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def run(security, keys_dir, results):
    port = common.free_port()
    pw = "pässword"
    common_args = ["--port", str(port), "--password", pw, "--security", security]
    if keys_dir:
        common_args += ["--keys-dir", keys_dir]
    procs = []
    try:
        relay = Proc([os.path.join(HERE, "relay_driver.py")] + common_args)
        procs.append(relay)
        ready = relay.read()
        assert ready["ok"], ready
        a = Proc([os.path.join(HERE, "endpoint_driver.py"), "--groups", "g,prod"] + common_args)
        procs.append(a)
        b = Proc([os.path.join(HERE, "endpoint_driver.py"), "--groups", "g,cons"] + common_args)
        procs.append(b)
        for e in (a, b):
            r = e.read()
            assert r["ok"], r

        def check(name, cond, detail):
            results.append((f"{security}: {name}", bool(cond), detail))

        # broadcast from a reaches both members of g (a receives its own).
        assert a.call(op="broadcast", group="g", data_hex="00010203")["ok"]
        rb = b.call(op="wait_items", count=1, timeout=20)
        ra = a.call(op="wait_items", count=1, timeout=20)
        want = [{"type": "bytes", "hex": "00010203"}]
        check("broadcast reaches the other member", rb["items"] == want, rb)
        check("broadcast reaches the sender too", ra["items"] == want, ra)

        # produce to cons, then notify from b: exactly that object.
        assert a.call(op="produce", group="cons", data_hex="aa")["ok"]
        assert a.call(op="produce", group="cons", literal="{'k': [1, 2]}")["ok"]
        assert b.call(op="notify", groups="cons")["ok"]
        r1 = b.call(op="pop", max_items=5, blocking=True, timeout=20)
        check("notify 1 gives the first produced", r1["items"] == [{"type": "bytes", "hex": "aa"}], r1)
        assert b.call(op="notify", groups={"cons": -1})["ok"]
        r2 = b.call(op="wait_items", count=1, timeout=20)
        check(
            "notify -1 gives the rest (a dict)",
            r2["items"] == [{"type": "dict", "repr": "{'k': [1, 2]}"}],
            r2,
        )
        # send_object to a list = broadcast to each group.
        assert a.call(op="send_object", destination=["cons"], data_hex="bb")["ok"]
        r3 = b.call(op="get_last", max_items=1, blocking=True, timeout=20)
        check("send_object(list) broadcasts", r3["items"] == [{"type": "bytes", "hex": "bb"}], r3)
        # Nothing else pending at a.
        r4 = a.call(op="receive_all", blocking=False)
        check("no extra objects", r4["items"] == [], r4)
        for e in (a, b):
            r = e.call(op="stop")
            check("endpoint stops", r["ok"], r)
        r = relay.call(op="stop")
        check("relay stops", r["ok"], r)
    finally:
        for p in procs:
            p.close()


def run_quirks(results):
    """Plain TCP: max_count rejection, wrong password, pop(blocking=False)."""
    port = common.free_port()
    base = ["--port", str(port), "--security", "none"]
    ep_args = [os.path.join(HERE, "endpoint_driver.py")] + base
    procs = []

    def check(name, cond, detail):
        results.append((f"quirks: {name}", bool(cond), detail))

    try:
        relay = Proc(
            [os.path.join(HERE, "relay_driver.py"), "--password", "pw",
             "--accepted-groups", json.dumps({"g": {"max_count": 1, "max_consumables": None}})]
            + base
        )
        procs.append(relay)
        assert relay.read()["ok"]
        a = Proc(ep_args + ["--password", "pw", "--groups", "g"])
        procs.append(a)
        assert a.read()["ok"]
        # a is registered once its own broadcast comes back.
        a.call(op="broadcast", group="g", data_hex="01")
        r = a.call(op="wait_items", count=1, timeout=20)
        check("first member of a max_count=1 group is served", r["items"] == [{"type": "bytes", "hex": "01"}], r)
        b = Proc(ep_args + ["--password", "pw", "--groups", "g"])
        procs.append(b)
        bad = Proc(ep_args + ["--password", "wrong", "--groups", "g"])
        procs.append(bad)
        for e in (b, bad):
            assert e.read()["ok"]
        bad.call(op="broadcast", group="g", data_hex="0bad")
        a.call(op="broadcast", group="g", data_hex="02")
        ra = a.call(op="wait_items", count=2, timeout=3)
        check("wrong password's broadcast is dropped", ra["items"] == [{"type": "bytes", "hex": "02"}], ra)
        rb = b.call(op="wait_items", count=1, timeout=3)
        check("second member over max_count gets nothing", rb["items"] == [], rb)
        # pop(blocking=False) with an item available: tlspyo's assert fires
        # and the item is lost.
        a.call(op="broadcast", group="g", data_hex="04")
        a.call(op="broadcast", group="g", data_hex="05")
        w = a.call(op="wait_local", count=2, timeout=20)
        check("both objects arrive locally", w["size"] == 2 and not w["timed_out"], w)
        r = a.call(op="pop", max_items=1, blocking=False)
        check(
            "pop(blocking=False) with an item raises tlspyo's AssertionError",
            not r["ok"] and "Issue in pop" in r["error"],
            r,
        )
        r = a.call(op="pop", max_items=5, blocking=True, timeout=5)
        check("... and that item is lost", r["items"] == [{"type": "bytes", "hex": "05"}], r)
    finally:
        for p in procs:
            p.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--security", default="tls,none")
    ap.add_argument("--keys-dir", default=None)
    ap.add_argument("--ironhouse", default=None, help="make the credentials with this binary")
    ap.add_argument("--no-quirks", action="store_true", help="skip the plain-TCP quirk checks")
    a = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        keys = a.keys_dir
        if keys is None and "tls" in a.security:
            keys = os.path.join(tmp, "creds")
            gen = ["--ironhouse", a.ironhouse] if a.ironhouse else []
            subprocess.run(
                [sys.executable, os.path.join(HERE, "make_credentials.py"), keys] + gen,
                check=True,
                timeout=120,
                stdout=subprocess.DEVNULL,
            )
        for sec in a.security.split(","):
            run(sec, keys if sec == "tls" else None, results)
        if not a.no_quirks:
            run_quirks(results)
    failed = 0
    for name, ok, detail in results:
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))
        failed += not ok
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
