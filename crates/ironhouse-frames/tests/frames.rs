//! ironhouse sender ↔ ironhouse receiver over loopback: every pattern and
//! secure mode, bidirectional, multi-server, multi-client, termination, and
//! the failures that must end in a clear error within the configured
//! timeouts (never a hang, never NULL in place of CURVE).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ironhouse::SocketEvent;
use ironhouse_frames::{
    Frame, FrameError, FrameReceiver, FrameSender, KeyStore, Pattern, ReceiverConfig, Reply,
    ReturnData, SecureMode, SenderConfig, Value,
};
use serde_json::json;

/// Bounds every test: nothing here may take longer.
const TEST_LIMIT: Duration = Duration::from_secs(60);

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "ironhouse-frames-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn keys(&self) -> KeyStore {
        KeyStore::at(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fast(cfg: SenderConfig) -> SenderConfig {
    cfg.timeouts(Duration::from_secs(3), 2, Duration::from_secs(5))
}

async fn pair(pattern: Pattern, mode: SecureMode, keys: &TempDir) -> (FrameReceiver, FrameSender) {
    let rx = FrameReceiver::bind(
        &["tcp://127.0.0.1:*"],
        ReceiverConfig::new(pattern).secure(mode, keys.keys()),
    )
    .await
    .expect("bind");
    let ep = rx.endpoints()[0].to_string();
    let tx = FrameSender::connect(
        &[ep.as_str()],
        fast(SenderConfig::new(pattern).secure(mode, keys.keys())),
    )
    .await
    .expect("connect");
    (rx, tx)
}

/// Sends `n` frames with `{"seq": i}` and checks each arrives bit-exact;
/// then terminates and checks the receiver sees it.
async fn stream(pattern: Pattern, mode: SecureMode) {
    let dir = TempDir::new("stream");
    let (mut rx, mut tx) = pair(pattern, mode, &dir).await;
    let n = 20u64;
    let recv = async move {
        let mut seen = Vec::new();
        while let Some(r) = rx.recv().await.expect("recv") {
            let seq = r
                .message
                .as_ref()
                .and_then(|m| m["seq"].as_u64())
                .expect("seq");
            assert!(r.frame.is_synthetic(seq), "frame {seq} corrupted");
            assert_eq!(r.frame.shape(), &[48, 64, 3]);
            seen.push(seq);
        }
        assert!(rx.is_terminated());
        seen
    };
    let send = async move {
        for i in 0..n {
            let reply = tx
                .send(&Frame::synthetic(48, 64, 3, i), Some(&json!({ "seq": i })))
                .await
                .expect("send");
            match pattern {
                Pattern::PubSub => assert!(reply.is_none()),
                _ => assert!(
                    matches!(&reply, Some(Reply::Ack(t)) if t.starts_with("Data received on device: ")),
                    "{reply:?}"
                ),
            }
        }
        tx.close().await.expect("close")
    };
    let (seen, acks) = tokio::time::timeout(TEST_LIMIT, async { tokio::join!(recv, send) })
        .await
        .expect("bounded");
    match pattern {
        // PUB/SUB may drop under its high-water mark of 1, never reorder.
        Pattern::PubSub => {
            assert!(!seen.is_empty());
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        }
        _ => assert_eq!(seen, (0..n).collect::<Vec<_>>()),
    }
    if pattern == Pattern::ReqRep {
        assert_eq!(
            acks,
            vec!["Termination signal successfully received at Client's end!".to_string()]
        );
    } else {
        assert!(acks.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pattern_and_secure_mode_delivers_bit_exact_frames_and_terminates() {
    for pattern in [Pattern::Pair, Pattern::ReqRep, Pattern::PubSub] {
        for mode in [
            SecureMode::Grassland,
            SecureMode::StoneHouse,
            SecureMode::IronHouse,
        ] {
            eprintln!("pattern {pattern:?}, {mode:?}");
            stream(pattern, mode).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_dtypes_round_trip() {
    let dir = TempDir::new("dtypes");
    let (mut rx, mut tx) = pair(Pattern::ReqRep, SecureMode::Grassland, &dir).await;
    let data: Vec<u8> = (0..(3 * 5 * 4)).map(|i| i as u8).collect();
    let f = Frame::new(ironhouse_frames::DType::F32, vec![3, 5], data).unwrap();
    let (s, r) = tokio::join!(tx.send(&f, None), rx.recv());
    s.unwrap();
    let r = r.unwrap().unwrap();
    assert_eq!(r.frame, f);
    assert_eq!(r.message, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidirectional_returns_json_and_arrays() {
    for pattern in [Pattern::Pair, Pattern::ReqRep] {
        let mut rx = FrameReceiver::bind(
            &["tcp://127.0.0.1:*"],
            ReceiverConfig::new(pattern).bidirectional(true),
        )
        .await
        .unwrap();
        let ep = rx.endpoints()[0].to_string();
        let mut tx = FrameSender::connect(
            &[ep.as_str()],
            fast(SenderConfig::new(pattern).bidirectional(true)),
        )
        .await
        .unwrap();
        let f = Frame::synthetic(8, 8, 3, 1);
        // Nothing set yet: Python's None.
        let hi = json!("hi");
        let (s, r) = tokio::join!(tx.send(&f, Some(&hi)), rx.recv());
        assert_eq!(
            s.unwrap(),
            Some(Reply::Data {
                port: None,
                data: ReturnData::None
            })
        );
        assert_eq!(r.unwrap().unwrap().message, Some(json!("hi")));
        rx.set_return_data(ReturnData::Json(json!({"objects": 3})));
        let (s, _) = tokio::join!(tx.send(&f, None), rx.recv());
        assert_eq!(
            s.unwrap(),
            Some(Reply::Data {
                port: None,
                data: ReturnData::Json(json!({"objects": 3}))
            })
        );
        let back = Frame::synthetic(4, 6, 1, 77);
        rx.set_return_data(ReturnData::Array(back.clone()));
        let (s, _) = tokio::join!(tx.send(&f, None), rx.recv());
        assert_eq!(
            s.unwrap(),
            Some(Reply::Data {
                port: None,
                data: ReturnData::Array(back)
            })
        );
        let (acks, end) = tokio::join!(tx.close(), rx.recv());
        acks.unwrap();
        assert!(end.unwrap().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiserver_tells_senders_apart_and_ends_when_all_terminated() {
    for pattern in [Pattern::ReqRep, Pattern::PubSub] {
        let mut rx = FrameReceiver::bind(
            &["tcp://127.0.0.1:*", "tcp://127.0.0.1:*"],
            ReceiverConfig::new(pattern).multiserver(true).hwm(100),
        )
        .await
        .unwrap();
        let eps: Vec<String> = rx.endpoints().iter().map(|e| e.to_string()).collect();
        let mut senders = Vec::new();
        for (i, ep) in eps.iter().enumerate() {
            let cfg = fast(
                SenderConfig::new(pattern)
                    .multiserver_port(format!("{}", 5000 + i))
                    .hwm(100),
            );
            senders.push(FrameSender::connect(&[ep.as_str()], cfg).await.unwrap());
        }
        let recv = async {
            let mut got: Vec<(String, u64)> = Vec::new();
            while let Some(r) = tokio::time::timeout(TEST_LIMIT, rx.recv())
                .await
                .unwrap()
                .unwrap()
            {
                let seq = r.message.unwrap()["seq"].as_u64().unwrap();
                assert!(r.frame.is_synthetic(seq));
                got.push((r.port.unwrap(), seq));
            }
            got
        };
        let send = async {
            let mut tasks = Vec::new();
            for mut tx in senders.drain(..) {
                tasks.push(tokio::spawn(async move {
                    for i in 0..5u64 {
                        tx.send(&Frame::synthetic(8, 8, 3, i), Some(&json!({ "seq": i })))
                            .await
                            .unwrap();
                    }
                    tx.close().await.unwrap()
                }));
            }
            let mut acks = Vec::new();
            for t in tasks {
                acks.push(t.await.unwrap());
            }
            acks
        };
        let (got, acks) = tokio::join!(recv, send);
        for port in ["5000", "5001"] {
            let seqs: Vec<u64> = got
                .iter()
                .filter(|(p, _)| p == port)
                .map(|(_, s)| *s)
                .collect();
            if pattern == Pattern::ReqRep {
                assert_eq!(seqs, vec![0, 1, 2, 3, 4], "port {port}: {got:?}");
            } else {
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{got:?}");
            }
        }
        if pattern == Pattern::ReqRep {
            for a in acks {
                assert_eq!(
                    a,
                    vec!["Termination signal successfully received at client!".to_string()]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiclient_round_robins_requests_and_fans_out_publications() {
    // Pattern 1: REQ to two receivers, one frame each in turn; replies name the port.
    let mut rxs = Vec::new();
    for port in ["6001", "6002"] {
        let rx = FrameReceiver::bind(
            &["tcp://127.0.0.1:*"],
            ReceiverConfig::new(Pattern::ReqRep).multiclient_port(port),
        )
        .await
        .unwrap();
        rxs.push(rx);
    }
    let eps: Vec<String> = rxs.iter().map(|r| r.endpoints()[0].to_string()).collect();
    let eps_ref: Vec<&str> = eps.iter().map(String::as_str).collect();
    let mut tx = FrameSender::connect(
        &eps_ref,
        fast(SenderConfig::new(Pattern::ReqRep).multiclient(true)),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for mut rx in rxs {
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(r) = tokio::time::timeout(TEST_LIMIT, rx.recv())
                .await
                .unwrap()
                .unwrap()
            {
                assert!(r
                    .frame
                    .is_synthetic(r.message.unwrap()["seq"].as_u64().unwrap()));
                n += 1;
            }
            n
        }));
    }
    let mut ports = Vec::new();
    for i in 0..6u64 {
        match tx
            .send(&Frame::synthetic(8, 8, 3, i), Some(&json!({ "seq": i })))
            .await
            .unwrap()
        {
            Some(Reply::Data {
                port: Some(p),
                data: ReturnData::None,
            }) => ports.push(p),
            other => panic!("{other:?}"),
        }
    }
    let mut sorted = ports.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["6001", "6001", "6001", "6002", "6002", "6002"],
        "{ports:?}"
    );
    let acks = tx.close().await.unwrap();
    assert_eq!(acks.len(), 2);
    for t in tasks {
        assert_eq!(t.await.unwrap(), 3);
    }

    // Pattern 2: every receiver gets every frame it keeps up with, and the termination.
    let mut rxs = Vec::new();
    for _ in 0..2 {
        rxs.push(
            FrameReceiver::bind(
                &["tcp://127.0.0.1:*"],
                ReceiverConfig::new(Pattern::PubSub).hwm(100),
            )
            .await
            .unwrap(),
        );
    }
    let eps: Vec<String> = rxs.iter().map(|r| r.endpoints()[0].to_string()).collect();
    let eps_ref: Vec<&str> = eps.iter().map(String::as_str).collect();
    let mut tx = FrameSender::connect(
        &eps_ref,
        fast(
            SenderConfig::new(Pattern::PubSub)
                .multiclient(true)
                .hwm(100),
        ),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for mut rx in rxs {
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            while let Some(r) = tokio::time::timeout(TEST_LIMIT, rx.recv())
                .await
                .unwrap()
                .unwrap()
            {
                let seq = r.message.unwrap()["seq"].as_u64().unwrap();
                assert!(r.frame.is_synthetic(seq));
                seqs.push(seq);
            }
            seqs
        }));
    }
    for i in 0..10u64 {
        tx.send(&Frame::synthetic(8, 8, 3, i), Some(&json!({ "seq": i })))
            .await
            .unwrap();
    }
    tx.close().await.unwrap();
    for t in tasks {
        // hwm 100 and 10 small frames: nothing is dropped.
        assert_eq!(t.await.unwrap(), (0..10).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ironhouse_refuses_a_sender_not_on_the_allow_list_with_its_reason() {
    let server_dir = TempDir::new("srv");
    let rx = FrameReceiver::bind(
        &["tcp://127.0.0.1:*"],
        ReceiverConfig::new(Pattern::ReqRep).secure(SecureMode::IronHouse, server_dir.keys()),
    )
    .await
    .unwrap();
    // Another machine: only the receiver's public key copied, its own client pair.
    let other = TempDir::new("other");
    let ks = other.keys();
    std::fs::create_dir_all(ks.public_keys_dir()).unwrap();
    std::fs::copy(
        server_dir.keys().public_keys_dir().join("server.key"),
        ks.public_keys_dir().join("server.key"),
    )
    .unwrap();
    let ep = rx.endpoints()[0].to_string();
    let cfg = fast(SenderConfig::new(Pattern::ReqRep).secure(SecureMode::IronHouse, ks.clone()));
    let err = tokio::time::timeout(
        TEST_LIMIT,
        FrameSender::connect(&[ep.as_str()], cfg.clone()),
    )
    .await
    .expect("bounded")
    .expect_err("refused");
    assert!(matches!(err, FrameError::Handshake { .. }), "{err}");
    // No secret key was copied: the sender made its own pair.
    assert!(ks.private_keys_dir().join("client.key_secret").exists());
    assert!(!ks.private_keys_dir().join("server.key_secret").exists());

    // Admitting it is copying its public key into the allow-list folder.
    std::fs::copy(
        ks.public_keys_dir().join("client.key"),
        server_dir.keys().public_keys_dir().join("laptop.key"),
    )
    .unwrap();
    let mut tx = FrameSender::connect(&[ep.as_str()], cfg)
        .await
        .expect("admitted");
    let mut rx = rx;
    let frame = Frame::synthetic(4, 4, 3, 5);
    let (s, r) = tokio::join!(tx.send(&frame, None), rx.recv());
    s.unwrap();
    assert!(r.unwrap().unwrap().frame.is_synthetic(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_key_missing_key_and_mode_mismatch_fail_clearly() {
    // Wrong server key: the sender's copy of server.key is another pair's.
    let dir = TempDir::new("wrongkey");
    let rx = FrameReceiver::bind(
        &["tcp://127.0.0.1:*"],
        ReceiverConfig::new(Pattern::ReqRep).secure(SecureMode::StoneHouse, dir.keys()),
    )
    .await
    .unwrap();
    let ep = rx.endpoints()[0].to_string();
    let other = TempDir::new("wrongkey-other");
    other.keys().regenerate().unwrap();
    let err = tokio::time::timeout(
        TEST_LIMIT,
        FrameSender::connect(
            &[ep.as_str()],
            fast(SenderConfig::new(Pattern::ReqRep).secure(SecureMode::StoneHouse, other.keys())),
        ),
    )
    .await
    .expect("bounded")
    .expect_err("wrong key");
    assert!(
        matches!(
            err,
            FrameError::Handshake { .. } | FrameError::Timeout { .. }
        ),
        "{err}"
    );

    // No server key at all: a configuration error naming the file.
    let empty = TempDir::new("nokey");
    let err = FrameSender::connect(
        &[ep.as_str()],
        fast(SenderConfig::new(Pattern::ReqRep).secure(SecureMode::IronHouse, empty.keys())),
    )
    .await
    .expect_err("no key");
    assert!(err.to_string().contains("server.key"), "{err}");

    // A CURVE sender against a NULL receiver: refused, never NULL.
    let plain = FrameReceiver::bind(&["tcp://127.0.0.1:*"], ReceiverConfig::new(Pattern::ReqRep))
        .await
        .unwrap();
    let ep = plain.endpoints()[0].to_string();
    let err = tokio::time::timeout(
        TEST_LIMIT,
        FrameSender::connect(
            &[ep.as_str()],
            fast(SenderConfig::new(Pattern::ReqRep).secure(SecureMode::IronHouse, dir.keys())),
        ),
    )
    .await
    .expect("bounded")
    .expect_err("mismatch");
    assert!(matches!(err, FrameError::Handshake { .. }), "{err}");
    // And a NULL sender against a CURVE receiver.
    let err = tokio::time::timeout(
        TEST_LIMIT,
        FrameSender::connect(
            &[rx.endpoints()[0].to_string().as_str()],
            fast(SenderConfig::new(Pattern::ReqRep)),
        ),
    )
    .await
    .expect("bounded")
    .expect_err("mismatch");
    assert!(matches!(err, FrameError::Handshake { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_gone_mid_stream_is_an_error_within_the_timeouts_and_reconnects_keep_curve() {
    let dir = TempDir::new("gone");
    let (mut rx, tx) = pair(Pattern::ReqRep, SecureMode::IronHouse, &dir).await;
    let mut tx = tx;
    let frame = Frame::synthetic(4, 4, 3, 0);
    let (s, _) = tokio::join!(tx.send(&frame, None), rx.recv());
    s.unwrap();

    // The receiver stops answering (alive, not reading): one lost reply, then
    // the sender reconnects, with CURVE, and the next frame goes through.
    let mut events = rx.monitor();
    let err = tx
        .send(&Frame::synthetic(4, 4, 3, 1), None)
        .await
        .expect_err("no reply");
    assert!(matches!(err, FrameError::Timeout { .. }), "{err}");
    // The frame sent before the timeout is waiting in the receiver; read it,
    // and its reply goes to the old connection, which is gone.
    let r = rx.recv().await.unwrap().unwrap();
    assert!(r.frame.is_synthetic(1));
    let frame = Frame::synthetic(4, 4, 3, 2);
    let (s, r) = tokio::join!(tx.send(&frame, None), rx.recv());
    s.expect("after reconnecting");
    assert!(r.unwrap().unwrap().frame.is_synthetic(2));
    let mut curve_reconnect = false;
    while let Ok(ev) = events.try_recv() {
        if let SocketEvent::Connected { public_key, .. } = ev {
            curve_reconnect |= public_key.is_some();
        }
    }
    assert!(curve_reconnect, "the new connection must be CURVE");

    // Now the receiver goes away for good: errors, then giving up, all bounded.
    rx.close().await;
    let t0 = std::time::Instant::now();
    let e1 = tx
        .send(&Frame::synthetic(4, 4, 3, 3), None)
        .await
        .expect_err("gone");
    assert!(matches!(e1, FrameError::Timeout { .. }), "{e1}");
    let e2 = tx
        .send(&Frame::synthetic(4, 4, 3, 4), None)
        .await
        .expect_err("gone");
    assert!(
        matches!(e2, FrameError::ReceiverGone { retries: 2, .. }),
        "{e2}"
    );
    assert!(matches!(
        tx.send(&Frame::synthetic(4, 4, 3, 5), None).await,
        Err(FrameError::Closed)
    ));
    assert!(t0.elapsed() < TEST_LIMIT);
    assert!(tx.close().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_answered_and_dropped_and_the_next_frame_is_fine() {
    let rx_cfg = ReceiverConfig::new(Pattern::ReqRep);
    let mut rx = FrameReceiver::bind(&["tcp://127.0.0.1:*"], rx_cfg)
        .await
        .unwrap();
    let ep = rx.endpoints()[0].to_string();
    let mut raw = ironhouse::Socket::new(ironhouse::SocketType::Req);
    raw.connect(&ep).await.unwrap();
    let bad: Vec<ironhouse::Bytes> = vec![
        ironhouse::Bytes::from_static(
            br#"{"terminate_flag": false, "dtype": "uint8", "shape": [1000000]}"#,
        ),
        ironhouse::Bytes::from_static(b"short"),
    ];
    let (s, r) = tokio::join!(raw.send(bad), rx.recv());
    s.unwrap();
    assert!(matches!(r, Err(FrameError::BadMessage(_))), "{r:?}");
    let answer = raw.recv().await.unwrap();
    assert!(String::from_utf8_lossy(&answer.frames()[0]).contains("rejected"));
    let mut tx = FrameSender::connect(&[ep.as_str()], fast(SenderConfig::new(Pattern::ReqRep)))
        .await
        .unwrap();
    let frame = Frame::synthetic(4, 4, 3, 9);
    let one = Value::from(1);
    let (s, r) = tokio::join!(tx.send(&frame, Some(&one)), rx.recv());
    s.unwrap();
    assert!(r.unwrap().unwrap().frame.is_synthetic(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipc_transport_works() {
    let dir = TempDir::new("ipc");
    let path = format!("ipc://{}/frames.sock", dir.0.display());
    let mut rx = FrameReceiver::bind(&[path.as_str()], ReceiverConfig::new(Pattern::Pair))
        .await
        .unwrap();
    let mut tx = FrameSender::connect(&[path.as_str()], fast(SenderConfig::new(Pattern::Pair)))
        .await
        .unwrap();
    let frame = Frame::synthetic(16, 16, 3, 4);
    let (s, r) = tokio::join!(tx.send(&frame, None), rx.recv());
    s.unwrap();
    assert!(r.unwrap().unwrap().frame.is_synthetic(4));
}

#[tokio::test]
async fn netgear_refusals_are_refused_here_too() {
    let e = FrameReceiver::bind(
        &["tcp://127.0.0.1:*"],
        ReceiverConfig::new(Pattern::PubSub).bidirectional(true),
    )
    .await;
    assert!(matches!(e, Err(FrameError::Config(_))));
    let e = FrameReceiver::bind(
        &["tcp://127.0.0.1:*"],
        ReceiverConfig::new(Pattern::Pair).multiserver(true),
    )
    .await;
    assert!(matches!(e, Err(FrameError::Config(_))));
    let e = FrameSender::connect(
        &["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"],
        SenderConfig::new(Pattern::ReqRep),
    )
    .await;
    assert!(matches!(e, Err(FrameError::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_frames_in_flight_keeps_order_and_replies() {
    let dir = TempDir::new("window");
    let mut rx = FrameReceiver::bind(
        &["tcp://127.0.0.1:*"],
        ReceiverConfig::new(Pattern::ReqRep).secure(SecureMode::IronHouse, dir.keys()),
    )
    .await
    .unwrap();
    let ep = rx.endpoints()[0].to_string();
    let cfg = fast(SenderConfig::new(Pattern::ReqRep).secure(SecureMode::IronHouse, dir.keys()))
        .window(3);
    let mut tx = FrameSender::connect(&[ep.as_str()], cfg).await.unwrap();
    let recv = async move {
        let mut seqs = Vec::new();
        while let Some(r) = rx.recv().await.unwrap() {
            let seq = r.message.unwrap()["seq"].as_u64().unwrap();
            assert!(r.frame.is_synthetic(seq));
            seqs.push(seq);
        }
        seqs
    };
    let send = async move {
        let mut replies = 0;
        for i in 0..20u64 {
            let r = tx
                .send(&Frame::synthetic(48, 64, 3, i), Some(&json!({ "seq": i })))
                .await
                .unwrap();
            // The first three frames fill the window; then one reply each.
            assert_eq!(r.is_some(), i >= 3, "frame {i}: {r:?}");
            if let Some(Reply::Ack(t)) = r {
                assert!(t.starts_with("Data received on device: "));
                replies += 1;
            }
        }
        (replies, tx.close().await.unwrap())
    };
    let (seqs, (replies, acks)) =
        tokio::time::timeout(TEST_LIMIT, async { tokio::join!(recv, send) })
            .await
            .expect("bounded");
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    assert_eq!(replies, 17);
    assert_eq!(
        acks,
        vec!["Termination signal successfully received at Client's end!".to_string()]
    );
    let e = FrameSender::connect(
        &["tcp://127.0.0.1:1"],
        SenderConfig::new(Pattern::PubSub).window(2),
    )
    .await;
    assert!(matches!(e, Err(FrameError::Config(_))));
}
