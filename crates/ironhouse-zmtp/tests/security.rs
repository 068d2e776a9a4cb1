//! CURVE and PLAIN between two in-memory engines: handshakes, authentication
//! answers, boxed traffic and the failures each side must report.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ironhouse_zmtp::mechanism::{CurveClient, CurveServer, PlainClient, PlainServer};
use ironhouse_zmtp::testing::pump;
use ironhouse_zmtp::{
    AuthReply, Config, Connection, CurveKeyPair, Event, Mechanism, Message, ProtocolError,
    SocketType,
};

fn conn(kind: SocketType, m: Box<dyn Mechanism>, now: Instant) -> Connection {
    let mut c = Config::new(kind);
    c.heartbeat.interval = Some(Duration::from_secs(1));
    Connection::with_mechanism(c, m, now)
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Runs a handshake, answering the server's authentication request with `reply`.
fn handshake(
    client: &mut Connection,
    server: &mut Connection,
    reply: AuthReply,
    now: Instant,
) -> Result<(), ProtocolError> {
    pump(client, server, now)?;
    let req = events(server).into_iter().find_map(|e| match e {
        Event::Authenticate(r) => Some(r),
        _ => None,
    });
    if let Some(_req) = req {
        let r = server.handle_auth_reply(reply, now);
        // The server may have failed; deliver what it queued (READY or ERROR) to the client.
        deliver(server, client, now)?;
        r?;
        pump(client, server, now)?;
    }
    Ok(())
}

/// Feeds everything `from` queued into `to`.
fn deliver(from: &mut Connection, to: &mut Connection, now: Instant) -> Result<(), ProtocolError> {
    let bytes: Vec<u8> = from.transmit().take_all().concat();
    let mut buf = BytesMut::from(&bytes[..]);
    to.handle_input(&mut buf, now)
}

fn curve_pair(now: Instant) -> (Connection, Connection, CurveKeyPair, CurveKeyPair) {
    let server_keys = CurveKeyPair::generate();
    let client_keys = CurveKeyPair::generate();
    let client = conn(
        SocketType::Req,
        Box::new(CurveClient::new(client_keys.clone(), server_keys.public)),
        now,
    );
    let server = conn(
        SocketType::Rep,
        Box::new(CurveServer::new(server_keys.clone())),
        now,
    );
    (client, server, client_keys, server_keys)
}

#[test]
fn curve_handshake_traffic_and_peer_key() {
    let now = Instant::now();
    let (mut client, mut server, client_keys, _) = curve_pair(now);
    pump(&mut client, &mut server, now).unwrap();
    let req = events(&mut server)
        .into_iter()
        .find_map(|e| {
            if let Event::Authenticate(r) = e {
                Some(r)
            } else {
                None
            }
        })
        .expect("server asks to authenticate");
    assert_eq!(req.mechanism, "CURVE");
    assert_eq!(req.credentials[0].as_ref(), &client_keys.public.0);
    server
        .handle_auth_reply(
            AuthReply::Allow {
                user_id: "alice".into(),
            },
            now,
        )
        .unwrap();
    pump(&mut client, &mut server, now).unwrap();
    assert!(client.is_active() && server.is_active());
    let peer = server.peer().unwrap();
    assert_eq!(peer.user_id.as_deref(), Some("alice"));
    assert_eq!(peer.public_key, Some(client_keys.public));
    assert_eq!(peer.socket_type, SocketType::Req);
    events(&mut client);
    events(&mut server);

    // Multipart both ways, through boxes; the wire never shows the payload.
    let msg = Message::from_iter(["", "secret payload", ""]);
    client.send_message(&msg).unwrap();
    let wire: Vec<u8> = client.transmit().take_all().concat();
    assert!(!wire.windows(14).any(|w| w == b"secret payload"));
    let mut buf = BytesMut::from(&wire[..]);
    server.handle_input(&mut buf, now).unwrap();
    assert_eq!(events(&mut server), vec![Event::Message(msg.clone())]);
    server.send_message(&Message::from("reply")).unwrap();
    pump(&mut client, &mut server, now).unwrap();
    assert_eq!(
        events(&mut client),
        vec![Event::Message(Message::from("reply"))]
    );

    // Heartbeats are boxed too and answered.
    client.handle_timeout(now + Duration::from_secs(1)).unwrap();
    let ping: Vec<u8> = client.transmit().take_all().concat();
    assert!(
        !ping.windows(4).any(|w| w == b"PING"),
        "PING must not travel in clear"
    );
    let mut buf = BytesMut::from(&ping[..]);
    server.handle_input(&mut buf, now).unwrap();
    assert!(
        !server.transmit().is_empty(),
        "server answers with a boxed PONG"
    );
    pump(&mut client, &mut server, now).unwrap();
    client
        .handle_timeout(now + Duration::from_millis(1500))
        .unwrap();
}

#[test]
fn curve_replayed_or_tampered_message_is_refused() {
    let now = Instant::now();
    let (mut client, mut server, _, _) = curve_pair(now);
    handshake(
        &mut client,
        &mut server,
        AuthReply::Allow {
            user_id: String::new(),
        },
        now,
    )
    .unwrap();
    client.send_message(&Message::from("one")).unwrap();
    let wire: Vec<u8> = client.transmit().take_all().concat();
    let mut buf = BytesMut::from(&wire[..]);
    server.handle_input(&mut buf, now).unwrap();
    // The same bytes again: a replayed nonce.
    let mut buf = BytesMut::from(&wire[..]);
    let err = server.handle_input(&mut buf, now).unwrap_err();
    assert!(err.to_string().contains("replayed"), "{err}");

    let (mut client, mut server, _, _) = curve_pair(now);
    handshake(
        &mut client,
        &mut server,
        AuthReply::Allow {
            user_id: String::new(),
        },
        now,
    )
    .unwrap();
    client.send_message(&Message::from("two")).unwrap();
    let mut wire: Vec<u8> = client.transmit().take_all().concat();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let mut buf = BytesMut::from(&wire[..]);
    let err = server.handle_input(&mut buf, now).unwrap_err();
    assert!(err.to_string().contains("forged or damaged"), "{err}");
}

#[test]
fn curve_wrong_server_key_is_refused_by_the_server_with_a_reason() {
    let now = Instant::now();
    let server_keys = CurveKeyPair::generate();
    let wrong = CurveKeyPair::generate();
    let mut client = conn(
        SocketType::Dealer,
        Box::new(CurveClient::new(CurveKeyPair::generate(), wrong.public)),
        now,
    );
    let mut server = conn(
        SocketType::Router,
        Box::new(CurveServer::new(server_keys)),
        now,
    );
    let err = pump(&mut client, &mut server, now).unwrap_err();
    assert!(err.to_string().contains("cannot open HELLO"), "{err}");
    // The server told the client why before closing.
    let sent: Vec<u8> = server.transmit().take_all().concat();
    let mut buf = BytesMut::from(&sent[..]);
    let err = client.handle_input(&mut buf, now).unwrap_err();
    assert!(
        matches!(err, ProtocolError::PeerError(ref r) if r.contains("cannot open HELLO")),
        "{err}"
    );
}

#[test]
fn curve_denied_client_sees_the_reason() {
    let now = Instant::now();
    let (mut client, mut server, _, _) = curve_pair(now);
    let err = handshake(
        &mut client,
        &mut server,
        AuthReply::Deny {
            status: 400,
            reason: "key not allowed".into(),
        },
        now,
    );
    assert!(
        matches!(err, Err(ProtocolError::PeerError(ref r)) if r == "key not allowed"),
        "{err:?}"
    );
    assert!(matches!(
        server.error(),
        Some(ProtocolError::AuthDenied { status: 400, .. })
    ));
}

#[test]
fn curve_against_null_and_two_servers_fail_clearly() {
    let now = Instant::now();
    let keys = CurveKeyPair::generate();
    let mut null = Connection::new(Config::new(SocketType::Req), now);
    let mut server = conn(
        SocketType::Rep,
        Box::new(CurveServer::new(keys.clone())),
        now,
    );
    let err = pump(&mut null, &mut server, now).unwrap_err();
    assert!(
        matches!(err, ProtocolError::MechanismMismatch { .. }),
        "{err}"
    );
    let mut a = conn(
        SocketType::Req,
        Box::new(CurveServer::new(keys.clone())),
        now,
    );
    let mut b = conn(SocketType::Rep, Box::new(CurveServer::new(keys)), now);
    let err = pump(&mut a, &mut b, now).unwrap_err();
    assert!(
        err.to_string()
            .contains("CURVE handshake failed: the peer is also a server"),
        "{err}"
    );
}

#[test]
fn plain_right_and_wrong_password() {
    let now = Instant::now();
    for (password, allow) in [("secret", true), ("wrong", false)] {
        let mut client = conn(
            SocketType::Push,
            Box::new(PlainClient::new("admin", password).unwrap()),
            now,
        );
        let mut server = conn(SocketType::Pull, Box::new(PlainServer::new()), now);
        pump(&mut client, &mut server, now).unwrap();
        let req = events(&mut server)
            .into_iter()
            .find_map(|e| {
                if let Event::Authenticate(r) = e {
                    Some(r)
                } else {
                    None
                }
            })
            .unwrap();
        assert_eq!(req.mechanism, "PLAIN");
        assert_eq!(req.credentials[0].as_ref(), b"admin");
        let ok = req.credentials[1].as_ref() == b"secret";
        assert_eq!(ok, allow);
        let reply = if ok {
            AuthReply::Allow {
                user_id: "admin".into(),
            }
        } else {
            AuthReply::Deny {
                status: 400,
                reason: "wrong password".into(),
            }
        };
        let r = server.handle_auth_reply(reply, now);
        let p = deliver(&mut server, &mut client, now);
        if allow {
            r.unwrap();
            p.unwrap();
            pump(&mut client, &mut server, now).unwrap();
            assert!(client.is_active() && server.is_active());
            assert_eq!(server.peer().unwrap().user_id.as_deref(), Some("admin"));
        } else {
            assert!(r.is_err());
            assert!(
                matches!(p, Err(ProtocolError::PeerError(ref m)) if m == "wrong password"),
                "{p:?}"
            );
        }
    }
}

#[test]
fn plain_hello_exact_bytes() {
    let now = Instant::now();
    let mut client = conn(
        SocketType::Push,
        Box::new(PlainClient::new("u", "pw").unwrap()),
        now,
    );
    let mut greeting = vec![0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1];
    greeting.extend_from_slice(b"PLAIN");
    greeting.resize(32, 0);
    greeting.push(1);
    greeting.resize(64, 0);
    client.transmit().take_all();
    let mut buf = BytesMut::from(&greeting[..]);
    client.handle_input(&mut buf, now).unwrap();
    let hello: Vec<u8> = client.transmit().take_all().concat();
    assert_eq!(hello, b"\x04\x0b\x05HELLO\x01u\x02pw");
}
