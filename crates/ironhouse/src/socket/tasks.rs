//! The background tasks of a socket: a listener per bound endpoint (one
//! session task per accepted peer) and a connector per connected endpoint
//! (which reconnects with jittered exponential backoff).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::pipe::Pipe;
use ironhouse_zmtp::Message;
use tokio::time::Instant;

use super::peers::{Outbound, PeerId, Shared};
use crate::endpoint::Endpoint;
use crate::monitor::SocketEvent;
use crate::session::{self, End};
use crate::transport::{self, Conn, Incoming, Listener};

/// Knows when every task of a socket has finished: each task holds a guard
/// (a sender clone); when all are dropped, the receiver sees the end.
#[derive(Debug)]
pub(super) struct Tracker {
    tx: Option<mpsc::Sender<()>>,
    rx: mpsc::Receiver<()>,
}

/// Held by a running task.
#[derive(Debug, Clone)]
pub(super) struct Guard(#[allow(dead_code)] mpsc::Sender<()>);

impl Tracker {
    pub(super) fn new() -> Self {
        let (tx, rx) = mpsc::channel(1);
        Tracker { tx: Some(tx), rx }
    }

    pub(super) fn guard(&self) -> Guard {
        Guard(self.tx.clone().expect("guards are only taken before close"))
    }

    /// Waits until every guard is dropped.
    pub(super) async fn wait(&mut self) {
        self.tx = None;
        while self.rx.recv().await.is_some() {}
    }
}

fn log_end(shared: &Shared, peer: &str, end: &End) {
    match end {
        End::Handshake(e) => {
            tracing::warn!(peer, socket = %shared.kind, "handshake failed: {e}");
            shared.emit(SocketEvent::HandshakeFailed {
                peer: peer.to_string(),
                reason: e.to_string(),
            });
        }
        End::Failed(e) => {
            tracing::warn!(peer, socket = %shared.kind, "connection closed: {e}");
            shared.emit(SocketEvent::Disconnected {
                peer: peer.to_string(),
                reason: Some(e.to_string()),
            });
        }
        End::PeerClosed | End::SocketClosed => {
            tracing::debug!(peer, "disconnected");
            shared.emit(SocketEvent::Disconnected {
                peer: peer.to_string(),
                reason: end.reason(),
            });
        }
    }
}

pub(super) fn spawn_listener(shared: Arc<Shared>, listener: Listener, guard: Guard) {
    tokio::spawn(async move {
        let mut closing = shared.closing.subscribe();
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok(incoming) => {
                        tokio::spawn(accepted(shared.clone(), incoming, guard.clone()));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = closed(&mut closing) => break,
            }
        }
        // The listener (and an ipc socket file) must be gone before close() returns.
        drop(listener);
        drop(guard);
    });
}

async fn accepted(shared: Arc<Shared>, incoming: Incoming, guard: Guard) {
    let peer = incoming.peer().to_string();
    // The TLS handshake (if any) runs here, not in the accept loop.
    let mut closing = shared.closing.subscribe();
    let conn = tokio::select! {
        r = incoming.establish() => match r {
            Ok(conn) => conn,
            Err(e) => {
                log_end(&shared, &peer, &End::Handshake(e.into()));
                return;
            }
        },
        () = closed(&mut closing) => return,
    };
    if *closing.borrow() {
        return;
    }
    let (id, pipe, inbox) = shared.add_peer();
    let (end, _) = session::run(conn, &pipe, &inbox, &shared, id).await;
    // An accepted peer's queue dies with its connection, as in ZeroMQ.
    shared.deactivate(id, true);
    log_end(&shared, &peer, &end);
    drop(guard);
}

pub(super) fn spawn_connector(
    shared: Arc<Shared>,
    ep: Endpoint,
    first: Option<Conn>,
    guard: Guard,
) {
    let (id, pipe, inbox) = shared.add_peer();
    tokio::spawn(connector(shared, ep, first, id, pipe, inbox, guard));
}

async fn connector(
    shared: Arc<Shared>,
    ep: Endpoint,
    mut first: Option<Conn>,
    id: PeerId,
    pipe: Arc<Pipe<Outbound>>,
    inbox: Arc<Pipe<Message>>,
    guard: Guard,
) {
    let opts = &shared.options;
    let mut closing = shared.closing.subscribe();
    let mut delay = opts.reconnect_interval;
    let mut linger_deadline: Option<Instant> = None;
    let endpoint = ep.to_string();
    loop {
        if *closing.borrow() {
            // Closing: keep trying only while messages wait and linger allows.
            if pipe.is_empty() || opts.linger.is_some_and(|l| l.is_zero()) {
                break;
            }
            let deadline = *linger_deadline.get_or_insert_with(|| {
                opts.linger
                    .map_or(Instant::now() + Duration::from_secs(u32::MAX.into()), |l| {
                        Instant::now() + l
                    })
            });
            if Instant::now() >= deadline {
                break;
            }
        }
        let attempt = match first.take() {
            Some(c) => Ok(c),
            None => tokio::select! {
                r = transport::connect(&ep, opts) => r,
                () = closed(&mut closing), if linger_deadline.is_none() && !*closing.borrow() => continue,
            },
        };
        match attempt {
            Ok(conn) => {
                let peer = conn.peer.clone();
                let (end, was_active) = session::run(conn, &pipe, &inbox, &shared, id).await;
                shared.deactivate(id, false);
                log_end(&shared, &peer, &end);
                if matches!(end, End::SocketClosed) {
                    break;
                }
                if was_active {
                    delay = opts.reconnect_interval;
                }
            }
            Err(e) => {
                tracing::debug!(endpoint, "connect failed: {e}");
                shared.emit(SocketEvent::ConnectFailed {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                });
            }
        }
        let wait = jitter(delay);
        delay = (delay * 2).min(opts.reconnect_interval_max);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = closed(&mut closing), if !*closing.borrow() => {}
        }
    }
    shared.deactivate(id, true);
    drop(guard);
}

/// Resolves once the socket starts closing.
async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    // Dropping the borrow guard here keeps the callers' futures `Send`.
    let _ = closing.wait_for(|c| *c).await;
}

/// Spreads reconnections of many clients over time: 75–125 % of `d`.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let r = (h.finish() % 1000) as u32; // 0..999
    d * (750 + r / 2) / 1000
}
