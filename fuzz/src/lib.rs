//! Shared pieces of the mechanism handshake fuzz targets (`fuzz_targets/`).
//!
//! * [`Input`] reads decisions and byte strings off the fuzzer's input,
//!   yielding zeros once it runs out, so that an all-zero input means "the
//!   valid path" and every deviation is one set bit away.
//! * [`CounterRandom`] is a deterministic [`Random`]: every run of an input
//!   draws the same short-term keys, cookies and nonces. For fuzzing only,
//!   never for real keys.
//! * [`Driven`] is a connection under test: fed bytes, answering
//!   authentication requests as the input decided, collecting what it writes,
//!   and checking the engine's own invariants on the way.
//! * [`HarnessBox`] and [`BoxedPeer`] let the fuzzer's side of a CURVE
//!   conversation seal and open real boxes, so it can send well-formed but
//!   hostile HELLO/WELCOME/INITIATE/READY/MESSAGE commands and check that
//!   whatever the engine sends back opens.
//! * [`mitm`] runs traffic between two real, connected engines while the
//!   input tampers with, replays, reorders, drops and cuts what one sends.
//!
//! Every target picks one of three modes from its first byte (see
//! [`Setup`]): `raw` (a valid greeting, then the input as bytes), `forged`
//! (the input plays the peer, with real crypto) and `relay` (a real peer
//! completes the handshake, then [`mitm`]).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use crypto_box::aead::AeadInPlace;
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use ironhouse_zmtp::command::{parse_error, RawCommand};
use ironhouse_zmtp::frame::{encode_header, peek_header, FLAG_COMMAND, FLAG_MORE};
use ironhouse_zmtp::greeting::{GreetingDecoder, GREETING_LEN};
use ironhouse_zmtp::mechanism::Random;
use ironhouse_zmtp::{
    AuthReply, AuthRequest, Config, Connection, CurveKeyPair, CurveSecretKey, Event, Heartbeat,
    Mechanism, Message, Metadata, ProtocolError, SocketType,
};

// ------------------------------------------------------------------ input

/// The fuzzer's bytes, read front to back; zeros once exhausted.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 when exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Eight bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }

    /// `N` bytes, zero-padded when the input runs out.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    /// Up to `n` bytes (fewer when the input runs out).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// A length byte, then that many bytes.
    pub fn short_bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

// ----------------------------------------------------------- determinism

/// A deterministic [`Random`] (SplitMix64 over a counter). Fuzzing only.
#[derive(Debug, Clone)]
pub struct CounterRandom(u64);

impl CounterRandom {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        CounterRandom(seed)
    }

    /// Boxed, for `CurveClient::with_random` / `CurveServer::with_random`.
    pub fn boxed(seed: u64) -> Box<dyn Random> {
        Box::new(Self::new(seed))
    }
}

impl Random for CounterRandom {
    fn fill(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Seed of the generator inside the engine under test.
pub const TARGET_SEED: u64 = 0x7461_7267_6574;
/// Seed of the generator inside a real peer engine (relay mode).
pub const PEER_SEED: u64 = 0x7065_6572;

/// The CURVE server's long-term key pair (fixed).
pub fn server_keys() -> &'static CurveKeyPair {
    static KEYS: OnceLock<CurveKeyPair> = OnceLock::new();
    KEYS.get_or_init(|| CurveKeyPair::from_secret(CurveSecretKey::from_bytes([0x53; 32])))
}

/// The CURVE client's long-term key pair (fixed).
pub fn client_keys() -> &'static CurveKeyPair {
    static KEYS: OnceLock<CurveKeyPair> = OnceLock::new();
    KEYS.get_or_init(|| CurveKeyPair::from_secret(CurveSecretKey::from_bytes([0x43; 32])))
}

/// Short-term secrets the fuzzer's side uses unless the input picks its own.
pub const HARNESS_SHORT_SECRET: [u8; 32] = [0x68; 32];

// ----------------------------------------------------------------- set-up

/// Socket type `b` (modulo the number of types).
pub fn socket_type(b: u8) -> SocketType {
    SocketType::ALL[usize::from(b) % SocketType::ALL.len()]
}

/// The first socket type `socket` may talk to.
pub fn compatible(socket: SocketType) -> SocketType {
    SocketType::ALL
        .into_iter()
        .find(|p| socket.is_compatible(*p))
        .unwrap_or(socket)
}

/// A bounded configuration: a 64-byte or 64 KiB message limit, heartbeats on.
pub fn config(socket: SocketType, small: bool, identity: &[u8]) -> Config {
    let mut cfg = Config::new(socket);
    cfg.identity = Bytes::copy_from_slice(identity);
    cfg.max_message_size = Some(if small { 64 } else { 1 << 16 });
    cfg.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        ttl: Some(Duration::from_secs(2)),
        timeout: Some(Duration::from_secs(3)),
    };
    cfg
}

/// The decisions every target reads first.
#[derive(Debug, Clone)]
pub struct Setup {
    /// 0 raw, 1 forged, 2 relay.
    pub mode: u8,
    /// The target's socket type.
    pub socket: SocketType,
    /// 64-byte message limit instead of 64 KiB.
    pub small: bool,
    /// The fuzzer's side announces ZMTP 3.0 (no heartbeats) instead of 3.1.
    pub peer_minor0: bool,
    /// The target's routing id.
    pub identity: Vec<u8>,
    /// The answer to any authentication request.
    pub auth: AuthReply,
}

impl Setup {
    /// Layout: `[mode, socket/flags, identity-len, identity..., auth...]`.
    pub fn read(input: &mut Input<'_>) -> Self {
        let mode = input.u8() % 3;
        let s = input.u8();
        let id_len = usize::from(input.u8() % 8);
        let identity = input.bytes(id_len).to_vec();
        Setup {
            mode,
            socket: socket_type(s & 0x0f),
            small: s & 0x10 != 0,
            peer_minor0: s & 0x20 != 0,
            identity,
            auth: auth_reply(input),
        }
    }

    /// True when authentication requests are allowed.
    pub fn allows(&self) -> bool {
        matches!(self.auth, AuthReply::Allow { .. })
    }

    /// The target's configuration.
    pub fn config(&self) -> Config {
        config(self.socket, self.small, &self.identity)
    }

    /// The fuzzer's greeting, announcing `mechanism` and `as_server`.
    pub fn peer_greeting(&self, mechanism: &str, as_server: bool) -> [u8; GREETING_LEN] {
        let mut g = ironhouse_zmtp::greeting::encode(mechanism, as_server);
        if self.peer_minor0 {
            g[11] = 0;
        }
        g
    }
}

/// Allow (as a user id the input names) or Deny (with a status and a reason
/// the input names, possibly over 255 bytes once made UTF-8, to reach the
/// ERROR truncation).
pub fn auth_reply(input: &mut Input<'_>) -> AuthReply {
    let b = input.u8();
    if b & 0x80 == 0 {
        AuthReply::Allow {
            user_id: String::from_utf8_lossy(input.bytes(usize::from(b & 0x0f))).into_owned(),
        }
    } else {
        let status = [400, 300, 500, 200, 0, u16::MAX][usize::from(b & 0x07) % 6];
        let reason = String::from_utf8_lossy(input.short_bytes()).into_owned();
        AuthReply::Deny { status, reason }
    }
}

// ------------------------------------------------------ connection driver

/// A connection under test plus what it has written.
#[derive(Debug)]
pub struct Driven {
    /// The engine.
    pub conn: Connection,
    /// Its clock.
    pub now: Instant,
    /// What it answers to authentication requests.
    pub auth: AuthReply,
    /// Bytes it wrote that nobody has read yet.
    pub out: BytesMut,
    /// The authentication requests it raised.
    pub auth_requests: Vec<AuthRequest>,
    /// It reported HandshakeComplete.
    pub completed: bool,
    /// Its socket type.
    pub socket: SocketType,
    buf: BytesMut,
}

impl Driven {
    /// Wraps a connection using `mechanism`; its greeting lands in `out`.
    pub fn new(
        config: Config,
        mechanism: Box<dyn Mechanism>,
        now: Instant,
        auth: AuthReply,
    ) -> Self {
        let mut d = Driven {
            socket: config.socket_type,
            conn: Connection::with_mechanism(config, mechanism, now),
            now,
            auth,
            out: BytesMut::new(),
            auth_requests: Vec::new(),
            completed: false,
            buf: BytesMut::new(),
        };
        d.settle();
        d
    }

    /// True until the connection fails.
    pub fn healthy(&self) -> bool {
        self.conn.error().is_none()
    }

    /// Feeds bytes; answers authentication requests; collects output.
    /// Returns whether the connection is still healthy.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        if !bytes.is_empty() {
            self.buf.extend_from_slice(bytes);
            let r = self.conn.handle_input(&mut self.buf, self.now);
            assert_eq!(
                r.is_err(),
                self.conn.error().is_some(),
                "handle_input vs error()"
            );
            self.settle();
        }
        self.healthy()
    }

    /// Feeds `bytes` in two calls, cut at `at` (modulo the length + 1).
    pub fn feed_split(&mut self, bytes: &[u8], at: usize) -> bool {
        let at = at % (bytes.len() + 1);
        self.feed(&bytes[..at]);
        self.feed(&bytes[at..])
    }

    /// Feeds `bytes` in three calls, cut at `a` and `b` (in either order).
    pub fn feed_three(&mut self, bytes: &[u8], a: usize, b: usize) -> bool {
        let (a, b) = (a % (bytes.len() + 1), b % (bytes.len() + 1));
        let (x, y) = (a.min(b), a.max(b));
        self.feed(&bytes[..x]);
        self.feed(&bytes[x..y]);
        self.feed(&bytes[y..])
    }

    /// Moves the clock on and runs the timers.
    pub fn tick(&mut self, dt: Duration) -> bool {
        self.now += dt;
        let r = self.conn.handle_timeout(self.now);
        assert_eq!(
            r.is_err(),
            self.conn.error().is_some(),
            "handle_timeout vs error()"
        );
        self.settle();
        self.healthy()
    }

    /// Sends a message when active (it must then be accepted).
    pub fn send(&mut self, msg: &Message) {
        if self.conn.is_active() {
            self.conn
                .send_message(msg)
                .expect("an active connection accepts messages");
        } else {
            assert!(self.conn.send_message(msg).is_err());
        }
        self.settle();
    }

    /// Handles pending events and collects output.
    pub fn settle(&mut self) {
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                Event::Authenticate(req) => {
                    assert!(!self.completed, "authentication after the handshake");
                    self.auth_requests.push(req);
                    let r = self.conn.handle_auth_reply(self.auth.clone(), self.now);
                    assert_eq!(
                        r.is_err(),
                        self.conn.error().is_some(),
                        "auth reply vs error()"
                    );
                    if let AuthReply::Deny { .. } = self.auth {
                        assert!(r.is_err(), "a denied peer got in");
                    }
                }
                Event::HandshakeComplete(peer) => {
                    assert!(!self.completed, "HandshakeComplete twice");
                    self.completed = true;
                    assert_eq!(Some(&peer), self.conn.peer());
                    assert_eq!(
                        peer.metadata.get("Socket-Type").map(|t| t.as_ref()),
                        Some(peer.socket_type.as_str().as_bytes())
                    );
                    assert!(self.socket.is_compatible(peer.socket_type));
                }
                _ => {}
            }
        }
        for chunk in self.conn.transmit().take_all() {
            self.out.extend_from_slice(&chunk);
        }
        if self.conn.is_active() {
            assert!(self.completed && self.conn.peer().is_some());
        }
    }

    /// Last steps: messages if active, timers, local close.
    pub fn wind_down(&mut self) {
        let active = self.conn.is_active();
        self.send(&Message::from_iter(["x", "", "y"]));
        assert_eq!(self.conn.send_subscribe(b"t").is_ok(), active);
        assert_eq!(self.conn.send_cancel(b"").is_ok(), active);
        let _ = self.conn.poll_timeout();
        let _ = self.conn.handshake_eof_hint();
        let _ = self.conn.is_mid_message();
        let _ = self.conn.bytes_wanted();
        for s in [1, 10, 100] {
            self.tick(Duration::from_secs(s));
        }
        self.conn.close_with_error(ProtocolError::NotReady);
        self.settle();
        assert!(self.conn.error().is_some());
    }
}

/// Runs two engines against each other until neither writes (bounded).
/// Returns whether both are active.
pub fn handshake(a: &mut Driven, b: &mut Driven) -> bool {
    for _ in 0..16 {
        let to_b = a.out.split();
        let to_a = b.out.split();
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        b.feed(&to_b);
        a.feed(&to_a);
    }
    a.conn.is_active() && b.conn.is_active()
}

// ------------------------------------------------------------ wire helpers

/// Takes the next whole frame from what an engine wrote: (flags, body).
pub fn take_frame(out: &mut BytesMut) -> Option<(u8, Bytes)> {
    let h = peek_header(out).expect("the engine writes valid frame headers")?;
    let total = h.header_len + usize::try_from(h.len).ok()?;
    if out.len() < total {
        return None;
    }
    let mut f = out.split_to(total);
    f.advance(h.header_len);
    Some((h.flags, f.freeze()))
}

/// Takes the next command an engine wrote: (name, data).
pub fn take_command(out: &mut BytesMut) -> Option<(Vec<u8>, Vec<u8>)> {
    let (flags, body) = take_frame(out)?;
    assert!(flags & FLAG_COMMAND != 0, "expected a command frame");
    let cmd = RawCommand::parse(&body).expect("the engine writes valid commands");
    Some((cmd.name.to_vec(), cmd.data.to_vec()))
}

/// Takes an engine's greeting and checks its mechanism and role.
pub fn take_greeting(out: &mut BytesMut, mechanism: &str, as_server: bool) {
    assert!(out.len() >= GREETING_LEN, "no greeting");
    let g = out.split_to(GREETING_LEN);
    let (used, greeting) = GreetingDecoder::default()
        .feed(&g)
        .expect("a valid greeting");
    let greeting = greeting.expect("a whole greeting");
    assert_eq!(used, GREETING_LEN);
    assert_eq!(greeting.mechanism, mechanism);
    assert_eq!(greeting.as_server, as_server);
}

/// A CURVE MESSAGE as libzmq frames it: a plain data frame (flags 0) whose
/// body is the command-shaped `\x07MESSAGE` + nonce + box.
pub fn boxed_frame(data: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_header(0, 1 + 7 + data.len(), &mut out);
    out.put_u8(7);
    out.put_slice(b"MESSAGE");
    out.put_slice(data);
    out.to_vec()
}

/// Takes one boxed MESSAGE frame an active CURVE engine wrote: it must be a
/// plain data frame (flags 0) shaped like a MESSAGE command.
pub fn take_boxed(out: &mut BytesMut) -> Option<(Vec<u8>, Vec<u8>)> {
    let (flags, body) = take_frame(out)?;
    assert_eq!(
        flags & (FLAG_MORE | FLAG_COMMAND),
        0,
        "a CURVE MESSAGE travels in a plain data frame"
    );
    let cmd = RawCommand::parse(&body).expect("the engine writes valid MESSAGE frames");
    Some((cmd.name.to_vec(), cmd.data.to_vec()))
}

/// A COMMAND frame with any name (even an empty one) and data.
pub fn command_frame(name: &[u8], data: &[u8]) -> Vec<u8> {
    let name = &name[..name.len().min(255)];
    let mut out = BytesMut::new();
    encode_header(FLAG_COMMAND, 1 + name.len() + data.len(), &mut out);
    out.put_u8(name.len() as u8);
    out.put_slice(name);
    out.put_slice(data);
    out.to_vec()
}

/// A command some other handshake step, or nobody, would send.
pub fn stray_command(input: &mut Input<'_>) -> Vec<u8> {
    const NAMES: [&str; 10] = [
        "ERROR",
        "READY",
        "WELCOME",
        "HELLO",
        "INITIATE",
        "MESSAGE",
        "PING",
        "PONG",
        "SUBSCRIBE",
        "CANCEL",
    ];
    let k = usize::from(input.u8());
    let name: &[u8] = match NAMES.get(k % 12) {
        Some(n) => n.as_bytes(),
        None => input.short_bytes(),
    };
    command_frame(name, input.short_bytes())
}

/// Damage to a command's data, as the input says: flip a byte, cut the end
/// off, append bytes, or replace everything.
pub fn damage(data: &mut Vec<u8>, input: &mut Input<'_>) {
    match input.u8() % 4 {
        0 if !data.is_empty() => {
            let at = usize::from(input.u16()) % data.len();
            data[at] ^= input.u8() | 1;
        }
        1 => {
            let cut = usize::from(input.u16()) % (data.len() + 1);
            data.truncate(data.len() - cut);
        }
        2 => data.extend_from_slice(input.short_bytes()),
        _ => *data = input.short_bytes().to_vec(),
    }
}

/// Metadata the fuzzer's side announces: a valid Socket-Type (compatible
/// with `ours`, or any when `any_type`), an Identity and optionally another
/// property, all chosen by the input; or raw bytes when `raw`.
pub fn peer_metadata(
    input: &mut Input<'_>,
    ours: SocketType,
    raw: bool,
    any_type: bool,
) -> Vec<u8> {
    if raw {
        return input.short_bytes().to_vec();
    }
    let theirs = if any_type {
        socket_type(input.u8())
    } else {
        compatible(ours)
    };
    let mut md = Metadata::new();
    md.insert("Socket-Type", theirs.as_str());
    md.insert("Identity", Bytes::copy_from_slice(input.short_bytes()));
    // Another property, under a name the wire form allows (raw metadata
    // covers the others), but never replacing Socket-Type.
    let extra = input.short_bytes();
    if !extra.is_empty()
        && extra.iter().all(u8::is_ascii_graphic)
        && !extra.eq_ignore_ascii_case(b"Socket-Type")
    {
        let name = std::str::from_utf8(extra).expect("ASCII");
        md.insert(name, Bytes::copy_from_slice(input.short_bytes()));
    }
    let mut out = BytesMut::new();
    md.encode(&mut out);
    out.to_vec()
}

/// Checks metadata an engine sent: it decodes and names `socket`.
pub fn check_metadata(data: &[u8], socket: SocketType) {
    let md = Metadata::decode(data, "check").expect("the engine writes valid metadata");
    assert_eq!(
        md.get("Socket-Type").map(|v| v.as_ref()),
        Some(socket.as_str().as_bytes())
    );
}

/// Checks an ERROR an engine sent after denying: it carries (a prefix of) `reason`.
pub fn check_denial(out: &mut BytesMut, reason: &str) {
    let (name, data) = take_command(out).expect("an ERROR after denying");
    assert_eq!(name, b"ERROR");
    let cmd = RawCommand {
        name: b"ERROR",
        data: &data,
    };
    let sent = parse_error(&cmd).expect("a valid ERROR");
    assert!(reason.starts_with(&sent) && sent.len() <= 255);
}

// ------------------------------------------------------------- CURVE boxes

/// 24-byte nonce from a prefix and a tail.
fn nonce(prefix: &[u8], tail: &[u8]) -> [u8; 24] {
    assert_eq!(prefix.len() + tail.len(), 24);
    let mut n = [0u8; 24];
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(tail);
    n
}

/// The X25519 public key of `secret`.
pub fn public_of(secret: &[u8; 32]) -> [u8; 32] {
    *SecretKey::from(*secret).public_key().as_bytes()
}

/// A `crypto_box` the fuzzer's side seals and opens with (`tag || ciphertext`).
pub struct HarnessBox(SalsaBox);

impl HarnessBox {
    /// The box between `their_public` and `our_secret`.
    pub fn new(their_public: &[u8; 32], our_secret: &[u8; 32]) -> Self {
        HarnessBox(SalsaBox::new(
            &PublicKey::from(*their_public),
            &SecretKey::from(*our_secret),
        ))
    }

    /// Seals `plain` under the nonce `prefix || short`.
    pub fn seal(&self, prefix: &[u8], short: &[u8], plain: &[u8]) -> Vec<u8> {
        let n = nonce(prefix, short);
        let mut body = plain.to_vec();
        let tag = self
            .0
            .encrypt_in_place_detached((&n).into(), b"", &mut body)
            .expect("in-memory encryption");
        let mut out = tag.to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Opens `tag || ciphertext` under `prefix || short`.
    pub fn open(&self, prefix: &[u8], short: &[u8], boxed: &[u8]) -> Option<Vec<u8>> {
        let n = nonce(prefix, short);
        let (tag, ct) = boxed.split_at_checked(16)?;
        let mut body = ct.to_vec();
        self.0
            .decrypt_in_place_detached((&n).into(), b"", &mut body, tag.into())
            .ok()?;
        Some(body)
    }
}

/// The fuzzer's end of a CURVE session after the handshake.
pub struct BoxedPeer {
    /// The session box (short-term keys).
    pub session: HarnessBox,
    /// Nonce prefix of what we send.
    pub send_prefix: &'static [u8; 16],
    /// Nonce prefix of what the engine sends.
    pub recv_prefix: &'static [u8; 16],
    /// Last short nonce we sent.
    pub sent: u64,
    /// Last short nonce the engine sent.
    pub seen: u64,
}

impl BoxedPeer {
    /// A MESSAGE (in a data frame) boxing `box_flags || body` under short nonce `n`.
    pub fn message(&self, n: u64, box_flags: u8, body: &[u8]) -> Vec<u8> {
        let short = n.to_be_bytes();
        let mut plain = Vec::with_capacity(1 + body.len());
        plain.push(box_flags);
        plain.extend_from_slice(body);
        let mut data = short.to_vec();
        data.extend_from_slice(&self.session.seal(self.send_prefix, &short, &plain));
        boxed_frame(&data)
    }

    /// The next MESSAGE in sequence.
    pub fn next_message(&mut self, box_flags: u8, body: &[u8]) -> Vec<u8> {
        self.sent = self.sent.wrapping_add(1);
        self.message(self.sent, box_flags, body)
    }

    /// Everything an active CURVE engine writes must be a MESSAGE that opens,
    /// with a strictly increasing short nonce.
    pub fn check_output(&mut self, out: &mut BytesMut) {
        while let Some((name, data)) = take_boxed(out) {
            assert_eq!(
                name, b"MESSAGE",
                "a command in clear after the CURVE handshake"
            );
            assert!(data.len() > 8 + 16, "MESSAGE too short");
            let (short, boxed) = data.split_at(8);
            let n = u64::from_be_bytes(short.try_into().expect("8 bytes"));
            assert!(n > self.seen, "the engine reused a short nonce");
            self.seen = n;
            let plain = self
                .session
                .open(self.recv_prefix, short, boxed)
                .expect("the engine's MESSAGE opens");
            assert_eq!(plain[0] & !0x03, 0, "unknown MESSAGE flags");
            if plain[0] & 0x02 != 0 {
                RawCommand::parse(&plain[1..]).expect("a boxed command is well formed");
            }
        }
        assert!(out.is_empty(), "a partial frame from the engine");
    }
}

/// Boxed traffic from the fuzzer's side into an active CURVE engine: data
/// frames, boxed commands, replayed/reordered/huge nonces, damaged boxes,
/// commands in clear, large frames, timers, and messages the other way.
pub fn boxed_traffic(target: &mut Driven, peer: &mut BoxedPeer, input: &mut Input<'_>) {
    const COMMANDS: [&str; 8] = [
        "PING",
        "PONG",
        "SUBSCRIBE",
        "CANCEL",
        "ERROR",
        "READY",
        "MESSAGE",
        "HELLO",
    ];
    peer.check_output(&mut target.out);
    let mut ops = 0;
    while !input.is_empty() && ops < 64 && target.healthy() {
        ops += 1;
        let op = input.u8();
        let wire = match op % 8 {
            0 => {
                let flags = input.u8();
                peer.next_message(flags & 0x01, input.short_bytes())
            }
            1 => {
                let name = COMMANDS[usize::from(input.u8()) % COMMANDS.len()];
                let body = ironhouse_zmtp::command::body(name, input.short_bytes());
                peer.next_message(0x02, &body)
            }
            2 => {
                let (n, flags) = (input.u64(), input.u8());
                peer.message(n, flags, input.short_bytes())
            }
            3 => {
                let flags = input.u8();
                let mut m = peer.next_message(flags & 0x03, input.short_bytes());
                let at = usize::from(input.u16()) % m.len();
                m[at] ^= input.u8() | 1;
                m
            }
            4 => input.short_bytes().to_vec(),
            5 => {
                let frames =
                    (0..input.u8() % 4).map(|_| Bytes::copy_from_slice(input.short_bytes()));
                target.send(&Message::from_iter(frames));
                Vec::new()
            }
            6 => {
                target.tick(Duration::from_millis(u64::from(input.u8()) * 50));
                Vec::new()
            }
            _ => {
                let (fill, len) = (input.u8(), usize::from(input.u16()));
                peer.next_message(op >> 7, &vec![fill; len])
            }
        };
        target.feed_split(&wire, usize::from(op >> 3));
        if target.healthy() {
            peer.check_output(&mut target.out);
        }
    }
}

// -------------------------------------------------------------- relaying

/// Traffic between a connected engine pair: `peer` writes (messages,
/// subscriptions, heartbeats), the input tampers with its bytes on the way to
/// `target` (flip, replay, reorder, drop, cut, inject), and `target` writes
/// back, which `peer` must always accept.
pub fn mitm(target: &mut Driven, peer: &mut Driven, input: &mut Input<'_>) {
    fn frames(input: &mut Input<'_>) -> Message {
        Message::from_iter((0..input.u8() % 4).map(|_| Bytes::copy_from_slice(input.short_bytes())))
    }
    let mut wire: Vec<Vec<u8>> = Vec::new();
    let mut ops = 0;
    while !input.is_empty() && ops < 64 {
        ops += 1;
        let op = input.u8();
        let pick = |input: &mut Input<'_>, len: usize| usize::from(input.u8()) % len.max(1);
        match op % 11 {
            0 => peer.send(&frames(input)),
            1 => {
                let prefix = input.short_bytes();
                let _ = if op & 0x80 != 0 {
                    peer.conn.send_cancel(prefix)
                } else {
                    peer.conn.send_subscribe(prefix)
                };
                peer.settle();
            }
            2 => {
                peer.tick(Duration::from_millis(u64::from(input.u8()) * 50));
            }
            3 => {
                let i = pick(input, wire.len());
                if let Some(c) = wire.get_mut(i).filter(|c| !c.is_empty()) {
                    let at = usize::from(input.u16()) % c.len();
                    c[at] ^= input.u8() | 1;
                }
            }
            4 => {
                let i = pick(input, wire.len());
                if let Some(c) = wire.get(i).cloned() {
                    wire.push(c);
                }
            }
            5 => {
                let (i, j) = (pick(input, wire.len()), pick(input, wire.len()));
                if i < wire.len() && j < wire.len() {
                    wire.swap(i, j);
                }
            }
            6 => {
                let i = pick(input, wire.len());
                if i < wire.len() {
                    wire.remove(i);
                }
            }
            7 => {
                // Deliver the first chunk in two reads, or only part of it.
                if !wire.is_empty() {
                    let c = wire.remove(0);
                    let at = usize::from(input.u16()) % (c.len() + 1);
                    if op & 0x80 != 0 {
                        target.feed(&c[..at]);
                        wire.insert(0, c[at..].to_vec());
                    } else {
                        target.feed_split(&c, at);
                    }
                }
            }
            8 => {
                for c in wire.drain(..) {
                    target.feed(&c);
                }
            }
            9 => wire.push(input.short_bytes().to_vec()),
            _ => {
                if op & 0x80 != 0 {
                    target.tick(Duration::from_millis(u64::from(input.u8()) * 50));
                } else {
                    target.send(&frames(input));
                }
                let healthy = peer.healthy();
                let bytes = target.out.split();
                let ok = peer.feed(&bytes);
                assert!(
                    !healthy || ok,
                    "the real peer refused what the target wrote: {:?}",
                    peer.conn.error()
                );
            }
        }
        if !peer.out.is_empty() {
            wire.push(peer.out.split().to_vec());
        }
    }
    for c in wire.drain(..) {
        target.feed(&c);
    }
}

/// Raw mode: a valid greeting, then the rest of the input as bytes, in three
/// reads at input-chosen cuts.
pub fn raw(target: &mut Driven, greeting: [u8; GREETING_LEN], input: &mut Input<'_>) {
    let (a, b) = (usize::from(input.u16()), usize::from(input.u16()));
    let mut stream = greeting.to_vec();
    stream.extend_from_slice(input.rest());
    target.feed_three(&stream, a, b);
    target.wind_down();
}

/// Seed inputs for the handshake targets: captured valid handshakes (raw
/// mode), valid forged handshakes with some traffic, and relays. Written to
/// the (gitignored) `corpus/<target>/` by
/// `cargo test --lib -- --ignored write_seeds` in `fuzz/`.
#[cfg(test)]
mod seeds {
    use super::*;
    use ironhouse_zmtp::mechanism::{CurveClient, CurveServer, PlainClient, PlainServer};

    const ALLOW: AuthReply = AuthReply::Allow {
        user_id: String::new(),
    };

    /// What `peer` writes to `target` in a handshake, one chunk per round,
    /// greeting stripped, then one message from `peer`.
    fn capture(target: &mut Driven, peer: &mut Driven) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        for _ in 0..16 {
            let to_target = peer.out.split();
            let to_peer = target.out.split();
            if to_target.is_empty() && to_peer.is_empty() {
                break;
            }
            if !to_target.is_empty() {
                chunks.push(to_target.to_vec());
            }
            target.feed(&to_target);
            peer.feed(&to_peer);
        }
        assert!(target.conn.is_active() && peer.conn.is_active());
        peer.send(&Message::from_iter(["", "hello"]));
        chunks.push(peer.out.split().to_vec());
        let first = &mut chunks[0];
        first.drain(..GREETING_LEN);
        chunks.retain(|c| !c.is_empty());
        chunks
    }

    /// Raw-mode input for a captured transcript: cuts after the first two chunks.
    fn raw_input(head: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
        let a = GREETING_LEN + chunks[0].len();
        let b = a + chunks.get(1).map_or(0, Vec::len);
        let mut v = head.to_vec();
        v.extend_from_slice(&(a as u16).to_be_bytes());
        v.extend_from_slice(&(b as u16).to_be_bytes());
        v.extend(chunks.concat());
        v
    }

    fn now() -> Instant {
        Instant::now()
    }

    fn curve_server(socket: SocketType) -> Driven {
        let m = CurveServer::with_random(server_keys().clone(), CounterRandom::boxed(TARGET_SEED));
        Driven::new(config(socket, false, b""), Box::new(m), now(), ALLOW)
    }

    fn curve_client(socket: SocketType, seed: u64) -> Driven {
        let m = CurveClient::with_random(
            client_keys().clone(),
            server_keys().public,
            CounterRandom::boxed(seed),
        );
        Driven::new(config(socket, false, b""), Box::new(m), now(), ALLOW)
    }

    fn plain_client(socket: SocketType) -> Driven {
        let m = PlainClient::new("user", "pw").expect("short");
        Driven::new(config(socket, false, b""), Box::new(m), now(), ALLOW)
    }

    fn plain_server(socket: SocketType) -> Driven {
        Driven::new(
            config(socket, false, b""),
            Box::new(PlainServer::new()),
            now(),
            ALLOW,
        )
    }

    /// Traffic ops for `boxed_traffic`: a data frame, a boxed PING, a message
    /// from the target, a timer, another frame, then a replayed nonce.
    const BOXED_OPS: &[u8] = &[
        0, 0, 3, b'a', b'b', b'c', // data frame
        1, 0, 2, 0, 0, // boxed PING, no TTL
        5, 2, 1, b'x', 1, b'y', // the target sends two frames
        6, 20, // one second on
        0, 0, 1, b'z', // data frame
        2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'r', // nonce 1 again
    ];
    /// Ops for `mitm`: sends both ways, a subscription, heartbeats, then a
    /// replay.
    const RELAY_OPS: &[u8] = &[
        0, 2, 1, b'a', 1, b'b', // the peer sends two frames
        8,    // deliver
        10, 1, 1, b'c', // the target sends a frame back
        1, 1, b't', // the peer subscribes
        8, 2, 20, 8, // deliver; the peer's heartbeat; deliver
        131, 20, // the target's heartbeat, back to the peer
        4, 0, 8, // replay the first chunk, deliver
    ];

    fn write(target: &str, name: &str, data: &[u8]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), data).expect("seed");
    }

    #[test]
    #[ignore = "writes seed files into fuzz/corpus/"]
    fn write_seeds() {
        // [mode, socket, id-len, auth]; socket 0 is REQ, 4 is PUB.
        for (s, socket) in [(0u8, SocketType::Req), (4, SocketType::Pub)] {
            let peer = compatible(socket);
            let tag = socket.as_str().to_lowercase();

            let t = "handshake_curve_server";
            let chunks = capture(
                &mut curve_server(socket),
                &mut curve_client(peer, PEER_SEED),
            );
            write(t, &format!("raw-{tag}"), &raw_input(&[0, s, 0, 0], &chunks));
            let mut v = vec![1, s, 0, 0, 0, 0, 0, 0];
            v.extend_from_slice(BOXED_OPS);
            write(t, &format!("forged-{tag}"), &v);
            let mut v = vec![2, s, 0, 0];
            v.extend_from_slice(RELAY_OPS);
            write(t, &format!("relay-{tag}"), &v);

            let t = "handshake_curve_client";
            let m =
                CurveServer::with_random(server_keys().clone(), CounterRandom::boxed(PEER_SEED));
            let mut srv = Driven::new(config(peer, false, b""), Box::new(m), now(), ALLOW);
            let chunks = capture(&mut curve_client(socket, TARGET_SEED), &mut srv);
            write(t, &format!("raw-{tag}"), &raw_input(&[0, s, 0, 0], &chunks));
            let mut v = vec![1, s, 0, 0, 0, 0, 0, 0];
            v.extend_from_slice(BOXED_OPS);
            write(t, &format!("forged-{tag}"), &v);
            let mut v = vec![2, s, 0, 0];
            v.extend_from_slice(RELAY_OPS);
            write(t, &format!("relay-{tag}"), &v);

            let creds = [4, b'u', b's', b'e', b'r', 2, b'p', b'w'];
            let t = "handshake_plain_server";
            let chunks = capture(&mut plain_server(socket), &mut plain_client(peer));
            write(t, &format!("raw-{tag}"), &raw_input(&[0, s, 0, 0], &chunks));
            let mut v = vec![1, s, 0, 0, 0];
            v.extend_from_slice(&creds);
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            v.extend_from_slice(&chunks[chunks.len() - 1]);
            write(t, &format!("forged-{tag}"), &v);
            let mut v = vec![2, s, 0, 0];
            v.extend_from_slice(&creds);
            v.extend_from_slice(RELAY_OPS);
            write(t, &format!("relay-{tag}"), &v);

            let t = "handshake_plain_client";
            let chunks = capture(&mut plain_client(socket), &mut plain_server(peer));
            let mut head = vec![0, s, 0, 0];
            head.extend_from_slice(&creds);
            write(t, &format!("raw-{tag}"), &raw_input(&head, &chunks));
            let mut v = vec![1, s, 0, 0];
            v.extend_from_slice(&creds);
            v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
            v.extend_from_slice(&chunks[chunks.len() - 1]);
            write(t, &format!("forged-{tag}"), &v);
            let mut v = vec![2, s, 0, 0];
            v.extend_from_slice(&creds);
            v.extend_from_slice(RELAY_OPS);
            write(t, &format!("relay-{tag}"), &v);
        }
    }
}
