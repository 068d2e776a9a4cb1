#!/usr/bin/env python3
"""A pyzmq (libzmq) socket on the command line, for interop tests.

It mirrors the `ironhouse socket` contract so a test can put either
implementation on either side of a connection:

    peer.py TYPE (--bind EP | --connect EP)... [--echo] [--count N]
            [--subscribe PREFIX]... [--timeout SECS] [--hex] [--identity ID]
            [--send-file PATH] [--print-sizes] [--max-msg-size BYTES]
            [--linger SECS] [--send-delay-ms N] [--linger-ms N]

stdin:  one message per line (a trailing CR is dropped), frames separated by
        TAB. An empty line is a message made of one 0-byte frame. For a
        ROUTER the first frame is the destination routing id in hex. A REQ waits for each reply before it
        sends the next line; a REP without --echo replies with the next line.
stdout: one line per received message, frames joined by TAB, flushed per
        line. A ROUTER prints the routing id first, in hex. --hex prints every
        frame in lowercase hex; --print-sizes prints frame sizes instead of
        content (a ROUTER's routing id stays hex).
stderr: `bound <endpoint>` for each bind, with the real port; diagnostics.

--send-file sends the file's bytes as one single-frame message after the
stdin lines. --count N exits 0 after N received messages. --timeout S exits 3
when nothing arrives for S seconds (for PUSH: when a pending send makes no
progress for S seconds). At stdin EOF the peer exits 0 once its sends are
done, unless --count or --echo keeps it running. Usage errors exit 2.
"""

import argparse
import collections
import os
import sys
import time

import zmq

TYPES = {
    "req": zmq.REQ,
    "rep": zmq.REP,
    "dealer": zmq.DEALER,
    "router": zmq.ROUTER,
    "pub": zmq.PUB,
    "sub": zmq.SUB,
    "push": zmq.PUSH,
    "pull": zmq.PULL,
    "pair": zmq.PAIR,
}
CAN_RECV = {"req", "rep", "dealer", "router", "sub", "pull", "pair"}
CAN_SEND = {"req", "rep", "dealer", "router", "pub", "push", "pair"}
CAN_ECHO = {"rep", "dealer", "router", "pair"}

EXIT_USAGE = 2
EXIT_TIMEOUT = 3


def die(msg, code=EXIT_USAGE):
    sys.stderr.write(f"peer.py: {msg}\n")
    sys.stderr.flush()
    sys.exit(code)


class EndpointAction(argparse.Action):
    """Keeps --bind and --connect in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):
        kind = "bind" if option_string == "--bind" else "connect"
        namespace.endpoints.append((kind, value))


def parse_args(argv):
    p = argparse.ArgumentParser(prog="peer.py", description="pyzmq peer for interop tests")
    p.add_argument("type", choices=sorted(TYPES))
    p.set_defaults(endpoints=[])
    p.add_argument("--bind", action=EndpointAction, metavar="EP")
    p.add_argument("--connect", action=EndpointAction, metavar="EP")
    p.add_argument("--echo", action="store_true")
    p.add_argument("--count", type=int, metavar="N")
    p.add_argument("--subscribe", action="append", default=[], metavar="PREFIX")
    p.add_argument("--timeout", type=float, metavar="SECS")
    p.add_argument("--hex", action="store_true")
    p.add_argument("--identity", metavar="ID")
    p.add_argument("--send-file", metavar="PATH")
    p.add_argument("--print-sizes", action="store_true")
    p.add_argument("--max-msg-size", "--maxmsgsize", dest="max_msg_size", type=int, metavar="BYTES")
    p.add_argument("--send-delay-ms", type=int, default=0, metavar="N")
    p.add_argument("--linger", type=float, metavar="SECS",
                   help="how long close() may wait to deliver queued messages (default 10)")
    p.add_argument("--linger-ms", type=int, metavar="N", help="--linger in milliseconds")
    args = p.parse_args(argv)
    if args.linger_ms is None:
        args.linger_ms = int(1000 * (10.0 if args.linger is None else max(args.linger, 0.0)))
    if not args.endpoints:
        p.error("at least one --bind or --connect is required")
    if args.count is not None and args.count < 0:
        p.error("--count must be >= 0")
    if args.echo and args.type not in CAN_ECHO:
        p.error(f"--echo is not supported for {args.type}")
    if args.subscribe and args.type != "sub":
        p.error("--subscribe is only for sub")
    return args


def bind_endpoint(ep):
    """Port 0 means 'any port', like '*'."""
    if ep.startswith("tcp://") and ep.endswith(":0"):
        return ep[:-1] + "*"
    return ep


class Peer:
    def __init__(self, args):
        self.args = args
        self.kind = args.type
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(TYPES[self.kind])
        self.sock.setsockopt(zmq.LINGER, args.linger_ms)
        if args.identity is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, args.identity.encode())
        if args.max_msg_size is not None:
            self.sock.setsockopt(zmq.MAXMSGSIZE, args.max_msg_size)
        if self.kind == "router":
            # Report unroutable sends instead of dropping them silently.
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self.kind == "sub":
            for prefix in args.subscribe or [""]:
                self.sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.out = collections.deque()  # messages (lists of frames) to send
        self.stdin_open = True
        self.stdin_buf = b""
        self.awaiting_reply = False  # REQ: a request is out
        self.must_reply = False  # REP: a request came in, the reply is due
        self.received = 0
        self.last_progress = time.monotonic()
        self.warned_ignore = False

    # -- setup ---------------------------------------------------------------

    def attach(self):
        for kind, ep in self.args.endpoints:
            try:
                if kind == "bind":
                    self.sock.bind(bind_endpoint(ep))
                    actual = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
                    sys.stderr.write(f"bound {actual}\n")
                    sys.stderr.flush()
                else:
                    self.sock.connect(ep)
            except zmq.ZMQError as e:
                self.close(0)
                die(f"cannot {kind} {ep}: {e}")

    def close(self, linger=None):
        self.sock.close(linger=self.args.linger_ms if linger is None else linger)
        self.ctx.term()

    # -- input ---------------------------------------------------------------

    def parse_line(self, line):
        frames = line.split(b"\t")
        if self.kind == "router":
            try:
                frames[0] = bytes.fromhex(frames[0].decode("ascii"))
            except ValueError:
                sys.stderr.write(f"peer.py: bad routing id (want hex): {frames[0]!r}\n")
                sys.stderr.flush()
                return None
        return frames

    def read_stdin(self):
        data = os.read(0, 1 << 20)
        if not data:
            self.stdin_open = False
            if self.stdin_buf:  # last line without a newline
                self.queue_line(self.stdin_buf)
                self.stdin_buf = b""
            if self.args.send_file:
                with open(self.args.send_file, "rb") as f:
                    self.out.append([f.read()])
            return
        self.stdin_buf += data
        *lines, self.stdin_buf = self.stdin_buf.split(b"\n")
        for line in lines:
            self.queue_line(line)

    def queue_line(self, line):
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.kind not in CAN_SEND:
            if not self.warned_ignore:
                sys.stderr.write(f"peer.py: {self.kind} cannot send; ignoring stdin lines\n")
                sys.stderr.flush()
                self.warned_ignore = True
            return
        frames = self.parse_line(line)
        if frames is not None:
            self.out.append(frames)

    # -- socket --------------------------------------------------------------

    def may_send(self):
        if not self.out:
            return False
        if self.kind == "req":
            return not self.awaiting_reply
        if self.kind == "rep":
            return self.must_reply and not self.args.echo
        return True

    def may_recv(self):
        if self.kind not in CAN_RECV:
            return False
        if self.kind == "req":
            return self.awaiting_reply
        if self.kind == "rep":
            return not self.must_reply
        return True

    def send_one(self):
        frames = self.out[0]
        if self.args.send_delay_ms:
            time.sleep(self.args.send_delay_ms / 1000.0)
        try:
            self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=len(frames[-1]) < 65536)
        except zmq.Again:
            return
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                sys.stderr.write(f"peer.py: no peer with routing id {frames[0].hex()}; dropped\n")
                sys.stderr.flush()
            else:
                raise
        self.out.popleft()
        self.last_progress = time.monotonic()
        if self.kind == "req":
            self.awaiting_reply = True
        elif self.kind == "rep":
            self.must_reply = False

    def format(self, frames):
        parts = []
        for i, frame in enumerate(frames):
            if i == 0 and self.kind == "router":
                parts.append(frame.hex().encode())
            elif self.args.print_sizes:
                parts.append(str(len(frame)).encode())
            elif self.args.hex:
                parts.append(frame.hex().encode())
            else:
                parts.append(frame)
        return b"\t".join(parts) + b"\n"

    def recv_one(self):
        try:
            frames = self.sock.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        self.last_progress = time.monotonic()
        out = sys.stdout.buffer
        out.write(self.format(frames))
        out.flush()
        self.received += 1
        if self.kind == "req":
            self.awaiting_reply = False
        elif self.kind == "rep":
            self.must_reply = True
        if self.args.echo:
            self.sock.send_multipart(frames)
            if self.kind == "rep":
                self.must_reply = False

    # -- loop ----------------------------------------------------------------

    def done(self):
        if self.args.count is not None:
            return self.received >= self.args.count
        if self.stdin_open or self.args.echo:
            return False
        return not self.out and not self.awaiting_reply

    def timed_out(self):
        if self.args.timeout is None:
            return False
        if self.kind in CAN_RECV:
            armed = True
        else:
            armed = bool(self.out)  # PUSH/PUB: a send is stuck
            if not armed:
                self.last_progress = time.monotonic()
        return armed and time.monotonic() - self.last_progress > self.args.timeout

    def run(self):
        self.attach()
        while not self.done():
            if self.timed_out():
                sys.stderr.write(f"peer.py: timeout: nothing received for {self.args.timeout} s\n")
                sys.stderr.flush()
                self.close(0)
                return EXIT_TIMEOUT
            flags = 0
            if self.may_recv():
                flags |= zmq.POLLIN
            if self.may_send():
                flags |= zmq.POLLOUT
            poller = zmq.Poller()
            if flags:
                poller.register(self.sock, flags)
            if self.stdin_open:
                poller.register(0, zmq.POLLIN)
            events = dict(poller.poll(100))
            ev = events.get(self.sock, 0)
            if ev & zmq.POLLIN:
                self.recv_one()
            if ev & zmq.POLLOUT and self.may_send():
                self.send_one()
            # A closed pipe reports POLLERR (POLLHUP) rather than POLLIN.
            if events.get(0, 0) & (zmq.POLLIN | zmq.POLLERR):
                self.read_stdin()
        self.close()
        return 0


def main(argv):
    args = parse_args(argv)
    return Peer(args).run()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
