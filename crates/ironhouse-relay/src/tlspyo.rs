//! tlspyo compatibility: the relay also serves unmodified tlspyo 0.3.0
//! endpoints, over TLS (with a tlspyo-style `key.pem` / `certificate.pem`)
//! or plain TCP, in the same groups as native endpoints.
//!
//! Each tlspyo connection gets a task that splits the byte stream into
//! frames ([`wire`]), checks the password on every frame, acknowledges
//! every non-ACK frame as tlspyo expects, and passes HELLO / OBJ / NTF / ACK
//! to the relay task as `TlspyoIn`. What the relay sends back comes as
//! `TlspyoOut` and is written in batches. User objects stay the opaque
//! pickled bytes the endpoint sent; the relay never unpickles them.
//!
//! Better than tlspyo's own relay: a wrong password closes the connection
//! without logging the password; lengths are checked before anything is
//! allocated; TCP_NODELAY is set (tlspyo's 88 ms round trips came from
//! Nagle); work items a tlspyo endpoint has not acknowledged go back to the
//! queue if it disconnects. What tlspyo endpoints cannot get: credit and
//! the last broadcast seen are not restated on reconnect (the tlspyo
//! protocol has no session), so a reconnecting tlspyo endpoint receives the
//! kept broadcast again, as with tlspyo's relay.

mod pickle;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use ironhouse::TlsServer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::core::ConnId;
use crate::Result;
use wire::{EndpointFrame, FrameReader, RelayFrame, WireError};

/// How the relay serves tlspyo endpoints.
#[derive(Clone)]
pub struct TlspyoConfig {
    /// Where to listen (tlspyo's relay listens on every interface:
    /// `0.0.0.0:port`).
    pub addr: SocketAddr,
    /// The password every endpoint frame must carry.
    pub password: String,
    /// TLS with this certificate and key (tlspyo's `security="TLS"`), or
    /// plain TCP (`security=None`) when `None`.
    pub tls: Option<TlsServer>,
    /// Width of the ASCII length header; must match the endpoints'
    /// (tlspyo's default: 10).
    pub header_size: usize,
    /// Largest frame body accepted.
    pub max_frame: usize,
}

impl std::fmt::Debug for TlspyoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("TlspyoConfig")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("header_size", &self.header_size)
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

impl TlspyoConfig {
    /// Plain TCP on `addr` with this password, header size 10, frames up to
    /// 256 MiB (or what the header size allows).
    pub fn new(addr: SocketAddr, password: impl Into<String>) -> Self {
        TlspyoConfig {
            addr,
            password: password.into(),
            tls: None,
            header_size: 10,
            max_frame: 256 << 20,
        }
    }
    /// Serves TLS with this certificate (for example
    /// `TlsServer::from_pem_files("certificate.pem", "key.pem")`).
    pub fn tls(mut self, server: TlsServer) -> Self {
        self.tls = Some(server);
        self
    }
    /// Sets the header size (tlspyo's `header_size`).
    pub fn header_size(mut self, n: usize) -> Self {
        self.header_size = n;
        self
    }
}

/// From a tlspyo connection task to the relay task.
#[derive(Debug)]
pub(crate) enum TlspyoIn {
    Opened {
        conn: ConnId,
        tx: mpsc::Sender<TlspyoOut>,
    },
    Hello {
        conn: ConnId,
        groups: Vec<String>,
    },
    Publish {
        conn: ConnId,
        dest: Vec<(String, i64)>,
        obj: Bytes,
    },
    Notify {
        conn: ConnId,
        dest: Vec<(String, i64)>,
    },
    Ack {
        conn: ConnId,
        stamp: u64,
    },
    Closed {
        conn: ConnId,
    },
}

/// From the relay task to a tlspyo connection.
#[derive(Debug)]
pub(crate) enum TlspyoOut {
    Hello { stamp: u64 },
    Ack { stamp: u64 },
    Obj { stamp: u64, obj: Bytes },
    Close,
}

/// Binds the listener and spawns its accept loop.
pub(crate) async fn listen(
    cfg: TlspyoConfig,
    ids: Arc<AtomicU64>,
    to_relay: mpsc::Sender<TlspyoIn>,
    stop: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    wire::check_header_size(cfg.header_size)
        .map_err(|e| crate::Error::Invalid(format!("tlspyo header size: {e}")))?;
    let acceptor = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(t.rustls_config().map_err(
            |e| crate::Error::Invalid(format!("tlspyo TLS certificate: {e}")),
        )?)),
        None => None,
    };
    let listener = TcpListener::bind(cfg.addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("tlspyo listener on {}: {e}", cfg.addr))
    })?;
    let addr = listener.local_addr()?;
    let cfg = Arc::new(cfg);
    tokio::spawn(accept_loop(listener, cfg, acceptor, ids, to_relay, stop));
    Ok(addr)
}

async fn accept_loop(
    listener: TcpListener,
    cfg: Arc<TlspyoConfig>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    ids: Arc<AtomicU64>,
    to_relay: mpsc::Sender<TlspyoIn>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "tlspyo listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let conn = ids.fetch_add(1, Ordering::Relaxed);
        let (cfg, acceptor, to_relay, stop) = (
            cfg.clone(),
            acceptor.clone(),
            to_relay.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            match acceptor {
                Some(a) => match a.accept(tcp).await {
                    Ok(tls) => serve(tls, conn, peer, &cfg, to_relay, stop).await,
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "tlspyo endpoint: TLS handshake failed")
                    }
                },
                None => serve(tcp, conn, peer, &cfg, to_relay, stop).await,
            }
        });
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    conn: ConnId,
    peer: SocketAddr,
    cfg: &TlspyoConfig,
    to_relay: mpsc::Sender<TlspyoIn>,
    mut stop: watch::Receiver<bool>,
) {
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(4096);
    if to_relay
        .send(TlspyoIn::Opened {
            conn,
            tx: tx.clone(),
        })
        .await
        .is_err()
    {
        return;
    }
    tracing::debug!(%peer, conn, "tlspyo endpoint connected");
    let writer = tokio::spawn(write_loop(wr, rx, cfg.header_size));
    let max = (cfg.max_frame as u64).min(wire::max_body_for_header(cfg.header_size)) as usize;
    let mut reader = FrameReader::new(cfg.header_size, Some(&cfg.password), max);
    let why = loop {
        let n = tokio::select! {
            _ = stop.changed() => break "relay stopping".to_string(),
            r = rd.read_buf(reader.buffer_mut()) => r,
        };
        match n {
            Ok(0) => break "closed by the endpoint".into(),
            Ok(_) => {}
            Err(e) => break format!("read error: {e}"),
        }
        match frames(&mut reader, conn, &tx, &to_relay).await {
            Ok(()) => {}
            Err(WireError::WrongPassword) => {
                // tlspyo logs the wrong password; we never do.
                tracing::warn!(%peer, "tlspyo endpoint sent a wrong password; closing");
                break "wrong password".into();
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "tlspyo endpoint sent a bad frame; closing");
                break format!("bad frame: {e}");
            }
        }
    };
    tracing::debug!(%peer, conn, reason = %why, "tlspyo endpoint gone");
    let _ = to_relay.send(TlspyoIn::Closed { conn }).await;
    let _ = tx.send(TlspyoOut::Close).await;
    let _ = writer.await;
}

/// Hands every complete frame to the relay, acknowledging as tlspyo does.
async fn frames(
    reader: &mut FrameReader,
    conn: ConnId,
    tx: &mpsc::Sender<TlspyoOut>,
    to_relay: &mpsc::Sender<TlspyoIn>,
) -> Result<(), WireError> {
    while let Some(f) = reader.next_frame()? {
        if f.needs_ack() {
            // ACKs go straight to the writer: no need to cross the relay task.
            let _ = tx.send(TlspyoOut::Ack { stamp: f.stamp() }).await;
        }
        let ev = match f {
            EndpointFrame::Ack { stamp } => TlspyoIn::Ack { conn, stamp },
            EndpointFrame::Hello { groups, .. } => TlspyoIn::Hello { conn, groups },
            EndpointFrame::Obj { dest, obj, .. } => TlspyoIn::Publish { conn, dest, obj },
            EndpointFrame::Ntf { dest, .. } => TlspyoIn::Notify { conn, dest },
        };
        if to_relay.send(ev).await.is_err() {
            break;
        }
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<TlspyoOut>,
    header_size: usize,
) {
    let mut buf = Vec::with_capacity(64 << 10);
    let mut closing = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Batch what is ready into one write.
        while let Some(m) = next.take() {
            let r = match m {
                TlspyoOut::Hello { stamp } => {
                    wire::encode_relay_frame(header_size, stamp, RelayFrame::Hello, &mut buf)
                }
                TlspyoOut::Ack { stamp } => {
                    wire::encode_relay_frame(header_size, stamp, RelayFrame::Ack, &mut buf)
                }
                TlspyoOut::Obj { stamp, obj } => {
                    wire::encode_relay_frame(header_size, stamp, RelayFrame::Obj(&obj), &mut buf)
                }
                TlspyoOut::Close => {
                    closing = true;
                    Ok(())
                }
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot encode a frame for a tlspyo endpoint");
            }
            if closing || buf.len() > (256 << 10) {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !buf.is_empty() {
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            buf.clear();
        }
        if closing {
            let _ = wr.shutdown().await;
            return;
        }
    }
}
