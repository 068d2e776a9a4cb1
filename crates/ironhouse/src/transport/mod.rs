//! Transports: how bytes reach a peer. Each yields a read half and a write
//! half; the session above never knows which transport it runs on.
//!
//! `tcp://` sets TCP_NODELAY on every connection (ZMTP batches by itself;
//! Nagle would only add latency). `ipc://` uses Unix domain sockets and, like
//! libzmq, replaces a stale socket file when binding. `tls://` is TCP (with
//! NODELAY) then a TLS handshake ([`tls`]), configured by
//! [`Options::tls_server`] and [`Options::tls_client`]. With the `ssh`
//! feature and `Options::ssh` set, `tcp://` connections are channels of an
//! SSH connection instead ([`ssh`]).

#[cfg(feature = "ssh")]
pub mod ssh;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::security::PeerCertificate;
use crate::{Endpoint, Error, Options, Result};

/// The reading half of a connection.
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection.
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// An established connection, split, with a printable peer address.
pub struct Conn {
    /// Reading half.
    pub reader: ReadHalf,
    /// Writing half.
    pub writer: WriteHalf,
    /// The peer's address, as an endpoint string.
    pub peer: String,
    /// `tls://`: what the peer's certificate says (the server's on a client;
    /// the client's on a server that requires client certificates).
    pub tls_peer: Option<PeerCertificate>,
    /// The writer buffers (TLS): the session must flush it.
    pub(crate) buffered: bool,
}

/// Sets NODELAY and names the peer, with `scheme` (`tcp` or `tls`).
fn tcp_setup(s: &TcpStream, scheme: &str) -> io::Result<String> {
    s.set_nodelay(true)?;
    Ok(match s.peer_addr()? {
        SocketAddr::V4(a) => format!("{scheme}://{a}"),
        SocketAddr::V6(a) => format!("{scheme}://[{}]:{}", a.ip(), a.port()),
    })
}

fn tcp_conn(s: TcpStream) -> io::Result<Conn> {
    let peer = tcp_setup(&s, "tcp")?;
    let (r, w) = s.into_split();
    Ok(Conn {
        reader: Box::new(r),
        writer: Box::new(w),
        peer,
        tls_peer: None,
        buffered: false,
    })
}

fn unix_conn(s: UnixStream, path: &std::path::Path) -> Conn {
    let (r, w) = s.into_split();
    Conn {
        reader: Box::new(r),
        writer: Box::new(w),
        peer: format!("ipc://{}", path.display()),
        tls_peer: None,
        buffered: false,
    }
}

/// The error for `tls://` without the configuration it needs.
pub(crate) fn missing_tls(ep: &Endpoint, binding: bool) -> Error {
    let source = io::Error::new(
        io::ErrorKind::InvalidInput,
        if binding {
            "tls:// needs a server certificate and key: set Options::tls_server"
        } else {
            "tls:// needs to know which servers to trust: set Options::tls_client"
        },
    );
    let endpoint = ep.to_string();
    if binding {
        Error::Bind { endpoint, source }
    } else {
        Error::Connect { endpoint, source }
    }
}

/// Opens a connection to `ep`; on `tls://`, also runs the TLS handshake
/// (bounded by [`Options::handshake_timeout`]) with [`Options::tls_client`].
///
/// # Errors
/// [`Error::Connect`] with the OS reason (refused, unreachable, unknown host)
/// or, on `tls://`, why the handshake failed and which side refused.
///
/// # Cancel safety
/// Cancel safe: nothing is kept.
pub async fn connect(ep: &Endpoint, options: &Options) -> Result<Conn> {
    let err = |source| Error::Connect {
        endpoint: ep.to_string(),
        source,
    };
    ep.check_connectable()?;
    #[cfg(feature = "ssh")]
    if let Some(tunnel) = &options.ssh {
        return ssh::connect(ep, tunnel, options).await;
    }
    match ep {
        Endpoint::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(err)?;
            tcp_conn(s).map_err(err)
        }
        Endpoint::Tls { host, port } => {
            let Some(client) = &options.tls_client else {
                return Err(missing_tls(ep, false));
            };
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(err)?;
            let peer = tcp_setup(&s, "tls").map_err(err)?;
            tls::connect(s, peer, host, client, options.handshake_timeout)
                .await
                .map_err(err)
        }
        Endpoint::Ipc(path) => {
            let s = UnixStream::connect(path).await.map_err(err)?;
            Ok(unix_conn(s, path))
        }
    }
}

/// A bound listener.
pub struct Listener {
    kind: Kind,
}

enum Kind {
    Tcp(TcpListener),
    Tls(TcpListener, tls::Acceptor),
    /// With its path (removed on drop).
    Ipc(UnixListener, PathBuf),
}

/// A connection just accepted; on `tls://` its handshake is still to run
/// ([`Incoming::establish`]), so the accept loop never waits for it.
pub struct Incoming {
    peer: String,
    state: IncomingState,
}

enum IncomingState {
    Ready(Conn),
    Tls(TcpStream, tls::Acceptor),
}

impl Incoming {
    /// The peer's address, as an endpoint string.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Finishes setting up the connection: the TLS handshake on `tls://`
    /// (bounded by the listener's handshake timeout), nothing otherwise.
    ///
    /// # Errors
    /// Why the TLS handshake failed, naming the side that refused.
    ///
    /// # Cancel safety
    /// Cancel safe: the connection is dropped.
    pub async fn establish(self) -> io::Result<Conn> {
        match self.state {
            IncomingState::Ready(conn) => Ok(conn),
            IncomingState::Tls(tcp, acceptor) => acceptor.accept(tcp, self.peer).await,
        }
    }
}

fn bound_tcp(l: &TcpListener, host: &str, tls: bool) -> io::Result<Endpoint> {
    let local = l.local_addr()?;
    let host = if host == "*" {
        host.to_string()
    } else {
        local.ip().to_string()
    };
    let port = local.port();
    Ok(if tls {
        Endpoint::Tls { host, port }
    } else {
        Endpoint::Tcp { host, port }
    })
}

impl Listener {
    /// Binds `ep`. Returns the listener and the endpoint actually bound (with
    /// the real port when the port was `*` or 0). `tls://` needs
    /// [`Options::tls_server`].
    ///
    /// # Errors
    /// [`Error::Bind`] (address in use, permission denied, unknown host, no
    /// TLS configuration).
    pub async fn bind(ep: &Endpoint, options: &Options) -> Result<(Listener, Endpoint)> {
        let err = |source| Error::Bind {
            endpoint: ep.to_string(),
            source,
        };
        match ep {
            Endpoint::Tcp { host, port } | Endpoint::Tls { host, port } => {
                let tls = match ep {
                    Endpoint::Tls { .. } => {
                        let Some(server) = &options.tls_server else {
                            return Err(missing_tls(ep, true));
                        };
                        let acceptor = server
                            .acceptor(options.handshake_timeout)
                            .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
                        Some(acceptor)
                    }
                    _ => None,
                };
                let h = if host == "*" {
                    "0.0.0.0"
                } else {
                    host.as_str()
                };
                let l = TcpListener::bind((h, *port)).await.map_err(err)?;
                let bound = bound_tcp(&l, host, tls.is_some()).map_err(err)?;
                let kind = match tls {
                    Some(acceptor) => Kind::Tls(l, acceptor),
                    None => Kind::Tcp(l),
                };
                Ok((Listener { kind }, bound))
            }
            Endpoint::Ipc(path) => {
                // A socket file left by a dead process would make bind fail
                // forever; libzmq replaces it too. Only remove sockets, never
                // regular files.
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if meta.file_type().is_socket() {
                        let _ = std::fs::remove_file(path);
                    }
                }
                let l = UnixListener::bind(path).map_err(err)?;
                Ok((
                    Listener {
                        kind: Kind::Ipc(l, path.clone()),
                    },
                    ep.clone(),
                ))
            }
        }
    }

    /// Accepts the next connection. On `tls://` the handshake is left to
    /// [`Incoming::establish`], to run in the connection's own task.
    ///
    /// # Errors
    /// The OS error from accept (for example too many open files).
    ///
    /// # Cancel safety
    /// Cancel safe, as tokio's `accept`.
    pub async fn accept(&self) -> io::Result<Incoming> {
        match &self.kind {
            Kind::Tcp(l) => {
                let (s, _) = l.accept().await?;
                let conn = tcp_conn(s)?;
                Ok(Incoming {
                    peer: conn.peer.clone(),
                    state: IncomingState::Ready(conn),
                })
            }
            Kind::Tls(l, acceptor) => {
                let (s, _) = l.accept().await?;
                let peer = tcp_setup(&s, "tls")?;
                Ok(Incoming {
                    peer,
                    state: IncomingState::Tls(s, acceptor.clone()),
                })
            }
            Kind::Ipc(l, path) => {
                let (s, _) = l.accept().await?;
                let conn = unix_conn(s, path);
                Ok(Incoming {
                    peer: conn.peer.clone(),
                    state: IncomingState::Ready(conn),
                })
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Kind::Ipc(_, path) = &self.kind {
            let _ = std::fs::remove_file(path);
        }
    }
}
