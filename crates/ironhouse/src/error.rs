//! The error type of the socket layer.

use std::io;

use ironhouse_zmtp::{Message, ProtocolError, SocketType};

/// Errors from sockets, endpoints and transports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint string could not be understood.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// What was given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding failed (address in use, permission denied, …).
    #[error("cannot bind {endpoint}: {source}")]
    Bind {
        /// The endpoint.
        endpoint: String,
        /// The OS error.
        source: io::Error,
    },
    /// Connecting failed (refused, unreachable, unknown host, …).
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The OS error.
        source: io::Error,
    },
    /// The operation does not exist for this socket type (for example `send` on PULL).
    #[error("{kind} sockets cannot {operation}")]
    NotSupported {
        /// The socket type.
        kind: SocketType,
        /// What was attempted.
        operation: &'static str,
    },
    /// The operation is not valid in the socket's current state (for example a
    /// REQ sending twice without receiving).
    #[error("{0}")]
    WrongState(&'static str),
    /// A ROUTER was asked to send to a routing id it does not know (only with
    /// `router_mandatory`).
    #[error("no connected peer has routing id {0}")]
    HostUnreachable(String),
    /// A message is larger than this socket's `max_message_size`.
    #[error("message of {size} bytes exceeds the maximum of {limit} bytes")]
    MessageTooLarge {
        /// Message size.
        size: usize,
        /// The limit.
        limit: u64,
    },
    /// The security settings forbid this transport (PLAIN over a transport
    /// without encryption).
    #[error("{0}")]
    Insecure(String),
    /// The socket was closed.
    #[error("socket is closed")]
    Closed,
    /// The peer broke the protocol or the handshake failed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Any other I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Why [`Socket::try_send`](crate::Socket::try_send) did not queue a
/// message. The message comes back, so nothing is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError {
    /// Every eligible peer's queue is full (ROUTER: the addressed peer's).
    /// Try again later.
    #[error("send queue full")]
    Full(Message),
    /// ROUTER: no connected peer has this routing id.
    #[error("no connected peer has this routing id")]
    Unreachable(Message),
    /// The socket cannot send now: closed, wrong type or out of turn.
    #[error(transparent)]
    Failed(Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
