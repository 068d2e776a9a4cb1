//! Connecting through an SSH server (feature `ssh`, with russh on aws-lc-rs).
//!
//! With [`Options::ssh`](crate::Options::ssh) set, every `tcp://` connection
//! a socket makes is a `direct-tcpip` channel of an SSH connection: the
//! endpoint's host and port are as seen from the SSH server, so a server
//! bound to `127.0.0.1` on another machine is reachable. Unlike `ssh -L` (what
//! RPyC's `ssh_connect` and pyzmq's tunnels spawn) no local port is opened,
//! so there is no race for a free port and nothing else on this machine can
//! use the tunnel.
//!
//! - **One SSH connection, many channels.** Connections with the same
//!   [`SshTunnel`] share one SSH connection (process-wide); each ZMTP
//!   connection is its own channel, closed when the connection ends (the
//!   socket closes, or the peer goes). The SSH connection closes with its
//!   last channel.
//! - **Reconnection** goes through SSH again, opening a new SSH connection
//!   if the old one died.
//! - **Host keys** are checked against an OpenSSH `known_hosts` file (plain
//!   or hashed entries, `[host]:port` for ports other than 22).
//!   [`HostKeyPolicy::Strict`] (the default) refuses unknown hosts;
//!   [`HostKeyPolicy::AcceptNew`] records them, as OpenSSH's
//!   `StrictHostKeyChecking=accept-new`. A changed key is always refused.
//! - **Authentication**: a key file ([`SshIdentity::KeyFile`]; ed25519 and
//!   ECDSA) or the agent at `$SSH_AUTH_SOCK` ([`SshIdentity::Agent`]); then,
//!   if that fails and a password is set, the password.
//!
//! Only `tcp://` endpoints go through SSH; `tls://` and `ipc://` with
//! [`Options::ssh`](crate::Options::ssh) set are refused.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ironhouse::Result<()> {
//! use ironhouse::transport::ssh::{SshIdentity, SshTunnel};
//! use ironhouse::{Options, Socket, SocketType};
//!
//! let tunnel = SshTunnel::new("alice", "gateway.example.org")
//!     .identity(SshIdentity::KeyFile("/home/alice/.ssh/id_ed25519".into()));
//! let mut req = Socket::with_options(SocketType::Req, Options::default().ssh(tunnel));
//! // 127.0.0.1 as seen from gateway.example.org.
//! req.connect("tcp://127.0.0.1:5555").await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{known_hosts, PrivateKeyWithHashAlg};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Conn;
use crate::{Endpoint, Error, Result};

/// How the SSH client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SshIdentity {
    /// An OpenSSH private key file (ed25519 or ECDSA). An encrypted key is
    /// decrypted with [`SshTunnel::password`].
    KeyFile(PathBuf),
    /// The keys of the SSH agent at `$SSH_AUTH_SOCK`, tried in turn.
    Agent,
    /// The keys of the SSH agent listening on this Unix socket.
    AgentAt(PathBuf),
}

/// What to do with a server whose host key is not in `known_hosts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HostKeyPolicy {
    /// Refuse it (OpenSSH's `StrictHostKeyChecking=yes`). The default.
    #[default]
    Strict,
    /// Record its key in `known_hosts` and go on (`accept-new`). A host whose
    /// recorded key differs is still refused.
    AcceptNew,
}

/// An SSH server to reach endpoints through: see the [module docs](self).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SshTunnel {
    /// User name on the SSH server.
    pub user: String,
    /// The SSH server's host name or address, as written in `known_hosts`.
    pub host: String,
    /// The SSH server's port. Default 22.
    pub port: u16,
    /// Key file or agent. Default: the agent.
    pub identity: SshIdentity,
    /// The `known_hosts` file. Default `~/.ssh/known_hosts`.
    pub known_hosts: PathBuf,
    /// Unknown host keys: refused (default) or recorded.
    pub policy: HostKeyPolicy,
    /// Passphrase of an encrypted key file, and the password tried when key
    /// authentication fails. Never printed.
    pub password: Option<String>,
}

impl fmt::Debug for SshTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshTunnel")
            .field("user", &self.user)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("identity", &self.identity)
            .field("known_hosts", &self.known_hosts)
            .field("policy", &self.policy)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl fmt::Display for SshTunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ssh://{}@{}:{}", self.user, self.host, self.port)
    }
}

impl SshTunnel {
    /// `user@host`, port 22, the agent, `~/.ssh/known_hosts`, strict.
    pub fn new(user: impl Into<String>, host: impl Into<String>) -> SshTunnel {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        SshTunnel {
            user: user.into(),
            host: host.into(),
            port: 22,
            identity: SshIdentity::Agent,
            known_hosts: home.join(".ssh").join("known_hosts"),
            policy: HostKeyPolicy::Strict,
            password: None,
        }
    }
    /// Sets [`SshTunnel::port`].
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
    /// Sets [`SshTunnel::identity`].
    pub fn identity(mut self, identity: SshIdentity) -> Self {
        self.identity = identity;
        self
    }
    /// Sets [`SshTunnel::known_hosts`].
    pub fn known_hosts(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_hosts = path.into();
        self
    }
    /// Sets [`SshTunnel::policy`].
    pub fn policy(mut self, policy: HostKeyPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Sets [`SshTunnel::password`].
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }
}

/// Why an SSH connection could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// The server's host key differs from the one recorded.
    #[error(
        "host key of {host} changed: it does not match {file}:{line} (possible man-in-the-middle); if the change is expected, remove that line"
    )]
    HostKeyChanged {
        /// `host` or `[host]:port`.
        host: String,
        /// The known_hosts file.
        file: PathBuf,
        /// The line of the recorded key (1-based).
        line: usize,
    },
    /// The server is not in known_hosts and the policy is strict.
    #[error(
        "host key of {host} ({key_type} {fingerprint}) is not in {file}: add it (ssh-keyscan) or use HostKeyPolicy::AcceptNew"
    )]
    UnknownHost {
        /// `host` or `[host]:port`.
        host: String,
        /// The known_hosts file.
        file: PathBuf,
        /// The server's key algorithm.
        key_type: String,
        /// Its SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The server refused every credential offered.
    #[error("SSH authentication as {user} refused by {server}: {tried}")]
    AuthRefused {
        /// The user name.
        user: String,
        /// `ssh://user@host:port`.
        server: String,
        /// What was offered.
        tried: String,
    },
    /// A key file or the agent could not be used.
    #[error("SSH identity: {0}")]
    Identity(String),
    /// The SSH server refused to open the channel to the endpoint (for
    /// example `AllowTcpForwarding no`, or nothing listening there).
    #[error("SSH server {server} could not open a channel to {target}: {reason}")]
    Channel {
        /// `ssh://user@host:port`.
        server: String,
        /// `host:port` as seen from the server.
        target: String,
        /// russh's reason.
        reason: String,
    },
    /// Connecting to the SSH server failed, or the SSH protocol did.
    #[error("SSH connection to {server}: {reason}")]
    Connection {
        /// `ssh://user@host:port`.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The endpoint cannot go through SSH.
    #[error("{0} cannot go through SSH: only tcp:// and tls:// endpoints can")]
    Unsupported(String),
}

impl From<SshError> for io::Error {
    fn from(e: SshError) -> io::Error {
        let kind = match e {
            SshError::HostKeyChanged { .. }
            | SshError::UnknownHost { .. }
            | SshError::AuthRefused { .. } => io::ErrorKind::PermissionDenied,
            SshError::Unsupported(_) | SshError::Identity(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::ConnectionRefused,
        };
        io::Error::new(kind, e)
    }
}

/// SSH connections opened by this process so far (not those reused): lets
/// tests and diagnostics see that connections are shared.
pub fn ssh_connections_opened() -> u64 {
    OPENED.load(Ordering::Relaxed)
}

static OPENED: AtomicU64 = AtomicU64::new(0);

/// One SSH connection, shared by the channels that hold it.
struct Session {
    handle: Option<Handle<Client>>,
    name: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The last channel is gone: say goodbye instead of just dropping.
        if let (Some(handle), Ok(rt)) = (self.handle.take(), tokio::runtime::Handle::try_current())
        {
            tracing::debug!(server = %self.name, "closing SSH connection (no channel left)");
            rt.spawn(async move {
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            });
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Weak<Session>>>;

fn sessions() -> &'static Mutex<HashMap<SshTunnel, Slot>> {
    static SESSIONS: OnceLock<Mutex<HashMap<SshTunnel, Slot>>> = OnceLock::new();
    SESSIONS.get_or_init(Default::default)
}

/// The live SSH connection for `tunnel`, opening one if there is none.
async fn session(tunnel: &SshTunnel, limit: Option<Duration>) -> Result<Arc<Session>, SshError> {
    let slot = {
        let mut map = sessions().lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| {
            Arc::strong_count(s) > 1 || s.try_lock().is_ok_and(|w| w.strong_count() > 0)
        });
        map.entry(tunnel.clone()).or_default().clone()
    };
    // One connection attempt at a time per tunnel: concurrent sockets share it.
    let mut current = slot.lock().await;
    if let Some(s) = current.upgrade() {
        if s.handle.as_ref().is_some_and(|h| !h.is_closed()) {
            return Ok(s);
        }
    }
    let opening = open(tunnel);
    let handle = match limit {
        Some(l) => tokio::time::timeout(l, opening)
            .await
            .map_err(|_| SshError::Connection {
                server: tunnel.to_string(),
                reason: format!("no SSH session within {l:?}"),
            })??,
        None => opening.await?,
    };
    OPENED.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(server = %tunnel, "SSH connection established");
    let s = Arc::new(Session {
        handle: Some(handle),
        name: tunnel.to_string(),
    });
    *current = Arc::downgrade(&s);
    Ok(s)
}

/// Connects, checks the host key and authenticates.
async fn open(tunnel: &SshTunnel) -> Result<Handle<Client>, SshError> {
    let server = tunnel.to_string();
    let config = Arc::new(client::Config {
        // Notice a dead server within a minute, so reconnection can start.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let handler = Client {
        tunnel: tunnel.clone(),
    };
    let mut handle = client::connect(config, (tunnel.host.as_str(), tunnel.port), handler)
        .await
        .map_err(|e| match e {
            ClientError::HostKey(e) => e,
            ClientError::Ssh(e) => SshError::Connection {
                server: server.clone(),
                reason: e.to_string(),
            },
        })?;
    let proto = |e: &dyn fmt::Display| SshError::Connection {
        server: server.clone(),
        reason: e.to_string(),
    };
    let mut tried = Vec::new();
    let mut ok = match &tunnel.identity {
        SshIdentity::KeyFile(path) => {
            let key = load_key(path, tunnel.password.as_deref())?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| proto(&e))?
                .flatten();
            tried.push(format!("key {}", path.display()));
            handle
                .authenticate_publickey(
                    &tunnel.user,
                    PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                )
                .await
                .map_err(|e| proto(&e))?
                .success()
        }
        SshIdentity::Agent => agent_auth(&mut handle, tunnel, None, &mut tried).await?,
        SshIdentity::AgentAt(path) => {
            agent_auth(&mut handle, tunnel, Some(path), &mut tried).await?
        }
    };
    if !ok {
        if let Some(password) = &tunnel.password {
            tried.push("password".into());
            ok = handle
                .authenticate_password(&tunnel.user, password)
                .await
                .map_err(|e| proto(&e))?
                .success();
        }
    }
    if !ok {
        return Err(SshError::AuthRefused {
            user: tunnel.user.clone(),
            server,
            tried: tried.join(", "),
        });
    }
    Ok(handle)
}

fn load_key(path: &Path, passphrase: Option<&str>) -> Result<russh::keys::PrivateKey, SshError> {
    russh::keys::load_secret_key(path, passphrase).map_err(|e| {
        let hint = match e {
            russh::keys::Error::KeyIsEncrypted => {
                ": it is encrypted; set SshTunnel::password to its passphrase"
            }
            _ => "",
        };
        SshError::Identity(format!("cannot use key file {}: {e}{hint}", path.display()))
    })
}

async fn agent_auth(
    handle: &mut Handle<Client>,
    tunnel: &SshTunnel,
    socket: Option<&PathBuf>,
    tried: &mut Vec<String>,
) -> Result<bool, SshError> {
    let mut agent = match socket {
        Some(path) => AgentClient::connect_uds(path)
            .await
            .map_err(|e| SshError::Identity(format!("no SSH agent at {}: {e}", path.display())))?,
        None => AgentClient::connect_env()
            .await
            .map_err(|e| SshError::Identity(format!("no SSH agent ($SSH_AUTH_SOCK): {e}")))?,
    };
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| SshError::Identity(format!("SSH agent: {e}")))?;
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|e| SshError::Connection {
            server: tunnel.to_string(),
            reason: e.to_string(),
        })?
        .flatten();
    for id in identities {
        let AgentIdentity::PublicKey { key, comment } = id else {
            continue;
        };
        tried.push(format!("agent key {comment:?}"));
        match handle
            .authenticate_publickey_with(&tunnel.user, key, hash, &mut agent)
            .await
        {
            Ok(r) if r.success() => return Ok(true),
            Ok(_) => {}
            Err(e) => tracing::debug!("SSH agent key {comment:?}: {e}"),
        }
    }
    if tried.is_empty() {
        tried.push("the agent (which holds no key)".into());
    }
    Ok(false)
}

/// The russh client handler: checks the host key.
struct Client {
    tunnel: SshTunnel,
}

#[derive(Debug)]
enum ClientError {
    HostKey(SshError),
    Ssh(russh::Error),
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Ssh(e)
    }
}

impl Client {
    fn check(&self, key: &russh::keys::PublicKey) -> Result<(), SshError> {
        let t = &self.tunnel;
        let file = &t.known_hosts;
        let host = if t.port == 22 {
            t.host.clone()
        } else {
            format!("[{}]:{}", t.host, t.port)
        };
        let unreadable = |e: russh::keys::Error| SshError::Connection {
            server: t.to_string(),
            reason: format!("cannot read {}: {e}", file.display()),
        };
        match known_hosts::check_known_hosts_path(&t.host, t.port, key, file) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(russh::keys::Error::KeyChanged { line }) => {
                return Err(SshError::HostKeyChanged {
                    host,
                    file: file.clone(),
                    line: file_line(file, line),
                })
            }
            Err(e) => return Err(unreadable(e)),
        }
        // Not known with this algorithm. Keys of other algorithms for the
        // same host mean the server is known but offers something else:
        // refused like a changed key (OpenSSH does the same).
        let recorded =
            known_hosts::known_host_keys_path(&t.host, t.port, file).map_err(unreadable)?;
        if let Some((line, _)) = recorded.first() {
            return Err(SshError::HostKeyChanged {
                host,
                file: file.clone(),
                line: file_line(file, *line),
            });
        }
        match t.policy {
            HostKeyPolicy::AcceptNew => {
                record(file, &host, key).map_err(|e| SshError::Connection {
                    server: t.to_string(),
                    reason: format!("cannot record the host key in {}: {e}", file.display()),
                })?;
                tracing::info!(
                    host,
                    file = %file.display(),
                    fingerprint = %key.fingerprint(Default::default()),
                    "recorded new SSH host key"
                );
                Ok(())
            }
            HostKeyPolicy::Strict => Err(SshError::UnknownHost {
                host,
                file: file.clone(),
                key_type: key.algorithm().to_string(),
                fingerprint: key.fingerprint(Default::default()).to_string(),
            }),
        }
    }
}

/// russh numbers known_hosts entries without counting comment lines: turns
/// its number into the line number in the file.
fn file_line(file: &Path, entry: usize) -> usize {
    let Ok(text) = std::fs::read_to_string(file) else {
        return entry;
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
        .nth(entry.saturating_sub(1))
        .map_or(entry, |(i, _)| i + 1)
}

/// Appends `host key` to known_hosts (creating it and its folder), as
/// OpenSSH's accept-new does (host names not hashed).
fn record(file: &Path, host: &str, key: &russh::keys::PublicKey) -> io::Result<()> {
    use std::io::Write;
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let existing = std::fs::read(file).unwrap_or_default();
    let sep = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let key = key.to_openssh().map_err(io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(format!("{sep}{host} {key}\n").as_bytes())
}

impl client::Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.check(key).map(|()| true).map_err(ClientError::HostKey)
            }
            // Host certificates need a @cert-authority check, not done here.
            _ => Err(ClientError::HostKey(SshError::Connection {
                server: self.tunnel.to_string(),
                reason: "the server offered a host certificate; only plain host keys are supported"
                    .into(),
            })),
        }
    }
}

/// A channel as a byte stream; holds its SSH connection open.
struct SshStream {
    inner: russh::ChannelStream<client::Msg>,
    _session: Arc<Session>,
}

impl AsyncRead for SshStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Opens a `direct-tcpip` channel to `ep` through `tunnel`, sharing (or
/// opening) the SSH connection, and runs TLS over it for `tls://`. Bounded by
/// `options.handshake_timeout`.
pub(crate) async fn connect(
    ep: &Endpoint,
    tunnel: &SshTunnel,
    options: &crate::Options,
) -> Result<Conn> {
    let limit = options.handshake_timeout;
    let err = |e: SshError| Error::Connect {
        endpoint: ep.to_string(),
        source: e.into(),
    };
    let (host, port, tls) = match ep {
        Endpoint::Tcp { host, port } => (host, *port, None),
        Endpoint::Tls { host, port } => match &options.tls_client {
            Some(client) => (host, *port, Some(client)),
            None => return Err(super::missing_tls(ep, false)),
        },
        _ => return Err(err(SshError::Unsupported(ep.to_string()))),
    };
    let session = session(tunnel, limit).await.map_err(err)?;
    let handle = session
        .handle
        .as_ref()
        .expect("a live session has its handle");
    let target = format!("{host}:{port}");
    let opening = handle.channel_open_direct_tcpip(host.as_str(), u32::from(port), "127.0.0.1", 0);
    let channel_err = |reason: String| {
        err(SshError::Channel {
            server: tunnel.to_string(),
            target: target.clone(),
            reason,
        })
    };
    let channel = match limit {
        Some(l) => tokio::time::timeout(l, opening)
            .await
            .map_err(|_| channel_err(format!("no answer within {l:?}")))?,
        None => opening.await,
    }
    .map_err(|e| channel_err(e.to_string()))?;
    tracing::debug!(server = %tunnel, target, "SSH channel open");
    let stream = SshStream {
        inner: channel.into_stream(),
        _session: session,
    };
    if let Some(client) = tls {
        // TLS end to end: the SSH server only relays ciphertext.
        let peer = format!("tls://{target} via {tunnel}");
        return super::tls::connect(stream, peer, host, client, limit)
            .await
            .map_err(|source| Error::Connect {
                endpoint: ep.to_string(),
                source,
            });
    }
    let (r, w) = tokio::io::split(stream);
    Ok(Conn {
        reader: Box::new(r),
        writer: Box::new(w),
        peer: format!("tcp://{target} via {tunnel}"),
        tls_peer: None,
        buffered: false,
    })
}
