//! The [`Socket`]: ZeroMQ's socket patterns on tokio.
//!
//! A socket owns a receive queue and a table of peers ([`peers`]). Each
//! connection runs in its own task ([`crate::session`]); connected endpoints
//! get a connector task that reconnects with backoff and keeps that
//! endpoint's send queue across reconnections, so nothing queued is lost when
//! a peer restarts. This module holds what differs by socket type: how a
//! message is routed out and what is done with one that comes in.

mod fair;
pub(crate) mod peers;
mod tasks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ironhouse_zmtp::{Message, SocketType};
use tokio::sync::{broadcast, watch};

use crate::endpoint::Endpoint;
use crate::monitor::SocketEvent;
use crate::pipe::{Pipe, PushError};
use crate::transport::{self, Listener};
use crate::{Error, Options, Result, TrySendError};
use peers::{Outbound, PeerId, Shared};

/// Where a REQ or REP socket is in its strict send/receive alternation.
#[derive(Debug)]
enum Turn {
    /// Free to send (REQ) or to receive (REP).
    Idle,
    /// REQ: waiting for the reply from this peer.
    AwaitingReply(PeerId),
    /// REP: must reply to this peer, with this envelope.
    MustReply(PeerId, Message),
}

/// A ZeroMQ-compatible socket.
///
/// Create it inside a tokio runtime, `bind` and/or `connect` it, then `send`
/// and `recv`. Every socket type of ZeroMQ's classic set is here: REQ, REP,
/// DEALER, ROUTER, PUB, SUB, XPUB, XSUB, PUSH, PULL and PAIR.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> ironhouse::Result<()> {
/// use ironhouse::{Socket, SocketType};
/// let mut rep = Socket::new(SocketType::Rep);
/// let ep = rep.bind("tcp://127.0.0.1:*").await?;
/// let mut req = Socket::new(SocketType::Req);
/// req.connect(&ep.to_string()).await?;
/// req.send("ping").await?;
/// let got = rep.recv().await?;
/// rep.send(got).await?;
/// assert_eq!(req.recv().await?.frames()[0], "ping");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Socket {
    shared: Arc<Shared>,
    /// Received messages, fair-queued across peers.
    inbound: fair::FairQueue,
    changed: watch::Receiver<u64>,
    turn: Turn,
    tasks: tasks::Tracker,
    last_endpoint: Option<Endpoint>,
}

impl Socket {
    /// A socket with default [`Options`].
    pub fn new(kind: SocketType) -> Socket {
        Socket::with_options(kind, Options::default())
    }

    /// A socket with the given options.
    pub fn with_options(kind: SocketType, options: Options) -> Socket {
        let shared = Arc::new(Shared::new(kind, options));
        let changed = shared.changed.subscribe();
        let inbound = fair::FairQueue::new(shared.changed.subscribe());
        Socket {
            shared,
            inbound,
            changed,
            turn: Turn::Idle,
            tasks: tasks::Tracker::new(),
            last_endpoint: None,
        }
    }

    /// This socket's type.
    pub fn kind(&self) -> SocketType {
        self.shared.kind
    }

    /// The options the socket was made with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// The endpoint of the last successful `bind` (with the real port).
    pub fn last_endpoint(&self) -> Option<&Endpoint> {
        self.last_endpoint.as_ref()
    }

    /// How many peers have completed their handshake and are connected now.
    pub fn connected_peers(&self) -> usize {
        self.shared.peers().list.iter().filter(|p| p.active).count()
    }

    /// Events about this socket's connections (connected, handshake failed,
    /// disconnected, …). Events before the call are not replayed; a receiver
    /// that falls 256 events behind loses the oldest.
    pub fn monitor(&self) -> broadcast::Receiver<SocketEvent> {
        self.shared.events.subscribe()
    }

    /// Binds an endpoint and accepts peers on it until the socket closes.
    /// Returns the endpoint actually bound (port `*` or 0 becomes the real port).
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] for a malformed string, [`Error::Bind`]
    /// when the address is in use or not available, or for `tls://` without
    /// [`Options::tls_server`], [`Error::Insecure`] for PLAIN over a
    /// transport without encryption (unless allowed).
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, nothing stays bound.
    pub async fn bind(&mut self, endpoint: &str) -> Result<Endpoint> {
        let ep: Endpoint = endpoint.parse()?;
        self.check_transport(&ep, true)?;
        let (listener, bound) = Listener::bind(&ep, &self.shared.options).await?;
        tracing::debug!(endpoint = %bound, "listening");
        self.shared.emit(SocketEvent::Listening {
            endpoint: bound.to_string(),
        });
        tasks::spawn_listener(self.shared.clone(), listener, self.tasks.guard());
        self.last_endpoint = Some(bound.clone());
        Ok(bound)
    }

    /// Connects to an endpoint, ZeroMQ style: returns at once, connects in the
    /// background and reconnects with backoff whenever the connection drops.
    /// Messages sent before the peer is there wait in the socket.
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] for a malformed endpoint or one that cannot
    /// be connected to (`*`, port 0); [`Error::Connect`] for `tls://`
    /// without [`Options::tls_client`]; [`Error::Insecure`] as for `bind`.
    /// An unreachable peer is not an error (watch [`Socket::monitor`] or use
    /// [`Socket::connect_now`]).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn connect(&mut self, endpoint: &str) -> Result<()> {
        let ep: Endpoint = endpoint.parse()?;
        ep.check_connectable()?;
        self.check_transport(&ep, false)?;
        tasks::spawn_connector(self.shared.clone(), ep, None, self.tasks.guard());
        Ok(())
    }

    /// Connects like [`Socket::connect`], but makes the first attempt now and
    /// fails if it does: for command-line tools and callers that want
    /// "connection refused" as an error rather than a silent retry. Later
    /// disconnections still reconnect in the background.
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`], or [`Error::Connect`] with the OS reason
    /// or, on `tls://`, why the TLS handshake failed and which side refused
    /// (a client certificate the server refuses shows up later, as a
    /// [`SocketEvent::HandshakeFailed`]: TLS 1.3 servers check it after the
    /// client has finished its part).
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled, no connection is kept.
    pub async fn connect_now(&mut self, endpoint: &str) -> Result<()> {
        let ep: Endpoint = endpoint.parse()?;
        ep.check_connectable()?;
        self.check_transport(&ep, false)?;
        let conn = transport::connect(&ep, &self.shared.options).await?;
        tasks::spawn_connector(self.shared.clone(), ep, Some(conn), self.tasks.guard());
        Ok(())
    }

    /// Refuses PLAIN on transports that would show the password, and
    /// `tls://` without the TLS configuration for this direction.
    fn check_transport(&self, ep: &Endpoint, binding: bool) -> Result<()> {
        let o = &self.shared.options;
        if ep.is_encrypted()
            && (binding && o.tls_server.is_none() || !binding && o.tls_client.is_none())
        {
            return Err(transport::missing_tls(ep, binding));
        }
        // tcp:// and ipc:// do not encrypt; tls:// does.
        if o.security.refuses_transport(ep.is_encrypted()) {
            return Err(Error::Insecure(format!(
                "PLAIN would send passwords in clear over {ep}; use tls:// or CURVE, or call Security::allow_plaintext_password() for trusted loopback tests"
            )));
        }
        Ok(())
    }

    /// Subscribes to messages whose first frame starts with `prefix` (SUB,
    /// XSUB). The empty prefix matches everything. Subscribing twice needs two
    /// unsubscribes.
    ///
    /// # Errors
    /// [`Error::NotSupported`] on other socket types.
    ///
    /// # Cancel safety
    /// Not cancel safe: if cancelled, some peers may not have been told.
    pub async fn subscribe(&mut self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.subscription(true, prefix.as_ref()).await
    }

    /// Cancels one [`Socket::subscribe`] of the same prefix.
    ///
    /// # Errors
    /// [`Error::NotSupported`] on sockets other than SUB and XSUB.
    ///
    /// # Cancel safety
    /// Not cancel safe, as [`Socket::subscribe`].
    pub async fn unsubscribe(&mut self, prefix: impl AsRef<[u8]>) -> Result<()> {
        self.subscription(false, prefix.as_ref()).await
    }

    async fn subscription(&mut self, add: bool, prefix: &[u8]) -> Result<()> {
        if !matches!(self.kind(), SocketType::Sub | SocketType::Xsub) {
            return Err(Error::NotSupported {
                kind: self.kind(),
                operation: "subscribe",
            });
        }
        let targets: Vec<Arc<Pipe<Outbound>>> = {
            let mut peers = self.shared.peers();
            let changed = if add {
                peers.subscriptions.add(prefix)
            } else {
                peers.subscriptions.remove(prefix)
            };
            if !changed {
                return Ok(());
            }
            peers
                .list
                .iter()
                .filter(|p| p.active)
                .map(|p| p.tx.clone())
                .collect()
        };
        let prefix = Bytes::copy_from_slice(prefix);
        for tx in targets {
            let item = if add {
                Outbound::Subscribe(prefix.clone())
            } else {
                Outbound::Cancel(prefix.clone())
            };
            // A peer that went away meanwhile gets the full list when it returns.
            let _ = tx.push(item).await;
        }
        Ok(())
    }

    /// Sends a message, routed by socket type:
    ///
    /// - PUSH, DEALER, REQ: to one peer, round-robin; waits while every peer's
    ///   queue is full (or no peer is connected).
    /// - PUB, XPUB: to every peer subscribed to a prefix of the first frame;
    ///   never waits, a peer whose queue is full misses the message.
    /// - ROUTER: to the peer named by the first frame (the routing id, which
    ///   is removed); unknown ids are dropped unless `router_mandatory`.
    /// - REP: the reply to the last request received.
    /// - PAIR: to the one peer; waits while its queue is full or it is absent.
    /// - XSUB: `\x01prefix` / `\x00prefix` messages (un)subscribe.
    ///
    /// # Errors
    /// [`Error::NotSupported`] on PULL and SUB, [`Error::WrongState`] when a
    /// REQ or REP is out of turn, [`Error::HostUnreachable`] (ROUTER with
    /// `router_mandatory`), [`Error::Closed`] after close.
    ///
    /// # Cancel safety
    /// Not cancel safe: if cancelled while waiting for room, the message is
    /// dropped (never half-sent).
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<()> {
        let mut msg = msg.into();
        if msg.is_empty() {
            msg.push_back(Bytes::new());
        }
        match self.kind() {
            SocketType::Push | SocketType::Dealer | SocketType::Pair => {
                self.send_balanced(msg).await?;
            }
            SocketType::Req => {
                if !matches!(self.turn, Turn::Idle) {
                    return Err(Error::WrongState(
                        "a REQ socket must receive the reply before sending another request",
                    ));
                }
                msg.push_front(Bytes::new());
                let peer = self.send_balanced(msg).await?;
                self.turn = Turn::AwaitingReply(peer);
            }
            SocketType::Rep => {
                let Turn::MustReply(peer, envelope) = std::mem::replace(&mut self.turn, Turn::Idle)
                else {
                    return Err(Error::WrongState(
                        "a REP socket must receive a request before sending a reply",
                    ));
                };
                let mut out: Message = envelope.into_frames().collect();
                for f in msg.into_frames() {
                    out.push_back(f);
                }
                let tx = self
                    .shared
                    .peers()
                    .get(peer)
                    .filter(|p| p.active)
                    .map(|p| p.tx.clone());
                if let Some(tx) = tx {
                    // The requester may have gone; its reply then has nowhere to go.
                    let _ = tx.push(Outbound::Message(out)).await;
                }
            }
            SocketType::Router => self.send_routed(msg).await?,
            SocketType::Pub | SocketType::Xpub => self.send_published(msg),
            SocketType::Xsub => {
                let first = msg.frames()[0].clone();
                match first.first() {
                    Some(1) => self.subscription(true, &first[1..]).await?,
                    Some(0) => self.subscription(false, &first[1..]).await?,
                    _ => self.send_published(msg),
                }
            }
            kind @ (SocketType::Sub | SocketType::Pull) => {
                return Err(Error::NotSupported {
                    kind,
                    operation: "send",
                })
            }
            kind => {
                return Err(Error::NotSupported {
                    kind,
                    operation: "send",
                })
            }
        }
        Ok(())
    }

    /// Queues a message without waiting, or gives it back: ROUTER (to the
    /// peer named by the first frame), PUSH, DEALER and PAIR (to the next
    /// peer with room), PUB and XPUB (as [`send`](Socket::send), which never
    /// waits). A ROUTER serving many peers uses it to skip a slow peer
    /// instead of waiting for it, whatever `router_mandatory` says.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when there is no room now,
    /// [`TrySendError::Unreachable`] for an unknown routing id, and
    /// [`TrySendError::Failed`] on other socket types and after close.
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> ironhouse::Result<()> {
    /// use ironhouse::{Socket, SocketType, TrySendError};
    /// let mut push = Socket::new(SocketType::Push);
    /// // No peer yet: nothing can take the message, and it comes back.
    /// match push.try_send(vec![bytes::Bytes::from("hi")]) {
    ///     Err(TrySendError::Full(msg)) => assert_eq!(msg.len(), 1),
    ///     other => panic!("unexpected {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_send(&mut self, msg: impl Into<Message>) -> Result<(), TrySendError> {
        let mut msg = msg.into();
        if msg.is_empty() {
            msg.push_back(Bytes::new());
        }
        if *self.shared.closing.borrow() {
            return Err(TrySendError::Failed(Error::Closed));
        }
        match self.kind() {
            SocketType::Router => {
                let id = msg.pop_front().unwrap_or_default();
                if msg.is_empty() {
                    msg.push_back(Bytes::new());
                }
                let tx = self
                    .shared
                    .peers()
                    .list
                    .iter()
                    .find(|p| p.active && p.routing_id == id)
                    .map(|p| p.tx.clone());
                let give_back = |mut m: Message| {
                    m.push_front(id.clone());
                    m
                };
                match tx {
                    None => Err(TrySendError::Unreachable(give_back(msg))),
                    Some(tx) => tx.try_push(Outbound::Message(msg)).map_err(|e| match e {
                        PushError::Full(Outbound::Message(m)) => TrySendError::Full(give_back(m)),
                        PushError::Closed(Outbound::Message(m)) => {
                            TrySendError::Unreachable(give_back(m))
                        }
                        _ => TrySendError::Failed(Error::Closed),
                    }),
                }
            }
            SocketType::Push | SocketType::Dealer | SocketType::Pair => {
                let mut item = Outbound::Message(msg);
                let mut peers = self.shared.peers();
                let n = peers.list.len();
                for k in 0..n {
                    let i = (peers.cursor + k) % n;
                    let p = &peers.list[i];
                    if !p.active {
                        continue;
                    }
                    match p.tx.try_push(item) {
                        Ok(()) => {
                            peers.cursor = (i + 1) % n;
                            return Ok(());
                        }
                        Err(PushError::Full(back) | PushError::Closed(back)) => item = back,
                    }
                }
                match item {
                    Outbound::Message(m) => Err(TrySendError::Full(m)),
                    _ => Err(TrySendError::Failed(Error::Closed)),
                }
            }
            SocketType::Pub | SocketType::Xpub => {
                self.send_published(msg);
                Ok(())
            }
            kind => Err(TrySendError::Failed(Error::NotSupported {
                kind,
                operation: "try_send",
            })),
        }
    }

    /// Receives a message if one is ready now, without waiting; otherwise
    /// `Ok(None)`. Same routing rules as [`recv`](Socket::recv). Useful to
    /// drain what has arrived and then act once on the whole batch.
    ///
    /// # Errors
    /// As [`recv`](Socket::recv).
    pub fn try_recv(&mut self) -> Result<Option<Message>> {
        // These types hand out what arrived as is: no future needed.
        if matches!(
            self.kind(),
            SocketType::Dealer | SocketType::Router | SocketType::Pull | SocketType::Pair
        ) {
            return Ok(self.inbound.try_next(&self.shared).map(|(_, m)| m));
        }
        let fut = std::pin::pin!(self.recv());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.poll(&mut cx) {
            std::task::Poll::Ready(r) => r.map(Some),
            // `recv` is cancel safe: dropping it here loses nothing.
            std::task::Poll::Pending => Ok(None),
        }
    }

    /// Load-balances to the next peer with room; returns the peer chosen.
    async fn send_balanced(&mut self, msg: Message) -> Result<PeerId> {
        let mut item = Outbound::Message(msg);
        loop {
            let wait_on = {
                let mut peers = self.shared.peers();
                let n = peers.list.len();
                let mut first_active = false;
                for k in 0..n {
                    let i = (peers.cursor + k) % n;
                    let p = &peers.list[i];
                    if !p.active {
                        continue;
                    }
                    first_active = true;
                    match p.tx.try_push(item) {
                        Ok(()) => {
                            let id = p.id;
                            peers.cursor = (i + 1) % n;
                            return Ok(id);
                        }
                        Err(PushError::Full(back) | PushError::Closed(back)) => item = back,
                    }
                }
                // Every active queue is full: wait for room at any of them.
                first_active.then(|| {
                    peers
                        .list
                        .iter()
                        .filter(|p| p.active)
                        .map(|p| p.tx.clone())
                        .collect::<Vec<_>>()
                })
            };
            if *self.shared.closing.borrow() {
                return Err(Error::Closed);
            }
            self.changed.borrow_and_update();
            match wait_on {
                // Every queue is full: wait for room at one, or for the peer set to change.
                Some(pipes) => tokio::select! {
                    () = any_room(&pipes) => {}
                    _ = self.changed.changed() => {}
                },
                None => {
                    if self.changed.changed().await.is_err() {
                        return Err(Error::Closed);
                    }
                }
            }
        }
    }

    async fn send_routed(&mut self, mut msg: Message) -> Result<()> {
        let id = msg.pop_front().unwrap_or_default();
        if msg.is_empty() {
            msg.push_back(Bytes::new());
        }
        let tx = self
            .shared
            .peers()
            .list
            .iter()
            .find(|p| p.active && p.routing_id == id)
            .map(|p| p.tx.clone());
        match tx {
            Some(tx) if self.shared.options.router_mandatory => tx
                .push(Outbound::Message(msg))
                .await
                .map_err(|_| Error::HostUnreachable(hex(&id))),
            Some(tx) => {
                // ROUTER drops rather than blocks when a peer's queue is full (ZeroMQ's rule).
                if tx.try_push(Outbound::Message(msg)).is_err() {
                    tracing::debug!(routing_id = %hex(&id), "dropped message: peer queue full");
                }
                Ok(())
            }
            None if self.shared.options.router_mandatory => Err(Error::HostUnreachable(hex(&id))),
            None => {
                tracing::debug!(routing_id = %hex(&id), "dropped message to unknown routing id");
                Ok(())
            }
        }
    }

    fn send_published(&mut self, msg: Message) {
        let topic = msg.frames()[0].clone();
        let peers = self.shared.peers();
        for p in peers
            .list
            .iter()
            .filter(|p| p.active && (self.kind() == SocketType::Xsub || p.subs.matches(&topic)))
        {
            // PUB never blocks: a subscriber whose queue is full misses this one.
            let _ = p.tx.try_push(Outbound::Message(msg.clone()));
        }
    }

    /// Receives the next message, by socket type:
    ///
    /// - PULL, DEALER, PAIR, SUB, XSUB, XPUB: the next message from any peer,
    ///   fair-queued (XPUB receives subscriptions as `\x01prefix` messages).
    /// - ROUTER: the message with the sender's routing id as first frame.
    /// - REQ: the reply to the last request (others are discarded).
    /// - REP: the next request, without its envelope (kept for the reply).
    ///
    /// # Errors
    /// [`Error::NotSupported`] on PUSH and PUB, [`Error::WrongState`] for REQ
    /// or REP out of turn, [`Error::Closed`] after close.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is never lost by cancelling (it stays queued).
    pub async fn recv(&mut self) -> Result<Message> {
        match self.kind() {
            kind @ (SocketType::Push | SocketType::Pub) => {
                return Err(Error::NotSupported {
                    kind,
                    operation: "receive",
                })
            }
            SocketType::Req if !matches!(self.turn, Turn::AwaitingReply(_)) => {
                return Err(Error::WrongState(
                    "a REQ socket must send a request before receiving",
                ));
            }
            SocketType::Rep if matches!(self.turn, Turn::MustReply(..)) => {
                return Err(Error::WrongState(
                    "a REP socket must send its reply before receiving the next request",
                ));
            }
            _ => {}
        }
        loop {
            let (peer, mut msg) = self.inbound.next(&self.shared).await;
            match self.kind() {
                SocketType::Req => {
                    let Turn::AwaitingReply(want) = self.turn else {
                        unreachable!("checked above")
                    };
                    // Only the peer we asked may answer, behind an empty delimiter.
                    if peer != want || msg.frames().first().is_none_or(|f| !f.is_empty()) {
                        tracing::debug!("REQ discarded a message that is not the awaited reply");
                        continue;
                    }
                    msg.pop_front();
                    self.turn = Turn::Idle;
                    return Ok(msg);
                }
                SocketType::Rep => {
                    let Some(delim) = msg.frames().iter().position(|f| f.is_empty()) else {
                        tracing::debug!("REP discarded a request without an envelope delimiter");
                        continue;
                    };
                    let envelope = msg.split_front(delim + 1);
                    self.turn = Turn::MustReply(peer, envelope);
                    return Ok(msg);
                }
                SocketType::Sub => {
                    let topic = msg.frames().first().cloned().unwrap_or_default();
                    if !self.shared.peers().subscriptions.matches(&topic) {
                        continue;
                    }
                    return Ok(msg);
                }
                _ => return Ok(msg),
            }
        }
    }

    /// Closes the socket: stops accepting and connecting, then delivers what
    /// is queued for at most the linger time, and returns when every
    /// connection is gone.
    ///
    /// # Cancel safety
    /// Cancel safe: the socket is already closing; its tasks finish on their
    /// own within the linger time.
    pub async fn close(mut self) {
        self.begin_close();
        let linger = self.shared.options.linger;
        let wait = self.tasks.wait();
        match linger {
            // The tasks honour linger themselves; the margin covers their last flush.
            Some(l) => {
                let _ = tokio::time::timeout(l + Duration::from_secs(2), wait).await;
            }
            None => wait.await,
        }
    }

    fn begin_close(&mut self) {
        self.shared.closing.send_replace(true);
        self.shared.clear();
    }
}

impl Drop for Socket {
    /// Dropping starts the same close as [`Socket::close`] without waiting:
    /// tasks go on delivering for the linger time while the runtime lives.
    fn drop(&mut self) {
        self.begin_close();
    }
}

/// Resolves when any of the pipes has room.
async fn any_room(pipes: &[Arc<Pipe<Outbound>>]) {
    let mut waits: Vec<_> = pipes.iter().map(|p| Box::pin(p.room())).collect();
    std::future::poll_fn(|cx| {
        if waits.iter_mut().any(|w| w.as_mut().poll(cx).is_ready()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Lowercase hex, for routing ids in messages and logs.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
