//! The NULL mechanism (RFC 23): no security; both sides send READY with
//! their metadata. A server may still ask the application to authenticate
//! the peer (by address), as ZAP allows for NULL.

use bytes::BytesMut;

use super::{AuthReply, AuthRequest, Mechanism, Step};
use crate::command::{parse_error, write_ready, RawCommand};
use crate::{Metadata, ProtocolError};

/// The NULL mechanism.
#[derive(Debug, Default)]
pub struct Null {
    /// Ask the application before accepting the peer (server side).
    authenticate: bool,
    peer_metadata: Option<Metadata>,
    sent_ready: bool,
}

impl Null {
    /// NULL without an authentication step.
    pub fn new() -> Self {
        Self::default()
    }

    /// NULL that asks the application ([`Step::Authenticate`]) before sending READY.
    pub fn with_authentication() -> Self {
        Null {
            authenticate: true,
            ..Self::default()
        }
    }
}

impl Mechanism for Null {
    fn name(&self) -> &'static str {
        "NULL"
    }

    fn as_server(&self) -> bool {
        false
    }

    fn start(
        &mut self,
        _peer_as_server: bool,
        local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        if !self.authenticate {
            write_ready(out, local);
            self.sent_ready = true;
        }
        Ok(Step::Continue)
    }

    fn handle_command(
        &mut self,
        cmd: RawCommand<'_>,
        _local: &Metadata,
        _out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        match cmd.name {
            b"READY" if self.peer_metadata.is_none() => {
                let md = Metadata::decode(cmd.data, "READY")?;
                if self.authenticate {
                    self.peer_metadata = Some(md.clone());
                    Ok(Step::Authenticate(AuthRequest {
                        mechanism: "NULL",
                        credentials: Vec::new(),
                        peer_metadata: md,
                    }))
                } else {
                    Ok(Step::Complete {
                        peer_metadata: md,
                        user_id: None,
                    })
                }
            }
            b"ERROR" => Err(ProtocolError::PeerError(parse_error(&cmd)?)),
            _ => Err(ProtocolError::UnexpectedCommand {
                command: cmd.name_str(),
                state: "during the NULL handshake",
            }),
        }
    }

    fn handle_auth(
        &mut self,
        reply: AuthReply,
        local: &Metadata,
        out: &mut BytesMut,
    ) -> Result<Step, ProtocolError> {
        let Some(peer_metadata) = self.peer_metadata.take() else {
            return Err(ProtocolError::Handshake {
                mechanism: "NULL",
                reason: "authentication answer without a request".into(),
            });
        };
        match reply {
            AuthReply::Allow { user_id } => {
                write_ready(out, local);
                self.sent_ready = true;
                Ok(Step::Complete {
                    peer_metadata,
                    user_id: Some(user_id),
                })
            }
            AuthReply::Deny { status, reason } => super::refuse(out, status, reason),
        }
    }
}
