//! Several small objects in one frame, for the batched commands OBJS and
//! BCASTS: each object is a 4-byte big-endian length, then its bytes.
//!
//! Why one frame and not one frame per object: the relay forwards a
//! publisher's batch to every batch-capable member as the very same frame
//! (a reference count, no copy, no per-object work), so a broadcast of many
//! small objects costs the relay about as much as one object. The relay
//! only walks the lengths once, to check the frame and find its last object
//! (the one it retains for late joiners).

use bytes::{BufMut, Bytes, BytesMut};

/// The length prefix at `at`, if four bytes are there.
fn len_at(bytes: &[u8], at: usize) -> Option<usize> {
    let head = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize)
}

/// A checked batch of objects (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    bytes: Bytes,
    count: usize,
    /// Where the last object's bytes start.
    last_at: usize,
}

impl Packed {
    /// Checks a received frame: whole objects, at least one, nothing after
    /// the last.
    ///
    /// # Errors
    /// What is wrong, for a [`super::Malformed`].
    pub fn parse(bytes: Bytes) -> Result<Packed, String> {
        let (mut at, mut count, mut last_at) = (0usize, 0usize, 0usize);
        while at < bytes.len() {
            let Some(len) = len_at(&bytes, at) else {
                return Err("a batched object's length is cut short".into());
            };
            let start = at + 4;
            if bytes.len() - start < len {
                return Err(format!(
                    "a batched object says {len} bytes, {} remain",
                    bytes.len() - start
                ));
            }
            last_at = start;
            at = start + len;
            count += 1;
        }
        if count == 0 {
            return Err("an empty batch".into());
        }
        Ok(Packed {
            bytes,
            count,
            last_at,
        })
    }

    /// Number of objects.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The frame as sent.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The last object.
    pub fn last(&self) -> Bytes {
        self.bytes.slice(self.last_at..)
    }

    /// The objects, in order, as slices of the frame (no copies).
    pub fn iter(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = len_at(&self.bytes, at)?;
            let obj = self.bytes.slice(at + 4..at + 4 + len);
            at += 4 + len;
            Some(obj)
        })
    }

    /// The batch without its first `n` objects; `None` if nothing remains.
    pub fn skip(&self, n: usize) -> Option<Packed> {
        if n >= self.count {
            return None;
        }
        let mut at = 0;
        for _ in 0..n {
            at += 4 + len_at(&self.bytes, at).expect("checked by parse");
        }
        Some(Packed {
            bytes: self.bytes.slice(at..),
            count: self.count - n,
            last_at: self.last_at - at,
        })
    }
}

/// Builds a [`Packed`] batch, object by object.
#[derive(Debug, Default)]
pub struct PackedBuilder {
    buf: BytesMut,
    count: usize,
    last_at: usize,
}

impl PackedBuilder {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one object.
    ///
    /// # Panics
    /// If the object is 4 GiB or more (batches are for small objects).
    pub fn push(&mut self, obj: &[u8]) {
        let len = u32::try_from(obj.len()).expect("a batched object is under 4 GiB");
        self.buf.reserve(4 + obj.len());
        self.buf.put_u32(len);
        self.last_at = self.buf.len();
        self.buf.extend_from_slice(obj);
        self.count += 1;
    }

    /// Objects so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Bytes so far, lengths included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no object was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch, or `None` if it is empty; the builder starts over.
    pub fn finish(&mut self) -> Option<Packed> {
        if self.count == 0 {
            return None;
        }
        let p = Packed {
            bytes: self.buf.split().freeze(),
            count: self.count,
            last_at: self.last_at,
        };
        self.count = 0;
        self.last_at = 0;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(objs: &[&[u8]]) -> Packed {
        let mut b = PackedBuilder::new();
        for o in objs {
            b.push(o);
        }
        b.finish().unwrap()
    }

    #[test]
    fn builds_parses_iterates_and_skips() {
        let p = batch(&[b"one", b"", b"three"]);
        assert_eq!(p.count(), 3);
        assert_eq!(p.last(), Bytes::from_static(b"three"));
        let again = Packed::parse(p.bytes().clone()).unwrap();
        assert_eq!(again, p);
        let all: Vec<Bytes> = p.iter().collect();
        assert_eq!(all, [&b"one"[..], b"", b"three"]);
        let rest = p.skip(1).unwrap();
        assert_eq!(rest.count(), 2);
        assert_eq!(rest.iter().collect::<Vec<_>>(), [&b""[..], b"three"]);
        assert_eq!(rest.last(), Bytes::from_static(b"three"));
        assert_eq!(Packed::parse(rest.bytes().clone()).unwrap(), rest);
        assert!(p.skip(3).is_none());
    }

    #[test]
    fn the_builder_starts_over_after_finish() {
        let mut b = PackedBuilder::new();
        assert!(b.finish().is_none());
        b.push(b"a");
        assert_eq!(b.finish().unwrap().count(), 1);
        assert!(b.is_empty());
        b.push(b"bc");
        let p = b.finish().unwrap();
        assert_eq!(p.iter().collect::<Vec<_>>(), [&b"bc"[..]]);
    }

    #[test]
    fn broken_frames_are_errors() {
        for bad in [
            &b""[..],
            b"\x00\x00",
            b"\x00\x00\x00\x05abc",
            b"\x00\x00\x00\x01a\x00",
            b"\xff\xff\xff\xff",
        ] {
            assert!(
                Packed::parse(Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
