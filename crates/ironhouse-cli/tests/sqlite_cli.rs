//! `ironhouse sqlite-server` and `ironhouse sqlite-client` as processes:
//! `exec` runs a query once, CURVE + ZAP with keys from `ironhouse keygen`
//! (sqlite_rx's layout), and SIGTERM/SIGINT: the request in flight is
//! answered, a last backup is taken, the exit code is 0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ironhouse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ironhouse"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ih-sqlite-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running `sqlite-server`, killed if the test ends early.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = ironhouse()
            .arg("sqlite-server")
            .args(["-l", "ERROR", "-a", "tcp://127.0.0.1:*"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sqlite-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("bound line");
        let endpoint = line
            .strip_prefix("bound ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_string();
        Server { child, endpoint }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
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

fn client(endpoint: &str, extra: &[&str], query: &str) -> Output {
    let mut cmd = ironhouse();
    cmd.arg("sqlite-client")
        .args(["-a", endpoint, "--retries", "1"])
        .args(extra);
    if !extra.contains(&"--request-timeout") {
        cmd.args(["--request-timeout", "20"]);
    }
    cmd.args(["exec", query])
        .stdin(Stdio::null())
        .output()
        .expect("sqlite-client")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn exec_runs_the_query_once_and_prints_json() {
    let mut server = Server::start(&[]);
    let ep = server.endpoint.clone();
    assert!(client(&ep, &[], "CREATE TABLE t (a)").status.success());
    let out = client(&ep, &[], "INSERT INTO t VALUES (1)");
    assert!(out.status.success());
    assert_eq!(json(&out)["rowcount"], 1);
    let out = client(&ep, &[], "SELECT count(*) FROM t");
    assert_eq!(
        json(&out)["items"],
        serde_json::json!([[1]]),
        "inserted once"
    );
    // A failing statement: the error is printed and the exit code is 1.
    let out = client(&ep, &[], "SELECT * FROM nope");
    assert!(!out.status.success());
    assert_eq!(
        json(&out)["error"]["message"],
        "sqlite3.OperationalError: no such table: nope"
    );
    server.signal("-INT");
    assert!(server.wait().success(), "exit 0 after SIGINT");
}

#[test]
fn zap_requires_curve() {
    let out = ironhouse()
        .args(["sqlite-server", "-a", "tcp://127.0.0.1:*", "--zap"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--zap needs --curvezmq"));
}

fn keygen(dir: &Path, mode: &str) {
    let out = ironhouse()
        .args(["keygen", "--mode", mode, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn curve_and_zap_with_sqlite_rx_key_files() {
    let dir = temp_dir("curve");
    keygen(&dir, "server");
    keygen(&dir, "client");
    let d = dir.display().to_string();
    let mut server = Server::start(&["--curvezmq", "--zap", "-c", &d]);
    let ep = server.endpoint.clone();
    let curve = ["--curvezmq", "-d", &d, "--request-timeout", "1"];

    // The client's key is not in authorized_clients yet: no reply.
    let out = client(&ep, &curve, "SELECT 1");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no reply"));
    // Without CURVE: no reply either.
    let out = client(&ep, &["--request-timeout", "1"], "SELECT 1");
    assert!(!out.status.success());

    // Authorize it (as sqlite_rx's docs say: copy the .key file).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let name = format!("id_client_{host}_curve.key");
    std::fs::copy(dir.join(&name), dir.join("authorized_clients").join(&name)).unwrap();
    let mut served = None;
    for _ in 0..20 {
        let out = client(&ep, &curve, "SELECT 1");
        if out.status.success() {
            served = Some(out);
            break;
        }
    }
    let out = served.expect("admitted once its key is authorized");
    assert_eq!(json(&out)["items"], serde_json::json!([[1]]));
    server.signal("-TERM");
    assert!(server.wait().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_answers_the_request_in_flight_and_takes_a_last_backup() {
    let dir = temp_dir("signal");
    let db = dir.join("main.db").display().to_string();
    let backup = dir.join("backup.db");
    let b = backup.display().to_string();
    let mut server = Server::start(&["-d", &db, "-b", &b, "-i", "600", "--query-timeout", "3"]);
    let ep = server.endpoint.clone();
    assert!(client(&ep, &[], "CREATE TABLE t (a)").status.success());
    assert!(client(&ep, &[], "INSERT INTO t VALUES ('last')")
        .status
        .success());
    assert!(!backup.exists(), "no backup before the interval");

    // A request that runs until the 3 s limit, then SIGTERM while it runs.
    let ep2 = ep.clone();
    let in_flight = std::thread::spawn(move || {
        client(
            &ep2,
            &[],
            "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n) SELECT count(*) FROM n",
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    server.signal("-TERM");
    let status = server.wait();
    assert!(status.success(), "exit 0 after SIGTERM, got {status}");
    let out = in_flight.join().unwrap();
    let reply = json(&out);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("time limit"),
        "the request in flight got its reply: {reply}"
    );
    let conn = rusqlite_free_read(&backup);
    assert_eq!(conn, "last");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads the one value of the backup with the server itself (a second
/// server on the backup file), so this crate needs no SQLite of its own.
fn rusqlite_free_read(backup: &Path) -> String {
    let b = backup.display().to_string();
    let mut server = Server::start(&["-d", &b]);
    let out = client(&server.endpoint, &[], "SELECT a FROM t");
    server.signal("-INT");
    assert!(server.wait().success());
    json(&out)["items"][0][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
