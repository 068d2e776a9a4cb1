//! The errors of relays and endpoints.

/// What went wrong in a relay or an endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket layer failed (bind, connect, security settings, ...).
    #[error(transparent)]
    Socket(#[from] ironhouse::Error),
    /// An object could not be encoded or decoded with the endpoint's codec.
    #[error("codec: {0}")]
    Codec(String),
    /// The relay refused this endpoint (group not accepted, group full, ...).
    /// The endpoint stops; the reason is the relay's.
    #[error("rejected by the relay: {0}")]
    Rejected(String),
    /// The relay refused an object (its group's queue is full, ...).
    #[error("the relay refused an object: {0}")]
    Refused(String),
    /// A wait ran out of time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The endpoint or relay was stopped.
    #[error("stopped")]
    Stopped,
    /// A bad argument (empty destination, ...).
    #[error("{0}")]
    Invalid(String),
    /// Reading keys or certificates, binding the tlspyo listener, ...
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
