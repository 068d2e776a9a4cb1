//! Transports: how bytes reach a peer. Each yields a read half and a write
//! half; the session above never knows which transport it runs on.
//!
//! `tcp://` sets TCP_NODELAY on every connection (ZMTP batches by itself;
//! Nagle would only add latency). `ipc://` uses Unix domain sockets and, like
//! libzmq, replaces a stale socket file when binding.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::{Endpoint, Error, Result};

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
}

fn tcp_conn(s: TcpStream) -> io::Result<Conn> {
    s.set_nodelay(true)?;
    let peer = match s.peer_addr()? {
        SocketAddr::V4(a) => format!("tcp://{a}"),
        SocketAddr::V6(a) => format!("tcp://[{}]:{}", a.ip(), a.port()),
    };
    let (r, w) = s.into_split();
    Ok(Conn {
        reader: Box::new(r),
        writer: Box::new(w),
        peer,
    })
}

fn unix_conn(s: UnixStream, path: &std::path::Path) -> Conn {
    let (r, w) = s.into_split();
    Conn {
        reader: Box::new(r),
        writer: Box::new(w),
        peer: format!("ipc://{}", path.display()),
    }
}

/// Opens a connection to `ep`.
///
/// # Errors
/// [`Error::Connect`] with the OS reason (refused, unreachable, unknown host).
pub async fn connect(ep: &Endpoint) -> Result<Conn> {
    let err = |source| Error::Connect {
        endpoint: ep.to_string(),
        source,
    };
    ep.check_connectable()?;
    match ep {
        Endpoint::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(err)?;
            tcp_conn(s).map_err(err)
        }
        Endpoint::Ipc(path) => {
            let s = UnixStream::connect(path).await.map_err(err)?;
            Ok(unix_conn(s, path))
        }
    }
}

/// A bound listener.
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix domain socket, with its path (removed on drop).
    Ipc(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `ep`. Returns the listener and the endpoint actually bound (with
    /// the real port when the port was `*` or 0).
    ///
    /// # Errors
    /// [`Error::Bind`] (address in use, permission denied, unknown host).
    pub async fn bind(ep: &Endpoint) -> Result<(Listener, Endpoint)> {
        let err = |source| Error::Bind {
            endpoint: ep.to_string(),
            source,
        };
        match ep {
            Endpoint::Tcp { host, port } => {
                let h = if host == "*" {
                    "0.0.0.0"
                } else {
                    host.as_str()
                };
                let l = TcpListener::bind((h, *port)).await.map_err(err)?;
                let local = l.local_addr().map_err(err)?;
                let bound = Endpoint::Tcp {
                    host: if host == "*" {
                        host.clone()
                    } else {
                        local.ip().to_string()
                    },
                    port: local.port(),
                };
                Ok((Listener::Tcp(l), bound))
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
                Ok((Listener::Ipc(l, path.clone()), ep.clone()))
            }
        }
    }

    /// Accepts the next connection.
    ///
    /// # Errors
    /// The OS error from accept (for example too many open files).
    ///
    /// # Cancel safety
    /// Cancel safe, as tokio's `accept`.
    pub async fn accept(&self) -> io::Result<Conn> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                tcp_conn(s)
            }
            Listener::Ipc(l, path) => {
                let (s, _) = l.accept().await?;
                Ok(unix_conn(s, path))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Ipc(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
