//! Integration tests of the ZMTP engine through its public API only.
//!
//! Expected wire bytes are written out by hand from RFC 23 (ZMTP 3.1), never
//! produced by the crate's own encoders, so an encoder bug cannot hide itself.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ironhouse_zmtp::mechanism::Null;
use ironhouse_zmtp::testing::pump;
use ironhouse_zmtp::{
    AuthReply, Config, Connection, Event, Heartbeat, Message, ProtocolError, SocketType,
};

// ---------------------------------------------------------------------------
// Hand-written wire helpers (RFC 23)
// ---------------------------------------------------------------------------

/// A ZMTP 3.1 greeting: signature (0xFF, 8 padding, 0x7F), version 3.1,
/// mechanism zero-padded to 20 octets, as-server, 31 filler octets.
fn greeting_bytes(mechanism: &[u8], major: u8, minor: u8, as_server: bool) -> Vec<u8> {
    let mut g = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, major, minor];
    let mut mech = [0u8; 20];
    mech[..mechanism.len()].copy_from_slice(mechanism);
    g.extend_from_slice(&mech);
    g.push(u8::from(as_server));
    g.extend_from_slice(&[0u8; 31]);
    assert_eq!(g.len(), 64);
    g
}

fn null_greeting() -> Vec<u8> {
    greeting_bytes(b"NULL", 3, 1, false)
}

/// A short or long COMMAND frame with `name` and `data`.
fn command_frame(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(data);
    frame(0x04, &body)
}

/// A frame with the given flags (MORE/COMMAND); LONG is chosen from the size.
fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if body.len() <= 255 {
        out.push(flags);
        out.push(body.len() as u8);
    } else {
        out.push(flags | 0x02);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// READY with the given properties: name-len, name, 4-octet value-len, value.
fn ready_frame(props: &[(&str, &[u8])]) -> Vec<u8> {
    let mut data = Vec::new();
    for (n, v) in props {
        data.push(n.len() as u8);
        data.extend_from_slice(n.as_bytes());
        data.extend_from_slice(&(v.len() as u32).to_be_bytes());
        data.extend_from_slice(v);
    }
    command_frame(b"READY", &data)
}

/// What a NULL peer of `socket_type` sends before any traffic.
fn null_peer_prefix(socket_type: &str) -> Vec<u8> {
    let mut v = null_greeting();
    v.extend(ready_frame(&[("Socket-Type", socket_type.as_bytes())]));
    v
}

// ---------------------------------------------------------------------------
// Engine helpers
// ---------------------------------------------------------------------------

fn conn(t: SocketType, now: Instant) -> Connection {
    Connection::new(Config::new(t), now)
}

fn drain(c: &mut Connection) -> Vec<u8> {
    c.transmit().take_all().concat()
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn messages(c: &mut Connection) -> Vec<Message> {
    events(c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn feed(c: &mut Connection, bytes: &[u8], now: Instant) -> Result<(), ProtocolError> {
    let mut buf = BytesMut::from(bytes);
    c.handle_input(&mut buf, now)
}

/// Like `pump`, but also records every byte `a` sent to `b`.
fn pump_recording(
    a: &mut Connection,
    b: &mut Connection,
    now: Instant,
    a_to_b: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let mut a_in = BytesMut::new();
    let mut b_in = BytesMut::new();
    for _ in 0..100 {
        let to_b = drain(a);
        let to_a = drain(b);
        if to_a.is_empty() && to_b.is_empty() {
            return Ok(());
        }
        a_to_b.extend_from_slice(&to_b);
        b_in.extend_from_slice(&to_b);
        a_in.extend_from_slice(&to_a);
        b.handle_input(&mut b_in, now)?;
        a.handle_input(&mut a_in, now)?;
    }
    panic!("pump did not settle");
}

fn connected(a: SocketType, b: SocketType, now: Instant) -> (Connection, Connection) {
    let mut a = conn(a, now);
    let mut b = conn(b, now);
    pump(&mut a, &mut b, now).expect("handshake");
    assert!(a.is_active() && b.is_active());
    assert!(matches!(
        events(&mut a).as_slice(),
        [Event::HandshakeComplete(_)]
    ));
    assert!(matches!(
        events(&mut b).as_slice(),
        [Event::HandshakeComplete(_)]
    ));
    (a, b)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// NULL handshake, exact bytes
// ---------------------------------------------------------------------------

#[test]
fn null_handshake_exact_bytes_req() {
    let now = Instant::now();
    let mut cfg = Config::new(SocketType::Req);
    cfg.identity = Bytes::from_static(b"abc");
    let mut req = Connection::new(cfg, now);
    let mut rep = conn(SocketType::Rep, now);
    let mut wire = Vec::new();
    pump_recording(&mut req, &mut rep, now, &mut wire).unwrap();

    let mut want: Vec<u8> = vec![
        0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, // signature
        3, 1, // version 3.1
        b'N', b'U', b'L', b'L', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // mechanism
        0, // as-server
    ];
    want.extend_from_slice(&[0u8; 31]); // filler
    assert_eq!(want.len(), 64);
    // READY: body = 1+5 ("READY") + 1+11+4+3 (Socket-Type=REQ) + 1+8+4+3 (Identity=abc) = 41.
    want.extend_from_slice(
        b"\x04\x29\x05READY\x0bSocket-Type\x00\x00\x00\x03REQ\x08Identity\x00\x00\x00\x03abc",
    );
    assert_eq!(wire, want);

    let peer = rep.peer().unwrap();
    assert_eq!(peer.socket_type, SocketType::Req);
    assert_eq!(peer.identity.as_deref(), Some(&b"abc"[..]));
    assert_eq!(peer.minor_version, 1);
    assert_eq!(peer.mechanism, "NULL");
    assert_eq!(peer.user_id, None);
    assert_eq!(peer.metadata.get("socket-type").unwrap().as_ref(), b"REQ");
}

#[test]
fn null_handshake_exact_bytes_push_and_dealer() {
    let now = Instant::now();
    // PUSH announces no Identity: body = 1+5 ("READY") + 1+11+4+4 = 26.
    let mut push = conn(SocketType::Push, now);
    let mut pull = conn(SocketType::Pull, now);
    let mut wire = Vec::new();
    pump_recording(&mut push, &mut pull, now, &mut wire).unwrap();
    assert_eq!(&wire[..64], &null_greeting()[..]);
    assert_eq!(
        &wire[64..],
        b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH"
    );

    // DEALER with no identity still announces an empty Identity:
    // body = 6 + (1+11+4+6) + (1+8+4+0) = 41.
    let mut dealer = conn(SocketType::Dealer, now);
    let mut router = conn(SocketType::Router, now);
    let mut wire = Vec::new();
    pump_recording(&mut dealer, &mut router, now, &mut wire).unwrap();
    assert_eq!(
        &wire[64..],
        b"\x04\x29\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER\x08Identity\x00\x00\x00\x00"
    );
    // An empty identity is not a usable routing id.
    assert_eq!(router.peer().unwrap().identity, None);
}

#[test]
fn peer_identity_starting_with_zero_is_not_usable() {
    let now = Instant::now();
    let mut router = conn(SocketType::Router, now);
    let mut input = null_greeting();
    input.extend(ready_frame(&[
        ("Socket-Type", b"DEALER"),
        ("Identity", b"\x00abc"),
    ]));
    feed(&mut router, &input, now).unwrap();
    assert!(router.is_active());
    assert_eq!(router.peer().unwrap().identity, None);
}

#[test]
fn handshake_with_zmtp_3_0_peer() {
    let now = Instant::now();
    let mut pull = conn(SocketType::Pull, now);
    let mut input = greeting_bytes(b"NULL", 3, 0, false);
    input.extend(ready_frame(&[("Socket-Type", b"PUSH")]));
    feed(&mut pull, &input, now).unwrap();
    assert!(pull.is_active());
    assert_eq!(pull.peer().unwrap().minor_version, 0);
}

#[test]
fn handshake_events_report_peer() {
    let now = Instant::now();
    let mut a = conn(SocketType::Pair, now);
    let mut b = conn(SocketType::Pair, now);
    assert!(!a.is_active());
    assert!(a.peer().is_none());
    pump(&mut a, &mut b, now).unwrap();
    match events(&mut a).as_slice() {
        [Event::HandshakeComplete(p)] => {
            assert_eq!(p.socket_type, SocketType::Pair);
            assert_eq!(Some(p), a.peer());
        }
        other => panic!("unexpected events {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Socket-type compatibility
// ---------------------------------------------------------------------------

/// RFC 23's compatibility table, written out independently of the crate.
const COMPATIBLE: &[(&str, &str)] = &[
    ("REQ", "REP"),
    ("REQ", "ROUTER"),
    ("REP", "REQ"),
    ("REP", "DEALER"),
    ("DEALER", "REP"),
    ("DEALER", "DEALER"),
    ("DEALER", "ROUTER"),
    ("ROUTER", "REQ"),
    ("ROUTER", "DEALER"),
    ("ROUTER", "ROUTER"),
    ("PUB", "SUB"),
    ("PUB", "XSUB"),
    ("XPUB", "SUB"),
    ("XPUB", "XSUB"),
    ("SUB", "PUB"),
    ("SUB", "XPUB"),
    ("XSUB", "PUB"),
    ("XSUB", "XPUB"),
    ("PUSH", "PULL"),
    ("PULL", "PUSH"),
    ("PAIR", "PAIR"),
];

#[test]
fn every_socket_type_pair() {
    let now = Instant::now();
    let mut ok_pairs = 0;
    for a_t in SocketType::ALL {
        for b_t in SocketType::ALL {
            let compatible = COMPATIBLE.contains(&(a_t.as_str(), b_t.as_str()));
            let mut a = conn(a_t, now);
            let mut b = conn(b_t, now);
            if compatible {
                pump(&mut a, &mut b, now).unwrap_or_else(|e| panic!("{a_t}-{b_t}: {e}"));
                assert!(a.is_active() && b.is_active(), "{a_t}-{b_t}");
                assert_eq!(a.peer().unwrap().socket_type, b_t);
                assert_eq!(b.peer().unwrap().socket_type, a_t);
                ok_pairs += 1;
                continue;
            }
            // Exchange greetings, then b's READY reaches a.
            let a_greeting = drain(&mut a);
            let b_greeting = drain(&mut b);
            feed(&mut b, &a_greeting, now).unwrap();
            let mut b_out = b_greeting;
            b_out.extend(drain(&mut b));
            let err = feed(&mut a, &b_out, now).unwrap_err();
            assert_eq!(
                err,
                ProtocolError::IncompatibleSocketType {
                    ours: a_t,
                    theirs: b_t
                },
                "{a_t}-{b_t}"
            );
            assert!(!a.is_active());
            assert_eq!(a.error(), Some(&err));
            // a queued READY (its handshake reply) and then an ERROR with the reason.
            let out = drain(&mut a);
            let reason = err.to_string();
            let mut want_error = vec![0x04, (1 + 5 + 1 + reason.len()) as u8, 5];
            want_error.extend_from_slice(b"ERROR");
            want_error.push(reason.len() as u8);
            want_error.extend_from_slice(reason.as_bytes());
            assert!(contains(&out, b"ERROR"), "{a_t}-{b_t}");
            assert!(out.ends_with(&want_error), "{a_t}-{b_t}");
            // Further input is refused with the same error.
            assert_eq!(feed(&mut a, b"x", now), Err(err.clone()));
            // The peer sees our ERROR (after our READY, which it refuses first
            // for the same reason, or the ERROR if it already saw READY).
            let peer_err = feed(&mut b, &out, now).unwrap_err();
            assert!(matches!(
                peer_err,
                ProtocolError::IncompatibleSocketType { .. }
            ));
        }
    }
    assert_eq!(ok_pairs, COMPATIBLE.len());
}

#[test]
fn req_vs_pub_both_sides_fail_and_error_reaches_peer() {
    let now = Instant::now();
    let mut req = conn(SocketType::Req, now);
    let mut publ = conn(SocketType::Pub, now);
    assert_eq!(
        pump(&mut req, &mut publ, now),
        Err(ProtocolError::IncompatibleSocketType {
            ours: SocketType::Pub,
            theirs: SocketType::Req
        })
    );
    assert!(contains(&drain(&mut publ), b"\x05ERROR"));
}

#[test]
fn missing_and_unknown_socket_type() {
    let now = Instant::now();
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_greeting();
    input.extend(ready_frame(&[("Identity", b"")]));
    assert_eq!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MissingSocketType)
    );
    assert!(contains(&drain(&mut c), b"ERROR"));

    let mut c = conn(SocketType::Pull, now);
    let mut input = null_greeting();
    input.extend(ready_frame(&[("Socket-Type", b"push")]));
    assert_eq!(
        feed(&mut c, &input, now),
        Err(ProtocolError::UnknownSocketType("push".into()))
    );
}

#[test]
fn handshake_protocol_violations() {
    let now = Instant::now();
    // A data frame before READY.
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_greeting();
    input.extend(frame(0, b"hello"));
    assert!(matches!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MalformedFrame(_))
    ));
    // An unexpected command in the NULL handshake.
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_greeting();
    input.extend(command_frame(b"HELLO", b""));
    assert!(matches!(
        feed(&mut c, &input, now),
        Err(ProtocolError::UnexpectedCommand { .. })
    ));
    assert!(contains(&drain(&mut c), b"ERROR"));
    // Malformed metadata.
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_greeting();
    input.extend(command_frame(
        b"READY",
        b"\x0bSocket-Type\x00\x00\x00\x09PUSH",
    ));
    assert!(matches!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MalformedCommand { .. })
    ));
    // Reserved flag bits.
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_peer_prefix("PUSH");
    input.extend_from_slice(b"\x80\x00");
    assert!(matches!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MalformedFrame(_))
    ));
    // A peer's ERROR during the handshake.
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_greeting();
    input.extend(command_frame(b"ERROR", b"\x04nope"));
    assert_eq!(
        feed(&mut c, &input, now),
        Err(ProtocolError::PeerError("nope".into()))
    );
    // We do not answer a peer's ERROR with our own.
    assert!(!contains(&drain(&mut c), b"ERROR"));
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

fn exchange(msgs: &[Message]) -> Vec<Message> {
    let now = Instant::now();
    let (mut a, mut b) = connected(SocketType::Pair, SocketType::Pair, now);
    for m in msgs {
        a.send_message(m).unwrap();
    }
    pump(&mut a, &mut b, now).unwrap();
    messages(&mut b)
}

#[test]
fn single_message() {
    let got = exchange(&[Message::from("hello")]);
    assert_eq!(got, vec![Message::from("hello")]);
}

#[test]
fn single_message_exact_bytes() {
    let now = Instant::now();
    let (mut a, _b) = connected(SocketType::Push, SocketType::Pull, now);
    a.send_message(&Message::from_iter(["ab", "", "c"]))
        .unwrap();
    assert_eq!(drain(&mut a), b"\x01\x02ab\x01\x00\x00\x01c");
    a.send_message(&Message::from(vec![7u8; 256])).unwrap();
    let out = drain(&mut a);
    assert_eq!(&out[..9], b"\x02\x00\x00\x00\x00\x00\x00\x01\x00");
    assert_eq!(out.len(), 9 + 256);
}

#[test]
fn multipart_and_empty_frames() {
    let msgs = vec![
        Message::from_iter(["a", "b", "c"]),
        Message::from_iter(["", "", ""]),
        Message::from_iter(["id", "", "body"]),
        Message::from_iter([Bytes::new()]),
    ];
    assert_eq!(exchange(&msgs), msgs);
}

#[test]
fn zero_byte_message() {
    // A message with no frames goes out as one empty frame.
    let got = exchange(&[Message::new(), Message::from(Bytes::new())]);
    assert_eq!(got.len(), 2);
    for m in got {
        assert_eq!(m.frames(), &[Bytes::new()]);
        assert_eq!(m.size(), 0);
    }
}

#[test]
fn one_mebibyte_frame() {
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let msgs = vec![
        Message::from(big.clone()),
        Message::from_iter([Bytes::from_static(b"hdr"), Bytes::from(big)]),
    ];
    assert_eq!(exchange(&msgs), msgs);
}

#[test]
fn messages_both_directions() {
    let now = Instant::now();
    let (mut a, mut b) = connected(SocketType::Dealer, SocketType::Router, now);
    a.send_message(&Message::from("to router")).unwrap();
    b.send_message(&Message::from_iter(["", "to dealer"]))
        .unwrap();
    pump(&mut a, &mut b, now).unwrap();
    assert_eq!(messages(&mut b), vec![Message::from("to router")]);
    assert_eq!(
        messages(&mut a),
        vec![Message::from_iter(["", "to dealer"])]
    );
}

#[test]
fn send_before_handshake_is_not_ready() {
    let now = Instant::now();
    let mut a = conn(SocketType::Push, now);
    assert_eq!(
        a.send_message(&Message::from("x")),
        Err(ProtocolError::NotReady)
    );
    assert_eq!(a.send_subscribe(b"x"), Err(ProtocolError::NotReady));
}

#[test]
fn byte_at_a_time_feeding_yields_identical_events() {
    let now = Instant::now();
    let mut push = conn(SocketType::Push, now);
    let mut pull = conn(SocketType::Pull, now);
    let mut wire = Vec::new();
    pump_recording(&mut push, &mut pull, now, &mut wire).unwrap();
    let msgs = vec![
        Message::from("one"),
        Message::from_iter(["two", "", "parts"]),
        Message::new(),
        Message::from(vec![9u8; 300]),
        Message::from(vec![3u8; 20_000]),
        Message::from_iter([vec![1u8; 255], vec![2u8; 256]]),
    ];
    for m in &msgs {
        push.send_message(m).unwrap();
    }
    wire.extend(drain(&mut push));

    // All at once.
    let mut whole = conn(SocketType::Pull, now);
    feed(&mut whole, &wire, now).unwrap();
    let want = events(&mut whole);

    // One byte at a time, into a buffer that keeps the unconsumed tail.
    let mut bytewise = conn(SocketType::Pull, now);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &wire {
        buf.extend_from_slice(&[b]);
        bytewise.handle_input(&mut buf, now).unwrap();
        got.extend(events(&mut bytewise));
    }
    assert!(buf.is_empty());
    assert_eq!(got, want);
    assert!(matches!(want[0], Event::HandshakeComplete(_)));
    let got_msgs: Vec<_> = got
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    let mut expect = msgs;
    expect[2] = Message::from(Bytes::new());
    assert_eq!(got_msgs, expect);
    // Both engines answered with the same bytes.
    assert_eq!(drain(&mut whole), drain(&mut bytewise));
}

#[test]
fn bytes_wanted_tracks_the_current_frame() {
    let now = Instant::now();
    let mut c = conn(SocketType::Pull, now);
    assert_eq!(c.bytes_wanted(), 64);
    let mut input = null_peer_prefix("PUSH");
    input.extend_from_slice(b"\x00\x0a12345");
    let mut buf = BytesMut::from(&input[..]);
    c.handle_input(&mut buf, now).unwrap();
    assert_eq!(c.bytes_wanted(), 12);
    assert_eq!(&buf[..], b"\x00\x0a12345");
    buf.extend_from_slice(b"67890");
    c.handle_input(&mut buf, now).unwrap();
    assert!(buf.is_empty());
    let evs = events(&mut c);
    assert_eq!(
        evs.last(),
        Some(&Event::Message(Message::from("1234567890")))
    );
}

// ---------------------------------------------------------------------------
// Maximum message size
// ---------------------------------------------------------------------------

fn limited(t: SocketType, max: u64, now: Instant) -> Connection {
    let mut cfg = Config::new(t);
    cfg.max_message_size = Some(max);
    Connection::new(cfg, now)
}

#[test]
fn huge_long_frame_header_refused_before_body() {
    let now = Instant::now();
    let mut c = limited(SocketType::Pull, 1000, now);
    let mut input = null_peer_prefix("PUSH");
    // LONG frame header announcing 2^40 bytes, and no body at all.
    input.push(0x02);
    input.extend_from_slice(&(1u64 << 40).to_be_bytes());
    assert_eq!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MessageTooLarge {
            size: 1 << 40,
            limit: 1000
        })
    );
    assert!(!c.is_active());
    assert!(c.error().is_some());
}

#[test]
fn frame_at_the_limit_is_accepted() {
    let now = Instant::now();
    let mut c = limited(SocketType::Pull, 1000, now);
    let mut input = null_peer_prefix("PUSH");
    input.extend(frame(0, &[5u8; 1000]));
    feed(&mut c, &input, now).unwrap();
    assert_eq!(messages(&mut c), vec![Message::from(vec![5u8; 1000])]);

    // Header of 1001 bytes: refused at once, with only the header seen.
    let mut input = vec![0x02];
    input.extend_from_slice(&1001u64.to_be_bytes());
    assert_eq!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MessageTooLarge {
            size: 1001,
            limit: 1000
        })
    );
}

#[test]
fn short_frame_over_limit() {
    let now = Instant::now();
    let mut c = limited(SocketType::Pull, 10, now);
    let mut input = null_peer_prefix("PUSH");
    input.extend_from_slice(b"\x00\x0b"); // 11 bytes announced, none sent
    assert_eq!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MessageTooLarge {
            size: 11,
            limit: 10
        })
    );
}

#[test]
fn multipart_total_over_limit() {
    let now = Instant::now();
    let mut c = limited(SocketType::Pull, 1000, now);
    let mut input = null_peer_prefix("PUSH");
    input.extend(frame(0x01, &[1u8; 400]));
    input.extend(frame(0x01, &[2u8; 400]));
    feed(&mut c, &input, now).unwrap();
    // Third part: 400 more bytes would make 1200 > 1000. Header only.
    let mut hdr = vec![0x02];
    hdr.extend_from_slice(&400u64.to_be_bytes());
    assert_eq!(
        feed(&mut c, &hdr, now),
        Err(ProtocolError::MessageTooLarge {
            size: 1200,
            limit: 1000
        })
    );
    assert!(messages(&mut c).is_empty());
}

#[test]
fn multipart_limit_resets_per_message() {
    let now = Instant::now();
    let mut c = limited(SocketType::Pull, 1000, now);
    let mut input = null_peer_prefix("PUSH");
    for _ in 0..5 {
        input.extend(frame(0x01, &[1u8; 500]));
        input.extend(frame(0x00, &[2u8; 500]));
    }
    feed(&mut c, &input, now).unwrap();
    assert_eq!(messages(&mut c).len(), 5);
}

#[test]
fn max_message_size_between_engines() {
    let now = Instant::now();
    let mut push = conn(SocketType::Push, now);
    let mut pull = limited(SocketType::Pull, 100, now);
    pump(&mut push, &mut pull, now).unwrap();
    push.send_message(&Message::from_iter([vec![0u8; 60], vec![0u8; 40]]))
        .unwrap();
    pump(&mut push, &mut pull, now).unwrap();
    assert_eq!(messages(&mut pull).len(), 1);
    push.send_message(&Message::from_iter([vec![0u8; 60], vec![0u8; 41]]))
        .unwrap();
    assert_eq!(
        pump(&mut push, &mut pull, now),
        Err(ProtocolError::MessageTooLarge {
            size: 101,
            limit: 100
        })
    );
}

#[test]
fn oversized_command_refused_without_limit() {
    let now = Instant::now();
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_greeting();
    // A READY command announcing 2^30 bytes.
    input.push(0x06);
    input.extend_from_slice(&(1u64 << 30).to_be_bytes());
    assert!(matches!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MessageTooLarge { .. })
    ));
}

#[test]
fn frame_size_above_2_pow_63_is_malformed() {
    let now = Instant::now();
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_peer_prefix("PUSH");
    input.push(0x02);
    input.extend_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(
        feed(&mut c, &input, now),
        Err(ProtocolError::MalformedFrame(_))
    ));
}

// ---------------------------------------------------------------------------
// Greeting
// ---------------------------------------------------------------------------

#[test]
fn greeting_garbage() {
    let now = Instant::now();
    let mut c = conn(SocketType::Rep, now);
    assert_eq!(
        feed(&mut c, b"\x00\x01\x02\x03", now),
        Err(ProtocolError::NotZmtp)
    );
    // Nothing is sent to a non-ZMTP peer beyond our greeting.
    assert_eq!(drain(&mut c), null_greeting());
}

#[test]
fn greeting_http_request() {
    let now = Instant::now();
    let mut c = conn(SocketType::Rep, now);
    assert_eq!(
        feed(&mut c, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", now),
        Err(ProtocolError::NotZmtp)
    );
}

#[test]
fn greeting_signature_bad_byte_9() {
    let now = Instant::now();
    let mut c = conn(SocketType::Rep, now);
    let mut g = null_greeting();
    g[9] = 0x00; // a ZMTP 1.0 length-prefixed identity would put a flags octet here
    assert_eq!(feed(&mut c, &g, now), Err(ProtocolError::NotZmtp));
}

#[test]
fn greeting_zmtp_2_major() {
    let now = Instant::now();
    let mut c = conn(SocketType::Rep, now);
    let g = greeting_bytes(b"NULL", 2, 0, false);
    assert_eq!(
        feed(&mut c, &g, now),
        Err(ProtocolError::UnsupportedVersion { major: 2, minor: 0 })
    );
    // Detected from the first 11 bytes, without waiting for the rest.
    let mut c = conn(SocketType::Rep, now);
    assert!(matches!(
        feed(&mut c, &g[..11], now),
        Err(ProtocolError::UnsupportedVersion { major: 2, .. })
    ));
}

#[test]
fn greeting_zmtp_2_0_rfc15() {
    // RFC 15 (ZMTP/2.0): signature, revision 0x01, socket-type octet, identity.
    let now = Instant::now();
    let mut c = conn(SocketType::Rep, now);
    let g = b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x01\x05\x00\x00";
    assert_eq!(
        feed(&mut c, g, now),
        Err(ProtocolError::UnsupportedVersion { major: 1, minor: 5 })
    );
}

#[test]
fn greeting_mechanism_mismatch() {
    let now = Instant::now();
    let mut c = conn(SocketType::Rep, now);
    let g = greeting_bytes(b"PLAIN", 3, 1, true);
    assert_eq!(
        feed(&mut c, &g, now),
        Err(ProtocolError::MechanismMismatch {
            ours: "NULL".into(),
            theirs: "PLAIN".into()
        })
    );
    // No READY is sent to a peer with another mechanism.
    assert_eq!(drain(&mut c), null_greeting());
}

#[test]
fn greeting_malformed_mechanism() {
    let now = Instant::now();
    for mech in [&b""[..], b"null", b"NU\x01L"] {
        let mut c = conn(SocketType::Rep, now);
        let g = greeting_bytes(mech, 3, 1, false);
        assert!(
            matches!(
                feed(&mut c, &g, now),
                Err(ProtocolError::MalformedGreeting(_))
            ),
            "{mech:?}"
        );
    }
    let mut c = conn(SocketType::Rep, now);
    let mut g = null_greeting();
    g[25] = b'X'; // not zero-padded
    assert!(matches!(
        feed(&mut c, &g, now),
        Err(ProtocolError::MalformedGreeting(_))
    ));
}

#[test]
fn greeting_in_pieces_and_failed_is_sticky() {
    let now = Instant::now();
    let mut c = conn(SocketType::Pull, now);
    let input = null_peer_prefix("PUSH");
    // Signature, then version, then the rest, as libzmq sends it.
    for part in [&input[..10], &input[10..11], &input[11..]] {
        feed(&mut c, part, now).unwrap();
    }
    assert!(c.is_active());

    let mut c = conn(SocketType::Pull, now);
    assert_eq!(feed(&mut c, b"G", now), Err(ProtocolError::NotZmtp));
    assert_eq!(
        feed(&mut c, &null_peer_prefix("PUSH"), now),
        Err(ProtocolError::NotZmtp)
    );
    assert_eq!(c.handle_timeout(now), Err(ProtocolError::NotZmtp));
    assert_eq!(c.poll_timeout(), None);
}

// ---------------------------------------------------------------------------
// Timers: heartbeats and handshake timeout
// ---------------------------------------------------------------------------

const PING_NO_TTL: &[u8] = b"\x04\x07\x04PING\x00\x00";
const PONG_EMPTY: &[u8] = b"\x04\x05\x04PONG";

fn with_heartbeat(t: SocketType, hb: Heartbeat, now: Instant) -> Connection {
    let mut cfg = Config::new(t);
    cfg.heartbeat = hb;
    Connection::new(cfg, now)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn heartbeat_ping_pong_and_timeout() {
    let t0 = Instant::now();
    let hb = Heartbeat {
        interval: Some(secs(1.0)),
        ..Heartbeat::default()
    };
    let mut a = with_heartbeat(SocketType::Dealer, hb, t0);
    let mut b = conn(SocketType::Router, t0);
    pump(&mut a, &mut b, t0).unwrap();
    events(&mut a);
    assert_eq!(a.poll_timeout(), Some(t0 + secs(1.0)));
    assert_eq!(b.poll_timeout(), None);

    // Too early: nothing.
    a.handle_timeout(t0 + secs(0.5)).unwrap();
    assert!(a.transmit().is_empty());

    // At the interval: a PING with no TTL and no context.
    let t1 = t0 + secs(1.0);
    a.handle_timeout(t1).unwrap();
    let ping = drain(&mut a);
    assert_eq!(ping, PING_NO_TTL);
    // Next deadlines: the next PING and the PONG deadline (timeout = interval).
    assert_eq!(a.poll_timeout(), Some(t1 + secs(1.0)));

    // The peer answers with PONG; that clears the PONG deadline.
    feed(&mut b, &ping, t1).unwrap();
    let pong = drain(&mut b);
    assert_eq!(pong, PONG_EMPTY);
    feed(&mut a, &pong, t1).unwrap();
    assert!(events(&mut a).is_empty());

    // Second PING at t0+2s; this time nobody answers.
    let t2 = t1 + secs(1.0);
    a.handle_timeout(t2).unwrap();
    assert_eq!(drain(&mut a), PING_NO_TTL);
    assert_eq!(a.poll_timeout(), Some(t2 + secs(1.0)));
    // interval + timeout after that PING (timeout defaults to the
    // interval), the peer is declared dead.
    a.handle_timeout(t2 + secs(0.999)).unwrap();
    assert!(a.transmit().is_empty());
    assert_eq!(
        a.handle_timeout(t2 + secs(1.0)),
        Err(ProtocolError::HeartbeatTimeout)
    );
    assert!(!a.is_active());
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(
        a.send_message(&Message::from("x")),
        Err(ProtocolError::HeartbeatTimeout)
    );
    assert_eq!(
        feed(&mut a, PONG_EMPTY, t2 + secs(2.0)),
        Err(ProtocolError::HeartbeatTimeout)
    );
}

#[test]
fn heartbeat_no_answer_times_out_at_interval_plus_timeout() {
    let t0 = Instant::now();
    let interval = secs(1.0);
    let timeout = secs(3.0);
    let hb = Heartbeat {
        interval: Some(interval),
        timeout: Some(timeout),
        ttl: None,
    };
    let mut a = with_heartbeat(SocketType::Push, hb, t0);
    let mut b = conn(SocketType::Pull, t0);
    pump(&mut a, &mut b, t0).unwrap();

    a.handle_timeout(t0 + interval).unwrap();
    assert_eq!(drain(&mut a), PING_NO_TTL);
    // Next PING is due before the PONG deadline.
    assert_eq!(a.poll_timeout(), Some(t0 + interval * 2));
    a.handle_timeout(t0 + interval * 2).unwrap();
    assert_eq!(drain(&mut a), PING_NO_TTL);
    a.handle_timeout(t0 + interval * 3).unwrap();
    // The PONG deadline is from the first unanswered PING.
    assert_eq!(a.poll_timeout(), Some(t0 + interval + timeout));
    a.handle_timeout(t0 + interval + timeout - secs(0.001))
        .unwrap();
    assert_eq!(
        a.handle_timeout(t0 + interval + timeout),
        Err(ProtocolError::HeartbeatTimeout)
    );
}

#[test]
fn any_traffic_counts_as_an_answer() {
    let t0 = Instant::now();
    let hb = Heartbeat {
        interval: Some(secs(1.0)),
        ..Heartbeat::default()
    };
    let mut a = with_heartbeat(SocketType::Pair, hb, t0);
    let mut b = conn(SocketType::Pair, t0);
    pump(&mut a, &mut b, t0).unwrap();
    a.handle_timeout(t0 + secs(1.0)).unwrap();
    drain(&mut a); // the PING is lost
    b.send_message(&Message::from("data")).unwrap();
    feed(&mut a, &drain(&mut b), t0 + secs(1.5)).unwrap();
    // The PONG deadline is gone; only the next PING is due.
    assert_eq!(a.poll_timeout(), Some(t0 + secs(2.0)));
    a.handle_timeout(t0 + secs(2.0)).unwrap();
    assert_eq!(drain(&mut a), PING_NO_TTL);
}

#[test]
fn heartbeat_ttl_is_sent_in_ping_and_enforced_by_peer() {
    let t0 = Instant::now();
    let hb = Heartbeat {
        interval: Some(secs(1.0)),
        ttl: Some(secs(2.5)),
        timeout: None,
    };
    let mut a = with_heartbeat(SocketType::Pair, hb, t0);
    let mut b = conn(SocketType::Pair, t0);
    pump(&mut a, &mut b, t0).unwrap();
    let t1 = t0 + secs(1.0);
    a.handle_timeout(t1).unwrap();
    let ping = drain(&mut a);
    // TTL of 2.5 s is 25 deciseconds.
    assert_eq!(ping, b"\x04\x07\x04PING\x00\x19");
    feed(&mut b, &ping, t1).unwrap();
    assert_eq!(drain(&mut b), PONG_EMPTY);
    assert_eq!(b.poll_timeout(), Some(t1 + secs(2.5)));
    b.handle_timeout(t1 + secs(2.4)).unwrap();
    assert_eq!(
        b.handle_timeout(t1 + secs(2.5)),
        Err(ProtocolError::HeartbeatTimeout)
    );
}

#[test]
fn peer_ping_with_ttl_crafted() {
    let t0 = Instant::now();
    let mut c = conn(SocketType::Pull, t0);
    let mut input = null_peer_prefix("PUSH");
    // PING, TTL 10 deciseconds (1 s), context "ab".
    input.extend_from_slice(b"\x04\x09\x04PING\x00\x0aab");
    feed(&mut c, &input, t0).unwrap();
    let out = drain(&mut c);
    // Our greeting, our READY, then PONG echoing the context.
    assert!(out.ends_with(b"\x04\x07\x04PONGab"));
    assert_eq!(c.poll_timeout(), Some(t0 + secs(1.0)));

    // Traffic half a second later moves the deadline.
    let t1 = t0 + secs(0.5);
    feed(&mut c, &frame(0, b"msg"), t1).unwrap();
    assert_eq!(c.poll_timeout(), Some(t1 + secs(1.0)));
    c.handle_timeout(t0 + secs(1.0)).unwrap();
    c.handle_timeout(t1 + secs(0.999)).unwrap();
    assert_eq!(
        c.handle_timeout(t1 + secs(1.0)),
        Err(ProtocolError::HeartbeatTimeout)
    );
}

#[test]
fn malformed_ping_is_an_error() {
    let t0 = Instant::now();
    let mut c = conn(SocketType::Pull, t0);
    let mut input = null_peer_prefix("PUSH");
    input.extend(command_frame(b"PING", b"\x00"));
    assert!(matches!(
        feed(&mut c, &input, t0),
        Err(ProtocolError::MalformedCommand { .. })
    ));
    let mut c = conn(SocketType::Pull, t0);
    let mut input = null_peer_prefix("PUSH");
    input.extend(command_frame(b"PING", &[0u8; 2 + 17]));
    assert!(matches!(
        feed(&mut c, &input, t0),
        Err(ProtocolError::MalformedCommand { .. })
    ));
}

#[test]
fn no_heartbeats_with_zmtp_3_0_peer() {
    let t0 = Instant::now();
    let hb = Heartbeat {
        interval: Some(secs(1.0)),
        ..Heartbeat::default()
    };
    let mut c = with_heartbeat(SocketType::Pull, hb, t0);
    let mut input = greeting_bytes(b"NULL", 3, 0, false);
    input.extend(ready_frame(&[("Socket-Type", b"PUSH")]));
    feed(&mut c, &input, t0).unwrap();
    assert!(c.is_active());
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(10.0)).unwrap();
    drain(&mut c);
    c.handle_timeout(t0 + secs(20.0)).unwrap();
    assert!(c.transmit().is_empty());
}

#[test]
fn handshake_timeout_without_greeting() {
    let t0 = Instant::now();
    let mut c = conn(SocketType::Rep, t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30.0)));
    c.handle_timeout(t0 + secs(29.999)).unwrap();
    // A partial greeting does not extend the deadline.
    feed(&mut c, &null_greeting()[..20], t0 + secs(10.0)).unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30.0)));
    assert_eq!(
        c.handle_timeout(t0 + secs(30.0)),
        Err(ProtocolError::HandshakeTimeout)
    );
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.error(), Some(&ProtocolError::HandshakeTimeout));
    assert_eq!(
        feed(&mut c, b"x", t0 + secs(31.0)),
        Err(ProtocolError::HandshakeTimeout)
    );
    // No ERROR for a timeout.
    assert!(!contains(&drain(&mut c), b"ERROR"));
}

#[test]
fn handshake_timeout_after_greeting_and_custom_or_none() {
    let t0 = Instant::now();
    // Greeting arrived but READY never does.
    let mut c = conn(SocketType::Rep, t0);
    feed(&mut c, &null_greeting(), t0 + secs(1.0)).unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + secs(30.0)));
    assert_eq!(
        c.handle_timeout(t0 + secs(30.0)),
        Err(ProtocolError::HandshakeTimeout)
    );

    let mut cfg = Config::new(SocketType::Rep);
    cfg.handshake_timeout = Some(secs(2.0));
    let c = Connection::new(cfg.clone(), t0);
    assert_eq!(c.poll_timeout(), Some(t0 + secs(2.0)));

    cfg.handshake_timeout = None;
    let mut c = Connection::new(cfg, t0);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t0 + secs(1e6)).unwrap();
}

#[test]
fn completed_handshake_clears_handshake_deadline() {
    let t0 = Instant::now();
    let (mut a, _b) = connected(SocketType::Req, SocketType::Rep, t0);
    assert_eq!(a.poll_timeout(), None);
    a.handle_timeout(t0 + secs(60.0)).unwrap();
    assert!(a.is_active());
}

// ---------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------

#[test]
fn subscribe_and_cancel_messages_between_engines() {
    let now = Instant::now();
    for (sub_t, pub_t) in [
        (SocketType::Sub, SocketType::Pub),
        (SocketType::Xsub, SocketType::Xpub),
        (SocketType::Sub, SocketType::Xpub),
    ] {
        let (mut sub, mut publ) = connected(sub_t, pub_t, now);
        sub.send_subscribe(b"topic").unwrap();
        sub.send_subscribe(b"").unwrap();
        sub.send_cancel(b"topic").unwrap();
        let wire = drain(&mut sub);
        assert_eq!(wire, b"\x00\x06\x01topic\x00\x01\x01\x00\x06\x00topic");
        feed(&mut publ, &wire, now).unwrap();
        assert_eq!(
            events(&mut publ),
            vec![
                Event::Subscribe(Bytes::from_static(b"topic")),
                Event::Subscribe(Bytes::new()),
                Event::Cancel(Bytes::from_static(b"topic")),
            ]
        );
    }
}

#[test]
fn subscribe_command_zmtp_3_1() {
    let now = Instant::now();
    let mut publ = conn(SocketType::Pub, now);
    let mut input = null_peer_prefix("SUB");
    // SUBSCRIBE: body = 1 + 9 + 5 = 15.
    input.extend_from_slice(b"\x04\x0f\x09SUBSCRIBEtopic");
    // CANCEL: body = 1 + 6 + 5 = 12.
    input.extend_from_slice(b"\x04\x0c\x06CANCELtopic");
    // SUBSCRIBE with an empty prefix: everything.
    input.extend_from_slice(b"\x04\x0a\x09SUBSCRIBE");
    feed(&mut publ, &input, now).unwrap();
    let evs = events(&mut publ);
    assert!(matches!(evs[0], Event::HandshakeComplete(_)));
    assert_eq!(
        &evs[1..],
        &[
            Event::Subscribe(Bytes::from_static(b"topic")),
            Event::Cancel(Bytes::from_static(b"topic")),
            Event::Subscribe(Bytes::new()),
        ]
    );
}

#[test]
fn subscriptions_only_reported_to_pub_sides() {
    let now = Instant::now();
    // A SUB (or PULL) receiving SUBSCRIBE commands ignores them, and a
    // PULL receiving "\x01topic" sees an ordinary message.
    let mut sub = conn(SocketType::Sub, now);
    let mut input = null_peer_prefix("PUB");
    input.extend_from_slice(b"\x04\x0f\x09SUBSCRIBEtopic");
    feed(&mut sub, &input, now).unwrap();
    assert!(matches!(
        events(&mut sub).as_slice(),
        [Event::HandshakeComplete(_)]
    ));

    let mut pull = conn(SocketType::Pull, now);
    let mut input = null_peer_prefix("PUSH");
    input.extend_from_slice(b"\x00\x06\x01topic");
    feed(&mut pull, &input, now).unwrap();
    assert_eq!(messages(&mut pull), vec![Message::from(&b"\x01topic"[..])]);
}

#[test]
fn pub_side_other_messages_are_messages() {
    let now = Instant::now();
    let mut xpub = conn(SocketType::Xpub, now);
    let mut input = null_peer_prefix("XSUB");
    // Multipart starting with \x01 and a frame starting with \x02 are not subscriptions.
    input.extend_from_slice(b"\x01\x02\x01a\x00\x01b");
    input.extend_from_slice(b"\x00\x02\x02x");
    input.extend_from_slice(b"\x00\x00");
    feed(&mut xpub, &input, now).unwrap();
    assert_eq!(
        messages(&mut xpub),
        vec![
            Message::from_iter([&b"\x01a"[..], b"b"]),
            Message::from(&b"\x02x"[..]),
            Message::from(Bytes::new()),
        ]
    );
}

#[test]
fn unknown_commands_are_ignored_when_active() {
    let now = Instant::now();
    let mut c = conn(SocketType::Pull, now);
    let mut input = null_peer_prefix("PUSH");
    input.extend(command_frame(b"X-FUTURE", b"whatever"));
    input.extend(command_frame(b"PONG", b"ctx"));
    input.extend(frame(0, b"after"));
    feed(&mut c, &input, now).unwrap();
    assert_eq!(messages(&mut c), vec![Message::from("after")]);

    // An ERROR while active ends the connection.
    assert_eq!(
        feed(&mut c, &command_frame(b"ERROR", b"\x03bye"), now),
        Err(ProtocolError::PeerError("bye".into()))
    );
}

// ---------------------------------------------------------------------------
// NULL with authentication
// ---------------------------------------------------------------------------

fn auth_pair(now: Instant) -> (Connection, Connection) {
    let server = Connection::with_mechanism(
        Config::new(SocketType::Router),
        Box::new(Null::with_authentication()),
        now,
    );
    let mut cfg = Config::new(SocketType::Dealer);
    cfg.identity = Bytes::from_static(b"client-1");
    let client = Connection::new(cfg, now);
    (server, client)
}

#[test]
fn null_authentication_allow() {
    let now = Instant::now();
    let (mut server, mut client) = auth_pair(now);
    pump(&mut server, &mut client, now).unwrap();
    assert!(!server.is_active() && !client.is_active());
    let evs = events(&mut server);
    let req = match evs.as_slice() {
        [Event::Authenticate(req)] => req.clone(),
        other => panic!("expected Authenticate, got {other:?}"),
    };
    assert_eq!(req.mechanism, "NULL");
    assert!(req.credentials.is_empty());
    assert_eq!(
        req.peer_metadata.get("Socket-Type").unwrap().as_ref(),
        b"DEALER"
    );
    assert_eq!(
        req.peer_metadata.get("Identity").unwrap().as_ref(),
        b"client-1"
    );
    // Still bound by the handshake deadline while the application decides.
    assert_eq!(server.poll_timeout(), Some(now + secs(30.0)));

    server
        .handle_auth_reply(
            AuthReply::Allow {
                user_id: "alice".into(),
            },
            now,
        )
        .unwrap();
    pump(&mut server, &mut client, now).unwrap();
    assert!(server.is_active() && client.is_active());
    let info = server.peer().unwrap().clone();
    assert_eq!(info.user_id.as_deref(), Some("alice"));
    assert_eq!(info.identity.as_deref(), Some(&b"client-1"[..]));
    assert_eq!(
        events(&mut server),
        vec![Event::HandshakeComplete(info.clone())]
    );
    assert_eq!(client.peer().unwrap().user_id, None);

    // Messages flow.
    client.send_message(&Message::from("hi")).unwrap();
    pump(&mut server, &mut client, now).unwrap();
    assert_eq!(messages(&mut server), vec![Message::from("hi")]);

    // A second answer is refused.
    assert!(matches!(
        server.handle_auth_reply(
            AuthReply::Allow {
                user_id: "x".into()
            },
            now
        ),
        Err(ProtocolError::Handshake { .. })
    ));
}

#[test]
fn null_authentication_deny() {
    let now = Instant::now();
    let (mut server, mut client) = auth_pair(now);
    pump(&mut server, &mut client, now).unwrap();
    assert!(matches!(
        events(&mut server).as_slice(),
        [Event::Authenticate(_)]
    ));
    let err = server
        .handle_auth_reply(
            AuthReply::Deny {
                status: 400,
                reason: "go away".into(),
            },
            now,
        )
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::AuthDenied {
            status: 400,
            reason: "go away".into()
        }
    );
    assert!(!server.is_active());
    let out = drain(&mut server);
    // ERROR: body = 1 + 5 + 1 + 7 = 14. Exactly one ERROR, no READY.
    assert_eq!(out, b"\x04\x0e\x05ERROR\x07go away");
    assert_eq!(
        feed(&mut client, &out, now),
        Err(ProtocolError::PeerError("go away".into()))
    );
    assert!(!client.is_active());
    assert_eq!(
        client.error(),
        Some(&ProtocolError::PeerError("go away".into()))
    );
}

#[test]
fn auth_reply_without_request_or_input_while_pending() {
    let now = Instant::now();
    let (mut server, mut client) = auth_pair(now);
    assert!(matches!(
        server.handle_auth_reply(
            AuthReply::Allow {
                user_id: "x".into()
            },
            now
        ),
        Err(ProtocolError::Handshake { .. })
    ));
    pump(&mut server, &mut client, now).unwrap();
    // A command while the decision is pending is a protocol violation.
    assert!(matches!(
        feed(&mut server, &command_frame(b"PING", b"\x00\x00"), now),
        Err(ProtocolError::UnexpectedCommand { .. })
    ));
}

#[test]
fn authentication_pending_times_out() {
    let now = Instant::now();
    let (mut server, mut client) = auth_pair(now);
    pump(&mut server, &mut client, now).unwrap();
    assert_eq!(
        server.handle_timeout(now + secs(30.0)),
        Err(ProtocolError::HandshakeTimeout)
    );
    assert!(server
        .handle_auth_reply(
            AuthReply::Allow {
                user_id: "late".into()
            },
            now
        )
        .is_err());
}

#[test]
fn close_with_error_during_handshake_sends_error() {
    let now = Instant::now();
    let mut c = conn(SocketType::Pull, now);
    feed(&mut c, &null_greeting(), now).unwrap();
    drain(&mut c);
    c.close_with_error(ProtocolError::Handshake {
        mechanism: "NULL",
        reason: "refused by policy".into(),
    });
    let out = drain(&mut c);
    assert!(contains(&out, b"\x05ERROR"));
    assert!(contains(&out, b"refused by policy"));
    assert!(c.error().is_some());
    // A second close changes nothing.
    c.close_with_error(ProtocolError::NotReady);
    assert!(matches!(c.error(), Some(ProtocolError::Handshake { .. })));
    assert!(c.transmit().is_empty());
}
