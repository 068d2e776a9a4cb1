//! CURVE (RFC 25 with the CurveZMQ handshake of RFC 26): encryption and
//! server authentication with X25519 keys, optionally client authentication
//! through the application's authenticator (StoneHouse / IronHouse).
//!
//! Handshake, client C (long-term key pair C/c, short-term C'/c') and server
//! S (S/s, short-term S'/s'):
//!
//! ```text
//! C: HELLO    C', Box[64 zeros](C'->S)                         200 octets
//! S: WELCOME  Box[S' + cookie](S->C'), cookie = Box[C' + s'](K) 168 octets
//! C: INITIATE cookie, Box[C + vouch + metadata](C'->S'),
//!             vouch = Box[C' + S](C->S')
//! S: READY    Box[metadata](S'->C')
//! then MESSAGE Box[flags + frame](C'<->S') each way
//! ```
//!
//! The cookie key K is random per connection and forgotten once INITIATE is
//! checked, so a cookie is useless after its handshake: the server keeps no
//! state between WELCOME and INITIATE that a flood of HELLOs could exhaust
//! beyond the connection itself. Short nonces must strictly increase in
//! each direction; a replayed or reordered box ends the connection.

use bytes::{BufMut, Bytes, BytesMut};

use super::curve_box::{OsRandom, Random, SecretBox, SharedBox, TAG};
use super::{AuthReply, AuthRequest, Mechanism, Step};
use crate::command::{parse_error, write_command, RawCommand};
use crate::frame::{encode_header, FLAG_COMMAND, FLAG_MORE};
use crate::keys::{CurveKeyPair, CurvePublicKey};
use crate::{Metadata, ProtocolError};

const HELLO_DATA: usize = 2 + 72 + 32 + 8 + TAG + 64;
const COOKIE: usize = 16 + TAG + 64;
const WELCOME_DATA: usize = 16 + TAG + 32 + COOKIE;
const VOUCH: usize = 16 + TAG + 64;
const INITIATE_MIN: usize = COOKIE + 8 + TAG + 32 + VOUCH;
const READY_MIN: usize = 8 + TAG;
const MESSAGE_MIN: usize = 8 + TAG + 1;

/// Flags inside a MESSAGE box (RFC 26): more frames follow / a ZMTP command.
const BOX_MORE: u8 = 0x01;
const BOX_COMMAND: u8 = 0x02;

fn nonce(prefix: &[u8], tail: &[u8]) -> [u8; 24] {
    debug_assert_eq!(prefix.len() + tail.len(), 24);
    let mut n = [0u8; 24];
    n[..prefix.len()].copy_from_slice(prefix);
    n[prefix.len()..].copy_from_slice(tail);
    n
}

fn fail(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Handshake {
        mechanism: "CURVE",
        reason: reason.into(),
    }
}

/// Short-nonce bookkeeping shared by both roles.
#[derive(Debug, Default)]
struct Nonces {
    /// Next short nonce we send.
    ours: u64,
    /// Last short nonce received.
    theirs: u64,
}

impl Nonces {
    fn next(&mut self) -> Result<[u8; 8], ProtocolError> {
        self.ours = self
            .ours
            .checked_add(1)
            .ok_or_else(|| fail("short nonces exhausted"))?;
        Ok(self.ours.to_be_bytes())
    }

    fn check(&mut self, got: &[u8]) -> Result<(), ProtocolError> {
        let n = u64::from_be_bytes(
            got.try_into()
                .map_err(|_| fail("short nonce is not 8 bytes"))?,
        );
        if n <= self.theirs {
            return Err(fail(format!(
                "short nonce {n} replayed or out of order (last was {})",
                self.theirs
            )));
        }
        self.theirs = n;
        Ok(())
    }
}

/// The traffic phase, common to client and server.
#[derive(Debug)]
struct Traffic {
    session: SharedBox,
    nonces: Nonces,
    send_prefix: &'static [u8; 16],
    recv_prefix: &'static [u8; 16],
}

impl Traffic {
    fn seal(&mut self, flags: u8, body: &[u8], out: &mut BytesMut) -> Result<(), ProtocolError> {
        let n = self.nonces.next()?;
        let boxed_len = TAG + 1 + body.len();
        let data_len = 1 + 7 + 8 + boxed_len;
        out.reserve(9 + data_len);
        // libzmq sends each MESSAGE as one plain data frame (flags 0); MORE and
        // COMMAND travel inside the box.
        encode_header(0, data_len, out);
        out.put_u8(7);
        out.put_slice(b"MESSAGE");
        out.put_slice(&n);
        let tag_at = out.len();
        out.put_bytes(0, TAG);
        let mut box_flags = 0;
        if flags & FLAG_MORE != 0 {
            box_flags |= BOX_MORE;
        }
        if flags & FLAG_COMMAND != 0 {
            box_flags |= BOX_COMMAND;
        }
        out.put_u8(box_flags);
        out.put_slice(body);
        self.session
            .seal_tail(&nonce(self.send_prefix, &n), out, tag_at);
        Ok(())
    }

    fn open(&mut self, cmd: RawCommand<'_>) -> Result<(u8, Bytes), ProtocolError> {
        if cmd.data.len() < MESSAGE_MIN {
            return Err(cmd.malformed("shorter than a boxed frame"));
        }
        let (n, boxed) = cmd.data.split_at(8);
        let plain = self
            .session
            .open(&nonce(self.recv_prefix, n), boxed)
            .ok_or_else(|| ProtocolError::Handshake {
                mechanism: "CURVE",
                reason: "MESSAGE box failed to open (forged or damaged)".into(),
            })?;
        // Only an authentic box may advance the nonce.
        self.nonces.check(n)?;
        let mut plain = plain.freeze();
        let box_flags = plain[0];
        let body = plain.split_off(1);
        let mut flags = 0;
        if box_flags & BOX_MORE != 0 {
            flags |= FLAG_MORE;
        }
        if box_flags & BOX_COMMAND != 0 {
            flags |= FLAG_COMMAND;
        }
        Ok((flags, body))
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    Start,
    ExpectWelcome,
    ExpectReady,
    Done,
}

/// The CURVE client: knows its own key pair and the server's public key.
#[derive(Debug)]
pub struct CurveClient {
    long: CurveKeyPair,
    server: CurvePublicKey,
    short: CurveKeyPair,
    rng: Box<dyn Random>,
    state: ClientState,
    nonces: Nonces,
    traffic: Option<Traffic>,
    server_short: [u8; 32],
}

impl CurveClient {
    /// A client with `keys` (its long-term pair) for the server whose public
    /// key is `server`.
    pub fn new(keys: CurveKeyPair, server: CurvePublicKey) -> Self {
        Self::with_random(keys, server, Box::new(OsRandom))
    }

    /// As [`CurveClient::new`], drawing short-term keys and nonces from `rng`.
    pub fn with_random(
        keys: CurveKeyPair,
        server: CurvePublicKey,
        mut rng: Box<dyn Random>,
    ) -> Self {
        let short = CurveKeyPair::generate_with(rng.as_mut());
        CurveClient {
            long: keys,
            server,
            short,
            rng,
            state: ClientState::Start,
            nonces: Nonces::default(),
            traffic: None,
            server_short: [0; 32],
        }
    }

    fn traffic(&mut self) -> Result<&mut Traffic, ProtocolError> {
        self.traffic.as_mut().ok_or(ProtocolError::NotReady)
    }
}

impl Mechanism for CurveClient {
    fn name(&self) -> &'static str {
        "CURVE"
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(
        &mut self,
        peer_as_server: bool,
        _local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        super::check_roles("CURVE", false, peer_as_server)?;
        let n = self.nonces.next()?;
        let hello = SharedBox::new(&self.server.0, self.short.secret.as_bytes());
        write_command(out, "HELLO", HELLO_DATA, |o| {
            o.put_slice(&[1, 0]);
            o.put_bytes(0, 72);
            o.put_slice(&self.short.public.0);
            o.put_slice(&n);
            hello.seal_into(&nonce(b"CurveZMQHELLO---", &n), &[0u8; 64], o);
        });
        self.state = ClientState::ExpectWelcome;
        Ok(Step::Continue)
    }

    fn handle_command(
        &mut self,
        cmd: RawCommand<'_>,
        local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        match (cmd.name, &self.state) {
            (b"ERROR", _) => Err(ProtocolError::PeerError(parse_error(&cmd)?)),
            (b"WELCOME", ClientState::ExpectWelcome) => {
                if cmd.data.len() != WELCOME_DATA {
                    return Err(cmd.malformed("WELCOME must be 168 octets"));
                }
                let (wn, boxed) = cmd.data.split_at(16);
                let plain = SharedBox::new(&self.server.0, self.short.secret.as_bytes())
                    .open(&nonce(b"WELCOME-", wn), boxed)
                    .ok_or_else(|| fail("cannot open WELCOME: the server's public key is not the one configured"))?;
                self.server_short.copy_from_slice(&plain[..32]);
                let cookie = &plain[32..];
                let session = SharedBox::new(&self.server_short, self.short.secret.as_bytes());
                // Vouch: our long-term key proves it owns the short-term one, for this server.
                let mut vn = [0u8; 16];
                self.rng.fill(&mut vn);
                let mut vouch_plain = [0u8; 64];
                vouch_plain[..32].copy_from_slice(&self.short.public.0);
                vouch_plain[32..].copy_from_slice(&self.server.0);
                let mut vouch = BytesMut::with_capacity(VOUCH);
                vouch.put_slice(&vn);
                SharedBox::new(&self.server_short, self.long.secret.as_bytes()).seal_into(
                    &nonce(b"VOUCH---", &vn),
                    &vouch_plain,
                    &mut vouch,
                );
                let mut plain = BytesMut::with_capacity(32 + VOUCH + local.encoded_len());
                plain.put_slice(&self.long.public.0);
                plain.put_slice(&vouch);
                local.encode(&mut plain);
                let n = self.nonces.next()?;
                write_command(out, "INITIATE", COOKIE + 8 + TAG + plain.len(), |o| {
                    o.put_slice(cookie);
                    o.put_slice(&n);
                    session.seal_into(&nonce(b"CurveZMQINITIATE", &n), &plain, o);
                });
                self.traffic = Some(Traffic {
                    session,
                    nonces: Nonces {
                        ours: self.nonces.ours,
                        theirs: 0,
                    },
                    send_prefix: b"CurveZMQMESSAGEC",
                    recv_prefix: b"CurveZMQMESSAGES",
                });
                self.state = ClientState::ExpectReady;
                Ok(Step::Continue)
            }
            (b"READY", ClientState::ExpectReady) => {
                if cmd.data.len() < READY_MIN {
                    return Err(cmd.malformed("shorter than its nonce and box"));
                }
                let (n, boxed) = cmd.data.split_at(8);
                let t = self.traffic()?;
                let plain = t
                    .session
                    .open(&nonce(b"CurveZMQREADY---", n), boxed)
                    .ok_or_else(|| fail("cannot open READY (forged or damaged)"))?;
                t.nonces.check(n)?;
                let peer_metadata = Metadata::decode(&plain, "READY")?;
                self.state = ClientState::Done;
                Ok(Step::Complete {
                    peer_metadata,
                    user_id: None,
                })
            }
            _ => Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "during the CURVE handshake (client)",
            }),
        }
    }

    fn wraps_messages(&self) -> bool {
        true
    }

    fn seal_frame(
        &mut self,
        flags: u8,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        self.traffic()?.seal(flags, body, out)
    }

    fn open_frame(&mut self, cmd: RawCommand<'_>) -> Result<(u8, Bytes), ProtocolError> {
        self.traffic()?.open(cmd)
    }

    fn peer_public_key(&self) -> Option<[u8; 32]> {
        Some(self.server.0)
    }

    fn handshake_eof_hint(&self) -> Option<&'static str> {
        (self.state == ClientState::ExpectWelcome).then_some("the server closed the connection after HELLO: is the configured server public key right, and is the server using CURVE?")
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ServerState {
    ExpectHello,
    ExpectInitiate,
    Authenticating,
    Done,
}

/// The CURVE server: knows its own key pair; clients are vetted by the
/// application's authenticator ([`Step::Authenticate`] with the client's
/// long-term public key as the credential).
#[derive(Debug)]
pub struct CurveServer {
    long: CurveKeyPair,
    rng: Box<dyn Random>,
    state: ServerState,
    nonces: Nonces,
    client_short: [u8; 32],
    short: Option<CurveKeyPair>,
    cookie_key: Option<SecretBox>,
    traffic: Option<Traffic>,
    client_long: [u8; 32],
    peer_metadata: Option<Metadata>,
}

impl CurveServer {
    /// A server with its long-term key pair.
    pub fn new(keys: CurveKeyPair) -> Self {
        Self::with_random(keys, Box::new(OsRandom))
    }

    /// As [`CurveServer::new`], drawing keys and nonces from `rng`.
    pub fn with_random(keys: CurveKeyPair, rng: Box<dyn Random>) -> Self {
        CurveServer {
            long: keys,
            rng,
            state: ServerState::ExpectHello,
            nonces: Nonces::default(),
            client_short: [0; 32],
            short: None,
            cookie_key: None,
            traffic: None,
            client_long: [0; 32],
            peer_metadata: None,
        }
    }

    fn traffic(&mut self) -> Result<&mut Traffic, ProtocolError> {
        self.traffic.as_mut().ok_or(ProtocolError::NotReady)
    }

    fn hello(&mut self, cmd: RawCommand<'_>, out: &mut BytesMut) -> Result<Step, ProtocolError> {
        if cmd.data.len() != HELLO_DATA {
            return Err(cmd.malformed("HELLO must be 200 octets"));
        }
        if cmd.data[..2] != [1, 0] {
            return Err(fail(format!(
                "unsupported CurveZMQ version {}.{}",
                cmd.data[0], cmd.data[1]
            )));
        }
        self.client_short.copy_from_slice(&cmd.data[74..106]);
        let n = &cmd.data[106..114];
        let hello = SharedBox::new(&self.client_short, self.long.secret.as_bytes());
        let plain = hello
            .open(&nonce(b"CurveZMQHELLO---", n), &cmd.data[114..])
            .ok_or_else(|| {
                fail("cannot open HELLO: the client does not have this server's public key")
            })?;
        if plain.iter().any(|&b| b != 0) {
            return Err(fail("HELLO signature is not 64 zeros"));
        }
        self.nonces.check(n)?;
        // Short-term key and a cookie that only this connection's key opens.
        let short = CurveKeyPair::generate_with(self.rng.as_mut());
        let mut key = [0u8; 32];
        self.rng.fill(&mut key);
        let cookie_box = SecretBox::new(&key);
        let mut cn = [0u8; 16];
        self.rng.fill(&mut cn);
        let mut cookie_plain = [0u8; 64];
        cookie_plain[..32].copy_from_slice(&self.client_short);
        cookie_plain[32..].copy_from_slice(short.secret.as_bytes());
        let mut welcome_plain = BytesMut::with_capacity(32 + COOKIE);
        welcome_plain.put_slice(&short.public.0);
        welcome_plain.put_slice(&cn);
        cookie_box.seal_into(&nonce(b"COOKIE--", &cn), &cookie_plain, &mut welcome_plain);
        let mut wn = [0u8; 16];
        self.rng.fill(&mut wn);
        write_command(out, "WELCOME", WELCOME_DATA, |o| {
            o.put_slice(&wn);
            hello.seal_into(&nonce(b"WELCOME-", &wn), &welcome_plain, o);
        });
        self.short = Some(short);
        self.cookie_key = Some(cookie_box);
        self.state = ServerState::ExpectInitiate;
        Ok(Step::Continue)
    }

    fn initiate(&mut self, cmd: RawCommand<'_>) -> Result<Step, ProtocolError> {
        if cmd.data.len() < INITIATE_MIN {
            return Err(cmd.malformed("shorter than 257 octets"));
        }
        let (cookie, rest) = cmd.data.split_at(COOKIE);
        let cookie_box = self.cookie_key.take().ok_or(ProtocolError::NotReady)?;
        let short = self.short.as_ref().ok_or(ProtocolError::NotReady)?;
        let cookie_plain = cookie_box
            .open(&nonce(b"COOKIE--", &cookie[..16]), &cookie[16..])
            .ok_or_else(|| fail("INITIATE carries a cookie this server did not issue"))?;
        if cookie_plain[..32] != self.client_short
            || cookie_plain[32..] != short.secret.as_bytes()[..]
        {
            return Err(fail("INITIATE cookie belongs to another handshake"));
        }
        let (n, boxed) = rest.split_at(8);
        let session = SharedBox::new(&self.client_short, short.secret.as_bytes());
        let plain = session
            .open(&nonce(b"CurveZMQINITIATE", n), boxed)
            .ok_or_else(|| fail("cannot open INITIATE (forged or damaged)"))?;
        self.nonces.check(n)?;
        self.client_long.copy_from_slice(&plain[..32]);
        let vouch = &plain[32..32 + VOUCH];
        let vouch_plain = SharedBox::new(&self.client_long, short.secret.as_bytes())
            .open(&nonce(b"VOUCH---", &vouch[..16]), &vouch[16..])
            .ok_or_else(|| fail("INITIATE vouch does not open with the client's long-term key"))?;
        if vouch_plain[..32] != self.client_short || vouch_plain[32..] != self.long.public.0 {
            return Err(fail("INITIATE vouch is for another key or server"));
        }
        let md = Metadata::decode(&plain[32 + VOUCH..], "INITIATE")?;
        self.traffic = Some(Traffic {
            session,
            nonces: Nonces {
                ours: self.nonces.ours,
                theirs: self.nonces.theirs,
            },
            send_prefix: b"CurveZMQMESSAGES",
            recv_prefix: b"CurveZMQMESSAGEC",
        });
        self.peer_metadata = Some(md.clone());
        self.state = ServerState::Authenticating;
        Ok(Step::Authenticate(AuthRequest {
            mechanism: "CURVE",
            credentials: vec![Bytes::copy_from_slice(&self.client_long)],
            peer_metadata: md,
        }))
    }
}

impl Mechanism for CurveServer {
    fn name(&self) -> &'static str {
        "CURVE"
    }

    fn as_server(&self) -> bool {
        true
    }

    fn start(
        &mut self,
        peer_as_server: bool,
        _local: &Metadata,
        _out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        super::check_roles("CURVE", true, peer_as_server)?;
        Ok(Step::Continue)
    }

    fn handle_command(
        &mut self,
        cmd: RawCommand<'_>,
        _local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        match (cmd.name, &self.state) {
            (b"ERROR", _) => Err(ProtocolError::PeerError(parse_error(&cmd)?)),
            (b"HELLO", ServerState::ExpectHello) => self.hello(cmd, out),
            (b"INITIATE", ServerState::ExpectInitiate) => self.initiate(cmd),
            _ => Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "during the CURVE handshake (server)",
            }),
        }
    }

    fn handle_auth(
        &mut self,
        reply: AuthReply,
        local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        if self.state != ServerState::Authenticating {
            return Err(fail("authentication answer without a request"));
        }
        match reply {
            AuthReply::Allow { user_id } => {
                let t = self.traffic()?;
                let n = t.nonces.next()?;
                let mut plain = BytesMut::with_capacity(local.encoded_len());
                local.encode(&mut plain);
                let session = &t.session;
                write_command(out, "READY", 8 + TAG + plain.len(), |o| {
                    o.put_slice(&n);
                    session.seal_into(&nonce(b"CurveZMQREADY---", &n), &plain, o);
                });
                self.state = ServerState::Done;
                let peer_metadata = self.peer_metadata.take().unwrap_or_default();
                Ok(Step::Complete {
                    peer_metadata,
                    user_id: Some(user_id),
                })
            }
            AuthReply::Deny { status, reason } => super::refuse(out, status, reason),
        }
    }

    fn wraps_messages(&self) -> bool {
        true
    }

    fn seal_frame(
        &mut self,
        flags: u8,
        body: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        self.traffic()?.seal(flags, body, out)
    }

    fn open_frame(&mut self, cmd: RawCommand<'_>) -> Result<(u8, Bytes), ProtocolError> {
        self.traffic()?.open(cmd)
    }

    fn peer_public_key(&self) -> Option<[u8; 32]> {
        (self.state == ServerState::Done).then_some(self.client_long)
    }
}
