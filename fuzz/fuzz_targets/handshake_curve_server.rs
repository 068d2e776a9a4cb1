//! A CURVE server (fixed long-term key pair, deterministic short-term keys
//! and cookies) against input playing the client. Nothing may panic, and
//! what the server writes must be right.
//!
//! Input layout: [mode, socket, id-len, id..., auth..., per mode...]
//! (see `ironhouse_fuzz::Setup`). Modes:
//! * 0 raw: a valid client greeting, then bytes.
//! * 1 forged: the input is the client, sealing its own HELLO and INITIATE
//!   with real boxes, so it reaches box opening, the nonce, cookie and vouch
//!   checks and INITIATE metadata; then boxed traffic. A flags word chooses
//!   every deviation from a valid handshake (all zero: the valid one).
//! * 2 relay: a real CurveClient completes the handshake; then its traffic
//!   is tampered with on the way in.
#![no_main]

use std::time::Instant;

use ironhouse_fuzz::*;
use ironhouse_zmtp::mechanism::{CurveClient, CurveServer};
use ironhouse_zmtp::{CurvePublicKey, Metadata};
use libfuzzer_sys::fuzz_target;

// Flags of the forged mode: what deviates from a valid client.
const OWN_SHORT_KEY: u16 = 1 << 0;
const HELLO_VERSION: u16 = 1 << 1;
const HELLO_NONCE: u16 = 1 << 2;
const HELLO_SIGNATURE: u16 = 1 << 3;
const HELLO_DAMAGE: u16 = 1 << 4;
const LONG_KEY: u16 = 1 << 5;
const VOUCH_CONTENT: u16 = 1 << 6;
const COOKIE_DAMAGE: u16 = 1 << 7;
const INITIATE_NONCE: u16 = 1 << 8;
const RAW_METADATA: u16 = 1 << 9;
const INITIATE_DAMAGE: u16 = 1 << 10;
const VOUCH_NONCE: u16 = 1 << 11;
const SPLIT: u16 = 1 << 12;
const PADDING: u16 = 1 << 13;
const ANY_SOCKET: u16 = 1 << 14;
const STRAY: u16 = 1 << 15;
/// Deviations after which a handshake may still succeed.
const HARMLESS: u16 = OWN_SHORT_KEY | VOUCH_NONCE | SPLIT | PADDING;

fn server(setup: &Setup, now: Instant) -> Driven {
    let mech = CurveServer::with_random(server_keys().clone(), CounterRandom::boxed(TARGET_SEED));
    Driven::new(setup.config(), Box::new(mech), now, setup.auth.clone())
}

fn forged(setup: &Setup, input: &mut Input<'_>, now: Instant) {
    let flags = input.u16();
    let has = |f: u16| flags & f != 0;
    let mut srv = server(setup, now);
    let server_pub = server_keys().public.0;

    // HELLO: version, padding, C', short nonce, Box[64 zeros](C'->S).
    let short_secret = if has(OWN_SHORT_KEY) {
        input.array()
    } else {
        HARNESS_SHORT_SECRET
    };
    let short_pub = public_of(&short_secret);
    let version: [u8; 2] = if has(HELLO_VERSION) {
        input.array()
    } else {
        [1, 0]
    };
    let hello_n = if has(HELLO_NONCE) { input.u64() } else { 1 };
    let signature: [u8; 64] = if has(HELLO_SIGNATURE) {
        input.array()
    } else {
        [0; 64]
    };
    let padding: [u8; 72] = if has(PADDING) { input.array() } else { [0; 72] };
    let hello_box = HarnessBox::new(&server_pub, &short_secret);
    let mut hello = version.to_vec();
    hello.extend_from_slice(&padding);
    hello.extend_from_slice(&short_pub);
    hello.extend_from_slice(&hello_n.to_be_bytes());
    hello.extend_from_slice(&hello_box.seal(
        b"CurveZMQHELLO---",
        &hello_n.to_be_bytes(),
        &signature,
    ));
    if has(HELLO_DAMAGE) {
        damage(&mut hello, input);
    }
    let mut wire = setup.peer_greeting("CURVE", false).to_vec();
    wire.extend_from_slice(&command_frame(b"HELLO", &hello));
    let at = if has(SPLIT) {
        usize::from(input.u16())
    } else {
        wire.len()
    };
    if !srv.feed_split(&wire, at) {
        return srv.wind_down();
    }
    take_greeting(&mut srv.out, "CURVE", true);
    let Some((name, welcome)) = take_command(&mut srv.out) else {
        // Only a damaged HELLO can leave the server waiting for more.
        assert!(has(HELLO_DAMAGE), "no WELCOME for a whole HELLO");
        return srv.wind_down();
    };
    assert_eq!(name, b"WELCOME");
    assert_eq!(welcome.len(), 160);
    let plain = hello_box
        .open(b"WELCOME-", &welcome[..16], &welcome[16..])
        .expect("WELCOME opens for the client that sent HELLO");
    let server_short: [u8; 32] = plain[..32].try_into().expect("32 bytes");
    let mut cookie = plain[32..].to_vec();
    assert_eq!(cookie.len(), 96);

    // INITIATE: cookie, short nonce, Box[C + vouch + metadata](C'->S').
    let session = HarnessBox::new(&server_short, &short_secret);
    let long = client_keys();
    let long_pub: [u8; 32] = if has(LONG_KEY) {
        input.array()
    } else {
        long.public.0
    };
    let vn: [u8; 16] = if has(VOUCH_NONCE) {
        input.array()
    } else {
        [0x76; 16]
    };
    let vouch_plain: [u8; 64] = if has(VOUCH_CONTENT) {
        input.array()
    } else {
        let mut v = [0u8; 64];
        v[..32].copy_from_slice(&short_pub);
        v[32..].copy_from_slice(&server_pub);
        v
    };
    let mut vouch = vn.to_vec();
    vouch.extend_from_slice(
        &HarnessBox::new(&server_short, long.secret.as_bytes()).seal(
            b"VOUCH---",
            &vn,
            &vouch_plain,
        ),
    );
    let metadata = peer_metadata(input, setup.socket, has(RAW_METADATA), has(ANY_SOCKET));
    let mut boxed = long_pub.to_vec();
    boxed.extend_from_slice(&vouch);
    boxed.extend_from_slice(&metadata);
    if has(COOKIE_DAMAGE) {
        let at = usize::from(input.u8()) % cookie.len();
        cookie[at] ^= input.u8() | 1;
    }
    let initiate_n = if has(INITIATE_NONCE) {
        input.u64()
    } else {
        hello_n.wrapping_add(1)
    };
    let mut initiate = cookie;
    initiate.extend_from_slice(&initiate_n.to_be_bytes());
    initiate.extend_from_slice(&session.seal(
        b"CurveZMQINITIATE",
        &initiate_n.to_be_bytes(),
        &boxed,
    ));
    if has(INITIATE_DAMAGE) {
        damage(&mut initiate, input);
    }
    let mut wire = command_frame(b"INITIATE", &initiate);
    if has(STRAY) {
        wire.extend_from_slice(&stray_command(input));
    }
    srv.feed(&wire);

    let valid = flags & !HARMLESS == 0 && hello_n < u64::MAX;
    if valid {
        assert_eq!(
            srv.auth_requests.len(),
            1,
            "no authentication for a valid INITIATE"
        );
        let req = &srv.auth_requests[0];
        assert_eq!(req.mechanism, "CURVE");
        assert_eq!(req.credentials, [long.public.0.to_vec()]);
        assert_eq!(
            srv.conn.is_active(),
            setup.allows(),
            "{:?}",
            srv.conn.error()
        );
    }
    if let ironhouse_zmtp::AuthReply::Deny { reason, .. } = &setup.auth {
        if srv.auth_requests.len() == 1 && !has(STRAY) {
            check_denial(&mut srv.out, reason);
        }
    }
    if srv.conn.is_active() {
        let peer = srv.conn.peer().expect("peer once active");
        assert_eq!(peer.public_key, Some(CurvePublicKey(long_pub)));
        assert_eq!(peer.mechanism, "CURVE");
        let (name, ready) = take_command(&mut srv.out).expect("READY");
        assert_eq!(name, b"READY");
        let ready_n = u64::from_be_bytes(ready[..8].try_into().expect("8 bytes"));
        let plain = session
            .open(b"CurveZMQREADY---", &ready[..8], &ready[8..])
            .expect("READY opens");
        check_metadata(&plain, setup.socket);
        let _ = Metadata::decode(&plain, "READY");
        let mut peer = BoxedPeer {
            session,
            send_prefix: b"CurveZMQMESSAGEC",
            recv_prefix: b"CurveZMQMESSAGES",
            sent: initiate_n,
            seen: ready_n,
        };
        boxed_traffic(&mut srv, &mut peer, input);
    }
    srv.wind_down();
}

fn relay(setup: &Setup, input: &mut Input<'_>, now: Instant) {
    let mut srv = server(setup, now);
    let mech = CurveClient::with_random(
        client_keys().clone(),
        server_keys().public,
        CounterRandom::boxed(PEER_SEED),
    );
    let cfg = config(compatible(setup.socket), false, b"client");
    let mut client = Driven::new(cfg, Box::new(mech), now, setup.auth.clone());
    let up = handshake(&mut client, &mut srv);
    assert_eq!(
        up,
        setup.allows(),
        "{:?} / {:?}",
        srv.conn.error(),
        client.conn.error()
    );
    if up {
        mitm(&mut srv, &mut client, input);
    }
    srv.wind_down();
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let setup = Setup::read(&mut input);
    let now = Instant::now();
    match setup.mode {
        0 => {
            let mut srv = server(&setup, now);
            raw(&mut srv, setup.peer_greeting("CURVE", false), &mut input);
        }
        1 => forged(&setup, &mut input, now),
        _ => relay(&setup, &mut input, now),
    }
});
