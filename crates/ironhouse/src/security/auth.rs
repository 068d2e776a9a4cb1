//! The [`Authenticator`] trait (ZAP's semantics, RFC 27) and the simple
//! built-in authenticators.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use ironhouse_zmtp::{CurvePublicKey, Metadata};

use super::pki::PeerCertificate;

/// What an authenticator is asked (ZAP's request).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthRequest {
    /// ZAP domain: the socket's security domain (empty by default).
    pub domain: String,
    /// The peer's address, as an endpoint string (`tcp://1.2.3.4:5678`,
    /// `tls://1.2.3.4:5678`, `ipc:///path`).
    pub address: String,
    /// `"NULL"`, `"PLAIN"` or `"CURVE"`.
    pub mechanism: &'static str,
    /// CURVE: the client's long-term public key.
    pub curve_key: Option<CurvePublicKey>,
    /// PLAIN: the user name.
    pub username: Option<String>,
    /// PLAIN: the password. Never log it.
    pub password: Option<String>,
    /// The peer's handshake metadata so far.
    pub metadata: Metadata,
    /// `tls://` with client certificates: the client's certificate, already
    /// verified against the server's CA (subject, DNS names, IP addresses,
    /// fingerprint). `None` on other transports.
    pub tls_peer: Option<PeerCertificate>,
}

/// An authenticator's answer (ZAP's reply).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Admit the peer as this user (ZAP status 200).
    Allow {
        /// User id, visible to the application.
        user_id: String,
    },
    /// Refuse the peer.
    Deny {
        /// ZAP status: 300 temporary error, 400 denied, 500 internal error.
        status: u16,
        /// Why; sent to the peer and logged on both sides.
        reason: String,
    },
}

impl AuthDecision {
    /// Allow, as `user_id`.
    pub fn allow(user_id: impl Into<String>) -> Self {
        AuthDecision::Allow {
            user_id: user_id.into(),
        }
    }

    /// Deny with status 400.
    pub fn deny(reason: impl Into<String>) -> Self {
        AuthDecision::Deny {
            status: 400,
            reason: reason.into(),
        }
    }
}

/// Decides whether a peer may connect. Called once per handshake, on the
/// connection's task; keep it quick (it may read a cached folder or table).
///
/// ```
/// use ironhouse::security::{AuthDecision, AuthRequest, Authenticator};
/// struct OnlyLocal;
/// impl Authenticator for OnlyLocal {
///     fn authenticate(&self, req: &AuthRequest) -> AuthDecision {
///         if req.address.starts_with("tcp://127.") { AuthDecision::allow("local") }
///         else { AuthDecision::deny("only loopback peers are allowed") }
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// The decision for one peer.
    fn authenticate(&self, request: &AuthRequest) -> AuthDecision;
}

impl<F> Authenticator for F
where
    F: Fn(&AuthRequest) -> AuthDecision + Send + Sync + 'static,
{
    fn authenticate(&self, request: &AuthRequest) -> AuthDecision {
        self(request)
    }
}

/// Admits everyone (StoneHouse: CURVE still proves the server's identity and
/// encrypts). The user id is the client's CURVE key in Z85, if any.
#[derive(Debug, Default, Clone, Copy)]
pub struct AllowAny;

impl Authenticator for AllowAny {
    fn authenticate(&self, request: &AuthRequest) -> AuthDecision {
        AuthDecision::allow(request.curve_key.map(|k| k.to_z85()).unwrap_or_default())
    }
}

/// PLAIN user names and passwords.
#[derive(Default, Clone)]
pub struct PasswordTable {
    users: HashMap<String, String>,
}

impl fmt::Debug for PasswordTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordTable({} users)", self.users.len())
    }
}

impl PasswordTable {
    /// An empty table (denies everyone).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a user.
    pub fn with_user(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(username.into(), password.into());
        self
    }

    /// Parses `user:password` lines (blank lines and `#` comments ignored).
    ///
    /// # Errors
    /// The number of a line without a colon.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut t = PasswordTable::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (u, p) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected user:password", i + 1))?;
            t.users.insert(u.to_string(), p.to_string());
        }
        Ok(t)
    }
}

/// Compares without an early exit, so response time says nothing about how
/// much of a password matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator for PasswordTable {
    fn authenticate(&self, request: &AuthRequest) -> AuthDecision {
        let (Some(user), Some(pass)) = (&request.username, &request.password) else {
            return AuthDecision::deny("a user name and password are required");
        };
        match self.users.get(user) {
            Some(p) if constant_time_eq(p.as_bytes(), pass.as_bytes()) => {
                AuthDecision::allow(user.clone())
            }
            // The same answer for unknown users and wrong passwords.
            _ => AuthDecision::deny("wrong user name or password"),
        }
    }
}

/// One password for everyone: PLAIN peers are admitted with any user name
/// and this password (compared in constant time). The user id is the name
/// they gave. For services with a single shared secret, such as a relay
/// serving tlspyo-style `password=` endpoints.
pub struct SharedPassword {
    password: String,
}

impl SharedPassword {
    /// Admits PLAIN peers that give this password.
    pub fn new(password: impl Into<String>) -> Self {
        SharedPassword {
            password: password.into(),
        }
    }
}

impl fmt::Debug for SharedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPassword").finish_non_exhaustive()
    }
}

impl Authenticator for SharedPassword {
    fn authenticate(&self, request: &AuthRequest) -> AuthDecision {
        match &request.password {
            Some(p) if constant_time_eq(p.as_bytes(), self.password.as_bytes()) => {
                AuthDecision::allow(request.username.clone().unwrap_or_default())
            }
            _ => AuthDecision::deny("wrong password"),
        }
    }
}

/// Allows or denies by peer IP address (ZAP's address checks), then hands
/// admitted peers to an inner authenticator.
pub struct AddressFilter<A> {
    allow: Vec<IpAddr>,
    deny: Vec<IpAddr>,
    inner: A,
}

impl<A> fmt::Debug for AddressFilter<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressFilter")
            .field("allow", &self.allow)
            .field("deny", &self.deny)
            .finish_non_exhaustive()
    }
}

impl<A: Authenticator> AddressFilter<A> {
    /// With an allow list, only listed addresses pass; otherwise everyone but
    /// the deny list does.
    pub fn new(allow: Vec<IpAddr>, deny: Vec<IpAddr>, inner: A) -> Self {
        AddressFilter { allow, deny, inner }
    }
}

fn ip_of(address: &str) -> Option<IpAddr> {
    let rest = address
        .strip_prefix("tcp://")
        .or_else(|| address.strip_prefix("tls://"))?;
    let host = rest
        .rsplit_once(':')?
        .0
        .trim_start_matches('[')
        .trim_end_matches(']');
    host.parse().ok()
}

impl<A: Authenticator> Authenticator for AddressFilter<A> {
    fn authenticate(&self, request: &AuthRequest) -> AuthDecision {
        let ip = ip_of(&request.address);
        let listed = |l: &[IpAddr]| ip.is_some_and(|ip| l.contains(&ip));
        if listed(&self.deny) || (!self.allow.is_empty() && !listed(&self.allow)) {
            return AuthDecision::deny(format!("address {} is not allowed", request.address));
        }
        self.inner.authenticate(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(address: &str) -> AuthRequest {
        AuthRequest {
            domain: String::new(),
            address: address.into(),
            mechanism: "PLAIN",
            curve_key: None,
            username: Some("admin".into()),
            password: Some("pw".into()),
            metadata: Metadata::new(),
            tls_peer: None,
        }
    }

    #[test]
    fn passwords() {
        let t = PasswordTable::parse("# users\nadmin:pw\n\nbob:x:y\n").unwrap();
        assert_eq!(
            t.authenticate(&req("tcp://127.0.0.1:1")),
            AuthDecision::allow("admin")
        );
        let mut r = req("tcp://127.0.0.1:1");
        r.password = Some("nope".into());
        assert_eq!(
            t.authenticate(&r),
            AuthDecision::deny("wrong user name or password")
        );
        r.username = Some("bob".into());
        r.password = Some("x:y".into());
        assert_eq!(t.authenticate(&r), AuthDecision::allow("bob"));
        assert!(PasswordTable::parse("nocolon").is_err());
    }

    #[test]
    fn shared_password_admits_any_name_with_the_password_only() {
        let a = SharedPassword::new("pw");
        assert_eq!(
            a.authenticate(&req("tcp://127.0.0.1:1")),
            AuthDecision::allow("admin")
        );
        let mut r = req("tcp://127.0.0.1:1");
        r.password = Some("pw ".into());
        assert_eq!(a.authenticate(&r), AuthDecision::deny("wrong password"));
        r.password = None;
        assert_eq!(a.authenticate(&r), AuthDecision::deny("wrong password"));
        assert!(!format!("{a:?}").contains("pw"), "never shows the password");
    }

    #[test]
    fn addresses() {
        let f = AddressFilter::new(vec!["127.0.0.1".parse().unwrap()], vec![], AllowAny);
        assert!(matches!(
            f.authenticate(&req("tcp://127.0.0.1:5")),
            AuthDecision::Allow { .. }
        ));
        assert!(matches!(
            f.authenticate(&req("tcp://10.0.0.1:5")),
            AuthDecision::Deny { status: 400, .. }
        ));
        assert!(matches!(
            f.authenticate(&req("tls://127.0.0.1:5")),
            AuthDecision::Allow { .. }
        ));
        assert!(matches!(
            f.authenticate(&req("tls://10.0.0.1:5")),
            AuthDecision::Deny { .. }
        ));
        let f = AddressFilter::new(vec![], vec!["::1".parse().unwrap()], AllowAny);
        assert!(matches!(
            f.authenticate(&req("tcp://[::1]:5")),
            AuthDecision::Deny { .. }
        ));
        assert!(matches!(
            f.authenticate(&req("tcp://127.0.0.1:5")),
            AuthDecision::Allow { .. }
        ));
    }
}
