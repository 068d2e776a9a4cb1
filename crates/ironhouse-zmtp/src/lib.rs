//! # ironhouse-zmtp: the ZMTP 3.1 protocol engine, without I/O
//!
//! This crate is the deterministic heart of ironhouse. It speaks ZMTP 3.1
//! ([rfc.zeromq.org/spec/23](https://rfc.zeromq.org/spec/23/)): the 64-byte
//! greeting, the frame codec, the commands (READY, ERROR, PING, PONG,
//! SUBSCRIBE, CANCEL), metadata, the socket-type compatibility check and the
//! security mechanisms behind the [`Mechanism`] trait (NULL here; PLAIN and
//! CURVE plug into the same trait).
//!
//! It does **no I/O and reads no clock**: a [`Connection`] takes bytes in
//! ([`Connection::handle_input`]), hands out events ([`Connection::poll_event`])
//! and bytes to send ([`Connection::transmit`]), and is told the time
//! (`now`) by its caller. That makes it testable byte for byte and fuzzable.
//! The `ironhouse` crate drives it over tokio sockets.
//!
//! It is *not* a socket library: routing, queues, reconnection and
//! high-water marks live one layer up.
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use ironhouse_zmtp::{Config, Connection, Event, Message, SocketType};
//!
//! // Two engines talking through memory: a PUSH and a PULL.
//! let now = Instant::now();
//! let mut push = Connection::new(Config::new(SocketType::Push), now);
//! let mut pull = Connection::new(Config::new(SocketType::Pull), now);
//! ironhouse_zmtp::testing::pump(&mut push, &mut pull, now).unwrap();
//! assert!(push.is_active() && pull.is_active());
//!
//! push.send_message(&Message::from("hello")).unwrap();
//! ironhouse_zmtp::testing::pump(&mut push, &mut pull, now).unwrap();
//! let mut got = None;
//! while let Some(ev) = pull.poll_event() {
//!     if let Event::Message(m) = ev { got = Some(m); }
//! }
//! assert_eq!(got.unwrap().frames()[0].as_ref(), b"hello");
//! ```
#![warn(missing_docs)]
// `unsafe` is denied everywhere but the libsodium FFI module
// (mechanism/curve_box.rs, `sodium`), which allows it for itself.
#![deny(unsafe_code)]

pub mod command;
mod connection;
mod error;
pub mod frame;
pub mod greeting;
pub mod keys;
pub mod mechanism;
mod message;
pub mod metadata;
mod socket_type;
pub mod testing;
mod transmit;
pub mod z85;

pub use connection::{Config, Connection, Event, Heartbeat, PeerInfo};
pub use error::ProtocolError;
pub use keys::{CurveKeyPair, CurvePublicKey, CurveSecretKey};
pub use mechanism::{AuthReply, AuthRequest, Mechanism};
pub use message::Message;
pub use metadata::Metadata;
pub use socket_type::SocketType;
pub use transmit::Transmit;
