//! tlspyo 0.3.0's frame codec, without I/O.
//!
//! A tlspyo endpoint and its relay exchange frames over TLS or plain TCP:
//!
//! ```text
//! Endpoint -> Relay:  HEADER  PASSWORD  pickle((stamp, cmd, dest, obj))
//! Relay -> Endpoint:  HEADER            pickle((stamp, cmd, obj))
//! ```
//!
//! - `HEADER` is the body length in ASCII decimal, left-aligned and padded
//!   with spaces to `header_size` characters (tlspyo's default is 10), e.g.
//!   `b"58        "`. The length counts the pickled body only.
//! - `PASSWORD` is the UTF-8 password, sent in every endpoint frame (ACKs
//!   too). [`FrameReader`] compares it in constant time and never shows it.
//! - The body is a pickle. Endpoint commands: `ACK` (`dest`, `obj` None),
//!   `HELLO` (`obj` = the groups, a tuple or list of str), `OBJ` (`dest` =
//!   `{group: n}`, `obj` = the user object already pickled, as `bytes`) and
//!   `NTF` (`dest` = `{group: n}`). Relay commands: `HELLO`, `ACK` (both with
//!   `obj` None) and `OBJ` (`obj` = the user object's bytes, forwarded as they
//!   came).
//!
//! The pickles are read by a small, strict, **data-only** unpickler (the
//! crate's `tlspyo::pickle` module, which also holds the pickle writers): it
//! knows
//! the opcodes of protocols 2 to 5 that build `None`, booleans, integers,
//! `str`, `bytes`, tuples, lists and dicts (with the memo), and refuses every
//! other opcode — `GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`,
//! `NEWOBJ`, persistent ids, extensions — with [`WireError::BadPickle`]. It
//! never looks inside the user object, which stays opaque bytes: a zero-copy
//! slice of the received frame ([`Bytes`]). It works on an arena, so memo
//! references share values instead of copying them (no blow-up from a small
//! pickle), and it caps the number of values a body may build.
//!
//! Frames the relay writes ([`encode_relay_frame`]) use protocol-4 opcodes
//! without framing, which every Python 3.4+ `pickle.loads` reads; a `bytes`
//! object comes out as Python `bytes`. The header, the short pickle prefix
//! and the payload are written into the output buffer once.
//!
//! For tests and Rust clients of a tlspyo relay, the other direction is here
//! too: [`encode_endpoint_frame`] and [`decode_relay_frame`].
//!
//! ```
//! use ironhouse_relay::tlspyo::wire::{
//!     encode_endpoint_frame, EndpointCmd, EndpointFrame, FrameReader,
//! };
//!
//! let mut wire = Vec::new();
//! encode_endpoint_frame(10, "pässword", 7, EndpointCmd::Obj {
//!     dest: &[("g1", -1)],
//!     obj: b"\x80\x04K\x01.",
//! }, &mut wire)?;
//!
//! let mut reader = FrameReader::new(10, Some("pässword"), 1 << 20);
//! reader.feed(&wire[..5]);
//! assert_eq!(reader.next_frame()?, None); // not complete yet
//! reader.feed(&wire[5..]);
//! match reader.next_frame()? {
//!     Some(EndpointFrame::Obj { stamp, dest, obj }) => {
//!         assert_eq!(stamp, 7);
//!         assert_eq!(dest, vec![("g1".to_string(), -1)]);
//!         assert_eq!(&obj[..], b"\x80\x04K\x01.");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), ironhouse_relay::tlspyo::wire::WireError>(())
//! ```

use std::collections::HashMap;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use subtle::ConstantTimeEq;

pub use super::pickle::MAX_PICKLE_VALUES;
use super::pickle::{
    bytes_len, op, put_bytes, put_int, put_stamp, put_str, stamp_len, str_len, Arena, Node,
    Unpickler,
};

/// tlspyo's default `header_size`.
pub const DEFAULT_HEADER_SIZE: usize = 10;

/// Widest header this codec handles: 20 digits hold any `u64`.
pub const MAX_HEADER_SIZE: usize = 20;

/// Why a frame was refused. The connection it came from should be closed:
/// after an error the reader keeps returning it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The length header is not a space-padded ASCII decimal number.
    #[error("bad frame header: expected a space-padded decimal length")]
    BadHeader,
    /// The announced body length is larger than allowed (reading), or does
    /// not fit in the header (writing).
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced or requested body length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The frame did not carry the relay's password. The password itself
    /// is never part of the error.
    #[error("wrong password")]
    WrongPassword,
    /// The body is not a pickle this codec reads (malformed, truncated, or
    /// with an opcode outside the data-only subset).
    #[error("bad pickle: {0}")]
    BadPickle(String),
    /// The pickle is valid but not a tlspyo frame tuple of the right shape.
    #[error("unexpected frame shape: {0}")]
    UnexpectedShape(String),
    /// The command string is not one tlspyo uses.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
}

/// A frame an endpoint sent to the relay, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointFrame {
    /// Acknowledges the relay frame with this stamp.
    Ack {
        /// The stamp being acknowledged.
        stamp: u64,
    },
    /// Joins these groups (sent once per connection, after the relay's HELLO).
    Hello {
        /// The frame's stamp (the relay ACKs it).
        stamp: u64,
        /// Group names, in the order sent.
        groups: Vec<String>,
    },
    /// An object for groups: `n < 0` broadcast, `n > 0` n queued copies,
    /// `0` nothing (tlspyo then only creates the group).
    Obj {
        /// The frame's stamp.
        stamp: u64,
        /// `(group, n)` in the dict's order; a repeated key keeps its first
        /// position and its last value, as a Python dict does.
        dest: Vec<(String, i64)>,
        /// The user object as the endpoint pickled it, opaque.
        obj: Bytes,
    },
    /// Credit for consumables: `n > 0` adds n, `n < 0` asks for everything
    /// queued now.
    Ntf {
        /// The frame's stamp.
        stamp: u64,
        /// `(group, n)` in the dict's order.
        dest: Vec<(String, i64)>,
    },
}

impl EndpointFrame {
    /// The frame's stamp.
    pub fn stamp(&self) -> u64 {
        match self {
            EndpointFrame::Ack { stamp }
            | EndpointFrame::Hello { stamp, .. }
            | EndpointFrame::Obj { stamp, .. }
            | EndpointFrame::Ntf { stamp, .. } => *stamp,
        }
    }

    /// Whether tlspyo expects an ACK for this frame (every non-ACK frame).
    pub fn needs_ack(&self) -> bool {
        !matches!(self, EndpointFrame::Ack { .. })
    }
}

/// A frame the relay sends to an endpoint, for [`encode_relay_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayFrame<'a> {
    /// First frame on every connection.
    Hello,
    /// Acknowledges the endpoint frame with the given stamp.
    Ack,
    /// A user object (the endpoint's pickled bytes, forwarded unchanged).
    Obj(&'a [u8]),
}

/// A relay frame decoded by [`decode_relay_frame`] (the endpoint side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodedRelayFrame {
    /// The relay's greeting.
    Hello {
        /// Its stamp.
        stamp: u64,
    },
    /// Acknowledges the endpoint frame with this stamp.
    Ack {
        /// The acknowledged stamp.
        stamp: u64,
    },
    /// A user object.
    Obj {
        /// The frame's stamp.
        stamp: u64,
        /// The user object's pickled bytes.
        obj: Bytes,
    },
}

/// A frame an endpoint sends, for [`encode_endpoint_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointCmd<'a> {
    /// `(stamp, 'ACK', None, None)`.
    Ack,
    /// `(stamp, 'HELLO', None, tuple(groups))`.
    Hello(&'a [&'a str]),
    /// `(stamp, 'OBJ', dict(dest), obj)`.
    Obj {
        /// `(group, n)` pairs.
        dest: &'a [(&'a str, i64)],
        /// The pickled user object.
        obj: &'a [u8],
    },
    /// `(stamp, 'NTF', dict(dest), pickle(None))`.
    Ntf(&'a [(&'a str, i64)]),
}

// ---------------------------------------------------------------------------
// Reading frames
// ---------------------------------------------------------------------------

/// Splits a byte stream into tlspyo frames and decodes endpoint frames.
///
/// Feed it what the connection reads ([`feed`](Self::feed), or read straight
/// into [`buffer_mut`](Self::buffer_mut)), then call
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`. A length
/// over `max_body` is refused from the header alone, before anything is
/// allocated for the body; the password is checked as soon as its bytes are
/// in, before the body arrives. Once it has returned an error, the reader
/// returns that error again: close the connection.
pub struct FrameReader {
    header_size: usize,
    password: Option<Box<[u8]>>,
    max_body: usize,
    buf: BytesMut,
    /// Body length of the frame in progress, once its header and password
    /// have been checked (they are still at the front of `buf`).
    pending: Option<usize>,
    failed: Option<WireError>,
}

impl fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("header_size", &self.header_size)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("max_body", &self.max_body)
            .field("buffered", &self.buf.len())
            .field("failed", &self.failed)
            .finish()
    }
}

impl FrameReader {
    /// A reader for frames with a `header_size`-wide length header, followed
    /// by `password` (endpoint→relay frames; `None` for relay→endpoint
    /// frames, which carry none) and a body of at most `max_body` bytes.
    ///
    /// # Panics
    ///
    /// If `header_size` is 0 or more than [`MAX_HEADER_SIZE`] (a
    /// configuration error, checked once: validate user input with
    /// [`check_header_size`]).
    pub fn new(header_size: usize, password: Option<&str>, max_body: usize) -> Self {
        if let Err(e) = check_header_size(header_size) {
            panic!("{e}");
        }
        FrameReader {
            header_size,
            password: password.map(|p| p.as_bytes().into()),
            max_body,
            buf: BytesMut::new(),
            pending: None,
            failed: None,
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The input buffer, to read into directly (e.g. tokio's `read_buf`),
    /// which saves the copy [`feed`](Self::feed) makes. Only append to it.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame's body, after its header and password have
    /// been checked; `Ok(None)` until one is complete.
    ///
    /// # Errors
    ///
    /// [`WireError::BadHeader`], [`WireError::TooLarge`],
    /// [`WireError::WrongPassword`]; and the same error again on every later
    /// call.
    pub fn next_body(&mut self) -> Result<Option<Bytes>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.next_body_inner() {
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                Err(e)
            }
            ok => ok,
        }
    }

    fn next_body_inner(&mut self) -> Result<Option<Bytes>, WireError> {
        let pw_len = self.password.as_ref().map_or(0, |p| p.len());
        let prefix = self.header_size + pw_len;
        let len = match self.pending {
            Some(len) => len,
            None => {
                if self.buf.len() < self.header_size {
                    return Ok(None);
                }
                let len = parse_header(&self.buf[..self.header_size])?;
                if len > self.max_body as u64 {
                    return Err(WireError::TooLarge {
                        len,
                        max: self.max_body as u64,
                    });
                }
                if self.buf.len() < prefix {
                    return Ok(None);
                }
                if let Some(pw) = &self.password {
                    let got = &self.buf[self.header_size..prefix];
                    if !bool::from(got.ct_eq(pw)) {
                        return Err(WireError::WrongPassword);
                    }
                }
                // `len <= max_body`, and the sender proved it knows the
                // password: room for the body may be made now.
                let len = len as usize;
                self.pending = Some(len);
                self.buf
                    .reserve((prefix + len).saturating_sub(self.buf.len()));
                len
            }
        };
        if self.buf.len() < prefix + len {
            return Ok(None);
        }
        self.pending = None;
        self.buf.advance(prefix);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The next complete endpoint frame, decoded; `Ok(None)` until one is
    /// complete.
    ///
    /// # Errors
    ///
    /// Any [`WireError`]; after one the reader keeps returning it.
    pub fn next_frame(&mut self) -> Result<Option<EndpointFrame>, WireError> {
        let Some(body) = self.next_body()? else {
            return Ok(None);
        };
        match decode_endpoint_frame(&body) {
            Ok(frame) => Ok(Some(frame)),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }
}

/// Checks a `header_size` setting: 1 to [`MAX_HEADER_SIZE`].
///
/// # Errors
///
/// A message naming the allowed range.
pub fn check_header_size(header_size: usize) -> Result<(), String> {
    if (1..=MAX_HEADER_SIZE).contains(&header_size) {
        Ok(())
    } else {
        Err(format!(
            "tlspyo header_size must be 1 to {MAX_HEADER_SIZE}, got {header_size}"
        ))
    }
}

/// Largest body a `header_size`-wide header can announce.
pub fn max_body_for_header(header_size: usize) -> u64 {
    if header_size >= 20 {
        u64::MAX
    } else {
        10u64.pow(header_size as u32) - 1
    }
}

/// Optional spaces, ASCII digits, optional spaces (what tlspyo writes, and
/// the subset of Python's `int()` that makes sense here).
fn parse_header(h: &[u8]) -> Result<u64, WireError> {
    let start = h
        .iter()
        .position(|&b| b != b' ')
        .ok_or(WireError::BadHeader)?;
    let end = h.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let digits = &h[start..end];
    let mut n: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return Err(WireError::BadHeader);
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Ok(n)
}

/// Decodes an endpoint frame's body: the pickled `(stamp, cmd, dest, obj)`.
///
/// # Errors
///
/// [`WireError::BadPickle`], [`WireError::UnexpectedShape`],
/// [`WireError::UnknownCommand`].
pub fn decode_endpoint_frame(body: &Bytes) -> Result<EndpointFrame, WireError> {
    let arena = Unpickler::run(body)?;
    let items = arena.tuple_items(arena.root, "frame")?;
    if items.len() != 4 {
        return Err(shape(format!(
            "expected a 4-tuple (stamp, cmd, dest, obj), got {} items",
            items.len()
        )));
    }
    let stamp = arena.stamp(items[0])?;
    let cmd = arena.str_of(items[1], "command")?;
    match cmd {
        "ACK" => Ok(EndpointFrame::Ack { stamp }),
        "HELLO" => Ok(EndpointFrame::Hello {
            stamp,
            groups: arena.groups(items[3])?,
        }),
        "OBJ" => Ok(EndpointFrame::Obj {
            stamp,
            dest: arena.dest(items[2])?,
            obj: arena.bytes_of(body, items[3], "OBJ object")?,
        }),
        "NTF" => Ok(EndpointFrame::Ntf {
            stamp,
            dest: arena.dest(items[2])?,
        }),
        other => Err(WireError::UnknownCommand(truncate(other, 32))),
    }
}

/// Decodes a relay frame's body: the pickled `(stamp, cmd, obj)`.
///
/// # Errors
///
/// [`WireError::BadPickle`], [`WireError::UnexpectedShape`],
/// [`WireError::UnknownCommand`].
pub fn decode_relay_frame(body: &Bytes) -> Result<DecodedRelayFrame, WireError> {
    let arena = Unpickler::run(body)?;
    let items = arena.tuple_items(arena.root, "frame")?;
    if items.len() != 3 {
        return Err(shape(format!(
            "expected a 3-tuple (stamp, cmd, obj), got {} items",
            items.len()
        )));
    }
    let stamp = arena.stamp(items[0])?;
    match arena.str_of(items[1], "command")? {
        "HELLO" => Ok(DecodedRelayFrame::Hello { stamp }),
        "ACK" => Ok(DecodedRelayFrame::Ack { stamp }),
        "OBJ" => Ok(DecodedRelayFrame::Obj {
            stamp,
            obj: arena.bytes_of(body, items[2], "OBJ object")?,
        }),
        other => Err(WireError::UnknownCommand(truncate(other, 32))),
    }
}

pub(super) fn shape(msg: String) -> WireError {
    WireError::UnexpectedShape(msg)
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// Reading the frame tuples out of the pickle reader's values.
impl Arena<'_> {
    fn stamp(&self, id: u32) -> Result<u64, WireError> {
        match self.node(id) {
            Node::Int(v) => {
                u64::try_from(*v).map_err(|_| shape(format!("stamp {v} is not in 0..2^64")))
            }
            Node::BigInt => Err(shape("stamp does not fit in 64 bits".into())),
            other => Err(shape(format!("stamp is a {}, not an int", other.kind()))),
        }
    }

    /// HELLO's groups: a tuple or list of str (a lone str is taken as one
    /// group).
    fn groups(&self, id: u32) -> Result<Vec<String>, WireError> {
        let items = match self.node(id) {
            Node::Tuple(items) | Node::List(items) => items,
            Node::Str(_) => return Ok(vec![self.str_of(id, "group")?.to_string()]),
            other => {
                return Err(shape(format!(
                    "HELLO groups are a {}, not a tuple or list of str",
                    other.kind()
                )))
            }
        };
        items
            .iter()
            .map(|&g| self.str_of(g, "group name").map(str::to_string))
            .collect()
    }

    /// A `{group: int}` dict, in insertion order; a repeated key keeps its
    /// first position and takes the last value (Python dict semantics).
    fn dest(&self, id: u32) -> Result<Vec<(String, i64)>, WireError> {
        let pairs = match self.node(id) {
            Node::Dict(pairs) => pairs,
            other => {
                return Err(shape(format!(
                    "destination is a {}, not a dict",
                    other.kind()
                )))
            }
        };
        let mut out: Vec<(String, i64)> = Vec::with_capacity(pairs.len());
        // Repeated keys: a linear scan for the usual handful of groups.
        let mut seen: Option<HashMap<&str, usize>> = (pairs.len() > 8).then(HashMap::new);
        for &(k, v) in pairs {
            let key = self.str_of(k, "destination group")?;
            let n = self.int_of(v, "destination count")?;
            let found = match &seen {
                Some(map) => map.get(key).copied(),
                None => out.iter().position(|(g, _)| g == key),
            };
            match found {
                Some(i) => out[i].1 = n,
                None => {
                    if let Some(map) = &mut seen {
                        map.insert(key, out.len());
                    }
                    out.push((key.to_string(), n));
                }
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Writing frames
// ---------------------------------------------------------------------------

fn put_header(header_size: usize, body_len: usize, out: &mut Vec<u8>) -> Result<(), WireError> {
    check_header_size(header_size).map_err(WireError::UnexpectedShape)?;
    let max = max_body_for_header(header_size);
    if body_len as u64 > max {
        return Err(WireError::TooLarge {
            len: body_len as u64,
            max,
        });
    }
    let start = out.len();
    // `usize`'s Display never allocates for the digits we need.
    let mut digits = [0u8; 20];
    let mut n = body_len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.resize(start + header_size, b' ');
    Ok(())
}

/// Appends a relay→endpoint frame, `HEADER + pickle((stamp, cmd, obj))`, to
/// `out`: `obj` is None for HELLO and ACK, the forwarded bytes for OBJ
/// (read by Python as `bytes`). The output is reserved once and the payload
/// copied once.
///
/// # Errors
///
/// [`WireError::TooLarge`] if the body's length does not fit in
/// `header_size` digits; [`WireError::UnexpectedShape`] for a `header_size`
/// outside 1 to [`MAX_HEADER_SIZE`]. Nothing is written then.
pub fn encode_relay_frame(
    header_size: usize,
    stamp: u64,
    cmd: RelayFrame<'_>,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let (name, obj) = match cmd {
        RelayFrame::Hello => ("HELLO", None),
        RelayFrame::Ack => ("ACK", None),
        RelayFrame::Obj(b) => ("OBJ", Some(b)),
    };
    let body_len = 2 + stamp_len(stamp) + str_len(name) + obj.map_or(1, bytes_len) + 2;
    let start = out.len();
    out.reserve(header_size + body_len);
    put_header(header_size, body_len, out)?;
    out.extend_from_slice(&[op::PROTO, 4]);
    put_stamp(stamp, out);
    put_str(name, out);
    match obj {
        Some(b) => put_bytes(b, out),
        None => out.push(op::NONE),
    }
    out.extend_from_slice(&[op::TUPLE3, op::STOP]);
    debug_assert_eq!(out.len() - start, header_size + body_len);
    Ok(())
}

fn put_dest(dest: &[(&str, i64)], out: &mut Vec<u8>) {
    out.push(op::EMPTY_DICT);
    if dest.is_empty() {
        return;
    }
    out.push(op::MARK);
    for (g, n) in dest {
        put_str(g, out);
        put_int(*n, out);
    }
    out.push(op::SETITEMS);
}

/// Appends an endpoint→relay frame, `HEADER + password +
/// pickle((stamp, cmd, dest, obj))`, as tlspyo's endpoint sends it (for
/// tests, and for Rust programs that talk to a tlspyo relay).
///
/// # Errors
///
/// As [`encode_relay_frame`]. Nothing is written then.
pub fn encode_endpoint_frame(
    header_size: usize,
    password: &str,
    stamp: u64,
    cmd: EndpointCmd<'_>,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let mut body = Vec::new();
    body.extend_from_slice(&[op::PROTO, 4, op::MARK]);
    put_stamp(stamp, &mut body);
    match cmd {
        EndpointCmd::Ack => {
            put_str("ACK", &mut body);
            body.extend_from_slice(&[op::NONE, op::NONE]);
        }
        EndpointCmd::Hello(groups) => {
            put_str("HELLO", &mut body);
            body.extend_from_slice(&[op::NONE, op::MARK]);
            for g in groups {
                put_str(g, &mut body);
            }
            body.push(op::TUPLE);
        }
        EndpointCmd::Obj { dest, obj } => {
            put_str("OBJ", &mut body);
            put_dest(dest, &mut body);
            body.reserve(obj.len() + 9);
            put_bytes(obj, &mut body);
        }
        EndpointCmd::Ntf(dest) => {
            put_str("NTF", &mut body);
            put_dest(dest, &mut body);
            // pickle.dumps(None) with protocol 4.
            put_bytes(b"\x80\x04N.", &mut body);
        }
    }
    body.extend_from_slice(&[op::TUPLE, op::STOP]);
    let start = out.len();
    out.reserve(header_size + password.len() + body.len());
    if let Err(e) = put_header(header_size, body.len(), out) {
        out.truncate(start);
        return Err(e);
    }
    out.extend_from_slice(password.as_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
