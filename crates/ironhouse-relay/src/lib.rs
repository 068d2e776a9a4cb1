//! # ironhouse-relay: a relay and endpoints in groups
//!
//! tlspyo's system on ironhouse sockets: endpoints join named groups at a
//! relay; an object sent to a group is either **broadcast** to every member
//! (the relay keeps the last one for members that join later) or
//! **produced** into the group's work queue, where it waits until a member
//! that asked for work with **notify** takes it.
//!
//! It is not a message broker with persistence: the relay keeps objects in
//! memory, bounded, and forgets them when it stops.
//!
//! Layers, bottom up:
//! - [`protocol`]: the native wire messages (ZMTP multipart between an
//!   endpoint's DEALER and the relay's ROUTER), specified in
//!   `docs/relay-protocol.md` so any ZeroMQ binding can be an endpoint.
//!   Broadcasts an application has queued leave its endpoint as one batch
//!   frame, which the relay forwards whole: small objects cost per batch,
//!   not per object;
//! - [`core`]: the relay's rules as a state machine without I/O;
//! - [`tlspyo`]: tlspyo 0.3.0's frames, so unchanged tlspyo endpoints join
//!   the same groups;
//! - [`Relay`] and [`Endpoint`]: the tokio drivers, with [`blocking`]
//!   facades; [`codec`]: how typed objects become bytes.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ironhouse_relay::Result<()> {
//! use ironhouse_relay::{Endpoint, Relay, Wait};
//! use std::time::Duration;
//! let relay = Relay::builder().bind("tcp://127.0.0.1:*").start().await?;
//! let url = &relay.endpoints()[0];
//! let worker = Endpoint::builder(url).group("jobs").connect().await?;
//! let boss = Endpoint::builder(url).group("boss").connect().await?;
//! boss.produce("jobs", &("resize", 42u32)).await?;
//! worker.notify("jobs", 1).await?;
//! let job: Vec<(String, u32)> = worker.pop(1, Wait::For(Duration::from_secs(5))).await?;
//! assert_eq!(job, [("resize".to_string(), 42)]);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod blocking;
pub mod codec;
pub mod core;
pub mod endpoint;
mod error;
pub mod protocol;
pub mod relay;
pub mod tlspyo;

pub use codec::{Codec, MsgPack, Pickle};
pub use core::{GroupLimits, GroupPolicy, Stats};
pub use endpoint::{
    ConnectionState, Destination, Endpoint, EndpointBuilder, EndpointEvent, Kind, Received, Wait,
};
pub use error::{Error, Result};
pub use relay::{Relay, RelayBuilder};
pub use tlspyo::TlspyoConfig;

/// 16 random bytes: endpoint sessions and relay epochs.
fn random_id() -> bytes::Bytes {
    let mut id = [0u8; 16];
    // Without an OS random source nothing secure works anyway; fall back to
    // the clock so sessions still differ.
    if getrandom::fill(&mut id).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        id.copy_from_slice(&t.to_le_bytes());
    }
    bytes::Bytes::copy_from_slice(&id)
}
