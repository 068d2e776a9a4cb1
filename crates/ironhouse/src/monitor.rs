//! Socket events, for applications that want to see connections come and go
//! (ZeroMQ's socket monitor). Every event is also logged with `tracing`.

use ironhouse_zmtp::{CurvePublicKey, SocketType};

use crate::security::PeerCertificate;

/// Something that happened to one of a socket's connections.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketEvent {
    /// A bind succeeded.
    Listening {
        /// The endpoint actually bound.
        endpoint: String,
    },
    /// A handshake completed; messages flow.
    Connected {
        /// The peer's address.
        peer: String,
        /// The peer's socket type.
        peer_type: SocketType,
        /// The user id the authenticator granted (servers with an authenticator).
        user_id: Option<String>,
        /// The peer's CURVE public key (CURVE only).
        public_key: Option<CurvePublicKey>,
        /// The peer's TLS certificate (`tls://`: always the server's on a
        /// client; the client's on a server that requires client certificates).
        tls_peer: Option<Box<PeerCertificate>>,
    },
    /// A connection attempt failed (the socket retries with backoff).
    ConnectFailed {
        /// The endpoint.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// A handshake failed: wrong protocol, incompatible socket type,
    /// authentication refused, timeout, …
    HandshakeFailed {
        /// The peer's address.
        peer: String,
        /// Why.
        reason: String,
    },
    /// An established connection ended.
    Disconnected {
        /// The peer's address.
        peer: String,
        /// Why, if it was not a clean close.
        reason: Option<String>,
    },
}
