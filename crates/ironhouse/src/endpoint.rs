//! Endpoint strings: `tcp://host:port`, `ipc://path` and `tls://host:port`,
//! as ZeroMQ writes them (`tls://` is ironhouse's: ZMTP inside TLS).
//!
//! `tcp://*:port` binds every interface; port `*` or `0` picks a free port
//! (the bound socket reports the real one). IPv6 addresses go in brackets:
//! `tcp://[::1]:5555`. `tls://` takes the same forms as `tcp://`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// TCP: a host (name, IPv4, IPv6 without brackets, or `*`) and a port
    /// (0 = any free port when binding).
    Tcp {
        /// Host name or address; `*` binds all interfaces.
        host: String,
        /// Port number.
        port: u16,
    },
    /// A Unix domain socket at a file-system path.
    Ipc(PathBuf),
    /// TLS over TCP: same host and port forms as [`Endpoint::Tcp`]. The
    /// client checks the server's certificate against `host` unless told
    /// another name.
    Tls {
        /// Host name or address; `*` binds all interfaces.
        host: String,
        /// Port number.
        port: u16,
    },
}

impl Endpoint {
    /// Checks that the endpoint names a peer one can connect to (`*` only
    /// makes sense for binding).
    ///
    /// # Errors
    /// [`Error::InvalidEndpoint`] for `tcp://*:port` and port 0.
    pub fn check_connectable(&self) -> Result<(), Error> {
        match self {
            Endpoint::Tcp { host, .. } | Endpoint::Tls { host, .. } if host == "*" => {
                Err(Error::InvalidEndpoint {
                    endpoint: self.to_string(),
                    reason: "cannot connect to *; name a host".into(),
                })
            }
            Endpoint::Tcp { port: 0, .. } | Endpoint::Tls { port: 0, .. } => {
                Err(Error::InvalidEndpoint {
                    endpoint: self.to_string(),
                    reason: "cannot connect to port 0 or *; name a port".into(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The scheme, for messages: `tcp`, `ipc` or `tls`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Endpoint::Tcp { .. } => "tcp",
            Endpoint::Ipc(_) => "ipc",
            Endpoint::Tls { .. } => "tls",
        }
    }

    /// Whether the transport itself encrypts (`tls://`): PLAIN passwords are
    /// then safe to send.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Endpoint::Tls { .. })
    }

    /// Whether only this machine can be at the other end: `ipc://`, or a
    /// TCP/TLS host that is a loopback address or `localhost`. `*` and
    /// other names are not (they may be reached from elsewhere).
    ///
    /// ```
    /// use ironhouse::Endpoint;
    /// let local = |s: &str| s.parse::<Endpoint>().unwrap().is_local();
    /// assert!(local("tcp://127.0.0.1:5000") && local("tcp://[::1]:5000"));
    /// assert!(local("tcp://localhost:5000") && local("ipc:///tmp/db.sock"));
    /// assert!(!local("tcp://*:5000") && !local("tcp://0.0.0.0:5000"));
    /// assert!(!local("tcp://db.example:5000"));
    /// ```
    pub fn is_local(&self) -> bool {
        match self {
            Endpoint::Ipc(_) => true,
            Endpoint::Tcp { host, .. } | Endpoint::Tls { host, .. } => {
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Tls { host, port } if host.contains(':') => {
                write!(f, "tls://[{host}]:{port}")
            }
            Endpoint::Tls { host, port } => write!(f, "tls://{host}:{port}"),
            Endpoint::Ipc(p) => write!(f, "ipc://{}", p.display()),
        }
    }
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidEndpoint {
            endpoint: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://address, for example tcp://127.0.0.1:5555"))?;
        match scheme {
            "tcp" | "tls" => {
                let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                    let (h, p) = v6
                        .split_once("]:")
                        .ok_or_else(|| bad("IPv6 address needs the form [addr]:port"))?;
                    (h, p)
                } else {
                    rest.rsplit_once(':').ok_or_else(|| bad("missing :port"))?
                };
                if host.is_empty() {
                    return Err(bad("missing host (use * to bind every interface)"));
                }
                if host.contains(':') && !rest.starts_with('[') {
                    return Err(bad(&format!(
                        "IPv6 addresses must be in brackets: {scheme}://[::1]:5555"
                    )));
                }
                let port = match port {
                    "*" => 0,
                    p => p
                        .parse::<u16>()
                        .map_err(|_| bad("port must be a number from 0 to 65535, or *"))?,
                };
                let host = host.to_string();
                Ok(if scheme == "tls" {
                    Endpoint::Tls { host, port }
                } else {
                    Endpoint::Tcp { host, port }
                })
            }
            "ipc" => {
                if rest.is_empty() {
                    return Err(bad("missing path"));
                }
                Ok(Endpoint::Ipc(PathBuf::from(rest)))
            }
            "inproc" | "pgm" | "epgm" | "udp" | "ws" | "wss" => Err(bad(
                "transport not supported (use tcp://, ipc:// or tls://)",
            )),
            _ => Err(bad("unknown transport (use tcp://, ipc:// or tls://)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for (s, want) in [
            ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555"),
            ("tcp://*:*", "tcp://*:0"),
            ("tcp://[::1]:80", "tcp://[::1]:80"),
            ("tcp://localhost:1", "tcp://localhost:1"),
            ("ipc:///tmp/x.sock", "ipc:///tmp/x.sock"),
            ("tls://localhost:5555", "tls://localhost:5555"),
            ("tls://*:*", "tls://*:0"),
            ("tls://[::1]:443", "tls://[::1]:443"),
        ] {
            assert_eq!(s.parse::<Endpoint>().unwrap().to_string(), want);
        }
    }

    #[test]
    fn rejects_with_reasons() {
        for s in [
            "127.0.0.1:5",
            "tcp://127.0.0.1",
            "tcp://:5",
            "tcp://h:99999",
            "tcp://::1:5",
            "udp://x:1",
            "ipc://",
            "foo://x",
            "tls://host",
            "tls://::1:5",
        ] {
            let e = s.parse::<Endpoint>().unwrap_err().to_string();
            assert!(e.contains(s), "{e}");
        }
        let tls: Endpoint = "tls://127.0.0.1:9".parse().unwrap();
        assert!(tls.is_encrypted() && tls.scheme() == "tls");
        assert!("tls://*:9"
            .parse::<Endpoint>()
            .unwrap()
            .check_connectable()
            .is_err());
        let e = "udp://x:1".parse::<Endpoint>().unwrap_err().to_string();
        assert!(e.contains("tls://"), "{e}");
    }
}
