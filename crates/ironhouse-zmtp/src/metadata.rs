//! ZMTP metadata: the name/value properties carried by READY (and by
//! PLAIN's INITIATE and CURVE's INITIATE/READY boxes).
//!
//! Wire form of each property: name length (1 octet), name, value length
//! (4 octets, network order), value. Names compare case-insensitively.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ProtocolError;

/// An ordered list of metadata properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    props: Vec<(String, Bytes)>,
}

impl Metadata {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a property.
    ///
    /// # Panics
    /// Panics if `name` is empty or longer than 255 bytes.
    pub fn insert(&mut self, name: &str, value: impl Into<Bytes>) {
        assert!(
            !name.is_empty() && name.len() <= 255,
            "metadata name must be 1..=255 bytes"
        );
        let value = value.into();
        match self
            .props
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.props.push((name.to_string(), value)),
        }
    }

    /// Looks a property up by name, ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All properties, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.props.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        self.props
            .iter()
            .map(|(n, v)| 1 + n.len() + 4 + v.len())
            .sum()
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(self.encoded_len());
        for (n, v) in &self.props {
            out.put_u8(n.len() as u8);
            out.put_slice(n.as_bytes());
            out.put_u32(v.len() as u32);
            out.put_slice(v);
        }
    }

    /// Parses the wire form. `command` names the carrier for error messages.
    ///
    /// # Errors
    /// [`ProtocolError::MalformedCommand`] when a length runs past the end or a
    /// name is empty or not printable ASCII.
    pub fn decode(mut data: &[u8], command: &str) -> Result<Self, ProtocolError> {
        let bad = |reason| ProtocolError::MalformedCommand {
            command: command.to_string(),
            reason,
        };
        let mut props = Vec::new();
        while !data.is_empty() {
            let nlen = data[0] as usize;
            if nlen == 0 {
                return Err(bad("empty metadata name"));
            }
            let name = data
                .get(1..1 + nlen)
                .ok_or_else(|| bad("metadata name runs past the end"))?;
            if !name.iter().all(|b| b.is_ascii_graphic()) {
                return Err(bad("metadata name is not printable ASCII"));
            }
            let rest = &data[1 + nlen..];
            let vlen_bytes: [u8; 4] = rest
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| bad("metadata value length runs past the end"))?;
            let vlen = u32::from_be_bytes(vlen_bytes) as usize;
            let value = rest
                .get(4..4usize.saturating_add(vlen))
                .ok_or_else(|| bad("metadata value runs past the end"))?;
            props.push((
                String::from_utf8_lossy(name).into_owned(),
                Bytes::copy_from_slice(value),
            ));
            data = &rest[4 + vlen..];
        }
        Ok(Metadata { props })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bytes() {
        let mut m = Metadata::new();
        m.insert("Socket-Type", "REQ");
        m.insert("Identity", Bytes::new());
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(
            &out[..],
            b"\x0bSocket-Type\x00\x00\x00\x03REQ\x08Identity\x00\x00\x00\x00"
        );
        assert_eq!(Metadata::decode(&out, "READY").unwrap(), m);
        assert_eq!(m.get("socket-type").unwrap().as_ref(), b"REQ");
    }

    #[test]
    fn truncated_is_error_not_panic() {
        let full = b"\x0bSocket-Type\x00\x00\x00\x03REQ";
        for n in 1..full.len() {
            assert!(Metadata::decode(&full[..n], "READY").is_err(), "prefix {n}");
        }
        assert!(Metadata::decode(b"\x01A\xff\xff\xff\xffxx", "READY").is_err());
    }
}
