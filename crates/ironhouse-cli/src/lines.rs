//! Message ↔ text line conversion for `ironhouse socket`: TAB separates
//! frames, ROUTER routing ids are hex, `--hex` prints every frame in hex.

use ironhouse::{hex, Bytes, Message};

/// Parses lowercase or uppercase hex.
pub fn unhex(s: &[u8]) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!(
            "routing id {:?} is not hex (odd length)",
            String::from_utf8_lossy(s)
        ));
    }
    s.chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
            match (d(p[0]), d(p[1])) {
                (Some(a), Some(b)) => Ok(a << 4 | b),
                _ => Err(format!(
                    "routing id {:?} is not hex",
                    String::from_utf8_lossy(s)
                )),
            }
        })
        .collect()
}

/// Turns an input line (without its newline) into a message. With
/// `first_is_hex` (ROUTER), the first frame is a hex routing id.
pub fn parse_line(line: &[u8], first_is_hex: bool) -> Result<Message, String> {
    let mut msg = Message::new();
    for (i, frame) in line.split(|&b| b == b'\t').enumerate() {
        if i == 0 && first_is_hex {
            msg.push_back(unhex(frame)?);
        } else {
            msg.push_back(Bytes::copy_from_slice(frame));
        }
    }
    Ok(msg)
}

/// How received messages are printed.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Every frame in hex.
    pub hex: bool,
    /// Frame sizes instead of contents.
    pub sizes: bool,
    /// First frame is a routing id (always hex).
    pub first_is_id: bool,
}

/// Formats a received message as one output line (without newline).
pub fn format_message(msg: &Message, f: Format) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.size() + msg.len());
    for (i, frame) in msg.frames().iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        if i == 0 && f.first_is_id {
            out.extend_from_slice(hex(frame).as_bytes());
        } else if f.sizes {
            out.extend_from_slice(frame.len().to_string().as_bytes());
        } else if f.hex {
            out.extend_from_slice(hex(frame).as_bytes());
        } else {
            out.extend_from_slice(frame);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let m = parse_line(b"00deadbeef\t\tbody", true).unwrap();
        assert_eq!(
            m.frames(),
            &[
                Bytes::from_static(&[0, 0xde, 0xad, 0xbe, 0xef]),
                Bytes::new(),
                Bytes::from("body")
            ]
        );
        let f = Format {
            hex: false,
            sizes: false,
            first_is_id: true,
        };
        assert_eq!(format_message(&m, f), b"00deadbeef\t\tbody");
        let f = Format {
            hex: true,
            sizes: false,
            first_is_id: false,
        };
        assert_eq!(format_message(&Message::from("AB"), f), b"4142");
        let f = Format {
            hex: false,
            sizes: true,
            first_is_id: false,
        };
        assert_eq!(format_message(&Message::from_iter(["abc", ""]), f), b"3\t0");
        assert_eq!(parse_line(b"", false).unwrap().frames(), &[Bytes::new()]);
        assert!(parse_line(b"xyz\tb", true).is_err());
    }
}
