"""Shared helpers for the tlspyo drivers (endpoint_driver.py, relay_driver.py,
bench/tlspyo_anchor.py): bounded construction, loopback-only listening,
credential checks, JSON-line output, port choice.

tlspyo 0.3.0 quirks handled here (see shared/reference/tlspyo.md):
- Relay/Endpoint constructors block forever in accept() when their Twisted
  child dies first (missing certificate, relay port in use):
  `constructor_guard` turns that into a TimeoutError and kills the children.
- The Relay listens on all interfaces and it cannot be configured:
  `loopback_only()` makes Twisted's listenTCP/listenSSL default to 127.0.0.1
  (the children are forked, so the patch made here applies to them).
- `local_com_port` must be unique per Relay/Endpoint on a host and should lie
  outside the ephemeral range: `free_port()` picks one that is free now.
"""
import contextlib
import json
import multiprocessing
import os
import random
import signal
import socket
import sys
import threading


def emit(obj):
    """One JSON line on stdout, flushed."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write(f"[{os.path.basename(sys.argv[0])}:{os.getpid()}] {msg}\n")
    sys.stderr.flush()


def loopback_only():
    """Make Twisted listeners bind 127.0.0.1 unless told otherwise."""
    from twisted.internet import posixbase

    base = posixbase.PosixReactorBase
    if getattr(base, "_ironhouse_loopback", False):
        return
    orig_tcp, orig_ssl = base.listenTCP, base.listenSSL

    def listen_tcp(self, port, factory, backlog=50, interface="127.0.0.1"):
        return orig_tcp(self, port, factory, backlog=backlog, interface=interface)

    def listen_ssl(self, port, factory, contextFactory, backlog=50, interface="127.0.0.1"):
        return orig_ssl(self, port, factory, contextFactory, backlog=backlog, interface=interface)

    base.listenTCP, base.listenSSL = listen_tcp, listen_ssl
    base._ironhouse_loopback = True


def kill_children():
    for p in multiprocessing.active_children():
        with contextlib.suppress(Exception):
            p.kill()
    for p in multiprocessing.active_children():
        with contextlib.suppress(Exception):
            p.join(timeout=2)


def bounded_stop(obj, what, timeout=25.0):
    """tlspyo's stop() can take ~10 s after any un-ACKed frame; bound it.
    `what` names the object in the log ("Relay", "Endpoint"). True if it
    stopped in time; otherwise its child processes are killed."""
    t = threading.Thread(target=obj.stop, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        log(f"{what}.stop() did not return in time; killing its child")
        kill_children()
        return False
    return True


class _Alarm(Exception):
    pass


@contextlib.contextmanager
def constructor_guard(seconds, what):
    """Bound a tlspyo constructor: TimeoutError after `seconds`."""

    def on_alarm(signum, frame):
        raise _Alarm()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Alarm:
        kill_children()
        raise TimeoutError(
            f"{what} did not start within {seconds} s (its Twisted child died: "
            "missing/invalid certificate, or port in use; see stderr)"
        ) from None
    except BaseException:
        kill_children()
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def security_arg(s):
    s = (s or "").lower()
    if s == "tls":
        return "TLS"
    if s in ("none", "tcp"):
        return None
    raise ValueError(f"--security must be tls or none, got {s!r}")


def keys_dir_or_default(keys_dir):
    if keys_dir:
        return os.path.abspath(keys_dir)
    from tlspyo.credentials import get_default_keys_folder

    return str(get_default_keys_folder())


def check_credentials(security, keys_dir, need_key):
    """Fail fast instead of letting tlspyo hang (it hangs when a file is missing)."""
    if security != "TLS":
        return
    d = keys_dir_or_default(keys_dir)
    names = ["certificate.pem"] + (["key.pem"] if need_key else [])
    for n in names:
        p = os.path.join(d, n)
        if not os.path.isfile(p) or os.path.getsize(p) == 0:
            raise FileNotFoundError(f"TLS needs {p} (make it with make_credentials.py)")


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port(lo=20000, hi=32000, avoid=()):
    """A TCP port on 127.0.0.1 that is free now, below the ephemeral range."""
    elo, _ = _ephemeral_range()
    hi = min(hi, elo - 1)
    for _ in range(200):
        p = random.randint(lo, hi)
        if p in avoid:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    raise OSError(f"no free port in {lo}..{hi}")


def port_arg(value, avoid=()):
    if value in (None, "", "auto", "0", 0):
        return free_port(avoid=avoid)
    return int(value)


def start_watchdog(seconds, what):
    """Hard bound on the process lifetime: kill children and exit after `seconds`."""

    def bomb():
        log(f"{what}: lifetime of {seconds} s reached, exiting")
        kill_children()
        os._exit(3)

    t = threading.Timer(seconds, bomb)
    t.daemon = True
    t.start()
    return t
