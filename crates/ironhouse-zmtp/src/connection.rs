//! One ZMTP connection as a state machine: greeting, handshake, traffic.
//!
//! Methods follow quinn-proto's naming: `handle_*` feed inputs (bytes, time,
//! authentication answers), `poll_*` hand out outputs (events, the next
//! deadline), and [`Connection::transmit`] holds the bytes to write. The
//! caller owns the socket and the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use crate::command::{self, RawCommand};
use crate::frame::{self, encode_header, peek_header, FLAG_COMMAND, FLAG_MORE};
use crate::greeting::{self, GreetingDecoder, GREETING_LEN};
use crate::mechanism::{Null, Step};
use crate::CurvePublicKey;
use crate::{
    AuthReply, AuthRequest, Mechanism, Message, Metadata, ProtocolError, SocketType, Transmit,
};

/// Bytes a CURVE MESSAGE adds around a frame: name, nonce, tag, flags.
const BOX_OVERHEAD: u64 = 1 + 7 + 8 + 16 + 1;

/// Handshake commands and control commands larger than this are refused.
const MAX_COMMAND: u64 = 1 << 20;

/// Heartbeat settings (libzmq's ZMQ_HEARTBEAT_IVL / _TTL / _TIMEOUT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Send a PING this often. `None`: no heartbeats.
    pub interval: Option<Duration>,
    /// Ask the peer to drop us after this long without traffic (sent in PING,
    /// rounded down to tenths of a second, at most 6553.5 s).
    pub ttl: Option<Duration>,
    /// Drop the peer if nothing arrives this long after a PING. Defaults to
    /// the interval.
    pub timeout: Option<Duration>,
}

/// What a connection needs to know about its own side.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our socket type, announced in READY and checked against the peer's.
    pub socket_type: SocketType,
    /// Our routing id, announced as `Identity` by REQ, DEALER and ROUTER.
    pub identity: Bytes,
    /// Largest message (all frames together) accepted from the peer.
    /// Checked from frame headers, before allocating. `None`: no limit.
    pub max_message_size: Option<u64>,
    /// Give up if the handshake takes longer. `None`: wait forever.
    pub handshake_timeout: Option<Duration>,
    /// Heartbeats.
    pub heartbeat: Heartbeat,
}

impl Config {
    /// Defaults for a socket type: no identity, no size limit, a 30 s
    /// handshake timeout (libzmq's default), no heartbeats.
    pub fn new(socket_type: SocketType) -> Self {
        Config {
            socket_type,
            identity: Bytes::new(),
            max_message_size: None,
            handshake_timeout: Some(Duration::from_secs(30)),
            heartbeat: Heartbeat::default(),
        }
    }
}

/// What we learnt about the peer in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's socket type.
    pub socket_type: SocketType,
    /// The peer's routing id, if it announced a usable one (non-empty, not
    /// starting with a zero byte, which libzmq reserves).
    pub identity: Option<Bytes>,
    /// All of the peer's metadata.
    pub metadata: Metadata,
    /// User id granted by authentication.
    pub user_id: Option<String>,
    /// The peer's ZMTP minor version (0 or 1).
    pub minor_version: u8,
    /// The security mechanism in use.
    pub mechanism: &'static str,
    /// The peer's long-term CURVE public key (CURVE only).
    pub public_key: Option<CurvePublicKey>,
}

/// Something the connection has for its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed; messages may flow.
    HandshakeComplete(PeerInfo),
    /// The peer needs an authentication decision: answer with
    /// [`Connection::handle_auth_reply`].
    Authenticate(AuthRequest),
    /// A whole message arrived.
    Message(Message),
    /// A subscriber subscribed to a prefix (SUBSCRIBE command, or a ZMTP 3.0
    /// style `\x01prefix` message). Only reported to PUB and XPUB.
    Subscribe(Bytes),
    /// A subscriber cancelled a prefix.
    Cancel(Bytes),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Greeting,
    Handshake,
    Authenticating,
    Active,
    Failed,
}

/// A ZMTP connection without I/O. See the crate docs for an example.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    mechanism: Box<dyn Mechanism>,
    local_metadata: Metadata,
    state: State,
    error: Option<ProtocolError>,
    greeting: GreetingDecoder,
    peer: Option<PeerInfo>,
    peer_minor: u8,
    transmit: Transmit,
    events: VecDeque<Event>,
    partial: Message,
    partial_size: u64,
    wanted: usize,
    handshake_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    peer_ttl: Option<Duration>,
    ttl_deadline: Option<Instant>,
}

impl Connection {
    /// A connection using the NULL mechanism. Our greeting is queued at once.
    pub fn new(config: Config, now: Instant) -> Self {
        Self::with_mechanism(config, Box::new(Null::new()), now)
    }

    /// A connection using `mechanism`.
    pub fn with_mechanism(config: Config, mechanism: Box<dyn Mechanism>, now: Instant) -> Self {
        let mut local_metadata = Metadata::new();
        local_metadata.insert("Socket-Type", config.socket_type.as_str());
        if config.socket_type.sends_identity() {
            local_metadata.insert("Identity", config.identity.clone());
        }
        let mut transmit = Transmit::default();
        transmit
            .tail()
            .extend_from_slice(&greeting::encode(mechanism.name(), mechanism.as_server()));
        Connection {
            handshake_deadline: config.handshake_timeout.map(|t| now + t),
            config,
            mechanism,
            local_metadata,
            state: State::Greeting,
            error: None,
            greeting: GreetingDecoder::default(),
            peer: None,
            peer_minor: 0,
            transmit,
            events: VecDeque::new(),
            partial: Message::new(),
            partial_size: 0,
            wanted: GREETING_LEN,
            next_ping: None,
            pong_deadline: None,
            peer_ttl: None,
            ttl_deadline: None,
        }
    }

    /// True once the handshake has completed and until an error.
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// The peer, once the handshake has completed.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// True while part of a multipart message has arrived but not its last frame.
    pub fn is_mid_message(&self) -> bool {
        !self.partial.is_empty()
    }

    /// A hint for the user when the peer hung up during the handshake.
    pub fn handshake_eof_hint(&self) -> Option<&'static str> {
        if self.state == State::Active {
            None
        } else {
            self.mechanism.handshake_eof_hint()
        }
    }

    /// The error that ended this connection, if any.
    pub fn error(&self) -> Option<&ProtocolError> {
        self.error.as_ref()
    }

    /// Bytes waiting to be written to the peer; call [`Transmit::advance`]
    /// after writing some.
    pub fn transmit(&mut self) -> &mut Transmit {
        &mut self.transmit
    }

    /// Read-only view of [`Connection::transmit`], for building write calls.
    pub fn pending_transmit(&self) -> &Transmit {
        &self.transmit
    }

    /// How many buffered input bytes the decoder would like before it can make
    /// progress (a hint for sizing reads; never larger than the current frame).
    pub fn bytes_wanted(&self) -> usize {
        self.wanted
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Greeting | State::Handshake | State::Authenticating => self.handshake_deadline,
            State::Active => [self.next_ping, self.pong_deadline, self.ttl_deadline]
                .into_iter()
                .flatten()
                .min(),
            State::Failed => None,
        }
    }

    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        // Tell a ZMTP peer why, when the failure is ours to report during the
        // handshake (RFC 23 ERROR). Garbage senders get nothing.
        let handshaking = matches!(self.state, State::Handshake | State::Authenticating);
        let report = handshaking
            && !matches!(
                e,
                ProtocolError::PeerError(_)
                    | ProtocolError::AuthDenied { .. }
                    | ProtocolError::HandshakeTimeout
            );
        if report {
            command::write_error(self.transmit.tail(), &e.to_string());
        }
        self.state = State::Failed;
        self.error = Some(e.clone());
        e
    }

    fn check_failed(&self) -> Result<(), ProtocolError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Feeds bytes read from the peer. Consumed bytes are removed from `buf`;
    /// a partial frame stays in it for the next call.
    ///
    /// # Errors
    /// Any protocol violation. The connection is then failed: flush
    /// [`Connection::transmit`] (it may hold an ERROR for the peer) and close.
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), ProtocolError> {
        self.check_failed()?;
        if buf.is_empty() {
            return Ok(());
        }
        self.pong_deadline = None;
        if let Some(ttl) = self.peer_ttl {
            self.ttl_deadline = Some(now + ttl);
        }
        match self.process_input(buf, now) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn process_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), ProtocolError> {
        if self.state == State::Greeting {
            let (used, greeting) = self.greeting.feed(buf)?;
            buf.advance(used);
            let Some(g) = greeting else {
                self.wanted = GREETING_LEN;
                return Ok(());
            };
            if g.mechanism != self.mechanism.name() {
                return Err(ProtocolError::MechanismMismatch {
                    ours: self.mechanism.name().into(),
                    theirs: g.mechanism,
                });
            }
            self.peer_minor = g.minor;
            self.state = State::Handshake;
            let step =
                self.mechanism
                    .start(g.as_server, &self.local_metadata, self.transmit.tail())?;
            self.apply_step(step, now)?;
        }
        loop {
            if self.state == State::Failed {
                return Ok(());
            }
            let Some(h) = peek_header(buf)? else {
                self.wanted = 9;
                return Ok(());
            };
            // (largest body allowed for this frame, the limit to report)
            // Under CURVE every data frame is one boxed MESSAGE (with overhead).
            let boxed =
                !h.command() && self.state == State::Active && self.mechanism.wraps_messages();
            let limit = match (h.command(), self.config.max_message_size) {
                (true, _) => Some((MAX_COMMAND, MAX_COMMAND)),
                (false, Some(max)) if boxed => Some((
                    max.saturating_sub(self.partial_size)
                        .saturating_add(BOX_OVERHEAD),
                    max,
                )),
                (false, Some(max)) => Some((max.saturating_sub(self.partial_size), max)),
                (false, None) => None,
            };
            if let Some((allowed, reported)) = limit {
                if h.len > allowed {
                    return Err(ProtocolError::MessageTooLarge {
                        size: self.partial_size.saturating_add(h.len),
                        limit: reported,
                    });
                }
            }
            let total = h.header_len + h.len as usize;
            if buf.len() < total {
                self.wanted = total;
                return Ok(());
            }
            buf.advance(h.header_len);
            let body = frame::take_body(buf, h.len as usize);
            if h.command() {
                self.handle_command(&body, now)?;
            } else if boxed {
                self.handle_boxed(&body, now)?;
            } else if self.state == State::Active {
                self.handle_data_frame(h.more(), body);
            } else {
                return Err(ProtocolError::MalformedFrame(
                    "message frame before the handshake completed",
                ));
            }
        }
    }

    fn handle_command(&mut self, body: &Bytes, now: Instant) -> Result<(), ProtocolError> {
        let cmd = RawCommand::parse(body)?;
        match self.state {
            State::Handshake => {
                let step = self.mechanism.handle_command(
                    cmd,
                    &self.local_metadata,
                    self.transmit.tail(),
                )?;
                self.apply_step(step, now)
            }
            State::Authenticating => Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "while authentication is pending",
            }),
            State::Active => self.handle_active_command(cmd, now, false),
            State::Greeting | State::Failed => Ok(()),
        }
    }

    /// A data frame on an encrypting connection: a boxed MESSAGE holding one
    /// message frame or one command.
    fn handle_boxed(&mut self, body: &Bytes, now: Instant) -> Result<(), ProtocolError> {
        let cmd = RawCommand::parse(body)?;
        if cmd.name != b"MESSAGE" {
            return Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "where a boxed MESSAGE was expected",
            });
        }
        let (flags, frame) = self.mechanism.open_frame(cmd)?;
        if flags & FLAG_COMMAND != 0 {
            // Commands (PING, SUBSCRIBE, …) travel boxed too.
            return self.handle_active_command(RawCommand::parse(&frame)?, now, true);
        }
        if let Some(max) = self.config.max_message_size {
            if self.partial_size + frame.len() as u64 > max {
                return Err(ProtocolError::MessageTooLarge {
                    size: self.partial_size + frame.len() as u64,
                    limit: max,
                });
            }
        }
        self.handle_data_frame(flags & FLAG_MORE != 0, frame);
        Ok(())
    }

    /// A command after the handshake. `boxed`: it arrived inside a MESSAGE.
    fn handle_active_command(
        &mut self,
        cmd: RawCommand<'_>,
        now: Instant,
        boxed: bool,
    ) -> Result<(), ProtocolError> {
        if self.mechanism.wraps_messages() && !boxed && cmd.name != b"ERROR" {
            // An encrypting mechanism never sends commands in clear after the
            // handshake; accepting one would let anyone on the path inject it.
            return Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "in clear on an encrypted connection",
            });
        }
        match cmd.name {
            b"PING" => {
                let (ttl, context) = command::parse_ping(&cmd)?;
                if ttl > 0 {
                    let ttl = Duration::from_millis(u64::from(ttl) * 100);
                    self.peer_ttl = Some(ttl);
                    self.ttl_deadline = Some(now + ttl);
                }
                let body = command::body("PONG", context);
                self.send_command(&body)
            }
            b"PONG" => Ok(()),
            b"ERROR" => Err(ProtocolError::PeerError(command::parse_error(&cmd)?)),
            b"SUBSCRIBE" if self.accepts_subscriptions() => {
                self.events
                    .push_back(Event::Subscribe(Bytes::copy_from_slice(cmd.data)));
                Ok(())
            }
            b"CANCEL" if self.accepts_subscriptions() => {
                self.events
                    .push_back(Event::Cancel(Bytes::copy_from_slice(cmd.data)));
                Ok(())
            }
            // Unknown commands are ignored so newer peers can extend the protocol.
            _ => Ok(()),
        }
    }

    /// Sends a command after the handshake: a COMMAND frame, or a boxed
    /// MESSAGE under an encrypting mechanism.
    fn send_command(&mut self, body: &[u8]) -> Result<(), ProtocolError> {
        if self.mechanism.wraps_messages() {
            self.mechanism
                .seal_frame(FLAG_COMMAND, body, self.transmit.tail())
        } else {
            frame::encode_frame(FLAG_COMMAND, body, self.transmit.tail());
            Ok(())
        }
    }

    fn accepts_subscriptions(&self) -> bool {
        matches!(self.config.socket_type, SocketType::Pub | SocketType::Xpub)
    }

    fn handle_data_frame(&mut self, more: bool, body: Bytes) {
        self.partial_size += body.len() as u64;
        self.partial.push_back(body);
        if more {
            return;
        }
        let msg = std::mem::take(&mut self.partial);
        self.partial_size = 0;
        // ZMTP 3.0 subscribers (and libzmq, for compatibility) send
        // subscriptions as one-frame messages starting with 1 or 0.
        if self.accepts_subscriptions() && msg.len() == 1 {
            let f = &msg.frames()[0];
            match f.first() {
                Some(1) => return self.events.push_back(Event::Subscribe(f.slice(1..))),
                Some(0) => return self.events.push_back(Event::Cancel(f.slice(1..))),
                _ => {}
            }
        }
        self.events.push_back(Event::Message(msg));
    }

    fn apply_step(&mut self, step: Step, now: Instant) -> Result<(), ProtocolError> {
        match step {
            Step::Continue => Ok(()),
            Step::Authenticate(req) => {
                // Refuse an incompatible peer before bothering the authenticator.
                if req.peer_metadata.get("Socket-Type").is_some() {
                    self.peer_type(&req.peer_metadata)?;
                }
                self.state = State::Authenticating;
                self.events.push_back(Event::Authenticate(req));
                Ok(())
            }
            Step::Complete {
                peer_metadata,
                user_id,
            } => self.complete(peer_metadata, user_id, now),
        }
    }

    /// The peer's socket type from its metadata, if present, known and compatible.
    fn peer_type(&self, metadata: &Metadata) -> Result<SocketType, ProtocolError> {
        let raw = metadata
            .get("Socket-Type")
            .ok_or(ProtocolError::MissingSocketType)?;
        let theirs = SocketType::from_wire(raw).ok_or_else(|| {
            ProtocolError::UnknownSocketType(String::from_utf8_lossy(raw).into_owned())
        })?;
        let ours = self.config.socket_type;
        if !ours.is_compatible(theirs) {
            return Err(ProtocolError::IncompatibleSocketType { ours, theirs });
        }
        Ok(theirs)
    }

    fn complete(
        &mut self,
        metadata: Metadata,
        user_id: Option<String>,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let theirs = self.peer_type(&metadata)?;
        let identity = metadata
            .get("Identity")
            .filter(|id| !id.is_empty() && id[0] != 0)
            .cloned();
        let peer = PeerInfo {
            socket_type: theirs,
            identity,
            metadata,
            user_id,
            minor_version: self.peer_minor,
            mechanism: self.mechanism.name(),
            public_key: self.mechanism.peer_public_key().map(CurvePublicKey),
        };
        self.peer = Some(peer.clone());
        self.state = State::Active;
        self.handshake_deadline = None;
        // ZMTP 3.0 has no PING; heartbeats need a 3.1 peer.
        if self.peer_minor >= 1 {
            self.next_ping = self.config.heartbeat.interval.map(|i| now + i);
        }
        self.events.push_back(Event::HandshakeComplete(peer));
        Ok(())
    }

    /// Gives the application's authentication decision.
    ///
    /// # Errors
    /// [`ProtocolError::AuthDenied`] when `reply` denies (an ERROR for the peer
    /// is queued in [`Connection::transmit`]); other errors if no
    /// authentication was pending.
    pub fn handle_auth_reply(
        &mut self,
        reply: AuthReply,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        self.check_failed()?;
        if self.state != State::Authenticating {
            return Err(ProtocolError::Handshake {
                mechanism: self.mechanism.name(),
                reason: "authentication answer without a request".into(),
            });
        }
        self.state = State::Handshake;
        let result = self
            .mechanism
            .handle_auth(reply, &self.local_metadata, self.transmit.tail())
            .and_then(|step| self.apply_step(step, now));
        result.map_err(|e| self.fail(e))
    }

    /// Advances timers: handshake timeout, heartbeats.
    ///
    /// # Errors
    /// [`ProtocolError::HandshakeTimeout`] or [`ProtocolError::HeartbeatTimeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ProtocolError> {
        self.check_failed()?;
        if self.state != State::Active {
            if self.handshake_deadline.is_some_and(|d| now >= d) {
                return Err(self.fail(ProtocolError::HandshakeTimeout));
            }
            return Ok(());
        }
        if self.pong_deadline.is_some_and(|d| now >= d)
            || self.ttl_deadline.is_some_and(|d| now >= d)
        {
            return Err(self.fail(ProtocolError::HeartbeatTimeout));
        }
        if let (Some(at), Some(interval)) = (self.next_ping, self.config.heartbeat.interval) {
            if now >= at {
                let ttl = self.config.heartbeat.ttl.map_or(0, |t| {
                    (t.as_millis() / 100).min(u128::from(u16::MAX)) as u16
                });
                let body = command::ping_body(ttl, b"");
                self.send_command(&body).map_err(|e| self.fail(e))?;
                self.next_ping = Some(now + interval);
                if self.pong_deadline.is_none() {
                    self.pong_deadline =
                        Some(now + self.config.heartbeat.timeout.unwrap_or(interval));
                }
            }
        }
        Ok(())
    }

    /// Queues a message for the peer.
    ///
    /// # Errors
    /// [`ProtocolError::NotReady`] before the handshake completes or after a
    /// failure. An empty message is sent as one empty frame.
    pub fn send_message(&mut self, msg: &Message) -> Result<(), ProtocolError> {
        if self.state != State::Active {
            return Err(self.error.clone().unwrap_or(ProtocolError::NotReady));
        }
        let frames = msg.frames();
        if frames.is_empty() {
            return self.send_frame(0, &Bytes::new());
        }
        let last = frames.len() - 1;
        for (i, f) in frames.iter().enumerate() {
            self.send_frame(if i < last { FLAG_MORE } else { 0 }, f)?;
        }
        Ok(())
    }

    fn send_frame(&mut self, flags: u8, body: &Bytes) -> Result<(), ProtocolError> {
        if self.mechanism.wraps_messages() {
            self.mechanism.seal_frame(flags, body, self.transmit.tail())
        } else {
            encode_header(flags, body.len(), self.transmit.tail());
            self.transmit.push_body(body);
            Ok(())
        }
    }

    /// Subscribes to a prefix (SUB/XSUB side).
    ///
    /// Sent as a `\x01prefix` message, the form every ZMTP 3.x peer and every
    /// libzmq 4.x accepts, rather than the 3.1-only SUBSCRIBE command.
    ///
    /// # Errors
    /// [`ProtocolError::NotReady`] before the handshake completes.
    pub fn send_subscribe(&mut self, prefix: &[u8]) -> Result<(), ProtocolError> {
        self.send_subscription(1, prefix)
    }

    /// Cancels a prefix subscription (SUB/XSUB side).
    ///
    /// # Errors
    /// [`ProtocolError::NotReady`] before the handshake completes.
    pub fn send_cancel(&mut self, prefix: &[u8]) -> Result<(), ProtocolError> {
        self.send_subscription(0, prefix)
    }

    fn send_subscription(&mut self, kind: u8, prefix: &[u8]) -> Result<(), ProtocolError> {
        let mut body = BytesMut::with_capacity(1 + prefix.len());
        body.extend_from_slice(&[kind]);
        body.extend_from_slice(prefix);
        self.send_message(&Message::from(body.freeze()))
    }

    /// Fails the connection locally (for example, the application refused the
    /// peer), queueing an ERROR for the peer while still handshaking.
    pub fn close_with_error(&mut self, error: ProtocolError) {
        if self.error.is_none() {
            self.fail(error);
        }
    }
}
