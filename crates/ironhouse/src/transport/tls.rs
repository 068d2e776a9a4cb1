//! `tls://host:port`: ZMTP over TLS, with rustls and one crypto provider
//! (aws-lc-rs). TLS is a transport here, under the same ZMTP framing, so
//! NULL, PLAIN and CURVE all run on top of it; PLAIN needs no
//! `allow_plaintext_password` on `tls://` because the password is encrypted.
//!
//! | side | trust | gives |
//! |---|---|---|
//! | [`TlsServer`] | certificate chain + key | server authenticated |
//! | [`TlsServer::require_client_certs_from`] | + a CA for clients | both sides authenticated (mTLS) |
//! | [`TlsClient::trusting_ca_file`] | CA certificates; name checked | server authenticated |
//! | [`TlsClient::pinned`] | one certificate's SHA-256 ([`danger`]) | self-signed or IP-only servers |
//! | [`TlsClient::with_client_cert_files`] | the client's own certificate | for mTLS servers |
//!
//! TLS 1.3 only by default; `allow_tls12()` on either side's configuration
//! also accepts TLS 1.2 there, for peers without 1.3. The handshake is bounded by [`Options::handshake_timeout`](crate::Options);
//! servers run it in the connection's own task, so a slow client never holds
//! up the accept loop. Failures are explained in plain words naming the side
//! that refused (see `explain`), and the peer's certificate reaches the
//! application as a [`PeerCertificate`].
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ironhouse::transport::tls::{TlsClient, TlsServer};
//! use ironhouse::{Options, Socket, SocketType};
//!
//! let server = TlsServer::from_pem_files("server.pem", "server.key")?
//!     .require_client_certs_from("ca.pem")?;
//! let mut rep = Socket::with_options(SocketType::Rep, Options::default().tls_server(server));
//! let ep = rep.bind("tls://127.0.0.1:*").await?;
//!
//! let client = TlsClient::trusting_ca_file("ca.pem")?
//!     .with_client_cert_files("client.pem", "client.key")?;
//! let mut req = Socket::with_options(SocketType::Req, Options::default().tls_client(client));
//! req.connect(&ep.to_string()).await?;
//! # Ok(()) }
//! ```

pub mod danger;
mod explain;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use explain::Side;
use explain::{explain, Explained};

use super::Conn;
use crate::security::pki::{self, Fingerprint, PeerCertificate, PkiError};

/// The one crypto provider, shared by every configuration.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = rustls::crypto::aws_lc_rs::default_provider();
            // AES-128-GCM first (Go's crypto/tls makes the same choice): the
            // X25519 key exchange gives a 128-bit security level, so
            // AES-256 adds rounds, not strength (measured: 4 AES-GCM passes
            // per relayed object are a fifth of a 1 MiB TLS broadcast's CPU
            // time). The server follows the client's order, so peers that
            // prefer AES-256 still get it.
            p.cipher_suites
                .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
            Arc::new(p)
        })
        .clone()
}

fn versions(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&TLS13];
    static TLS13_AND_12: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];
    if tls12 {
        &TLS13_AND_12
    } else {
        &TLS13_ONLY
    }
}

fn config_error(e: impl fmt::Display) -> PkiError {
    PkiError::Config(format!("TLS configuration: {e}"))
}

/// A root store from CA certificates; `source` names them in errors.
fn roots(cas: Vec<CertificateDer<'static>>, source: &str) -> Result<RootCertStore, PkiError> {
    let mut store = RootCertStore::empty();
    for (i, ca) in cas.into_iter().enumerate() {
        store.add(ca).map_err(|e| {
            PkiError::Config(format!(
                "{source}: certificate #{} is not a usable CA certificate: {e}",
                i + 1
            ))
        })?;
    }
    if store.is_empty() {
        return Err(PkiError::Config(format!("{source}: no CA certificate")));
    }
    Ok(store)
}

/// A certificate chain and its private key.
#[derive(Clone)]
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    fn from_files(chain: &Path, key: &Path) -> Result<Identity, PkiError> {
        Ok(Identity {
            chain: pki::load_certs(chain)?,
            key: Arc::new(pki::load_private_key(key)?),
        })
    }

    fn fingerprint(&self) -> Option<Fingerprint> {
        self.chain.first().map(|c| Fingerprint::of(c.as_ref()))
    }
}

/// The server side of `tls://`: its certificate and key, and optionally the
/// CA its clients' certificates must come from. Set it with
/// [`Options::tls_server`](crate::Options::tls_server) on a socket that binds
/// `tls://`.
///
/// ```no_run
/// use ironhouse::transport::tls::TlsServer;
/// let server = TlsServer::from_pem_files("server.pem", "server.key")?;
/// println!("clients may pin {}", server.fingerprint());
/// # Ok::<(), ironhouse::security::pki::PkiError>(())
/// ```
#[derive(Clone)]
pub struct TlsServer {
    identity: Identity,
    client_roots: Option<Arc<RootCertStore>>,
    tls12: bool,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("certificate", &self.identity.fingerprint())
            .field("chain_len", &self.identity.chain.len())
            .field("client_certs_required", &self.client_roots.is_some())
            .field("tls12", &self.tls12)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Loads the certificate chain (leaf first) and the private key from PEM
    /// files.
    ///
    /// # Errors
    /// [`PkiError`] naming the file that cannot be read or parsed, or saying
    /// that the key does not match the certificate.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsServer, PkiError> {
        let server = TlsServer {
            identity: Identity::from_files(cert_chain.as_ref(), key.as_ref())?,
            client_roots: None,
            tls12: false,
        };
        server.config()?;
        Ok(server)
    }

    /// Uses an in-memory chain (leaf first) and key.
    ///
    /// # Errors
    /// [`PkiError::Config`] if the chain is empty or the key does not match.
    pub fn from_der(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsServer, PkiError> {
        let server = TlsServer {
            identity: Identity {
                chain: cert_chain,
                key: Arc::new(key),
            },
            client_roots: None,
            tls12: false,
        };
        server.config()?;
        Ok(server)
    }

    /// Requires every client to present a certificate signed by a CA in
    /// this PEM file; clients without one are refused during the handshake
    /// ("certificate required").
    ///
    /// # Errors
    /// [`PkiError`] naming the file if it cannot be read or holds no usable
    /// CA certificate.
    pub fn require_client_certs_from(
        self,
        ca_pem_file: impl AsRef<Path>,
    ) -> Result<TlsServer, PkiError> {
        let path = ca_pem_file.as_ref();
        let store = roots(pki::load_certs(path)?, &path.display().to_string())?;
        self.with_client_roots(store)
    }

    /// As [`TlsServer::require_client_certs_from`], with in-memory CA
    /// certificates.
    ///
    /// # Errors
    /// [`PkiError::Config`] if no certificate is a usable CA.
    pub fn require_client_certs_from_der(
        self,
        cas: Vec<CertificateDer<'static>>,
    ) -> Result<TlsServer, PkiError> {
        self.with_client_roots(roots(cas, "client CA certificates")?)
    }

    fn with_client_roots(mut self, store: RootCertStore) -> Result<TlsServer, PkiError> {
        self.client_roots = Some(Arc::new(store));
        self.config()?;
        Ok(self)
    }

    /// Also accepts TLS 1.2 clients (default: TLS 1.3 only).
    pub fn allow_tls12(mut self) -> TlsServer {
        self.tls12 = true;
        self
    }

    /// The SHA-256 fingerprint of the server's certificate, for clients that
    /// pin it ([`TlsClient::pinned`]).
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint().unwrap_or(Fingerprint([0; 32]))
    }

    /// The rustls configuration `tls://` listeners use, for servers that
    /// speak another protocol over the same TLS (the relay's tlspyo
    /// listener).
    ///
    /// # Errors
    /// [`PkiError::Config`] if the chain is empty or the key does not match.
    pub fn rustls_config(&self) -> Result<Arc<ServerConfig>, PkiError> {
        self.config()
    }

    fn config(&self) -> Result<Arc<ServerConfig>, PkiError> {
        if self.identity.chain.is_empty() {
            return Err(PkiError::Config(
                "TLS server: empty certificate chain".into(),
            ));
        }
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(self.tls12))
            .map_err(config_error)?;
        let builder = match &self.client_roots {
            Some(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                    .build()
                    .map_err(config_error)?,
            ),
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(self.identity.chain.clone(), self.identity.key.clone_key())
            .map_err(config_error)?;
        Ok(Arc::new(config))
    }

    /// What a listener needs to run handshakes.
    pub(crate) fn acceptor(&self, timeout: Option<Duration>) -> Result<Acceptor, PkiError> {
        Ok(Acceptor {
            inner: TlsAcceptor::from(self.config()?),
            timeout,
        })
    }
}

/// How a [`TlsClient`] decides to trust a server.
#[derive(Clone)]
enum Trust {
    Roots(Arc<RootCertStore>),
    Pinned(Fingerprint),
}

/// The client side of `tls://`: whom to trust (CA certificates, or one
/// pinned certificate), the name to check, and optionally a client
/// certificate. Set it with [`Options::tls_client`](crate::Options::tls_client).
///
/// ```no_run
/// use ironhouse::transport::tls::TlsClient;
/// // A server known by its CA, reached by IP but certified as "relay":
/// let by_ca = TlsClient::trusting_ca_file("ca.pem")?.server_name("relay");
/// // A self-signed server, by the fingerprint of its certificate:
/// let pin = ironhouse::security::Fingerprint::of_pem_file("relay.pem")?;
/// let pinned = TlsClient::pinned(pin);
/// # Ok::<(), ironhouse::security::pki::PkiError>(())
/// ```
#[derive(Clone)]
pub struct TlsClient {
    trust: Trust,
    server_name: Option<String>,
    identity: Option<Identity>,
    tls12: bool,
    /// Built on first use and kept, so reconnections can resume sessions.
    config: Arc<OnceLock<Result<Arc<ClientConfig>, String>>>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trust = match &self.trust {
            Trust::Roots(r) => format!("{} CA certificates", r.len()),
            Trust::Pinned(p) => format!("pinned {p}"),
        };
        f.debug_struct("TlsClient")
            .field("trust", &trust)
            .field("server_name", &self.server_name)
            .field(
                "client_certificate",
                &self.identity.as_ref().and_then(Identity::fingerprint),
            )
            .field("tls12", &self.tls12)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    fn new(trust: Trust) -> TlsClient {
        TlsClient {
            trust,
            server_name: None,
            identity: None,
            tls12: false,
            config: Arc::default(),
        }
    }

    /// Trusts servers whose certificate chains to a CA in this PEM file (a
    /// self-signed server certificate works too: it is its own CA). The
    /// server's name must match (see [`TlsClient::server_name`]).
    ///
    /// # Errors
    /// [`PkiError`] naming the file if it cannot be read or holds no usable
    /// CA certificate.
    pub fn trusting_ca_file(ca_pem_file: impl AsRef<Path>) -> Result<TlsClient, PkiError> {
        let path = ca_pem_file.as_ref();
        let store = roots(pki::load_certs(path)?, &path.display().to_string())?;
        Ok(TlsClient::new(Trust::Roots(Arc::new(store))))
    }

    /// As [`TlsClient::trusting_ca_file`], with in-memory CA certificates.
    ///
    /// # Errors
    /// [`PkiError::Config`] if no certificate is a usable CA.
    pub fn trusting_der(cas: Vec<CertificateDer<'static>>) -> Result<TlsClient, PkiError> {
        let store = roots(cas, "trusted CA certificates")?;
        Ok(TlsClient::new(Trust::Roots(Arc::new(store))))
    }

    /// Trusts exactly the server certificate with this SHA-256 fingerprint,
    /// whatever its issuer, names or dates (see [`danger::PinnedServerCert`]):
    /// for self-signed or IP-only servers. The server must still prove it
    /// holds the certificate's key.
    pub fn pinned(fingerprint: Fingerprint) -> TlsClient {
        TlsClient::new(Trust::Pinned(fingerprint))
    }

    /// The name the server's certificate must carry (and the SNI sent).
    /// Default: the endpoint's host. tlspyo's servers use `"default"`.
    pub fn server_name(mut self, name: impl Into<String>) -> TlsClient {
        self.server_name = Some(name.into());
        self
    }

    /// Presents this certificate chain (leaf first) and key to servers that
    /// require client certificates.
    ///
    /// # Errors
    /// [`PkiError`] naming the file that cannot be read or parsed, or saying
    /// that the key does not match the certificate.
    pub fn with_client_cert_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsClient, PkiError> {
        self.with_identity(Identity::from_files(cert_chain.as_ref(), key.as_ref())?)
    }

    /// As [`TlsClient::with_client_cert_files`], in memory.
    ///
    /// # Errors
    /// [`PkiError::Config`] if the chain is empty or the key does not match.
    pub fn with_client_cert_der(
        self,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsClient, PkiError> {
        self.with_identity(Identity {
            chain: cert_chain,
            key: Arc::new(key),
        })
    }

    fn with_identity(mut self, identity: Identity) -> Result<TlsClient, PkiError> {
        if identity.chain.is_empty() {
            return Err(PkiError::Config(
                "TLS client: empty certificate chain".into(),
            ));
        }
        self.identity = Some(identity);
        self.config = Arc::default();
        self.build()?;
        Ok(self)
    }

    /// Also speaks TLS 1.2 to servers that cannot do 1.3 (default: 1.3 only).
    pub fn allow_tls12(mut self) -> TlsClient {
        self.tls12 = true;
        self.config = Arc::default();
        self
    }

    fn build(&self) -> Result<Arc<ClientConfig>, PkiError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions(self.tls12))
            .map_err(config_error)?;
        let builder = match &self.trust {
            Trust::Roots(roots) => builder.with_root_certificates(roots.clone()),
            Trust::Pinned(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(danger::PinnedServerCert::new(
                    *pin,
                    provider().signature_verification_algorithms,
                ))),
        };
        let config = match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(config_error)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    fn connector(&self) -> Result<TlsConnector, String> {
        self.config
            .get_or_init(|| self.build().map_err(|e| e.to_string()))
            .clone()
            .map(TlsConnector::from)
    }

    fn name_for(&self, host: &str) -> io::Result<ServerName<'static>> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_string()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TLS: {name:?} is not a valid server name (DNS name or IP address); set TlsClient::server_name"),
            )
        })
    }
}

/// A bound `tls://` listener's handshake settings.
#[derive(Clone)]
pub(crate) struct Acceptor {
    inner: TlsAcceptor,
    timeout: Option<Duration>,
}

fn timed_out(limit: Option<Duration>) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "TLS: the handshake did not complete within {:?} (handshake timeout)",
            limit.unwrap_or_default()
        ),
    )
}

async fn bounded<F: std::future::Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(l) => tokio::time::timeout(l, f).await.ok(),
        None => Some(f.await),
    }
}

/// After a refused handshake: stop writing, then read until the peer hangs
/// up (bounded), so it reads our alert before the connection is torn down
/// rather than a reset.
async fn close_gently<S: AsyncRead + AsyncWrite + Unpin>(mut tcp: S) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.shutdown().await;
        let mut sink = [0u8; 1024];
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

fn established<S>(stream: S, peer: String, side: Side, cert: Option<PeerCertificate>) -> Conn
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (r, w) = tokio::io::split(stream);
    Conn {
        reader: Box::new(Explained { inner: r, side }),
        writer: Box::new(Explained { inner: w, side }),
        peer,
        tls_peer: cert,
        buffered: true,
    }
}

fn first_cert(certs: Option<&[CertificateDer<'static>]>) -> Option<PeerCertificate> {
    certs.and_then(<[_]>::first).map(PeerCertificate::from_der)
}

/// Runs the client handshake on a connected stream (TCP, or an SSH channel).
pub(crate) async fn connect<S>(
    tcp: S,
    peer: String,
    host: &str,
    client: &TlsClient,
    limit: Option<Duration>,
) -> io::Result<Conn>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let connector = client
        .connector()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let name = client.name_for(host)?;
    let handshake = connector.connect(name, tcp).into_fallible();
    match bounded(limit, handshake).await {
        Some(Ok(stream)) => {
            let cert = first_cert(stream.get_ref().1.peer_certificates());
            Ok(established(stream, peer, Side::Client, cert))
        }
        Some(Err((e, tcp))) => {
            close_gently(tcp).await;
            Err(explain(e, Side::Client))
        }
        None => Err(timed_out(limit)),
    }
}

impl Acceptor {
    /// Runs the server handshake on an accepted TCP stream.
    pub(crate) async fn accept(&self, tcp: TcpStream, peer: String) -> io::Result<Conn> {
        let handshake = self.inner.accept(tcp).into_fallible();
        match bounded(self.timeout, handshake).await {
            Some(Ok(stream)) => {
                let cert = first_cert(stream.get_ref().1.peer_certificates());
                Ok(established(stream, peer, Side::Server, cert))
            }
            Some(Err((e, tcp))) => {
                close_gently(tcp).await;
                Err(explain(e, Side::Server))
            }
            None => Err(timed_out(self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_inputs_are_clear_errors() {
        let e = TlsClient::trusting_der(vec![]).unwrap_err().to_string();
        assert!(e.contains("no CA certificate"), "{e}");
        let e = TlsClient::trusting_ca_file("/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = TlsServer::from_pem_files("/nonexistent/s.pem", "/nonexistent/s.key")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/s.pem"), "{e}");
    }

    #[test]
    fn server_names() {
        let c = TlsClient::pinned(Fingerprint([1; 32]));
        assert!(matches!(
            c.name_for("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(c.name_for("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            c.name_for("localhost"),
            Ok(ServerName::DnsName(_))
        ));
        let c = c.server_name("bad name!");
        let e = c.name_for("localhost").unwrap_err().to_string();
        assert!(e.contains("not a valid server name"), "{e}");
    }
}
