//! Z85 (RFC 32): the text form of CURVE keys. Four bytes become five
//! characters from an 85-symbol alphabet. Lengths are strict: no padding,
//! input must be a multiple of 4 bytes (encode) or 5 characters (decode).

/// The alphabet of RFC 32.
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Why a Z85 string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Z85Error {
    /// Length is not a multiple of 5.
    #[error("Z85 text length {0} is not a multiple of 5")]
    Length(usize),
    /// A character outside the alphabet.
    #[error("invalid Z85 character {0:?} at position {1}")]
    Char(char, usize),
    /// A group decodes to more than 32 bits.
    #[error("Z85 group at position {0} overflows 32 bits")]
    Overflow(usize),
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|v| v as u32)
}

/// Encodes bytes whose length is a multiple of 4.
///
/// # Panics
/// Panics if `data.len()` is not a multiple of 4; callers encode fixed-size
/// keys, so anything else is a bug.
///
/// ```
/// let text = ironhouse_zmtp::z85::encode(&[0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]);
/// assert_eq!(text, "HelloWorld");
/// ```
pub fn encode(data: &[u8]) -> String {
    assert!(data.len() % 4 == 0, "Z85 encodes multiples of 4 bytes");
    let mut out = String::with_capacity(data.len() / 4 * 5);
    for chunk in data.chunks(4) {
        let mut v = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut group = [0u8; 5];
        for slot in group.iter_mut().rev() {
            *slot = ALPHABET[(v % 85) as usize];
            v /= 85;
        }
        out.extend(group.iter().map(|&b| b as char));
    }
    out
}

/// Decodes Z85 text.
///
/// # Errors
/// [`Z85Error`] for a bad length, a character outside the alphabet or a group
/// above 2^32 − 1.
pub fn decode(text: &str) -> Result<Vec<u8>, Z85Error> {
    let bytes = text.as_bytes();
    if bytes.len() % 5 != 0 {
        return Err(Z85Error::Length(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 5 * 4);
    for (g, group) in bytes.chunks(5).enumerate() {
        let mut v: u64 = 0;
        for (i, &c) in group.iter().enumerate() {
            let d = value(c).ok_or_else(|| Z85Error::Char(char::from(c), g * 5 + i))?;
            v = v * 85 + u64::from(d);
        }
        let v = u32::try_from(v).map_err(|_| Z85Error::Overflow(g * 5))?;
        out.extend_from_slice(&v.to_be_bytes());
    }
    Ok(out)
}

/// Decodes a 40-character CURVE key into 32 bytes.
///
/// # Errors
/// [`Z85Error::Length`] unless the text is exactly 40 characters, or any
/// decoding error.
pub fn decode_key(text: &str) -> Result<[u8; 32], Z85Error> {
    if text.len() != 40 {
        return Err(Z85Error::Length(text.len()));
    }
    let v = decode(text)?;
    Ok(v.try_into().expect("40 characters decode to 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc32_vector() {
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode(&data), "HelloWorld");
        assert_eq!(decode("HelloWorld").unwrap(), data);
    }

    #[test]
    fn strict_errors() {
        assert_eq!(decode("Hello"), Ok(vec![0x86, 0x4F, 0xD2, 0x6F]));
        assert_eq!(decode("Hell"), Err(Z85Error::Length(4)));
        assert_eq!(decode("Hell\""), Err(Z85Error::Char('"', 4)));
        assert_eq!(decode("#####"), Err(Z85Error::Overflow(0)));
        assert!(decode_key("HelloWorld").is_err());
    }

    #[test]
    fn round_trip_all_byte_values() {
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&data)).unwrap(), data);
        let key = [0xffu8; 32];
        assert_eq!(decode_key(&encode(&key)).unwrap(), key);
    }
}
