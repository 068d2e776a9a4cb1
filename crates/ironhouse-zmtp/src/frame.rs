//! The ZMTP frame codec: a flags octet (MORE, LONG, COMMAND), a 1- or 8-octet
//! size, then the body.
//!
//! The decoder reads only the header before deciding: a frame larger than
//! the caller's limit is refused before a single body byte is buffered.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ProtocolError;

/// More frames of the same message follow.
pub const FLAG_MORE: u8 = 0x01;
/// The size is 8 octets (otherwise 1).
pub const FLAG_LONG: u8 = 0x02;
/// The frame is a command, not message data.
pub const FLAG_COMMAND: u8 = 0x04;
const RESERVED: u8 = !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND);

/// Frames up to this size are copied out of the read buffer; larger ones are
/// split off it without copying. Copying small frames stops a tiny message
/// from pinning a large read buffer in memory.
pub const COPY_THRESHOLD: usize = 1024;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The flags octet.
    pub flags: u8,
    /// Body length.
    pub len: u64,
    /// Header length on the wire (2 or 9).
    pub header_len: usize,
}

impl FrameHeader {
    /// MORE flag.
    pub fn more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }
    /// COMMAND flag.
    pub fn command(&self) -> bool {
        self.flags & FLAG_COMMAND != 0
    }
}

/// Parses a header from the front of `buf` without consuming it.
/// `Ok(None)` means more bytes are needed.
///
/// # Errors
/// [`ProtocolError::MalformedFrame`] for reserved flag bits or a command
/// with MORE set.
pub fn peek_header(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
    let Some(&flags) = buf.first() else {
        return Ok(None);
    };
    if flags & RESERVED != 0 {
        return Err(ProtocolError::MalformedFrame("reserved flag bits set"));
    }
    if flags & FLAG_COMMAND != 0 && flags & FLAG_MORE != 0 {
        return Err(ProtocolError::MalformedFrame(
            "command frame with MORE flag",
        ));
    }
    if flags & FLAG_LONG != 0 {
        let Some(size) = buf.get(1..9) else {
            return Ok(None);
        };
        let len = u64::from_be_bytes(size.try_into().expect("8 bytes"));
        if len > i64::MAX as u64 {
            return Err(ProtocolError::MalformedFrame("frame size above 2^63"));
        }
        Ok(Some(FrameHeader {
            flags,
            len,
            header_len: 9,
        }))
    } else {
        let Some(&len) = buf.get(1) else {
            return Ok(None);
        };
        Ok(Some(FrameHeader {
            flags,
            len: u64::from(len),
            header_len: 2,
        }))
    }
}

/// Writes a frame header, choosing the short form when the body fits.
pub fn encode_header(flags: u8, len: usize, out: &mut BytesMut) {
    let flags = flags & (FLAG_MORE | FLAG_COMMAND);
    if len <= 255 {
        out.put_u8(flags);
        out.put_u8(len as u8);
    } else {
        out.put_u8(flags | FLAG_LONG);
        out.put_u64(len as u64);
    }
}

/// Writes a whole frame (header and body) into `out`.
pub fn encode_frame(flags: u8, body: &[u8], out: &mut BytesMut) {
    out.reserve(9 + body.len());
    encode_header(flags, body.len(), out);
    out.put_slice(body);
}

/// Takes a frame body of `len` bytes from the front of `buf` (which must hold it).
pub(crate) fn take_body(buf: &mut BytesMut, len: usize) -> Bytes {
    if len <= COPY_THRESHOLD {
        let b = Bytes::copy_from_slice(&buf[..len]);
        buf.advance(len);
        b
    } else {
        buf.split_to(len).freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_exact_bytes() {
        let mut out = BytesMut::new();
        encode_frame(FLAG_MORE, b"abc", &mut out);
        assert_eq!(&out[..], b"\x01\x03abc");
        out.clear();
        encode_frame(0, &[7u8; 256], &mut out);
        assert_eq!(&out[..9], b"\x02\x00\x00\x00\x00\x00\x00\x01\x00");
        assert_eq!(out.len(), 9 + 256);
        out.clear();
        encode_frame(FLAG_COMMAND, b"\x04PING", &mut out);
        assert_eq!(&out[..], b"\x04\x05\x04PING");
    }

    #[test]
    fn header_needs_bytes() {
        assert_eq!(peek_header(b"").unwrap(), None);
        assert_eq!(peek_header(b"\x00").unwrap(), None);
        assert_eq!(peek_header(b"\x02\x00\x00").unwrap(), None);
        let h = peek_header(b"\x03\x00\x00\x00\x00\x00\x00\x01\x00")
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.header_len, h.more()), (256, 9, true));
    }

    #[test]
    fn bad_headers() {
        assert!(peek_header(b"\x08\x00").is_err());
        assert!(peek_header(b"\x05\x00").is_err());
        assert!(peek_header(b"\x02\xff\xff\xff\xff\xff\xff\xff\xff").is_err());
    }
}
