//! A ZeroMQ message: one or more frames, sent and received atomically.

use bytes::Bytes;
use smallvec::SmallVec;

/// A multipart message. Frames are reference-counted [`Bytes`], so cloning a
/// message (as PUB does for each subscriber) never copies payloads.
///
/// ```
/// use ironhouse_zmtp::Message;
/// let mut m = Message::from_iter(["a", "b"]);
/// m.push_front(bytes::Bytes::from_static(b"id"));
/// assert_eq!(m.len(), 3);
/// assert_eq!(m.size(), 4);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Message {
    frames: SmallVec<[Bytes; 2]>,
}

impl Message {
    /// An empty message (no frames). Sending one sends a single empty frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frames, first to last.
    pub fn frames(&self) -> &[Bytes] {
        &self.frames
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when there are no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Total payload bytes over all frames.
    pub fn size(&self) -> usize {
        self.frames.iter().map(Bytes::len).sum()
    }

    /// Appends a frame.
    pub fn push_back(&mut self, frame: impl Into<Bytes>) {
        self.frames.push(frame.into());
    }

    /// Prepends a frame (routing ids, envelope delimiters).
    pub fn push_front(&mut self, frame: impl Into<Bytes>) {
        self.frames.insert(0, frame.into());
    }

    /// Removes and returns the first frame.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        if self.frames.is_empty() {
            None
        } else {
            Some(self.frames.remove(0))
        }
    }

    /// Splits off the first `n` frames (an envelope) and returns them.
    pub fn split_front(&mut self, n: usize) -> Message {
        let n = n.min(self.frames.len());
        let rest = self.frames.drain(n..).collect();
        let head = std::mem::replace(&mut self.frames, rest);
        Message { frames: head }
    }

    /// Consumes the message, returning its frames.
    pub fn into_frames(self) -> impl Iterator<Item = Bytes> {
        self.frames.into_iter()
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        let mut frames = SmallVec::new();
        frames.push(b);
        Message { frames }
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl From<&[u8]> for Message {
    fn from(v: &[u8]) -> Self {
        Bytes::copy_from_slice(v).into()
    }
}

impl From<&str> for Message {
    fn from(v: &str) -> Self {
        v.as_bytes().into()
    }
}

impl From<String> for Message {
    fn from(v: String) -> Self {
        Bytes::from(v).into()
    }
}

impl From<Vec<Bytes>> for Message {
    fn from(v: Vec<Bytes>) -> Self {
        v.into_iter().collect()
    }
}

impl<T: Into<Bytes>> FromIterator<T> for Message {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Message {
            frames: iter.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_front_envelope() {
        let mut m = Message::from_iter(["id", "", "body"]);
        let env = m.split_front(2);
        assert_eq!(env.frames(), &[Bytes::from("id"), Bytes::new()]);
        assert_eq!(m.frames(), &[Bytes::from("body")]);
        assert_eq!(m.split_front(9).len(), 1);
        assert!(m.is_empty());
    }
}
