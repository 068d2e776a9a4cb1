//! A PLAIN client against input playing the server. Nothing may panic, and
//! what the client writes must be right.
//!
//! Input layout: [mode, socket, id-len, id..., auth..., user-len, user,
//! password-len, password, per mode...] (see `ironhouse_fuzz::Setup`). Modes:
//! * 0 raw: a valid server greeting, then bytes.
//! * 1 forged: the input is the server: WELCOME (or something else), READY
//!   with its metadata (or raw), then bytes in clear. A flags byte chooses
//!   every deviation from a valid server (all zero: the valid one).
//! * 2 relay: a real PlainServer completes the handshake; then its traffic
//!   is tampered with on the way in.
#![no_main]

use std::time::Instant;

use ironhouse_fuzz::*;
use ironhouse_zmtp::mechanism::{PlainClient, PlainServer};
use ironhouse_zmtp::{AuthReply, Metadata};
use libfuzzer_sys::fuzz_target;

// Flags of the forged mode: what deviates from a valid server.
const STRAY_FOR_WELCOME: u8 = 1 << 0;
const WELCOME_DATA: u8 = 1 << 1;
const RAW_METADATA: u8 = 1 << 2;
const ANY_SOCKET: u8 = 1 << 3;
const STRAY_FOR_READY: u8 = 1 << 4;
const READY_DAMAGE: u8 = 1 << 5;
const PIPELINE: u8 = 1 << 6;
const SPLIT: u8 = 1 << 7;
/// Deviations after which a handshake may still succeed.
const HARMLESS: u8 = PIPELINE | SPLIT;

fn client(setup: &Setup, user: &[u8], pass: &[u8], now: Instant) -> Driven {
    let mech = PlainClient::new(user, pass).expect("credentials of at most 255 bytes");
    Driven::new(setup.config(), Box::new(mech), now, setup.auth.clone())
}

fn check_initiate(cli: &mut Driven, setup: &Setup) {
    let (name, data) = take_command(&mut cli.out).expect("INITIATE after WELCOME");
    assert_eq!(name, b"INITIATE");
    check_metadata(&data, setup.socket);
    let md = Metadata::decode(&data, "INITIATE").expect("valid metadata");
    if setup.socket.sends_identity() {
        assert_eq!(
            md.get("Identity").map(|v| v.to_vec()),
            Some(setup.identity.clone())
        );
    }
}

fn forged(setup: &Setup, user: &[u8], pass: &[u8], input: &mut Input<'_>, now: Instant) {
    let flags = input.u8();
    let has = |f: u8| flags & f != 0;
    let mut cli = client(setup, user, pass, now);

    if !cli.feed(&setup.peer_greeting("PLAIN", true)) {
        return cli.wind_down();
    }
    take_greeting(&mut cli.out, "PLAIN", false);
    let mut hello = vec![user.len() as u8];
    hello.extend_from_slice(user);
    hello.push(pass.len() as u8);
    hello.extend_from_slice(pass);
    assert_eq!(cli.out.split().to_vec(), command_frame(b"HELLO", &hello));

    let welcome = if has(STRAY_FOR_WELCOME) {
        stray_command(input)
    } else if has(WELCOME_DATA) {
        command_frame(b"WELCOME", input.short_bytes())
    } else {
        command_frame(b"WELCOME", &[])
    };
    let mut ready = peer_metadata(input, setup.socket, has(RAW_METADATA), has(ANY_SOCKET));
    if has(READY_DAMAGE) {
        damage(&mut ready, input);
    }
    let ready = if has(STRAY_FOR_READY) {
        stray_command(input)
    } else {
        command_frame(b"READY", &ready)
    };
    let at = if has(SPLIT) {
        usize::from(input.u16())
    } else {
        0
    };
    if has(PIPELINE) {
        // READY right behind WELCOME, before the client has sent INITIATE.
        let mut wire = welcome;
        wire.extend_from_slice(&ready);
        cli.feed_split(&wire, at);
    } else {
        if cli.feed_split(&welcome, at) {
            check_initiate(&mut cli, setup);
        }
        if cli.healthy() {
            cli.feed(&ready);
        }
    }
    if flags & !HARMLESS == 0 {
        assert!(
            cli.conn.is_active(),
            "a valid server refused: {:?}",
            cli.conn.error()
        );
        if has(PIPELINE) {
            check_initiate(&mut cli, setup);
        }
    }
    assert!(cli.auth_requests.is_empty());
    if cli.conn.is_active() {
        let peer = cli.conn.peer().expect("peer once active");
        assert_eq!(peer.mechanism, "PLAIN");
        let (a, b) = (usize::from(input.u16()), usize::from(input.u16()));
        cli.feed_three(input.rest(), a, b);
    }
    cli.wind_down();
}

fn relay(setup: &Setup, user: &[u8], pass: &[u8], input: &mut Input<'_>, now: Instant) {
    let mut cli = client(setup, user, pass, now);
    let cfg = config(compatible(setup.socket), false, b"server");
    let allow = AuthReply::Allow {
        user_id: "fuzz".into(),
    };
    let mut srv = Driven::new(cfg, Box::new(PlainServer::new()), now, allow);
    let up = handshake(&mut cli, &mut srv);
    assert!(up, "{:?} / {:?}", cli.conn.error(), srv.conn.error());
    assert_eq!(
        srv.auth_requests[0].credentials,
        [user.to_vec(), pass.to_vec()]
    );
    mitm(&mut cli, &mut srv, input);
    cli.wind_down();
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let setup = Setup::read(&mut input);
    let (user, pass) = (input.short_bytes(), input.short_bytes());
    let now = Instant::now();
    match setup.mode {
        0 => {
            let mut cli = client(&setup, user, pass, now);
            raw(&mut cli, setup.peer_greeting("PLAIN", true), &mut input);
        }
        1 => forged(&setup, user, pass, &mut input, now),
        _ => relay(&setup, user, pass, &mut input, now),
    }
});
