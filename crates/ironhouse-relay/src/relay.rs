//! [`Relay`]: the server endpoints join.
//!
//! One task drives the [`RelayCore`]: it reads native endpoints from a
//! ROUTER socket (bound to any number of `tcp://`, `ipc://`, `tls://`
//! endpoints, with the socket's security) and tlspyo endpoints from the
//! tlspyo listener's connection tasks, and sends what the core outputs.
//! Sending never waits for one slow endpoint: what does not fit in its
//! queue waits in a per-connection backlog, retried on every batch and every
//! 2 ms. While backlogs hold more than [`CONGESTION_BYTES`], publishers get
//! no DONE, so their unconfirmed window fills and they wait: a slow member
//! slows the publishers rather than losing objects. Past [`BACKLOG_BYTES`]
//! (several publishers at once) a slow endpoint misses broadcasts (counted
//! and logged), never work items, whose number the core already bounds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ironhouse::{Message, Options, Socket, SocketType, TrySendError};
use tokio::sync::{mpsc, watch};

use crate::core::{ConnId, GroupPolicy, Join, Output, RelayCore, Stats};
use crate::protocol::ToRelay;
use crate::tlspyo::{self, TlspyoConfig, TlspyoIn, TlspyoOut};
use crate::Result;

/// Bytes a slow connection may have waiting in the relay before it misses
/// broadcasts.
pub const BACKLOG_BYTES: usize = 64 << 20;
/// Backlog bytes (over all connections) past which publishers stop getting
/// DONE: their unconfirmed window fills and they wait, so a slow member
/// slows its publishers instead of missing broadcasts.
pub const CONGESTION_BYTES: usize = 4 << 20;
/// Messages handled per wake-up before the relay looks at its other inputs.
const BATCH: usize = 4096;

/// Settings for a relay. Build one with [`Relay::builder`].
#[derive(Debug, Clone, Default)]
pub struct RelayBuilder {
    binds: Vec<String>,
    options: Options,
    policy: GroupPolicy,
    tlspyo: Option<TlspyoConfig>,
}

impl RelayBuilder {
    /// Listens for native endpoints here (`tcp://`, `ipc://`, `tls://`;
    /// port `*` picks a free one). Repeatable.
    pub fn bind(mut self, endpoint: impl Into<String>) -> Self {
        self.binds.push(endpoint.into());
        self
    }
    /// Socket options for the native listeners: security (CURVE server with
    /// an allow-list, PLAIN passwords over tls://), TLS certificate, limits.
    pub fn options(mut self, o: Options) -> Self {
        self.options = o;
        self
    }
    /// Which groups exist and their limits (default: any group, 1,000,000
    /// queued objects at most per group).
    pub fn groups(mut self, p: GroupPolicy) -> Self {
        self.policy = p;
        self
    }
    /// Also serve tlspyo 0.3.0 endpoints, unchanged, in the same groups.
    pub fn tlspyo(mut self, cfg: TlspyoConfig) -> Self {
        self.tlspyo = Some(cfg);
        self
    }

    /// Binds everything and starts the relay.
    ///
    /// # Errors
    /// [`crate::Error::Socket`] when a bind fails or the security settings
    /// are inconsistent; [`crate::Error::Io`] for the tlspyo listener (port in
    /// use, unreadable key or certificate).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(self) -> Result<Relay> {
        let mut options = self.options;
        options.router_notify = true;
        if options
            .linger
            .is_none_or(|l| l > Duration::from_millis(500))
        {
            options.linger = Some(Duration::from_millis(500));
        }
        // One socket carries every endpoint: room for bursts to each.
        options.send_hwm = options.send_hwm.max(100_000);
        options.recv_hwm = options.recv_hwm.max(100_000);
        options.send_hwm_bytes = options.send_hwm_bytes.max(64 << 20);
        let mut router = Socket::with_options(SocketType::Router, options);
        let mut endpoints = Vec::new();
        for b in &self.binds {
            endpoints.push(router.bind(b).await?.to_string());
        }
        let ids = Arc::new(AtomicU64::new(1));
        let (tl_tx, tl_rx) = mpsc::channel(4096);
        let (stop_tx, stop_rx) = watch::channel(false);
        let tlspyo_addr = match self.tlspyo {
            Some(cfg) => {
                Some(tlspyo::listen(cfg, ids.clone(), tl_tx.clone(), stop_rx.clone()).await?)
            }
            None => None,
        };
        let stats = Arc::new(Mutex::new(Stats::default()));
        let driver = RelayDriver {
            router,
            core: RelayCore::new(self.policy, crate::random_id()),
            ids,
            links: HashMap::new(),
            by_rid: HashMap::new(),
            backlog: HashMap::new(),
            reset_sent: HashSet::new(),
            tlspyo: tl_rx,
            _tlspyo_open: tl_tx,
            stats: stats.clone(),
            missed_broadcasts: 0,
            dest_cache: None,
            held_done: HashMap::new(),
        };
        let task = tokio::spawn(driver.run(stop_rx));
        tracing::info!(?endpoints, ?tlspyo_addr, "relay started");
        Ok(Relay {
            stop: stop_tx,
            task: Mutex::new(Some(task)),
            endpoints,
            tlspyo_addr,
            stats,
        })
    }
}

/// A running relay. Stops when [`stop`](Relay::stop) is called or it is
/// dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> ironhouse_relay::Result<()> {
/// use ironhouse_relay::{Endpoint, Relay, Wait};
/// use std::time::Duration;
/// let relay = Relay::builder().bind("tcp://127.0.0.1:*").start().await?;
/// let url = relay.endpoints()[0].clone();
/// let a = Endpoint::builder(&url).group("news").connect().await?;
/// a.wait_joined(Duration::from_secs(5)).await?;
/// a.broadcast("news", "hello").await?;
/// // The sender is a member of "news", so it receives its own broadcast.
/// let got: Vec<String> = a.pop(1, Wait::For(Duration::from_secs(5))).await?;
/// assert_eq!(got, ["hello"]);
/// a.stop().await;
/// relay.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    endpoints: Vec<String>,
    tlspyo_addr: Option<SocketAddr>,
    stats: Arc<Mutex<Stats>>,
}

impl Relay {
    /// Settings for a new relay.
    pub fn builder() -> RelayBuilder {
        RelayBuilder::default()
    }

    /// The native endpoints actually bound (ports resolved).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The tlspyo listener's address, if any.
    pub fn tlspyo_addr(&self) -> Option<SocketAddr> {
        self.tlspyo_addr
    }

    /// Counters (updated after each batch of work).
    pub fn stats(&self) -> Stats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops listening and closes every connection; returns within about a
    /// second whatever the endpoints do.
    ///
    /// # Cancel safety
    /// Cancel safe: the relay stops anyway.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A connection as the relay reaches it.
#[derive(Debug)]
enum Link {
    Native(Bytes),
    Tlspyo(TlspyoLink),
}

#[derive(Debug)]
struct TlspyoLink {
    tx: mpsc::Sender<TlspyoOut>,
    next_stamp: u64,
    /// Stamps of work items sent, with their delivery ids, oldest first.
    items: VecDeque<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Backlog {
    queue: VecDeque<Output>,
    bytes: usize,
}

struct RelayDriver {
    router: Socket,
    core: RelayCore,
    ids: Arc<AtomicU64>,
    links: HashMap<ConnId, Link>,
    by_rid: HashMap<Bytes, ConnId>,
    backlog: HashMap<ConnId, Backlog>,
    /// Unknown connections already told to say HELLO (once is enough).
    reset_sent: HashSet<ConnId>,
    tlspyo: mpsc::Receiver<TlspyoIn>,
    /// Keeps the tlspyo channel open even without a tlspyo listener: a
    /// closed channel would make its branch ready forever and spin the loop.
    _tlspyo_open: mpsc::Sender<TlspyoIn>,
    stats: Arc<Mutex<Stats>>,
    missed_broadcasts: u64,
    /// Cumulative DONEs held back while congested, per connection.
    held_done: HashMap<ConnId, u64>,
    /// The last OBJ destination frame and its decoding.
    dest_cache: Option<(Bytes, Vec<(String, i64)>)>,
}

fn payload_len(o: &Output) -> usize {
    match o {
        Output::Broadcast { payload, .. } | Output::Item { payload, .. } => payload.len(),
        Output::Broadcasts { objects, .. } => objects.bytes().len(),
        _ => 64,
    }
}

impl RelayDriver {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let backlog = !self.backlog.is_empty() || !self.held_done.is_empty();
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                m = self.router.recv() => {
                    let Ok(m) = m else { break };
                    self.native(m);
                    for _ in 0..BATCH {
                        match self.router.try_recv() {
                            Ok(Some(m)) => self.native(m),
                            _ => break,
                        }
                    }
                    self.after_batch();
                }
                ev = self.tlspyo.recv() => {
                    let Some(ev) = ev else { continue };
                    self.tlspyo_event(ev);
                    for _ in 0..BATCH {
                        match self.tlspyo.try_recv() {
                            Ok(ev) => self.tlspyo_event(ev),
                            Err(_) => break,
                        }
                    }
                    self.after_batch();
                }
                // (An async block: the timer is only made when the branch runs.)
                () = async { tokio::time::sleep(Duration::from_millis(2)).await }, if backlog => {
                    self.retry_backlog();
                }
            }
        }
        for link in self.links.values() {
            if let Link::Tlspyo(t) = link {
                let _ = t.tx.try_send(TlspyoOut::Close);
            }
        }
        // Endpoints resend what they did not see confirmed; a short linger
        // (set in `start`) is enough.
        self.router.close().await;
    }

    fn after_batch(&mut self) {
        self.core.flush_done();
        // A busy relay may not reach its retry timer: older waiting
        // output goes first, on every batch.
        if !self.backlog.is_empty() || !self.held_done.is_empty() {
            self.retry_backlog();
        }
        // Counters first: whoever sees an output's effect sees them too.
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = self.core.stats();
        self.send_outputs();
    }

    fn native(&mut self, mut m: Message) {
        let Some(rid) = m.pop_front() else { return };
        let f = m.frames();
        if f.len() == 1 && f[0].is_empty() {
            // ROUTER notify: arrival or departure.
            match self.by_rid.remove(&rid) {
                Some(conn) => {
                    self.links.remove(&conn);
                    self.backlog.remove(&conn);
                    self.held_done.remove(&conn);
                    self.reset_sent.remove(&conn);
                    self.core.leave(conn);
                }
                None => {
                    let conn = self.ids.fetch_add(1, Ordering::Relaxed);
                    self.by_rid.insert(rid.clone(), conn);
                    self.links.insert(conn, Link::Native(rid));
                }
            }
            return;
        }
        let Some(&conn) = self.by_rid.get(&rid) else {
            return;
        };
        // The hot path: OBJ or OBJS with the same destination as the last
        // one is taken without decoding the destination again.
        if let [cmd, seq, dest, payload] = f {
            let batch = &cmd[..] == b"OBJS";
            if batch || &cmd[..] == b"OBJ" {
                if let Ok(seq) = <[u8; 8]>::try_from(&seq[..]).map(u64::from_be_bytes) {
                    if self.dest_cache.as_ref().is_none_or(|(b, _)| b != dest) {
                        match crate::protocol::decode_dest(dest) {
                            Ok(d) => self.dest_cache = Some((dest.clone(), d)),
                            Err(e) => {
                                tracing::debug!(conn, error = %e, "ignored an OBJ with a bad destination");
                                return;
                            }
                        }
                    }
                    let (_, d) = self.dest_cache.as_ref().expect("set above");
                    if !batch {
                        self.core.publish(conn, seq, d, payload.clone());
                        return;
                    }
                    match crate::protocol::batch_objects(seq, payload) {
                        Ok(objects) => self.core.publish_batch(conn, seq, d, objects),
                        Err(e) => tracing::debug!(conn, error = %e, "ignored a malformed OBJS"),
                    }
                    return;
                }
            }
        }
        match ToRelay::decode(&m) {
            Ok(ToRelay::Hello(h)) => {
                self.reset_sent.remove(&conn);
                self.core.join(
                    conn,
                    Join {
                        session: Some(h.session),
                        groups: h.groups,
                        epoch: h.epoch,
                        seen: h.seen,
                        credit: h.credit,
                        batch: h.batch,
                    },
                );
            }
            Ok(ToRelay::Publish { seq, dest, payload }) => {
                self.core.publish(conn, seq, &dest, payload)
            }
            Ok(ToRelay::PublishBatch {
                first_seq,
                dest,
                objects,
            }) => self.core.publish_batch(conn, first_seq, &dest, objects),
            Ok(ToRelay::Notify(credit)) => self.core.notify(conn, &credit),
            Ok(ToRelay::Ack(upto)) => self.core.ack(conn, upto),
            Err(e) => tracing::debug!(conn, error = %e, "ignored a malformed message"),
        }
    }

    fn tlspyo_event(&mut self, ev: TlspyoIn) {
        match ev {
            TlspyoIn::Opened { conn, tx } => {
                let mut link = TlspyoLink {
                    tx,
                    next_stamp: 1,
                    items: VecDeque::new(),
                };
                let stamp = link.stamp();
                let _ = link.tx.try_send(TlspyoOut::Hello { stamp });
                self.links.insert(conn, Link::Tlspyo(link));
            }
            TlspyoIn::Hello { conn, groups } => self.core.join(
                conn,
                Join {
                    groups,
                    ..Join::default()
                },
            ),
            TlspyoIn::Publish { conn, dest, obj } => self.core.publish(conn, 0, &dest, obj),
            TlspyoIn::Notify { conn, dest } => self.core.notify(conn, &dest),
            TlspyoIn::Ack { conn, stamp } => {
                let Some(Link::Tlspyo(link)) = self.links.get_mut(&conn) else {
                    return;
                };
                let mut upto = None;
                while link.items.front().is_some_and(|(s, _)| *s <= stamp) {
                    upto = link.items.pop_front().map(|(_, id)| id);
                }
                if let Some(id) = upto {
                    self.core.ack(conn, id);
                }
            }
            TlspyoIn::Closed { conn } => {
                self.links.remove(&conn);
                self.backlog.remove(&conn);
                self.core.leave(conn);
            }
        }
    }

    fn backlog_bytes(&self) -> usize {
        self.backlog.values().map(|b| b.bytes).sum()
    }

    fn send_outputs(&mut self) {
        let mut congested = self.backlog_bytes() > CONGESTION_BYTES;
        while let Some((conn, out)) = self.core.poll_output() {
            if let Output::Done(seq) = out {
                if congested {
                    let held = self.held_done.entry(conn).or_default();
                    *held = (*held).max(seq);
                    continue;
                }
            }
            if let Some(b) = self.backlog.get_mut(&conn) {
                // Keep order behind what is already waiting.
                Self::push_backlog(b, out, &mut self.missed_broadcasts);
                continue;
            }
            if let Err(out) = self.send_one(conn, out) {
                congested = self.queue_in_backlog(conn, out) > CONGESTION_BYTES || congested;
            }
        }
    }

    /// Sends the DONEs held back while the relay was congested.
    fn release_done(&mut self) {
        if self.held_done.is_empty() || self.backlog_bytes() > CONGESTION_BYTES {
            return;
        }
        for (conn, seq) in std::mem::take(&mut self.held_done) {
            if let Err(out) = self.send_one(conn, Output::Done(seq)) {
                self.queue_in_backlog(conn, out);
            }
        }
    }

    /// Queues an output that did not fit; returns the connection's backlog bytes.
    fn queue_in_backlog(&mut self, conn: ConnId, out: Output) -> usize {
        let b = self.backlog.entry(conn).or_default();
        Self::push_backlog(b, out, &mut self.missed_broadcasts);
        b.bytes
    }

    fn push_backlog(b: &mut Backlog, out: Output, missed: &mut u64) {
        let len = payload_len(&out);
        let broadcasts = match &out {
            Output::Broadcast { .. } => 1,
            Output::Broadcasts { objects, .. } => objects.count() as u64,
            _ => 0,
        };
        if broadcasts > 0 && b.bytes + len > BACKLOG_BYTES {
            let before = *missed;
            *missed += broadcasts;
            // Logged when the count crosses a power of two.
            if (before + 1).next_power_of_two() <= *missed {
                tracing::warn!(
                    missed = *missed,
                    "a slow endpoint missed broadcasts (its backlog is full)"
                );
            }
            return;
        }
        b.bytes += len;
        b.queue.push_back(out);
    }

    fn retry_backlog(&mut self) {
        let conns: Vec<ConnId> = self.backlog.keys().copied().collect();
        for conn in conns {
            let Some(mut b) = self.backlog.remove(&conn) else {
                continue;
            };
            while let Some(out) = b.queue.pop_front() {
                let len = payload_len(&out);
                match self.send_one(conn, out) {
                    Ok(()) => b.bytes -= len,
                    Err(out) => {
                        b.queue.push_front(out);
                        break;
                    }
                }
            }
            if !b.queue.is_empty() {
                self.backlog.insert(conn, b);
            }
        }
        self.release_done();
    }

    /// Sends now, or gives the output back when the connection's queue is
    /// full. Outputs for vanished connections are dropped.
    fn send_one(&mut self, conn: ConnId, out: Output) -> Result<(), Output> {
        match self.links.get_mut(&conn) {
            None => Ok(()),
            Some(Link::Native(rid)) => {
                if matches!(out, Output::Reset) && !self.reset_sent.insert(conn) {
                    return Ok(());
                }
                let mut m = out.encode();
                m.push_front(rid.clone());
                match self.router.try_send(m) {
                    Ok(()) | Err(TrySendError::Unreachable(_)) => Ok(()),
                    Err(TrySendError::Full(_)) => Err(out),
                    Err(e) => {
                        tracing::debug!(error = %e, "relay socket cannot send");
                        Ok(())
                    }
                }
            }
            Some(Link::Tlspyo(link)) => {
                let msg = match &out {
                    Output::Broadcast { payload, .. } => {
                        let stamp = link.stamp();
                        TlspyoOut::Obj {
                            stamp,
                            obj: payload.clone(),
                        }
                    }
                    Output::Item { id, payload, .. } => {
                        let stamp = link.stamp();
                        link.items.push_back((stamp, *id));
                        TlspyoOut::Obj {
                            stamp,
                            obj: payload.clone(),
                        }
                    }
                    Output::Reject(reason) => {
                        tracing::warn!(conn, %reason, "tlspyo endpoint rejected");
                        TlspyoOut::Close
                    }
                    Output::Fail { reason, .. } => {
                        tracing::warn!(conn, %reason, "object from a tlspyo endpoint refused");
                        return Ok(());
                    }
                    // tlspyo endpoints join without `batch`: the core sends
                    // them one Broadcast per object instead.
                    Output::Broadcasts { .. } => {
                        debug_assert!(false, "a batch for a tlspyo endpoint");
                        return Ok(());
                    }
                    Output::Welcome { .. } | Output::Done(_) | Output::Reset => return Ok(()),
                };
                match link.tx.try_send(msg) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // The stamp is used; the item's mapping must not stay.
                        if let Output::Item { id, .. } = &out {
                            if link.items.back().is_some_and(|(_, i)| i == id) {
                                link.items.pop_back();
                            }
                        }
                        link.next_stamp -= 1;
                        Err(out)
                    }
                }
            }
        }
    }
}

impl TlspyoLink {
    fn stamp(&mut self) -> u64 {
        let s = self.next_stamp;
        self.next_stamp += 1;
        s
    }
}
