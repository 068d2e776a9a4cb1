//! Arbitrary bytes into a fresh server-side connection (greeting first), cut
//! into two chunks at a fuzzer-chosen point, and straight into the frame and
//! command parsers. Nothing may panic.
//!
//! Input layout: [split hi, split lo, config, payload...].
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ironhouse_zmtp::command::{parse_error, parse_ping, RawCommand};
use ironhouse_zmtp::frame::peek_header;
use ironhouse_zmtp::greeting::GreetingDecoder;
use ironhouse_zmtp::{Config, Connection, Heartbeat, Message, Metadata, SocketType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [hi, lo, cfg_byte, payload @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_be_bytes([*hi, *lo])) % (payload.len() + 1);
    let (first, second) = payload.split_at(split);

    // 1. The engine, server side (it waits for the peer's greeting).
    let t0 = Instant::now();
    let socket = SocketType::ALL[usize::from(cfg_byte & 0x0f) % SocketType::ALL.len()];
    let mut cfg = Config::new(socket);
    cfg.max_message_size = Some(if cfg_byte & 0x10 != 0 { 64 } else { 64 * 1024 });
    cfg.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        ttl: Some(Duration::from_secs(5)),
        timeout: None,
    };
    let mut conn = Connection::new(cfg, t0);
    let mut buf = BytesMut::new();
    for (i, chunk) in [first, second].into_iter().enumerate() {
        buf.extend_from_slice(chunk);
        let now = t0 + Duration::from_millis(500 * i as u64);
        let r = conn.handle_input(&mut buf, now);
        assert_eq!(r.is_err(), conn.error().is_some());
        while conn.poll_event().is_some() {}
        let _ = conn.bytes_wanted();
        let _ = conn.transmit().take_all();
    }
    let _ = conn.poll_timeout();
    let _ = conn.handle_timeout(t0 + Duration::from_secs(2));
    let _ = conn.send_message(&Message::from_iter(["a", ""]));
    let _ = conn.send_subscribe(b"t");
    let _ = conn.handle_timeout(t0 + Duration::from_secs(60));
    let _ = conn.transmit().take_all();

    // 2. The greeting decoder on its own, in the same two chunks.
    let mut g = GreetingDecoder::default();
    if let Ok((n, None)) = g.feed(first) {
        assert!(n <= first.len());
        let _ = g.feed(second);
    }

    // 3. The frame and command parsers directly, walking the payload as frames.
    let mut rest = payload;
    while let Ok(Some(h)) = peek_header(rest) {
        assert!(h.header_len <= rest.len());
        let Some(body) = usize::try_from(h.len)
            .ok()
            .and_then(|len| rest.get(h.header_len..h.header_len.checked_add(len)?))
        else {
            break;
        };
        if h.command() {
            if let Ok(cmd) = RawCommand::parse(body) {
                match cmd.name {
                    b"READY" => {
                        let _ = Metadata::decode(cmd.data, "READY");
                    }
                    b"ERROR" => {
                        let _ = parse_error(&cmd);
                    }
                    b"PING" => {
                        let _ = parse_ping(&cmd);
                    }
                    _ => {
                        let _ = Metadata::decode(cmd.data, "OTHER");
                    }
                }
            }
        }
        rest = &rest[h.header_len + body.len()..];
    }
});
