#!/usr/bin/env python3
"""A pyzmq (libzmq) socket on the command line, for interop tests.

It mirrors the `ironhouse socket` contract so a test can put either
implementation on either side of a connection:

    peer.py TYPE (--bind EP | --connect EP)... [--echo] [--count N]
            [--subscribe PREFIX]... [--timeout SECS] [--hex] [--identity ID]
            [--send-file PATH] [--print-sizes] [--max-msg-size BYTES]
            [--linger SECS] [--send-delay-ms N] [--linger-ms N]
            [security flags, below]

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

Security, as `ironhouse socket` (one mechanism per socket):
    --curve-server SECRET_FILE      CURVE server with this key pair (czmq/pyzmq
                                    .key_secret certificate); alone: any client
                                    (StoneHouse, libzmq without a ZAP handler)
    --curve-client SECRET_FILE --curve-serverkey PUBLIC_FILE_OR_Z85
    --authorized DIR / --zap-allow-dir DIR
                                    CURVE server: pyzmq's ThreadAuthenticator
                                    admits the clients whose *.key is in DIR
                                    (configure_curve(domain='*', location=DIR);
                                    read once, at start)
    --plain-user U --plain-password-file F
                                    PLAIN client (password: F less its trailing
                                    newline)
    --plain-server FILE / --zap-passwords FILE
                                    PLAIN server; ThreadAuthenticator with the
                                    `user:password` lines of FILE
    --allow-plaintext-password      accepted for symmetry (libzmq never refuses)
    --allow-insecure-key-permissions
                                    accept secret key and password files that
                                    group or others can read (refused otherwise,
                                    like ironhouse)
A socket monitor reports handshakes on stderr, one line each:
    handshake-succeeded tcp://127.0.0.1:5555
    handshake-failed EVENT_HANDSHAKE_FAILED_AUTH 400 tcp://127.0.0.1:5555
    handshake-failed EVENT_HANDSHAKE_FAILED_PROTOCOL PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC tcp://...
    handshake-failed EVENT_HANDSHAKE_FAILED_NO_DETAIL errno=N (text) tcp://...
and pyzmq's authenticator logs its decisions as `zap: ...` lines (never a
password). A --timeout message names the last handshake failure.
"""

import argparse
import collections
import logging
import os
import stat
import sys
import time

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

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

HANDSHAKE_FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "EVENT_HANDSHAKE_FAILED_NO_DETAIL",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "EVENT_HANDSHAKE_FAILED_PROTOCOL",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "EVENT_HANDSHAKE_FAILED_AUTH",
}
PROTOCOL_ERRORS = {
    getattr(zmq, name): name
    for name in dir(zmq)
    if name.startswith("PROTOCOL_ERROR_") and isinstance(getattr(zmq, name), int)
}


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
    sec = p.add_argument_group("security")
    sec.add_argument("--curve-server", metavar="SECRET_FILE")
    sec.add_argument("--curve-client", metavar="SECRET_FILE")
    sec.add_argument("--curve-serverkey", metavar="PUBLIC_FILE_OR_Z85")
    sec.add_argument("--authorized", "--zap-allow-dir", dest="zap_allow_dir", metavar="DIR")
    sec.add_argument("--plain-user", metavar="USER")
    sec.add_argument("--plain-password-file", metavar="FILE")
    sec.add_argument("--plain-server", "--zap-passwords", dest="zap_passwords", metavar="FILE")
    sec.add_argument("--allow-plaintext-password", action="store_true")
    sec.add_argument("--allow-insecure-key-permissions", action="store_true")
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
    plain_client = args.plain_user is not None or args.plain_password_file is not None
    chosen = [flag for flag, on in (
        ("--curve-server", args.curve_server is not None),
        ("--curve-client", args.curve_client is not None),
        ("--plain-server", args.zap_passwords is not None),
        ("--plain-user", plain_client),
    ) if on]
    if len(chosen) > 1:
        p.error(f"{chosen[0]} and {chosen[1]} cannot be combined: one security mechanism per socket")
    if args.curve_serverkey is not None and args.curve_client is None:
        p.error("--curve-serverkey is for --curve-client")
    if args.curve_client is not None and args.curve_serverkey is None:
        p.error("--curve-client needs --curve-serverkey")
    if args.zap_allow_dir is not None and args.curve_server is None:
        p.error("--authorized/--zap-allow-dir needs --curve-server")
    if plain_client and (args.plain_user is None or args.plain_password_file is None):
        p.error("a PLAIN client needs both --plain-user and --plain-password-file")
    if args.allow_plaintext_password and not (plain_client or args.zap_passwords is not None):
        p.error("--allow-plaintext-password is for PLAIN only")
    return args


def read_secret_file(path, what, allow_insecure):
    """A secret file's bytes; refused if group or others may access it."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077 and not allow_insecure:
            die(f"{path}: {what} is accessible by group or others (mode {mode:04o}); "
                f"fix it with `chmod 600 {path}` or pass --allow-insecure-key-permissions")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        die(f"cannot read {what} {path}: {e}")


def load_keypair(path, allow_insecure):
    read_secret_file(path, "secret key file", allow_insecure)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        die(f"cannot load {path}: {e}")
    if secret is None:
        die(f"{path}: no secret-key; this is a public certificate")
    return public, secret


def server_public_key(arg):
    if os.path.exists(arg):
        try:
            return zmq.auth.load_certificate(arg)[0]
        except (OSError, ValueError) as e:
            die(f"cannot load {arg}: {e}")
    if len(arg) == 40:
        return arg.encode("ascii")
    die(f"--curve-serverkey {arg!r}: no such file, and not a 40-character Z85 key")


def parse_password_table(data, path):
    table = {}
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep:
            die(f"{path}: line {n}: expected user:password")
        table[user] = password
    return table


class HidePasswords(logging.Filter):
    """pyzmq's authenticator logs the password of admitted PLAIN users."""

    def filter(self, record):
        return not str(record.msg).startswith("ALLOWED (PLAIN)")


def zap_logger():
    log = logging.getLogger("peer.zap")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("zap: %(message)s"))
        handler.addFilter(HidePasswords())
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        log.propagate = False
    return log


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
        self.auth = None
        self.last_failure = None
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        self.setup_security()
        self.out = collections.deque()  # messages (lists of frames) to send
        self.stdin_open = True
        self.stdin_buf = b""
        self.awaiting_reply = False  # REQ: a request is out
        self.must_reply = False  # REP: a request came in, the reply is due
        self.received = 0
        self.last_progress = time.monotonic()
        self.warned_ignore = False

    # -- setup ---------------------------------------------------------------

    def start_authenticator(self):
        if self.auth is None:
            self.auth = ThreadAuthenticator(self.ctx, log=zap_logger())
            self.auth.start()
        return self.auth

    def setup_security(self):
        a = self.args
        insecure = a.allow_insecure_key_permissions
        if a.curve_server is not None:
            public, secret = load_keypair(a.curve_server, insecure)
            self.sock.curve_secretkey = secret
            self.sock.curve_publickey = public
            self.sock.curve_server = True
            if a.zap_allow_dir is not None:
                if not os.path.isdir(a.zap_allow_dir):
                    die(f"--authorized {a.zap_allow_dir}: not a folder")
                self.start_authenticator().configure_curve(domain="*", location=a.zap_allow_dir)
        elif a.curve_client is not None:
            public, secret = load_keypair(a.curve_client, insecure)
            self.sock.curve_secretkey = secret
            self.sock.curve_publickey = public
            self.sock.curve_serverkey = server_public_key(a.curve_serverkey)
        elif a.zap_passwords is not None:
            data = read_secret_file(a.zap_passwords, "password table", insecure)
            table = parse_password_table(data, a.zap_passwords)
            self.sock.plain_server = True
            # Without a ZAP handler libzmq would admit any user.
            self.start_authenticator().configure_plain(domain="*", passwords=table)
        elif a.plain_user is not None:
            data = read_secret_file(a.plain_password_file, "password file", insecure)
            self.sock.plain_username = a.plain_user.encode()
            self.sock.plain_password = data.rstrip(b"\r\n")

    def read_monitor(self):
        while True:
            try:
                ev = recv_monitor_message(self.monitor, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            endpoint = ev["endpoint"].decode(errors="replace")
            if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                sys.stderr.write(f"handshake-succeeded {endpoint}\n")
                sys.stderr.flush()
                continue
            name = HANDSHAKE_FAILED.get(ev["event"])
            if name is None:
                continue
            value = ev["value"]
            if ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                detail = PROTOCOL_ERRORS.get(value, f"0x{value:x}")
            elif ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                detail = str(value)
            else:
                detail = f"errno={value} ({os.strerror(value)})"
            self.last_failure = f"{name} {detail}"
            sys.stderr.write(f"handshake-failed {name} {detail} {endpoint}\n")
            sys.stderr.flush()

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
        if self.monitor is not None:
            self.read_monitor()
            self.sock.disable_monitor()
            self.monitor.close(linger=0)
            self.monitor = None
        self.sock.close(linger=self.args.linger_ms if linger is None else linger)
        if self.auth is not None:
            self.auth.stop()
            self.auth = None
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
                self.read_monitor()
                why = f" (last handshake failure: {self.last_failure})" if self.last_failure else ""
                sys.stderr.write(f"peer.py: timeout: nothing received for {self.args.timeout} s{why}\n")
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
            poller.register(self.monitor, zmq.POLLIN)
            events = dict(poller.poll(100))
            if events.get(self.monitor, 0) & zmq.POLLIN:
                self.read_monitor()
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
