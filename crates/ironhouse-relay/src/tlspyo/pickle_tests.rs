//! Tests of the data-only pickle reader and the pickle writers. The reader
//! is driven through the frame decoders of [`super::super::wire`], its only
//! users, with hand-made opcode sequences.

use super::*;
use crate::tlspyo::wire::{decode_endpoint_frame, decode_relay_frame, EndpointFrame};

/// Builds a protocol-4 body by hand from opcodes.
fn p4(ops: &[u8]) -> Bytes {
    let mut v = vec![0x80, 4];
    v.extend_from_slice(ops);
    Bytes::from(v)
}

fn groups(g: &[&str]) -> Vec<String> {
    g.iter().map(|s| s.to_string()).collect()
}

#[test]
fn other_code_opcodes_are_refused() {
    // Hand-made: each refused opcode right after PROTO 4.
    for (code, name) in [
        (b'R', "REDUCE"),
        (b'b', "BUILD"),
        (b'i', "INST"),
        (b'o', "OBJ"),
        (0x81, "NEWOBJ"),
        (0x92, "NEWOBJ_EX"),
        (0x93, "STACK_GLOBAL"),
        (b'Q', "BINPERSID"),
        (0x82, "EXT"),
    ] {
        let body = Bytes::from(vec![0x80, 4, code, b'.']);
        match decode_endpoint_frame(&body).unwrap_err() {
            WireError::BadPickle(m) => assert!(m.contains(name), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn malformed_pickles_are_errors_not_panics() {
    let cases: &[&[u8]] = &[
        b"",                                            // nothing
        &[0x80],                                        // PROTO without version
        &[0x80, 9, b'N', b'.'],                         // unknown protocol
        &[0x80, 4, b'N'],                               // no STOP
        &[0x80, 4, b'.'],                               // STOP on empty stack
        &[0x80, 4, b'N', b'N', b'.'],                   // two values left
        &[0x80, 4, b'N', b'.', b'N'],                   // trailing bytes
        &[0x80, 4, b'(', b'.'],                         // STOP on a MARK
        &[0x80, 4, b't', b'.'],                         // TUPLE without MARK
        &[0x80, 4, 0x87, b'.'],                         // TUPLE3 on empty stack
        &[0x80, 4, b'h', 5, b'.'],                      // BINGET of nothing
        &[0x80, 4, b'N', b'a', b'.'],                   // APPEND to nothing
        &[0x80, 4, b'N', b'N', b'a', b'.'],             // APPEND to None
        &[0x80, 4, b'N', b'N', b'N', b's', b'.'],       // SETITEM on None
        &[0x80, 4, 0x8c, 5, b'a', b'.'],                // truncated str
        &[0x80, 4, 0x8c, 2, 0xc3, 0x28, b'.'],          // invalid UTF-8
        &[0x80, 4, b'B', 0xff, 0xff, 0xff, 0xff, b'.'], // BINBYTES past the end
        &[
            0x80, 4, 0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'.',
        ], // BINBYTES8 huge
        &[
            0x80, 4, 0x95, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, b'N', b'.',
        ], // FRAME huge
        &[0x80, 4, 0x8b, 0xff, 0xff, 0xff, 0xff, b'.'], // LONG4 negative length
        &[0x80, 4, b'(', b'N', b'd', b'.'],             // DICT with odd items
    ];
    for c in cases {
        let e = decode_endpoint_frame(&Bytes::copy_from_slice(c)).unwrap_err();
        assert!(matches!(e, WireError::BadPickle(_)), "{c:?}: {e:?}");
        let e = decode_relay_frame(&Bytes::copy_from_slice(c)).unwrap_err();
        assert!(matches!(e, WireError::BadPickle(_)), "{c:?}: {e:?}");
    }
}

#[test]
fn memo_references_share_instead_of_copying() {
    // l = [None]; then 40 times: l = [l, l] through BINGET. A copying
    // unpickler would build 2^40 values; this one builds about 80.
    let mut ops = vec![b']', 0x94, b'N', b'a'];
    for i in 0..40u8 {
        // POP the previous list (it stays in the memo as i), make list i+1
        // and append (list_i, list_i) to it.
        ops.extend_from_slice(&[b'0', b']', 0x94, b'h', i, b'h', i, 0x86, b'a']);
    }
    ops.push(b'.');
    // Decodes (to a list, so not a frame), quickly and without blow-up.
    let e = decode_endpoint_frame(&p4(&ops)).unwrap_err();
    assert!(matches!(e, WireError::UnexpectedShape(m) if m.contains("list")));
}

#[test]
fn value_count_is_capped() {
    let mut ops = vec![b'('];
    ops.extend(std::iter::repeat_n(b'N', MAX_PICKLE_VALUES + 1));
    ops.extend_from_slice(b"t.");
    let e = decode_endpoint_frame(&p4(&ops)).unwrap_err();
    assert!(matches!(e, WireError::BadPickle(m) if m.contains("values")));
}

#[test]
fn mutation_after_memoize_is_seen_through_the_memo() {
    // HELLO whose groups list is memoized empty, then filled, then the memo
    // reference is what ends up in the tuple (Python semantics: same object).
    let mut ops = vec![b']', 0x94, b'(', 0x8c, 1, b'x', 0x8c, 1, b'y', b'e', b'0'];
    // stack: (empty) ; memo[0] = the list ['x','y']
    ops.extend_from_slice(&[b'(', b'K', 4, 0x8c, 5]);
    ops.extend_from_slice(b"HELLO");
    ops.extend_from_slice(&[b'N', b'h', 0, b't', b'.']);
    assert_eq!(
        decode_endpoint_frame(&p4(&ops)).unwrap(),
        EndpointFrame::Hello {
            stamp: 4,
            groups: groups(&["x", "y"])
        }
    );
}

#[test]
fn sparse_memo_keys_work_and_huge_ones_are_refused() {
    // groups = ('g', 'g') with 'g' put at memo key 1000 (LONG_BINPUT/LONG_BINGET).
    let mut ops = vec![b'(', b'K', 1, 0x8c, 5];
    ops.extend_from_slice(b"HELLO");
    ops.extend_from_slice(&[b'N', 0x8c, 1, b'g', b'r']);
    ops.extend_from_slice(&1000u32.to_le_bytes());
    ops.push(b'j');
    ops.extend_from_slice(&1000u32.to_le_bytes());
    ops.extend_from_slice(&[0x86, b't', b'.']);
    assert_eq!(
        decode_endpoint_frame(&p4(&ops)).unwrap(),
        EndpointFrame::Hello {
            stamp: 1,
            groups: groups(&["g", "g"])
        }
    );
    // A key past the value cap is refused instead of growing the memo.
    let mut ops = vec![b'N', b'r'];
    ops.extend_from_slice(&u32::MAX.to_le_bytes());
    ops.push(b'.');
    assert!(matches!(
        decode_endpoint_frame(&p4(&ops)).unwrap_err(),
        WireError::BadPickle(m) if m.contains("memo key")
    ));
}

#[test]
fn writers_match_their_lengths_and_read_back() {
    let ints = [
        0i64,
        1,
        -1,
        255,
        256,
        65_535,
        65_536,
        i32::MAX as i64,
        i32::MIN as i64,
        i32::MAX as i64 + 1,
        -(1 << 40),
        i64::MAX,
        i64::MIN,
    ];
    for v in ints {
        let mut out = vec![op::PROTO, 4];
        put_int(v, &mut out);
        assert_eq!(out.len() - 2, int_len(v), "{v}");
        out.push(op::STOP);
        let arena = Unpickler::run(&out).unwrap();
        assert_eq!(arena.int_of(arena.root, "v").unwrap(), v);
    }
    for stamp in [0u64, 255, 1 << 31, i64::MAX as u64, 1 << 63, u64::MAX] {
        let mut out = vec![op::PROTO, 4];
        put_stamp(stamp, &mut out);
        assert_eq!(out.len() - 2, stamp_len(stamp), "{stamp}");
        out.push(op::STOP);
        let arena = Unpickler::run(&out).unwrap();
        match arena.node(arena.root) {
            Node::Int(n) => assert_eq!(*n, i128::from(stamp)),
            other => panic!("{stamp}: {other:?}"),
        }
    }
    for n in [0usize, 255, 256, 70_000] {
        let s = "é".repeat(n / 2) + &"x".repeat(n % 2);
        let mut out = vec![op::PROTO, 4];
        put_str(&s, &mut out);
        assert_eq!(out.len() - 2, str_len(&s), "{n}");
        out.push(op::STOP);
        let arena = Unpickler::run(&out).unwrap();
        assert_eq!(arena.str_of(arena.root, "s").unwrap(), s);

        let b = vec![0xa5u8; n];
        let mut out = vec![op::PROTO, 4];
        put_bytes(&b, &mut out);
        assert_eq!(out.len() - 2, bytes_len(&b), "{n}");
        out.push(op::STOP);
        let body = Bytes::from(out);
        let arena = Unpickler::run(&body).unwrap();
        assert_eq!(arena.bytes_of(&body, arena.root, "b").unwrap(), b);
    }
}
