//! Object codecs: how typed objects become the bytes a relay carries.
//!
//! [`MsgPack`] is the default: compact, and readable from any language.
//! [`Pickle`] writes and reads Python pickles of plain data (numbers,
//! strings, bytes, lists, tuples, dicts) and never runs code, so objects can
//! be exchanged with tlspyo endpoints. Raw bytes need no codec: use the
//! endpoint's `*_bytes` methods. Any other format is a [`Codec`]
//! implementation away.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// Turns typed objects into bytes and back.
///
/// # Example
/// A JSON-lines codec would look like this (with `serde_json`):
/// ```ignore
/// struct Json;
/// impl ironhouse_relay::Codec for Json {
///     fn encode<T: serde::Serialize + ?Sized>(&self, v: &T) -> ironhouse_relay::Result<bytes::Bytes> {
///         serde_json::to_vec(v).map(Into::into).map_err(|e| ironhouse_relay::Error::Codec(e.to_string()))
///     }
///     fn decode<T: serde::de::DeserializeOwned>(&self, b: &[u8]) -> ironhouse_relay::Result<T> {
///         serde_json::from_slice(b).map_err(|e| ironhouse_relay::Error::Codec(e.to_string()))
///     }
/// }
/// ```
pub trait Codec: Send + Sync + 'static {
    /// Encodes one object.
    ///
    /// # Errors
    /// [`Error::Codec`] when the value cannot be represented.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes>;
    /// Decodes one object.
    ///
    /// # Errors
    /// [`Error::Codec`] when the bytes are not a `T` in this format.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T>;
}

/// MessagePack (rmp-serde), structs as maps so other languages see field
/// names. The default codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl Codec for MsgPack {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        rmp_serde::to_vec_named(value)
            .map(Bytes::from)
            .map_err(|e| Error::Codec(format!("MessagePack encode: {e}")))
    }
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        rmp_serde::from_slice(bytes).map_err(|e| Error::Codec(format!("MessagePack decode: {e}")))
    }
}

/// Python pickle of plain data (serde-pickle: protocol 3 out, 0 to 5 in).
/// Decoding refuses pickles that would import or call anything, so a
/// hostile peer cannot run code. Python `bytes` map to
/// `serde_bytes::ByteBuf`-style byte buffers; `Vec<u8>` is a list of ints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pickle;

impl Codec for Pickle {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes> {
        let mut out = Vec::new();
        serde_pickle::to_writer(&mut out, &value, serde_pickle::SerOptions::new())
            .map(|()| Bytes::from(out))
            .map_err(|e| Error::Codec(format!("pickle encode: {e}")))
    }
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_pickle::from_slice(bytes, serde_pickle::DeOptions::new())
            .map_err(|e| Error::Codec(format!("pickle decode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        label: String,
    }

    #[test]
    fn both_codecs_round_trip_and_reject_garbage() {
        let p = Point {
            x: -3,
            label: "é".into(),
        };
        let m = MsgPack.encode(&p).unwrap();
        assert_eq!(MsgPack.decode::<Point>(&m).unwrap(), p);
        let k = Pickle.encode(&p).unwrap();
        assert_eq!(Pickle.decode::<Point>(&k).unwrap(), p);
        assert!(MsgPack.decode::<Point>(b"\xc1").is_err());
        assert!(Pickle.decode::<Point>(b"garbage").is_err());
    }

    #[test]
    fn pickle_refuses_code() {
        // cos\nsystem\n(S'true'\ntR. : os.system("true") in protocol 0.
        let evil = b"cos\nsystem\n(S'true'\ntR.";
        let r = Pickle.decode::<serde_pickle::Value>(evil);
        assert!(r.is_err(), "a GLOBAL/REDUCE pickle must be refused: {r:?}");
    }
}
