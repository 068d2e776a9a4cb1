//! Certificate files (czmq/pyzmq format, permissions, layouts) and the
//! IronHouse allow-list folder, end to end over real CURVE handshakes.
//!
//! Every wait is bounded; the only sleeps are there to get past the
//! allow-list's 200 ms check throttle, and no test asserts a duration.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ironhouse::security::certs::{self, CertError, Layout, LoadOptions, Mode};
use ironhouse::security::CurveAllowList;
use ironhouse::{
    CurveKeyPair, CurvePublicKey, CurveSecretKey, Options, Security, Socket, SocketEvent,
    SocketType,
};

/// A fresh folder under the temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "ironhouse-certs-{}-{}-{nanos}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a hand-made certificate.
fn write_file(p: &Path, text: &str, mode: u32) {
    fs::write(p, text).unwrap();
    chmod(p, mode);
}

// RFC 26's example key pair (libzmq's test suite prints it too).
const RFC_PUBLIC: &str = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
const RFC_SECRET: &str = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";
const OTHER_PUBLIC: &str = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

#[test]
fn round_trip_with_metadata() {
    let tmp = TempDir::new("roundtrip");
    let dir = tmp.join("new/keys");
    let keys = CurveKeyPair::generate();
    let (public, secret) = certs::write_certificates(
        &dir,
        "server",
        &keys,
        &[("name", "my server"), ("x-id", "7")],
    )
    .unwrap();
    assert_eq!(public, dir.join("server.key"));
    assert_eq!(secret, dir.join("server.key_secret"));

    assert_eq!(certs::load_public(&public).unwrap(), keys.public);
    assert_eq!(certs::load_public(&secret).unwrap(), keys.public);
    assert_eq!(certs::load_keypair(&secret).unwrap(), keys);
    let cert = certs::load_certificate(&public, LoadOptions::new()).unwrap();
    assert!(cert.secret.is_none());
    assert_eq!(
        cert.metadata,
        vec![
            ("name".into(), "my server".into()),
            ("x-id".into(), "7".into())
        ]
    );

    let public_text = fs::read_to_string(&public).unwrap();
    assert!(public_text.contains("#   ZeroMQ CURVE Public Certificate\n"));
    assert!(public_text.contains(&format!("curve\n    public-key = \"{}\"\n", keys.public)));
    assert!(!public_text.contains("secret-key"));
    let secret_text = fs::read_to_string(&secret).unwrap();
    assert!(secret_text.contains("#   ZeroMQ CURVE **Secret** Certificate\n"));
    assert!(secret_text
        .contains("#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"));
    assert!(secret_text.contains(&format!("    secret-key = \"{}\"\n", keys.secret.to_z85())));
    // Metadata before curve, as pyzmq and czmq write it.
    assert!(secret_text.find("metadata\n").unwrap() < secret_text.find("curve\n").unwrap());
}

#[test]
fn loads_pyzmq_and_czmq_files() {
    let tmp = TempDir::new("foreign");
    // As pyzmq's create_certificates writes it: metadata values unquoted.
    let pyzmq = format!(
        "#   ****  Generated on 2024-05-01 12:00:00.000000 by pyzmq  ****\n\
         #   ZeroMQ CURVE **Secret** Certificate\n\
         #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\
         \n\
         metadata\n    name = John Smith\ncurve\n    public-key = \"{RFC_PUBLIC}\"\n    secret-key = \"{RFC_SECRET}\"\n"
    );
    let p = tmp.join("py.key_secret");
    write_file(&p, &pyzmq, 0o600);
    let cert = certs::load_certificate(&p, LoadOptions::new()).unwrap();
    assert_eq!(cert.public.to_z85(), RFC_PUBLIC);
    assert_eq!(cert.secret.unwrap().to_z85(), RFC_SECRET);
    assert_eq!(cert.metadata, vec![("name".into(), "John Smith".into())]);

    // czmq's zcert: quoted metadata, CRLF line ends, a trailing comment.
    let czmq = format!(
        "#   ZeroMQ CURVE Public Certificate\r\nmetadata\r\n    email = \"a@b.c\"\r\ncurve\r\n    public-key = \"{RFC_PUBLIC}\"   # the key\r\n"
    );
    let p = tmp.join("cz.key");
    write_file(&p, &czmq, 0o644);
    assert_eq!(certs::load_public(&p).unwrap().to_z85(), RFC_PUBLIC);
}

#[test]
fn permissions_of_written_files_and_folders() {
    let tmp = TempDir::new("perms");
    let base = tmp.join("a/b");
    let files = Layout::SqliteRx
        .key_files(Some(&base), Mode::Server, "")
        .unwrap();
    files.write(&CurveKeyPair::generate(), &[], false).unwrap();
    assert_eq!(mode_of(&files.secret), 0o600);
    assert_eq!(mode_of(&files.public), 0o644);
    assert_eq!(mode_of(&tmp.join("a")), 0o700);
    assert_eq!(mode_of(&base), 0o700);
    let authorized = files.authorized_clients.clone().unwrap();
    assert_eq!(authorized, base.join("authorized_clients"));
    assert_eq!(mode_of(&authorized), 0o700);
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // Replacing keeps the secret private.
    files.write(&CurveKeyPair::generate(), &[], true).unwrap();
    assert_eq!(mode_of(&files.secret), 0o600);
}

#[test]
fn insecure_secret_is_refused_unless_allowed() {
    let tmp = TempDir::new("insecure");
    let keys = CurveKeyPair::generate();
    let (public, secret) = certs::write_certificates(&tmp.0, "vid", &keys, &[]).unwrap();
    chmod(&secret, 0o644);
    let err = certs::load_keypair(&secret).unwrap_err();
    assert!(
        matches!(err, CertError::InsecurePermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("chmod 600 {}", secret.display())),
        "{msg}"
    );
    assert!(
        certs::load_certificate(&secret, LoadOptions::new()).is_err(),
        "load_certificate checks a secret file too"
    );

    let opts = LoadOptions::new().allow_insecure_permissions(true);
    assert_eq!(certs::load_keypair_with(&secret, opts).unwrap(), keys);
    // Public keys load whatever the mode.
    assert_eq!(certs::load_public(&secret).unwrap(), keys.public);
    chmod(&public, 0o666);
    assert_eq!(certs::load_public(&public).unwrap(), keys.public);

    chmod(&secret, 0o640);
    assert!(certs::load_keypair(&secret).is_err());
    chmod(&secret, 0o400);
    assert_eq!(certs::load_keypair(&secret).unwrap(), keys);
}

#[test]
fn never_overwrites_without_force() {
    let tmp = TempDir::new("overwrite");
    let first = CurveKeyPair::generate();
    let (_, secret) = certs::write_certificates(&tmp.0, "s", &first, &[]).unwrap();
    let err = certs::write_certificates(&tmp.0, "s", &CurveKeyPair::generate(), &[]).unwrap_err();
    assert!(matches!(err, CertError::AlreadyExists { .. }), "{err:?}");
    assert!(err
        .to_string()
        .contains(&tmp.join("s.key_secret").display().to_string()));
    assert_eq!(certs::load_keypair(&secret).unwrap(), first);

    // Only the public file there: still refused, and no secret written.
    fs::remove_file(&secret).unwrap();
    let err = certs::write_certificates(&tmp.0, "s", &CurveKeyPair::generate(), &[]).unwrap_err();
    assert_eq!(err.path(), Some(tmp.join("s.key").as_path()));
    assert!(!secret.exists());

    let files = Layout::Plain
        .key_files(Some(&tmp.0), Mode::Server, "s")
        .unwrap();
    let second = CurveKeyPair::generate();
    files.write(&second, &[], true).unwrap();
    assert_eq!(certs::load_keypair(&files.secret).unwrap(), second);
    assert_eq!(certs::load_public(&files.public).unwrap(), second.public);
}

#[test]
fn mismatched_public_and_secret_are_detected() {
    let tmp = TempDir::new("mismatch");
    let p = tmp.join("bad.key_secret");
    write_file(
        &p,
        &format!(
            "metadata\ncurve\n    public-key = \"{OTHER_PUBLIC}\"\n    secret-key = \"{RFC_SECRET}\"\n"
        ),
        0o600,
    );
    let err = certs::load_keypair(&p).unwrap_err();
    match &err {
        CertError::KeyMismatch {
            line,
            found,
            derived,
            ..
        } => {
            assert_eq!(*line, 3);
            assert_eq!(found.to_z85(), OTHER_PUBLIC);
            assert_eq!(derived.to_z85(), RFC_PUBLIC);
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}:3:", p.display())), "{msg}");
    assert!(msg.contains("does not match"), "{msg}");
    assert!(!msg.contains(RFC_SECRET), "never print the secret: {msg}");

    // The matching pair loads, and derives the right public key.
    write_file(
        &p,
        &format!("curve\n    public-key = \"{RFC_PUBLIC}\"\n    secret-key = \"{RFC_SECRET}\"\n"),
        0o600,
    );
    let kp = certs::load_keypair(&p).unwrap();
    assert_eq!(
        kp.public,
        CurveSecretKey::from_z85(RFC_SECRET).unwrap().public_key()
    );
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let tmp = TempDir::new("malformed");
    let cases: &[(&str, &str, Option<usize>)] = &[
        (
            "badz85.key",
            "curve\n    public-key = \"not z85 at all, not at all!!!!!!!!!!!!\"\n",
            Some(2),
        ),
        (
            "short.key",
            "metadata\ncurve\n    public-key = \"abcde\"\n",
            Some(3),
        ),
        (
            "unterminated.key",
            &format!("curve\n    public-key = \"{RFC_PUBLIC}\n")[..],
            Some(2),
        ),
        ("noeq.key", "curve\n    public-key\n", Some(2)),
        (
            "twice.key",
            &format!(
                "curve\n    public-key = \"{RFC_PUBLIC}\"\n    public-key = \"{RFC_PUBLIC}\"\n"
            )[..],
            Some(3),
        ),
        ("empty.key", "", None),
        (
            "wrongsection.key",
            &format!("metadata\n    public-key = \"{RFC_PUBLIC}\"\n")[..],
            None,
        ),
    ];
    for (name, text, line) in cases {
        let p = tmp.join(name);
        write_file(&p, text, 0o644);
        let err = certs::load_public(&p).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&p.display().to_string()), "{name}: {msg}");
        assert_eq!(err.path(), Some(p.as_path()), "{name}");
        if let Some(line) = line {
            assert!(
                msg.contains(&format!("{}:{line}:", p.display())),
                "{name}: {msg}"
            );
        }
    }

    // Binary junk.
    let p = tmp.join("binary.key");
    fs::write(&p, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    assert!(certs::load_public(&p)
        .unwrap_err()
        .to_string()
        .contains("UTF-8"));

    // A bad secret key is reported without its text.
    let p = tmp.join("badsecret.key_secret");
    write_file(
        &p,
        &format!(
            "curve\n    public-key = \"{RFC_PUBLIC}\"\n    secret-key = \"D:)Q[IlAW!ahhC2\"\n"
        ),
        0o600,
    );
    let msg = certs::load_keypair(&p).unwrap_err().to_string();
    assert!(msg.contains(&format!("{}:3:", p.display())), "{msg}");
    assert!(!msg.contains("D:)Q[IlAW!ahhC2"), "{msg}");

    // A public certificate where a secret one is needed.
    let p = tmp.join("pub.key");
    write_file(
        &p,
        &format!("curve\n    public-key = \"{RFC_PUBLIC}\"\n"),
        0o644,
    );
    let err = certs::load_keypair(&p).unwrap_err();
    assert!(matches!(err, CertError::MissingSecretKey { .. }), "{err:?}");

    // Missing file, and a folder.
    let p = tmp.join("nope.key");
    let msg = certs::load_public(&p).unwrap_err().to_string();
    assert!(msg.contains(&p.display().to_string()), "{msg}");
    assert!(certs::load_public(&tmp.0).is_err());

    // Metadata that would not survive the format.
    for bad in [
        ("public-key-x", "v"),
        ("a b", "v"),
        ("ok", "a\"b"),
        ("ok", "a\nb"),
    ] {
        let err =
            certs::write_certificates(tmp.join("meta"), "m", &CurveKeyPair::generate(), &[bad])
                .unwrap_err();
        assert!(matches!(err, CertError::Invalid(_)), "{bad:?}: {err:?}");
    }
}

#[test]
fn layouts() {
    let base = Path::new("/srv/k");
    let host = certs::hostname().unwrap();
    let f = Layout::SqliteRx
        .key_files(Some(base), Mode::Client, "")
        .unwrap();
    assert_eq!(f.public, base.join(format!("id_client_{host}_curve.key")));
    assert_eq!(
        f.secret,
        base.join(format!("id_client_{host}_curve.key_secret"))
    );
    assert_eq!(f.authorized_clients, None);
    let f = Layout::SqliteRx
        .key_files(Some(base), Mode::Server, "")
        .unwrap();
    assert_eq!(f.public, base.join(format!("id_server_{host}_curve.key")));
    assert_eq!(f.authorized_clients, Some(base.join("authorized_clients")));

    let f = Layout::Vidgear
        .key_files(Some(base), Mode::Server, "")
        .unwrap();
    assert_eq!(f.public, base.join("keys/public_keys/server.key"));
    assert_eq!(f.secret, base.join("keys/private_keys/server.key_secret"));

    let f = Layout::Plain
        .key_files(Some(base), Mode::Client, "alice")
        .unwrap();
    assert_eq!(f.public, base.join("alice.key"));
    assert_eq!(f.secret, base.join("alice.key_secret"));
    for bad in ["", "../x", "a/b", ".hidden"] {
        assert!(
            Layout::Plain
                .key_files(Some(base), Mode::Client, bad)
                .is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn public_keys_of_a_folder() {
    let tmp = TempDir::new("keysdir");
    let (a, b) = (CurveKeyPair::generate(), CurveKeyPair::generate());
    certs::write_certificates(&tmp.0, "bob", &b, &[]).unwrap();
    certs::write_certificates(&tmp.0, "alice", &a, &[]).unwrap();
    fs::write(tmp.join("notes.txt"), "not a key").unwrap();
    fs::create_dir(tmp.join("folder.key")).unwrap();
    fs::write(tmp.join(".hidden.key"), "junk").unwrap();
    let keys = certs::load_public_keys_dir(&tmp.0).unwrap();
    assert_eq!(
        keys,
        vec![
            (tmp.join("alice.key"), a.public),
            (tmp.join("bob.key"), b.public)
        ]
    );

    let bad = tmp.join("broken.key");
    fs::write(&bad, "curve\n    public-key = \"nope\"\n").unwrap();
    let err = certs::load_public_keys_dir(&tmp.0).unwrap_err();
    assert_eq!(err.path(), Some(bad.as_path()), "{err}");

    let missing = tmp.join("missing");
    let err = certs::load_public_keys_dir(&missing).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// The allow-list folder, over real CURVE handshakes
// ---------------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(10);
/// Longer than the allow-list's 200 ms throttle.
const PAST_THROTTLE: Duration = Duration::from_millis(250);

/// One connection attempt by a fresh client: `Ok(())` when the handshake
/// completes, `Err(reason)` when it fails.
async fn attempt(
    endpoint: &str,
    server: CurvePublicKey,
    client: &CurveKeyPair,
) -> Result<(), String> {
    let opts = Options::default()
        .linger(Some(Duration::ZERO))
        .security(Security::curve_client(client.clone(), server));
    let mut sock = Socket::with_options(SocketType::Dealer, opts);
    let mut events = sock.monitor();
    sock.connect(endpoint).await.unwrap();
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(SocketEvent::Connected { .. }) => return Ok(()),
                Ok(SocketEvent::HandshakeFailed { reason, .. }) => return Err(reason),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("monitor closed: {e}"),
            }
        }
    })
    .await
    .expect("no handshake outcome within the bound");
    sock.close().await;
    outcome
}

/// Retries (past the throttle) until `want(outcome)`, within [`WAIT`].
async fn until(
    what: &str,
    endpoint: &str,
    server: CurvePublicKey,
    client: &CurveKeyPair,
    want: impl Fn(&Result<(), String>) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let outcome = attempt(endpoint, server, client).await;
        if want(&outcome) {
            return outcome;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last outcome {outcome:?}"
        );
        tokio::time::sleep(PAST_THROTTLE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_folder_is_reloaded() {
    let tmp = TempDir::new("allowlist");
    let authorized = tmp.join("authorized_clients");
    fs::create_dir(&authorized).unwrap();
    let server_keys = CurveKeyPair::generate();
    let client = CurveKeyPair::generate();

    let opts = Options::default()
        .linger(Some(Duration::ZERO))
        .security(Security::ironhouse(
            server_keys.clone(),
            CurveAllowList::new(&authorized),
        ));
    let mut server = Socket::with_options(SocketType::Router, opts);
    let mut server_events = server.monitor();
    let endpoint = server.bind("tcp://127.0.0.1:*").await.unwrap().to_string();

    // Not listed: refused, with the key and folder in the reason.
    let reason = attempt(&endpoint, server_keys.public, &client)
        .await
        .unwrap_err();
    assert!(reason.contains(&client.public.to_z85()), "{reason}");

    // Listed: admitted without a restart, as the certificate's stem.
    certs::write_public_certificate(authorized.join("alice.key"), &client.public, &[], false)
        .unwrap();
    until(
        "key added",
        &endpoint,
        server_keys.public,
        &client,
        Result::is_ok,
    )
    .await
    .unwrap();
    let user = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(SocketEvent::Connected {
                user_id,
                public_key: Some(k),
                ..
            }) = server_events.recv().await
            {
                if k == client.public {
                    return user_id;
                }
            }
        }
    })
    .await
    .expect("server saw no connection");
    assert_eq!(user.as_deref(), Some("alice"));

    // Removed: refused again.
    fs::remove_file(authorized.join("alice.key")).unwrap();
    let reason = until(
        "key removed",
        &endpoint,
        server_keys.public,
        &client,
        Result::is_err,
    )
    .await
    .unwrap_err();
    assert!(reason.contains("is not in the allow-list"), "{reason}");

    // The folder itself gone: refused, naming the folder.
    fs::remove_dir(&authorized).unwrap();
    let reason = until(
        "folder removed",
        &endpoint,
        server_keys.public,
        &client,
        |o| o.as_ref().is_err_and(|r| r.contains("cannot be read")),
    )
    .await
    .unwrap_err();
    assert!(
        reason.contains(&authorized.display().to_string()),
        "{reason}"
    );
    server.close().await;
}

#[test]
fn allow_list_of_a_missing_folder_does_not_panic() {
    let tmp = TempDir::new("nofolder");
    let list = CurveAllowList::new(tmp.join("missing"));
    assert!(list.keys().is_empty());
    assert_eq!(list.dir(), Some(tmp.join("missing").as_path()));
}
