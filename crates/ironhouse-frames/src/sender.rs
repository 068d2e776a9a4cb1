//! The frame sender: NetGear's "server" (`receive_mode=False`), which
//! connects and sends.
//!
//! Reliability follows NetGear's Lazy Pirate, with every wait bounded: a
//! frame whose reply does not come within the request timeout is an error,
//! the socket is replaced by a new one with the *same* security settings,
//! and after `max_retries` such losses in a row the sender gives up. A
//! handshake failure (wrong key, not allow-listed, security mismatch) is
//! reported with its reason.

use std::time::Duration;

use ironhouse::{Options, Socket, SocketEvent};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::wire::{self, Reply};
use crate::{Frame, FrameError, KeyStore, Pattern, SecureMode};

/// How often pattern 2 repeats the termination message (20 ms apart).
const TERMINATE_REPEATS: usize = 5;

/// How a [`FrameSender`] behaves. Defaults are NetGear's (4 s request
/// timeout, 3 retries) plus a 10 s connect timeout.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SenderConfig {
    /// The pattern; must match the receiver's.
    pub pattern: Pattern,
    /// The secure mode; must match the receiver's.
    pub secure_mode: SecureMode,
    /// Where the keys are (default `~/.vidgear`, NetGear's).
    pub keys: Option<KeyStore>,
    /// Bidirectional mode: each reply carries return data (patterns 0, 1).
    pub bidirectional: bool,
    /// Multi-server mode: this sender's port, sent with every frame so one
    /// receiver can tell its senders apart (patterns 1, 2).
    pub multiserver_port: Option<String>,
    /// Multi-client mode: one sender, several receivers (patterns 1, 2);
    /// replies carry the receiver's port.
    pub multiclient: bool,
    /// How long to wait for each reply (NetGear's `request_timeout`).
    pub request_timeout: Duration,
    /// Replies lost in a row before giving up (NetGear's `max_retries`).
    pub max_retries: u32,
    /// How long [`FrameSender::connect`] waits for every receiver's handshake.
    pub connect_timeout: Duration,
    /// Frames queued per receiver (pattern 2 drops beyond it; NetGear uses 1).
    pub hwm: usize,
    /// Pattern 1: frames in flight before [`FrameSender::send`] waits for a
    /// reply. 1 (the default) is NetGear's lock-step REQ; more sends from a
    /// DEALER (the same wire for the receiver, which still answers each frame
    /// in order), so encrypting the next frame overlaps the receiver's work
    /// on the last one, and `send` returns the reply to an earlier frame.
    pub window: usize,
    /// Send frames as JPEG (NetGear's `jpeg_compression`); `None`: raw.
    #[cfg(feature = "jpeg")]
    pub jpeg: Option<crate::Jpeg>,
}

impl SenderConfig {
    /// Defaults for `pattern`.
    pub fn new(pattern: Pattern) -> SenderConfig {
        SenderConfig {
            pattern,
            secure_mode: SecureMode::Grassland,
            keys: None,
            bidirectional: false,
            multiserver_port: None,
            multiclient: false,
            request_timeout: Duration::from_secs(4),
            max_retries: 3,
            connect_timeout: Duration::from_secs(10),
            hwm: if pattern == Pattern::PubSub { 1 } else { 1000 },
            window: 1,
            #[cfg(feature = "jpeg")]
            jpeg: None,
        }
    }

    /// Sets [`SenderConfig::jpeg`].
    #[cfg(feature = "jpeg")]
    pub fn jpeg(mut self, jpeg: Option<crate::Jpeg>) -> SenderConfig {
        self.jpeg = jpeg;
        self
    }

    /// Sets the secure mode and key folder.
    pub fn secure(mut self, mode: SecureMode, keys: KeyStore) -> SenderConfig {
        self.secure_mode = mode;
        self.keys = Some(keys);
        self
    }

    /// Sets [`SenderConfig::bidirectional`].
    pub fn bidirectional(mut self, on: bool) -> SenderConfig {
        self.bidirectional = on;
        self
    }

    /// Sets [`SenderConfig::multiserver_port`].
    pub fn multiserver_port(mut self, port: impl Into<String>) -> SenderConfig {
        self.multiserver_port = Some(port.into());
        self
    }

    /// Sets [`SenderConfig::multiclient`].
    pub fn multiclient(mut self, on: bool) -> SenderConfig {
        self.multiclient = on;
        self
    }

    /// Sets the request timeout and retries.
    pub fn timeouts(
        mut self,
        request: Duration,
        max_retries: u32,
        connect: Duration,
    ) -> SenderConfig {
        self.request_timeout = request;
        self.max_retries = max_retries.max(1);
        self.connect_timeout = connect;
        self
    }

    /// Sets [`SenderConfig::window`] (at least 1).
    pub fn window(mut self, n: usize) -> SenderConfig {
        self.window = n.max(1);
        self
    }

    /// Sets [`SenderConfig::hwm`].
    pub fn hwm(mut self, n: usize) -> SenderConfig {
        self.hwm = n.max(1);
        self
    }

    fn check(&self, endpoints: usize) -> Result<(), FrameError> {
        let p = self.pattern;
        if self.bidirectional && p == Pattern::PubSub {
            return Err(FrameError::Config(
                "bidirectional mode needs pattern 0 or 1".into(),
            ));
        }
        if self.multiserver_port.is_some() && p == Pattern::Pair {
            return Err(FrameError::Config(
                "multi-server mode needs pattern 1 or 2".into(),
            ));
        }
        if self.multiclient && p == Pattern::Pair {
            return Err(FrameError::Config(
                "multi-client mode needs pattern 1 or 2".into(),
            ));
        }
        if self.multiclient && self.multiserver_port.is_some() {
            return Err(FrameError::Config(
                "multi-client and multi-server modes exclude each other".into(),
            ));
        }
        if self.window > 1 && (p != Pattern::ReqRep || self.multiclient) {
            return Err(FrameError::Config(
                "a window of frames in flight needs pattern 1 with one receiver".into(),
            ));
        }
        if endpoints == 0 {
            return Err(FrameError::Config("no endpoint to connect to".into()));
        }
        if endpoints > 1 && !self.multiclient {
            return Err(FrameError::Config(
                "several endpoints need multi-client mode".into(),
            ));
        }
        Ok(())
    }
}

/// Sends frames to one receiver, or several in multi-client mode.
#[derive(Debug)]
pub struct FrameSender {
    cfg: SenderConfig,
    endpoints: Vec<String>,
    options: Options,
    socket: Option<Socket>,
    events: broadcast::Receiver<SocketEvent>,
    retries_left: u32,
    /// Multi-client: receivers' ports seen in replies.
    ports: Vec<String>,
    gone: bool,
    /// Windowed pattern 1: frames sent whose reply has not been read.
    in_flight: usize,
}

impl FrameSender {
    /// Connects to the receiver(s) and waits until every handshake is done.
    ///
    /// # Errors
    /// [`FrameError::Config`] for a combination NetGear refuses too or
    /// missing keys; [`FrameError::Handshake`] when a receiver refuses us (or
    /// we it), with the reason; [`FrameError::Timeout`] when a receiver is
    /// not there within [`SenderConfig::connect_timeout`], saying what was
    /// seen meanwhile.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing stays connected.
    pub async fn connect(endpoints: &[&str], cfg: SenderConfig) -> Result<FrameSender, FrameError> {
        cfg.check(endpoints.len())?;
        let security = match cfg.secure_mode {
            SecureMode::Grassland => ironhouse::Security::Null,
            mode => match &cfg.keys {
                Some(k) => k.sender_security(mode)?,
                None => KeyStore::default_location()?.sender_security(mode)?,
            },
        };
        let options = Options::default()
            .security(security)
            .send_hwm(cfg.hwm)
            .linger(Some(cfg.request_timeout))
            .handshake_timeout(Some(cfg.connect_timeout))
            .reconnect(Duration::from_millis(100), Duration::from_secs(1));
        let mut me = FrameSender {
            retries_left: cfg.max_retries.max(1),
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            events: broadcast::channel(1).1,
            socket: None,
            options,
            cfg,
            ports: Vec::new(),
            gone: false,
            in_flight: 0,
        };
        me.open().await?;
        me.wait_connected().await?;
        Ok(me)
    }

    async fn open(&mut self) -> Result<(), FrameError> {
        // Pattern 2 publishes from an XPUB: the same wire as PUB for the
        // receivers, and it shows us their subscriptions, so `connect` can
        // wait for them instead of guessing.
        let kind = match self.cfg.pattern {
            Pattern::PubSub => ironhouse::SocketType::Xpub,
            Pattern::ReqRep if self.windowed() => ironhouse::SocketType::Dealer,
            p => p.socket_types().0,
        };
        self.in_flight = 0;
        let mut s = Socket::with_options(kind, self.options.clone());
        self.events = s.monitor();
        for ep in &self.endpoints {
            s.connect(ep).await?;
        }
        if let Some(old) = self.socket.replace(s) {
            drop(old);
        }
        Ok(())
    }

    async fn wait_connected(&mut self) -> Result<(), FrameError> {
        let want = self.endpoints.len();
        let mut connected = 0;
        let mut seen: Vec<String> = Vec::new();
        let deadline = tokio::time::Instant::now() + self.cfg.connect_timeout;
        while connected < want {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => {
                    return Err(FrameError::Timeout {
                        what: "connecting to the receiver",
                        after: self.cfg.connect_timeout,
                        detail: (!seen.is_empty()).then(|| seen.join("; ")),
                    })
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(FrameError::Closed),
                Ok(Ok(ev)) => match ev {
                    SocketEvent::Connected { .. } => connected += 1,
                    SocketEvent::HandshakeFailed { peer, reason } => {
                        return Err(FrameError::Handshake { peer, reason })
                    }
                    SocketEvent::ConnectFailed { endpoint, reason } => {
                        let s = format!("{endpoint}: {reason}");
                        if !seen.contains(&s) {
                            seen.push(s);
                        }
                    }
                    _ => {}
                },
            }
        }
        if self.cfg.pattern == Pattern::PubSub {
            // Frames published before a receiver's subscription arrives are
            // dropped (NetGear loses its first frames that way): wait for
            // one subscription per receiver.
            let socket = self.socket.as_mut().ok_or(FrameError::Closed)?;
            let mut subscribed = 0;
            while subscribed < want {
                match tokio::time::timeout_at(deadline, socket.recv()).await {
                    Err(_) => {
                        return Err(FrameError::Timeout {
                            what: "the receivers' subscriptions",
                            after: self.cfg.connect_timeout,
                            detail: Some(format!("{subscribed} of {want} subscribed")),
                        })
                    }
                    Ok(msg) => {
                        if msg?.frames().first().is_some_and(|f| f.first() == Some(&1)) {
                            subscribed += 1;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// What the socket reported since the last look, for error messages.
    fn detail(&mut self) -> Option<String> {
        let mut seen: Vec<String> = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            let s = match ev {
                SocketEvent::HandshakeFailed { peer, reason } => {
                    format!("handshake with {peer} failed: {reason}")
                }
                SocketEvent::ConnectFailed { endpoint, reason } => format!("{endpoint}: {reason}"),
                SocketEvent::Disconnected { peer, reason } => {
                    format!(
                        "{peer} disconnected{}",
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    )
                }
                _ => continue,
            };
            if !seen.contains(&s) {
                seen.push(s);
            }
        }
        (!seen.is_empty()).then(|| seen.join("; "))
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.cfg
    }

    /// Multi-client mode: the receivers' ports seen in replies so far.
    pub fn receiver_ports(&self) -> &[String] {
        &self.ports
    }

    /// Sends a frame with an optional JSON message. Patterns 0 and 1 wait
    /// for the reply: the receiver's text ([`Reply::Ack`]) or, in
    /// bidirectional and multi-client modes, its return data
    /// ([`Reply::Data`]). Pattern 2 returns `None` at once.
    ///
    /// # Errors
    /// [`FrameError::Timeout`] when no reply came within the request
    /// timeout (the frame may or may not have arrived; the socket is
    /// replaced, with the same security, for the next frame);
    /// [`FrameError::ReceiverGone`] when that happened `max_retries` times
    /// in a row (the sender is then finished); [`FrameError::BadMessage`] for
    /// a reply that is not NetGear's; [`FrameError::Closed`] after giving up.
    ///
    /// # Cancel safety
    /// Not cancel safe: a frame may be half-way; cancelling mid-reply leaves
    /// the next `send` to time out once and reconnect.
    pub async fn send(
        &mut self,
        frame: &Frame,
        message: Option<&Value>,
    ) -> Result<Option<Reply>, FrameError> {
        if self.gone {
            return Err(FrameError::Closed);
        }
        #[cfg(feature = "jpeg")]
        let jpeg = match &self.cfg.jpeg {
            Some(j) => Some((j.header(), bytes::Bytes::from(j.encode(frame)?))),
            None => None,
        };
        #[cfg(not(feature = "jpeg"))]
        let jpeg = None;
        let msg = wire::frame_message_with(
            frame,
            message,
            self.cfg.pattern,
            self.cfg.multiserver_port.as_deref(),
            jpeg,
        );
        if !self.cfg.pattern.has_replies() {
            let socket = self.socket.as_mut().ok_or(FrameError::Closed)?;
            socket.send(msg).await?;
            // PUB never waits; let the connections' tasks run.
            tokio::task::yield_now().await;
            return Ok(None);
        }
        if self.windowed() {
            let reply = if self.in_flight >= self.cfg.window {
                Some(self.next_reply().await?)
            } else {
                None
            };
            let mut msg = msg;
            msg.push_front(bytes::Bytes::new());
            let socket = self.socket.as_mut().ok_or(FrameError::Closed)?;
            match tokio::time::timeout(self.cfg.request_timeout, socket.send(msg)).await {
                Ok(r) => r?,
                Err(_) => return Err(self.lost("handing over a frame").await),
            }
            self.in_flight += 1;
            return Ok(reply);
        }
        let socket = self.socket.as_mut().ok_or(FrameError::Closed)?;
        let exchange = async {
            socket.send(msg).await?;
            socket.recv().await
        };
        match tokio::time::timeout(self.cfg.request_timeout, exchange).await {
            Ok(Ok(reply)) => self.got_reply(reply).map(Some),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(self.lost("the reply to a frame").await),
        }
    }

    fn windowed(&self) -> bool {
        self.cfg.pattern == Pattern::ReqRep && self.cfg.window > 1
    }

    fn got_reply(&mut self, reply: ironhouse::Message) -> Result<Reply, FrameError> {
        self.retries_left = self.cfg.max_retries.max(1);
        let reply = wire::parse_reply(reply, self.cfg.bidirectional || self.cfg.multiclient)?;
        if let Reply::Data { port: Some(p), .. } = &reply {
            if self.cfg.multiclient && !self.ports.contains(p) {
                self.ports.push(p.clone());
            }
        }
        Ok(reply)
    }

    /// Windowed pattern 1: the reply to the oldest frame in flight.
    async fn next_reply(&mut self) -> Result<Reply, FrameError> {
        let socket = self.socket.as_mut().ok_or(FrameError::Closed)?;
        match tokio::time::timeout(self.cfg.request_timeout, socket.recv()).await {
            Ok(Ok(mut reply)) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                // DEALER sees REP's empty delimiter.
                if reply.frames().first().is_some_and(|f| f.is_empty()) {
                    reply.pop_front();
                }
                self.got_reply(reply)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(self.lost("the reply to a frame").await),
        }
    }

    /// A reply did not come: Lazy Pirate's reconnection, or giving up.
    async fn lost(&mut self, what: &'static str) -> FrameError {
        self.retries_left = self.retries_left.saturating_sub(1);
        let detail = self.detail();
        if self.retries_left == 0 {
            self.gone = true;
            self.socket = None;
            return FrameError::ReceiverGone {
                retries: self.cfg.max_retries,
                detail,
            };
        }
        tracing::warn!(
            retries_left = self.retries_left,
            "no reply within {:?}; reconnecting",
            self.cfg.request_timeout
        );
        // A fresh socket with the same options: the same security, never NULL.
        if let Err(e) = self.open().await {
            return e;
        }
        FrameError::Timeout {
            what,
            after: self.cfg.request_timeout,
            detail,
        }
    }

    /// Sends NetGear's termination message and closes. In pattern 1 waits
    /// (at most the request timeout) for the acknowledgement, returned;
    /// in multi-client mode one per receiver that replied. In pattern 2 the
    /// message is repeated a few times, 20 ms apart, because PUB drops what
    /// a full queue cannot take. After the sender gave up, only closes.
    ///
    /// # Errors
    /// [`FrameError::Timeout`] when the termination could not be handed over
    /// or acknowledged within the request timeout.
    ///
    /// # Cancel safety
    /// Cancel safe: the socket closes when dropped.
    pub async fn close(mut self) -> Result<Vec<String>, FrameError> {
        // Windowed pattern 1: the replies still owed first (each bounded).
        while self.in_flight > 0 && !self.gone && self.socket.is_some() {
            self.next_reply().await?;
        }
        let windowed = self.windowed();
        let Some(mut socket) = self.socket.take() else {
            return Ok(Vec::new());
        };
        if self.gone {
            return Ok(Vec::new());
        }
        let msg = wire::terminate_message(self.cfg.multiserver_port.as_deref());
        let t = self.cfg.request_timeout;
        let mut acks = Vec::new();
        match self.cfg.pattern {
            Pattern::Pair => {
                tokio::time::timeout(t, socket.send(msg))
                    .await
                    .map_err(|_| FrameError::Timeout {
                        what: "handing over the termination message",
                        after: t,
                        detail: None,
                    })??;
            }
            Pattern::PubSub => {
                // PUB drops a message for a subscriber whose queue is full
                // (the high-water mark is 1 by default), and the termination
                // must not be lost: repeat it a few times as the queue
                // drains. A receiver ignores the repeats.
                for _ in 0..TERMINATE_REPEATS {
                    socket.send(msg.clone()).await?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Pattern::ReqRep => {
                // One per receiver in multi-client mode (REQ goes round-robin).
                let n = if self.cfg.multiclient {
                    self.ports.len().max(1)
                } else {
                    1
                };
                for _ in 0..n {
                    let mut out = msg.clone();
                    if windowed {
                        out.push_front(bytes::Bytes::new());
                    }
                    let exchange = async {
                        socket.send(out).await?;
                        socket.recv().await
                    };
                    match tokio::time::timeout(t, exchange).await {
                        Ok(Ok(mut reply)) => {
                            if windowed && reply.frames().first().is_some_and(|f| f.is_empty()) {
                                reply.pop_front();
                            }
                            acks.push(
                                String::from_utf8_lossy(
                                    reply.frames().first().map_or(&[][..], |f| f),
                                )
                                .into_owned(),
                            )
                        }
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => {
                            let detail = self.detail();
                            return Err(FrameError::Timeout {
                                what: "the acknowledgement of termination",
                                after: t,
                                detail,
                            });
                        }
                    }
                }
            }
        }
        socket.close().await;
        Ok(acks)
    }
}
