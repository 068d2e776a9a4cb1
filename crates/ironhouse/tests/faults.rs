//! Bad input on a bound ironhouse socket. Each test checks that
//! (a) the monitor reports the failure with a useful reason,
//! (b) the offending connection is closed, and
//! (c) a well-behaved peer of the same socket works before and after.
//!
//! Raw peers speak ZMTP bytes written by hand (`common`), so each fault is
//! exactly the one intended. Every wait is bounded.

mod common;

use std::time::Duration;

use common::*;
use ironhouse::{Bytes, Options, Socket, SocketEvent, SocketType};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast;

/// A bound PULL with a monitor and a well-behaved PUSH peer.
struct Rig {
    pull: Socket,
    good: Socket,
    /// `host:port` for raw connections.
    addr: String,
    mon: broadcast::Receiver<SocketEvent>,
    n: u32,
}

impl Rig {
    async fn pull(opts: Options) -> Rig {
        let mut pull = Socket::with_options(SocketType::Pull, opts);
        let mon = pull.monitor();
        let ep = pull.bind("tcp://127.0.0.1:*").await.unwrap();
        let mut good = Socket::new(SocketType::Push);
        good.connect(&ep.to_string()).await.unwrap();
        let mut rig = Rig {
            pull,
            good,
            addr: tcp_addr(&ep),
            mon,
            n: 0,
        };
        rig.check_good().await;
        rig
    }

    /// The good peer's next message is the next one the socket delivers.
    async fn check_good(&mut self) {
        self.n += 1;
        let body = format!("good-{}", self.n);
        send(&mut self.good, body.as_str()).await;
        assert_eq!(single(&recv(&mut self.pull).await), body.as_bytes());
    }

    async fn raw(&self) -> (TcpStream, String) {
        let s = within("raw connect", TcpStream::connect(&self.addr))
            .await
            .unwrap();
        let name = peer_name(&s);
        (s, name)
    }
}

fn has(reason: &str, words: &str) {
    assert!(
        reason.contains(words),
        "reason {reason:?} should contain {words:?}"
    );
}

// ---------------------------------------------------------------------------
// Greeting
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_refused() {
    let mut rig = Rig::pull(Options::default()).await;
    let (mut raw, name) = rig.raw().await;
    let _ = raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let reason = wait_handshake_failed(&mut rig.mon, Some(&name)).await;
    has(&reason, "not speaking ZMTP");
    let got = read_until_closed(&mut raw).await;
    // At most our greeting: a non-ZMTP peer gets no ERROR command.
    assert!(got.len() <= 64, "{} bytes", got.len());
    assert_eq!(rig.pull.connected_peers(), 1);
    rig.check_good().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_with_major_version_2_is_refused() {
    let mut rig = Rig::pull(Options::default()).await;
    let (mut raw, name) = rig.raw().await;
    let _ = raw.write_all(&greeting(2, 0)).await;
    let reason = wait_handshake_failed(&mut rig.mon, Some(&name)).await;
    has(&reason, "unsupported ZMTP version 2");
    read_until_closed(&mut raw).await;
    rig.check_good().await;
}

/// RFC 23 (Version Negotiation): "A peer MUST accept higher protocol versions
/// as valid. That is, a ZMTP peer MUST accept protocol versions greater or
/// equal to 3.0", and then speaks its own version. A major-4 greeting must
/// therefore lead to a working 3.x connection, not a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_with_major_version_4_is_accepted_per_rfc23() {
    let mut rig = Rig::pull(Options::default()).await;
    let mut raw = raw_handshake_with(&rig.addr, &greeting(4, 0), "PUSH").await;
    raw.write_all(&data_frame(false, b"from-v4")).await.unwrap();
    assert_eq!(single(&recv(&mut rig.pull).await), b"from-v4");
    rig.check_good().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mechanism_mismatch_is_refused() {
    let mut rig = Rig::pull(Options::default()).await;
    let (mut raw, name) = rig.raw().await;
    let mut g = greeting(3, 1);
    g[12..32].fill(0);
    g[12..17].copy_from_slice(b"PLAIN");
    let _ = raw.write_all(&g).await;
    let reason = wait_handshake_failed(&mut rig.mon, Some(&name)).await;
    has(&reason, "mechanism mismatch");
    read_until_closed(&mut raw).await;
    rig.check_good().await;
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_socket_types_are_refused() {
    let mut publ = Socket::new(SocketType::Pub);
    let mut mon = publ.monitor();
    let ep = publ.bind("tcp://127.0.0.1:*").await.unwrap();
    let addr = tcp_addr(&ep);
    let ep = ep.to_string();

    // The well-behaved peer: a SUB that gets everything.
    let mut sub = Socket::new(SocketType::Sub);
    sub.subscribe("").await.unwrap();
    sub.connect(&ep).await.unwrap();
    publish_until_seen(&mut publ, &mut sub, "before").await;

    // An ironhouse REQ connecting to the PUB: both sides report it.
    let mut req = Socket::with_options(
        SocketType::Req,
        Options::default()
            .linger(Some(Duration::ZERO))
            .reconnect(Duration::from_millis(50), Duration::from_secs(1)),
    );
    let mut req_mon = req.monitor();
    req.connect(&ep).await.unwrap();
    let reason = wait_handshake_failed(&mut mon, None).await;
    has(&reason, "incompatible socket types");
    has(&reason, "REQ");
    let req_reason = wait_handshake_failed(&mut req_mon, None).await;
    has(&req_reason, "incompatible socket types");
    assert_eq!(req.connected_peers(), 0);
    within("close req", req.close()).await;

    // The same by hand: READY says REQ; the PUB answers with an ERROR command
    // naming the problem, then closes.
    let mut raw = raw_handshake(&addr, "REQ").await;
    let name = peer_name(&raw);
    let err = read_frame(&mut raw).await.expect("ERROR command");
    assert!(err.is_command(), "{err:?}");
    assert_eq!(err.command_name(), Some(b"ERROR".as_slice()));
    let text = String::from_utf8_lossy(&err.body[7..]).into_owned();
    has(&text, "incompatible socket types");
    read_until_closed(&mut raw).await;
    let reason = wait_handshake_failed(&mut mon, Some(&name)).await;
    has(&reason, "incompatible socket types");

    assert_eq!(publ.connected_peers(), 1);
    // Leftover "before" copies may still be queued: they are skipped.
    publish_until_seen(&mut publ, &mut sub, "after").await;
}

/// Publishes `body` until the subscriber receives it (skipping older copies
/// of other bodies still in flight).
async fn publish_until_seen(publ: &mut Socket, sub: &mut Socket, body: &str) {
    for _ in 0..500 {
        send(publ, body).await;
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(20), sub.recv()).await {
            if single(&m.unwrap()) == body.as_bytes() {
                return;
            }
        }
    }
    panic!("{body} never reached the subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ready_metadata_is_refused() {
    let mut rig = Rig::pull(Options::default()).await;
    for (props, words) in [
        (
            vec![("Socket-Type", b"BOGUS".as_slice())],
            "unknown socket type",
        ),
        (vec![("Identity", b"x".as_slice())], "Socket-Type"),
    ] {
        let (mut raw, name) = rig.raw().await;
        let _ = raw.write_all(&greeting(3, 1)).await;
        let _ = raw.write_all(&ready(&props)).await;
        let reason = wait_handshake_failed(&mut rig.mon, Some(&name)).await;
        has(&reason, words);
        read_until_closed(&mut raw).await;
        rig.check_good().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_frame_before_ready_is_refused() {
    let mut rig = Rig::pull(Options::default()).await;
    let (mut raw, name) = rig.raw().await;
    let _ = raw.write_all(&greeting(3, 1)).await;
    let _ = raw.write_all(&data_frame(false, b"too early")).await;
    let reason = wait_handshake_failed(&mut rig.mon, Some(&name)).await;
    has(&reason, "before the handshake completed");
    read_until_closed(&mut raw).await;
    rig.check_good().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshake_times_out() {
    let opts = Options::default().handshake_timeout(Some(Duration::from_millis(200)));
    let mut rig = Rig::pull(opts).await;
    // Connect and say nothing; then a partial greeting; then a greeting
    // without READY. Each must be cut off by the handshake timeout.
    for sent in [&[][..], &greeting(3, 1)[..10], &greeting(3, 1)[..]] {
        let (mut raw, name) = rig.raw().await;
        raw.write_all(sent).await.unwrap();
        let reason = wait_handshake_failed(&mut rig.mon, Some(&name)).await;
        has(&reason, "handshake did not complete in time");
        let got = read_until_closed(&mut raw).await;
        assert!(
            got.len() >= 64 && got[0] == 0xFF,
            "our greeting first: {got:?}"
        );
        rig.check_good().await;
    }
}

// ---------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_size_closes_before_the_body() {
    const MAX: u64 = 1 << 20;
    let mut rig = Rig::pull(Options::default().max_message_size(Some(MAX))).await;
    // Exactly the limit is fine.
    let at_limit = Bytes::from(vec![9u8; MAX as usize]);
    send(&mut rig.good, at_limit.clone()).await;
    assert!(recv(&mut rig.pull).await.frames()[0] == at_limit);

    // A frame header announcing 1 GiB: closed at once, body never sent.
    let mut raw = raw_handshake(&rig.addr, "PUSH").await;
    let name = peer_name(&raw);
    raw.write_all(&frame_header(0, 1 << 30)).await.unwrap();
    let got = read_until_closed(&mut raw).await;
    assert!(got.is_empty(), "nothing after READY, got {got:?}");
    let reason = wait_disconnected(&mut rig.mon, Some(&name))
        .await
        .expect("a reason for the disconnection");
    has(&reason, "exceeds the maximum");
    rig.check_good().await;

    // The limit is for the whole message: two frames of 600 KiB exceed it.
    let mut raw = raw_handshake(&rig.addr, "PUSH").await;
    let name = peer_name(&raw);
    raw.write_all(&data_frame(true, &vec![1u8; 600 << 10]))
        .await
        .unwrap();
    raw.write_all(&frame_header(0, 600 << 10)).await.unwrap();
    read_until_closed(&mut raw).await;
    let reason = wait_disconnected(&mut rig.mon, Some(&name))
        .await
        .expect("a reason for the disconnection");
    has(&reason, "exceeds the maximum");
    rig.check_good().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_frame_flags_close_the_connection() {
    let mut rig = Rig::pull(Options::default()).await;
    let mut raw = raw_handshake(&rig.addr, "PUSH").await;
    let name = peer_name(&raw);
    raw.write_all(&[0xF0, 0x00]).await.unwrap();
    read_until_closed(&mut raw).await;
    let reason = wait_disconnected(&mut rig.mon, Some(&name))
        .await
        .expect("a reason for the disconnection");
    has(&reason, "malformed frame");
    rig.check_good().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_killed_mid_message_delivers_nothing_partial() {
    let mut rig = Rig::pull(Options::default()).await;
    // Half a frame.
    let mut raw = raw_handshake(&rig.addr, "PUSH").await;
    let name = peer_name(&raw);
    raw.write_all(&data_frame(false, b"whole")).await.unwrap();
    raw.write_all(&frame_header(0, 1000)).await.unwrap();
    raw.write_all(&[7u8; 500]).await.unwrap();
    assert_eq!(single(&recv(&mut rig.pull).await), b"whole");
    drop(raw);
    // Not a clean close: the monitor says why.
    let reason = wait_disconnected(&mut rig.mon, Some(&name)).await;
    has(&reason.expect("a reason"), "middle of a frame");
    rig.check_good().await;

    // A whole first frame with MORE set, then gone: the message never completes.
    let mut raw = raw_handshake(&rig.addr, "PUSH").await;
    let name = peer_name(&raw);
    raw.write_all(&data_frame(true, b"first of two"))
        .await
        .unwrap();
    drop(raw);
    let reason = wait_disconnected(&mut rig.mon, Some(&name)).await;
    has(&reason.expect("a reason"), "middle of a frame");
    // The next message delivered is the good peer's, not half of the other.
    rig.check_good().await;
    assert_eq!(rig.pull.connected_peers(), 1);
}
