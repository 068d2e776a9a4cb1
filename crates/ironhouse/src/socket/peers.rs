//! The peer table shared by a socket and its connection tasks: who is
//! connected, their send queues, routing ids and subscriptions.
//!
//! One `std::sync::Mutex` guards it; it is never held across an await.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use ironhouse_zmtp::{Message, PeerInfo, SocketType};
use tokio::sync::{broadcast, watch};

use crate::pipe::Pipe;

use crate::monitor::SocketEvent;
use crate::{Error, Options};

/// A connection's id inside one socket (never reused).
pub(crate) type PeerId = u64;

/// What a socket asks a connection task to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A message, already stripped of routing frames.
    Message(Message),
    /// A subscription (SUB/XSUB side).
    Subscribe(Bytes),
    /// A cancelled subscription.
    Cancel(Bytes),
}

impl crate::pipe::Weigh for Outbound {
    fn weight(&self) -> usize {
        match self {
            Outbound::Message(m) => m.size(),
            Outbound::Subscribe(p) | Outbound::Cancel(p) => p.len(),
        }
    }
}

/// Prefix subscriptions with reference counts (subscribing twice needs two
/// cancels, as in ZeroMQ).
#[derive(Debug, Default, Clone)]
pub(crate) struct Subscriptions {
    items: Vec<(Bytes, usize)>,
}

impl Subscriptions {
    /// Adds one reference; true if the prefix is new.
    pub(crate) fn add(&mut self, prefix: &[u8]) -> bool {
        match self.items.iter_mut().find(|(p, _)| p == prefix) {
            Some((_, n)) => {
                *n += 1;
                false
            }
            None => {
                self.items.push((Bytes::copy_from_slice(prefix), 1));
                true
            }
        }
    }

    /// Drops one reference; true if the prefix is now gone.
    pub(crate) fn remove(&mut self, prefix: &[u8]) -> bool {
        if let Some(i) = self.items.iter().position(|(p, _)| p == prefix) {
            self.items[i].1 -= 1;
            if self.items[i].1 == 0 {
                self.items.swap_remove(i);
                return true;
            }
        }
        false
    }

    /// Whether any prefix matches the start of `topic`.
    pub(crate) fn matches(&self, topic: &[u8]) -> bool {
        self.items.iter().any(|(p, _)| topic.starts_with(p))
    }

    /// Every prefix once.
    pub(crate) fn prefixes(&self) -> impl Iterator<Item = &Bytes> {
        self.items.iter().map(|(p, _)| p)
    }
}

/// One peer (or, for a connected endpoint, one persistent pipe that survives
/// reconnections).
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: PeerId,
    /// This peer's send queue (the session consumes it).
    pub(crate) tx: Arc<Pipe<Outbound>>,
    /// Messages received from this peer (the socket consumes it). One queue
    /// per peer lets the socket take turns between peers, message by message.
    pub(crate) inbox: Arc<Pipe<Message>>,
    /// Handshake complete and not yet disconnected.
    pub(crate) active: bool,
    pub(crate) routing_id: Bytes,
    /// What this peer subscribed to (PUB/XPUB side).
    pub(crate) subs: Subscriptions,
}

#[derive(Debug, Default)]
pub(crate) struct Peers {
    pub(crate) list: Vec<Peer>,
    /// Round-robin position for load-balancing.
    pub(crate) cursor: usize,
    /// What this socket subscribed to (SUB/XSUB side).
    pub(crate) subscriptions: Subscriptions,
    next_routing_id: u32,
}

impl Peers {
    pub(crate) fn get(&self, id: PeerId) -> Option<&Peer> {
        self.list.iter().find(|p| p.id == id)
    }
    pub(crate) fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.list.iter_mut().find(|p| p.id == id)
    }
}

/// State shared between a [`Socket`](crate::Socket) and its tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) kind: SocketType,
    pub(crate) options: Options,
    peers: Mutex<Peers>,
    /// Bumped whenever a peer becomes active or inactive.
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) events: broadcast::Sender<SocketEvent>,
    pub(crate) closing: watch::Sender<bool>,
    next_peer_id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(kind: SocketType, options: Options) -> Self {
        Shared {
            kind,
            options,
            peers: Mutex::new(Peers {
                next_routing_id: initial_routing_id(),
                ..Peers::default()
            }),
            changed: watch::channel(0).0,
            events: broadcast::channel(256).0,
            closing: watch::channel(false).0,
            next_peer_id: AtomicU64::new(1),
        }
    }

    pub(crate) fn peers(&self) -> MutexGuard<'_, Peers> {
        // A panic while holding this lock would be a bug in this crate; the
        // table itself stays consistent, so keep going.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn emit(&self, event: SocketEvent) {
        let _ = self.events.send(event);
    }

    /// Whether peers' arrivals and departures are announced (ROUTER only).
    fn notifies(&self) -> bool {
        self.kind == SocketType::Router && self.options.router_notify
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Adds an inactive peer with a fresh send queue; returns its id and queue.
    pub(crate) fn add_peer(&self) -> (PeerId, Arc<Pipe<Outbound>>, Arc<Pipe<Message>>) {
        let o = &self.options;
        let out = Arc::new(Pipe::new(o.send_hwm, o.send_hwm_bytes));
        let inbox = Arc::new(Pipe::new(o.recv_hwm, o.recv_hwm_bytes));
        let id = self.next_peer_id.fetch_add(1, Ordering::Relaxed);
        self.peers().list.push(Peer {
            id,
            tx: out.clone(),
            inbox: inbox.clone(),
            active: false,
            routing_id: Bytes::new(),
            subs: Subscriptions::default(),
        });
        (id, out, inbox)
    }

    /// Marks a peer active after its handshake. Returns its routing id and the
    /// subscriptions to send it (SUB side).
    pub(crate) fn activate(
        &self,
        id: PeerId,
        info: &PeerInfo,
    ) -> Result<(Bytes, Vec<Bytes>), Error> {
        let mut peers = self.peers();
        if self.kind == SocketType::Pair && peers.list.iter().any(|p| p.active && p.id != id) {
            return Err(Error::WrongState(
                "PAIR socket already has a peer; refusing a second connection",
            ));
        }
        let routing_id = match &info.identity {
            Some(want)
                if self.kind == SocketType::Router
                    && !peers.list.iter().any(|p| p.active && p.routing_id == want) =>
            {
                want.clone()
            }
            _ => {
                // libzmq's form: a zero byte (reserved for generated ids) and a counter.
                let n = peers.next_routing_id;
                peers.next_routing_id = n.wrapping_add(1);
                let mut id = vec![0u8];
                id.extend_from_slice(&n.to_be_bytes());
                Bytes::from(id)
            }
        };
        let subs: Vec<Bytes> = peers.subscriptions.prefixes().cloned().collect();
        let peer = peers.get_mut(id).ok_or(Error::Closed)?;
        peer.active = true;
        peer.routing_id = routing_id.clone();
        peer.subs = Subscriptions::default();
        if self.notifies() {
            let _ = peer.inbox.push_control(notification(&routing_id));
        }
        drop(peers);
        self.bump();
        Ok((routing_id, subs))
    }

    /// Marks a peer inactive, and removes it when its queue dies with it.
    pub(crate) fn deactivate(&self, id: PeerId, remove: bool) {
        let mut peers = self.peers();
        if self.notifies() {
            if let Some(p) = peers.get(id).filter(|p| p.active) {
                // Queued behind everything this peer sent.
                let _ = p.inbox.push_control(notification(&p.routing_id));
            }
        }
        if remove {
            if let Some(i) = peers.list.iter().position(|p| p.id == id) {
                let p = peers.list.remove(i);
                // Nobody will drain its send queue again: release senders
                // waiting on it. Its received messages stay readable.
                p.tx.close_consumer();
                p.inbox.close_producers();
            }
        } else if let Some(p) = peers.get_mut(id) {
            p.active = false;
            p.subs = Subscriptions::default();
        }
        drop(peers);
        self.bump();
    }

    /// Closes every send queue (the socket is closing): sessions deliver what
    /// is queued, then end.
    pub(crate) fn clear(&self) {
        for p in self.peers().list.drain(..) {
            p.tx.close_producers();
            p.inbox.close_consumer();
        }
        self.bump();
    }
}

/// The ROUTER_NOTIFY message: the routing id, then an empty frame.
fn notification(routing_id: &Bytes) -> Message {
    let mut m = Message::new();
    m.push_back(routing_id.clone());
    m.push_back(Bytes::new());
    m
}

fn initial_routing_id() -> u32 {
    // libzmq starts generated routing ids at a random value; any varying seed will do.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_count_and_match() {
        let mut s = Subscriptions::default();
        assert!(!s.matches(b"anything"));
        assert!(s.add(b"ab"));
        assert!(!s.add(b"ab"));
        assert!(s.matches(b"abc") && !s.matches(b"a"));
        assert!(!s.remove(b"ab"));
        assert!(s.matches(b"ab"));
        assert!(s.remove(b"ab"));
        assert!(!s.matches(b"ab"));
        s.add(b"");
        assert!(s.matches(b"") && s.matches(b"x"));
    }
}
