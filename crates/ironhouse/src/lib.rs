//! # ironhouse: secure transport of objects between processes and machines
//!
//! ZeroMQ-compatible sockets on tokio, speaking ZMTP 3.1 on the wire, so any
//! ZeroMQ binding (libzmq, pyzmq, JeroMQ, NetMQ) is a peer. The protocol
//! itself lives in [`ironhouse_zmtp`], which does no I/O; this crate drives it
//! over transports (`tcp://`, `ipc://`, `tls://` with rustls) and implements
//! the socket patterns:
//! REQ/REP, DEALER/ROUTER, PUB/SUB (and XPUB/XSUB), PUSH/PULL and PAIR, with
//! reconnection, high-water marks, linger and heartbeats.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> ironhouse::Result<()> {
//! use ironhouse::{Socket, SocketType};
//! let mut pull = Socket::new(SocketType::Pull);
//! let ep = pull.bind("tcp://127.0.0.1:*").await?;
//! let mut push = Socket::new(SocketType::Push);
//! push.connect(&ep.to_string()).await?;
//! push.send(vec![bytes::Bytes::from("multi"), bytes::Bytes::from("part")]).await?;
//! let msg = pull.recv().await?;
//! assert_eq!(msg.len(), 2);
//! # Ok(()) }
//! ```
//!
//! Layers, bottom up: `ironhouse_zmtp` (wire) → [`transport`] (bytes to a
//! peer) → `session` (one task per connection) → [`Socket`] (patterns).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod endpoint;
mod error;
pub mod monitor;
mod options;
mod pipe;
pub mod security;
mod session;
mod socket;
pub mod transport;

pub use endpoint::Endpoint;
pub use error::{Error, Result, TrySendError};
pub use ironhouse_zmtp::{
    CurveKeyPair, CurvePublicKey, CurveSecretKey, Heartbeat, Message, ProtocolError, SocketType,
};
pub use monitor::SocketEvent;
pub use options::Options;
pub use security::Security;
pub use socket::{hex, Socket};
#[cfg(feature = "ssh")]
pub use transport::ssh::{HostKeyPolicy, SshIdentity, SshTunnel};
pub use transport::tls::{TlsClient, TlsServer};

pub use bytes::Bytes;
