//! The outgoing byte queue of a connection.
//!
//! Small frames are copied into one contiguous buffer (so many tiny messages
//! leave in one write); large bodies are queued as shared chunks and written
//! with vectored I/O, never copied.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Bodies at least this large are queued by reference instead of copied.
pub const ZERO_COPY_THRESHOLD: usize = 16 * 1024;

/// Bytes waiting to be written to the peer, in order.
#[derive(Debug, Default)]
pub struct Transmit {
    /// Completed chunks, oldest first.
    chunks: VecDeque<Bytes>,
    /// The chunk being filled with small writes; it goes after `chunks`.
    tail: BytesMut,
    /// Bytes in `chunks`.
    chunks_len: usize,
}

impl Transmit {
    /// Total bytes queued.
    pub fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buffer for small appends (headers, small bodies, commands).
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Queues a body: copied if small, by reference if large.
    pub(crate) fn push_body(&mut self, body: &Bytes) {
        if body.len() >= ZERO_COPY_THRESHOLD {
            if !self.tail.is_empty() {
                self.chunks_len += self.tail.len();
                self.chunks.push_back(self.tail.split().freeze());
            }
            self.chunks_len += body.len();
            self.chunks.push_back(body.clone());
        } else {
            self.tail.extend_from_slice(body);
        }
    }

    /// Fills `dst` with slices to write, oldest first; returns how many.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for c in &self.chunks {
            if n == dst.len() {
                return n;
            }
            dst[n] = IoSlice::new(c);
            n += 1;
        }
        if n < dst.len() && !self.tail.is_empty() {
            dst[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }

    /// The first contiguous run of queued bytes.
    pub fn first_chunk(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail,
        }
    }

    /// Marks `n` bytes as written.
    ///
    /// # Panics
    /// Panics if `n` exceeds [`Transmit::len`]: the caller wrote bytes it was
    /// never given.
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len(), "advanced past the queued bytes");
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if c.len() <= n => {
                    n -= c.len();
                    self.chunks_len -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    self.chunks_len -= n;
                    return;
                }
                None => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }

    /// Takes everything queued as owned chunks (for in-memory pumps and tests).
    pub fn take_all(&mut self) -> Vec<Bytes> {
        let mut v: Vec<Bytes> = self.chunks.drain(..).collect();
        if !self.tail.is_empty() {
            v.push(self.tail.split().freeze());
        }
        self.chunks_len = 0;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_copied_large_by_reference() {
        let mut t = Transmit::default();
        t.tail().extend_from_slice(b"hdr");
        let big = Bytes::from(vec![1u8; ZERO_COPY_THRESHOLD]);
        t.push_body(&big);
        t.push_body(&Bytes::from_static(b"x"));
        assert_eq!(t.len(), 3 + ZERO_COPY_THRESHOLD + 1);
        let mut s = [IoSlice::new(&[]); 8];
        assert_eq!(t.io_slices(&mut s), 3);
        assert_eq!(s[1].as_ptr(), big.as_ptr(), "large body is not copied");
        t.advance(4);
        assert_eq!(t.first_chunk().len(), ZERO_COPY_THRESHOLD - 1);
        t.advance(ZERO_COPY_THRESHOLD);
        assert_eq!(t.first_chunk(), b"");
        assert_eq!(t.len(), 0);
    }
}
