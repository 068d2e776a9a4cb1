"""pytest plugin: runs sqlite_rx's own test suite against `ironhouse
sqlite-server`.

sqlite_rx's fixtures build `sqlite_rx.server.SQLiteServer(...)` in-process,
call `start()`, later `os.kill(server.pid, SIGINT)` and `join()`. Loaded with
`-p ironhouse_sqlite_plugin` (this folder on PYTHONPATH), this module replaces
that class, before any test module imports it, with a stand-in that maps the
constructor's arguments to the command line of the Rust binary, starts it,
waits for its `bound <endpoint>` line, exposes its `pid` (so the fixture's own
SIGINT reaches it) and, in `join()`, requires it to exit 0.

    IRONHOUSE_BIN=target/debug/ironhouse PYTHONPATH=interop/sqlite_rx \\
        python -m pytest -p ironhouse_sqlite_plugin --pyargs sqlite_rx.tests

The real Python client does all the talking.
"""

import json
import os
import socket
import subprocess
import sys
import threading

import sqlite_rx.server

LAUNCHED = []


class IronhouseSQLiteServer:
    """Stands in for sqlite_rx.server.SQLiteServer (a process)."""

    def __init__(
        self,
        bind_address,
        database,
        auth_config=None,
        curve_dir=None,
        server_curve_id=None,
        use_encryption=False,
        use_zap_auth=False,
        backup_database=None,
        backup_interval=4,
        *args,
        **kwargs,
    ):
        binary = os.environ.get("IRONHOUSE_BIN")
        if not binary:
            raise RuntimeError("IRONHOUSE_BIN must name the ironhouse binary")
        cmd = [binary, "sqlite-server", "-l", "WARNING", "-a", bind_address, "-d", str(database)]
        if auth_config:
            cmd += ["--auth-config", json.dumps({str(k): sorted(v) for k, v in auth_config.items()})]
        if use_encryption:
            cmd.append("--curvezmq")
            if curve_dir:
                cmd += ["-c", str(curve_dir)]
            if server_curve_id:
                cmd += ["-k", server_curve_id]
        if use_zap_auth:
            cmd.append("--zap")
        if backup_database is not None:
            cmd += ["-b", str(backup_database), "-i", str(backup_interval)]
        self.cmd = cmd
        self.proc = None
        self.pid = None
        self.exitcode = None

    def start(self):
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
        )
        self.pid = self.proc.pid
        LAUNCHED.append(self)
        line = []

        def first_line():
            line.append(self.proc.stdout.readline().decode(errors="replace"))

        t = threading.Thread(target=first_line, daemon=True)
        t.start()
        t.join(30)
        if not line or not line[0].startswith("bound "):
            self.proc.kill()
            raise RuntimeError("ironhouse sqlite-server did not start: %r (%s)" % (line, " ".join(self.cmd)))
        sys.stderr.write("[ironhouse plugin] %s -> %s" % (" ".join(self.cmd), line[0]))

    def is_alive(self):
        return self.proc is not None and self.proc.poll() is None

    def join(self, timeout=None):
        if self.proc is None:
            return
        try:
            self.exitcode = self.proc.wait(timeout=30 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("ironhouse sqlite-server did not exit after SIGINT")
        if self.exitcode != 0:
            raise RuntimeError("ironhouse sqlite-server exited with %s" % self.exitcode)

    def terminate(self):
        if self.is_alive():
            self.proc.terminate()


sqlite_rx.server.SQLiteServer = IronhouseSQLiteServer


def pytest_unconfigure(config):
    # Nothing outlives the session.
    for s in LAUNCHED:
        if s.is_alive():
            s.proc.kill()
            s.proc.wait()


def pytest_report_header(config):
    return "sqlite_rx.server.SQLiteServer -> %s sqlite-server" % os.environ.get("IRONHOUSE_BIN")
