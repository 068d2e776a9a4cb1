//! The task that drives one connection: it owns the transport halves and a
//! sans-IO [`Connection`], moves bytes between them, hands received messages
//! to the socket and sends what the socket queued for this peer.
//!
//! Backpressure runs both ways: while the socket's receive queue is full the
//! session stops reading (TCP then pushes back on the peer); while the
//! engine's output is above [`OUTPUT_HIGH_WATER`] it stops taking messages
//! from the send queue.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ironhouse_zmtp::{AuthReply, Config, Connection, Event, Message, ProtocolError, SocketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, Instant};

use crate::monitor::SocketEvent;
use crate::pipe::Pipe;
use crate::security::{AuthDecision, AuthRequest, PeerCertificate};
use crate::socket::peers::{Outbound, PeerId, Shared};
use crate::transport::Conn;
use crate::Error;

/// Stop pulling from the send queue while this many bytes wait to be written.
const OUTPUT_HIGH_WATER: usize = 256 * 1024;
/// Messages taken from the send queue per wake-up.
const BATCH: usize = 256;
/// Smallest read buffer reservation.
const READ_CHUNK: usize = 64 * 1024;
/// Largest single reservation made for one announced frame; bigger frames
/// grow the buffer as bytes actually arrive, so a peer that announces a
/// huge frame and stalls cannot make us allocate it.
const MAX_RESERVE: usize = 16 << 20;

/// How a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The socket closed this peer's queue and everything was flushed (or linger expired).
    SocketClosed,
    /// The peer closed the connection.
    PeerClosed,
    /// The handshake failed.
    Handshake(Error),
    /// An established connection failed.
    Failed(Error),
}

impl End {
    pub(crate) fn reason(&self) -> Option<String> {
        match self {
            End::SocketClosed | End::PeerClosed => None,
            End::Handshake(e) | End::Failed(e) => Some(e.to_string()),
        }
    }
}

pub(crate) fn engine_config(shared: &Shared) -> Config {
    let o = &shared.options;
    let mut c = Config::new(shared.kind);
    c.identity = o.identity.clone();
    c.max_message_size = o.max_message_size;
    c.handshake_timeout = o.handshake_timeout;
    c.heartbeat = o.heartbeat;
    c
}

/// Runs one connection until it ends. `pipe` is this peer's send queue.
/// Returns how it ended and whether the handshake had completed.
pub(crate) async fn run(
    conn: Conn,
    pipe: &Pipe<Outbound>,
    inbox: &Pipe<Message>,
    shared: &Arc<Shared>,
    id: PeerId,
) -> (End, bool) {
    let mechanism = match shared.options.security.mechanism() {
        Ok(m) => m,
        Err(e) => return (End::Handshake(e.into()), false),
    };
    let mut s = Session {
        engine: Connection::with_mechanism(
            engine_config(shared),
            mechanism,
            Instant::now().into_std(),
        ),
        shared,
        id,
        peer: conn.peer.clone(),
        tls_peer: conn.tls_peer.clone(),
        routing_id: Bytes::new(),
        active: false,
        pending_in: VecDeque::new(),
        inbox,
    };
    let end = s.drive(conn, pipe).await;
    (end, s.active)
}

/// Makes room in the read buffer for the next read.
///
/// A large frame gets a buffer of exactly its size (holding the bytes already
/// read): the frame is then split off without copying, and same-sized
/// messages ask the allocator for same-sized blocks, which glibc recycles
/// instead of mapping fresh pages for each one.
fn prepare_read_buffer(rbuf: &mut BytesMut, wanted: usize) {
    let spare = rbuf.capacity() - rbuf.len();
    if wanted > READ_CHUNK && wanted > rbuf.len() + spare {
        // Up to MAX_RESERVE at once; beyond, grow geometrically as bytes
        // arrive, so a huge announced frame costs memory only when sent and
        // the copies stay linear in the frame size.
        let cap = wanted
            .min(MAX_RESERVE.max(rbuf.len().saturating_mul(2)))
            .max(rbuf.len() + READ_CHUNK);
        let mut fresh = BytesMut::with_capacity(cap);
        fresh.extend_from_slice(rbuf);
        *rbuf = fresh;
    } else if spare < READ_CHUNK / 4 {
        rbuf.reserve(READ_CHUNK);
    }
}

/// Writes `slices`, or flushes when there is nothing to write. Returns the
/// bytes written, `None` for a flush.
async fn write_or_flush(
    writer: &mut crate::transport::WriteHalf,
    slices: &[IoSlice<'_>],
) -> std::io::Result<Option<usize>> {
    if slices.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        writer.write_vectored(slices).await.map(Some)
    }
}

struct Session<'a> {
    engine: Connection,
    shared: &'a Arc<Shared>,
    id: PeerId,
    peer: String,
    /// `tls://`: the peer's certificate, for the authenticator and monitor.
    tls_peer: Option<PeerCertificate>,
    routing_id: Bytes,
    active: bool,
    /// Received messages waiting for room in the socket's receive queue.
    pending_in: VecDeque<Message>,
    /// Where received messages go (this peer's queue in the socket).
    inbox: &'a Pipe<Message>,
}

impl Session<'_> {
    async fn drive(&mut self, conn: Conn, pipe: &Pipe<Outbound>) -> End {
        let Conn {
            mut reader,
            mut writer,
            buffered,
            ..
        } = conn;
        // A buffering writer (TLS) may hold bytes after a write returns;
        // they are flushed once the engine has nothing more to give it.
        let mut unflushed = false;
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut batch: VecDeque<Outbound> = VecDeque::with_capacity(BATCH);
        let mut draining = false;
        let mut linger_deadline: Option<Instant> = None;
        loop {
            if draining && self.engine.transmit().is_empty() && !unflushed {
                let _ = timeout(Duration::from_secs(1), writer.shutdown()).await;
                return End::SocketClosed;
            }
            prepare_read_buffer(&mut rbuf, self.engine.bytes_wanted());
            let timer = [
                self.engine.poll_timeout().map(Instant::from_std),
                linger_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let want_read = self.pending_in.is_empty();
            let want_pipe =
                self.active && !draining && self.engine.transmit().len() < OUTPUT_HIGH_WATER;
            let mut slices = [IoSlice::new(&[]); 64];
            let nslices = self.engine.pending_transmit().io_slices(&mut slices);
            let inbox = self.inbox;
            tokio::select! {
                biased;
                r = write_or_flush(&mut writer, &slices[..nslices]), if nslices > 0 || unflushed => match r {
                    Ok(Some(0)) => return self.io_end(std::io::ErrorKind::WriteZero.into()),
                    Ok(Some(n)) => {
                        self.engine.transmit().advance(n);
                        unflushed = buffered;
                    }
                    Ok(None) => unflushed = false,
                    Err(e) => return self.io_end(e),
                },
                () = inbox.room(), if !self.pending_in.is_empty() => {
                    if !inbox.push_from(&mut self.pending_in) {
                        return End::SocketClosed;
                    }
                }
                r = reader.read_buf(&mut rbuf), if want_read => match r {
                    Ok(0) => {
                        if self.active && (!rbuf.is_empty() || self.engine.is_mid_message()) {
                            return End::Failed(Error::Io(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "peer closed the connection in the middle of a frame",
                            )));
                        }
                        return if self.active { End::PeerClosed } else {
                            let why = match self.engine.handshake_eof_hint() {
                                Some(hint) => format!("peer closed the connection during the handshake; {hint}"),
                                None => "peer closed the connection during the handshake".to_string(),
                            };
                            End::Handshake(Error::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why)))
                        };
                    }
                    Ok(_) => {
                        let res = self.engine.handle_input(&mut rbuf, Instant::now().into_std());
                        if let Err(end) = self.handle_events() {
                            return self.fail(end, &mut writer).await;
                        }
                        if let Err(e) = res {
                            return self.fail(self.protocol_end(e), &mut writer).await;
                        }
                    }
                    Err(e) => return self.io_end(e),
                },
                more = pipe.take(&mut batch, BATCH), if want_pipe => {
                    if !more {
                        draining = true;
                        linger_deadline = self.shared.options.linger.map(|l| Instant::now() + l);
                        continue;
                    }
                    for item in batch.drain(..) {
                        let r = match item {
                            Outbound::Message(m) => self.engine.send_message(&m),
                            Outbound::Subscribe(p) => self.engine.send_subscribe(&p),
                            Outbound::Cancel(p) => self.engine.send_cancel(&p),
                        };
                        if let Err(e) = r {
                            return self.fail(self.protocol_end(e), &mut writer).await;
                        }
                    }
                },
                () = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    if linger_deadline.is_some_and(|d| Instant::now() >= d) {
                        tracing::debug!(peer = %self.peer, "linger expired with {} bytes unsent", self.engine.transmit().len());
                        return End::SocketClosed;
                    }
                    if let Err(e) = self.engine.handle_timeout(Instant::now().into_std()) {
                        return self.fail(self.protocol_end(e), &mut writer).await;
                    }
                },
            }
        }
    }

    fn io_end(&self, e: std::io::Error) -> End {
        if self.active {
            End::Failed(Error::Io(e))
        } else {
            End::Handshake(Error::Io(e))
        }
    }

    fn protocol_end(&self, e: ProtocolError) -> End {
        if self.active {
            End::Failed(Error::Protocol(e))
        } else {
            End::Handshake(Error::Protocol(e))
        }
    }

    /// Ends the session after an error, first trying briefly to deliver what
    /// the engine queued (an ERROR command tells a ZMTP peer why).
    async fn fail(&mut self, end: End, writer: &mut crate::transport::WriteHalf) -> End {
        let bytes: Vec<Bytes> = self.engine.transmit().take_all();
        let _ = timeout(Duration::from_millis(500), async {
            for b in bytes {
                writer.write_all(&b).await?;
            }
            writer.shutdown().await
        })
        .await;
        end
    }

    /// Queues a received message for the socket (handed over in one batch
    /// per read, by [`Session::handle_events`]).
    fn deliver(&mut self, mut msg: Message) {
        if self.shared.kind == SocketType::Router {
            msg.push_front(self.routing_id.clone());
        }
        self.pending_in.push_back(msg);
    }

    fn handle_events(&mut self) -> Result<(), End> {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Message(m) => {
                    if matches!(self.shared.kind, SocketType::Pub | SocketType::Xpub) {
                        continue; // Subscribers have nothing to say but subscriptions.
                    }
                    self.deliver(m);
                }
                Event::HandshakeComplete(info) => {
                    let (routing_id, subs) = self
                        .shared
                        .activate(self.id, &info)
                        .map_err(End::Handshake)?;
                    self.routing_id = routing_id;
                    self.active = true;
                    for s in subs {
                        self.engine
                            .send_subscribe(&s)
                            .map_err(|e| End::Failed(e.into()))?;
                    }
                    tracing::debug!(peer = %self.peer, peer_type = %info.socket_type, "connected");
                    self.shared.emit(SocketEvent::Connected {
                        peer: self.peer.clone(),
                        peer_type: info.socket_type,
                        user_id: info.user_id.clone(),
                        public_key: info.public_key,
                        tls_peer: self.tls_peer.clone().map(Box::new),
                    });
                }
                Event::Authenticate(req) => {
                    let reply = self.authenticate(req);
                    self.engine
                        .handle_auth_reply(reply, Instant::now().into_std())
                        .map_err(|e| End::Handshake(e.into()))?;
                }
                Event::Subscribe(prefix) => self.subscription(true, prefix)?,
                Event::Cancel(prefix) => self.subscription(false, prefix)?,
                _ => {}
            }
        }
        if !self.pending_in.is_empty() && !self.inbox.push_from(&mut self.pending_in) {
            return Err(End::SocketClosed);
        }
        Ok(())
    }

    /// Asks the socket's authenticator (ZAP semantics) about this peer.
    fn authenticate(&self, req: ironhouse_zmtp::AuthRequest) -> AuthReply {
        let Some(auth) = self.shared.options.security.authenticator() else {
            return AuthReply::Allow {
                user_id: String::new(),
            };
        };
        let text = |b: Option<&Bytes>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let curve_key = (req.mechanism == "CURVE")
            .then(|| {
                req.credentials
                    .first()
                    .and_then(|k| <[u8; 32]>::try_from(k.as_ref()).ok())
            })
            .flatten()
            .map(ironhouse_zmtp::CurvePublicKey);
        let plain = req.mechanism == "PLAIN";
        let request = AuthRequest {
            domain: self.shared.options.zap_domain.clone(),
            address: self.peer.clone(),
            mechanism: req.mechanism,
            curve_key,
            username: if plain {
                text(req.credentials.first())
            } else {
                None
            },
            password: if plain {
                text(req.credentials.get(1))
            } else {
                None
            },
            metadata: req.peer_metadata,
            tls_peer: self.tls_peer.clone(),
        };
        match auth.authenticate(&request) {
            AuthDecision::Allow { user_id } => AuthReply::Allow { user_id },
            AuthDecision::Deny { status, reason } => {
                // Never the password: only who, from where, and why.
                tracing::warn!(peer = %self.peer, mechanism = request.mechanism, user = ?request.username, key = ?request.curve_key, "refused: {reason}");
                AuthReply::Deny { status, reason }
            }
        }
    }

    fn subscription(&mut self, add: bool, prefix: Bytes) -> Result<(), End> {
        {
            let mut peers = self.shared.peers();
            if let Some(p) = peers.get_mut(self.id) {
                if add {
                    p.subs.add(&prefix);
                } else {
                    p.subs.remove(&prefix);
                }
            }
        }
        if self.shared.kind == SocketType::Xpub {
            // XPUB shows subscriptions to the application as messages.
            let mut m = BytesMut::with_capacity(prefix.len() + 1);
            m.extend_from_slice(&[u8::from(add)]);
            m.extend_from_slice(&prefix);
            self.deliver(Message::from(m.freeze()));
        }
        Ok(())
    }
}
