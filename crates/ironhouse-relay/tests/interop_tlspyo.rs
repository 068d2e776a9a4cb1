//! Real tlspyo 0.3.0 endpoints (unchanged, driven by
//! `interop/tlspyo/endpoint_driver.py`) at an ironhouse relay: TLS with
//! tlspyo's own credentials and plain TCP; broadcast, produce/notify credit
//! rules, several groups, accepted_groups and max_count, a wrong password,
//! and tlspyo and native endpoints in one group.
//!
//! Needs the venv of scripts/test-all.sh (IRONHOUSE_PYTHON); fails without it.
//! Every wait is bounded (the driver's own timeouts and `within`).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use ironhouse::TlsServer;
use ironhouse_relay::{Endpoint, GroupLimits, GroupPolicy, Pickle, Relay, TlspyoConfig, Wait};
use serde_json::{json, Value};

const PASSWORD: &str = "pässword";

/// tlspyo's own credentials (RSA-4096, serial 0, DNS:default), made once.
fn credentials() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("ironhouse-tlspyo-creds-{}", std::process::id()));
        let python = python_with(&["tlspyo"]);
        let out = Command::new(python)
            .arg(repo_root().join("interop/tlspyo/make_credentials.py"))
            .arg(&dir)
            .output()
            .expect("run make_credentials.py");
        assert!(
            out.status.success(),
            "make_credentials.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// A real tlspyo Endpoint in a python process, driven by JSON lines.
struct TlspyoEndpoint {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl TlspyoEndpoint {
    fn start(port: u16, password: &str, tls: bool, groups: &[&str]) -> TlspyoEndpoint {
        let python = python_with(&["tlspyo"]);
        let mut cmd = Command::new(python);
        cmd.arg("-u")
            .arg(repo_root().join("interop/tlspyo/endpoint_driver.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--password", password, "--groups", &groups.join(",")])
            .args(["--security", if tls { "tls" } else { "none" }]);
        if tls {
            cmd.arg("--keys-dir").arg(credentials());
        }
        // Its own process group: tlspyo runs its endpoint in a child
        // process, which must go when the test is done (see Drop).
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn endpoint_driver.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut ep = TlspyoEndpoint {
            child,
            stdin,
            lines,
        };
        let ready = ep.read();
        assert_eq!(
            ready["event"], "ready",
            "tlspyo endpoint did not start: {ready}"
        );
        ep
    }

    fn read(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(LIMIT)
            .expect("no answer from the tlspyo endpoint driver");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad driver line {line:?}: {e}"))
    }

    fn cmd(&mut self, c: Value) -> Value {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
        let r = self.read();
        assert_eq!(r["ok"], true, "{c} failed: {r}");
        r
    }

    /// Waits for `n` objects; returns their hex payloads (bytes objects).
    fn wait_bytes(&mut self, n: usize, timeout: f64) -> Vec<String> {
        let r = self.cmd(json!({"op": "wait_items", "count": n, "timeout": timeout}));
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                i["hex"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect()
    }

    fn wait_items(&mut self, n: usize, timeout: f64) -> Vec<Value> {
        let r = self.cmd(json!({"op": "wait_items", "count": n, "timeout": timeout}));
        r["items"].as_array().unwrap().clone()
    }
}

impl Drop for TlspyoEndpoint {
    fn drop(&mut self) {
        // Killing only the driver would orphan tlspyo's worker process
        // (which retries forever and keeps the test's output pipe open):
        // kill the whole group.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python `bytes` object, pickled.
fn py_bytes(b: &[u8]) -> bytes::Bytes {
    serde_pickle::value_to_vec(&serde_pickle::Value::Bytes(b.to_vec()), Default::default())
        .unwrap()
        .into()
}

fn hex(s: &str) -> String {
    ironhouse::hex(s.as_bytes())
}

async fn relay(tls: bool, policy: GroupPolicy) -> Relay {
    let mut cfg = TlspyoConfig::new("127.0.0.1:0".parse::<SocketAddr>().unwrap(), PASSWORD);
    if tls {
        let dir = credentials();
        let server = TlsServer::from_pem_files(dir.join("certificate.pem"), dir.join("key.pem"))
            .unwrap()
            .allow_tls12();
        cfg = cfg.tls(server);
    }
    Relay::builder()
        .bind("tcp://127.0.0.1:*")
        .groups(policy)
        .tlspyo(cfg)
        .start()
        .await
        .unwrap()
}

/// Runs blocking driver calls off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    within("a tlspyo driver call", tokio::task::spawn_blocking(f))
        .await
        .unwrap()
}

/// A native endpoint of `group` that decodes tlspyo's pickles, joined.
async fn native_member(r: &Relay, group: &str) -> Endpoint<Pickle> {
    let native = Endpoint::builder(&r.endpoints()[0])
        .group(group)
        .connect_with(Pickle)
        .await
        .unwrap();
    within("native join", native.wait_joined(LIMIT))
        .await
        .unwrap();
    native
}

async fn broadcast_and_work_queue(tls: bool) {
    let r = relay(tls, GroupPolicy::default()).await;
    let port = r.tlspyo_addr().unwrap().port();
    let native = native_member(&r, "g1").await;
    let (a, b) = blocking(move || {
        let a = TlspyoEndpoint::start(port, PASSWORD, tls, &["g1"]);
        let b = TlspyoEndpoint::start(port, PASSWORD, tls, &["g1", "g2"]);
        (a, b)
    })
    .await;
    let (mut a, mut b) = (a, b);
    // Let both join before the broadcast (tlspyo has no join confirmation):
    // a native broadcast reaches them once they are in.
    native.send_bytes(py_bytes(b"warmup"), "g1").await.unwrap();
    let (a, b, warm) = blocking(move || {
        let wa = a.wait_bytes(1, 15.0);
        let wb = b.wait_bytes(1, 15.0);
        (a, b, (wa, wb))
    })
    .await;
    assert_eq!(
        warm.0,
        [hex("warmup")],
        "tlspyo endpoint a got the native broadcast"
    );
    assert_eq!(warm.1, [hex("warmup")]);
    let (mut a, mut b) = (a, b);

    // tlspyo → tlspyo and native: a broadcast in g1.
    let got = blocking(move || {
        a.cmd(json!({"op": "broadcast", "group": "g1", "data_hex": hex("b1")}));
        let got = b.wait_bytes(1, 10.0);
        (a, b, got)
    })
    .await;
    let (a, b, got_b) = got;
    assert_eq!(got_b, [hex("b1")]);
    let mut from_tlspyo = Vec::new();
    within("native gets the tlspyo broadcast", async {
        while from_tlspyo.len() < 2 {
            for r in native
                .receive_all_raw(Wait::For(Duration::from_secs(10)))
                .await
            {
                from_tlspyo
                    .push(serde_pickle::value_from_slice(&r.payload, Default::default()).unwrap());
            }
        }
    })
    .await;
    // Its own warm-up comes back first (it is a member of g1), then b1.
    assert_eq!(
        from_tlspyo,
        [
            serde_pickle::Value::Bytes(b"warmup".to_vec()),
            serde_pickle::Value::Bytes(b"b1".to_vec())
        ]
    );

    // Work queue in g2: produced by tlspyo a and by native, consumed by tlspyo b.
    let (mut a, mut b) = (a, b);
    native
        .send_bytes(py_bytes(b"n1"), vec![("g2", 1)])
        .await
        .unwrap();
    native.flush(LIMIT).await.unwrap();
    let (a, b, items) = blocking(move || {
        for p in ["p1", "p2"] {
            a.cmd(json!({"op": "produce", "group": "g2", "data_hex": hex(p)}));
        }
        // Nothing without credit.
        let none = b.wait_bytes(1, 1.0);
        b.cmd(json!({"op": "notify", "groups": {"g2": 2}}));
        let two = b.wait_bytes(2, 10.0);
        b.cmd(json!({"op": "notify", "groups": {"g2": -1}}));
        let rest = b.wait_bytes(1, 10.0);
        (a, b, (none, two, rest))
    })
    .await;
    let (none, two, rest) = items;
    assert!(none.is_empty(), "objects must wait for credit: {none:?}");
    let mut all: Vec<String> = two.iter().chain(rest.iter()).cloned().collect();
    all.sort();
    let mut want = vec![hex("n1"), hex("p1"), hex("p2")];
    want.sort();
    assert_eq!(all, want, "credit 2 then -1 takes all three, once each");
    assert_eq!(two.len(), 2);
    drop((a, b));
    native.stop().await;
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlspyo_over_tls_broadcast_and_work_queue_with_native_members() {
    broadcast_and_work_queue(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlspyo_over_plain_tcp_broadcast_and_work_queue_with_native_members() {
    broadcast_and_work_queue(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlspyo_objects_of_any_type_reach_native_endpoints_through_the_pickle_codec() {
    let r = relay(false, GroupPolicy::default()).await;
    let port = r.tlspyo_addr().unwrap().port();
    let native = native_member(&r, "data").await;
    // A kept broadcast from native: the tlspyo endpoint gets it at join,
    // as a Python object.
    let mut map = HashMap::new();
    map.insert("k".to_string(), vec![1i64, 2]);
    native.broadcast("data", &map).await.unwrap();
    native.flush(LIMIT).await.unwrap();
    // A member of "data" itself, it gets its own broadcast back first.
    let own: Vec<HashMap<String, Vec<i64>>> = within(
        "its own broadcast",
        native.pop(1, Wait::For(Duration::from_secs(10))),
    )
    .await
    .unwrap();
    assert_eq!(own, [map]);
    let (ep, first) = blocking(move || {
        let mut ep = TlspyoEndpoint::start(port, PASSWORD, false, &["data"]);
        let items = ep.wait_items(1, 15.0);
        (ep, items)
    })
    .await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["repr"], "{'k': [1, 2]}");
    let mut ep = ep;
    let ep = blocking(move || {
        ep.cmd(json!({"op": "broadcast", "group": "data", "literal": "{'x': (1, 'two', 3.5)}"}));
        ep
    })
    .await;
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct X {
        x: (i64, String, f64),
    }
    let got: Vec<X> = within("native decodes the tlspyo object", async {
        loop {
            let v: Vec<X> = native
                .receive_all(Wait::For(Duration::from_secs(10)))
                .await
                .unwrap();
            if !v.is_empty() {
                return v;
            }
        }
    })
    .await;
    assert_eq!(
        got,
        [X {
            x: (1, "two".into(), 3.5)
        }]
    );
    drop(ep);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_groups_max_count_and_wrong_password_are_refused() {
    let mut groups = HashMap::new();
    groups.insert(
        "g".to_string(),
        GroupLimits {
            max_count: Some(2),
            max_consumables: None,
        },
    );
    let r = relay(false, GroupPolicy::Only(groups)).await;
    let port = r.tlspyo_addr().unwrap().port();
    let native = Endpoint::builder(&r.endpoints()[0])
        .group("g")
        .connect()
        .await
        .unwrap();
    within("native join", native.wait_joined(LIMIT))
        .await
        .unwrap();
    // One tlspyo endpoint fits (max_count 2 with the native one) ...
    let first = blocking(move || TlspyoEndpoint::start(port, PASSWORD, false, &["g"])).await;
    // ... a second does not, nor one in a group the relay does not accept.
    let (extra, stranger) = blocking(move || {
        (
            TlspyoEndpoint::start(port, PASSWORD, false, &["g"]),
            TlspyoEndpoint::start(port, PASSWORD, false, &["other"]),
        )
    })
    .await;
    within("two rejections", async {
        while r.stats().rejected < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // A wrong password: the connection is closed; its broadcast goes nowhere.
    let liar = blocking(move || {
        let mut liar = TlspyoEndpoint::start(port, "wrong", false, &["g"]);
        liar.cmd(json!({"op": "broadcast", "group": "g", "data_hex": hex("lie")}));
        liar
    })
    .await;
    // The accepted tlspyo endpoint still works: its broadcast reaches native.
    let mut first = first;
    let first = blocking(move || {
        first.cmd(json!({"op": "broadcast", "group": "g", "data_hex": hex("truth")}));
        first
    })
    .await;
    let got = within("the accepted endpoint's broadcast", async {
        loop {
            let raw = native
                .receive_all_raw(Wait::For(Duration::from_secs(10)))
                .await;
            if !raw.is_empty() {
                return raw;
            }
        }
    })
    .await;
    // tlspyo pickles its bytes object: the payload is pickle(b"truth").
    let obj = serde_pickle::value_from_slice(&got[0].payload, Default::default()).unwrap();
    assert_eq!(obj, serde_pickle::Value::Bytes(b"truth".to_vec()));
    assert_eq!(
        r.stats().published,
        1,
        "the wrong password's object was never taken"
    );
    assert!(r.stats().rejected >= 2);
    drop((first, extra, stranger, liar));
    native.stop().await;
    r.stop().await;
}
