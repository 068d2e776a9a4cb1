//! Interop suite: the `ironhouse` binary against pyzmq (libzmq 4.3.5) over
//! TCP on 127.0.0.1.
//!
//! Most scenarios are written once as `fn(binder, connector)` and run twice by
//! `both_ways!`: `<scenario>::ironhouse_binds` (ironhouse binds, pyzmq
//! connects) and `<scenario>::pyzmq_binds` (the reverse). The `reconnect_*`
//! tests restart one side on the same port.
//!
//! Needs the python from `scripts/test-all.sh` (`.venv`, or `IRONHOUSE_PYTHON`);
//! without pyzmq every test fails with a message saying so. Run with
//! `cargo test -p ironhouse-cli --features interop --test interop_pyzmq`.

#![cfg(feature = "interop")]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::{hex, port_of, pseudo_random_bytes, Impl, Peer, Spec, TempFile, BIG_WAIT};

/// Large-message size required by the suite.
const BIG: usize = 16 * 1024 * 1024;
/// Receivers of the large message allow this much (well above `BIG`).
const BIG_LIMIT: usize = 64 * 1024 * 1024;

macro_rules! both_ways {
    ($($name:ident => $scenario:ident;)*) => {
        $(
            mod $name {
                use super::*;

                #[test]
                fn ironhouse_binds() {
                    $scenario(Impl::Ironhouse, Impl::Pyzmq);
                }

                #[test]
                fn pyzmq_binds() {
                    $scenario(Impl::Pyzmq, Impl::Ironhouse);
                }
            }
        )*
    };
}

both_ways! {
    req_rep => req_rep;
    req_binds_rep_connects => req_binds_rep_connects;
    rep_replies_from_stdin => rep_replies_from_stdin;
    req_router => req_router;
    dealer_rep => dealer_rep;
    dealer_router => dealer_router;
    router_connects_to_dealer => router_connects_to_dealer;
    router_generated_ids => router_generated_ids;
    router_echo => router_echo;
    dealer_dealer => dealer_dealer;
    dealer_dealer_echo => dealer_dealer_echo;
    push_pull => push_pull;
    push_binds_pull_connects => push_binds_pull_connects;
    pub_sub_prefixes => pub_sub_prefixes;
    sub_binds_pub_connects => sub_binds_pub_connects;
    pair_pair => pair_pair;
    multipart_and_empty_frames => multipart_and_empty_frames;
    hex_output => hex_output;
    big_message_content => big_message_content;
    big_message_sizes => big_message_sizes;
    address_in_use => address_in_use;
}

/// Messages with awkward framing: 0-byte message, empty frames first, last
/// and in the middle, many frames, non-ASCII text.
const AWKWARD: &[&str] = &[
    "",
    "\t",
    "\t\t",
    "a\t\tb",
    "\tleading",
    "trailing\t",
    "one\ttwo\tthree\tfour\tfive\tsix",
    "caf\u{e9} \u{fc}ber \u{2713}",
];

// ---------------------------------------------------------------- REQ / REP

fn req_rep(binder: Impl, connector: Impl) {
    let mut rep = Spec::new("rep").bind_any().echo().spawn(binder);
    let ep = rep.bound();
    let mut req = Spec::new("req").connect(&ep).spawn(connector);
    let msgs = ["hello", "multi\tpart\tmessage", "", "x\t\ty"];
    for m in msgs {
        req.send(m);
    }
    req.expect_lines(&msgs);
    rep.expect_lines(&msgs);
    req.close_stdin();
    req.expect_success();
}

fn req_binds_rep_connects(binder: Impl, connector: Impl) {
    let mut req = Spec::new("req").bind_any().spawn(binder);
    let ep = req.bound();
    let mut rep = Spec::new("rep").connect(&ep).echo().spawn(connector);
    let msgs = ["first", "second\t2"];
    for m in msgs {
        req.send(m);
    }
    req.expect_lines(&msgs);
    rep.expect_lines(&msgs);
}

/// A REP without --echo answers each request with its next stdin line.
fn rep_replies_from_stdin(binder: Impl, connector: Impl) {
    let mut rep = Spec::new("rep").bind_any().spawn(binder);
    let ep = rep.bound();
    let mut req = Spec::new("req").connect(&ep).spawn(connector);
    for i in 0..3 {
        req.send(&format!("question {i}"));
        rep.expect_lines(&[&format!("question {i}")]);
        rep.send(&format!("answer {i}\tframe"));
        req.expect_lines(&[&format!("answer {i}\tframe")]);
    }
}

/// REQ's envelope as a ROUTER sees it: routing id, empty delimiter, body.
fn req_router(binder: Impl, connector: Impl) {
    let mut router = Spec::new("router").bind_any().spawn(binder);
    let ep = router.bound();
    let mut req = Spec::new("req")
        .connect(&ep)
        .identity("req-1")
        .spawn(connector);
    let id = hex(b"req-1");
    req.send("question\tpart");
    router.expect_lines(&[&format!("{id}\t\tquestion\tpart")]);
    router.send(&format!("{id}\t\tanswer"));
    req.expect_lines(&["answer"]);
    req.send("again");
    router.expect_lines(&[&format!("{id}\t\tagain")]);
    router.send(&format!("{id}\t\tanswer 2\t"));
    req.expect_lines(&["answer 2\t"]);
}

/// A DEALER talking to a REP supplies the empty delimiter frame itself.
fn dealer_rep(binder: Impl, connector: Impl) {
    let mut rep = Spec::new("rep").bind_any().echo().spawn(binder);
    let ep = rep.bound();
    let mut dealer = Spec::new("dealer").connect(&ep).spawn(connector);
    dealer.send("\tping");
    dealer.send("\tping\t2");
    dealer.expect_lines(&["\tping", "\tping\t2"]);
    rep.expect_lines(&["ping", "ping\t2"]);
}

// ----------------------------------------------------------- DEALER / ROUTER

fn dealer_router(binder: Impl, connector: Impl) {
    let mut router = Spec::new("router").bind_any().spawn(binder);
    let ep = router.bound();
    let mut dealer = Spec::new("dealer")
        .connect(&ep)
        .identity("dealer-1")
        .spawn(connector);
    let id = hex(b"dealer-1");
    dealer.send("hello\tworld");
    router.expect_lines(&[&format!("{id}\thello\tworld")]);
    router.send(&format!("{id}\treply\t\tend"));
    router.send(&format!("{id}\t"));
    dealer.expect_lines(&["reply\t\tend", ""]);
}

/// ROUTER on the connecting side; the bound DEALER speaks first.
fn router_connects_to_dealer(binder: Impl, connector: Impl) {
    let mut dealer = Spec::new("dealer")
        .bind_any()
        .identity("bound-dealer")
        .spawn(binder);
    let ep = dealer.bound();
    let mut router = Spec::new("router").connect(&ep).spawn(connector);
    let id = hex(b"bound-dealer");
    dealer.send("hi router");
    router.expect_lines(&[&format!("{id}\thi router")]);
    router.send(&format!("{id}\thi dealer"));
    dealer.expect_lines(&["hi dealer"]);
}

/// Peers without --identity get ids from the ROUTER; the printed hex id
/// addresses the right peer.
fn router_generated_ids(binder: Impl, connector: Impl) {
    let mut router = Spec::new("router").bind_any().spawn(binder);
    let ep = router.bound();
    let mut a = Spec::new("dealer").connect(&ep).spawn(connector);
    let mut b = Spec::new("dealer").connect(&ep).spawn(connector);
    a.send("from a");
    b.send("from b");
    let mut ids = HashMap::new();
    for line in router.lines(2) {
        let (id, body) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("router line without id: {line:?}"));
        assert!(
            !id.is_empty() && id.len() % 2 == 0 && id.bytes().all(|c| c.is_ascii_hexdigit()),
            "routing id is not hex: {line:?}"
        );
        ids.insert(body.to_string(), id.to_string());
    }
    let (ia, ib) = (&ids["from a"], &ids["from b"]);
    assert_ne!(ia, ib, "two peers got the same routing id");
    router.send(&format!("{ib}\tto b"));
    router.send(&format!("{ia}\tto a"));
    a.expect_lines(&["to a"]);
    b.expect_lines(&["to b"]);
}

/// ROUTER --echo answers each message to the peer that sent it.
fn router_echo(binder: Impl, connector: Impl) {
    let mut router = Spec::new("router").bind_any().echo().spawn(binder);
    let ep = router.bound();
    let mut a = Spec::new("dealer")
        .connect(&ep)
        .identity("alpha")
        .spawn(connector);
    let mut b = Spec::new("dealer")
        .connect(&ep)
        .identity("beta")
        .spawn(connector);
    a.send("a1");
    b.send("b1\tx");
    a.send("a2\t\t");
    b.send("");
    a.expect_lines(&["a1", "a2\t\t"]);
    b.expect_lines(&["b1\tx", ""]);
    let (ha, hb) = (hex(b"alpha"), hex(b"beta"));
    let lines = router.lines(4);
    let of = |h: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(h).and_then(|r| r.strip_prefix('\t')))
            .collect()
    };
    assert_eq!(of(&ha), ["a1", "a2\t\t"], "router output: {lines:?}");
    assert_eq!(of(&hb), ["b1\tx", ""], "router output: {lines:?}");
}

fn dealer_dealer(binder: Impl, connector: Impl) {
    let mut bound = Spec::new("dealer").bind_any().spawn(binder);
    let ep = bound.bound();
    let mut conn = Spec::new("dealer").connect(&ep).spawn(connector);
    // The connecting side speaks first, so the bound side has a peer.
    conn.send("hello\tfrom\tconnector");
    bound.expect_lines(&["hello\tfrom\tconnector"]);
    bound.send("hi\tback");
    bound.send("");
    conn.expect_lines(&["hi\tback", ""]);
}

fn dealer_dealer_echo(binder: Impl, connector: Impl) {
    let mut bound = Spec::new("dealer").bind_any().echo().spawn(binder);
    let ep = bound.bound();
    let mut conn = Spec::new("dealer").connect(&ep).spawn(connector);
    let msgs = ["one", "two\t2", "", "three\t\t3"];
    for m in msgs {
        conn.send(m);
    }
    conn.expect_lines(&msgs);
    bound.expect_lines(&msgs);
}

// ----------------------------------------------------------------- PUSH / PULL

fn push_pull(binder: Impl, connector: Impl) {
    let n = 50;
    let mut pull = Spec::new("pull").bind_any().count(n).spawn(binder);
    let ep = pull.bound();
    let mut push = Spec::new("push").connect(&ep).spawn(connector);
    let msgs: Vec<String> = (0..n).map(|i| format!("message {i}\tframe {i}")).collect();
    for m in &msgs {
        push.send(m);
    }
    // EOF right away: the pusher must still deliver everything before exiting.
    push.close_stdin();
    assert_eq!(pull.lines(n), msgs, "\n{}", pull.diagnostics());
    pull.expect_success();
    push.expect_success();
}

fn push_binds_pull_connects(binder: Impl, connector: Impl) {
    let n = 20;
    let mut push = Spec::new("push").bind_any().spawn(binder);
    let ep = push.bound();
    let mut pull = Spec::new("pull").connect(&ep).count(n).spawn(connector);
    let msgs: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    for m in &msgs {
        push.send(m);
    }
    assert_eq!(pull.lines(n), msgs, "\n{}", pull.diagnostics());
    pull.expect_success();
    push.close_stdin();
    push.expect_success();
}

// ------------------------------------------------------------------- PUB / SUB

/// Beats the slow-joiner problem: publishes numbered `sync` messages until
/// the subscriber prints one (bounded in count and time).
fn sync_subscriber(publisher: &mut Peer, subscriber: &mut Peer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..200 {
        publisher.send(&format!("sync {i}"));
        if let Some(line) = subscriber.try_line(Duration::from_millis(100)) {
            let line = String::from_utf8_lossy(&line);
            assert!(
                line.starts_with("sync"),
                "unexpected line before sync: {line:?}"
            );
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    panic!(
        "subscriber never saw a sync message\n{}\n{}",
        subscriber.diagnostics(),
        publisher.diagnostics()
    );
}

/// Sends a mix of matching and non-matching messages; only the ones with a
/// subscribed prefix must arrive, in order.
fn check_prefix_filtering(publisher: &mut Peer, subscriber: &mut Peer) {
    sync_subscriber(publisher, subscriber);
    let sent = [
        "keep 1",
        "drop 1",
        "keep\tmulti\tpart",
        "other keep",
        "",
        "kee",
        "keepsake",
        "Keep upper",
        "alsothis\tframe",
        "keep end",
    ];
    for m in sent {
        publisher.send(m);
    }
    let expected = [
        "keep 1",
        "keep\tmulti\tpart",
        "keepsake",
        "alsothis\tframe",
        "keep end",
    ];
    let mut got = Vec::new();
    for _ in 0..500 {
        let line = subscriber.line();
        if line.starts_with("sync") {
            continue; // late copies of the sync messages
        }
        let last = line == "keep end";
        got.push(line);
        if last {
            break;
        }
    }
    assert_eq!(got, expected, "\n{}", subscriber.diagnostics());
}

fn pub_sub_prefixes(binder: Impl, connector: Impl) {
    let mut publisher = Spec::new("pub").bind_any().spawn(binder);
    let ep = publisher.bound();
    let mut subscriber = Spec::new("sub")
        .connect(&ep)
        .subscribe("sync")
        .subscribe("keep")
        .subscribe("also")
        .spawn(connector);
    check_prefix_filtering(&mut publisher, &mut subscriber);
}

fn sub_binds_pub_connects(binder: Impl, connector: Impl) {
    let mut subscriber = Spec::new("sub")
        .bind_any()
        .subscribe("sync")
        .subscribe("keep")
        .subscribe("also")
        .spawn(binder);
    let ep = subscriber.bound();
    let mut publisher = Spec::new("pub").connect(&ep).spawn(connector);
    check_prefix_filtering(&mut publisher, &mut subscriber);
}

// ------------------------------------------------------------------------ PAIR

fn pair_pair(binder: Impl, connector: Impl) {
    let mut bound = Spec::new("pair").bind_any().spawn(binder);
    let ep = bound.bound();
    let mut conn = Spec::new("pair").connect(&ep).spawn(connector);
    conn.send("ping");
    bound.expect_lines(&["ping"]);
    bound.send("pong\t\tx");
    conn.expect_lines(&["pong\t\tx"]);
    conn.send("ping 2");
    bound.expect_lines(&["ping 2"]);
}

// -------------------------------------------------------------------- framing

/// Awkward framings survive a round trip through both implementations.
fn multipart_and_empty_frames(binder: Impl, connector: Impl) {
    let mut echo = Spec::new("pair").bind_any().echo().spawn(binder);
    let ep = echo.bound();
    let mut conn = Spec::new("pair").connect(&ep).spawn(connector);
    for m in AWKWARD {
        conn.send(m);
    }
    conn.expect_lines(AWKWARD);
    echo.expect_lines(AWKWARD);
}

fn hex_output(binder: Impl, connector: Impl) {
    let mut pull = Spec::new("pull").bind_any().hex().count(5).spawn(binder);
    let ep = pull.bound();
    let mut push = Spec::new("push").connect(&ep).spawn(connector);
    for m in ["AB", "a\t\tb", "", "\t", "\u{e9}\n"] {
        push.send(m.trim_end_matches('\n'));
    }
    push.close_stdin();
    pull.expect_lines(&["4142", "61\t\t62", "", "\t", "c3a9"]);
    pull.expect_success();
}

// ------------------------------------------------------------- large messages

fn first_difference(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

/// A 16 MiB single-frame message arrives byte for byte (checked in hex).
fn big_message_content(binder: Impl, connector: Impl) {
    let data = pseudo_random_bytes(BIG, 0x1d0c_5eed);
    let file = TempFile::with_contents("big", &data);
    let mut pull = Spec::new("pull")
        .bind_any()
        .hex()
        .max_msg_size(BIG_LIMIT)
        .count(3)
        .spawn(binder);
    let ep = pull.bound();
    let mut push = Spec::new("push")
        .connect(&ep)
        .send_file(&file.path)
        .spawn(connector);
    push.send("before");
    push.send("");
    push.close_stdin();
    pull.expect_lines(&[&hex(b"before"), ""]);
    let got = pull.line_within(BIG_WAIT);
    let want = hex(&data);
    assert!(
        got == want,
        "16 MiB message differs: got {} hex chars, want {}, first difference at hex offset {}",
        got.len(),
        want.len(),
        first_difference(&got, &want)
    );
    pull.expect_success();
    push.expect_success();
}

/// `--print-sizes` for multipart, 0-byte and 16 MiB messages.
fn big_message_sizes(binder: Impl, connector: Impl) {
    let data = pseudo_random_bytes(BIG, 0x0051_53e5);
    let file = TempFile::with_contents("sizes", &data);
    let mut pull = Spec::new("pull")
        .bind_any()
        .print_sizes()
        .max_msg_size(BIG_LIMIT)
        .count(3)
        .spawn(binder);
    let ep = pull.bound();
    let mut push = Spec::new("push")
        .connect(&ep)
        .send_file(&file.path)
        .spawn(connector);
    push.send("abc\t\tdefg");
    push.send("");
    push.close_stdin();
    pull.expect_lines(&["3\t0\t4", "0"]);
    let got = pull.line_within(BIG_WAIT);
    assert_eq!(got, BIG.to_string(), "\n{}", pull.diagnostics());
    pull.expect_success();
    push.expect_success();
}

// ---------------------------------------------------------------------- errors

/// Binding a port the other implementation holds fails with a message.
fn address_in_use(first: Impl, second: Impl) {
    let mut holder = Spec::new("pull").bind_any().spawn(first);
    let ep = holder.bound();
    let mut late = Spec::new("pull").bind(&ep).spawn(second);
    late.expect_failure();
    // The holder still works.
    let mut push = Spec::new("push").connect(&ep).spawn(Impl::Pyzmq);
    push.send("still here");
    holder.expect_lines(&["still here"]);
}

// ------------------------------------------------------------------- reconnect

/// Binds `spec` on the exact endpoint `ep` again after a peer died, retrying
/// a few times while the port is briefly unavailable.
fn rebind(spec: &Spec, imp: Impl, ep: &str) -> Peer {
    let mut last = String::new();
    for _ in 0..20 {
        let mut peer = spec.clone().bind(ep).spawn(imp);
        match peer.try_bound() {
            Ok(got) => {
                assert_eq!(port_of(&got), port_of(ep), "rebound on another port");
                return peer;
            }
            Err(e) => last = format!("{e}\n{}", peer.diagnostics()),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("could not bind {ep} again: {last}");
}

/// Sends `prefix N` lines through `sender` until `receiver` prints a line
/// starting with `prefix` (bounded). Returns that line.
fn until_flowing(sender: &mut Peer, receiver: &mut Peer, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..300 {
        sender.send(&format!("{prefix} {i}"));
        while let Some(line) = receiver.try_line(Duration::from_millis(100)) {
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.starts_with(prefix) {
                return line;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    panic!(
        "messages never flowed again\n{}\n{}",
        sender.diagnostics(),
        receiver.diagnostics()
    );
}

#[test]
fn reconnect_push_after_pyzmq_pull_restarts() {
    let spec = Spec::new("pull");
    let mut pull = spec.clone().bind_any().spawn(Impl::Pyzmq);
    let ep = pull.bound();
    let mut push = Spec::new("push").connect(&ep).spawn(Impl::Ironhouse);
    push.send("before");
    pull.expect_lines(&["before"]);
    pull.kill();
    drop(pull);

    let mut pull = rebind(&spec, Impl::Pyzmq, &ep);
    until_flowing(&mut push, &mut pull, "after");
    push.send("final");
    for _ in 0..400 {
        if pull.line() == "final" {
            return;
        }
    }
    panic!("'final' never arrived\n{}", pull.diagnostics());
}

#[test]
fn reconnect_dealer_after_pyzmq_router_restarts() {
    let spec = Spec::new("router").echo();
    let mut router = spec.clone().bind_any().spawn(Impl::Pyzmq);
    let ep = router.bound();
    let mut dealer = Spec::new("dealer")
        .connect(&ep)
        .identity("reconnecting")
        .spawn(Impl::Ironhouse);
    dealer.send("before");
    dealer.expect_lines(&["before"]);
    router.kill();
    drop(router);

    let mut router = rebind(&spec, Impl::Pyzmq, &ep);
    // Echoes come back through the new router to the ironhouse dealer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut echoed = false;
    'outer: for i in 0..300 {
        dealer.send(&format!("after {i}"));
        while let Some(line) = dealer.try_line(Duration::from_millis(100)) {
            if line.starts_with(b"after") {
                echoed = true;
                break 'outer;
            }
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    assert!(
        echoed,
        "no echo after the router restarted\n{}\n{}",
        dealer.diagnostics(),
        router.diagnostics()
    );
    let line = router.line();
    assert!(
        line.starts_with(&format!("{}\tafter", hex(b"reconnecting"))),
        "new router saw {line:?}"
    );
}

#[test]
fn reconnect_pyzmq_push_after_ironhouse_pull_restarts() {
    let spec = Spec::new("pull");
    let mut pull = spec.clone().bind_any().spawn(Impl::Ironhouse);
    let ep = pull.bound();
    let mut push = Spec::new("push").connect(&ep).spawn(Impl::Pyzmq);
    push.send("before");
    pull.expect_lines(&["before"]);
    pull.kill();
    drop(pull);

    let mut pull = rebind(&spec, Impl::Ironhouse, &ep);
    until_flowing(&mut push, &mut pull, "after");
}
