//! A PLAIN server against input playing the client. Nothing may panic, and
//! what the server writes must be right.
//!
//! Input layout: [mode, socket, id-len, id..., auth..., per mode...]
//! (see `ironhouse_fuzz::Setup`). Modes:
//! * 0 raw: a valid client greeting, then bytes.
//! * 1 forged: the input is the client: HELLO with its user name and
//!   password (or raw), the authentication answer, INITIATE with its
//!   metadata (or raw), then bytes in clear. A flags byte chooses every
//!   deviation from a valid client (all zero: the valid one).
//! * 2 relay: a real PlainClient completes the handshake; then its traffic
//!   is tampered with on the way in.
#![no_main]

use std::time::Instant;

use ironhouse_fuzz::*;
use ironhouse_zmtp::mechanism::{PlainClient, PlainServer};
use ironhouse_zmtp::AuthReply;
use libfuzzer_sys::fuzz_target;

// Flags of the forged mode: what deviates from a valid client.
const RAW_HELLO: u8 = 1 << 0;
const HELLO_DAMAGE: u8 = 1 << 1;
const ANY_SOCKET: u8 = 1 << 2;
const RAW_METADATA: u8 = 1 << 3;
const INITIATE_DAMAGE: u8 = 1 << 4;
const STRAY: u8 = 1 << 5;
const PIPELINE: u8 = 1 << 6;
const SPLIT: u8 = 1 << 7;

fn server(setup: &Setup, now: Instant) -> Driven {
    Driven::new(
        setup.config(),
        Box::new(PlainServer::new()),
        now,
        setup.auth.clone(),
    )
}

fn forged(setup: &Setup, input: &mut Input<'_>, now: Instant) {
    let flags = input.u8();
    let has = |f: u8| flags & f != 0;
    let mut srv = server(setup, now);
    let (user, pass) = (input.short_bytes(), input.short_bytes());

    let mut hello = if has(RAW_HELLO) {
        input.short_bytes().to_vec()
    } else {
        let mut h = vec![user.len() as u8];
        h.extend_from_slice(user);
        h.push(pass.len() as u8);
        h.extend_from_slice(pass);
        h
    };
    if has(HELLO_DAMAGE) {
        damage(&mut hello, input);
    }
    let mut initiate = peer_metadata(input, setup.socket, has(RAW_METADATA), has(ANY_SOCKET));
    if has(INITIATE_DAMAGE) {
        damage(&mut initiate, input);
    }
    let second = if has(STRAY) {
        stray_command(input)
    } else {
        command_frame(b"INITIATE", &initiate)
    };

    let mut wire = setup.peer_greeting("PLAIN", false).to_vec();
    wire.extend_from_slice(&command_frame(b"HELLO", &hello));
    if has(PIPELINE) {
        // INITIATE before WELCOME: refused, unless the read happens to end
        // right after HELLO.
        wire.extend_from_slice(&second);
    }
    let at = if has(SPLIT) {
        usize::from(input.u16())
    } else {
        wire.len()
    };
    srv.feed_split(&wire, at);
    if has(PIPELINE) && !has(SPLIT) {
        assert!(
            !srv.healthy(),
            "INITIATE accepted while authentication was pending"
        );
    }
    if flags & !SPLIT == 0 {
        assert_eq!(
            srv.auth_requests.len(),
            1,
            "no authentication for a valid HELLO"
        );
        let req = &srv.auth_requests[0];
        assert_eq!(req.mechanism, "PLAIN");
        assert_eq!(req.credentials, [user.to_vec(), pass.to_vec()]);
        take_greeting(&mut srv.out, "PLAIN", true);
        match &setup.auth {
            AuthReply::Allow { .. } => {
                let (name, data) = take_command(&mut srv.out).expect("WELCOME");
                assert_eq!(name, b"WELCOME");
                assert!(data.is_empty());
            }
            AuthReply::Deny { reason, .. } => check_denial(&mut srv.out, reason),
        }
    }
    if !has(PIPELINE) && srv.healthy() {
        srv.feed(&second);
    }
    if flags & !SPLIT == 0 {
        assert_eq!(
            srv.conn.is_active(),
            setup.allows(),
            "{:?}",
            srv.conn.error()
        );
    }
    if srv.conn.is_active() {
        let peer = srv.conn.peer().expect("peer once active");
        if let AuthReply::Allow { user_id } = &setup.auth {
            assert_eq!(peer.user_id.as_ref(), Some(user_id));
        }
        assert_eq!(peer.public_key, None);
        if flags & !SPLIT == 0 {
            let (name, data) = take_command(&mut srv.out).expect("READY");
            assert_eq!(name, b"READY");
            check_metadata(&data, setup.socket);
        }
        let (a, b) = (usize::from(input.u16()), usize::from(input.u16()));
        srv.feed_three(input.rest(), a, b);
    }
    srv.wind_down();
}

fn relay(setup: &Setup, input: &mut Input<'_>, now: Instant) {
    let mut srv = server(setup, now);
    let (user, pass) = (input.short_bytes(), input.short_bytes());
    let mech = PlainClient::new(user, pass).expect("credentials of at most 255 bytes");
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
        assert_eq!(
            srv.auth_requests[0].credentials,
            [user.to_vec(), pass.to_vec()]
        );
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
            raw(&mut srv, setup.peer_greeting("PLAIN", false), &mut input);
        }
        1 => forged(&setup, &mut input, now),
        _ => relay(&setup, &mut input, now),
    }
});
