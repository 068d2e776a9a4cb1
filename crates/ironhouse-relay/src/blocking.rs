//! Blocking facades of [`Relay`](crate::Relay) and
//! [`Endpoint`](crate::Endpoint), for programs without an async runtime
//! (like `reqwest::blocking`). Each owns a small tokio runtime whose one
//! worker thread runs the connection; every method blocks the calling
//! thread until done.
//!
//! Do not call these from inside an async runtime (they would block it);
//! use the async types there.
//!
//! ```
//! use ironhouse_relay::blocking::{Endpoint, Relay};
//! use ironhouse_relay::Wait;
//! use std::time::Duration;
//!
//! let relay = Relay::start(ironhouse_relay::Relay::builder().bind("tcp://127.0.0.1:*"))?;
//! let url = relay.endpoints()[0].clone();
//! let worker = Endpoint::connect(ironhouse_relay::Endpoint::builder(&url).group("jobs"))?;
//! let boss = Endpoint::connect(ironhouse_relay::Endpoint::builder(&url).group("boss"))?;
//! boss.produce("jobs", &"build")?;
//! worker.notify("jobs", 1)?;
//! let job: Vec<String> = worker.pop(1, Wait::For(Duration::from_secs(5)))?;
//! assert_eq!(job, ["build"]);
//! # Ok::<(), ironhouse_relay::Error>(())
//! ```

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::broadcast;

use crate::codec::{Codec, MsgPack};
use crate::{
    ConnectionState, Destination, EndpointBuilder, EndpointEvent, Received, RelayBuilder, Result,
    Stats, Wait,
};

fn runtime(name: &str) -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()?)
}

/// A relay running on its own thread.
#[derive(Debug)]
pub struct Relay {
    inner: crate::Relay,
    rt: Runtime,
}

impl Relay {
    /// Starts the relay described by `builder`.
    ///
    /// # Errors
    /// As [`RelayBuilder::start`].
    pub fn start(builder: RelayBuilder) -> Result<Relay> {
        let rt = runtime("ironhouse-relay")?;
        let inner = rt.block_on(builder.start())?;
        Ok(Relay { inner, rt })
    }
    /// The native endpoints bound.
    pub fn endpoints(&self) -> &[String] {
        self.inner.endpoints()
    }
    /// The tlspyo listener's address, if any.
    pub fn tlspyo_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.tlspyo_addr()
    }
    /// Counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }
    /// Stops the relay.
    pub fn stop(self) {
        self.rt.block_on(self.inner.stop());
    }
}

/// An endpoint running on its own thread.
#[derive(Debug)]
pub struct Endpoint<C: Codec = MsgPack> {
    inner: crate::Endpoint<C>,
    rt: Runtime,
}

impl Endpoint<MsgPack> {
    /// Starts an endpoint with the MessagePack codec.
    ///
    /// # Errors
    /// As [`EndpointBuilder::connect`].
    pub fn connect(builder: EndpointBuilder) -> Result<Endpoint<MsgPack>> {
        Self::connect_with(builder, MsgPack)
    }
}

impl<C: Codec> Endpoint<C> {
    /// Starts an endpoint with another codec.
    ///
    /// # Errors
    /// As [`EndpointBuilder::connect`].
    pub fn connect_with(builder: EndpointBuilder, codec: C) -> Result<Endpoint<C>> {
        let rt = runtime("ironhouse-endpoint")?;
        let inner = rt.block_on(builder.connect_with(codec))?;
        Ok(Endpoint { inner, rt })
    }
    /// See [`crate::Endpoint::state`].
    pub fn state(&self) -> ConnectionState {
        self.inner.state()
    }
    /// See [`crate::Endpoint::events`]; use `blocking_recv` on it.
    pub fn events(&self) -> broadcast::Receiver<EndpointEvent> {
        self.inner.events()
    }
    /// See [`crate::Endpoint::wait_joined`].
    ///
    /// # Errors
    /// As there.
    pub fn wait_joined(&self, timeout: Duration) -> Result<()> {
        self.rt.block_on(self.inner.wait_joined(timeout))
    }
    /// See [`crate::Endpoint::broadcast`].
    ///
    /// # Errors
    /// As there.
    pub fn broadcast<T: Serialize + ?Sized>(&self, group: &str, obj: &T) -> Result<()> {
        self.rt.block_on(self.inner.broadcast(group, obj))
    }
    /// See [`crate::Endpoint::produce`].
    ///
    /// # Errors
    /// As there.
    pub fn produce<T: Serialize + ?Sized>(&self, group: &str, obj: &T) -> Result<()> {
        self.rt.block_on(self.inner.produce(group, obj))
    }
    /// See [`crate::Endpoint::send_object`].
    ///
    /// # Errors
    /// As there.
    pub fn send_object<T: Serialize + ?Sized>(
        &self,
        obj: &T,
        dest: impl Into<Destination>,
    ) -> Result<()> {
        self.rt.block_on(self.inner.send_object(obj, dest))
    }
    /// See [`crate::Endpoint::send_bytes`].
    ///
    /// # Errors
    /// As there.
    pub fn send_bytes(&self, payload: Bytes, dest: impl Into<Destination>) -> Result<()> {
        self.rt.block_on(self.inner.send_bytes(payload, dest))
    }
    /// See [`crate::Endpoint::notify`].
    ///
    /// # Errors
    /// As there.
    pub fn notify(&self, group: &str, n: i64) -> Result<()> {
        self.rt.block_on(self.inner.notify(group, n))
    }
    /// See [`crate::Endpoint::flush`].
    ///
    /// # Errors
    /// As there.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.rt.block_on(self.inner.flush(timeout))
    }
    /// See [`crate::Endpoint::receive_all`].
    ///
    /// # Errors
    /// As there.
    pub fn receive_all<T: DeserializeOwned>(&self, wait: Wait) -> Result<Vec<T>> {
        self.rt.block_on(self.inner.receive_all(wait))
    }
    /// See [`crate::Endpoint::pop`].
    ///
    /// # Errors
    /// As there.
    pub fn pop<T: DeserializeOwned>(&self, max_items: usize, wait: Wait) -> Result<Vec<T>> {
        self.rt.block_on(self.inner.pop(max_items, wait))
    }
    /// See [`crate::Endpoint::get_last`].
    ///
    /// # Errors
    /// As there.
    pub fn get_last<T: DeserializeOwned>(&self, max_items: usize, wait: Wait) -> Result<Vec<T>> {
        self.rt.block_on(self.inner.get_last(max_items, wait))
    }
    /// See [`crate::Endpoint::receive_all_raw`].
    pub fn receive_all_raw(&self, wait: Wait) -> Vec<Received> {
        self.rt.block_on(self.inner.receive_all_raw(wait))
    }
    /// See [`crate::Endpoint::pop_raw`].
    pub fn pop_raw(&self, max_items: usize, wait: Wait) -> Vec<Received> {
        self.rt.block_on(self.inner.pop_raw(max_items, wait))
    }
    /// Objects waiting in the local queue.
    pub fn queued(&self) -> usize {
        self.inner.queued()
    }
    /// Stops the endpoint (see [`crate::Endpoint::stop`]).
    pub fn stop(self) {
        self.rt.block_on(self.inner.stop());
    }
}
