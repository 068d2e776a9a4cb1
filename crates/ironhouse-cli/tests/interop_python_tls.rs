//! `tls://` against Python's `ssl` module (OpenSSL), as tlspyo's endpoints
//! use it: a certificate from `ironhouse cert generate --tlspyo` is the
//! trust anchor (`ssl.create_default_context(cafile=certificate.pem)`), the
//! server name is "default", and the server is `ironhouse socket rep --bind
//! tls://…`. The handshake must succeed and the ZMTP greeting (first byte
//! 0xFF) arrive through it; with another server name it must fail.
//!
//! Needs `$IRONHOUSE_PYTHON` (default `<repo>/.venv/bin/python`); fails,
//! never skips, when it is missing. Loopback only; every wait bounded.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{repo_root, Spec, TempDir};

const PY_WAIT: Duration = Duration::from_secs(30);

fn python() -> PathBuf {
    let py = std::env::var_os("IRONHOUSE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv").join("bin").join("python"));
    let ok = Command::new(&py)
        .args(["-c", "import ssl; print(ssl.OPENSSL_VERSION)"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "no python at {} ({e}); set IRONHOUSE_PYTHON or run scripts/test-all.sh",
                py.display()
            )
        });
    assert!(
        ok.status.success(),
        "{} cannot import ssl: {}",
        py.display(),
        String::from_utf8_lossy(&ok.stderr)
    );
    eprintln!("python ssl: {}", String::from_utf8_lossy(&ok.stdout).trim());
    py
}

const CLIENT: &str = r#"
import socket, ssl, sys
cafile, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            first = tls.recv(1)
            print("handshake", tls.version(), tls.cipher()[0])
            print("first-byte", first.hex())
except ssl.SSLError as e:
    print("ssl-error", e)
    sys.exit(3)
"#;

/// Runs the client script; returns (exit code, stdout + stderr).
fn run_client(py: &PathBuf, dir: &TempDir, cafile: &str, port: u16, name: &str) -> (i32, String) {
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let (o, e) = (dir.join("py.out"), dir.join("py.err"));
    let mut child = Command::new(py)
        .arg(&script)
        .args([cafile, &port.to_string(), name])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .expect("spawn python");
    let deadline = Instant::now() + PY_WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python client still running after {PY_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(o).unwrap() + &std::fs::read_to_string(e).unwrap();
    (status.code().unwrap_or(-1), text)
}

#[test]
fn python_ssl_accepts_tlspyo_certificate_with_name_default() {
    let py = python();
    let dir = TempDir::new("py-tls");
    let out = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .args(["cert", "generate", "--tlspyo", "--dir"])
        .arg(&dir.path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = dir.join("certificate.pem");
    let key = dir.join("key.pem");
    assert!(cert.is_file() && key.is_file());
    let cert = cert.to_str().unwrap().to_string();

    let mut rep = Spec::new("rep")
        .bind("tls://127.0.0.1:*")
        .echo()
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(key.to_str().unwrap())
        .timeout(60.0)
        .spawn_ironhouse();
    let ep = rep.bound();
    let port: u16 = ep.rsplit(':').next().unwrap().parse().unwrap();

    let (code, text) = run_client(&py, &dir, &cert, port, "default");
    assert_eq!(
        code,
        0,
        "python's ssl refused the handshake:\n{text}\n{}",
        rep.diagnostics()
    );
    assert!(text.contains("handshake TLSv1.3"), "{text}");
    assert!(
        text.contains("first-byte ff"),
        "ZMTP greeting expected:\n{text}"
    );

    // The name is checked: another one fails verification.
    let (code, text) = run_client(&py, &dir, &cert, port, "not-default");
    assert_eq!(code, 3, "expected an ssl error:\n{text}");
    assert!(text.contains("ssl-error"), "{text}");
}
