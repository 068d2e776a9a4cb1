"""Run one REAL tlspyo 0.3.0 Relay (for comparison tests and the benchmark
anchor).

    python relay_driver.py --port P --password PW [--security tls|none]
        [--keys-dir DIR] [--header-size 10] [--local-com-port auto|N]
        [--accepted-groups JSON] [--start-timeout 20] [--max-lifetime 600]

`--accepted-groups` is tlspyo's dict, e.g. '{"g": {"max_count": 2,
"max_consumables": null}}' (null/absent: any group accepted).

First line on stdout: {"ok": true, "event": "ready", "port": P,
"local_com_port": N} once the Relay listens (on 127.0.0.1 only: tlspyo itself
would listen on all interfaces), or {"ok": false, "event": "failed",
"error": ...} and exit 2. Then it runs until stdin closes or a line
{"op": "stop"} arrives, answers {"ok": true, "op": "stop"} and exits.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlspyo_common as common  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--security", default="tls")
    ap.add_argument("--keys-dir", default=None)
    ap.add_argument("--header-size", type=int, default=10)
    ap.add_argument("--local-com-port", default="auto")
    ap.add_argument("--accepted-groups", default=None)
    ap.add_argument("--start-timeout", type=float, default=20.0)
    ap.add_argument("--max-lifetime", type=float, default=600.0)
    a = ap.parse_args()

    common.start_watchdog(a.max_lifetime, "relay driver")
    try:
        common.loopback_only()
        from tlspyo import Relay

        security = common.security_arg(a.security)
        common.check_credentials(security, a.keys_dir, need_key=True)
        accepted = json.loads(a.accepted_groups) if a.accepted_groups else None
        local_port = common.port_arg(a.local_com_port, avoid=(a.port,))
        with common.constructor_guard(a.start_timeout, "tlspyo Relay"):
            relay = Relay(
                port=a.port,
                password=a.password,
                accepted_groups=accepted,
                local_com_port=local_port,
                header_size=a.header_size,
                security=security,
                keys_dir=a.keys_dir,
            )
    except Exception as e:  # noqa: BLE001 - reported to the caller, then exit
        common.emit({"ok": False, "event": "failed", "error": f"{type(e).__name__}: {e}"})
        common.kill_children()
        os._exit(2)

    common.emit({"ok": True, "event": "ready", "port": a.port, "local_com_port": local_port})
    for line in sys.stdin:
        try:
            cmd = json.loads(line) if line.strip() else {}
        except ValueError:
            cmd = {}
        if cmd.get("op") == "stop":
            break
    ok = common.bounded_stop(relay, "Relay")
    common.emit({"ok": ok, "op": "stop"})
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
