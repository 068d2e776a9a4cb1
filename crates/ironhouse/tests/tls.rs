//! `tls://` end to end on loopback: certificates made by rcgen (a CA, a
//! server certificate for "localhost" and 127.0.0.1, client certificates
//! from that CA and from another, a self-signed and an expired one), then
//! REQ/REP either way round, mutual TLS, every refusal with the side and the
//! cause in its message, PLAIN and CURVE over TLS, the peer certificate as
//! the authenticator and monitor see it, and a recording proxy showing the
//! payload never crosses the wire in clear.
//!
//! Every wait is bounded (`common::within`, `common::wait_event`).

mod common;

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use ironhouse::security::pki::{Fingerprint, PeerCertificate, PrivateKeyDer};
use ironhouse::security::{AuthDecision, AuthRequest, PasswordTable, Security};
use ironhouse::transport::tls::{TlsClient, TlsServer};
use ironhouse::{CurveKeyPair, Error, Options, Socket, SocketEvent, SocketType};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A folder of PEM files, removed when dropped.
struct Pki {
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate signed by `issuer`; returns (cert PEM, key PEM).
fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
    expired: bool,
) -> (String, String) {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "ironhouse tests");
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// ca.pem, server.{pem,key}, client.{pem,key}, other-ca.pem,
    /// stranger.{pem,key} (client cert from the other CA), rogue.{pem,key}
    /// (server cert from the other CA), self.{pem,key} (self-signed, for
    /// "relay.invalid" only), expired.{pem,key}.
    fn new() -> Pki {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ironhouse-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir };
        let ours = ca("ironhouse test CA");
        let other = ca("some other CA");
        pki.write("ca.pem", &ours.as_ref().pem());
        pki.write("other-ca.pem", &other.as_ref().pem());
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let client = ExtendedKeyUsagePurpose::ClientAuth;
        let sans = ["localhost", "127.0.0.1"];
        pki.pair(
            "server",
            leaf(&ours, "server", &sans, server.clone(), false),
        );
        pki.pair(
            "client",
            leaf(
                &ours,
                "client one",
                &["client1.test", "10.1.2.3"],
                client.clone(),
                false,
            ),
        );
        pki.pair(
            "stranger",
            leaf(&other, "stranger", &["x.test"], client, false),
        );
        pki.pair("rogue", leaf(&other, "rogue", &sans, server.clone(), false));
        pki.pair("expired", leaf(&ours, "expired", &sans, server, true));
        let own = rcgen::generate_simple_self_signed(vec!["relay.invalid".to_string()]).unwrap();
        pki.pair("self", (own.cert.pem(), own.signing_key.serialize_pem()));
        pki
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.dir.join(name), text).unwrap();
    }

    fn pair(&self, name: &str, (cert, key): (String, String)) {
        self.write(&format!("{name}.pem"), &cert);
        self.write(&format!("{name}.key"), &key);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn server(&self, name: &str) -> TlsServer {
        TlsServer::from_pem_files(
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        )
        .unwrap()
    }

    fn mtls_server(&self) -> TlsServer {
        self.server("server")
            .require_client_certs_from(self.path("ca.pem"))
            .unwrap()
    }

    fn client(&self) -> TlsClient {
        TlsClient::trusting_ca_file(self.path("ca.pem")).unwrap()
    }

    fn client_with_cert(&self, name: &str) -> TlsClient {
        self.client()
            .with_client_cert_files(
                self.path(&format!("{name}.pem")),
                self.path(&format!("{name}.key")),
            )
            .unwrap()
    }
}

fn server_opts(tls: TlsServer) -> Options {
    Options::default().tls_server(tls)
}

fn client_opts(tls: TlsClient) -> Options {
    Options::default().tls_client(tls)
}

async fn bind(kind: SocketType, opts: Options) -> (Socket, String) {
    let mut s = Socket::with_options(kind, opts);
    let ep = s.bind("tls://127.0.0.1:*").await.expect("bind tls://");
    assert!(ep.to_string().starts_with("tls://127.0.0.1:"), "{ep}");
    (s, ep.to_string())
}

/// One REQ/REP round trip.
async fn round_trip(req: &mut Socket, rep: &mut Socket, text: &str) {
    send(req, text.to_string()).await;
    assert_eq!(single(&recv(rep).await), text.as_bytes());
    send(rep, format!("re: {text}")).await;
    assert_eq!(single(&recv(req).await), format!("re: {text}").as_bytes());
}

/// The next `Connected` event's TLS peer certificate.
async fn connected_cert(
    rx: &mut tokio::sync::broadcast::Receiver<SocketEvent>,
) -> Option<Box<PeerCertificate>> {
    match wait_event(rx, "Connected", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await
    {
        SocketEvent::Connected { tls_peer, .. } => tls_peer,
        _ => unreachable!(),
    }
}

/// The next `HandshakeFailed` or `ConnectFailed` reason.
async fn refusal(rx: &mut tokio::sync::broadcast::Receiver<SocketEvent>) -> String {
    match wait_event(rx, "HandshakeFailed or ConnectFailed", |e| {
        matches!(
            e,
            SocketEvent::HandshakeFailed { .. } | SocketEvent::ConnectFailed { .. }
        )
    })
    .await
    {
        SocketEvent::HandshakeFailed { reason, .. } | SocketEvent::ConnectFailed { reason, .. } => {
            reason
        }
        _ => unreachable!(),
    }
}

fn assert_mentions(text: &str, parts: &[&str]) {
    eprintln!("message: {text}");
    for p in parts {
        assert!(text.contains(p), "expected {p:?} in: {text}");
    }
}

#[tokio::test]
async fn req_rep_with_the_server_binding() {
    let pki = Pki::new();
    let (mut rep, ep) = bind(SocketType::Rep, server_opts(pki.server("server"))).await;
    let mut req = Socket::with_options(SocketType::Req, client_opts(pki.client()));
    let mut events = req.monitor();
    req.connect(&ep).await.unwrap();
    round_trip(&mut req, &mut rep, "over tls").await;
    let cert = connected_cert(&mut events)
        .await
        .expect("server certificate");
    assert_eq!(cert.common_name.as_deref(), Some("server"));
    // RFC 4514 order: the last RDN first (rcgen writes CN, then O).
    assert_eq!(cert.subject, "O=ironhouse tests,CN=server");
    assert_eq!(cert.dns_names, vec!["localhost".to_string()]);
    assert_eq!(
        cert.ip_addresses,
        vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        cert.fingerprint,
        Fingerprint::of_pem_file(pki.path("server.pem")).unwrap()
    );
}

#[tokio::test]
async fn req_rep_with_the_client_binding() {
    // The REQ side binds (and holds the certificate); the REP side connects,
    // by name.
    let pki = Pki::new();
    let (mut req, ep) = bind(SocketType::Req, server_opts(pki.server("server"))).await;
    let port = ep.rsplit(':').next().unwrap();
    let mut rep = Socket::with_options(
        SocketType::Rep,
        client_opts(pki.client().server_name("localhost")),
    );
    rep.connect(&format!("tls://127.0.0.1:{port}"))
        .await
        .unwrap();
    round_trip(&mut req, &mut rep, "reversed").await;
}

#[tokio::test]
async fn mutual_tls_reaches_the_authenticator() {
    let pki = Pki::new();
    let seen: Arc<Mutex<Vec<PeerCertificate>>> = Arc::default();
    let record = seen.clone();
    let auth = move |r: &AuthRequest| {
        let Some(cert) = &r.tls_peer else {
            return AuthDecision::deny("no client certificate");
        };
        record.lock().unwrap().push(cert.clone());
        assert!(r.address.starts_with("tls://127.0.0.1:"), "{}", r.address);
        AuthDecision::allow(cert.common_name.clone().unwrap_or_default())
    };
    let opts = server_opts(pki.mtls_server()).security(Security::NullAuthenticated(Arc::new(auth)));
    let (mut rep, ep) = bind(SocketType::Rep, opts).await;
    let mut server_events = rep.monitor();
    let mut req =
        Socket::with_options(SocketType::Req, client_opts(pki.client_with_cert("client")));
    req.connect(&ep).await.unwrap();
    round_trip(&mut req, &mut rep, "mutual").await;

    let ev = wait_event(&mut server_events, "Connected", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    let SocketEvent::Connected {
        user_id, tls_peer, ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(user_id.as_deref(), Some("client one"));
    let from_event = tls_peer.expect("client certificate in the event");
    let seen = seen.lock().unwrap();
    let cert = &seen[0];
    assert_eq!(*from_event, *cert);
    assert_eq!(cert.subject, "O=ironhouse tests,CN=client one");
    assert_eq!(cert.dns_names, vec!["client1.test".to_string()]);
    assert_eq!(
        cert.ip_addresses,
        vec!["10.1.2.3".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        cert.fingerprint,
        Fingerprint::of_pem_file(pki.path("client.pem")).unwrap()
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = Pki::new();
    let (rep, ep) = bind(SocketType::Rep, server_opts(pki.mtls_server())).await;
    let mut server_events = rep.monitor();
    let mut req = Socket::with_options(SocketType::Req, client_opts(pki.client()));
    let mut client_events = req.monitor();
    req.connect(&ep).await.unwrap();
    let server_says = refusal(&mut server_events).await;
    assert_mentions(
        &server_says,
        &["this server refused the client", "certificate required"],
    );
    // TLS 1.3: the client learns it from the server's alert.
    let client_says = refusal(&mut client_events).await;
    assert_mentions(
        &client_says,
        &["the server refused this client", "certificate required"],
    );
    assert_eq!(req.connected_peers(), 0);
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let (rep, ep) = bind(SocketType::Rep, server_opts(pki.mtls_server())).await;
    let mut server_events = rep.monitor();
    let mut req = Socket::with_options(
        SocketType::Req,
        client_opts(pki.client_with_cert("stranger")),
    );
    let mut client_events = req.monitor();
    req.connect(&ep).await.unwrap();
    assert_mentions(
        &refusal(&mut server_events).await,
        &["this server refused the client's certificate", "unknown CA"],
    );
    assert_mentions(
        &refusal(&mut client_events).await,
        &["the server refused this client", "unknown CA"],
    );
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let pki = Pki::new();
    let (rep, ep) = bind(SocketType::Rep, server_opts(pki.server("rogue"))).await;
    let mut server_events = rep.monitor();
    let mut req = Socket::with_options(SocketType::Req, client_opts(pki.client()));
    let e = within("connect_now", req.connect_now(&ep))
        .await
        .expect_err("a server from another CA must be refused");
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert_mentions(
        &e.to_string(),
        &["this client refused the server's certificate", "unknown CA"],
    );
    assert_mentions(
        &refusal(&mut server_events).await,
        &["the client refused this server", "unknown CA"],
    );
}

#[tokio::test]
async fn a_name_mismatch_is_refused() {
    let pki = Pki::new();
    let (rep, ep) = bind(SocketType::Rep, server_opts(pki.server("server"))).await;
    let mut server_events = rep.monitor();
    let mut req = Socket::with_options(
        SocketType::Req,
        client_opts(pki.client().server_name("db.example.com")),
    );
    let e = within("connect_now", req.connect_now(&ep))
        .await
        .expect_err("a certificate for another name must be refused");
    assert_mentions(
        &e.to_string(),
        &[
            "this client refused the server's certificate",
            "name mismatch",
            "db.example.com",
            "localhost",
        ],
    );
    assert_mentions(
        &refusal(&mut server_events).await,
        &["the client refused this server", "bad certificate"],
    );
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused() {
    let pki = Pki::new();
    let (_rep, ep) = bind(SocketType::Rep, server_opts(pki.server("expired"))).await;
    let mut req = Socket::with_options(SocketType::Req, client_opts(pki.client()));
    let e = within("connect_now", req.connect_now(&ep))
        .await
        .expect_err("an expired certificate must be refused");
    assert_mentions(
        &e.to_string(),
        &[
            "this client refused the server's certificate",
            "expired",
            "2001-01-01",
        ],
    );
}

#[tokio::test]
async fn a_pinned_self_signed_server_is_accepted() {
    // The certificate names "relay.invalid" only, and nobody signed it: the
    // pin is the trust, as for tlspyo relays reached by IP.
    let pki = Pki::new();
    let server = pki.server("self");
    let pin = Fingerprint::of_pem_file(pki.path("self.pem")).unwrap();
    assert_eq!(server.fingerprint(), pin);
    let (mut rep, ep) = bind(SocketType::Rep, server_opts(server)).await;
    let spelled = pin.to_string().replace(':', "").to_lowercase();
    let client = TlsClient::pinned(spelled.parse().unwrap()).server_name("default");
    let mut req = Socket::with_options(SocketType::Req, client_opts(client));
    let mut events = req.monitor();
    within("connect_now", req.connect_now(&ep)).await.unwrap();
    round_trip(&mut req, &mut rep, "pinned").await;
    let cert = connected_cert(&mut events).await.unwrap();
    assert_eq!(cert.fingerprint, pin);
    assert_eq!(cert.dns_names, vec!["relay.invalid".to_string()]);
}

#[tokio::test]
async fn a_pin_mismatch_is_refused_with_both_fingerprints() {
    let pki = Pki::new();
    let (rep, ep) = bind(SocketType::Rep, server_opts(pki.server("self"))).await;
    let mut server_events = rep.monitor();
    let expected = Fingerprint::of_pem_file(pki.path("server.pem")).unwrap();
    let actual = Fingerprint::of_pem_file(pki.path("self.pem")).unwrap();
    let mut req = Socket::with_options(SocketType::Req, client_opts(TlsClient::pinned(expected)));
    let e = within("connect_now", req.connect_now(&ep))
        .await
        .expect_err("another certificate must be refused");
    assert_mentions(
        &e.to_string(),
        &[
            "this client refused the server's certificate",
            "pin mismatch",
            &expected.to_string(),
            &actual.to_string(),
        ],
    );
    assert_mentions(
        &refusal(&mut server_events).await,
        &["the client refused this server", "certificate unknown"],
    );
}

#[tokio::test]
async fn plain_runs_over_tls_without_allow_plaintext() {
    let pki = Pki::new();
    let table = PasswordTable::new().with_user("admin", "s3cret");
    let opts = server_opts(pki.server("server")).security(Security::plain_server(table.clone()));
    let (mut rep, ep) = bind(SocketType::Rep, opts).await;
    let mut req = Socket::with_options(
        SocketType::Req,
        client_opts(pki.client()).security(Security::plain_client("admin", "s3cret")),
    );
    req.connect(&ep).await.unwrap();
    round_trip(&mut req, &mut rep, "password over tls").await;

    // The same over tcp:// is refused, both ways.
    let mut tcp_rep = Socket::with_options(
        SocketType::Rep,
        Options::default().security(Security::plain_server(table)),
    );
    let e = tcp_rep.bind("tcp://127.0.0.1:*").await.unwrap_err();
    assert!(matches!(e, Error::Insecure(_)), "{e:?}");
    let mut tcp_req = Socket::with_options(
        SocketType::Req,
        Options::default().security(Security::plain_client("admin", "s3cret")),
    );
    let e = tcp_req.connect("tcp://127.0.0.1:5555").await.unwrap_err();
    assert!(e.to_string().contains("in clear"), "{e}");
}

#[tokio::test]
async fn curve_runs_over_tls() {
    let pki = Pki::new();
    let server_keys = CurveKeyPair::generate();
    let client_keys = CurveKeyPair::generate();
    let server_public = server_keys.public;
    let opts = server_opts(pki.server("server")).security(Security::stonehouse(server_keys));
    let (mut rep, ep) = bind(SocketType::Rep, opts).await;
    let mut server_events = rep.monitor();
    let mut req = Socket::with_options(
        SocketType::Req,
        client_opts(pki.client())
            .security(Security::curve_client(client_keys.clone(), server_public)),
    );
    req.connect(&ep).await.unwrap();
    round_trip(&mut req, &mut rep, "curve inside tls").await;
    let ev = wait_event(&mut server_events, "Connected", |e| {
        matches!(e, SocketEvent::Connected { .. })
    })
    .await;
    let SocketEvent::Connected { public_key, .. } = ev else {
        unreachable!()
    };
    assert_eq!(public_key, Some(client_keys.public));
}

#[tokio::test]
async fn tls_needs_its_configuration() {
    let mut rep = Socket::new(SocketType::Rep);
    let e = rep.bind("tls://127.0.0.1:*").await.unwrap_err().to_string();
    assert_mentions(&e, &["tls://127.0.0.1:0", "Options::tls_server"]);
    let mut req = Socket::new(SocketType::Req);
    let e = req
        .connect("tls://127.0.0.1:5555")
        .await
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["tls://127.0.0.1:5555", "Options::tls_client"]);
}

#[tokio::test]
async fn a_plain_zmtp_peer_is_told_tls_is_expected() {
    let pki = Pki::new();
    let (rep, ep) = bind(SocketType::Rep, server_opts(pki.server("server"))).await;
    let mut server_events = rep.monitor();
    let mut req = Socket::new(SocketType::Req);
    req.connect(&ep.replace("tls://", "tcp://")).await.unwrap();
    assert_mentions(
        &refusal(&mut server_events).await,
        &["does not speak TLS", "tcp://"],
    );
}

/// Forwards bytes between one client and `upstream`, keeping a copy of
/// everything in both directions. Returns the proxy's port.
async fn recording_proxy(upstream: u16, tape: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
            return;
        };
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let pump = |mut from: tokio::net::tcp::OwnedReadHalf,
                    mut to: tokio::net::tcp::OwnedWriteHalf,
                    tape: Arc<Mutex<Vec<u8>>>| async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf).await {
                if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                tape.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = to.shutdown().await;
        };
        tokio::join!(pump(cr, sw, tape.clone()), pump(sr, cw, tape));
    });
    port
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_payload_never_crosses_the_wire_in_clear() {
    let pki = Pki::new();
    let secret = "attack at dawn: the vault code is 0451-7781";
    for scheme in ["tcp", "tls"] {
        let mut rep = match scheme {
            "tls" => Socket::with_options(SocketType::Rep, server_opts(pki.server("server"))),
            _ => Socket::new(SocketType::Rep),
        };
        let ep = rep.bind(&format!("{scheme}://127.0.0.1:*")).await.unwrap();
        let upstream: u16 = ep.to_string().rsplit(':').next().unwrap().parse().unwrap();
        let tape: Arc<Mutex<Vec<u8>>> = Arc::default();
        let port = recording_proxy(upstream, tape.clone()).await;
        let mut req = Socket::with_options(SocketType::Req, client_opts(pki.client()));
        req.connect(&format!("{scheme}://127.0.0.1:{port}"))
            .await
            .unwrap();
        for i in 0..3 {
            round_trip(&mut req, &mut rep, &format!("{secret} #{i}")).await;
        }
        req.close().await;
        rep.close().await;
        let tape = tape.lock().unwrap();
        assert!(!tape.is_empty());
        let seen = contains(&tape, secret.as_bytes());
        match scheme {
            // The control: the recorder does see plain tcp:// payloads.
            "tcp" => assert!(seen, "the proxy should have recorded the tcp:// payload"),
            _ => {
                assert!(!seen, "payload visible in clear on tls://");
                assert!(
                    !contains(&tape, b"READY"),
                    "ZMTP handshake visible on tls://"
                );
                assert_eq!(tape[0], 0x16, "the first byte is a TLS handshake record");
            }
        }
    }
}

#[tokio::test]
async fn a_silent_client_neither_blocks_accept_nor_stays_forever() {
    // A TCP client that never starts its TLS handshake: the server gives up
    // after the handshake timeout, and meanwhile serves a real client.
    let pki = Pki::new();
    let opts = server_opts(pki.server("server"))
        .handshake_timeout(Some(std::time::Duration::from_millis(300)));
    let (mut rep, ep) = bind(SocketType::Rep, opts).await;
    let mut server_events = rep.monitor();
    let port: u16 = ep.rsplit(':').next().unwrap().parse().unwrap();
    let _silent = within("tcp connect", TcpStream::connect(("127.0.0.1", port)))
        .await
        .unwrap();
    let mut req = Socket::with_options(SocketType::Req, client_opts(pki.client()));
    req.connect(&ep).await.unwrap();
    round_trip(&mut req, &mut rep, "not blocked").await;
    assert_mentions(
        &refusal(&mut server_events).await,
        &["TLS", "handshake timeout"],
    );
}

#[tokio::test]
async fn in_memory_certificates_and_mismatched_keys() {
    let ca = ca("in-memory CA");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).unwrap();
    let der_key = || PrivateKeyDer::Pkcs8(key.serialize_der().into());
    // A key that belongs to another certificate is refused up front.
    let wrong = PrivateKeyDer::Pkcs8(KeyPair::generate().unwrap().serialize_der().into());
    let e = TlsServer::from_der(vec![cert.der().clone()], wrong)
        .unwrap_err()
        .to_string();
    assert!(e.contains("TLS configuration") && e.contains("key"), "{e}");

    let server = TlsServer::from_der(vec![cert.der().clone()], der_key()).unwrap();
    let (mut rep, ep) = bind(SocketType::Rep, server_opts(server)).await;
    let client = TlsClient::trusting_der(vec![ca.as_ref().der().clone()]).unwrap();
    let mut req = Socket::with_options(SocketType::Req, client_opts(client));
    req.connect(&ep).await.unwrap();
    round_trip(&mut req, &mut rep, "from memory").await;
}
