//! `ironhouse socket` over `tls://`, ironhouse against ironhouse on
//! loopback, with certificates from `ironhouse cert`: a trust file, a
//! pinned fingerprint, mTLS with a client certificate from `cert issue`,
//! refusals with their reasons, and the flag checks.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{Peer, Spec, TempDir};

const ERR: &str = "ironhouse: error:";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Runs `ironhouse cert ARGS` (fast, local) and returns its `<what> <value>` field.
fn cert(args: &[&str], field: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .arg("cert")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ironhouse cert");
    assert!(
        out.status.success(),
        "ironhouse cert {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .to_string()
}

struct Pair {
    cert: String,
    key: String,
    fingerprint: String,
}

/// A self-signed server pair in `dir` (names localhost, 127.0.0.1, ::1).
fn server_pair(dir: &Path) -> Pair {
    let out = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .args(["cert", "generate", "--dir", s(dir)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let f = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(' ')))
            .unwrap()
            .to_string()
    };
    Pair {
        cert: f("certificate"),
        key: f("key"),
        fingerprint: f("fingerprint"),
    }
}

fn rep(server: &Pair) -> (Peer, String) {
    let mut rep = Spec::new("rep")
        .bind("tls://127.0.0.1:*")
        .echo()
        .arg("--tls-cert")
        .arg(&server.cert)
        .arg("--tls-key")
        .arg(&server.key)
        .timeout(60.0)
        .spawn_ironhouse();
    let ep = rep.bound();
    assert!(ep.starts_with("tls://127.0.0.1:"), "{ep}");
    (rep, ep)
}

fn roundtrip(client: &mut Peer, text: &str) {
    client.send(text);
    client.expect_lines(&[text]);
    client.close_stdin();
    client.expect_success();
}

#[test]
fn trust_file_and_pin() {
    let dir = TempDir::new("tls-trust");
    let server = server_pair(&dir.path);
    let (mut rep, ep) = rep(&server);

    let mut by_trust = Spec::new("req")
        .connect(&ep)
        .arg("--tls-trust")
        .arg(&server.cert)
        .timeout(10.0)
        .spawn_ironhouse();
    roundtrip(&mut by_trust, "over\ttls");

    let mut by_pin = Spec::new("req")
        .connect(&ep)
        .arg("--tls-pin")
        .arg(&server.fingerprint)
        .timeout(10.0)
        .spawn_ironhouse();
    roundtrip(&mut by_pin, "pinned");
    rep.expect_lines(&["over\ttls", "pinned"]);

    // The certificate names localhost and the loopback IPs, not "relay".
    let mut wrong_name = Spec::new("req")
        .connect(&ep)
        .arg("--tls-trust")
        .arg(&server.cert)
        .arg("--tls-name")
        .arg("relay")
        .timeout(5.0)
        .spawn_ironhouse();
    wrong_name.expect_error(&[ERR, "relay"]);

    // Another certificate's pin: refused, saying so.
    let other = server_pair(&dir.subdir("other"));
    let mut wrong_pin = Spec::new("req")
        .connect(&ep)
        .arg("--tls-pin")
        .arg(&other.fingerprint)
        .timeout(5.0)
        .spawn_ironhouse();
    let line = wrong_pin.expect_error(&[ERR, "pin mismatch"]);
    assert!(line.contains(&server.fingerprint), "{line}");

    // Trusting another certificate: refused too.
    let mut wrong_trust = Spec::new("req")
        .connect(&ep)
        .arg("--tls-trust")
        .arg(&other.cert)
        .timeout(5.0)
        .spawn_ironhouse();
    wrong_trust.expect_error(&[ERR, "certificate"]);
}

#[test]
fn mutual_tls_with_issued_certificates() {
    let dir = TempDir::new("tls-mtls");
    let d = s(&dir.path);
    let ca = cert(&["generate", "--ca", "--dir", d], "certificate");
    let ca_key = dir.join("ca.key");
    let issue = |role: &str, name: &str| {
        cert(
            &[
                "issue",
                "--ca-cert",
                &ca,
                "--ca-key",
                s(&ca_key),
                role,
                "--name",
                name,
                "--san",
                "127.0.0.1",
                "--dir",
                d,
            ],
            "certificate",
        )
    };
    let relay = issue("--server", "relay");
    let alice = issue("--client", "alice");
    let mut rep = Spec::new("rep")
        .bind("tls://127.0.0.1:*")
        .echo()
        .arg("--tls-cert")
        .arg(&relay)
        .arg("--tls-key")
        .arg(s(&dir.join("relay.key")))
        .arg("--tls-ca")
        .arg(&ca)
        .timeout(60.0)
        .spawn_ironhouse();
    let ep = rep.bound();

    // With alice's certificate, trusting the CA, by the name "relay".
    let mut client = Spec::new("req")
        .connect(&ep)
        .arg("--tls-trust")
        .arg(&ca)
        .arg("--tls-name")
        .arg("relay")
        .arg("--tls-cert")
        .arg(&alice)
        .arg("--tls-key")
        .arg(s(&dir.join("alice.key")))
        .timeout(10.0)
        .spawn_ironhouse();
    roundtrip(&mut client, "mutual");
    rep.expect_lines(&["mutual"]);

    // Without a client certificate: refused; the client's timeout says why.
    let mut anonymous = Spec::new("req")
        .connect(&ep)
        .arg("--tls-trust")
        .arg(&ca)
        .timeout(3.0)
        .spawn_ironhouse();
    anonymous.send("let me in");
    anonymous.expect_error(&[ERR, "certificate required"]);
    rep.expect_stderr(&["certificate required"]);

    // A self-signed client certificate (not from the CA): refused.
    let stranger = server_pair(&dir.subdir("stranger"));
    let mut stranger_client = Spec::new("req")
        .connect(&ep)
        .arg("--tls-trust")
        .arg(&ca)
        .arg("--tls-cert")
        .arg(&stranger.cert)
        .arg("--tls-key")
        .arg(&stranger.key)
        .timeout(3.0)
        .spawn_ironhouse();
    stranger_client.send("me too");
    stranger_client.expect_error(&[ERR, "certificate"]);
}

#[test]
fn flag_checks() {
    let dir = TempDir::new("tls-flags");
    let server = server_pair(&dir.path);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["rep", "--bind", "tls://127.0.0.1:*"],
            vec!["needs --tls-cert FILE and --tls-key FILE"],
        ),
        (
            vec!["req", "--connect", "tls://127.0.0.1:9"],
            vec!["needs --tls-trust", "--tls-pin"],
        ),
        (
            vec![
                "req",
                "--connect",
                "tls://127.0.0.1:9",
                "--tls-trust",
                &server.cert,
                "--tls-pin",
                &server.fingerprint,
            ],
            vec!["cannot be combined"],
        ),
        (
            vec![
                "req",
                "--connect",
                "tcp://127.0.0.1:9",
                "--tls-pin",
                &server.fingerprint,
            ],
            vec!["--tls-pin is for tls://"],
        ),
        (
            vec![
                "rep",
                "--bind",
                "tls://127.0.0.1:*",
                "--tls-cert",
                &server.cert,
            ],
            vec!["--tls-cert needs --tls-key"],
        ),
        (
            vec!["req", "--connect", "tls://127.0.0.1:9", "--tls-pin", "nope"],
            vec!["--tls-pin", "64 hex digits"],
        ),
        (
            vec![
                "rep",
                "--bind",
                "tls://127.0.0.1:*",
                "--tls-cert",
                &server.key,
                "--tls-key",
                &server.key,
            ],
            vec!["--tls-cert", "server.key"],
        ),
        (
            vec![
                "req",
                "--connect",
                "tls://127.0.0.1:9",
                "--tls-ca",
                &server.cert,
                "--tls-pin",
                &server.fingerprint,
            ],
            vec!["--tls-ca is for a server"],
        ),
    ];
    for (args, needles) in cases {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut p = Peer::spawn_ironhouse(&args);
        let mut all = vec![ERR];
        all.extend(needles);
        p.expect_error(&all);
    }

    // A key readable by others is refused unless allowed.
    std::fs::set_permissions(
        &server.key,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let mut p = Spec::new("rep")
        .bind("tls://127.0.0.1:*")
        .arg("--tls-cert")
        .arg(&server.cert)
        .arg("--tls-key")
        .arg(&server.key)
        .spawn_ironhouse();
    p.expect_error(&[ERR, "chmod 600", "--allow-insecure-key-permissions"]);
    let mut p = Spec::new("rep")
        .bind("tls://127.0.0.1:*")
        .arg("--tls-cert")
        .arg(&server.cert)
        .arg("--tls-key")
        .arg(&server.key)
        .allow_insecure_key_permissions()
        .arg("--count")
        .arg("0")
        .spawn_ironhouse();
    let _ = p.bound();
}
