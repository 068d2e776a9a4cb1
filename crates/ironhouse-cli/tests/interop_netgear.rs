//! Interop suite against the real vidgear 0.3.6 NetGear (pinned in
//! interop/requirements.txt; `interop/netgear/peer.py` drives it):
//! ironhouse-frames' sender → NetGear's receiver and NetGear's sender →
//! ironhouse-frames' receiver, over patterns 0/1/2 × secure modes 0/1/2 with
//! vidgear's key folder; raw frames compared bit for bit; termination both
//! ways; bidirectional return data (JSON and arrays); multi-server and
//! multi-client; and the failures (not on the allow-list, wrong keys, secure
//! mode mismatch) ending in a clear error within bounded time.
//!
//! Two NetGear defects found here, measured NetGear ↔ NetGear as well, shape
//! the NetGear-receiver cases: in pattern 0 with secure mode its receiver
//! thread dies about half the time (see [`NETGEAR_PAIR_DEFECT`]; such runs
//! are repeated, and our sender's error is checked), and in pattern 2 with
//! secure mode its SUB receives nothing at all.
//!
//! Without the venv (`IRONHOUSE_PYTHON`, made by scripts/test-all.sh) every
//! test fails saying so; none skips. Run with
//! `cargo test -p ironhouse-cli --features interop --test interop_netgear`.

#![cfg(feature = "interop")]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use ironhouse::SocketEvent;
use ironhouse_frames::{
    Frame, FrameError, FrameReceiver, FrameSender, KeyStore, Pattern, ReceiverConfig, Reply,
    ReturnData, SecureMode, SenderConfig, Value,
};
use support::{python, repo_root, TempDir};

/// Longest wait for one line from the Python peer.
const LINE_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for our side of an exchange.
const RUST_WAIT: Duration = Duration::from_secs(60);

const MODES: [SecureMode; 3] = [
    SecureMode::Grassland,
    SecureMode::StoneHouse,
    SecureMode::IronHouse,
];
const PATTERNS: [Pattern; 3] = [Pattern::Pair, Pattern::ReqRep, Pattern::PubSub];

/// The venv's python, checked to import vidgear's NetGear (fails, never skips).
fn netgear_python() -> std::path::PathBuf {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let py = python();
    let ok = OK.get_or_init(|| {
        let out = Command::new(&py)
            .args([
                "-c",
                "import vidgear.version, simplejpeg, numpy\nfrom vidgear.gears import NetGear\nprint(vidgear.version.__version__)",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{} cannot import vidgear's NetGear: {}; run scripts/test-all.sh (it installs interop/requirements.txt)",
                py.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    });
    if let Err(e) = ok {
        panic!("interop peer unavailable: {e}");
    }
    py
}

/// A running `interop/netgear/peer.py`, killed on drop.
struct NetGear {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    seen: Vec<String>,
    name: String,
}

impl NetGear {
    fn spawn(args: &[String]) -> NetGear {
        let mut cmd = Command::new(netgear_python());
        cmd.arg("-u")
            .arg(repo_root().join("interop").join("netgear").join("peer.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let name = format!("netgear {}", args.join(" "));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name}: {e}"));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let log = stderr.clone();
        let err = child.stderr.take().expect("piped");
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push(line);
            }
        });
        NetGear {
            child,
            lines: rx,
            stderr,
            seen: Vec::new(),
            name,
        }
    }

    fn diagnostics(&self) -> String {
        format!(
            "[{}]\n  stdout:\n    {}\n  stderr:\n    {}",
            self.name,
            self.seen.join("\n    "),
            self.stderr.lock().unwrap().join("\n    ")
        )
    }

    /// The next JSON line.
    fn next(&mut self) -> Value {
        match self.lines.recv_timeout(LINE_WAIT) {
            Ok(l) => {
                self.seen.push(l.clone());
                serde_json::from_str(&l)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{}", self.diagnostics()))
            }
            Err(_) => panic!("no line within {LINE_WAIT:?}\n{}", self.diagnostics()),
        }
    }

    /// Lines up to and including the one whose `event` is `last`.
    fn until(&mut self, last: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self.next();
            let done = v["event"] == last;
            out.push(v);
            if done {
                return out;
            }
        }
    }

    /// Lines up to and including the `n`th `frame` event.
    fn frames(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut k = 0;
        while k < n {
            let v = self.next();
            if v["event"] == "frame" {
                k += 1;
            }
            assert_ne!(v["event"], "terminated", "{}", self.diagnostics());
            out.push(v);
        }
        out
    }

    fn ready(&mut self) {
        let v = self.next();
        assert_eq!(v["event"], "ready", "{}", self.diagnostics());
    }

    /// A NetGear receiver on a free loopback port, ready: `recv --port P
    /// --pattern N` plus `extra`. Returns it and the endpoint to connect to.
    fn receiver(pattern: u8, extra: &[&str]) -> (NetGear, String) {
        let port = free_port().to_string();
        let pattern = pattern.to_string();
        let mut list = vec!["recv", "--port", &port, "--pattern", &pattern];
        list.extend_from_slice(extra);
        let mut ng = NetGear::spawn(&args(&list));
        ng.ready();
        (ng, format!("tcp://127.0.0.1:{port}"))
    }

    /// Asserts the process ends successfully within [`LINE_WAIT`].
    fn exits_ok(&mut self) {
        let deadline = std::time::Instant::now() + LINE_WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert!(s.success(), "exit {s}\n{}", self.diagnostics());
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running\n{}",
                self.diagnostics()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NetGear {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// `tokio::time::timeout`, created inside the runtime (for `block_on`).
async fn bounded<F: std::future::Future>(
    d: Duration,
    f: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(d, f).await
}

/// A free loopback port (for NetGear, which binds a fixed port).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A key folder with both pairs, written by ironhouse (0600 secrets).
fn keys(tag: &str) -> (TempDir, KeyStore) {
    let dir = TempDir::new(tag);
    let ks = KeyStore::at(&dir.path);
    ks.regenerate().expect("keys");
    (dir, ks)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn secure_args(mode: SecureMode, dir: &TempDir) -> Vec<String> {
    vec![
        "--secure".into(),
        mode.number().to_string(),
        "--keys".into(),
        dir.path.to_str().unwrap().into(),
    ]
}

fn sender_cfg(pattern: Pattern, mode: SecureMode, ks: &KeyStore) -> SenderConfig {
    SenderConfig::new(pattern)
        .secure(mode, ks.clone())
        .timeouts(Duration::from_secs(5), 3, Duration::from_secs(10))
}

fn receiver_cfg(pattern: Pattern, mode: SecureMode, ks: &KeyStore) -> ReceiverConfig {
    ReceiverConfig::new(pattern)
        .secure(mode, ks.clone())
        .recv_timeout(Some(Duration::from_secs(30)))
}

fn seq_msg(i: u64) -> Value {
    serde_json::json!({ "seq": i })
}

/// Checks NetGear's receiver output: every frame bit-exact, in order, all of
/// them unless PUB/SUB dropped some, then termination.
fn check_netgear_frames(lines: &[Value], n: u64, pattern: Pattern, ng: &NetGear) {
    let frames: Vec<&Value> = lines.iter().filter(|v| v["event"] == "frame").collect();
    let seqs: Vec<u64> = frames.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    for f in &frames {
        assert_eq!(
            f["exact"],
            true,
            "frame not bit-exact: {f}\n{}",
            ng.diagnostics()
        );
        assert_eq!(f["shape"], serde_json::json!([48, 64, 3]));
        assert_eq!(f["dtype"], "uint8");
    }
    if pattern == Pattern::PubSub {
        assert!(!seqs.is_empty(), "no frame\n{}", ng.diagnostics());
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    } else {
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "{}", ng.diagnostics());
    }
    assert_eq!(lines.last().unwrap()["event"], "terminated");
}

/// NetGear's receiver thread dies when, in pattern 0 with secure mode, its
/// poll wakes for the ZAP credential libzmq queues on a PAIR before the first
/// frame arrives (`recv_json(DONTWAIT)` raises `zmq.error.Again`). Measured
/// NetGear ↔ NetGear too: 3 of 6 runs. Whoever the sender, it is a race.
const NETGEAR_PAIR_DEFECT: &str = "zmq.error.Again";

/// Attempts at pattern 0 with secure mode before NetGear's defect fails the test.
const PAIR_SECURE_ATTEMPTS: usize = 8;

/// One ironhouse → NetGear run. `Ok(())`: every frame delivered and checked.
/// `Err(())`: NetGear's receiver hit [`NETGEAR_PAIR_DEFECT`], and our sender
/// reported it as a clear, bounded error (checked here).
fn ih_to_ng(rt: &tokio::runtime::Runtime, pattern: Pattern, mode: SecureMode) -> Result<(), ()> {
    let (dir, ks) = keys("ih2ng");
    let port = free_port();
    let mut a = args(&[
        "recv",
        "--port",
        &port.to_string(),
        "--pattern",
        &pattern.number().to_string(),
    ]);
    if mode != SecureMode::Grassland {
        a.extend(secure_args(mode, &dir));
    }
    let mut ng = NetGear::spawn(&a);
    ng.ready();
    let n = 12u64;
    let ep = format!("tcp://127.0.0.1:{port}");
    let cfg =
        sender_cfg(pattern, mode, &ks).timeouts(Duration::from_secs(3), 1, Duration::from_secs(10));
    let sent = rt
        .block_on(bounded(RUST_WAIT, async {
            let mut tx = FrameSender::connect(&[ep.as_str()], cfg).await?;
            for i in 0..n {
                let reply = tx
                    .send(&Frame::synthetic(48, 64, 3, i), Some(&seq_msg(i)))
                    .await?;
                if pattern.has_replies() {
                    match reply {
                        Some(Reply::Ack(t)) => {
                            assert!(t.starts_with("Data received on device: "), "{t}")
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
            Ok::<_, FrameError>(tx)
        }))
        .expect("bounded: our sender never hangs");
    let tx = match sent {
        Ok(tx) => tx,
        Err(e) => {
            let defect = ng
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(NETGEAR_PAIR_DEFECT));
            if defect && pattern == Pattern::Pair && mode != SecureMode::Grassland {
                assert!(matches!(e, FrameError::ReceiverGone { .. }), "{e}");
                eprintln!("  NetGear's receiver thread died ({NETGEAR_PAIR_DEFECT}); our sender said: {e}");
                return Err(());
            }
            panic!("{e}\n{}", ng.diagnostics());
        }
    };
    // NetGear's recv() drops the frames still queued once the termination
    // arrives: let its application read them first (pattern 2: the first
    // one, which the empty queues always let through; NetGear's secure SUB
    // receives nothing, see below).
    let mut lines = match pattern {
        Pattern::PubSub if mode == SecureMode::Grassland => ng.frames(1),
        Pattern::PubSub => Vec::new(),
        _ => ng.frames(n as usize),
    };
    let acks = rt
        .block_on(bounded(RUST_WAIT, tx.close()))
        .expect("bounded")
        .unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics()));
    if pattern == Pattern::ReqRep {
        assert_eq!(
            acks,
            vec!["Termination signal successfully received at Client's end!".to_string()]
        );
    }
    if pattern == Pattern::PubSub && mode != SecureMode::Grassland {
        // NetGear's SUB in secure mode receives nothing, not even from
        // NetGear's own sender (measured: vidgear 0.3.6 ↔ itself, pattern 2,
        // secure 1 and 2, 0 frames and no termination). Our side did its
        // part: the CURVE handshake and the subscription (connect waits for
        // it) succeeded and every send returned. Whatever NetGear printed
        // must still be exact.
        while let Ok(l) = ng.lines.recv_timeout(Duration::from_secs(2)) {
            let v: Value = serde_json::from_str(&l).unwrap();
            if v["event"] == "frame" {
                assert_eq!(v["exact"], true, "{v}");
            }
        }
        return Ok(());
    }
    lines.extend(ng.until("terminated"));
    check_netgear_frames(&lines, n, pattern, &ng);
    ng.exits_ok();
    Ok(())
}

#[test]
fn ironhouse_sender_to_netgear_receiver_every_pattern_and_secure_mode() {
    let rt = rt();
    for pattern in PATTERNS {
        for mode in MODES {
            eprintln!(
                "ironhouse -> NetGear: pattern {}, secure mode {}",
                pattern.number(),
                mode.number()
            );
            let attempts = if pattern == Pattern::Pair && mode != SecureMode::Grassland {
                PAIR_SECURE_ATTEMPTS
            } else {
                1
            };
            let ok = (0..attempts).any(|_| ih_to_ng(&rt, pattern, mode).is_ok());
            assert!(
                ok,
                "NetGear's receiver died {attempts} times in a row ({NETGEAR_PAIR_DEFECT})"
            );
        }
    }
}

/// Receives until termination; returns the seqs (from NetGear's messages
/// where it sends them, else byte 0) after checking every frame bit-exact.
async fn receive_all(rx: &mut FrameReceiver) -> Result<Vec<u64>, FrameError> {
    let mut seqs = Vec::new();
    while let Some(r) = rx.recv().await? {
        let seq = r
            .message
            .as_ref()
            .and_then(|m| m["seq"].as_u64())
            .expect("NetGear sends {seq}");
        assert!(r.frame.is_synthetic(seq), "frame {seq} not bit-exact");
        assert_eq!(r.frame.shape(), &[48, 64, 3]);
        seqs.push(seq);
    }
    Ok(seqs)
}

#[test]
fn netgear_sender_to_ironhouse_receiver_every_pattern_and_secure_mode() {
    let rt = rt();
    for pattern in PATTERNS {
        for mode in MODES {
            eprintln!(
                "NetGear -> ironhouse: pattern {}, secure mode {}",
                pattern.number(),
                mode.number()
            );
            let (dir, ks) = keys("ng2ih");
            let mut rx = rt
                .block_on(FrameReceiver::bind(
                    &["tcp://127.0.0.1:*"],
                    receiver_cfg(pattern, mode, &ks),
                ))
                .expect("bind");
            let port = match rx.endpoints()[0] {
                ironhouse::Endpoint::Tcp { port, .. } => port,
                ref other => panic!("{other}"),
            };
            let recv = rt
                .spawn(async move { receive_all(&mut rx).await.map(|s| (s, rx.is_terminated())) });
            let n = 12u64;
            let mut a = args(&[
                "send",
                "--port",
                &port.to_string(),
                "--pattern",
                &pattern.number().to_string(),
                "--count",
                &n.to_string(),
            ]);
            if pattern == Pattern::PubSub {
                // PUB/SUB's slow joiner, and a queue to drain before close.
                a.extend(args(&["--settle", "0.5"]));
            }
            if mode != SecureMode::Grassland {
                a.extend(secure_args(mode, &dir));
            }
            let mut ng = NetGear::spawn(&a);
            let lines = ng.until("closed");
            let (seqs, terminated) = rt
                .block_on(bounded(RUST_WAIT, recv))
                .expect("bounded")
                .expect("task")
                .unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics()));
            assert!(terminated);
            if pattern == Pattern::PubSub {
                assert!(!seqs.is_empty());
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
            } else {
                assert_eq!(seqs, (0..n).collect::<Vec<_>>());
                // NetGear's send() got our reply to every frame (None: not bidirectional).
                assert_eq!(
                    lines.iter().filter(|v| v["event"] == "reply").count() as u64,
                    n
                );
            }
            ng.exits_ok();
        }
    }
}

#[test]
fn bidirectional_return_data_both_ways() {
    let rt = rt();
    for pattern in [Pattern::Pair, Pattern::ReqRep] {
        // NetGear receiver returns JSON to our sender.
        let (mut ng, ep) = NetGear::receiver(
            pattern.number(),
            &[
                "--bidirectional",
                "--return-json",
                r#"{"objects": [1, 2, 3], "label": "cat"}"#,
            ],
        );
        let send = |tx: &mut FrameSender, i: u64| {
            rt.block_on(bounded(
                RUST_WAIT,
                tx.send(&Frame::synthetic(48, 64, 3, i), Some(&seq_msg(i))),
            ))
            .expect("bounded")
        };
        let cfg = SenderConfig::new(pattern).bidirectional(true);
        let mut tx = rt
            .block_on(bounded(
                RUST_WAIT,
                FrameSender::connect(&[ep.as_str()], cfg),
            ))
            .expect("bounded")
            .unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics()));
        // NetGear stores the return data when its recv(return_data=…) is
        // called, and its receiving thread answers each frame with what is
        // stored at that moment. Once the driver has reported the first
        // frame, its first recv call has stored the JSON: every frame sent
        // after that is answered with it.
        let mut replies = Vec::new();
        replies.push(send(&mut tx, 0).unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics())));
        let mut lines = ng.frames(1);
        for i in 1..6 {
            replies.push(send(&mut tx, i).unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics())));
        }
        lines.extend(ng.frames(5));
        rt.block_on(bounded(RUST_WAIT, tx.close()))
            .expect("bounded")
            .expect("close");
        lines.extend(ng.until("terminated"));
        // In bidirectional mode NetGear hands over the message: seq is the sender's.
        let frames: Vec<&Value> = lines.iter().filter(|v| v["event"] == "frame").collect();
        assert_eq!(frames.len(), 6);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f["message"], seq_msg(i as u64));
            assert_eq!(f["exact"], true);
        }
        // From the second frame on (sent after the first was reported), the
        // JSON.
        let want = serde_json::json!({"objects": [1, 2, 3], "label": "cat"});
        for r in &replies[1..] {
            assert_eq!(
                r,
                &Some(Reply::Data {
                    port: None,
                    data: ReturnData::Json(want.clone())
                })
            );
        }
        ng.exits_ok();

        // Our receiver returns an array to NetGear's sender.
        let mut rx = rt
            .block_on(FrameReceiver::bind(
                &["tcp://127.0.0.1:*"],
                ReceiverConfig::new(pattern).bidirectional(true),
            ))
            .unwrap();
        rx.set_return_data(ReturnData::Array(Frame::synthetic(10, 12, 3, 42)));
        let port = match rx.endpoints()[0] {
            ironhouse::Endpoint::Tcp { port, .. } => port,
            ref other => panic!("{other}"),
        };
        let recv = rt.spawn(async move {
            let mut msgs = Vec::new();
            while let Some(r) = rx.recv().await? {
                msgs.push(r.message);
            }
            Ok::<_, FrameError>(msgs)
        });
        let mut ng = NetGear::spawn(&args(&[
            "send",
            "--port",
            &port.to_string(),
            "--pattern",
            &pattern.number().to_string(),
            "--bidirectional",
            "--count",
            "4",
        ]));
        let lines = ng.until("closed");
        let msgs = rt
            .block_on(bounded(RUST_WAIT, recv))
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(msgs, (0..4).map(|i| Some(seq_msg(i))).collect::<Vec<_>>());
        let replies: Vec<&Value> = lines.iter().filter(|v| v["event"] == "reply").collect();
        assert_eq!(replies.len(), 4);
        for r in replies {
            assert_eq!(r["array_shape"], serde_json::json!([10, 12, 3]), "{r}");
            assert_eq!(r["exact_seq"], serde_json::json!([42]), "{r}");
        }
        ng.exits_ok();
    }
}

#[test]
fn multiserver_both_ways() {
    let rt = rt();
    for pattern in [Pattern::ReqRep, Pattern::PubSub] {
        // Two of our senders into one NetGear receiver on two ports.
        let (p1, p2) = (free_port(), free_port());
        let mut a = args(&[
            "recv",
            "--port",
            "0",
            "--pattern",
            &pattern.number().to_string(),
        ]);
        a.extend(args(&["--multiserver", &format!("{p1},{p2}")]));
        let mut ng = NetGear::spawn(&a);
        ng.ready();
        let senders = rt
            .block_on(bounded(RUST_WAIT, async {
                let mut tasks = Vec::new();
                for p in [p1, p2] {
                    tasks.push(tokio::spawn(async move {
                        let ep = format!("tcp://127.0.0.1:{p}");
                        let cfg = SenderConfig::new(pattern).multiserver_port(p.to_string());
                        let mut tx = FrameSender::connect(&[ep.as_str()], cfg).await?;
                        for i in 0..5 {
                            tx.send(&Frame::synthetic(48, 64, 3, i), Some(&seq_msg(i)))
                                .await?;
                        }
                        Ok::<_, FrameError>(tx)
                    }));
                }
                let mut senders = Vec::new();
                for t in tasks {
                    senders.push(t.await.unwrap().expect("sender"));
                }
                senders
            }))
            .expect("bounded");
        // Let NetGear's application read the frames before terminating (its
        // recv() drops what is queued once every sender terminated).
        // (Pattern 2: at least the first frame, always let through.)
        let mut lines = if pattern.has_replies() {
            ng.frames(10)
        } else {
            ng.frames(1)
        };
        for tx in senders {
            let acks = rt
                .block_on(bounded(RUST_WAIT, tx.close()))
                .expect("bounded")
                .expect("close");
            if pattern == Pattern::ReqRep {
                assert_eq!(
                    acks,
                    vec!["Termination signal successfully received at client!".to_string()]
                );
            }
        }
        lines.extend(ng.until("terminated"));
        for p in [p1, p2] {
            let seqs: Vec<u64> = lines
                .iter()
                .filter(|v| v["event"] == "frame" && v["port"] == Value::String(p.to_string()))
                .map(|v| {
                    assert_eq!(v["exact"], true, "{v}");
                    v["seq"].as_u64().unwrap()
                })
                .collect();
            if pattern == Pattern::ReqRep {
                assert_eq!(seqs, vec![0, 1, 2, 3, 4], "port {p}\n{}", ng.diagnostics());
            } else {
                assert!(seqs.windows(2).all(|w| w[0] < w[1]));
            }
        }
        ng.exits_ok();

        // Two NetGear senders into one of our receivers on two ports.
        // NetGear's senders start one after the other: name both ports, so
        // the first one's termination does not end the receiver.
        let ports = [free_port(), free_port()];
        let eps = ports.map(|p| format!("tcp://127.0.0.1:{p}"));
        let mut rx = rt
            .block_on(FrameReceiver::bind(
                &[eps[0].as_str(), eps[1].as_str()],
                ReceiverConfig::new(pattern)
                    .multiserver_ports(ports.map(|p| p.to_string()))
                    .hwm(100)
                    .recv_timeout(Some(Duration::from_secs(30))),
            ))
            .unwrap();
        let recv = rt.spawn(async move {
            let mut got = Vec::new();
            while let Some(r) = rx.recv().await? {
                let seq = r.message.as_ref().unwrap()["seq"].as_u64().unwrap();
                assert!(r.frame.is_synthetic(seq));
                got.push((r.port.unwrap(), seq));
            }
            Ok::<_, FrameError>(got)
        });
        let mut senders: Vec<NetGear> = ports
            .iter()
            .map(|p| {
                let mut a = args(&[
                    "send",
                    "--port",
                    &p.to_string(),
                    "--pattern",
                    &pattern.number().to_string(),
                ]);
                a.extend(args(&["--multiserver", "--count", "5"]));
                if pattern == Pattern::PubSub {
                    a.extend(args(&["--settle", "0.5"]));
                }
                NetGear::spawn(&a)
            })
            .collect();
        for s in &mut senders {
            s.until("closed");
        }
        let got = rt
            .block_on(bounded(RUST_WAIT, recv))
            .unwrap()
            .unwrap()
            .unwrap();
        for p in &ports {
            let seqs: Vec<u64> = got
                .iter()
                .filter(|(q, _)| *q == p.to_string())
                .map(|(_, s)| *s)
                .collect();
            if pattern == Pattern::ReqRep {
                assert_eq!(seqs, vec![0, 1, 2, 3, 4], "{got:?}");
            } else {
                assert!(
                    !seqs.is_empty() && seqs.windows(2).all(|w| w[0] < w[1]),
                    "{got:?}"
                );
            }
        }
        for s in &mut senders {
            s.exits_ok();
        }
    }
}

#[test]
fn multiclient_both_ways() {
    let rt = rt();
    // Our sender to two NetGear receivers (pattern 1: round-robin; replies name the port).
    let (p1, p2) = (free_port(), free_port());
    let mut ngs: Vec<NetGear> = [p1, p2]
        .iter()
        .map(|p| {
            NetGear::spawn(&args(&[
                "recv",
                "--port",
                &p.to_string(),
                "--pattern",
                "1",
                "--multiclient",
            ]))
        })
        .collect();
    for n in &mut ngs {
        n.ready();
    }
    let (ports, tx) = rt
        .block_on(bounded(RUST_WAIT, async {
            let eps = [
                format!("tcp://127.0.0.1:{p1}"),
                format!("tcp://127.0.0.1:{p2}"),
            ];
            let eps: Vec<&str> = eps.iter().map(String::as_str).collect();
            let mut tx =
                FrameSender::connect(&eps, SenderConfig::new(Pattern::ReqRep).multiclient(true))
                    .await?;
            let mut ports = Vec::new();
            for i in 0..6 {
                match tx
                    .send(&Frame::synthetic(48, 64, 3, i), Some(&seq_msg(i)))
                    .await?
                {
                    Some(Reply::Data {
                        port: Some(p),
                        data: ReturnData::None,
                    }) => ports.push(p),
                    other => panic!("{other:?}"),
                }
            }
            Ok::<_, FrameError>((ports, tx))
        }))
        .expect("bounded")
        .expect("sender");
    // NetGear's application reads its frames before the termination.
    let mut seen: Vec<Vec<Value>> = ngs.iter_mut().map(|n| n.frames(3)).collect();
    let acks = rt
        .block_on(bounded(RUST_WAIT, tx.close()))
        .expect("bounded")
        .expect("close");
    let mut sorted = ports.clone();
    sorted.sort();
    let (s1, s2) = (p1.to_string(), p2.to_string());
    let mut want = vec![s1.clone(), s1.clone(), s1, s2.clone(), s2.clone(), s2];
    want.sort();
    assert_eq!(sorted, want);
    assert_eq!(acks.len(), 2);
    for (n, mut lines) in ngs.iter_mut().zip(seen.drain(..)) {
        lines.extend(n.until("terminated"));
        let frames: Vec<&Value> = lines.iter().filter(|v| v["event"] == "frame").collect();
        assert_eq!(frames.len(), 3, "{}", n.diagnostics());
        assert!(frames.iter().all(|f| f["exact"] == true));
        n.exits_ok();
    }

    // A NetGear sender to two of our receivers (pattern 2: every receiver gets the frames).
    let rt2 = &rt;
    let mut rxs = Vec::new();
    for _ in 0..2 {
        rxs.push(
            rt2.block_on(FrameReceiver::bind(
                &["tcp://127.0.0.1:*"],
                ReceiverConfig::new(Pattern::PubSub)
                    .hwm(100)
                    .recv_timeout(Some(Duration::from_secs(5))),
            ))
            .unwrap(),
        );
    }
    let ports: Vec<String> = rxs
        .iter()
        .map(|r| match r.endpoints()[0] {
            ironhouse::Endpoint::Tcp { port, .. } => port.to_string(),
            ref other => panic!("{other}"),
        })
        .collect();
    let tasks: Vec<_> = rxs
        .into_iter()
        .map(|mut rx| {
            rt.spawn(async move {
                let mut seqs = Vec::new();
                // NetGear's multi-client PUB never sends termination (its
                // port list fills from replies, and PUB has none): stop at
                // the last frame.
                while seqs.len() < 5 {
                    let r = match rx.recv().await {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        // PUB with NetGear's high-water mark of 1 dropped the rest.
                        Err(FrameError::Timeout { .. }) if !seqs.is_empty() => break,
                        Err(e) => return Err(e),
                    };
                    let seq = r.message.as_ref().unwrap()["seq"].as_u64().unwrap();
                    assert!(r.frame.is_synthetic(seq));
                    seqs.push(seq);
                }
                Ok::<_, FrameError>(seqs)
            })
        })
        .collect();
    let mut ng = NetGear::spawn(&args(&[
        "send",
        "--port",
        &ports.join(","),
        "--pattern",
        "2",
        "--multiclient",
        "--count",
        "5",
        "--settle",
        "0.5",
    ]));
    ng.until("closed");
    for t in tasks {
        let seqs = rt
            .block_on(bounded(RUST_WAIT, t))
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            !seqs.is_empty() && seqs.windows(2).all(|w| w[0] < w[1]),
            "{seqs:?}"
        );
    }
    ng.exits_ok();
}

#[test]
fn refusals_are_clear_and_bounded_and_never_null() {
    let rt = rt();
    // NetGear sender whose client key is not on our IronHouse allow-list:
    // our receiver reports the refusal with its reason (NetGear's send()
    // then blocks forever, as measured; the harness kills it).
    let (dir, _) = keys("ng-refused");
    let (_ours, ours_ks) = keys("ih-server");
    // The NetGear side knows our server's public key, but has its own client pair.
    std::fs::copy(
        ours_ks.public_keys_dir().join("server.key"),
        KeyStore::at(&dir.path).public_keys_dir().join("server.key"),
    )
    .unwrap();
    let empty = TempDir::new("empty-allow-list");
    let allow_nobody = ours_ks.clone().allow_list(&empty.path);
    let rx = rt
        .block_on(FrameReceiver::bind(
            &["tcp://127.0.0.1:*"],
            receiver_cfg(Pattern::ReqRep, SecureMode::IronHouse, &allow_nobody),
        ))
        .unwrap();
    let mut events = rx.monitor();
    let port = match rx.endpoints()[0] {
        ironhouse::Endpoint::Tcp { port, .. } => port,
        ref other => panic!("{other}"),
    };
    let mut a = args(&[
        "send",
        "--port",
        &port.to_string(),
        "--pattern",
        "1",
        "--count",
        "1",
    ]);
    a.extend(secure_args(SecureMode::IronHouse, &dir));
    let mut ng = NetGear::spawn(&a);
    ng.ready();
    let reason = rt
        .block_on(bounded(RUST_WAIT, async {
            loop {
                if let SocketEvent::HandshakeFailed { reason, .. } = events.recv().await.unwrap() {
                    return reason;
                }
            }
        }))
        .expect("a handshake failure within bounds");
    assert!(reason.contains("allow-list"), "{reason}");
    drop(ng);
    drop(rx);

    // Our sender against a NetGear IronHouse receiver that does not know our
    // client key: a handshake error, within the connect timeout.
    let (ng_dir, _) = keys("ng-server");
    let port = free_port();
    let mut a = args(&["recv", "--port", &port.to_string(), "--pattern", "1"]);
    a.extend(secure_args(SecureMode::IronHouse, &ng_dir));
    let mut ng = NetGear::spawn(&a);
    ng.ready();
    let mine = TempDir::new("ih-client");
    let mine_ks = KeyStore::at(&mine.path);
    std::fs::create_dir_all(mine_ks.public_keys_dir()).unwrap();
    std::fs::copy(
        KeyStore::at(&ng_dir.path)
            .public_keys_dir()
            .join("server.key"),
        mine_ks.public_keys_dir().join("server.key"),
    )
    .unwrap();
    let ep = format!("tcp://127.0.0.1:{port}");
    let err = rt
        .block_on(bounded(
            RUST_WAIT,
            FrameSender::connect(
                &[ep.as_str()],
                sender_cfg(Pattern::ReqRep, SecureMode::IronHouse, &mine_ks),
            ),
        ))
        .expect("bounded")
        .expect_err("refused");
    assert!(matches!(err, FrameError::Handshake { .. }), "{err}");
    drop(ng);

    // Secure mode mismatch: our IronHouse sender against NetGear in secure
    // mode 0 is refused (no NULL fallback); and NetGear secure 2 against our
    // NULL receiver sends nothing we accept.
    let (ng, ep) = NetGear::receiver(1, &[]);
    let err = rt
        .block_on(bounded(
            RUST_WAIT,
            FrameSender::connect(
                &[ep.as_str()],
                sender_cfg(
                    Pattern::ReqRep,
                    SecureMode::IronHouse,
                    &KeyStore::at(&ng_dir.path),
                ),
            ),
        ))
        .expect("bounded")
        .expect_err("mismatch");
    assert!(matches!(err, FrameError::Handshake { .. }), "{err}");
    drop(ng);

    // Receiver gone mid-stream: NetGear receiver killed after two frames;
    // our sender errs within its timeouts (2 retries of 2 s here).
    let (ng, ep) = NetGear::receiver(1, &[]);
    let mut tx = rt
        .block_on(FrameSender::connect(
            &[ep.as_str()],
            SenderConfig::new(Pattern::ReqRep).timeouts(
                Duration::from_secs(2),
                2,
                Duration::from_secs(10),
            ),
        ))
        .unwrap();
    for i in 0..2 {
        rt.block_on(tx.send(&Frame::synthetic(48, 64, 3, i), None))
            .unwrap();
    }
    drop(ng);
    let result = rt.block_on(bounded(RUST_WAIT, async {
        let mut errors = Vec::new();
        for i in 2..5 {
            match tx.send(&Frame::synthetic(48, 64, 3, i), None).await {
                Ok(r) => panic!("a reply from a dead receiver: {r:?}"),
                Err(e) => errors.push(e),
            }
        }
        errors
    }));
    let errors = result.expect("bounded");
    assert!(
        matches!(errors[0], FrameError::Timeout { .. }),
        "{}",
        errors[0]
    );
    assert!(
        matches!(errors[1], FrameError::ReceiverGone { .. }),
        "{}",
        errors[1]
    );
    assert!(matches!(errors[2], FrameError::Closed), "{}", errors[2]);
}

/// The stated JPEG error bound (ironhouse_frames::jpeg): on the smooth test
/// picture at quality 90, mean absolute error per byte and largest error.
const JPEG_MAE: f64 = 1.5;
const JPEG_MAX: u64 = 8;

#[test]
fn jpeg_frames_both_ways_within_the_error_bound() {
    use ironhouse_frames::Jpeg;
    let rt = rt();
    // Ours encodes (jpeg-encoder), NetGear's simplejpeg decodes.
    let (mut ng, ep) = NetGear::receiver(1, &["--frame", "smooth"]);
    let picture = Frame::gradient(480, 640);
    let tx = rt
        .block_on(bounded(RUST_WAIT, async {
            let cfg = SenderConfig::new(Pattern::ReqRep).jpeg(Some(Jpeg::default()));
            let mut tx = FrameSender::connect(&[ep.as_str()], cfg).await?;
            for i in 0..3 {
                tx.send(&picture, Some(&seq_msg(i))).await?;
            }
            Ok::<_, FrameError>(tx)
        }))
        .expect("bounded")
        .unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics()));
    let mut lines = ng.frames(3);
    rt.block_on(bounded(RUST_WAIT, tx.close()))
        .expect("bounded")
        .expect("close");
    lines.extend(ng.until("terminated"));
    for f in lines.iter().filter(|v| v["event"] == "frame") {
        eprintln!(
            "simplejpeg decoded ours: mean error {}, max {}",
            f["mae"], f["maxerr"]
        );
        assert_eq!(f["shape"], serde_json::json!([480, 640, 3]), "{f}");
        assert!(f["mae"].as_f64().unwrap() <= JPEG_MAE, "{f}");
        assert!(f["maxerr"].as_u64().unwrap() <= JPEG_MAX, "{f}");
    }
    ng.exits_ok();

    // NetGear's simplejpeg encodes (BGR, 4:2:2, quality 90), ours decodes.
    let mut rx = rt
        .block_on(FrameReceiver::bind(
            &["tcp://127.0.0.1:*"],
            ReceiverConfig::new(Pattern::ReqRep),
        ))
        .unwrap();
    let port = match rx.endpoints()[0] {
        ironhouse::Endpoint::Tcp { port, .. } => port,
        ref other => panic!("{other}"),
    };
    let recv = rt.spawn(async move {
        let mut frames = Vec::new();
        while let Some(r) = rx.recv().await? {
            frames.push(r.frame);
        }
        Ok::<_, FrameError>(frames)
    });
    let mut ng = NetGear::spawn(&args(&[
        "send",
        "--port",
        &port.to_string(),
        "--pattern",
        "1",
        "--jpeg",
        "--frame",
        "smooth",
        "--shape",
        "480x640x3",
        "--count",
        "3",
    ]));
    ng.until("closed");
    let frames = rt
        .block_on(bounded(RUST_WAIT, recv))
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frames.len(), 3);
    for f in frames {
        assert_eq!(f.shape(), picture.shape());
        let diffs: Vec<u64> = f
            .data()
            .iter()
            .zip(picture.data().iter())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .collect();
        let mae = diffs.iter().sum::<u64>() as f64 / diffs.len() as f64;
        eprintln!(
            "we decoded simplejpeg's: mean error {mae}, max {:?}",
            diffs.iter().max()
        );
        assert!(mae <= JPEG_MAE, "mean error {mae}");
        assert!(
            diffs.iter().all(|&d| d <= JPEG_MAX),
            "max error {:?}",
            diffs.iter().max()
        );
    }
    ng.exits_ok();
}

/// Runs `ironhouse frames …`; returns (status, stdout, stderr).
fn ironhouse_frames(args: &[String]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .arg("frames")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ironhouse frames")
}

/// Waits (bounded) for a child and returns its output.
fn finish(child: std::process::Child) -> std::process::Output {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(RUST_WAIT)
        .expect("ironhouse frames finished in time")
        .expect("wait")
}

#[test]
fn cli_frames_send_and_recv_against_netgear_with_ironhouse_security() {
    let (dir, _) = keys("cli");
    let keys_arg = dir.path.to_str().unwrap().to_string();
    // `ironhouse frames send` → NetGear receiver.
    let port = free_port();
    let mut a = args(&["recv", "--port", &port.to_string(), "--pattern", "1"]);
    a.extend(secure_args(SecureMode::IronHouse, &dir));
    let mut ng = NetGear::spawn(&a);
    ng.ready();
    let child = ironhouse_frames(&args(&[
        "send",
        "--connect",
        &format!("tcp://127.0.0.1:{port}"),
        "--pattern",
        "1",
        "--secure",
        "2",
        "--keys",
        &keys_arg,
        "--size",
        "64x48x3",
        "--count",
        "5",
        // At camera pace: NetGear's recv() drops the frames still queued
        // when the termination arrives, and 5 small frames sent at once can
        // all be queued before its application reads the first.
        "--fps",
        "20",
        "--json",
    ]));
    let lines = ng.until("terminated");
    let out = finish(child);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["frames"], 5);
    assert_eq!(report["replies"], 5);
    let frames: Vec<&Value> = lines.iter().filter(|v| v["event"] == "frame").collect();
    // NetGear's recv() may drop the last queued frames at termination (see
    // check_netgear_frames); whatever it handed over is exact and in order.
    assert!(!frames.is_empty());
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["exact"], true, "{f}");
        assert_eq!(f["seq"], i as u64);
    }
    ng.exits_ok();

    // NetGear sender → `ironhouse frames recv --verify`.
    let port = free_port();
    let mut recv = ironhouse_frames(&args(&[
        "recv",
        "--bind",
        &format!("tcp://127.0.0.1:{port}"),
        "--pattern",
        "1",
        "--secure",
        "2",
        "--keys",
        &keys_arg,
        "--verify",
        "--json",
        "--timeout",
        "30",
    ]));
    // Wait for `bound …` on stderr before starting NetGear.
    let mut err = BufReader::new(recv.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("bound "), "{line}");
    let mut a = args(&[
        "send",
        "--port",
        &port.to_string(),
        "--pattern",
        "1",
        "--count",
        "7",
    ]);
    a.extend(secure_args(SecureMode::IronHouse, &dir));
    let mut ng = NetGear::spawn(&a);
    ng.until("closed");
    let out = finish(recv);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    // Timed frames: all after the first.
    assert_eq!(report["frames"], 6, "{report}");
    assert_eq!(report["verify_failed"], 0);
    assert_eq!(report["terminated"], true);
    ng.exits_ok();
}

#[test]
fn a_window_of_frames_in_flight_to_netgear() {
    // Our DEALER with 4 frames in flight; NetGear's REP answers each in turn.
    let rt = rt();
    let (dir, ks) = keys("window");
    let port = free_port();
    let mut a = args(&["recv", "--port", &port.to_string(), "--pattern", "1"]);
    a.extend(secure_args(SecureMode::IronHouse, &dir));
    let mut ng = NetGear::spawn(&a);
    ng.ready();
    let ep = format!("tcp://127.0.0.1:{port}");
    let n = 20u64;
    let (tx, replies) = rt
        .block_on(bounded(RUST_WAIT, async {
            let cfg = sender_cfg(Pattern::ReqRep, SecureMode::IronHouse, &ks).window(4);
            let mut tx = FrameSender::connect(&[ep.as_str()], cfg).await?;
            let mut replies = 0;
            for i in 0..n {
                if let Some(Reply::Ack(t)) = tx
                    .send(&Frame::synthetic(48, 64, 3, i), Some(&seq_msg(i)))
                    .await?
                {
                    assert!(t.starts_with("Data received on device: "), "{t}");
                    replies += 1;
                }
            }
            Ok::<_, FrameError>((tx, replies))
        }))
        .expect("bounded")
        .unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics()));
    assert_eq!(replies, n - 4);
    let mut lines = ng.frames(n as usize);
    let acks = rt
        .block_on(bounded(RUST_WAIT, tx.close()))
        .expect("bounded")
        .unwrap_or_else(|e| panic!("{e}\n{}", ng.diagnostics()));
    assert_eq!(
        acks,
        vec!["Termination signal successfully received at Client's end!".to_string()]
    );
    lines.extend(ng.until("terminated"));
    check_netgear_frames(&lines, n, Pattern::ReqRep, &ng);
    ng.exits_ok();
}
