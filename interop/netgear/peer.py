#!/usr/bin/env python3
"""A real vidgear NetGear (pinned in interop/requirements.txt) as the other
end of ironhouse-frames, for the interop suite
(crates/ironhouse-cli/tests/interop_netgear.rs) and the frames benchmark.

    peer.py recv --port P [--pattern N] [--secure N --keys DIR] [--bidirectional]
                 [--return-json JSON | --return-array HxWxC:SEQ] [--multiserver P1,P2]
                 [--multiclient] [--count N] [--timeout S] [--quiet]
    peer.py send --port P[,P2] [--pattern N] [--secure N --keys DIR] [--bidirectional]
                 [--multiserver] [--multiclient] [--count N] [--shape HxWxC]
                 [--settle S] [--no-close] [--bench] [--jpeg] [--frame smooth]

Frames are the synthetic ones of ironhouse_frames::Frame::synthetic: byte i of
frame `seq` is (31 i + 7 seq) mod 256, C order; each carries {"seq": seq} as
its message (in plain mode NetGear's recv() drops messages, so the receiver
infers seq from byte 0, 7 seq mod 256). Output: one JSON object per line on stdout ("ready" once bound or
connected, one line per frame or reply, "terminated"/"closed" at the end).
"""

import argparse
import json
import sys
import time

import numpy as np
from vidgear.gears import NetGear


def out(**kw):
    print(json.dumps(kw), flush=True)


def synthetic(shape, seq):
    n = int(np.prod(shape))
    data = (np.arange(n, dtype=np.uint64) * 31 + seq * 7) % 256
    return data.astype(np.uint8).reshape(shape)


def smooth(h, w):
    """ironhouse-frames' JPEG test picture: gradients, like a camera's."""
    x = np.arange(w, dtype=np.int64)[None, :].repeat(h, 0)
    y = np.arange(h, dtype=np.int64)[:, None].repeat(w, 1)
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=2).astype(np.uint8)


def shape_of(text):
    return tuple(int(x) for x in text.split("x"))


def options(a):
    o = {"jpeg_compression": bool(getattr(a, "jpeg", False)), "max_retries": 3,
         "request_timeout": 4}
    if a.secure:
        o["secure_mode"] = a.secure
        o["custom_cert_location"] = a.keys
    if a.bidirectional:
        o["bidirectional_mode"] = True
    if a.multiclient:
        o["multiclient_mode"] = True
    if getattr(a, "multiserver", None):
        o["multiserver_mode"] = True
    return o


def recv(a):
    o = options(a)
    if a.timeout and a.pattern == 2:
        o["subscriber_timeout"] = a.timeout
    port = a.port
    if a.multiserver:
        port = a.multiserver.split(",")
    client = NetGear(address="127.0.0.1", port=port, pattern=a.pattern,
                     receive_mode=True, logging=False, **o)
    out(event="ready")
    return_data = None
    if a.return_json is not None:
        return_data = json.loads(a.return_json)
    elif a.return_array:
        dims, seq = a.return_array.split(":")
        return_data = synthetic(shape_of(dims), int(seq))
    n = 0
    start = None
    last = None
    nbytes = 0
    while a.count is None or n < a.count:
        got = client.recv(return_data=return_data)
        if got is None:
            break
        last = time.perf_counter()
        if start is None:
            start = last
        port = message = None
        if a.multiserver:
            if len(got) == 3:
                port, message, frame = got
            else:
                port, frame = got
        elif a.bidirectional:
            message, frame = got
        else:
            frame = got
        n += 1
        nbytes += frame.nbytes
        if not a.quiet and a.frame == "smooth":
            diff = np.abs(frame.astype(np.int16) - smooth(*frame.shape[:2]).astype(np.int16))
            out(event="frame", shape=list(frame.shape), dtype=str(frame.dtype),
                mae=float(diff.mean()), maxerr=int(diff.max()), message=message)
        elif not a.quiet:
            seq = message.get("seq") if isinstance(message, dict) else None
            if seq is None and frame.dtype == np.uint8 and frame.size:
                # Plain mode hands over no message: byte 0 is 7 seq mod 256.
                seq = int(frame.flat[0]) * 183 % 256
            exact = seq is not None and frame.dtype == np.uint8 and \
                np.array_equal(frame, synthetic(frame.shape, seq))
            out(event="frame", seq=seq, exact=bool(exact), shape=list(frame.shape),
                dtype=str(frame.dtype), port=port, message=message)
    # Timed like `ironhouse frames recv`: from the first frame to the last,
    # so the frames after the first count.
    elapsed = last - start if start else 0.0
    timed = max(n - 1, 0)
    out(event="terminated", frames=n, timed_frames=timed, seconds=elapsed,
        timed_bytes=nbytes - (nbytes // n if n else 0))
    client.close()


def send(a):
    o = options(a)
    ports = a.port.split(",")
    port = ports if a.multiclient else ports[0]
    if a.multiserver:
        o["multiserver_mode"] = True
    server = NetGear(address="127.0.0.1", port=port, pattern=a.pattern,
                     logging=False, **o)
    out(event="ready")
    if a.settle:
        time.sleep(a.settle)
    shape = shape_of(a.shape)
    frames = [synthetic(shape, i) for i in range(min(a.count, 16))]
    start = time.perf_counter()
    sent = 0
    for i in range(a.count):
        if a.duration and time.perf_counter() - start >= a.duration:
            break
        sent += 1
        if a.frame == "smooth":
            frame = smooth(shape[0], shape[1])
        else:
            frame = frames[i % len(frames)] if a.bench else synthetic(shape, i)
        reply = server.send(frame, message={"seq": i})
        if a.bench:
            continue
        if isinstance(reply, tuple):
            rport, data = reply
        else:
            rport, data = None, reply
        if isinstance(data, np.ndarray):
            out(event="reply", seq=i, port=rport, array_shape=list(data.shape),
                array_dtype=str(data.dtype), array=data.tobytes().hex()[:64],
                exact_seq=[s for s in range(100) if data.dtype == np.uint8 and
                           np.array_equal(data, synthetic(data.shape, s))])
        else:
            out(event="reply", seq=i, port=rport, data=data)
    elapsed = time.perf_counter() - start
    if a.settle:
        time.sleep(a.settle)
    if not a.no_close:
        server.close()
    out(event="closed", frames=sent, seconds=elapsed)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["recv", "send"])
    p.add_argument("--port", required=True)
    p.add_argument("--pattern", type=int, default=1)
    p.add_argument("--secure", type=int, default=0)
    p.add_argument("--keys", default=None)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--return-json", default=None)
    p.add_argument("--return-array", default=None)
    p.add_argument("--multiserver", nargs="?", const="yes", default=None)
    p.add_argument("--multiclient", action="store_true")
    p.add_argument("--count", type=int, default=None)
    p.add_argument("--timeout", type=int, default=None)
    p.add_argument("--shape", default="48x64x3")
    p.add_argument("--settle", type=float, default=0.0)
    p.add_argument("--no-close", action="store_true")
    p.add_argument("--bench", action="store_true")
    p.add_argument("--duration", type=float, default=None,
                   help="stop sending after this many seconds")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--jpeg", action="store_true", help="send JPEG (BGR, quality 90)")
    p.add_argument("--frame", choices=["synthetic", "smooth"], default="synthetic",
                   help="smooth: the JPEG test picture; receivers print the error")
    a = p.parse_args()
    if a.mode == "recv":
        if a.multiserver == "yes":
            p.error("recv --multiserver takes the ports: P1,P2")
        recv(a)
    else:
        if a.count is None:
            a.count = 10
        send(a)


if __name__ == "__main__":
    sys.exit(main())
