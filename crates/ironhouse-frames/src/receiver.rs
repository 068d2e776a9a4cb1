//! The frame receiver: NetGear's "client" (`receive_mode=True`), which
//! binds, receives frames and (patterns 0 and 1) replies to each.
//!
//! A message that is not a valid NetGear frame is an error for that call
//! only; in pattern 1 it is still answered, so the sender is not left
//! waiting and the socket stays usable.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use ironhouse::{Endpoint, Message, Options, Socket};
use serde_json::Value;

use crate::wire::{self, Inbound, ReturnData};
use crate::{Frame, FrameError, KeyStore, Pattern, SecureMode};

/// How a [`FrameReceiver`] behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceiverConfig {
    /// The pattern; must match the sender's.
    pub pattern: Pattern,
    /// The secure mode; must match the sender's.
    pub secure_mode: SecureMode,
    /// Where the keys are (default `~/.vidgear`).
    pub keys: Option<KeyStore>,
    /// Bidirectional mode: replies carry [`FrameReceiver::set_return_data`].
    pub bidirectional: bool,
    /// Multi-server mode: several senders, each naming its port; the
    /// receiver ends when every sender seen has terminated (patterns 1, 2).
    pub multiserver: bool,
    /// Multi-server mode: the senders' ports to wait for termination from,
    /// besides those seen (NetGear knows only the ports it has seen, so a
    /// sender that starts after another one terminated finds it gone).
    pub expected_ports: Vec<String>,
    /// Multi-client mode: this receiver's port, sent with every reply
    /// (patterns 1, 2).
    pub multiclient_port: Option<String>,
    /// Longest wait for a message in [`FrameReceiver::recv`]; `None` waits
    /// as long as it takes.
    pub recv_timeout: Option<Duration>,
    /// The 8-character id in the default reply text (random by default).
    pub id: String,
    /// Frames queued before reading pauses (pattern 2 drops beyond it;
    /// NetGear uses 1).
    pub hwm: usize,
}

impl ReceiverConfig {
    /// Defaults for `pattern`.
    pub fn new(pattern: Pattern) -> ReceiverConfig {
        ReceiverConfig {
            pattern,
            secure_mode: SecureMode::Grassland,
            keys: None,
            bidirectional: false,
            multiserver: false,
            expected_ports: Vec::new(),
            multiclient_port: None,
            recv_timeout: None,
            id: random_id(),
            hwm: if pattern == Pattern::PubSub { 1 } else { 1000 },
        }
    }

    /// Sets the secure mode and key folder.
    pub fn secure(mut self, mode: SecureMode, keys: KeyStore) -> ReceiverConfig {
        self.secure_mode = mode;
        self.keys = Some(keys);
        self
    }

    /// Sets [`ReceiverConfig::bidirectional`].
    pub fn bidirectional(mut self, on: bool) -> ReceiverConfig {
        self.bidirectional = on;
        self
    }

    /// Sets [`ReceiverConfig::multiserver`].
    pub fn multiserver(mut self, on: bool) -> ReceiverConfig {
        self.multiserver = on;
        self
    }

    /// Multi-server mode, ending only when the senders of these ports (and
    /// any other seen) have terminated.
    pub fn multiserver_ports<S: Into<String>>(
        mut self,
        ports: impl IntoIterator<Item = S>,
    ) -> ReceiverConfig {
        self.multiserver = true;
        self.expected_ports = ports.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`ReceiverConfig::multiclient_port`].
    pub fn multiclient_port(mut self, port: impl Into<String>) -> ReceiverConfig {
        self.multiclient_port = Some(port.into());
        self
    }

    /// Sets [`ReceiverConfig::recv_timeout`].
    pub fn recv_timeout(mut self, t: Option<Duration>) -> ReceiverConfig {
        self.recv_timeout = t;
        self
    }

    /// Sets [`ReceiverConfig::hwm`].
    pub fn hwm(mut self, n: usize) -> ReceiverConfig {
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
        if (self.multiserver || self.multiclient_port.is_some()) && p == Pattern::Pair {
            return Err(FrameError::Config(
                "multi-server and multi-client modes need pattern 1 or 2".into(),
            ));
        }
        if self.multiserver && self.multiclient_port.is_some() {
            return Err(FrameError::Config(
                "multi-client and multi-server modes exclude each other".into(),
            ));
        }
        if endpoints == 0 {
            return Err(FrameError::Config("no endpoint to bind".into()));
        }
        if endpoints > 1 && !self.multiserver {
            return Err(FrameError::Config(
                "several endpoints need multi-server mode".into(),
            ));
        }
        Ok(())
    }
}

/// Eight uppercase letters and digits, like NetGear's system id.
fn random_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (0..8)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// One received frame.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Received {
    /// The frame.
    pub frame: Frame,
    /// The sender's JSON message, if any.
    pub message: Option<Value>,
    /// The sender's port (multi-server mode).
    pub port: Option<String>,
}

/// Receives frames from one sender, or several in multi-server mode.
#[derive(Debug)]
pub struct FrameReceiver {
    cfg: ReceiverConfig,
    socket: Socket,
    endpoints: Vec<Endpoint>,
    return_data: ReturnData,
    /// Multi-server: senders' ports seen and not yet terminated.
    ports: Vec<String>,
    terminated: bool,
}

impl FrameReceiver {
    /// Binds the endpoint(s) (several in multi-server mode).
    ///
    /// # Errors
    /// [`FrameError::Config`] for a combination NetGear refuses too;
    /// [`FrameError::Keys`] when keys cannot be loaded or made;
    /// [`FrameError::Socket`] when an endpoint cannot be bound.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing stays bound.
    pub async fn bind(
        endpoints: &[&str],
        cfg: ReceiverConfig,
    ) -> Result<FrameReceiver, FrameError> {
        cfg.check(endpoints.len())?;
        let security = match cfg.secure_mode {
            SecureMode::Grassland => ironhouse::Security::Null,
            mode => match &cfg.keys {
                Some(k) => k.receiver_security(mode)?,
                None => KeyStore::default_location()?.receiver_security(mode)?,
            },
        };
        let options = Options::default()
            .security(security)
            .recv_hwm(cfg.hwm)
            .linger(Some(Duration::from_secs(1)))
            .handshake_timeout(Some(Duration::from_secs(10)));
        let mut socket = Socket::with_options(cfg.pattern.socket_types().1, options);
        let mut bound = Vec::new();
        for ep in endpoints {
            bound.push(socket.bind(ep).await?);
        }
        if cfg.pattern == Pattern::PubSub {
            socket.subscribe(b"").await?;
        }
        Ok(FrameReceiver {
            socket,
            endpoints: bound,
            return_data: ReturnData::None,
            ports: cfg.expected_ports.clone(),
            terminated: false,
            cfg,
        })
    }

    /// The endpoints actually bound (real ports for `*`).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The configuration.
    pub fn config(&self) -> &ReceiverConfig {
        &self.cfg
    }

    /// Events of the underlying socket (connections, handshake failures).
    pub fn monitor(&self) -> tokio::sync::broadcast::Receiver<ironhouse::SocketEvent> {
        self.socket.monitor()
    }

    /// What the replies carry from now on (bidirectional and multi-client
    /// modes), as NetGear's `recv(return_data=…)`.
    pub fn set_return_data(&mut self, data: ReturnData) {
        self.return_data = data;
    }

    /// Whether the sender(s) terminated.
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    async fn reply(&mut self, msg: impl Into<Message>) -> Result<(), FrameError> {
        if self.cfg.pattern.has_replies() {
            self.socket.send(msg).await?;
        }
        Ok(())
    }

    /// The next frame, or `None` once the sender terminated (in multi-server
    /// mode: every sender seen).
    ///
    /// # Errors
    /// [`FrameError::Timeout`] after [`ReceiverConfig::recv_timeout`];
    /// [`FrameError::BadMessage`] / [`FrameError::Unsupported`] for a
    /// message that is not a frame this receiver can read (it is answered
    /// and dropped; call again for the next one).
    ///
    /// # Cancel safety
    /// Cancel safe while waiting for a message (nothing is lost).
    pub async fn recv(&mut self) -> Result<Option<Received>, FrameError> {
        loop {
            if self.terminated {
                return Ok(None);
            }
            let msg = match self.cfg.recv_timeout {
                Some(t) => tokio::time::timeout(t, self.socket.recv())
                    .await
                    .map_err(|_| FrameError::Timeout {
                        what: "a frame",
                        after: t,
                        detail: None,
                    })??,
                None => self.socket.recv().await?,
            };
            match wire::parse_inbound(msg) {
                Err(e) => {
                    tracing::warn!("dropped a message: {e}");
                    if self.cfg.pattern == Pattern::ReqRep {
                        self.reply(format!("ironhouse: rejected: {e}")).await?;
                    }
                    return Err(e);
                }
                Ok(Inbound::Terminate { port }) => {
                    if self.cfg.multiserver {
                        if self.cfg.pattern == Pattern::ReqRep {
                            self.reply(wire::TERMINATION_ACK_MULTISERVER).await?;
                        }
                        if let Some(p) = port {
                            self.ports.retain(|q| *q != p);
                        }
                        if self.ports.is_empty() {
                            self.terminated = true;
                        }
                    } else {
                        if self.cfg.pattern == Pattern::ReqRep {
                            self.reply(wire::TERMINATION_ACK).await?;
                        }
                        self.terminated = true;
                    }
                }
                Ok(Inbound::Frame {
                    port,
                    message,
                    frame,
                }) => {
                    if self.cfg.bidirectional || self.cfg.multiclient_port.is_some() {
                        let msg = wire::return_message(
                            &self.return_data,
                            self.cfg.multiclient_port.as_deref(),
                        );
                        self.reply(msg).await?;
                    } else {
                        let text = wire::default_reply(&self.cfg.id);
                        self.reply(text).await?;
                    }
                    if self.cfg.multiserver {
                        if let Some(p) = &port {
                            if !self.ports.contains(p) {
                                self.ports.push(p.clone());
                            }
                        }
                    }
                    return Ok(Some(Received {
                        frame,
                        message,
                        port,
                    }));
                }
            }
        }
    }

    /// Closes the socket.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn close(self) {
        self.socket.close().await;
    }
}
