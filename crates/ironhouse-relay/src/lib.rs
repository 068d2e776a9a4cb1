//! # ironhouse-relay: a relay and endpoints in groups
//!
//! tlspyo's system on ironhouse sockets: endpoints join named groups at a
//! relay; an object sent to a group is either **broadcast** to every member
//! (the relay keeps the last one for members that join later) or
//! **produced** into the group's work queue, where it waits until a member
//! that asked for work with **notify** takes it.
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
