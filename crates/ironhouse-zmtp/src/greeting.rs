//! The 64-byte ZMTP greeting: signature, version, mechanism and as-server flag.
//!
//! Validation is incremental ([`GreetingDecoder`]), so garbage on a port is
//! refused after its first byte instead of after 64.

use crate::ProtocolError;

/// Length of a full ZMTP 3.x greeting.
pub const GREETING_LEN: usize = 64;
/// Major version this engine speaks.
pub const VERSION_MAJOR: u8 = 3;
/// Minor version this engine announces.
pub const VERSION_MINOR: u8 = 1;

/// A decoded greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// ZMTP minor version (0 or 1 for accepted peers).
    pub minor: u8,
    /// Mechanism name, for example `NULL`, `PLAIN` or `CURVE`.
    pub mechanism: String,
    /// The as-server flag.
    pub as_server: bool,
}

/// Encodes our greeting.
///
/// # Panics
/// Panics if `mechanism` is longer than 20 bytes; mechanism names are
/// compile-time constants of this crate and its users.
pub fn encode(mechanism: &str, as_server: bool) -> [u8; GREETING_LEN] {
    assert!(mechanism.len() <= 20, "mechanism name longer than 20 bytes");
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = VERSION_MAJOR;
    g[11] = VERSION_MINOR;
    g[12..12 + mechanism.len()].copy_from_slice(mechanism.as_bytes());
    g[32] = u8::from(as_server);
    g
}

/// Accumulates a peer's greeting and validates each byte as soon as it arrives.
#[derive(Debug)]
pub struct GreetingDecoder {
    buf: [u8; GREETING_LEN],
    len: usize,
}

impl Default for GreetingDecoder {
    fn default() -> Self {
        GreetingDecoder {
            buf: [0; GREETING_LEN],
            len: 0,
        }
    }
}

impl GreetingDecoder {
    /// Feeds bytes; returns how many were consumed and the greeting once complete.
    ///
    /// # Errors
    /// [`ProtocolError::NotZmtp`] for a bad signature,
    /// [`ProtocolError::UnsupportedVersion`] for a major other than 3,
    /// [`ProtocolError::MalformedGreeting`] for a bad mechanism field.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Greeting>), ProtocolError> {
        let take = input.len().min(GREETING_LEN - self.len);
        let start = self.len;
        self.buf[start..start + take].copy_from_slice(&input[..take]);
        self.len += take;
        // Validate the newly arrived positions.
        for i in start..self.len {
            match i {
                0 if self.buf[0] != 0xFF => return Err(ProtocolError::NotZmtp),
                // Byte 9's low bit marks a ZMTP >= 2 peer; 1.0 peers put a length here.
                9 if self.buf[9] & 0x01 != 0x01 => return Err(ProtocolError::NotZmtp),
                // RFC 23: a peer speaking a higher version downgrades to ours,
                // so only older majors (1.0, 2.0) are refused.
                10 if self.buf[10] < VERSION_MAJOR => {
                    return Err(ProtocolError::UnsupportedVersion {
                        major: self.buf[10],
                        minor: if self.len > 11 { self.buf[11] } else { 0 },
                    })
                }
                _ => {}
            }
        }
        if self.len < GREETING_LEN {
            return Ok((take, None));
        }
        let mech = &self.buf[12..32];
        let end = mech.iter().position(|&b| b == 0).unwrap_or(20);
        if mech[end..].iter().any(|&b| b != 0) {
            return Err(ProtocolError::MalformedGreeting(
                "mechanism not zero-padded",
            ));
        }
        let name = &mech[..end];
        if name.is_empty()
            || !name.iter().all(|b| {
                b.is_ascii_uppercase()
                    || b.is_ascii_digit()
                    || *b == b'-'
                    || *b == b'_'
                    || *b == b'.'
                    || *b == b'+'
            })
        {
            return Err(ProtocolError::MalformedGreeting(
                "mechanism name is not a valid name",
            ));
        }
        Ok((
            take,
            Some(Greeting {
                // A higher major speaks our version, 3.1, with us.
                minor: if self.buf[10] > VERSION_MAJOR {
                    VERSION_MINOR
                } else {
                    self.buf[11]
                },
                mechanism: String::from_utf8_lossy(name).into_owned(),
                as_server: self.buf[32] == 1,
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_exact_bytes() {
        let g = encode("NULL", false);
        let mut want = [0u8; 64];
        want[0] = 0xFF;
        want[9] = 0x7F;
        want[10] = 3;
        want[11] = 1;
        want[12..16].copy_from_slice(b"NULL");
        assert_eq!(g, want);
        assert_eq!(encode("CURVE", true)[32], 1);
    }

    #[test]
    fn decodes_byte_by_byte() {
        let g = encode("PLAIN", true);
        let mut d = GreetingDecoder::default();
        for (i, b) in g.iter().enumerate() {
            let (n, out) = d.feed(std::slice::from_ref(b)).unwrap();
            assert_eq!(n, 1);
            assert_eq!(out.is_some(), i == 63);
            if let Some(out) = out {
                assert_eq!(
                    out,
                    Greeting {
                        minor: 1,
                        mechanism: "PLAIN".into(),
                        as_server: true
                    }
                );
            }
        }
    }

    #[test]
    fn accepts_3_0() {
        let mut g = encode("NULL", false);
        g[11] = 0;
        let (_, out) = GreetingDecoder::default().feed(&g).unwrap();
        assert_eq!(out.unwrap().minor, 0);
    }

    #[test]
    fn garbage_rejected_on_first_byte() {
        assert_eq!(
            GreetingDecoder::default().feed(b"G"),
            Err(ProtocolError::NotZmtp)
        );
        assert_eq!(
            GreetingDecoder::default().feed(b"GET / HTTP/1.1\r\n"),
            Err(ProtocolError::NotZmtp)
        );
    }

    #[test]
    fn older_majors_rejected_newer_accepted() {
        let mut g = encode("NULL", false);
        g[10] = 2;
        g[11] = 0;
        assert_eq!(
            GreetingDecoder::default().feed(&g),
            Err(ProtocolError::UnsupportedVersion { major: 2, minor: 0 })
        );
        let mut g = encode("NULL", false);
        g[10] = 4;
        g[11] = 7;
        let (_, out) = GreetingDecoder::default().feed(&g).unwrap();
        assert_eq!(out.unwrap().minor, 1, "a newer peer downgrades to 3.1");
    }

    #[test]
    fn zmtp1_length_prefix_rejected() {
        // ZMTP 1.0: a length byte then flags; byte 9's low bit is 0.
        let mut g = [0u8; 64];
        g[0] = 0xFF;
        g[9] = 0x00;
        assert_eq!(
            GreetingDecoder::default().feed(&g),
            Err(ProtocolError::NotZmtp)
        );
    }

    #[test]
    fn bad_mechanism_padding_rejected() {
        let mut g = encode("NULL", false);
        g[20] = b'X';
        assert!(matches!(
            GreetingDecoder::default().feed(&g),
            Err(ProtocolError::MalformedGreeting(_))
        ));
    }
}
