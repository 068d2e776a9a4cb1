//! `ironhouse cert`: generate (server, CA, tlspyo layout), issue, show,
//! serve + fetch by fingerprint, and the refusals (overwrite without
//! --force, fetch without a pin and without a terminal, wrong pin).
//! Offline, loopback only; every process is bounded and killed on timeout.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::TempDir;

const WAIT: Duration = Duration::from_secs(30);

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The `<what> <value>` lines of stdout.
    fn fields(&self) -> HashMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
    fn field(&self, k: &str) -> String {
        self.fields()
            .remove(k)
            .unwrap_or_else(|| panic!("no `{k}` line in:\n{}", self.stdout))
    }
}

/// Runs `ironhouse ARGS` with stdin from /dev/null (not a terminal), bounded.
fn ironhouse(args: &[&str]) -> Out {
    let dir = TempDir::new("cert-run");
    let (o, e) = (dir.join("out"), dir.join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .expect("spawn ironhouse");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ironhouse {args:?} still running after {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        ok: status.success(),
        stdout: std::fs::read_to_string(o).unwrap(),
        stderr: std::fs::read_to_string(e).unwrap(),
    }
}

fn ok(args: &[&str]) -> Out {
    let out = ironhouse(args);
    assert!(out.ok, "ironhouse {args:?} failed:\n{}", out.stderr);
    out
}

fn err(args: &[&str], needles: &[&str]) -> String {
    let out = ironhouse(args);
    assert!(!out.ok, "ironhouse {args:?} succeeded:\n{}", out.stdout);
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "stderr lacks {n:?}:\n{}",
            out.stderr
        );
    }
    out.stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn generate_show_and_refuse_overwrite() {
    let t = TempDir::new("gen");
    let dir = t.join("nested/tls");
    let out = ok(&[
        "cert",
        "generate",
        "--dir",
        s(&dir),
        "--san",
        "relay.example",
    ]);
    let cert = PathBuf::from(out.field("certificate"));
    let key = PathBuf::from(out.field("key"));
    assert_eq!(cert, dir.join("server.pem"));
    assert_eq!(key, dir.join("server.key"));
    assert_eq!(mode(&key), 0o600, "key mode");
    assert_eq!(mode(&dir), 0o700, "folder mode");
    assert_eq!(mode(&t.join("nested")), 0o700, "parent folder mode");
    let fp = out.field("fingerprint");

    let show = ok(&["cert", "show", s(&cert)]);
    assert_eq!(show.field("fingerprint"), fp);
    // Same canonical form as the library's Fingerprint.
    let lib = ironhouse::security::Fingerprint::of_pem_file(&cert).unwrap();
    assert_eq!(fp, lib.to_string());
    assert_eq!(show.field("subject"), "CN=localhost");
    assert_eq!(show.field("names"), "DNS:localhost, DNS:relay.example");
    assert_eq!(show.field("ca"), "no");
    assert_eq!(show.field("usage"), "server");
    assert!(
        show.field("not-before").ends_with(" UTC"),
        "{}",
        show.stdout
    );
    assert!(show.field("not-after").ends_with(" UTC"), "{}", show.stdout);

    // No overwrite without --force; the files are untouched.
    let before = std::fs::read(&key).unwrap();
    err(
        &["cert", "generate", "--dir", s(&dir)],
        &["already exists", "--force"],
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let again = ok(&["cert", "generate", "--dir", s(&dir), "--force", "--p256"]);
    assert_ne!(again.field("fingerprint"), fp);
    assert_eq!(mode(&key), 0o600);

    // Defaults: IPs of loopback; RSA works too.
    let rsa = ok(&["cert", "generate", "--dir", s(&t.join("rsa")), "--rsa"]);
    let show = ok(&["cert", "show", &rsa.field("certificate")]);
    assert_eq!(show.field("names"), "DNS:localhost, IP:127.0.0.1, IP:::1");

    // A key is not a certificate; a too-large file is refused.
    err(&["cert", "show", s(&key)], &["private key"]);
    let big = t.write("big.pem", &"x".repeat(70 * 1024), 0o644);
    err(&["cert", "show", s(&big)], &["64 KiB"]);
    err(
        &["cert", "generate", "--dir", s(&dir), "--p256", "--rsa"],
        &["cannot be used with"],
    );
}

#[test]
fn xdg_default_folders() {
    let t = TempDir::new("xdg");
    let out = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .args(["cert", "generate"])
        .env("XDG_CONFIG_HOME", &t.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.join("ironhouse/tls/server.pem").is_file());
    assert_eq!(mode(&t.join("ironhouse/tls/server.key")), 0o600);

    let out = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .args(["cert", "generate", "--tlspyo"])
        .env("XDG_DATA_HOME", &t.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds = t.join("tlspyo/credentials");
    assert!(creds.join("certificate.pem").is_file());
    assert_eq!(mode(&creds.join("key.pem")), 0o600);
    let show = ok(&["cert", "show", s(&creds.join("certificate.pem"))]);
    assert_eq!(show.field("subject"), "CN=default");
    assert_eq!(show.field("names"), "DNS:default");
}

#[test]
fn ca_and_issue() {
    let t = TempDir::new("ca");
    let ca = ok(&[
        "cert",
        "generate",
        "--ca",
        "--dir",
        s(&t.path),
        "--name",
        "Test CA",
    ]);
    let ca_cert = ca.field("certificate");
    let ca_key = ca.field("key");
    let show = ok(&["cert", "show", &ca_cert]);
    assert_eq!(show.field("ca"), "yes");
    assert_eq!(show.field("subject"), "CN=Test CA");

    let server = ok(&[
        "cert",
        "issue",
        "--ca-cert",
        &ca_cert,
        "--ca-key",
        &ca_key,
        "--server",
        "--name",
        "relay",
        "--san",
        "127.0.0.1",
        "--dir",
        s(&t.path),
        "--days",
        "30",
    ]);
    assert_eq!(server.field("certificate"), s(&t.join("relay.pem")));
    assert_eq!(mode(&t.join("relay.key")), 0o600);
    let show = ok(&["cert", "show", &server.field("certificate")]);
    assert_eq!(show.field("names"), "DNS:relay, IP:127.0.0.1");
    assert_eq!(show.field("usage"), "server");
    assert_eq!(show.field("ca"), "no");
    assert_eq!(show.field("self-signed"), "no");

    let client = ok(&[
        "cert",
        "issue",
        "--ca-cert",
        &ca_cert,
        "--ca-key",
        &ca_key,
        "--client",
        "--name",
        "alice",
        "--dir",
        s(&t.path),
    ]);
    let show = ok(&["cert", "show", &client.field("certificate")]);
    assert_eq!(show.field("usage"), "client");
    assert_eq!(show.field("subject"), "CN=alice");

    // Refusals: a non-CA as CA, a key that is not the CA's, overwriting.
    let other = ok(&["cert", "generate", "--dir", s(&t.join("other"))]);
    err(
        &[
            "cert",
            "issue",
            "--ca-cert",
            &other.field("certificate"),
            "--ca-key",
            &other.field("key"),
            "--client",
            "--name",
            "x",
            "--dir",
            s(&t.path),
        ],
        &["not a CA certificate"],
    );
    err(
        &[
            "cert",
            "issue",
            "--ca-cert",
            &ca_cert,
            "--ca-key",
            &other.field("key"),
            "--client",
            "--name",
            "x",
            "--dir",
            s(&t.path),
        ],
        &["is not the key of --ca-cert"],
    );
    err(
        &[
            "cert",
            "issue",
            "--ca-cert",
            &ca_cert,
            "--ca-key",
            &ca_key,
            "--client",
            "--name",
            "alice",
            "--dir",
            s(&t.path),
        ],
        &["already exists"],
    );
    err(
        &[
            "cert",
            "issue",
            "--ca-cert",
            &ca_cert,
            "--ca-key",
            &ca_key,
            "--name",
            "y",
        ],
        &["--server", "--client"],
    );
}

/// `ironhouse cert serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    fn start(cert: &str, count: u32) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
            .args([
                "cert",
                "serve",
                "--cert",
                cert,
                "--port",
                "0",
                "--seconds",
                "60",
            ])
            .args(["--count", &count.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("no `serving` line from cert serve");
        let addr = line
            .strip_prefix("serving ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server {
            child,
            addr,
            stderr: rx,
        }
    }

    fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.success();
            }
            assert!(Instant::now() < deadline, "cert serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_and_fetch_by_fingerprint() {
    let t = TempDir::new("share");
    let gen = ok(&["cert", "generate", "--dir", s(&t.path)]);
    let cert = gen.field("certificate");
    let fp = gen.field("fingerprint");
    // A file holding the key too: only the certificate may be sent.
    let both = t.join("both.pem");
    let mut text = std::fs::read_to_string(&cert).unwrap();
    text.push_str(&std::fs::read_to_string(gen.field("key")).unwrap());
    std::fs::write(&both, text).unwrap();

    let mut server = Server::start(s(&both), 3);

    // Without --pin and without a terminal: refused, nothing written.
    let got = t.join("got/cert.pem");
    err(
        &["cert", "fetch", &server.addr, "--out", s(&got)],
        &["not a terminal", "--pin"],
    );
    assert!(!got.exists());

    // Wrong pin: refused, nothing written.
    let wrong = "AB".repeat(32);
    err(
        &[
            "cert",
            "fetch",
            &server.addr,
            "--pin",
            &wrong,
            "--out",
            s(&got),
        ],
        &["REFUSED", "pin mismatch", &fp],
    );
    assert!(!got.exists());

    // Right pin (any spelling): written, same certificate, no key.
    let pin = fp.replace(':', "").to_lowercase();
    let out = ok(&[
        "cert",
        "fetch",
        &server.addr,
        "--pin",
        &pin,
        "--out",
        s(&got),
    ]);
    assert_eq!(out.field("fingerprint"), fp);
    let fetched = std::fs::read_to_string(&got).unwrap();
    assert!(!fetched.contains("PRIVATE KEY"), "{fetched}");
    assert_eq!(
        ok(&["cert", "show", s(&got)]).field("fingerprint"),
        fp,
        "fetched certificate"
    );
    // Not replaced without --force (checked before connecting).
    err(
        &[
            "cert",
            "fetch",
            &server.addr,
            "--pin",
            &pin,
            "--out",
            s(&got),
        ],
        &["already exists"],
    );
    // Third connection: to stdout.
    let out = ok(&["cert", "fetch", &server.addr, "--pin", &fp]);
    assert!(out.stdout.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(server.wait_exit(), "serve should stop after --count 3");
    let said: Vec<String> = server.stderr.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("sent certificate")),
        "{said:?}"
    );

    // Nothing listening: a clear, bounded failure.
    err(
        &[
            "cert",
            "fetch",
            &server.addr,
            "--pin",
            &fp,
            "--timeout",
            "2",
        ],
        &["cannot connect"],
    );
    err(
        &["cert", "fetch", "127.0.0.1:1", "--pin", "zz"],
        &["--pin", "64 hex digits"],
    );
}
