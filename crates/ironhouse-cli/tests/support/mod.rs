//! Process harness for the interop suites: spawns `ironhouse socket …` and the
//! pyzmq peer (`interop/peer.py`, same command-line contract) with piped
//! stdio, and reads their output with deadlines. Every wait is bounded, and a
//! [`Peer`] kills its process when dropped, so no process outlives a test.
//!
//! Environment:
//! - `IRONHOUSE_PYTHON`: the python with pyzmq (default `<repo>/.venv/bin/python`,
//!   made by `scripts/test-all.sh`). A missing python or pyzmq fails the test.
//! - `IRONHOUSE_INTEROP_SELFCHECK=1`: run pyzmq in place of ironhouse too, to
//!   check the tests themselves against libzmq on both sides. Never set in CI.

#![allow(dead_code)]

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a peer may take to print `bound <ep>`.
pub const BIND_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for an expected output line.
pub const LINE_WAIT: Duration = Duration::from_secs(15);
/// How long to wait for a process to exit when it is expected to.
pub const EXIT_WAIT: Duration = Duration::from_secs(15);
/// Generous bound for transfers of large messages (debug builds are slow).
pub const BIG_WAIT: Duration = Duration::from_secs(90);

/// Which implementation runs a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Ironhouse,
    Pyzmq,
}

impl fmt::Display for Impl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Impl::Ironhouse => f.write_str("ironhouse"),
            Impl::Pyzmq => f.write_str("pyzmq"),
        }
    }
}

pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("..").join("..");
    root.canonicalize().unwrap_or(root)
}

fn selfcheck() -> bool {
    std::env::var_os("IRONHOUSE_INTEROP_SELFCHECK").is_some_and(|v| v == "1")
}

/// The python that has pyzmq. Panics (fails the test) with a clear message
/// when it is missing or cannot import zmq: this suite never skips.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let python = match std::env::var_os("IRONHOUSE_PYTHON") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => repo_root().join(".venv").join("bin").join("python"),
        };
        let hint = "run scripts/test-all.sh (it creates .venv with interop/requirements.txt) \
                    or set IRONHOUSE_PYTHON to a python that has pyzmq";
        let out = Command::new(&python)
            .args([
                "-c",
                "import zmq; print(zmq.pyzmq_version(), zmq.zmq_version())",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run python {}: {e}; {hint}", python.display()))?;
        if !out.status.success() {
            return Err(format!(
                "python {} cannot import zmq ({}): {}; {hint}",
                python.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(python)
    });
    match found {
        Ok(p) => p.clone(),
        Err(e) => panic!("interop peer unavailable: {e}"),
    }
}

/// Arguments of one socket, shared by both implementations: `TYPE` then flags.
#[derive(Clone, Debug)]
pub struct Spec {
    args: Vec<String>,
}

impl Spec {
    pub fn new(socket_type: &str) -> Self {
        Spec {
            args: vec![socket_type.to_string()],
        }
    }
    pub fn bind(self, ep: &str) -> Self {
        self.arg("--bind").arg(ep)
    }
    /// Bind to a fresh loopback port.
    pub fn bind_any(self) -> Self {
        self.bind("tcp://127.0.0.1:*")
    }
    pub fn connect(self, ep: &str) -> Self {
        self.arg("--connect").arg(ep)
    }
    pub fn echo(self) -> Self {
        self.arg("--echo")
    }
    pub fn count(self, n: usize) -> Self {
        self.arg("--count").arg(&n.to_string())
    }
    pub fn subscribe(self, prefix: &str) -> Self {
        self.arg("--subscribe").arg(prefix)
    }
    pub fn hex(self) -> Self {
        self.arg("--hex")
    }
    pub fn identity(self, id: &str) -> Self {
        self.arg("--identity").arg(id)
    }
    pub fn send_file(self, path: &Path) -> Self {
        self.arg("--send-file")
            .arg(path.to_str().expect("utf-8 temp path"))
    }
    pub fn print_sizes(self) -> Self {
        self.arg("--print-sizes")
    }
    pub fn max_msg_size(self, bytes: usize) -> Self {
        self.arg("--max-msg-size").arg(&bytes.to_string())
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn spawn(&self, imp: Impl) -> Peer {
        Peer::spawn(imp, &self.args)
    }
}

/// A running socket process. Killed (and reaped) on drop.
pub struct Peer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<Vec<u8>>,
    stderr: Receiver<String>,
    stderr_log: Arc<Mutex<Vec<String>>>,
    stdout_log: Vec<String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Peer {
    pub fn spawn(imp: Impl, args: &[String]) -> Peer {
        // Every interop test needs pyzmq: fail early and clearly without it.
        let python = python();
        let effective = if selfcheck() { Impl::Pyzmq } else { imp };
        if effective != imp {
            eprintln!("WARNING: IRONHOUSE_INTEROP_SELFCHECK=1: pyzmq stands in for ironhouse");
        }
        let mut cmd = match effective {
            Impl::Ironhouse => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_ironhouse"));
                c.arg("socket");
                c
            }
            Impl::Pyzmq => {
                let mut c = Command::new(&python);
                c.arg("-u").arg(repo_root().join("interop").join("peer.py"));
                c
            }
        };
        cmd.args(args);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Peer::start(cmd, format!("#{n} {imp} {}", args.join(" ")))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the process said so far, for failure messages.
    pub fn diagnostics(&self) -> String {
        let err = self.stderr_log.lock().unwrap().join("\n    ");
        let tail: Vec<&String> = self.stdout_log.iter().rev().take(10).collect();
        let out: Vec<String> = tail.into_iter().rev().map(|l| shorten(l)).collect();
        format!(
            "[{}]\n  stderr:\n    {}\n  last stdout lines:\n    {}",
            self.name,
            err,
            out.join("\n    ")
        )
    }

    /// Waits for the next `bound <endpoint>` line on stderr.
    pub fn bound(&mut self) -> String {
        match self.try_bound() {
            Ok(ep) => ep,
            Err(e) => panic!("{e}\n{}", self.diagnostics()),
        }
    }

    /// Like [`Peer::bound`], but returns why there is no endpoint (the
    /// process exited, or said nothing in time) instead of failing.
    pub fn try_bound(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + BIND_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    if let Some(ep) = line.strip_prefix("bound ") {
                        return Ok(ep.trim().to_string());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no `bound` line within {BIND_WAIT:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5));
                    return Err(format!("exited ({status:?}) before binding"));
                }
            }
        }
    }

    /// Writes one line (a message; TAB separates frames) to stdin.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(line.as_bytes());
    }

    pub fn send_bytes(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        if let Err(e) = stdin.write_all(&buf).and_then(|_| stdin.flush()) {
            panic!("cannot write to stdin: {e}\n{}", self.diagnostics());
        }
    }

    /// Closes stdin (EOF for the process).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, if one arrives within `wait`.
    pub fn try_line(&mut self, wait: Duration) -> Option<Vec<u8>> {
        match self.stdout.recv_timeout(wait) {
            Ok(line) => {
                self.stdout_log
                    .push(String::from_utf8_lossy(&line).into_owned());
                Some(line)
            }
            Err(_) => None,
        }
    }

    /// The next stdout line as text; fails the test after `wait`.
    pub fn line_within(&mut self, wait: Duration) -> String {
        match self.try_line(wait) {
            Some(l) => String::from_utf8(l)
                .unwrap_or_else(|e| panic!("stdout line not UTF-8: {e}\n{}", self.diagnostics())),
            None => panic!(
                "no stdout line within {wait:?} (exit: {:?})\n{}",
                self.child.try_wait().ok().flatten(),
                self.diagnostics()
            ),
        }
    }

    pub fn line(&mut self) -> String {
        self.line_within(LINE_WAIT)
    }

    /// The next `n` stdout lines, all within one deadline.
    pub fn lines(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + LINE_WAIT;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_line(left) {
                Some(l) => out.push(String::from_utf8_lossy(&l).into_owned()),
                None => panic!(
                    "got {i} of {n} stdout lines within {LINE_WAIT:?}: {out:?}\n{}",
                    self.diagnostics()
                ),
            }
        }
        out
    }

    /// Asserts the next stdout lines are exactly `expected`.
    pub fn expect_lines(&mut self, expected: &[&str]) {
        let got = self.lines(expected.len());
        assert_eq!(got, expected, "unexpected output\n{}", self.diagnostics());
    }

    /// Fails if a stdout line shows up within `wait` (used after the last
    /// expected line, to catch extra deliveries; not a timing assertion).
    pub fn expect_no_line(&mut self, wait: Duration) {
        if let Some(l) = self.try_line(wait) {
            panic!(
                "unexpected stdout line {:?}\n{}",
                shorten(&String::from_utf8_lossy(&l)),
                self.diagnostics()
            );
        }
    }

    /// Waits up to `wait` for the process to exit.
    pub fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("wait failed: {e}\n{}", self.diagnostics()),
            }
        }
    }

    /// Asserts the process exits with status 0 within [`EXIT_WAIT`].
    pub fn expect_success(&mut self) {
        match self.wait_exit(EXIT_WAIT) {
            Some(s) if s.success() => {}
            Some(s) => panic!("exited with {s}\n{}", self.diagnostics()),
            None => panic!("still running after {EXIT_WAIT:?}\n{}", self.diagnostics()),
        }
    }

    /// Asserts the process exits non-zero within [`EXIT_WAIT`] and said why.
    pub fn expect_failure(&mut self) {
        match self.wait_exit(EXIT_WAIT) {
            Some(s) if !s.success() => {
                // Give the stderr reader a moment to drain the message.
                let _ = self.stderr.recv_timeout(Duration::from_secs(2));
                let said = self
                    .stderr_log
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|l| !l.trim().is_empty());
                assert!(
                    said,
                    "failed without a message on stderr\n{}",
                    self.diagnostics()
                );
            }
            Some(s) => panic!("expected failure, exited with {s}\n{}", self.diagnostics()),
            None => panic!("still running after {EXIT_WAIT:?}\n{}", self.diagnostics()),
        }
    }

    /// Kills the process now and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 200 {
        s.to_string()
    } else {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], s.len())
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    String::from_utf8(out).expect("hex is ASCII")
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A file in the temp dir, removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn with_contents(tag: &str, contents: &[u8]) -> TempFile {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "ironhouse-interop-{}-{tag}-{n}.bin",
            std::process::id()
        ));
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The port of a `tcp://host:port` endpoint.
pub fn port_of(ep: &str) -> u16 {
    ep.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in endpoint {ep:?}"))
}

// ------------------------------------------------------------------ security

/// The implementation that really runs for `imp` (pyzmq for both under
/// `IRONHOUSE_INTEROP_SELFCHECK=1`), for checks of implementation-specific
/// output.
pub fn effective(imp: Impl) -> Impl {
    if selfcheck() {
        Impl::Pyzmq
    } else {
        imp
    }
}

/// Security flags, the same for both implementations (see `ironhouse socket
/// --help` and `interop/peer.py`).
impl Spec {
    fn path_arg(self, flag: &str, path: &Path) -> Self {
        self.arg(flag).arg(path.to_str().expect("utf-8 temp path"))
    }
    pub fn timeout(self, secs: f64) -> Self {
        self.arg("--timeout").arg(&secs.to_string())
    }
    pub fn linger(self, secs: f64) -> Self {
        self.arg("--linger").arg(&secs.to_string())
    }
    /// CURVE server with the key pair in `secret` (a `.key_secret` file).
    pub fn curve_server(self, secret: &Path) -> Self {
        self.path_arg("--curve-server", secret)
    }
    /// CURVE client with the key pair in `secret`; `server_key` is the
    /// server's `.key` file or its Z85 key.
    pub fn curve_client(self, secret: &Path, server_key: &str) -> Self {
        self.path_arg("--curve-client", secret)
            .arg("--curve-serverkey")
            .arg(server_key)
    }
    /// IronHouse: admit the clients whose `.key` is in `dir` (ironhouse's own
    /// authenticator; pyzmq's ThreadAuthenticator in peer.py).
    pub fn authorized(self, dir: &Path) -> Self {
        self.path_arg("--authorized", dir)
    }
    /// peer.py only: pyzmq's ThreadAuthenticator with `configure_curve`.
    pub fn zap_allow_dir(self, dir: &Path) -> Self {
        self.path_arg("--zap-allow-dir", dir)
    }
    /// peer.py only: pyzmq's ThreadAuthenticator with `configure_plain`.
    pub fn zap_passwords(self, table: &Path) -> Self {
        self.path_arg("--zap-passwords", table)
    }
    pub fn plain_client(self, user: &str, password_file: &Path) -> Self {
        self.arg("--plain-user")
            .arg(user)
            .path_arg("--plain-password-file", password_file)
    }
    pub fn plain_server(self, table: &Path) -> Self {
        self.path_arg("--plain-server", table)
    }
    pub fn allow_plaintext_password(self) -> Self {
        self.arg("--allow-plaintext-password")
    }
    pub fn allow_insecure_key_permissions(self) -> Self {
        self.arg("--allow-insecure-key-permissions")
    }

    /// Runs `ironhouse socket` with these arguments, without asking for
    /// python (for the offline suites).
    pub fn spawn_ironhouse(&self) -> Peer {
        Peer::spawn_ironhouse(&self.args)
    }
}

/// `s` without ANSI colour sequences (the log lines of ironhouse have them).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Peer {
    /// Spawns `ironhouse socket <args>` without the python check and
    /// whatever `IRONHOUSE_INTEROP_SELFCHECK` says.
    pub fn spawn_ironhouse(args: &[String]) -> Peer {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironhouse"));
        cmd.arg("socket").args(args);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Peer::start(cmd, format!("#{n} ironhouse {}", args.join(" ")))
    }

    /// Starts `cmd` with piped stdio and threads that collect its stdout
    /// lines (raw) and stderr lines (also kept in a log).
    fn start(mut cmd: Command, name: String) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (out_tx, out_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if out_tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });

        let (err_tx, err_rx) = mpsc::channel();
        let stderr_log = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&stderr_log);
        thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        log.lock().unwrap().push(line.clone());
                        let _ = err_tx.send(line);
                    }
                }
            }
        });

        Peer {
            name,
            child,
            stdin,
            stdout: out_rx,
            stderr: err_rx,
            stderr_log,
            stdout_log: Vec::new(),
        }
    }

    /// Every stderr line so far, colours removed.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr_log
            .lock()
            .unwrap()
            .iter()
            .map(|l| strip_ansi(l))
            .collect()
    }

    /// The first stderr line containing all of `needles`, waiting up to `wait`.
    pub fn stderr_within(&self, needles: &[&str], wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(l) = self
                .stderr_lines()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails the test unless a stderr line containing all of `needles`
    /// appears within [`LINE_WAIT`]. Returns the line.
    pub fn expect_stderr(&self, needles: &[&str]) -> String {
        match self.stderr_within(needles, LINE_WAIT) {
            Some(l) => l,
            None => panic!(
                "no stderr line with {needles:?} within {LINE_WAIT:?}\n{}",
                self.diagnostics()
            ),
        }
    }

    /// Fails the test if a stderr line containing all of `needles` shows up
    /// within `wait`.
    pub fn expect_no_stderr(&self, needles: &[&str], wait: Duration) {
        if let Some(l) = self.stderr_within(needles, wait) {
            panic!("unexpected stderr line {l:?}\n{}", self.diagnostics());
        }
    }

    /// Asserts the process exits non-zero within [`EXIT_WAIT`] and says, on
    /// a stderr line, all of `needles` (put the error's prefix among them,
    /// such as `ironhouse: error:`). Returns that line.
    pub fn expect_error(&mut self, needles: &[&str]) -> String {
        self.expect_failure();
        // The reader thread may still be behind the exit by a line or two.
        match self.stderr_within(needles, Duration::from_secs(5)) {
            Some(l) => l,
            None => panic!(
                "exited without saying {needles:?} on stderr\n{}",
                self.diagnostics()
            ),
        }
    }
}

/// A fresh folder in the temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "ironhouse-sec-{}-{tag}-{n}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    /// A sub-folder, created.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        p
    }

    /// Writes a file with `mode`.
    pub fn write(&self, name: &str, contents: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path.join(name);
        std::fs::write(&p, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A CURVE key pair's certificate files and public key.
#[derive(Clone, Debug)]
pub struct KeyPair {
    pub public_file: PathBuf,
    pub secret_file: PathBuf,
    /// Z85.
    pub public_key: String,
}

/// Makes a key pair with `ironhouse keygen --layout plain --dir DIR --id ID`.
pub fn keygen(dir: &Path, id: &str) -> KeyPair {
    let out = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .args(["keygen", "--layout", "plain", "--id", id, "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run ironhouse keygen");
    assert!(
        out.status.success(),
        "ironhouse keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 keygen output");
    let field = |what: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(what).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("keygen printed no {what}: {text}"))
            .to_string()
    };
    KeyPair {
        public_file: PathBuf::from(field("public-file")),
        secret_file: PathBuf::from(field("secret-file")),
        public_key: field("public-key"),
    }
}

/// Copies a client's public certificate into an allow-list folder as `<name>.key`.
pub fn authorize(dir: &Path, name: &str, key: &KeyPair) -> PathBuf {
    let to = dir.join(format!("{name}.key"));
    std::fs::copy(&key.public_file, &to)
        .unwrap_or_else(|e| panic!("cannot copy {}: {e}", key.public_file.display()));
    to
}
