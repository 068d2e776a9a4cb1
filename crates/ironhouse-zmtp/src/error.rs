//! Every way a ZMTP conversation can fail, as one error type.

use crate::SocketType;

/// Why a connection was (or must be) closed.
///
/// Each variant says what went wrong in terms a user can act on. The engine
/// never panics on peer input: anything malformed ends up here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first bytes were not a ZMTP greeting (wrong signature): the peer is
    /// not a ZeroMQ peer, or garbage arrived on the port.
    #[error("peer is not speaking ZMTP: bad greeting signature")]
    NotZmtp,
    /// The peer speaks a ZMTP major version older than 3.
    #[error("unsupported ZMTP version {major}.{minor} (this side speaks 3.0 and 3.1; newer peers downgrade)")]
    UnsupportedVersion {
        /// The peer's major version.
        major: u8,
        /// The peer's minor version.
        minor: u8,
    },
    /// The greeting's mechanism field was not valid ASCII name padded with zeros.
    #[error("malformed greeting: {0}")]
    MalformedGreeting(&'static str),
    /// Both sides must use the same security mechanism.
    #[error("security mechanism mismatch: this side uses {ours}, the peer uses {theirs}")]
    MechanismMismatch {
        /// Our mechanism.
        ours: String,
        /// The peer's mechanism.
        theirs: String,
    },
    /// A frame header or body broke the framing rules.
    #[error("malformed frame: {0}")]
    MalformedFrame(&'static str),
    /// A command could not be parsed.
    #[error("malformed {command} command: {reason}")]
    MalformedCommand {
        /// Command name.
        command: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// A command arrived that is not valid in the current state.
    #[error("unexpected {command} command {state}")]
    UnexpectedCommand {
        /// Command name.
        command: String,
        /// Where in the conversation it arrived.
        state: &'static str,
    },
    /// A message (or frame) larger than the configured maximum was announced.
    /// Detected from the frame header, before any allocation.
    #[error("message of at least {size} bytes exceeds the maximum of {limit} bytes")]
    MessageTooLarge {
        /// Size announced so far.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The peer did not announce its socket type.
    #[error("peer did not send a Socket-Type in its READY metadata")]
    MissingSocketType,
    /// The peer announced a socket type we do not know.
    #[error("peer announced unknown socket type {0:?}")]
    UnknownSocketType(String),
    /// The two socket types cannot talk to each other (for example REQ and PUB).
    #[error("incompatible socket types: {ours} cannot talk to {theirs}")]
    IncompatibleSocketType {
        /// Our socket type.
        ours: SocketType,
        /// The peer's socket type.
        theirs: SocketType,
    },
    /// The peer sent an ERROR command.
    #[error("peer closed the handshake with an error: {0}")]
    PeerError(String),
    /// The security mechanism rejected the handshake.
    #[error("{mechanism} handshake failed: {reason}")]
    Handshake {
        /// Which mechanism.
        mechanism: &'static str,
        /// Why.
        reason: String,
    },
    /// Authentication refused the peer (ZAP semantics: status code and reason).
    #[error("authentication refused ({status}): {reason}")]
    AuthDenied {
        /// ZAP status code (400 denied, 300 temporary error, 500 internal error).
        status: u16,
        /// Human-readable reason.
        reason: String,
    },
    /// The handshake did not complete within the configured time.
    #[error("handshake did not complete in time")]
    HandshakeTimeout,
    /// Heartbeats went unanswered.
    #[error("peer stopped answering heartbeats")]
    HeartbeatTimeout,
    /// Something was sent on a connection that is closed or not yet ready.
    #[error("connection is not ready for messages")]
    NotReady,
}
