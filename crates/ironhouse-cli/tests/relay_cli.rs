//! `ironhouse relay`, `ironhouse endpoint` and `ironhouse demo` as scripts
//! use them: output contract, exit codes, clear errors. Offline (no Python).
//! Every wait is bounded; processes are killed when a test ends.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn ironhouse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ironhouse"))
}

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs to completion, killing it after `WAIT`.
fn output_within(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ironhouse");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("ironhouse did not finish within {WAIT:?}");
        }
    }
}

/// Starts `ironhouse relay ARGS` and returns it with its first bound endpoint.
fn relay(args: &[&str]) -> (Running, String) {
    let mut child = ironhouse()
        .arg("relay")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let running = Running(child);
    loop {
        let line = rx
            .recv_timeout(WAIT)
            .expect("the relay printed no `bound` line");
        if let Some(ep) = line.strip_prefix("bound ") {
            return (running, ep.to_string());
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn demo_shows_the_relay_at_work_and_exits_zero() {
    let out = output_within(
        {
            let mut c = ironhouse();
            c.arg("demo");
            c
        },
        "",
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("late joiner received only the kept last broadcast: [\"temp=21.0\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("notify(2)  -> [\"job-0\", \"job-1\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("is not in the allow-list"), "{stdout}");
}

#[test]
fn endpoints_produce_and_consume_through_the_relay() {
    let (_relay, url) = relay(&["--bind", "tcp://127.0.0.1:*"]);
    let consumer = ironhouse()
        .args([
            "endpoint",
            "--relay",
            &url,
            "--group",
            "jobs",
            "--timeout",
            "25",
        ])
        .args(["consume", "--count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let consumer = Running(consumer);
    let mut producer = ironhouse();
    producer.args([
        "endpoint",
        "--relay",
        &url,
        "--group",
        "jobs",
        "--timeout",
        "25",
    ]);
    producer.args(["produce", "-"]);
    let out = output_within(producer, "one\ntwo\nthree\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut consumer = consumer;
    let child = &mut consumer.0;
    // The consumer's own --timeout bounds these reads.
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(stdout, "one\ntwo\nthree\n");
}

#[test]
fn a_late_listener_gets_the_kept_broadcast() {
    let (_relay, url) = relay(&["--bind", "tcp://127.0.0.1:*"]);
    let mut b = ironhouse();
    b.args([
        "endpoint",
        "--relay",
        &url,
        "--group",
        "news",
        "--timeout",
        "25",
    ]);
    b.args(["broadcast", "hello"]);
    assert!(output_within(b, "").status.success());
    let mut l = ironhouse();
    l.args([
        "endpoint",
        "--relay",
        &url,
        "--group",
        "news",
        "--timeout",
        "25",
    ]);
    l.args(["listen", "--count", "1", "--hex"]);
    let out = output_within(l, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "68656c6c6f\n");
}

#[test]
fn rejections_and_bad_flags_are_clear_errors() {
    let (_relay, url) = relay(&[
        "--bind",
        "tcp://127.0.0.1:*",
        "--accepted-groups",
        r#"{"g": {"max_count": 1}}"#,
    ]);
    let mut e = ironhouse();
    e.args([
        "endpoint",
        "--relay",
        &url,
        "--group",
        "nope",
        "--timeout",
        "25",
    ]);
    e.args(["listen", "--count", "1"]);
    let out = output_within(e, "");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("rejected by the relay: group \"nope\" is not accepted"),
        "{err}"
    );

    let mut bad = ironhouse();
    bad.args(["relay", "--tlspyo-port", "1"]);
    let out = output_within(bad, "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--tlspyo-port needs --password"));

    let mut bad = ironhouse();
    bad.args([
        "relay",
        "--bind",
        "tcp://127.0.0.1:*",
        "--accepted-groups",
        "[1]",
    ]);
    let out = output_within(bad, "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--accepted-groups"));
}

#[test]
fn the_relay_exits_zero_on_sigterm() {
    let (mut relay, _) = relay(&["--bind", "tcp://127.0.0.1:*"]);
    let pid = relay.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut status = None;
    for _ in 0..300 {
        status = relay.0.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = status.expect("the relay did not exit within 30 s of SIGTERM");
    assert!(status.success(), "{status}");
}
