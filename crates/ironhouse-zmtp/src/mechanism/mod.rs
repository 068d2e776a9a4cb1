//! Security mechanisms: the pluggable handshake (and, for CURVE, message
//! encryption) between greeting and traffic.
//!
//! A [`Mechanism`] sees only commands, never sockets. It writes its replies
//! into the connection's output buffer and tells the engine, through a
//! [`Step`], whether the handshake goes on, needs an authentication
//! decision from the application ([`AuthRequest`], ZAP's semantics, RFC 27),
//! or is complete.

mod curve;
pub(crate) mod curve_box;
mod null;
mod plain;

use std::fmt;

use bytes::{Bytes, BytesMut};

pub use curve::{CurveClient, CurveServer};
pub use curve_box::{OsRandom, Random};
pub use null::Null;
pub use plain::{PlainClient, PlainServer};

use crate::command::RawCommand;
use crate::{Metadata, ProtocolError};

/// What the engine should do after a mechanism handled an input.
#[derive(Debug)]
pub enum Step {
    /// Wait for the peer's next command.
    Continue,
    /// Ask the application to authenticate the peer, then call
    /// [`Mechanism::handle_auth`] with its answer.
    Authenticate(AuthRequest),
    /// The handshake is done; these are the peer's properties.
    Complete {
        /// The peer's metadata (Socket-Type, Identity, …).
        peer_metadata: Metadata,
        /// The user id granted by authentication, if any.
        user_id: Option<String>,
    },
}

/// A request for an authentication decision (ZAP's request, without the
/// transport-level fields the driver adds: domain and address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// `"NULL"`, `"PLAIN"` or `"CURVE"`.
    pub mechanism: &'static str,
    /// Mechanism credentials: none for NULL, username and password for
    /// PLAIN, the client's long-term public key for CURVE.
    pub credentials: Vec<Bytes>,
    /// The peer's metadata as received in the handshake so far.
    pub peer_metadata: Metadata,
}

/// The application's answer to an [`AuthRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// Let the peer in, as this user.
    Allow {
        /// User id visible to the application (ZAP's User-Id).
        user_id: String,
    },
    /// Refuse the peer.
    Deny {
        /// ZAP status code: 300 temporary error, 400 denied, 500 internal error.
        status: u16,
        /// Text sent to the peer in an ERROR command and logged.
        reason: String,
    },
}

/// Checks the greeting's as-server flags for a mechanism with roles (PLAIN,
/// CURVE). Only two servers are refused: libzmq (4.3.x) always sends 0 in
/// the flag, so a client cannot require the server to set it.
pub(crate) fn check_roles(
    mechanism: &'static str,
    we_serve: bool,
    peer_serves: bool,
) -> Result<(), ProtocolError> {
    let reason = match (we_serve, peer_serves) {
        (true, true) => "the peer is also a server (is one side meant to be a client?)",
        _ => return Ok(()),
    };
    Err(ProtocolError::Handshake {
        mechanism,
        reason: reason.to_string(),
    })
}

/// Refuses the peer after the application's answer: queues an ERROR with the
/// reason for the peer and fails the handshake.
pub(crate) fn refuse(
    out: &mut BytesMut,
    status: u16,
    reason: String,
) -> Result<Step, ProtocolError> {
    crate::command::write_error(out, &reason);
    Err(ProtocolError::AuthDenied { status, reason })
}

/// A security mechanism, driven by the engine.
///
/// Implementations must never panic on peer input: every malformed command is
/// a [`ProtocolError`].
pub trait Mechanism: Send + fmt::Debug {
    /// The name in the greeting (`"NULL"`, `"PLAIN"`, `"CURVE"`).
    fn name(&self) -> &'static str;

    /// Our greeting's as-server flag.
    fn as_server(&self) -> bool;

    /// The peer's greeting arrived: check its as-server flag and write our first
    /// handshake commands (if we speak first) into `out`. `local` is the
    /// metadata we announce.
    ///
    /// # Errors
    /// When the peer's role is incompatible with ours.
    fn start(
        &mut self,
        peer_as_server: bool,
        local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError>;

    /// A handshake command arrived.
    ///
    /// # Errors
    /// A malformed or unexpected command, or the peer's ERROR.
    fn handle_command(
        &mut self,
        cmd: RawCommand<'_>,
        local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError>;

    /// The application answered an [`AuthRequest`].
    ///
    /// # Errors
    /// [`ProtocolError::AuthDenied`] when the reply denies (after the
    /// mechanism queued an ERROR for the peer).
    fn handle_auth(
        &mut self,
        reply: AuthReply,
        local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        let _ = (reply, local, out);
        Err(ProtocolError::Handshake {
            mechanism: self.name(),
            reason: "no authentication was requested".into(),
        })
    }

    /// Whether message frames travel inside MESSAGE commands (CURVE).
    fn wraps_messages(&self) -> bool {
        false
    }

    /// Seals one message frame (`flags`: MORE) into a MESSAGE command in `out`.
    ///
    /// # Errors
    /// Only for mechanisms that wrap messages; the default refuses.
    fn seal_frame(
        &mut self,
        flags: u8,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        let _ = (flags, body, out);
        Err(ProtocolError::NotReady)
    }

    /// The peer's long-term public key, once known (CURVE).
    fn peer_public_key(&self) -> Option<[u8; 32]> {
        None
    }

    /// A hint for the user when the peer hangs up mid-handshake (for example,
    /// a CURVE client whose HELLO the server could not open).
    fn handshake_eof_hint(&self) -> Option<&'static str> {
        None
    }

    /// Opens a MESSAGE command into (flags, body).
    ///
    /// # Errors
    /// A forged, replayed or malformed MESSAGE.
    fn open_frame(&mut self, cmd: RawCommand<'_>) -> Result<(u8, Bytes), ProtocolError> {
        Err(ProtocolError::UnexpectedCommand {
            command: cmd.name_str(),
            state: "for a mechanism without message boxes",
        })
    }
}
