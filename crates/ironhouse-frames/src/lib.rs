//! # ironhouse-frames: NetGear-compatible frame streaming
//!
//! A frame sender and a frame receiver for n-dimensional arrays (video
//! frames, mostly) on ironhouse sockets, speaking vidgear 0.3.6 NetGear's
//! wire format, so either side can be a Python NetGear and the other this
//! crate. What it is not: a video library — frames are bytes with a dtype
//! and a shape; capture and display are the application's.
//!
//! - Patterns ([`Pattern`]): 0 PAIR, 1 REQ/REP (one reply per frame), 2
//!   PUB/SUB. As in NetGear, the receiver binds and the sender connects.
//! - Secure modes ([`SecureMode`]): Grassland (NULL), StoneHouse and
//!   IronHouse (CURVE), with vidgear's key folder ([`KeyStore`]). The
//!   receiver is the CURVE server, the sender the client.
//! - Bidirectional mode (return data with each reply), multi-server (one
//!   receiver, many senders told apart by port), multi-client (one sender,
//!   many receivers), termination both ways.
//! - Bounded waits: a sender waits for its receiver at most
//!   [`SenderConfig::connect_timeout`], and for each reply at most
//!   [`SenderConfig::request_timeout`]; after [`SenderConfig::max_retries`]
//!   lost replies it gives up with an error. A CURVE handshake that fails is
//!   reported with its reason, never retried as NULL: every reconnection
//!   uses the same security settings (NetGear blocks forever in the first
//!   case and drops CURVE in the second).
//!
//! Features: `jpeg` (JPEG frames as simplejpeg makes them, module `jpeg`) and
//! `ndarray` (frames to and from arrays, module `array`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ironhouse_frames::FrameError> {
//! use ironhouse_frames::{Frame, FrameReceiver, FrameSender, Pattern, ReceiverConfig, SenderConfig};
//! let mut rx = FrameReceiver::bind(&["tcp://127.0.0.1:*"], ReceiverConfig::new(Pattern::ReqRep)).await?;
//! let ep = rx.endpoints()[0].to_string();
//! let mut tx = FrameSender::connect(&[ep.as_str()], SenderConfig::new(Pattern::ReqRep)).await?;
//! let frame = Frame::synthetic(48, 64, 3, 0);
//! let (sent, got) = tokio::join!(tx.send(&frame, None), rx.recv());
//! sent?;
//! assert_eq!(got?.expect("a frame").frame, frame);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "ndarray")]
pub mod array;
mod frame;
#[cfg(feature = "jpeg")]
pub mod jpeg;
mod keys;
mod receiver;
mod sender;
pub mod wire;

use std::time::Duration;

#[cfg(feature = "ndarray")]
pub use array::Element;
pub use frame::{DType, Frame};
#[cfg(feature = "jpeg")]
pub use jpeg::{Colorspace, Jpeg};
pub use keys::{KeyStore, SecureMode};
pub use receiver::{FrameReceiver, Received, ReceiverConfig};
pub use sender::{FrameSender, SenderConfig};
pub use serde_json::Value;
pub use wire::{Reply, ReturnData};

/// NetGear's `pattern`: which socket pair carries the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    /// 0: PAIR ↔ PAIR, with a reply per frame.
    #[default]
    Pair,
    /// 1: REQ → REP, with a reply per frame.
    ReqRep,
    /// 2: PUB → SUB, no replies; late or slow receivers miss frames.
    PubSub,
}

impl Pattern {
    /// From NetGear's number.
    pub fn from_number(n: u8) -> Option<Pattern> {
        match n {
            0 => Some(Pattern::Pair),
            1 => Some(Pattern::ReqRep),
            2 => Some(Pattern::PubSub),
            _ => None,
        }
    }

    /// NetGear's number.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Whether each frame gets a reply (patterns 0 and 1).
    pub fn has_replies(self) -> bool {
        self != Pattern::PubSub
    }

    fn socket_types(self) -> (ironhouse::SocketType, ironhouse::SocketType) {
        use ironhouse::SocketType as T;
        match self {
            Pattern::Pair => (T::Pair, T::Pair),
            Pattern::ReqRep => (T::Req, T::Rep),
            Pattern::PubSub => (T::Pub, T::Sub),
        }
    }
}

/// What went wrong. Every variant says what to do or where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A socket error (bind, connect, closed, …).
    #[error(transparent)]
    Socket(#[from] ironhouse::Error),
    /// A key file could not be read or written.
    #[error("keys: {0}")]
    Keys(#[from] ironhouse::security::certs::CertError),
    /// An option or combination NetGear does not allow either, or missing keys.
    #[error("{0}")]
    Config(String),
    /// The peer's CURVE (or other) handshake failed; nothing was sent in
    /// clear and nothing will be.
    #[error("handshake with {peer} failed: {reason}")]
    Handshake {
        /// The peer's address.
        peer: String,
        /// Why (for example the allow-list's refusal, or a wrong server key).
        reason: String,
    },
    /// Nothing happened within a bounded wait.
    #[error("{what}: nothing within {after:?}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// How long.
        after: Duration,
        /// What the socket saw meanwhile (refused connections, handshake
        /// failures, disconnections), if anything.
        detail: Option<String>,
    },
    /// The receiver did not answer `retries` times in a row; the sender is
    /// finished.
    #[error("the receiver did not reply {retries} times in a row; giving up{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    ReceiverGone {
        /// How many replies were missed.
        retries: u32,
        /// What the socket saw.
        detail: Option<String>,
    },
    /// A message from the network that is not a valid NetGear message. The
    /// connection and the next messages are unaffected.
    #[error("bad message: {0}")]
    BadMessage(String),
    /// A valid message this implementation does not handle (JPEG frames).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A frame whose shape and byte length disagree.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// The sender was already closed or gave up.
    #[error("the sender is closed")]
    Closed,
}
