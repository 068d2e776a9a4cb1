//! PLAIN (RFC 24): a user name and password in clear text, then metadata.
//!
//! PLAIN protects nothing on the wire, so the socket layer refuses it over
//! bare TCP unless explicitly allowed; it is meant to run under TLS.
//!
//! ```text
//! C: HELLO    username, password
//! S: WELCOME  (after the application's authenticator allowed them) | ERROR
//! C: INITIATE metadata
//! S: READY    metadata
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use super::{AuthReply, AuthRequest, Mechanism, Step};
use crate::command::{parse_error, write_command, RawCommand};
use crate::{Metadata, ProtocolError};

fn fail(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Handshake {
        mechanism: "PLAIN",
        reason: reason.into(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ClientState {
    ExpectWelcome,
    ExpectReady,
    Done,
}

/// The PLAIN client. The password is kept only until it is sent.
pub struct PlainClient {
    username: Vec<u8>,
    password: Vec<u8>,
    state: ClientState,
}

impl std::fmt::Debug for PlainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PlainClient({:?}, password hidden)",
            String::from_utf8_lossy(&self.username)
        )
    }
}

impl PlainClient {
    /// A client with these credentials (each at most 255 bytes).
    ///
    /// # Errors
    /// [`ProtocolError::Handshake`] if a credential is longer than 255 bytes.
    pub fn new(
        username: impl Into<Vec<u8>>,
        password: impl Into<Vec<u8>>,
    ) -> Result<Self, ProtocolError> {
        let (username, password) = (username.into(), password.into());
        if username.len() > 255 || password.len() > 255 {
            return Err(fail(
                "user name and password must each be at most 255 bytes",
            ));
        }
        Ok(PlainClient {
            username,
            password,
            state: ClientState::ExpectWelcome,
        })
    }
}

impl Drop for PlainClient {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl Mechanism for PlainClient {
    fn name(&self) -> &'static str {
        "PLAIN"
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
        super::check_roles("PLAIN", false, peer_as_server)?;
        let (u, p) = (&self.username, &self.password);
        write_command(out, "HELLO", 2 + u.len() + p.len(), |o| {
            o.put_u8(u.len() as u8);
            o.put_slice(u);
            o.put_u8(p.len() as u8);
            o.put_slice(p);
        });
        zeroize::Zeroize::zeroize(&mut self.password);
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
                if !cmd.data.is_empty() {
                    return Err(cmd.malformed("WELCOME carries no data"));
                }
                write_command(out, "INITIATE", local.encoded_len(), |o| local.encode(o));
                self.state = ClientState::ExpectReady;
                Ok(Step::Continue)
            }
            (b"READY", ClientState::ExpectReady) => {
                let peer_metadata = Metadata::decode(cmd.data, "READY")?;
                self.state = ClientState::Done;
                Ok(Step::Complete {
                    peer_metadata,
                    user_id: None,
                })
            }
            _ => Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "during the PLAIN handshake (client)",
            }),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ServerState {
    ExpectHello,
    Authenticating,
    ExpectInitiate,
    Done,
}

/// The PLAIN server: credentials go to the application's authenticator.
#[derive(Debug)]
pub struct PlainServer {
    state: ServerState,
    user_id: String,
}

impl PlainServer {
    /// A PLAIN server.
    pub fn new() -> Self {
        PlainServer {
            state: ServerState::ExpectHello,
            user_id: String::new(),
        }
    }
}

impl Default for PlainServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Mechanism for PlainServer {
    fn name(&self) -> &'static str {
        "PLAIN"
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
        super::check_roles("PLAIN", true, peer_as_server)?;
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
            (b"HELLO", ServerState::ExpectHello) => {
                let d = cmd.data;
                let ulen = *d
                    .first()
                    .ok_or_else(|| cmd.malformed("missing user name"))?
                    as usize;
                let user = d
                    .get(1..1 + ulen)
                    .ok_or_else(|| cmd.malformed("user name runs past the end"))?;
                let plen = *d
                    .get(1 + ulen)
                    .ok_or_else(|| cmd.malformed("missing password"))?
                    as usize;
                let pass = d
                    .get(2 + ulen..2 + ulen + plen)
                    .ok_or_else(|| cmd.malformed("password runs past the end"))?;
                if d.len() != 2 + ulen + plen {
                    return Err(cmd.malformed("trailing bytes after the password"));
                }
                self.state = ServerState::Authenticating;
                Ok(Step::Authenticate(AuthRequest {
                    mechanism: "PLAIN",
                    credentials: vec![Bytes::copy_from_slice(user), Bytes::copy_from_slice(pass)],
                    peer_metadata: Metadata::new(),
                }))
            }
            (b"INITIATE", ServerState::ExpectInitiate) => {
                let peer_metadata = Metadata::decode(cmd.data, "INITIATE")?;
                write_command(out, "READY", local.encoded_len(), |o| local.encode(o));
                self.state = ServerState::Done;
                Ok(Step::Complete {
                    peer_metadata,
                    user_id: Some(std::mem::take(&mut self.user_id)),
                })
            }
            _ => Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "during the PLAIN handshake (server)",
            }),
        }
    }

    fn handle_auth(
        &mut self,
        reply: AuthReply,
        _local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        if self.state != ServerState::Authenticating {
            return Err(fail("authentication answer without a request"));
        }
        match reply {
            AuthReply::Allow { user_id } => {
                write_command(out, "WELCOME", 0, |_| {});
                self.user_id = user_id;
                self.state = ServerState::ExpectInitiate;
                Ok(Step::Continue)
            }
            AuthReply::Deny { status, reason } => super::refuse(out, status, reason),
        }
    }
}
