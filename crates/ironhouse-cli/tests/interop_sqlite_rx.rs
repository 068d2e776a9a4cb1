//! `ironhouse sqlite-server` against the real sqlite_rx 1.3.0 (PyPI), with
//! its own Python client:
//!
//! - sqlite_rx's own test suite (`pytest --pyargs sqlite_rx.tests`, 19 tests:
//!   plain, CURVE, ZAP, backup, error) passes with every server it starts
//!   replaced by our binary (`interop/sqlite_rx/ironhouse_sqlite_plugin.py`);
//! - a fixed sequence of ~100 requests, valid and malformed
//!   (`interop/sqlite_rx/probe.py`), gets byte-for-byte the same decoded
//!   replies from our server as from sqlite_rx's own Python server, for an
//!   in-memory and a file database (the file one exercises the readers).
//!
//! Needs the venv of scripts/test-all.sh (`IRONHOUSE_PYTHON`); fails, never
//! skips, when Python, sqlite_rx or pytest is missing.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root)
}

fn ironhouse() -> &'static str {
    env!("CARGO_BIN_EXE_ironhouse")
}

/// The venv python with sqlite_rx and pytest, or a failing test.
fn python() -> PathBuf {
    let python = match std::env::var_os("IRONHOUSE_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/python"),
    };
    let out = Command::new(&python)
        .args(["-c", "import sqlite_rx, pytest, msgpack, zmq"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; run scripts/test-all.sh (it installs interop/requirements.txt) \
                 or set IRONHOUSE_PYTHON",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "{} cannot import sqlite_rx/pytest: {}; install interop/requirements.txt",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs a command to completion, killing it past `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// A server process, killed if the test ends early.
struct Server(Child);

impl Server {
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "server {pid} ignored SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sqlite_rx_own_test_suite_passes_against_ironhouse() {
    let python = python();
    let work = std::env::temp_dir().join(format!("ih-sqlite-rx-suite-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let out = run_bounded(
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-p",
                "ironhouse_sqlite_plugin",
                "-p",
                "no:cacheprovider",
                "--pyargs",
                "sqlite_rx.tests",
                "-q",
                "-s",
            ])
            .env("IRONHOUSE_BIN", ironhouse())
            .env("PYTHONPATH", repo_root().join("interop/sqlite_rx"))
            .current_dir(&work),
        Duration::from_secs(300),
    );
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sqlite_rx's suite failed against ironhouse:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("19 passed"),
        "expected sqlite_rx's 19 tests:\n{stdout}"
    );
    // Every server the suite started was ours: plain, CURVE, ZAP, backup.
    let launches: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("[ironhouse plugin]"))
        .collect();
    assert_eq!(launches.len(), 4, "{stderr}");
    assert!(launches.iter().any(|l| l.contains("--zap")));
    assert!(launches.iter().any(|l| l.contains("-b ")));
}

fn probe(python: &Path, endpoint: &str) -> String {
    let out = run_bounded(
        Command::new(python)
            .arg(repo_root().join("interop/sqlite_rx/probe.py"))
            .arg(endpoint),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// sqlite_rx's own Python server (`interop/sqlite_rx/py_server.py`).
fn sqlite_rx_server(python: &Path, endpoint: &str, database: &str) -> Server {
    Server(
        Command::new(python)
            .arg(repo_root().join("interop/sqlite_rx/py_server.py"))
            .arg(endpoint)
            .arg(database)
            .stdout(Stdio::null())
            .spawn()
            .expect("sqlite_rx server"),
    )
}

fn compare_with_sqlite_rx(database: impl Fn(&str) -> String) {
    let python = python();
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");

    let anchor = sqlite_rx_server(&python, &endpoint, &database("py"));
    let expected = probe(&python, &endpoint);
    anchor.stop();

    let ours = Server(
        Command::new(ironhouse())
            .args(["sqlite-server", "-l", "ERROR", "-a", &endpoint, "-d"])
            .arg(database("rs"))
            .stdout(Stdio::null())
            .spawn()
            .expect("ironhouse sqlite-server"),
    );
    let got = probe(&python, &endpoint);
    let status = ours.stop();
    assert!(
        status.success(),
        "ironhouse sqlite-server exited with {status}"
    );

    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    assert!(e.len() > 90, "the probe ran {} requests", e.len());
    for (a, b) in e.iter().zip(&g) {
        assert_eq!(a, b, "reply differs from sqlite_rx's");
    }
    assert_eq!(e.len(), g.len());
}

#[test]
fn replies_match_sqlite_rx_in_memory() {
    compare_with_sqlite_rx(|_| ":memory:".to_string());
}

#[test]
fn replies_match_sqlite_rx_file_database_with_readers() {
    let dir = std::env::temp_dir().join(format!("ih-sqlite-cmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.clone();
    compare_with_sqlite_rx(move |who| d.join(format!("{who}.db")).display().to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `ironhouse sqlite-client -a ENDPOINT ARGS…`, which must succeed,
/// and returns the JSON it prints.
fn sqlite_client_json(endpoint: &str, args: &[&str]) -> serde_json::Value {
    let out = run_bounded(
        Command::new(ironhouse())
            .args(["sqlite-client", "-a", endpoint])
            .args(args),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Our Rust client against sqlite_rx's own Python server (a REP socket):
/// one query, then pipelined load. libzmq's REP returns the request-id
/// frame of the pipelined client with each reply, so the envelope that
/// lets our client keep requests in flight is what sqlite_rx already
/// accepts.
#[test]
fn rust_client_talks_to_sqlite_rx_server_lockstep_and_pipelined() {
    let endpoint = format!("tcp://127.0.0.1:{}", free_port());
    let anchor = sqlite_rx_server(&python(), &endpoint, ":memory:");
    let reply = sqlite_client_json(&endpoint, &["exec", "SELECT 6 * 7, 'x', NULL"]);
    assert_eq!(reply["items"], serde_json::json!([[42, "x", null]]));
    assert_eq!(reply["error"], serde_json::Value::Null);

    // 8 in flight at once; the bench checks every reply's rows.
    let line = sqlite_client_json(
        &endpoint,
        &["bench", "select1", "--seconds", "1", "--in-flight", "8"],
    );
    assert_eq!(line["in_flight"], 8);
    assert!(line["queries"].as_u64().unwrap() > 0, "{line}");
    // Large bodies both ways: the 1,000-row insert goes out stored (a
    // loopback address), the 1,000-row results come back deflated.
    let line = sqlite_client_json(
        &endpoint,
        &["bench", "rows1000", "--seconds", "1", "--in-flight", "4"],
    );
    assert!(line["queries"].as_u64().unwrap() > 0, "{line}");
    drop(anchor);
}
