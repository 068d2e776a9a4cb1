//! ZMTP commands: a name (length-prefixed) and command data, carried in a
//! COMMAND frame. This module parses the command envelope and builds the
//! commands the engine itself sends. Mechanism-specific commands (HELLO,
//! WELCOME, INITIATE, MESSAGE, …) are parsed by their mechanisms.

use bytes::{BufMut, BytesMut};

use crate::frame::{encode_header, FLAG_COMMAND};
use crate::{Metadata, ProtocolError};

/// A command as it arrived: its name and the bytes after the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawCommand<'a> {
    /// Command name, for example `b"READY"`.
    pub name: &'a [u8],
    /// Command data.
    pub data: &'a [u8],
}

impl<'a> RawCommand<'a> {
    /// Splits a COMMAND frame body into name and data.
    ///
    /// # Errors
    /// [`ProtocolError::MalformedFrame`] for an empty body or a name that
    /// runs past the end.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let (&nlen, rest) = body
            .split_first()
            .ok_or(ProtocolError::MalformedFrame("empty command frame"))?;
        let nlen = nlen as usize;
        if nlen == 0 || rest.len() < nlen {
            return Err(ProtocolError::MalformedFrame(
                "command name length is invalid",
            ));
        }
        Ok(RawCommand {
            name: &rest[..nlen],
            data: &rest[nlen..],
        })
    }

    /// The name as text, for messages.
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(self.name).into_owned()
    }

    /// An error saying this command is malformed.
    pub fn malformed(&self, reason: &'static str) -> ProtocolError {
        ProtocolError::MalformedCommand {
            command: self.name_str(),
            reason,
        }
    }
}

/// Writes a complete COMMAND frame: header, name, then `data_len` bytes that
/// the caller's `data` closure appends.
pub fn write_command(
    out: &mut BytesMut,
    name: &str,
    data_len: usize,
    data: impl FnOnce(&mut BytesMut),
) {
    let body_len = 1 + name.len() + data_len;
    out.reserve(9 + body_len);
    encode_header(FLAG_COMMAND, body_len, out);
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    let before = out.len();
    data(out);
    debug_assert_eq!(out.len() - before, data_len, "command {name} data length");
}

/// A command body (name and data, without the frame header), for commands
/// that an encrypting mechanism boxes.
pub fn body(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + name.len() + data.len());
    b.push(name.len() as u8);
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(data);
    b
}

/// READY with metadata.
pub fn write_ready(out: &mut BytesMut, metadata: &Metadata) {
    write_command(out, "READY", metadata.encoded_len(), |o| metadata.encode(o));
}

/// ERROR with a reason (truncated to 255 bytes on a character boundary).
pub fn write_error(out: &mut BytesMut, reason: &str) {
    let mut end = reason.len().min(255);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason[..end];
    write_command(out, "ERROR", 1 + reason.len(), |o| {
        o.put_u8(reason.len() as u8);
        o.put_slice(reason.as_bytes());
    });
}

/// Parses ERROR's reason.
///
/// # Errors
/// Malformed when the reason length runs past the end.
pub fn parse_error(cmd: &RawCommand<'_>) -> Result<String, ProtocolError> {
    let (&len, rest) = cmd
        .data
        .split_first()
        .ok_or_else(|| cmd.malformed("missing reason length"))?;
    let reason = rest
        .get(..len as usize)
        .ok_or_else(|| cmd.malformed("reason runs past the end"))?;
    Ok(String::from_utf8_lossy(reason).into_owned())
}

/// The body of a PING: TTL in tenths of a second, then up to 16 bytes of
/// context. (Bodies, not frames: after a CURVE handshake it travels boxed.)
pub fn ping_body(ttl_deciseconds: u16, context: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(2 + context.len());
    data.extend_from_slice(&ttl_deciseconds.to_be_bytes());
    data.extend_from_slice(context);
    body("PING", &data)
}

/// Parses PING into (ttl in deciseconds, context).
///
/// # Errors
/// Malformed when shorter than 2 bytes or with more than 16 bytes of context.
pub fn parse_ping<'a>(cmd: &RawCommand<'a>) -> Result<(u16, &'a [u8]), ProtocolError> {
    if cmd.data.len() < 2 {
        return Err(cmd.malformed("shorter than its TTL field"));
    }
    let context = &cmd.data[2..];
    if context.len() > 16 {
        return Err(cmd.malformed("context longer than 16 bytes"));
    }
    Ok((u16::from_be_bytes([cmd.data[0], cmd.data[1]]), context))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_exact_bytes() {
        let mut m = Metadata::new();
        m.insert("Socket-Type", "PUSH");
        let mut out = BytesMut::new();
        write_ready(&mut out, &m);
        assert_eq!(
            &out[..],
            b"\x04\x1a\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH"
        );
        let cmd = RawCommand::parse(&out[2..]).unwrap();
        assert_eq!(cmd.name, b"READY");
        assert_eq!(Metadata::decode(cmd.data, "READY").unwrap(), m);
    }

    #[test]
    fn error_round_trip_and_truncation() {
        let mut out = BytesMut::new();
        write_error(&mut out, "invalid socket type");
        assert_eq!(&out[..], b"\x04\x1a\x05ERROR\x13invalid socket type");
        let cmd = RawCommand::parse(&out[2..]).unwrap();
        assert_eq!(parse_error(&cmd).unwrap(), "invalid socket type");
        out.clear();
        write_error(&mut out, &"é".repeat(200));
        let cmd = RawCommand::parse(&out[9..]).unwrap();
        assert_eq!(parse_error(&cmd).unwrap().len(), 254);
    }

    #[test]
    fn ping_pong() {
        let mut out = BytesMut::new();
        crate::frame::encode_frame(
            crate::frame::FLAG_COMMAND,
            &ping_body(300, b"ctx"),
            &mut out,
        );
        assert_eq!(&out[..], b"\x04\x0a\x04PING\x01\x2cctx");
        let cmd = RawCommand::parse(&out[2..]).unwrap();
        assert_eq!(parse_ping(&cmd).unwrap(), (300, &b"ctx"[..]));
        assert!(parse_ping(&RawCommand {
            name: b"PING",
            data: b"\x00"
        })
        .is_err());
        assert!(parse_ping(&RawCommand {
            name: b"PING",
            data: &[0u8; 19]
        })
        .is_err());
    }

    #[test]
    fn bad_envelopes() {
        assert!(RawCommand::parse(b"").is_err());
        assert!(RawCommand::parse(b"\x00").is_err());
        assert!(RawCommand::parse(b"\x05READ").is_err());
        assert!(parse_error(&RawCommand {
            name: b"ERROR",
            data: b"\x05ab"
        })
        .is_err());
    }
}
