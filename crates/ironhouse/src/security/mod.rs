//! Security for sockets: which mechanism a socket speaks (NULL, PLAIN,
//! CURVE) and who decides whether a peer may connect.
//!
//! | preset | gives | seeds' name |
//! |---|---|---|
//! | [`Security::Null`] | nothing; loopback and trusted networks | Grassland |
//! | [`Security::curve_server`] + [`AllowAny`] | encryption, server authenticated | StoneHouse |
//! | [`Security::curve_server`] + [`CurveAllowList`] | both sides authenticated | IronHouse |
//! | [`Security::plain_server`] + [`PasswordTable`] | passwords (over TLS only) | tlspyo's password |
//! | `tls://` with [`TlsServer`](crate::TlsServer) and a trusting or pinning [`TlsClient`](crate::TlsClient) | encryption, server authenticated | tlspyo TLS, RPyC `ssl_connect` |
//! | `tls://` with [`TlsServer::require_client_certs_from`](crate::TlsServer::require_client_certs_from) | both sides authenticated; the client's [`PeerCertificate`] reaches the authenticator | RPyC `SSLAuthenticator` |
//!
//! TLS is a transport: any mechanism above runs inside it (PLAIN needs no
//! `allow_plaintext_password` there; CURVE over TLS works too). [`pki`] loads
//! PEM certificates and keys and computes the fingerprints clients pin.
//!
//! Decisions follow ZAP's semantics (RFC 27) through one [`Authenticator`]
//! trait: a request (domain, peer address, mechanism, credentials) gets
//! "allow, as this user" or "deny, with a status code and reason". The
//! reason reaches the peer in an ERROR command and both sides' logs.

mod allowlist;
mod auth;
pub mod certs;
pub mod pki;

use std::fmt;
use std::sync::Arc;

use ironhouse_zmtp::mechanism::{CurveClient, CurveServer, Null, PlainClient, PlainServer};
use ironhouse_zmtp::{CurveKeyPair, CurvePublicKey, Mechanism, ProtocolError};

pub use allowlist::CurveAllowList;
pub use auth::{
    AddressFilter, AllowAny, AuthDecision, AuthRequest, Authenticator, PasswordTable,
    SharedPassword,
};
pub use pki::{Fingerprint, PeerCertificate};

/// The security mechanism of a socket and, on the server side, its authenticator.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Security {
    /// No security (ZMTP NULL). With an authenticator, peers are still vetted
    /// (by address, for example).
    #[default]
    Null,
    /// NULL, with each peer vetted by an authenticator.
    NullAuthenticated(Arc<dyn Authenticator>),
    /// CURVE server with its long-term key pair.
    CurveServer {
        /// The server's key pair.
        keys: CurveKeyPair,
        /// Who may connect.
        authenticator: Arc<dyn Authenticator>,
    },
    /// CURVE client with its own key pair and the server's public key.
    CurveClient {
        /// The client's long-term key pair.
        keys: CurveKeyPair,
        /// The server's public key.
        server_key: CurvePublicKey,
    },
    /// PLAIN server; the authenticator checks user names and passwords.
    PlainServer {
        /// Who may connect.
        authenticator: Arc<dyn Authenticator>,
        /// Allow passwords over a transport without encryption (bare
        /// `tcp://`, `ipc://`). Off by default: passwords never cross a wire
        /// in clear unless asked.
        allow_plaintext: bool,
    },
    /// PLAIN client.
    PlainClient {
        /// User name.
        username: String,
        /// Password.
        password: String,
        /// As for the server.
        allow_plaintext: bool,
    },
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Null => f.write_str("Null"),
            Security::NullAuthenticated(_) => f.write_str("NullAuthenticated"),
            Security::CurveServer { keys, .. } => write!(f, "CurveServer({})", keys.public),
            Security::CurveClient { keys, server_key } => {
                write!(f, "CurveClient({} -> {server_key})", keys.public)
            }
            Security::PlainServer {
                allow_plaintext, ..
            } => write!(f, "PlainServer(allow_plaintext: {allow_plaintext})"),
            Security::PlainClient {
                username,
                allow_plaintext,
                ..
            } => write!(
                f,
                "PlainClient({username:?}, password hidden, allow_plaintext: {allow_plaintext})"
            ),
        }
    }
}

impl Security {
    /// A CURVE server that admits any client that knows its public key (StoneHouse).
    pub fn stonehouse(keys: CurveKeyPair) -> Self {
        Security::CurveServer {
            keys,
            authenticator: Arc::new(AllowAny),
        }
    }

    /// A CURVE server that admits only the clients in `allowed` (IronHouse).
    pub fn ironhouse(keys: CurveKeyPair, allowed: impl Authenticator) -> Self {
        Security::CurveServer {
            keys,
            authenticator: Arc::new(allowed),
        }
    }

    /// A CURVE server with any authenticator.
    pub fn curve_server(keys: CurveKeyPair, authenticator: impl Authenticator) -> Self {
        Security::CurveServer {
            keys,
            authenticator: Arc::new(authenticator),
        }
    }

    /// A CURVE client.
    pub fn curve_client(keys: CurveKeyPair, server_key: CurvePublicKey) -> Self {
        Security::CurveClient { keys, server_key }
    }

    /// A PLAIN server (refused on transports without encryption unless
    /// [`Security::allow_plaintext_password`]).
    pub fn plain_server(authenticator: impl Authenticator) -> Self {
        Security::PlainServer {
            authenticator: Arc::new(authenticator),
            allow_plaintext: false,
        }
    }

    /// A PLAIN client (same rule as the server).
    pub fn plain_client(username: impl Into<String>, password: impl Into<String>) -> Self {
        Security::PlainClient {
            username: username.into(),
            password: password.into(),
            allow_plaintext: false,
        }
    }

    /// Lets PLAIN run over a transport without encryption. Passwords then
    /// cross the wire in clear: for tests and trusted loopback only.
    pub fn allow_plaintext_password(mut self) -> Self {
        match &mut self {
            Security::PlainServer {
                allow_plaintext, ..
            }
            | Security::PlainClient {
                allow_plaintext, ..
            } => *allow_plaintext = true,
            _ => {}
        }
        self
    }

    /// The mechanism name on the wire.
    pub fn mechanism_name(&self) -> &'static str {
        match self {
            Security::Null | Security::NullAuthenticated(_) => "NULL",
            Security::CurveServer { .. } | Security::CurveClient { .. } => "CURVE",
            Security::PlainServer { .. } | Security::PlainClient { .. } => "PLAIN",
        }
    }

    /// Whether PLAIN would send passwords in clear on this transport and that
    /// was not allowed. `encrypted`: the transport encrypts (TLS).
    pub(crate) fn refuses_transport(&self, encrypted: bool) -> bool {
        match self {
            Security::PlainServer {
                allow_plaintext, ..
            }
            | Security::PlainClient {
                allow_plaintext, ..
            } => !encrypted && !allow_plaintext,
            _ => false,
        }
    }

    /// The authenticator that vets peers, if any.
    pub(crate) fn authenticator(&self) -> Option<&Arc<dyn Authenticator>> {
        match self {
            Security::NullAuthenticated(a)
            | Security::CurveServer {
                authenticator: a, ..
            }
            | Security::PlainServer {
                authenticator: a, ..
            } => Some(a),
            _ => None,
        }
    }

    /// A fresh mechanism for one connection.
    pub(crate) fn mechanism(&self) -> Result<Box<dyn Mechanism>, ProtocolError> {
        Ok(match self {
            Security::Null => Box::new(Null::new()),
            Security::NullAuthenticated(_) => Box::new(Null::with_authentication()),
            Security::CurveServer { keys, .. } => Box::new(CurveServer::new(keys.clone())),
            Security::CurveClient { keys, server_key } => {
                Box::new(CurveClient::new(keys.clone(), *server_key))
            }
            Security::PlainServer { .. } => Box::new(PlainServer::new()),
            Security::PlainClient {
                username, password, ..
            } => Box::new(PlainClient::new(username.as_bytes(), password.as_bytes())?),
        })
    }
}
