"""Drive one REAL tlspyo 0.3.0 Endpoint from JSON lines (for ironhouse's
interop tests).

    python endpoint_driver.py --port P --password PW [--host 127.0.0.1]
        [--security tls|none] [--keys-dir DIR] [--header-size 10]
        [--groups g1,g2] [--local-com-port auto|N] [--hostname default]
        [--start-timeout 20] [--max-lifetime 600]

First line on stdout: {"ok": true, "event": "ready", "local_com_port": N}
(the Endpoint object exists; tlspyo has no way to tell whether it is
connected), or {"ok": false, "event": "failed", "error": ...} and exit 2.

Then one JSON command per stdin line, one JSON result line each
({"ok": true, "op": ..., ...} or {"ok": false, "op": ..., "error": ...}); an
"id" field is echoed back. Objects are Python bytes given as "data_hex", or any
Python literal given as "literal" (ast.literal_eval, e.g. "{'a': [1, 2]}").
Received objects are {"type": "bytes", "hex": ...} for bytes, else
{"type": <name>, "repr": repr(obj)}.

    {"op": "broadcast", "group": g, "data_hex": h}
    {"op": "produce", "group": g, "data_hex": h}
    {"op": "send_object", "destination": "g" | ["g", ...] | {"g": n}, "data_hex": h}
    {"op": "notify", "groups": "g" | ["g", ...] | {"g": n}}     ("group" also accepted)
    {"op": "receive_all", "blocking": bool, "timeout": s}
    {"op": "pop", "max_items": n, "blocking": bool, "timeout": s}
    {"op": "get_last", "max_items": n, "blocking": bool, "timeout": s}
    {"op": "wait_items", "count": n, "timeout": s}   -> items + "timed_out"
    {"op": "wait_local", "count": n, "timeout": s}   -> "size" of the local queue
        once it holds n objects (nothing is taken out) + "timed_out"
    {"op": "stop"}                                    -> then the process exits

Bounded: blocking calls wait at most "timeout" seconds (default 10) for a
first item and then call tlspyo's own method with blocking=True, which then
returns at once ("timed_out": true and no items otherwise). tlspyo's
pop(blocking=False) is called as is: it raises AssertionError('Issue in pop')
and loses an item whenever one is available (a tlspyo bug); the driver
reports that error. The process exits when stdin closes, after "stop", or
after --max-lifetime seconds.
"""
import argparse
import ast
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlspyo_common as common  # noqa: E402


def decode_obj(cmd):
    if "data_hex" in cmd:
        return bytes.fromhex(cmd["data_hex"])
    if "literal" in cmd:
        return ast.literal_eval(cmd["literal"])
    raise ValueError("an object needs data_hex or literal")


def encode_obj(obj):
    if isinstance(obj, bytes):
        return {"type": "bytes", "hex": obj.hex()}
    return {"type": type(obj).__name__, "repr": repr(obj)}


def destination(value):
    if isinstance(value, (str, dict)):
        return value
    if isinstance(value, list):
        return list(value)
    raise ValueError(f"bad destination {value!r}")


class Driver:
    def __init__(self, ep):
        self.ep = ep
        # tlspyo's local receive queue (name-mangled private attribute); only
        # waited on, never read from here.
        self.queue = ep._Endpoint__obj_buffer

    def wait_nonempty(self, timeout):
        q = self.queue
        with q.not_empty:
            return q.not_empty.wait_for(lambda: q._qsize() > 0, timeout=timeout)

    def retrieve(self, method, cmd):
        blocking = bool(cmd.get("blocking", False))
        kwargs = {}
        if "max_items" in cmd:
            kwargs["max_items"] = int(cmd["max_items"])
        if blocking:
            if not self.wait_nonempty(float(cmd.get("timeout", 10))):
                return {"items": [], "timed_out": True}
        items = getattr(self.ep, method)(blocking=blocking, **kwargs)
        return {"items": [encode_obj(o) for o in items], "timed_out": False}

    def wait_items(self, cmd):
        count = int(cmd["count"])
        deadline = time.monotonic() + float(cmd.get("timeout", 10))
        got = []
        while len(got) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self.wait_nonempty(min(left, 0.5)):
                got += self.ep.receive_all(blocking=False)
        return {"items": [encode_obj(o) for o in got], "timed_out": len(got) < count}

    def handle(self, cmd):
        op = cmd.get("op")
        ep = self.ep
        if op == "broadcast":
            ep.broadcast(decode_obj(cmd), cmd["group"])
            return {}
        if op == "produce":
            ep.produce(decode_obj(cmd), cmd["group"])
            return {}
        if op == "send_object":
            ep.send_object(decode_obj(cmd), destination(cmd["destination"]))
            return {}
        if op == "notify":
            ep.notify(destination(cmd["groups"] if "groups" in cmd else cmd["group"]))
            return {}
        if op in ("receive_all", "pop", "get_last"):
            return self.retrieve(op, cmd)
        if op == "wait_items":
            return self.wait_items(cmd)
        if op == "wait_local":
            n = int(cmd["count"])
            q = self.queue
            with q.not_empty:
                ok = q.not_empty.wait_for(
                    lambda: q._qsize() >= n, timeout=float(cmd.get("timeout", 10))
                )
                return {"size": q._qsize(), "timed_out": not ok}
        raise ValueError(f"unknown op {op!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--security", default="tls")
    ap.add_argument("--keys-dir", default=None)
    ap.add_argument("--header-size", type=int, default=10)
    ap.add_argument("--groups", default="")
    ap.add_argument("--local-com-port", default="auto")
    ap.add_argument("--hostname", default="default")
    ap.add_argument("--start-timeout", type=float, default=20.0)
    ap.add_argument("--max-lifetime", type=float, default=600.0)
    a = ap.parse_args()

    common.start_watchdog(a.max_lifetime, "endpoint driver")
    try:
        from tlspyo import Endpoint

        security = common.security_arg(a.security)
        common.check_credentials(security, a.keys_dir, need_key=False)
        groups = tuple(g for g in a.groups.split(",") if g)
        local_port = common.port_arg(a.local_com_port, avoid=(a.port,))
        with common.constructor_guard(a.start_timeout, "tlspyo Endpoint"):
            ep = Endpoint(
                ip_server=a.host,
                port=a.port,
                password=a.password,
                groups=groups,
                local_com_port=local_port,
                header_size=a.header_size,
                security=security,
                keys_dir=a.keys_dir,
                hostname=a.hostname,
            )
    except Exception as e:  # noqa: BLE001 - reported to the test, then exit
        common.emit({"ok": False, "event": "failed", "error": f"{type(e).__name__}: {e}"})
        common.kill_children()
        os._exit(2)

    common.emit({"ok": True, "event": "ready", "local_com_port": local_port})
    driver = Driver(ep)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = {}
        try:
            cmd = json.loads(line)
            if cmd.get("op") == "stop":
                ok = common.bounded_stop(ep, "Endpoint")
                common.emit({"ok": ok, "op": "stop", "id": cmd.get("id")})
                os._exit(0 if ok else 1)
            res = driver.handle(cmd)
            res.update({"ok": True, "op": cmd.get("op"), "id": cmd.get("id")})
            common.emit(res)
        except Exception as e:  # noqa: BLE001 - reported to the test
            common.emit(
                {
                    "ok": False,
                    "op": cmd.get("op") if isinstance(cmd, dict) else None,
                    "id": cmd.get("id") if isinstance(cmd, dict) else None,
                    "error": f"{type(e).__name__}: {e}",
                }
            )
    # stdin closed
    ok = common.bounded_stop(ep, "Endpoint")
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
