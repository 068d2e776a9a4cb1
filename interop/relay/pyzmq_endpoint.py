#!/usr/bin/env python3
"""A relay endpoint in Python with only pyzmq and msgpack (docs/relay-protocol.md).

Usage: pyzmq_endpoint.py RELAY_URL

Run by the interop suite against an ironhouse relay, next to a Rust endpoint
that consumes "jobs", listens to "news" and produces two objects into
"fromrust". This endpoint:
  1. joins "fromrust" and "news";
  2. produces 3 jobs into "jobs" and broadcasts two maps to "news" in one
     batch (OBJS); its HELLO says "batch", so broadcasts may come to it
     batched too (BCASTS);
  3. asks for 2 items of "fromrust" and prints each object it receives as
     one JSON line: {"kind": "ITEM"|"BCAST"|"BCASTS", "group": ..., "obj": ...}.
Exits 0 after the 2 items, 1 on a timeout (10 s per wait) or a REJECT.
"""

import json
import os
import struct
import sys

import msgpack
import zmq


def main(url: str) -> int:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(url)
    hello = {"v": 1, "session": os.urandom(16), "groups": ["fromrust", "news"],
             "epoch": None, "seen": {}, "credit": {}, "batch": True}
    sock.send_multipart([b"HELLO", msgpack.packb(hello)])
    frames = sock.recv_multipart()
    if frames[0] != b"WELCOME":
        print(f"not welcome: {frames}", file=sys.stderr)
        return 1

    seq = 0
    def publish(dest, obj):
        nonlocal seq
        seq += 1
        sock.send_multipart([b"OBJ", struct.pack(">Q", seq), msgpack.packb(dest), msgpack.packb(obj)])

    def publish_batch(dest, objs):
        """OBJS: one frame of 4-byte big-endian lengths and payloads."""
        nonlocal seq
        packed = b"".join(struct.pack(">I", len(p)) + p for p in map(msgpack.packb, objs))
        sock.send_multipart([b"OBJS", struct.pack(">Q", seq + 1), msgpack.packb(dest), packed])
        seq += len(objs)

    for i in range(3):
        publish({"jobs": 1}, f"job-{i}")
    publish_batch({"news": -1}, [{"k": [1, 2], "from": "python"}, {"k": [3], "from": "python"}])
    sock.send_multipart([b"NTF", msgpack.packb({"fromrust": 2})])

    items = 0
    while items < 2:
        try:
            frames = sock.recv_multipart()
        except zmq.Again:
            print("timed out waiting for the relay", file=sys.stderr)
            return 1
        cmd = frames[0]
        if cmd == b"ITEM":
            group, item_id, _credited, payload = frames[1:]
            sock.send_multipart([b"ACK", item_id])
            items += 1
        elif cmd == b"BCAST":
            group, _bseq, payload = frames[1:]
        elif cmd == b"BCASTS":
            group, _first_bseq, packed = frames[1:]
            at = 0
            while at < len(packed):
                (n,) = struct.unpack_from(">I", packed, at)
                obj = msgpack.unpackb(packed[at + 4:at + 4 + n])
                at += 4 + n
                print(json.dumps({"kind": "BCASTS", "group": group.decode(), "obj": obj}),
                      flush=True)
            continue
        elif cmd == b"FAIL":
            print(f"refused: {frames[2].decode()}", file=sys.stderr)
            return 1
        else:  # DONE, and nothing else is expected here
            continue
        print(json.dumps({"kind": cmd.decode(), "group": group.decode(),
                          "obj": msgpack.unpackb(payload)}), flush=True)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
