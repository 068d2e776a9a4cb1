//! Input after a valid NULL greeting (and optionally a valid READY), so the
//! fuzzer spends its time in READY/metadata parsing, commands and traffic
//! rather than rediscovering the 64-byte signature. Nothing may panic.
//!
//! Input layout: [mode, split, payload...].
//! mode bits: 0-3 socket type, 4 skip READY prefix, 5 authenticate (NULL with
//! ZAP-style decision), 6 deny instead of allow, 7 small max message size.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ironhouse_zmtp::mechanism::Null;
use ironhouse_zmtp::{
    AuthReply, Config, Connection, Event, Heartbeat, Message, Metadata, SocketType,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, split, payload @ ..] = data else {
        return;
    };
    let t0 = Instant::now();
    let socket = SocketType::ALL[usize::from(mode & 0x0f) % SocketType::ALL.len()];
    let mut cfg = Config::new(socket);
    cfg.max_message_size = Some(if mode & 0x80 != 0 { 32 } else { 1 << 20 });
    cfg.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        ttl: Some(Duration::from_secs(2)),
        timeout: Some(Duration::from_secs(3)),
    };
    let mechanism = if mode & 0x20 != 0 {
        Null::with_authentication()
    } else {
        Null::new()
    };
    let mut conn = Connection::with_mechanism(cfg, Box::new(mechanism), t0);

    let mut input = ironhouse_zmtp::greeting::encode("NULL", false).to_vec();
    if mode & 0x10 == 0 {
        // A READY from a compatible peer.
        let peer = SocketType::ALL
            .into_iter()
            .find(|p| socket.is_compatible(*p))
            .unwrap_or(socket);
        let mut md = Metadata::new();
        md.insert("Socket-Type", peer.as_str());
        md.insert("Identity", &b"peer"[..]);
        let mut out = BytesMut::new();
        ironhouse_zmtp::command::write_ready(&mut out, &md);
        input.extend_from_slice(&out);
    }
    let at = input.len() + usize::from(*split) % (payload.len() + 1);
    input.extend_from_slice(payload);
    let (first, second) = input.split_at(at);

    let mut buf = BytesMut::new();
    for (i, chunk) in [first, second].into_iter().enumerate() {
        buf.extend_from_slice(chunk);
        let now = t0 + Duration::from_millis(700 * i as u64);
        let r = conn.handle_input(&mut buf, now);
        assert_eq!(r.is_err(), conn.error().is_some());
        while let Some(ev) = conn.poll_event() {
            if let Event::Authenticate(_) = ev {
                let reply = if mode & 0x40 != 0 {
                    AuthReply::Deny {
                        status: 400,
                        reason: "denied".into(),
                    }
                } else {
                    AuthReply::Allow {
                        user_id: "fuzz".into(),
                    }
                };
                let _ = conn.handle_auth_reply(reply, now);
            }
        }
        let _ = conn.transmit().take_all();
    }
    if conn.is_active() {
        assert!(conn.peer().is_some());
        conn.send_message(&Message::from_iter(["x", "", "y"]))
            .expect("active connections accept messages");
    }
    let _ = conn.poll_timeout();
    let _ = conn.handle_timeout(t0 + Duration::from_secs(1));
    let _ = conn.handle_timeout(t0 + Duration::from_secs(10));
    let _ = conn.transmit().take_all();
});
