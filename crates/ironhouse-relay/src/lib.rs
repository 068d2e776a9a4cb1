//! # ironhouse-relay: a relay and endpoints in groups
//!
//! tlspyo's system on ironhouse sockets: endpoints join named groups at a
//! relay; an object sent to a group is either **broadcast** to every member
//! (the relay keeps the last one for members that join later) or
//! **produced** into the group's work queue, where it waits until a member
//! that asked for work with **notify** takes it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod core;
pub mod protocol;
