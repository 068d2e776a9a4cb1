"""Sends a fixed sequence of requests, well-formed and not, to a sqlite_rx
server with pyzmq and prints each decoded reply as one JSON line.

Run against sqlite_rx's own Python server and against `ironhouse
sqlite-server`: the outputs must be identical (crates/ironhouse-cli/tests/
interop_sqlite_rx.rs compares them). The sequence matters: sqlite_rx shares
one cursor, so stale rowcount/lastrowid values are part of what is compared.

usage: probe.py ENDPOINT [--file-db]
"""

import json
import socket
import sys
import time
import zlib

import msgpack
import zmq


def req(query, params=(), many=False, script=False, **extra):
    m = {
        "client_id": "probe",
        "query": query,
        "params": params if not isinstance(params, tuple) else list(params),
        "execute_many": many,
        "execute_script": script,
    }
    m.update(extra)
    return zlib.compress(msgpack.dumps(m))


def obj(o):
    return zlib.compress(msgpack.dumps(o))


def without(key, **kw):
    m = {"client_id": "probe", "query": "SELECT 1", "params": [], "execute_many": False, "execute_script": False}
    m.update(kw)
    del m[key]
    return obj(m)


ROWS = "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 3) "

CASES = [
    ("empty body", b""),
    ("not zlib", b"hello"),
    ("truncated zlib", zlib.compress(b"abcdef")[:-3]),
    ("bad checksum", (lambda z: z[:-1] + bytes([z[-1] ^ 1]))(req("SELECT 1"))),
    ("reserved byte", zlib.compress(b"\xc1")),
    ("extra data", zlib.compress(b"\x01\x02")),
    ("incomplete", zlib.compress(b"\x92\x01")),
    ("bad utf-8 str", zlib.compress(b"\x81\xa5query\xa2\xff\xfe")),
    ("int map key", zlib.compress(b"\x81\x01\x02")),
    ("array body", obj([1, 2])),
    ("str body", obj("x")),
    ("int body", obj(5)),
    ("nil body", obj(None)),
    ("bin body", obj(b"x")),
    ("ext body", obj(msgpack.ExtType(5, b"x"))),
    ("missing execute_many", without("execute_many")),
    ("missing execute_script", without("execute_script")),
    ("missing query", without("query")),
    ("missing params", without("params")),
    ("missing params and query", obj({"execute_many": False, "execute_script": False})),
    ("query int", req(5)),
    ("query int many", req(5, [[1]], many=True)),
    ("query int script", req(5, script=True)),
    ("SELECT 1", req("SELECT 1")),
    ("empty query", req("")),
    ("comment only", req("-- nothing")),
    ("empty query with params", req("", [1])),
    ("lone semicolon", req(";")),
    ("leading semicolon", req("; SELECT 1")),
    ("two statements", req("SELECT 1; SELECT 2")),
    ("trailing semicolons", req("SELECT 1;;")),
    ("trailing comment", req("SELECT 1; -- done")),
    ("NUL in query", req("SELECT 1\x00")),
    ("no such table", req("SELECT * FROM IDOLS")),
    ("syntax error", req("SELEC 1")),
    ("create", req("CREATE TABLE t (id INTEGER PRIMARY KEY, a, b)")),
    ("select empty", req("SELECT * FROM t")),
    ("insert", req("INSERT INTO t (a, b) VALUES (?, ?)", [1, "x"])),
    ("select sees lastrowid", req("SELECT a, b FROM t")),
    ("executemany", req("INSERT INTO t (a, b) VALUES (?, ?)", [[2, "y"], [3, None], [4.5, b"bin"]], many=True)),
    ("after executemany", req("SELECT id, a, b FROM t ORDER BY id")),
    ("executemany named", req("INSERT INTO t (a, b) VALUES (:a, :b)", [{"a": 10, "b": 20}], many=True)),
    ("executemany select", req("SELECT ?", [[1]], many=True)),
    ("executemany not iterable", req("INSERT INTO t (a) VALUES (?)", 5, many=True)),
    ("executemany str", req("INSERT INTO t (a) VALUES (?)", "ab", many=True)),
    ("executemany dict", req("INSERT INTO t (a) VALUES (?)", {"k": 1}, many=True)),
    ("executemany bad arity", req("INSERT INTO t (a) VALUES (?)", [[1, 2]], many=True)),
    ("executemany empty params", req("SELECT 2", [], many=True)),
    ("update", req("UPDATE t SET b = 'z' WHERE a > ?", [1])),
    ("update none", req("UPDATE t SET b = 'z' WHERE a > 100")),
    ("script", req("UPDATE t SET b = 'q'; INSERT INTO t (a) VALUES (99)", script=True)),
    ("after script", req("SELECT count(*) FROM t")),
    # ~60 KB of rows: a large reply (stored, not deflated, from ironhouse on
    # loopback; sqlite_rx deflates it) that zlib.decompress must read alike.
    ("large result", req("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) "
                         "SELECT x, 'row ' || x, x * 0.5 FROM c")),
    ("script error", req("SELECT 1; SELEC", script=True)),
    ("script NUL", req("SELECT 1\x00", script=True)),
    ("script and many", req("SELECT 3", [[1]], many=True, script=True)),
    ("delete denied", req("DELETE FROM t")),
    ("drop denied", req("DROP TABLE t")),
    ("pragma ignored", req("PRAGMA table_info(t)")),
    ("unique index", req("CREATE UNIQUE INDEX ua ON t (a)")),
    ("unique violation", req("INSERT INTO t (a) VALUES (?)", [1])),
    ("executemany fails midway", req("INSERT INTO t (a) VALUES (?)", [[1001], [1002], [1], [1003]], many=True)),
    ("rows before the failure stay", req("SELECT a FROM t WHERE a > 1000 ORDER BY a")),
    ("list param", req("SELECT ?", [[1]])),
    ("dict param", req("SELECT ?", [{"a": 1}])),
    ("uint64 param", req("SELECT ?", [2**64 - 1])),
    ("bool and nil params", req("SELECT ?, ?, ?", [True, False, None])),
    ("named params map", req("SELECT :a, :b", {"a": 1, "b": "two"})),
    ("named missing", req("SELECT :a", {"b": 1})),
    ("qmark with map", req("SELECT ?", {"a": 1})),
    ("params str", req("SELECT ?, ?", "ab")),
    ("params bin", req("SELECT ?", b"\x07")),
    ("params int", req("SELECT ?", 5)),
    ("params ext", req("SELECT ?, ?", msgpack.ExtType(5, b"x"))),
    ("too few params", req("SELECT ?, ?", [1])),
    ("falsy params", req("SELECT 4", 0)),
    ("truthy flags", req("SELECT 5", [], many=0, script="")),
    ("floats", req("SELECT 1e999, -0.5, 1.0")),
    ("blob", req("SELECT x'00ff'")),
    ("bad utf-8 text", req("SELECT CAST(x'ff' AS TEXT) AS c")),
    ("error in a later row", req(ROWS + "SELECT CASE WHEN v = 2 THEN abs(-9223372036854775808) ELSE v END FROM n")),
    ("error in the first row", req("SELECT abs(-9223372036854775808)")),
    ("after errors", req("SELECT 6")),
    ("insert returning", req("INSERT INTO t (a) VALUES (7), (8) RETURNING id, a")),
    ("with insert", req("WITH x AS (SELECT 50) INSERT INTO t (a) SELECT * FROM x")),
    ("replace", req("REPLACE INTO t (id, a) VALUES (1, 0)")),
    ("comment before insert", req("/* c */ INSERT INTO t (a) VALUES (60)")),
    ("last_insert_rowid()", req("SELECT last_insert_rowid(), changes()")),
    ("begin", req("BEGIN")),
    ("insert in txn", req("INSERT INTO t (a) VALUES (70)")),
    ("read in txn", req("SELECT count(*) FROM t")),
    ("script commits", req("SELECT 1", script=True)),
    ("commit without txn", req("COMMIT")),
    ("begin again", req("BEGIN")),
    ("rollback", req("ROLLBACK")),
    ("temp table", req("CREATE TEMP TABLE tt (x)")),
    ("temp insert", req("INSERT INTO tt VALUES (1)")),
    ("temp read", req("SELECT * FROM tt")),
    ("final", req("SELECT id, a, b FROM t ORDER BY id")),
    ("many rows", req(ROWS.replace("< 3", "< 500") + "SELECT v, v * 0.5, 'r' || v FROM n")),
]


def wait_port(endpoint, seconds=20):
    host, port = endpoint.rsplit("/", 1)[1].rsplit(":", 1)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("probe: nothing listens on %s" % endpoint)


def main():
    endpoint = sys.argv[1]
    wait_port(endpoint)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 15000)
    sock.connect(endpoint)
    for name, body in CASES:
        sock.send(body)
        reply = msgpack.loads(zlib.decompress(sock.recv()), raw=False)
        print(json.dumps([name, reply], default=lambda b: {"bytes": b.hex()}, sort_keys=True))
    sock.close()
    ctx.term()


if __name__ == "__main__":
    main()
