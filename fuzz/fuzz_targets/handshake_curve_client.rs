//! A CURVE client (fixed long-term keys, the fixed server public key,
//! deterministic short-term keys) against input playing the server. Nothing
//! may panic, and what the client writes must be right.
//!
//! Input layout: [mode, socket, id-len, id..., auth..., per mode...]
//! (see `ironhouse_fuzz::Setup`). Modes:
//! * 0 raw: a valid server greeting, then bytes.
//! * 1 forged: the input is the server, opening the client's HELLO and
//!   INITIATE (checking the vouch) and sealing its own WELCOME and READY with
//!   real boxes; then boxed traffic. A flags word chooses every deviation
//!   from a valid server (all zero: the valid one).
//! * 2 relay: a real CurveServer completes the handshake; then its traffic
//!   is tampered with on the way in.
#![no_main]

use std::time::Instant;

use ironhouse_fuzz::*;
use ironhouse_zmtp::mechanism::{CurveClient, CurveServer};
use ironhouse_zmtp::AuthReply;
use libfuzzer_sys::fuzz_target;

// Flags of the forged mode: what deviates from a valid server.
const OWN_SHORT_KEY: u16 = 1 << 0;
const WELCOME_NONCE: u16 = 1 << 1;
const COOKIE: u16 = 1 << 2;
const WELCOME_DAMAGE: u16 = 1 << 3;
const READY_NONCE: u16 = 1 << 4;
const RAW_METADATA: u16 = 1 << 5;
const READY_DAMAGE: u16 = 1 << 6;
const STRAY_FOR_READY: u16 = 1 << 7;
const ANY_SOCKET: u16 = 1 << 8;
const SPLIT: u16 = 1 << 9;
const WRONG_SERVER_KEY: u16 = 1 << 10;
const STRAY_FOR_WELCOME: u16 = 1 << 11;
const SERVER_SHORT_RAW: u16 = 1 << 12;
/// Deviations after which a handshake may still succeed.
const HARMLESS: u16 = OWN_SHORT_KEY | WELCOME_NONCE | COOKIE | SPLIT;

fn client(setup: &Setup, now: Instant) -> Driven {
    let mech = CurveClient::with_random(
        client_keys().clone(),
        server_keys().public,
        CounterRandom::boxed(TARGET_SEED),
    );
    Driven::new(setup.config(), Box::new(mech), now, setup.auth.clone())
}

fn forged(setup: &Setup, input: &mut Input<'_>, now: Instant) {
    let flags = input.u16();
    let has = |f: u16| flags & f != 0;
    let mut cli = client(setup, now);
    let server = server_keys();
    let server_pub = server.public.0;

    let greeting = setup.peer_greeting("CURVE", true);
    let at = if has(SPLIT) {
        usize::from(input.u16())
    } else {
        64
    };
    if !cli.feed_split(&greeting, at) {
        return cli.wind_down();
    }
    take_greeting(&mut cli.out, "CURVE", false);
    let (name, hello) = take_command(&mut cli.out).expect("HELLO after the greeting");
    assert_eq!(name, b"HELLO");
    assert_eq!(hello.len(), 194);
    assert_eq!(hello[..2], [1, 0]);
    let client_short: [u8; 32] = hello[74..106].try_into().expect("32 bytes");
    let hello_n = u64::from_be_bytes(hello[106..114].try_into().expect("8 bytes"));
    assert!(hello_n > 0);
    let hello_box = HarnessBox::new(&client_short, server.secret.as_bytes());
    let sig = hello_box
        .open(b"CurveZMQHELLO---", &hello[106..114], &hello[114..])
        .expect("HELLO opens with the server's secret key");
    assert_eq!(sig, [0u8; 64]);

    // WELCOME: nonce, Box[S' + cookie](S->C').
    let short_secret: [u8; 32] = if has(OWN_SHORT_KEY) {
        input.array()
    } else {
        HARNESS_SHORT_SECRET
    };
    let short_pub: [u8; 32] = if has(SERVER_SHORT_RAW) {
        input.array()
    } else {
        public_of(&short_secret)
    };
    let cookie: [u8; 96] = if has(COOKIE) {
        input.array()
    } else {
        [0xc0; 96]
    };
    let wn: [u8; 16] = if has(WELCOME_NONCE) {
        input.array()
    } else {
        [0x77; 16]
    };
    let sealer = if has(WRONG_SERVER_KEY) {
        HarnessBox::new(&client_short, &input.array())
    } else {
        hello_box
    };
    let mut plain = short_pub.to_vec();
    plain.extend_from_slice(&cookie);
    let mut welcome = wn.to_vec();
    welcome.extend_from_slice(&sealer.seal(b"WELCOME-", &wn, &plain));
    if has(WELCOME_DAMAGE) {
        damage(&mut welcome, input);
    }
    let wire = if has(STRAY_FOR_WELCOME) {
        stray_command(input)
    } else {
        command_frame(b"WELCOME", &welcome)
    };
    if !cli.feed(&wire) {
        return cli.wind_down();
    }

    // INITIATE: the cookie back, nonce, Box[C + vouch + metadata](C'->S').
    let (name, initiate) = take_command(&mut cli.out).expect("INITIATE after an accepted WELCOME");
    assert_eq!(name, b"INITIATE");
    assert!(initiate.len() >= 248);
    assert_eq!(initiate[..96], cookie, "INITIATE must echo the cookie");
    let initiate_n = u64::from_be_bytes(initiate[96..104].try_into().expect("8 bytes"));
    assert!(initiate_n > hello_n, "INITIATE reuses a short nonce");
    let session = HarnessBox::new(&client_short, &short_secret);
    let opened = session.open(b"CurveZMQINITIATE", &initiate[96..104], &initiate[104..]);
    let Some(boxed) = opened else {
        // Only a server short key that is not ours can explain it.
        assert!(has(SERVER_SHORT_RAW), "INITIATE does not open");
        return cli.wind_down();
    };
    let long_pub: [u8; 32] = boxed[..32].try_into().expect("32 bytes");
    assert_eq!(long_pub, client_keys().public.0);
    let vouch = &boxed[32..128];
    let vouch_plain = HarnessBox::new(&long_pub, &short_secret)
        .open(b"VOUCH---", &vouch[..16], &vouch[16..])
        .expect("the vouch opens with the client's long-term key");
    assert_eq!(vouch_plain[..32], client_short);
    assert_eq!(vouch_plain[32..], server_pub);
    check_metadata(&boxed[128..], setup.socket);

    // READY: nonce, Box[metadata](S'->C'), or something else.
    let ready_n = if has(READY_NONCE) { input.u64() } else { 1 };
    let metadata = peer_metadata(input, setup.socket, has(RAW_METADATA), has(ANY_SOCKET));
    let mut ready = ready_n.to_be_bytes().to_vec();
    ready.extend_from_slice(&session.seal(b"CurveZMQREADY---", &ready_n.to_be_bytes(), &metadata));
    if has(READY_DAMAGE) {
        damage(&mut ready, input);
    }
    let wire = if has(STRAY_FOR_READY) {
        stray_command(input)
    } else {
        command_frame(b"READY", &ready)
    };
    cli.feed(&wire);

    if flags & !HARMLESS == 0 {
        assert!(
            cli.conn.is_active(),
            "a valid server refused: {:?}",
            cli.conn.error()
        );
    }
    assert!(cli.auth_requests.is_empty());
    if cli.conn.is_active() {
        let peer = cli.conn.peer().expect("peer once active");
        assert_eq!(peer.public_key, Some(server.public));
        assert_eq!(peer.user_id, None);
        let mut peer = BoxedPeer {
            session,
            send_prefix: b"CurveZMQMESSAGES",
            recv_prefix: b"CurveZMQMESSAGEC",
            sent: ready_n,
            seen: initiate_n,
        };
        boxed_traffic(&mut cli, &mut peer, input);
    }
    cli.wind_down();
}

fn relay(setup: &Setup, input: &mut Input<'_>, now: Instant) {
    let mut cli = client(setup, now);
    let mech = CurveServer::with_random(server_keys().clone(), CounterRandom::boxed(PEER_SEED));
    let cfg = config(compatible(setup.socket), false, b"server");
    let allow = AuthReply::Allow {
        user_id: "fuzz".into(),
    };
    let mut srv = Driven::new(cfg, Box::new(mech), now, allow);
    let up = handshake(&mut cli, &mut srv);
    assert!(up, "{:?} / {:?}", cli.conn.error(), srv.conn.error());
    mitm(&mut cli, &mut srv, input);
    cli.wind_down();
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let setup = Setup::read(&mut input);
    let now = Instant::now();
    match setup.mode {
        0 => {
            let mut cli = client(&setup, now);
            raw(&mut cli, setup.peer_greeting("CURVE", true), &mut input);
        }
        1 => forged(&setup, &mut input, now),
        _ => relay(&setup, &mut input, now),
    }
});
