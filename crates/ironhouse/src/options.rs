//! Socket options, with ZeroMQ's names in the docs where they differ.

use std::time::Duration;

use bytes::Bytes;
use ironhouse_zmtp::Heartbeat;

use crate::security::Security;
#[cfg(feature = "ssh")]
use crate::transport::ssh::SshTunnel;
use crate::transport::tls::{TlsClient, TlsServer};

/// Options for a [`Socket`](crate::Socket). Build with the setters:
///
/// ```
/// use std::time::Duration;
/// let opts = ironhouse::Options::default()
///     .send_hwm(10_000)
///     .linger(Some(Duration::from_secs(1)))
///     .max_message_size(Some(64 << 20));
/// assert_eq!(opts.send_hwm, 10_000);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Messages queued per peer for sending before the socket blocks or drops,
    /// by type (ZMQ_SNDHWM). Default 1000. Minimum 1.
    pub send_hwm: usize,
    /// Messages queued for the application before reading from peers pauses
    /// (ZMQ_RCVHWM). Default 1000. Minimum 1.
    pub recv_hwm: usize,
    /// Bytes queued per peer for sending, besides the message count: a fast
    /// sender of large messages cannot pile up gigabytes. One message always
    /// fits, however large. Default 32 MiB. (ZeroMQ has no such bound.)
    pub send_hwm_bytes: usize,
    /// Bytes received per peer and not yet read by the application before
    /// reading from that peer pauses. Default 32 MiB; one message always fits.
    pub recv_hwm_bytes: usize,
    /// How long `close` (or drop) keeps delivering queued messages
    /// (ZMQ_LINGER). `None` waits until they are delivered. Default 30 s:
    /// long enough for a slow peer, short enough that a dead one never hangs
    /// a process forever.
    pub linger: Option<Duration>,
    /// The routing id this socket announces (ZMQ_ROUTING_ID). Empty: none.
    pub identity: Bytes,
    /// Largest message accepted from a peer, all frames together
    /// (ZMQ_MAXMSGSIZE). Checked from frame headers before allocating; a
    /// peer that exceeds it is disconnected. Default 256 MiB; `None`: no limit.
    pub max_message_size: Option<u64>,
    /// First reconnect delay after a connection drops (ZMQ_RECONNECT_IVL).
    /// Default 100 ms.
    pub reconnect_interval: Duration,
    /// Reconnect delays double up to this (ZMQ_RECONNECT_IVL_MAX). Default 5 s.
    pub reconnect_interval_max: Duration,
    /// Maximum time for the ZMTP handshake (ZMQ_HANDSHAKE_IVL). Default 30 s.
    pub handshake_timeout: Option<Duration>,
    /// Heartbeats (ZMQ_HEARTBEAT_IVL, _TTL, _TIMEOUT). Default off.
    pub heartbeat: Heartbeat,
    /// ROUTER: fail `send` to an unknown routing id instead of dropping the
    /// message (ZMQ_ROUTER_MANDATORY). Default false, as in ZeroMQ.
    pub router_mandatory: bool,
    /// ROUTER: announce each peer's arrival and departure as a message of
    /// two frames, its routing id and an empty frame (ZMQ_ROUTER_NOTIFY with
    /// both CONNECT and DISCONNECT). The departure comes after every message
    /// that peer sent. Default false.
    pub router_notify: bool,
    /// Security mechanism and, for servers, the authenticator. Default NULL.
    pub security: Security,
    /// ZAP domain passed to the authenticator. Default empty.
    pub zap_domain: String,
    /// Certificate and key for binding `tls://` (and, optionally, the CA
    /// client certificates must come from). Required to bind `tls://`.
    pub tls_server: Option<TlsServer>,
    /// Whom to trust when connecting to `tls://` (CA certificates or a pinned
    /// fingerprint) and an optional client certificate. Required to connect
    /// to `tls://`.
    pub tls_client: Option<TlsClient>,
    /// Reach every connected `tcp://` endpoint through this SSH server
    /// (`direct-tcpip` channels; the endpoint is as seen from the server).
    /// Default `None`: connect directly. Feature `ssh`.
    #[cfg(feature = "ssh")]
    pub ssh: Option<SshTunnel>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            send_hwm: 1000,
            recv_hwm: 1000,
            send_hwm_bytes: 32 << 20,
            recv_hwm_bytes: 32 << 20,
            linger: Some(Duration::from_secs(30)),
            identity: Bytes::new(),
            max_message_size: Some(256 << 20),
            reconnect_interval: Duration::from_millis(100),
            reconnect_interval_max: Duration::from_secs(5),
            handshake_timeout: Some(Duration::from_secs(30)),
            heartbeat: Heartbeat::default(),
            router_mandatory: false,
            router_notify: false,
            security: Security::Null,
            zap_domain: String::new(),
            tls_server: None,
            tls_client: None,
            #[cfg(feature = "ssh")]
            ssh: None,
        }
    }
}

impl Options {
    /// Sets [`Options::send_hwm`].
    pub fn send_hwm(mut self, n: usize) -> Self {
        self.send_hwm = n.max(1);
        self
    }
    /// Sets [`Options::recv_hwm`].
    pub fn recv_hwm(mut self, n: usize) -> Self {
        self.recv_hwm = n.max(1);
        self
    }
    /// Sets [`Options::send_hwm_bytes`] and [`Options::recv_hwm_bytes`].
    pub fn hwm_bytes(mut self, send: usize, recv: usize) -> Self {
        self.send_hwm_bytes = send;
        self.recv_hwm_bytes = recv;
        self
    }
    /// Sets [`Options::linger`].
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = linger;
        self
    }
    /// Sets [`Options::identity`].
    pub fn identity(mut self, id: impl Into<Bytes>) -> Self {
        self.identity = id.into();
        self
    }
    /// Sets [`Options::max_message_size`].
    pub fn max_message_size(mut self, max: Option<u64>) -> Self {
        self.max_message_size = max;
        self
    }
    /// Sets the reconnect interval and its maximum.
    pub fn reconnect(mut self, first: Duration, max: Duration) -> Self {
        self.reconnect_interval = first;
        self.reconnect_interval_max = max.max(first);
        self
    }
    /// Sets [`Options::handshake_timeout`].
    pub fn handshake_timeout(mut self, t: Option<Duration>) -> Self {
        self.handshake_timeout = t;
        self
    }
    /// Sets [`Options::heartbeat`].
    pub fn heartbeat(mut self, hb: Heartbeat) -> Self {
        self.heartbeat = hb;
        self
    }
    /// Sets [`Options::security`].
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }
    /// Sets [`Options::zap_domain`].
    pub fn zap_domain(mut self, domain: impl Into<String>) -> Self {
        self.zap_domain = domain.into();
        self
    }
    /// Sets [`Options::tls_server`], for binding `tls://`.
    ///
    /// ```no_run
    /// use ironhouse::transport::tls::TlsServer;
    /// let opts = ironhouse::Options::default()
    ///     .tls_server(TlsServer::from_pem_files("server.pem", "server.key")?);
    /// # Ok::<(), ironhouse::security::pki::PkiError>(())
    /// ```
    pub fn tls_server(mut self, server: TlsServer) -> Self {
        self.tls_server = Some(server);
        self
    }
    /// Sets [`Options::tls_client`], for connecting to `tls://`.
    ///
    /// ```no_run
    /// use ironhouse::transport::tls::TlsClient;
    /// let opts = ironhouse::Options::default()
    ///     .tls_client(TlsClient::trusting_ca_file("ca.pem")?);
    /// # Ok::<(), ironhouse::security::pki::PkiError>(())
    /// ```
    pub fn tls_client(mut self, client: TlsClient) -> Self {
        self.tls_client = Some(client);
        self
    }
    /// Sets [`Options::ssh`]: connect through an SSH server.
    ///
    /// ```no_run
    /// use ironhouse::transport::ssh::{SshIdentity, SshTunnel};
    /// let opts = ironhouse::Options::default().ssh(
    ///     SshTunnel::new("alice", "gateway").identity(SshIdentity::KeyFile("id_ed25519".into())),
    /// );
    /// ```
    #[cfg(feature = "ssh")]
    pub fn ssh(mut self, tunnel: SshTunnel) -> Self {
        self.ssh = Some(tunnel);
        self
    }
    /// Sets [`Options::router_mandatory`].
    pub fn router_mandatory(mut self, on: bool) -> Self {
        self.router_mandatory = on;
        self
    }
    /// Sets [`Options::router_notify`].
    pub fn router_notify(mut self, on: bool) -> Self {
        self.router_notify = on;
        self
    }
}
