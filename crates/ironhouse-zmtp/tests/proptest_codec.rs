//! Property tests: message round trips through two engines with the stream
//! cut anywhere, metadata encoding, and robustness against arbitrary input.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ironhouse_zmtp::command::RawCommand;
use ironhouse_zmtp::frame::{encode_header, peek_header};
use ironhouse_zmtp::testing::pump;
use ironhouse_zmtp::{
    Config, Connection, Event, Heartbeat, Message, Metadata, ProtocolError, SocketType,
};
use proptest::prelude::*;
use proptest::sample::Index;

fn drain(c: &mut Connection) -> Vec<u8> {
    c.transmit().take_all().concat()
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Splits `data` at the given (sorted, deduplicated) cut points.
fn chunks<'a>(data: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// Feeds `chunks` one by one into `c` through a persistent read buffer,
/// collecting events; stops at the first error.
fn feed_chunks(
    c: &mut Connection,
    parts: &[&[u8]],
    now: Instant,
) -> (Vec<Event>, Result<(), ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut evs = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        let r = c.handle_input(&mut buf, now);
        evs.extend(events(c));
        if r.is_err() {
            return (evs, r);
        }
    }
    (evs, Ok(()))
}

/// Socket-type pairs whose receiving engine reports every message as a
/// message (no subscription interpretation).
const PAIRS: [(SocketType, SocketType); 4] = [
    (SocketType::Push, SocketType::Pull),
    (SocketType::Pair, SocketType::Pair),
    (SocketType::Dealer, SocketType::Router),
    (SocketType::Req, SocketType::Rep),
];

/// The complete byte stream a sender of `pair.0` produces for `msgs`,
/// greeting and READY included.
fn sender_stream(pair: (SocketType, SocketType), msgs: &[Message], now: Instant) -> Vec<u8> {
    let mut a = Connection::new(Config::new(pair.0), now);
    let mut b = Connection::new(Config::new(pair.1), now);
    // Record what a sends while handshaking.
    let mut wire = drain(&mut a);
    let mut b_in = BytesMut::from(&wire[..]);
    b.handle_input(&mut b_in, now).unwrap();
    let mut a_in = BytesMut::from(&drain(&mut b)[..]);
    a.handle_input(&mut a_in, now).unwrap();
    wire.extend(drain(&mut a));
    assert!(a.is_active());
    for m in msgs {
        a.send_message(m).unwrap();
    }
    wire.extend(drain(&mut a));
    wire
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 1..=8)
        .prop_map(|frames| frames.into_iter().collect())
}

fn arb_metadata_props() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(
        ("[!-~]{1,40}", prop::collection::vec(any::<u8>(), 0..300)),
        0..8,
    )
}

proptest! {
    #[test]
    fn messages_round_trip_with_arbitrary_cuts(
        msgs in prop::collection::vec(arb_message(), 1..6),
        cuts in prop::collection::vec(any::<Index>(), 0..40),
        pair in 0..PAIRS.len(),
    ) {
        let now = Instant::now();
        let pair = PAIRS[pair];
        let wire = sender_stream(pair, &msgs, now);
        let mut rx = Connection::new(Config::new(pair.1), now);
        let (evs, r) = feed_chunks(&mut rx, &chunks(&wire, &cuts), now);
        prop_assert_eq!(r, Ok(()));
        prop_assert!(rx.is_active());
        prop_assert!(matches!(evs.first(), Some(Event::HandshakeComplete(_))));
        let got: Vec<Message> = evs
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn messages_round_trip_both_ways_through_pump(
        a_msgs in prop::collection::vec(arb_message(), 0..4),
        b_msgs in prop::collection::vec(arb_message(), 0..4),
    ) {
        let now = Instant::now();
        let mut a = Connection::new(Config::new(SocketType::Dealer), now);
        let mut b = Connection::new(Config::new(SocketType::Dealer), now);
        pump(&mut a, &mut b, now).unwrap();
        for m in &a_msgs {
            a.send_message(m).unwrap();
        }
        for m in &b_msgs {
            b.send_message(m).unwrap();
        }
        pump(&mut a, &mut b, now).unwrap();
        let msgs = |c: &mut Connection| -> Vec<Message> {
            events(c)
                .into_iter()
                .filter_map(|e| match e {
                    Event::Message(m) => Some(m),
                    _ => None,
                })
                .collect()
        };
        prop_assert_eq!(msgs(&mut b), a_msgs);
        prop_assert_eq!(msgs(&mut a), b_msgs);
    }

    #[test]
    fn max_message_size_is_exact(
        msgs in prop::collection::vec(arb_message(), 1..6),
        limit in 0u64..6000,
        cuts in prop::collection::vec(any::<Index>(), 0..20),
    ) {
        let now = Instant::now();
        let pair = (SocketType::Push, SocketType::Pull);
        let wire = sender_stream(pair, &msgs, now);
        let mut cfg = Config::new(SocketType::Pull);
        cfg.max_message_size = Some(limit);
        let mut rx = Connection::new(cfg, now);
        let (evs, r) = feed_chunks(&mut rx, &chunks(&wire, &cuts), now);
        let got: Vec<Message> = evs
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        let fits = msgs.iter().take_while(|m| m.size() as u64 <= limit).count();
        prop_assert_eq!(&got[..], &msgs[..fits]);
        if fits == msgs.len() {
            prop_assert_eq!(r, Ok(()));
        } else {
            match r {
                Err(ProtocolError::MessageTooLarge { size, limit: l }) => {
                    prop_assert_eq!(l, limit);
                    prop_assert!(size > limit);
                    prop_assert!(size <= msgs[fits].size() as u64);
                }
                other => prop_assert!(false, "expected MessageTooLarge, got {:?}", other),
            }
        }
    }

    #[test]
    fn metadata_round_trip(props in arb_metadata_props()) {
        let mut md = Metadata::new();
        // Expected contents: names compare case-insensitively, the last value wins,
        // the first spelling and position stay.
        let mut want: Vec<(String, Vec<u8>)> = Vec::new();
        for (n, v) in &props {
            md.insert(n, Bytes::from(v.clone()));
            match want.iter_mut().find(|(wn, _)| wn.eq_ignore_ascii_case(n)) {
                Some(slot) => slot.1 = v.clone(),
                None => want.push((n.clone(), v.clone())),
            }
        }
        let mut hand = Vec::new();
        for (n, v) in &want {
            hand.push(n.len() as u8);
            hand.extend_from_slice(n.as_bytes());
            hand.extend_from_slice(&(v.len() as u32).to_be_bytes());
            hand.extend_from_slice(v);
        }
        let mut out = BytesMut::new();
        md.encode(&mut out);
        prop_assert_eq!(&out[..], &hand[..]);
        prop_assert_eq!(md.encoded_len(), hand.len());
        let back = Metadata::decode(&out, "READY").unwrap();
        prop_assert_eq!(&back, &md);
        for (n, v) in &want {
            prop_assert_eq!(back.get(&n.to_ascii_lowercase()).map(|b| b.to_vec()), Some(v.clone()));
        }
    }

    #[test]
    fn metadata_decode_arbitrary_is_consistent(data in prop::collection::vec(any::<u8>(), 0..512)) {
        // Never panics; whatever decodes re-encodes to the same bytes.
        if let Ok(md) = Metadata::decode(&data, "READY") {
            let mut out = BytesMut::new();
            md.encode(&mut out);
            prop_assert_eq!(&out[..], &data[..]);
        }
    }

    #[test]
    fn frame_header_round_trip(len in prop_oneof![0usize..600, any::<u32>().prop_map(|x| x as usize)], flags in 0u8..8) {
        let mut out = BytesMut::new();
        encode_header(flags, len, &mut out);
        if flags & 5 == 5 {
            // COMMAND with MORE is not a valid frame.
            prop_assert!(peek_header(&out).is_err());
            return Ok(());
        }
        let h = peek_header(&out).unwrap().unwrap();
        prop_assert_eq!(h.len, len as u64);
        prop_assert_eq!(h.header_len, out.len());
        prop_assert_eq!(h.header_len, if len <= 255 { 2 } else { 9 });
        prop_assert_eq!(h.more(), flags & 1 != 0);
        prop_assert_eq!(h.command(), flags & 4 != 0);
        // Every strict prefix needs more bytes.
        for n in 0..out.len() {
            prop_assert_eq!(peek_header(&out[..n]), Ok(None));
        }
    }

    #[test]
    fn header_and_command_parsers_never_panic(data in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some(h)) = peek_header(&data) {
            prop_assert!(h.header_len <= data.len());
        }
        if let Ok(cmd) = RawCommand::parse(&data) {
            prop_assert_eq!(1 + cmd.name.len() + cmd.data.len(), data.len());
            prop_assert!(!cmd.name.is_empty());
        }
    }

    #[test]
    fn byte_soup_never_panics(
        data in prop::collection::vec(any::<u8>(), 0..4096),
        prefix in 0usize..3,
        socket in 0..SocketType::ALL.len(),
        limit in prop::option::of(0u64..5000),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        soup(&data, prefix, socket, limit, &cuts)?;
    }

    #[test]
    fn frame_soup_never_panics(
        frames in prop::collection::vec(
            (
                0u8..8,
                prop_oneof![
                    Just(&b"READY"[..]), Just(&b"ERROR"[..]), Just(&b"PING"[..]),
                    Just(&b"PONG"[..]), Just(&b"SUBSCRIBE"[..]), Just(&b"CANCEL"[..]),
                    Just(&b"MESSAGE"[..]), Just(&b"HELLO"[..]), Just(&b""[..]),
                ],
                prop::collection::vec(any::<u8>(), 0..300),
            ),
            0..12,
        ),
        greeting_prefix in any::<bool>(),
        socket in 0..SocketType::ALL.len(),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        // Structured input: well-framed frames whose flags and contents are
        // arbitrary, so the fuzzing reaches commands and traffic.
        let mut data = Vec::new();
        if greeting_prefix {
            data.extend_from_slice(&ironhouse_zmtp::greeting::encode("NULL", false));
        }
        for (flags, name, body) in &frames {
            let mut b = Vec::new();
            if flags & 4 != 0 {
                b.push(name.len() as u8);
                b.extend_from_slice(name);
            }
            b.extend_from_slice(body);
            let mut hdr = BytesMut::new();
            encode_header(*flags, b.len(), &mut hdr);
            data.extend_from_slice(&hdr);
            data.extend_from_slice(&b);
        }
        soup(&data, 0, socket, Some(1000), &cuts)?;
    }
}

/// Feeds `data` (after an optional valid prefix) to a fresh connection and
/// exercises every entry point afterwards. Must never panic.
fn soup(
    data: &[u8],
    prefix: usize,
    socket: usize,
    limit: Option<u64>,
    cuts: &[Index],
) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let t = SocketType::ALL[socket];
    let mut cfg = Config::new(t);
    cfg.max_message_size = limit;
    cfg.heartbeat = Heartbeat {
        interval: Some(Duration::from_secs(1)),
        ttl: Some(Duration::from_secs(3)),
        timeout: None,
    };
    let mut c = Connection::new(cfg, t0);
    let mut input = Vec::new();
    if prefix >= 1 {
        input.extend_from_slice(&ironhouse_zmtp::greeting::encode("NULL", false));
    }
    if prefix >= 2 {
        // A READY from a compatible peer type (or PAIR if none fits).
        let peer = SocketType::ALL
            .into_iter()
            .find(|p| t.is_compatible(*p))
            .unwrap_or(SocketType::Pair);
        let mut md = Metadata::new();
        md.insert("Socket-Type", peer.as_str());
        let mut out = BytesMut::new();
        ironhouse_zmtp::command::write_ready(&mut out, &md);
        input.extend_from_slice(&out);
    }
    input.extend_from_slice(data);
    let mut buf = BytesMut::new();
    let mut failed: Option<ProtocolError> = None;
    for (i, part) in chunks(&input, cuts).into_iter().enumerate() {
        buf.extend_from_slice(part);
        let now = t0 + Duration::from_millis(100 * i as u64);
        let r = c.handle_input(&mut buf, now);
        events(&mut c);
        if let Some(prev) = &failed {
            // Once failed, always failed with the same error.
            prop_assert_eq!(r, Err(prev.clone()));
        } else if let Err(e) = r {
            prop_assert_eq!(c.error(), Some(&e));
            prop_assert!(!c.is_active());
            failed = Some(e);
        }
        let _ = c.bytes_wanted();
        drain(&mut c);
    }
    let _ = c.poll_timeout();
    let _ = c.handle_timeout(t0 + Duration::from_secs(2));
    let _ = c.send_message(&Message::from("x"));
    let _ = c.send_subscribe(b"t");
    let _ = c.handle_timeout(t0 + Duration::from_secs(10_000));
    prop_assert_eq!(c.poll_timeout(), None);
    events(&mut c);
    drain(&mut c);
    Ok(())
}
