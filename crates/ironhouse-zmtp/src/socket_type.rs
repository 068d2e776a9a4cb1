//! ZeroMQ socket types, their wire names, and which pairs may talk.

use std::fmt;
use std::str::FromStr;

/// A ZeroMQ socket type, as announced in the `Socket-Type` metadata property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocketType {
    /// Sends requests and waits for each reply.
    Req,
    /// Receives requests and sends one reply to each.
    Rep,
    /// Asynchronous request side: load-balances out, fair-queues in.
    Dealer,
    /// Asynchronous reply side: addresses peers by routing id.
    Router,
    /// Publishes to matching subscribers.
    Pub,
    /// Subscribes by prefix.
    Sub,
    /// PUB that also sees subscriptions.
    Xpub,
    /// SUB whose subscriptions are sent as messages.
    Xsub,
    /// Load-balances messages to pullers.
    Push,
    /// Fair-queues messages from pushers.
    Pull,
    /// Exclusive one-to-one connection.
    Pair,
}

impl SocketType {
    /// Every socket type.
    pub const ALL: [SocketType; 11] = [
        Self::Req,
        Self::Rep,
        Self::Dealer,
        Self::Router,
        Self::Pub,
        Self::Sub,
        Self::Xpub,
        Self::Xsub,
        Self::Push,
        Self::Pull,
        Self::Pair,
    ];

    /// The name on the wire, for example `"DEALER"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Req => "REQ",
            Self::Rep => "REP",
            Self::Dealer => "DEALER",
            Self::Router => "ROUTER",
            Self::Pub => "PUB",
            Self::Sub => "SUB",
            Self::Xpub => "XPUB",
            Self::Xsub => "XSUB",
            Self::Push => "PUSH",
            Self::Pull => "PULL",
            Self::Pair => "PAIR",
        }
    }

    /// Parses a wire name (exact, upper case, as RFC 23 requires).
    pub fn from_wire(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == name)
    }

    /// Whether a socket of this type may talk to a peer of type `peer` (RFC 23's table).
    pub const fn is_compatible(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Req, Rep | Router)
                | (Rep, Req | Dealer)
                | (Dealer, Rep | Dealer | Router)
                | (Router, Req | Dealer | Router)
                | (Pub | Xpub, Sub | Xsub)
                | (Sub | Xsub, Pub | Xpub)
                | (Push, Pull)
                | (Pull, Push)
                | (Pair, Pair)
        )
    }

    /// Whether this type announces an `Identity` property (RFC 23: REQ, DEALER, ROUTER).
    pub const fn sends_identity(self) -> bool {
        matches!(self, Self::Req | Self::Dealer | Self::Router)
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for [`SocketType::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown socket type {0:?} (expected one of req, rep, dealer, router, pub, sub, xpub, xsub, push, pull, pair)")]
pub struct UnknownSocketType(pub String);

impl FromStr for SocketType {
    type Err = UnknownSocketType;
    /// Case-insensitive: `"dealer"` and `"DEALER"` both parse.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_wire(s.to_ascii_uppercase().as_bytes())
            .ok_or_else(|| UnknownSocketType(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_is_symmetric() {
        for a in SocketType::ALL {
            for b in SocketType::ALL {
                assert_eq!(a.is_compatible(b), b.is_compatible(a), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn req_pub_incompatible() {
        assert!(!SocketType::Req.is_compatible(SocketType::Pub));
        assert!(SocketType::Req.is_compatible(SocketType::Router));
    }

    #[test]
    fn names_round_trip() {
        for t in SocketType::ALL {
            assert_eq!(SocketType::from_wire(t.as_str().as_bytes()), Some(t));
            assert_eq!(t.as_str().to_lowercase().parse::<SocketType>().unwrap(), t);
        }
        assert!(SocketType::from_wire(b"req").is_none());
    }
}
