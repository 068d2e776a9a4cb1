//! [`Endpoint`]: a member of groups at a relay.
//!
//! An endpoint connects (over any ironhouse transport and security), joins
//! its groups, and from then on:
//! - [`broadcast`](Endpoint::broadcast) sends an object to every member of a
//!   group; the relay keeps the last one for members that join later;
//! - [`produce`](Endpoint::produce) puts an object in a group's work queue;
//! - [`notify`](Endpoint::notify) asks for work: `n > 0` adds credit for `n`
//!   objects, `n < 0` takes everything queued now;
//! - what arrives lands in a local queue, read with
//!   [`receive_all`](Endpoint::receive_all), [`pop`](Endpoint::pop) and
//!   [`get_last`](Endpoint::get_last).
//!
//! Delivery: publishes are numbered and resent after a reconnect until the
//! relay confirms them (each taken once); work items are acknowledged on
//! arrival and requeued by the relay if this endpoint disconnects first, so
//! an item can arrive twice but is never lost (at-least-once). Unused
//! credit and the last broadcast seen are restated on every reconnect, so
//! credit survives and a kept broadcast is not received twice.

mod driver;
mod queue;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ironhouse::{Options, Socket, SocketType};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch, Notify};

use crate::codec::{Codec, MsgPack};
use crate::{Error, Result};
use driver::{Command, Driver};
use queue::LocalQueue;
pub use queue::{Kind, Received, Wait};

/// Where an object goes: per group, `n < 0` broadcasts, `n > 0` queues `n`
/// copies for consumers, `0` only creates the group (tlspyo's rules).
///
/// A group name or a list of names means broadcast to each:
/// ```
/// use ironhouse_relay::Destination;
/// let d: Destination = "news".into();
/// assert_eq!(d.groups(), &[("news".to_string(), -1)]);
/// let d: Destination = vec![("work", 3), ("news", -1)].into();
/// assert_eq!(d.groups().len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination(Vec<(String, i64)>);

impl Destination {
    /// Group → n, in order.
    pub fn groups(&self) -> &[(String, i64)] {
        &self.0
    }
}

impl From<&str> for Destination {
    fn from(g: &str) -> Self {
        Destination(vec![(g.to_owned(), -1)])
    }
}
impl From<String> for Destination {
    fn from(g: String) -> Self {
        Destination(vec![(g, -1)])
    }
}
impl From<&[&str]> for Destination {
    fn from(gs: &[&str]) -> Self {
        Destination(gs.iter().map(|g| ((*g).to_owned(), -1)).collect())
    }
}
impl From<Vec<&str>> for Destination {
    fn from(gs: Vec<&str>) -> Self {
        gs.as_slice().into()
    }
}
impl From<Vec<String>> for Destination {
    fn from(gs: Vec<String>) -> Self {
        Destination(gs.into_iter().map(|g| (g, -1)).collect())
    }
}
impl From<Vec<(&str, i64)>> for Destination {
    fn from(m: Vec<(&str, i64)>) -> Self {
        Destination(m.into_iter().map(|(g, n)| (g.to_owned(), n)).collect())
    }
}
impl From<Vec<(String, i64)>> for Destination {
    fn from(m: Vec<(String, i64)>) -> Self {
        Destination(m)
    }
}
impl From<HashMap<String, i64>> for Destination {
    fn from(m: HashMap<String, i64>) -> Self {
        Destination(m.into_iter().collect())
    }
}
impl From<BTreeMap<String, i64>> for Destination {
    fn from(m: BTreeMap<String, i64>) -> Self {
        Destination(m.into_iter().collect())
    }
}

/// Where an endpoint stands with its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Not connected yet.
    Connecting,
    /// Connected; HELLO sent, waiting for WELCOME.
    Joining,
    /// Member of its groups.
    Joined,
    /// The connection dropped; retrying with backoff.
    Reconnecting,
    /// The relay refused it (the reason); it will not retry.
    Rejected(String),
    /// [`Endpoint::stop`] was called.
    Stopped,
}

/// Something that happened to an endpoint's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointEvent {
    /// A transport connection and ZMTP handshake succeeded.
    Connected {
        /// The relay's address.
        peer: String,
    },
    /// The relay accepted the endpoint into its groups.
    Joined,
    /// The connection dropped.
    Disconnected {
        /// The relay's address.
        peer: String,
        /// Why, if known.
        reason: Option<String>,
    },
    /// A connection attempt failed (refused, unreachable).
    ConnectFailed {
        /// The relay's endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The security handshake failed (wrong key, password, certificate).
    HandshakeFailed {
        /// The relay's address.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The relay refused to let it join.
    Rejected {
        /// The relay's reason.
        reason: String,
    },
    /// The relay refused an object.
    Refused {
        /// The relay's reason.
        reason: String,
    },
}

/// Publishes sent but not yet confirmed by the relay.
#[derive(Debug, Default)]
struct Flow {
    count: usize,
    bytes: usize,
    refused: Option<String>,
}

#[derive(Debug)]
struct Shared {
    queue: LocalQueue,
    state: watch::Sender<ConnectionState>,
    events: broadcast::Sender<EndpointEvent>,
    flow: Mutex<Flow>,
    flow_changed: Notify,
}

impl Shared {
    fn set_state(&self, s: ConnectionState) {
        self.state.send_if_modified(|cur| {
            // A rejection or a stop is final (a rejected endpoint stops
            // itself, and keeps saying why).
            if matches!(cur, ConnectionState::Stopped | ConnectionState::Rejected(_)) || *cur == s {
                return false;
            }
            *cur = s;
            true
        });
    }

    fn emit(&self, e: EndpointEvent) {
        let _ = self.events.send(e);
    }

    fn flow(&self) -> std::sync::MutexGuard<'_, Flow> {
        self.flow.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn confirmed(&self, n: usize, bytes: usize, refused: Option<String>) {
        let mut f = self.flow();
        f.count = f.count.saturating_sub(n);
        f.bytes = f.bytes.saturating_sub(bytes);
        if refused.is_some() && f.refused.is_none() {
            f.refused = refused;
        }
        drop(f);
        self.flow_changed.notify_waiters();
    }
}

/// How an endpoint connects and behaves. Build one with
/// [`Endpoint::builder`].
#[derive(Debug, Clone)]
pub struct EndpointBuilder {
    relay: String,
    groups: Vec<String>,
    options: Options,
    queue_capacity: usize,
    max_unconfirmed: usize,
    max_unconfirmed_bytes: usize,
    send_timeout: Option<Duration>,
}

impl EndpointBuilder {
    /// Joins this group too (an endpoint needs at least one).
    pub fn group(mut self, g: impl Into<String>) -> Self {
        self.groups.push(g.into());
        self
    }
    /// Joins these groups too.
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, gs: I) -> Self {
        self.groups.extend(gs.into_iter().map(Into::into));
        self
    }
    /// Socket options: security (CURVE, PLAIN over tls://), TLS trust,
    /// reconnect backoff, heartbeats. The defaults reconnect after 100 ms
    /// then back off (jittered) to 5 s.
    pub fn options(mut self, o: Options) -> Self {
        self.options = o;
        self
    }
    /// Most objects held in the local queue (default 65,536); beyond it the
    /// oldest broadcast is dropped (work items never are).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }
    /// Most publishes (and bytes) sent but not yet confirmed by the relay,
    /// including those buffered while disconnected (default 100,000 objects,
    /// 32 MiB). A send waits for room. Keep the bytes well under the relay's
    /// per-connection backlog (64 MiB): the relay slows publishers by holding
    /// their confirmations, which only works while this window is smaller.
    pub fn max_unconfirmed(mut self, objects: usize, bytes: usize) -> Self {
        self.max_unconfirmed = objects.max(1);
        self.max_unconfirmed_bytes = bytes;
        self
    }
    /// How long a send may wait for room before failing with
    /// [`Error::Timeout`] (default 30 s; `None` waits forever).
    pub fn send_timeout(mut self, t: Option<Duration>) -> Self {
        self.send_timeout = t;
        self
    }

    /// Starts the endpoint with the [`MsgPack`] codec. Returns at once; the
    /// connection is made in the background (see [`Endpoint::state`] and
    /// [`Endpoint::wait_joined`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] without a group, [`Error::Socket`] for a bad
    /// relay URL or security settings.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn connect(self) -> Result<Endpoint<MsgPack>> {
        self.connect_with(MsgPack).await
    }

    /// Starts the endpoint with another codec.
    ///
    /// # Errors
    /// As [`connect`](EndpointBuilder::connect).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn connect_with<C: Codec>(self, codec: C) -> Result<Endpoint<C>> {
        if self.groups.is_empty() {
            return Err(Error::Invalid(
                "an endpoint must join at least one group".into(),
            ));
        }
        let mut options = self.options;
        // Unconfirmed publishes live in the driver; a short linger is enough.
        if options
            .linger
            .is_none_or(|l| l > Duration::from_millis(500))
        {
            options.linger = Some(Duration::from_millis(500));
        }
        options.send_hwm = options.send_hwm.max(10_000);
        options.recv_hwm = options.recv_hwm.max(10_000);
        let mut socket = Socket::with_options(SocketType::Dealer, options);
        let shared = Arc::new(Shared {
            queue: LocalQueue::new(self.queue_capacity),
            state: watch::channel(ConnectionState::Connecting).0,
            events: broadcast::channel(1024).0,
            flow: Mutex::new(Flow::default()),
            flow_changed: Notify::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let mut groups = self.groups;
        groups.dedup();
        // Subscribed before connecting, so the first connection is seen.
        let monitor = socket.monitor();
        socket.connect(&self.relay).await?;
        let driver = Driver::new(
            socket,
            monitor,
            shared.clone(),
            rx,
            crate::random_id(),
            groups,
        );
        let task = tokio::spawn(driver.run());
        Ok(Endpoint {
            shared,
            commands: tx,
            task: Mutex::new(Some(task)),
            codec,
            max_unconfirmed: self.max_unconfirmed,
            max_unconfirmed_bytes: self.max_unconfirmed_bytes,
            send_timeout: self.send_timeout,
        })
    }
}

/// A member of groups at a relay. Cheap to share behind an `Arc`; every
/// method takes `&self`.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> ironhouse_relay::Result<()> {
/// use ironhouse_relay::{Endpoint, Wait};
/// let ep = Endpoint::builder("tcp://127.0.0.1:7776").group("workers").connect().await?;
/// ep.produce("workers", &("job", 42)).await?;
/// ep.notify("workers", 1).await?;
/// let jobs: Vec<(String, u32)> = ep.pop(1, Wait::For(std::time::Duration::from_secs(5))).await?;
/// ep.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Endpoint<C: Codec = MsgPack> {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    codec: C,
    max_unconfirmed: usize,
    max_unconfirmed_bytes: usize,
    send_timeout: Option<Duration>,
}

impl Endpoint<MsgPack> {
    /// Settings for an endpoint of the relay at `relay` (`tcp://`, `ipc://`,
    /// `tls://` URL).
    pub fn builder(relay: impl Into<String>) -> EndpointBuilder {
        EndpointBuilder {
            relay: relay.into(),
            groups: Vec::new(),
            options: Options::default(),
            queue_capacity: 65_536,
            max_unconfirmed: 100_000,
            max_unconfirmed_bytes: 32 << 20,
            send_timeout: Some(Duration::from_secs(30)),
        }
    }
}

impl<C: Codec> Endpoint<C> {
    /// The connection's current state.
    pub fn state(&self) -> ConnectionState {
        self.shared.state.borrow().clone()
    }

    /// Connection events from now on.
    pub fn events(&self) -> broadcast::Receiver<EndpointEvent> {
        self.shared.events.subscribe()
    }

    /// Waits until the relay has accepted this endpoint.
    ///
    /// # Errors
    /// [`Error::Rejected`] with the relay's reason, [`Error::Timeout`],
    /// [`Error::Stopped`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn wait_joined(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.state.subscribe();
        let wait = async {
            loop {
                match &*rx.borrow_and_update() {
                    ConnectionState::Joined => return Ok(()),
                    ConnectionState::Rejected(r) => return Err(Error::Rejected(r.clone())),
                    ConnectionState::Stopped => return Err(Error::Stopped),
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(Error::Stopped);
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Error::Timeout(format!(
                "not joined after {timeout:?} (state: {:?})",
                self.state()
            ))
        })?
    }

    /// Sends an object to every member of `group`; the relay keeps it as
    /// the group's last broadcast.
    ///
    /// # Errors
    /// See [`send_bytes`](Endpoint::send_bytes); [`Error::Codec`].
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled while waiting for room, nothing was sent.
    pub async fn broadcast<T: Serialize + ?Sized>(&self, group: &str, obj: &T) -> Result<()> {
        self.send_object(obj, group).await
    }

    /// Puts an object in `group`'s work queue.
    ///
    /// # Errors
    /// See [`send_bytes`](Endpoint::send_bytes); [`Error::Codec`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn produce<T: Serialize + ?Sized>(&self, group: &str, obj: &T) -> Result<()> {
        self.send_object(obj, vec![(group, 1)]).await
    }

    /// Sends an object per `dest` (see [`Destination`]).
    ///
    /// # Errors
    /// See [`send_bytes`](Endpoint::send_bytes); [`Error::Codec`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn send_object<T: Serialize + ?Sized>(
        &self,
        obj: &T,
        dest: impl Into<Destination>,
    ) -> Result<()> {
        let payload = self.codec.encode(obj)?;
        self.send_bytes(payload, dest).await
    }

    /// Sends already-encoded bytes per `dest`. Returns once the object is
    /// queued for the relay; [`flush`](Endpoint::flush) waits for the
    /// relay's confirmation. While disconnected, objects are buffered up to
    /// the builder's `max_unconfirmed` and sent on reconnect.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty destination, [`Error::Timeout`] when
    /// no room came within the send timeout (relay unreachable or slow),
    /// [`Error::Rejected`] / [`Error::Stopped`] when the endpoint is done.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled while waiting for room, nothing was sent.
    pub async fn send_bytes(&self, payload: Bytes, dest: impl Into<Destination>) -> Result<()> {
        let dest = dest.into();
        if dest.0.is_empty() {
            return Err(Error::Invalid("empty destination".into()));
        }
        self.check_open()?;
        self.reserve(payload.len()).await?;
        self.commands
            .send(Command::Publish {
                dest: dest.0,
                payload,
            })
            .map_err(|_| self.ended())
    }

    /// Broadcasts raw bytes to `group`.
    ///
    /// # Errors
    /// As [`send_bytes`](Endpoint::send_bytes).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn broadcast_bytes(&self, group: &str, payload: impl Into<Bytes>) -> Result<()> {
        self.send_bytes(payload.into(), group).await
    }

    /// Produces raw bytes into `group`'s work queue.
    ///
    /// # Errors
    /// As [`send_bytes`](Endpoint::send_bytes).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn produce_bytes(&self, group: &str, payload: impl Into<Bytes>) -> Result<()> {
        self.send_bytes(payload.into(), vec![(group, 1)]).await
    }

    /// Fails once the endpoint is rejected or stopped (the state is set
    /// before the driver stops taking commands).
    fn check_open(&self) -> Result<()> {
        match &*self.shared.state.borrow() {
            ConnectionState::Rejected(r) => Err(Error::Rejected(r.clone())),
            ConnectionState::Stopped => Err(Error::Stopped),
            _ => Ok(()),
        }
    }

    fn ended(&self) -> Error {
        match self.state() {
            ConnectionState::Rejected(r) => Error::Rejected(r),
            _ => Error::Stopped,
        }
    }

    /// Takes room for one object of `len` bytes if there is some now.
    fn try_reserve(&self, len: usize) -> bool {
        let mut f = self.shared.flow();
        if f.count == 0
            || (f.count < self.max_unconfirmed
                && f.bytes.saturating_add(len) <= self.max_unconfirmed_bytes)
        {
            f.count += 1;
            f.bytes += len;
            true
        } else {
            false
        }
    }

    async fn reserve(&self, len: usize) -> Result<()> {
        if self.try_reserve(len) {
            return if self.commands.is_closed() {
                self.shared.confirmed(1, len, None);
                Err(self.ended())
            } else {
                Ok(())
            };
        }
        let wait = async {
            loop {
                let changed = self.shared.flow_changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.try_reserve(len) {
                    return;
                }
                changed.await;
            }
        };
        if self.commands.is_closed() {
            return Err(self.ended());
        }
        match self.send_timeout {
            Some(t) => tokio::time::timeout(t, wait).await.map_err(|_| {
                Error::Timeout(format!(
                    "the relay confirmed nothing for {t:?} with {} objects outstanding (state: {:?})",
                    self.shared.flow().count,
                    self.state()
                ))
            }),
            None => {
                wait.await;
                Ok(())
            }
        }
    }

    /// Waits until the relay has confirmed every object sent so far.
    ///
    /// # Errors
    /// [`Error::Refused`] with the first refusal since the last flush
    /// (a full queue, a group the relay does not accept),
    /// [`Error::Timeout`], [`Error::Stopped`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let wait = async {
            loop {
                let changed = self.shared.flow_changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.shared.flow().count == 0 {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            Error::Timeout(format!(
                "{} objects unconfirmed after {timeout:?} (state: {:?})",
                self.shared.flow().count,
                self.state()
            ))
        })?;
        match self.shared.flow().refused.take() {
            Some(r) => Err(Error::Refused(r)),
            None => Ok(()),
        }
    }

    /// Asks for work in `group`: `n > 0` adds credit for `n` more objects
    /// (kept until used, across reconnects); `n < 0` takes everything queued
    /// now. Groups this endpoint is not in are ignored.
    ///
    /// # Errors
    /// [`Error::Stopped`] / [`Error::Rejected`].
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn notify(&self, group: &str, n: i64) -> Result<()> {
        self.notify_many(vec![(group.to_owned(), n)]).await
    }

    /// [`notify`](Endpoint::notify) for several groups at once.
    ///
    /// # Errors
    /// As [`notify`](Endpoint::notify).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn notify_many(&self, credit: Vec<(String, i64)>) -> Result<()> {
        self.check_open()?;
        self.commands
            .send(Command::Notify(credit))
            .map_err(|_| self.ended())
    }

    fn decode_all<T: DeserializeOwned>(&self, items: Vec<Received>) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(items.len());
        for (i, r) in items.iter().enumerate() {
            match self.codec.decode(&r.payload) {
                Ok(v) => out.push(v),
                Err(e) => {
                    // Nothing is lost: the undecodable object and those after
                    // it go back to the front of the queue.
                    let rest = items[i..].to_vec();
                    self.shared.queue.unget(rest);
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Everything in the local queue, oldest first, decoded.
    ///
    /// # Errors
    /// [`Error::Codec`]: the object that failed and those after it stay queued.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn receive_all<T: DeserializeOwned>(&self, wait: Wait) -> Result<Vec<T>> {
        let items = self.receive_all_raw(wait).await;
        self.decode_all(items)
    }

    /// Up to `max_items` of the oldest objects, decoded.
    ///
    /// # Errors
    /// As [`receive_all`](Endpoint::receive_all).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn pop<T: DeserializeOwned>(&self, max_items: usize, wait: Wait) -> Result<Vec<T>> {
        let items = self.pop_raw(max_items, wait).await;
        self.decode_all(items)
    }

    /// The newest `max_items` objects, decoded; older ones are discarded.
    ///
    /// # Errors
    /// As [`receive_all`](Endpoint::receive_all).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn get_last<T: DeserializeOwned>(
        &self,
        max_items: usize,
        wait: Wait,
    ) -> Result<Vec<T>> {
        let items = self.get_last_raw(max_items, wait).await;
        self.decode_all(items)
    }

    /// [`receive_all`](Endpoint::receive_all) without decoding.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn receive_all_raw(&self, wait: Wait) -> Vec<Received> {
        self.shared
            .queue
            .take(wait, |q| q.drain(..).collect())
            .await
    }

    /// [`pop`](Endpoint::pop) without decoding.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn pop_raw(&self, max_items: usize, wait: Wait) -> Vec<Received> {
        self.shared
            .queue
            .take(wait, |q| {
                let n = max_items.min(q.len());
                q.drain(..n).collect()
            })
            .await
    }

    /// [`get_last`](Endpoint::get_last) without decoding.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn get_last_raw(&self, max_items: usize, wait: Wait) -> Vec<Received> {
        self.shared
            .queue
            .take(wait, |q| {
                let skip = q.len().saturating_sub(max_items);
                q.drain(..).skip(skip).collect()
            })
            .await
    }

    /// Objects waiting in the local queue.
    pub fn queued(&self) -> usize {
        self.shared.queue.len()
    }

    /// Broadcasts dropped because the local queue was full.
    pub fn dropped_broadcasts(&self) -> u64 {
        self.shared.queue.dropped_broadcasts()
    }

    /// Stops: leaves the relay (which requeues unacknowledged work items),
    /// gives queued sends up to half a second to leave, and returns. Call
    /// [`flush`](Endpoint::flush) first to be sure the relay has everything.
    ///
    /// # Cancel safety
    /// Cancel safe: the endpoint stops anyway.
    pub async fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        self.shared.set_state(ConnectionState::Stopped);
        self.shared.queue.stop();
    }
}

impl<C: Codec> Drop for Endpoint<C> {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
    }
}
