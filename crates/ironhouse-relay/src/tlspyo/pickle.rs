//! The strict, data-only pickle reader behind [`super::wire`], and the few
//! pickle writers the frame encoders use.
//!
//! tlspyo frames are Python pickles, and `pickle.loads` on network input
//! runs arbitrary code. This reader never does: it knows the opcodes of
//! protocols 2 to 5 that build `None`, booleans, integers, `str`, `bytes`,
//! tuples, lists and dicts (with the memo), and refuses every other opcode
//! (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`,
//! persistent ids, extensions…) with [`WireError::BadPickle`]. It builds
//! values into an [`Arena`] of [`Node`]s: strings and bytes are ranges of
//! the body (no copy), memo references share a node instead of copying it
//! (no blow-up from a small pickle), and a body may build at most
//! [`MAX_PICKLE_VALUES`] values. The typed getters here
//! ([`Arena::tuple_items`], [`Arena::str_of`]…) report a value of the wrong
//! type as [`WireError::UnexpectedShape`]; what a tlspyo frame tuple must
//! contain is [`super::wire`]'s business.
//!
//! The writers (`put_int`, `put_str`, `put_bytes`, … with their `*_len`
//! twins, so an encoder can size its output once) emit protocol-4 opcodes
//! without framing, which every Python 3.4+ `pickle.loads` reads.

use std::ops::Range;

use bytes::Bytes;

use super::wire::{shape, WireError};

/// Most values (None, ints, strings, containers…) one body may build. A
/// tlspyo frame builds fewer than ten plus one per group.
pub const MAX_PICKLE_VALUES: usize = 1 << 16;

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// A value built by the unpickler. Strings and bytes are ranges of the body.
#[derive(Debug, Clone)]
pub(super) enum Node {
    None,
    Bool(bool),
    Int(i128),
    /// An integer outside `i128` (its value is not needed).
    BigInt,
    Str(Range<usize>),
    Bytes(Range<usize>),
    Tuple(Vec<u32>),
    List(Vec<u32>),
    Dict(Vec<(u32, u32)>),
}

impl Node {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::None => "None",
            Node::Bool(_) => "bool",
            Node::Int(_) | Node::BigInt => "int",
            Node::Str(_) => "str",
            Node::Bytes(_) => "bytes",
            Node::Tuple(_) => "tuple",
            Node::List(_) => "list",
            Node::Dict(_) => "dict",
        }
    }
}

/// The stack marker pushed by MARK (never a node id: ids stay below
/// [`MAX_PICKLE_VALUES`]).
const MARK_ID: u32 = u32::MAX;

/// What a pickle built: its values, and the id of the one STOP returned.
pub(super) struct Arena<'b> {
    body: &'b [u8],
    nodes: Vec<Node>,
    pub(super) root: u32,
}

/// The opcodes this reader accepts (and the writers below emit).
pub(super) mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const NONE: u8 = b'N';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const PROTO: u8 = 0x80;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
}

/// Names of opcodes outside the subset, for the error message.
fn refused_opcode_name(b: u8) -> &'static str {
    match b {
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        b'b' => "BUILD",
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        0x82..=0x84 => "EXT",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        b'I' | b'L' | b'F' | b'G' | b'S' | b'V' | b'p' | b'g' | b'T' | b'U' => {
            "a protocol 0/1 opcode"
        }
        _ => "unknown",
    }
}

/// The reader's state while it runs one body.
pub(super) struct Unpickler<'b> {
    body: &'b [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<u32>,
    /// Memo key -> node id (`MARK_ID` = unset). Keys are dense in what
    /// Python writes (MEMOIZE uses the count); BINPUT keys are bounded.
    memo: Vec<u32>,
    memo_count: usize,
}

fn bad(msg: impl Into<String>) -> WireError {
    WireError::BadPickle(msg.into())
}

impl<'b> Unpickler<'b> {
    /// Reads `body`, which must be exactly one data-only pickle.
    pub(super) fn run(body: &'b [u8]) -> Result<Arena<'b>, WireError> {
        let mut u = Unpickler {
            body,
            pos: 0,
            nodes: Vec::with_capacity(16),
            stack: Vec::with_capacity(16),
            memo: Vec::new(),
            memo_count: 0,
        };
        let root = u.exec()?;
        if u.pos != body.len() {
            return Err(bad(format!(
                "{} trailing bytes after STOP",
                body.len() - u.pos
            )));
        }
        Ok(Arena {
            body,
            nodes: u.nodes,
            root,
        })
    }

    fn take(&mut self, n: u64) -> Result<&'b [u8], WireError> {
        let left = (self.body.len() - self.pos) as u64;
        if n > left {
            return Err(bad(format!(
                "truncated: needs {n} bytes at offset {}, {left} left",
                self.pos
            )));
        }
        let s = &self.body[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn take_range(&mut self, n: u64) -> Result<Range<usize>, WireError> {
        let start = self.pos;
        self.take(n)?;
        Ok(start..self.pos)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn push_node(&mut self, n: Node) -> Result<(), WireError> {
        if self.nodes.len() >= MAX_PICKLE_VALUES {
            return Err(bad(format!("more than {MAX_PICKLE_VALUES} values")));
        }
        self.stack.push(self.nodes.len() as u32);
        self.nodes.push(n);
        Ok(())
    }

    fn pop(&mut self) -> Result<u32, WireError> {
        match self.stack.pop() {
            Some(MARK_ID) => Err(bad(format!("unexpected MARK at offset {}", self.pos))),
            Some(id) => Ok(id),
            None => Err(bad(format!("stack underflow at offset {}", self.pos))),
        }
    }

    fn top(&self) -> Result<u32, WireError> {
        match self.stack.last() {
            Some(&MARK_ID) | None => Err(bad(format!("no value on the stack at {}", self.pos))),
            Some(&id) => Ok(id),
        }
    }

    /// Pops everything down to the topmost MARK (and the MARK).
    fn pop_mark(&mut self) -> Result<Vec<u32>, WireError> {
        let m = self
            .stack
            .iter()
            .rposition(|&x| x == MARK_ID)
            .ok_or_else(|| bad(format!("no MARK on the stack at offset {}", self.pos)))?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), WireError> {
        let id = self.top()?;
        let k = key as usize;
        if k >= MAX_PICKLE_VALUES {
            return Err(bad(format!("memo key {key} too large")));
        }
        if k >= self.memo.len() {
            self.memo.resize(k + 1, MARK_ID);
        }
        if self.memo[k] == MARK_ID {
            self.memo_count += 1;
        }
        self.memo[k] = id;
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), WireError> {
        let id = match self.memo.get(key as usize) {
            Some(&id) if id != MARK_ID => id,
            _ => return Err(bad(format!("memo key {key} not found"))),
        };
        // A reference, not a copy: the stack may hold an id many times.
        if self.stack.len() >= MAX_PICKLE_VALUES {
            return Err(bad("stack too deep"));
        }
        self.stack.push(id);
        Ok(())
    }

    fn str_node(&mut self, n: u64) -> Result<(), WireError> {
        let r = self.take_range(n)?;
        if std::str::from_utf8(&self.body[r.clone()]).is_err() {
            return Err(bad(format!("invalid UTF-8 in a str at offset {}", r.start)));
        }
        self.push_node(Node::Str(r))
    }

    fn long(&mut self, n: u64) -> Result<(), WireError> {
        let b = self.take(n)?;
        let node = match b.len() {
            0 => Node::Int(0),
            1..=16 => {
                let fill = if b[b.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
                let mut a = [fill; 16];
                a[..b.len()].copy_from_slice(b);
                Node::Int(i128::from_le_bytes(a))
            }
            _ => Node::BigInt,
        };
        self.push_node(node)
    }

    fn container_mut(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    fn exec(&mut self) -> Result<u32, WireError> {
        loop {
            let at = self.pos;
            let code = self.u8()?;
            match code {
                op::PROTO => {
                    let v = self.u8()?;
                    if !(2..=5).contains(&v) {
                        return Err(bad(format!("unsupported pickle protocol {v}")));
                    }
                }
                op::FRAME => {
                    let n = self.u64()?;
                    let left = (self.body.len() - self.pos) as u64;
                    if n > left {
                        return Err(bad(format!("FRAME of {n} bytes, {left} left")));
                    }
                }
                op::STOP => {
                    let id = self.pop()?;
                    if !self.stack.is_empty() {
                        return Err(bad("values left on the stack at STOP"));
                    }
                    return Ok(id);
                }
                op::MARK => {
                    if self.stack.len() >= MAX_PICKLE_VALUES {
                        return Err(bad("stack too deep"));
                    }
                    self.stack.push(MARK_ID);
                }
                op::POP => {
                    if self.stack.pop().is_none() {
                        return Err(bad(format!("stack underflow at offset {at}")));
                    }
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let id = self.top()?;
                    self.stack.push(id);
                }
                op::NONE => self.push_node(Node::None)?,
                op::NEWTRUE => self.push_node(Node::Bool(true))?,
                op::NEWFALSE => self.push_node(Node::Bool(false))?,
                op::BININT1 => {
                    let v = self.u8()?;
                    self.push_node(Node::Int(i128::from(v)))?;
                }
                op::BININT2 => {
                    let v = self.u16()?;
                    self.push_node(Node::Int(i128::from(v)))?;
                }
                op::BININT => {
                    let v = self.u32()? as i32;
                    self.push_node(Node::Int(i128::from(v)))?;
                }
                op::LONG1 => {
                    let n = self.u8()?;
                    self.long(u64::from(n))?;
                }
                op::LONG4 => {
                    let n = self.u32()? as i32;
                    if n < 0 {
                        return Err(bad("negative LONG4 length"));
                    }
                    self.long(n as u64)?;
                }
                op::SHORT_BINUNICODE => {
                    let n = self.u8()?;
                    self.str_node(u64::from(n))?;
                }
                op::BINUNICODE => {
                    let n = self.u32()?;
                    self.str_node(u64::from(n))?;
                }
                op::BINUNICODE8 => {
                    let n = self.u64()?;
                    self.str_node(n)?;
                }
                op::SHORT_BINBYTES => {
                    let n = self.u8()?;
                    let r = self.take_range(u64::from(n))?;
                    self.push_node(Node::Bytes(r))?;
                }
                op::BINBYTES => {
                    let n = self.u32()?;
                    let r = self.take_range(u64::from(n))?;
                    self.push_node(Node::Bytes(r))?;
                }
                op::BINBYTES8 => {
                    let n = self.u64()?;
                    let r = self.take_range(n)?;
                    self.push_node(Node::Bytes(r))?;
                }
                op::EMPTY_TUPLE => self.push_node(Node::Tuple(Vec::new()))?,
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1 + 1);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_node(Node::Tuple(items))?;
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::Tuple(items))?;
                }
                op::EMPTY_LIST => self.push_node(Node::List(Vec::new()))?,
                op::LIST => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::List(items))?;
                }
                op::APPEND => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.append(l, &[v], at)?;
                }
                op::APPENDS => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.append(l, &items, at)?;
                }
                op::EMPTY_DICT => self.push_node(Node::Dict(Vec::new()))?,
                op::DICT => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(bad(format!("odd number of DICT items at offset {at}")));
                    }
                    let pairs = items.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                    self.push_node(Node::Dict(pairs))?;
                }
                op::SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, &[k, v], at)?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(bad(format!("odd number of SETITEMS items at offset {at}")));
                    }
                    let d = self.top()?;
                    self.set_items(d, &items, at)?;
                }
                op::MEMOIZE => {
                    let key = self.memo_count as u32;
                    self.memo_put(key)?;
                }
                op::BINPUT => {
                    let k = self.u8()?;
                    self.memo_put(u32::from(k))?;
                }
                op::LONG_BINPUT => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                op::BINGET => {
                    let k = self.u8()?;
                    self.memo_get(u32::from(k))?;
                }
                op::LONG_BINGET => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                other => {
                    return Err(bad(format!(
                        "opcode {} (0x{other:02x}) at offset {at} is not allowed \
                         (data-only pickle subset)",
                        refused_opcode_name(other)
                    )))
                }
            }
        }
    }

    fn append(&mut self, list: u32, items: &[u32], at: usize) -> Result<(), WireError> {
        match self.container_mut(list) {
            Node::List(v) => {
                v.extend_from_slice(items);
                Ok(())
            }
            other => Err(bad(format!(
                "APPEND(S) to a {} at offset {at}",
                other.kind()
            ))),
        }
    }

    fn set_items(&mut self, dict: u32, kv: &[u32], at: usize) -> Result<(), WireError> {
        match self.container_mut(dict) {
            Node::Dict(v) => {
                v.extend(kv.chunks_exact(2).map(|c| (c[0], c[1])));
                Ok(())
            }
            other => Err(bad(format!(
                "SETITEM(S) on a {} at offset {at}",
                other.kind()
            ))),
        }
    }
}

impl Arena<'_> {
    pub(super) fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize]
    }

    pub(super) fn tuple_items(&self, id: u32, what: &str) -> Result<&[u32], WireError> {
        match self.node(id) {
            Node::Tuple(items) => Ok(items),
            other => Err(shape(format!("{what} is a {}, not a tuple", other.kind()))),
        }
    }

    pub(super) fn str_of(&self, id: u32, what: &str) -> Result<&str, WireError> {
        match self.node(id) {
            // Checked to be UTF-8 when it was read.
            Node::Str(r) => std::str::from_utf8(&self.body[r.clone()])
                .map_err(|_| shape(format!("{what} is not UTF-8"))),
            other => Err(shape(format!("{what} is a {}, not a str", other.kind()))),
        }
    }

    pub(super) fn int_of(&self, id: u32, what: &str) -> Result<i64, WireError> {
        match self.node(id) {
            Node::Int(v) => {
                i64::try_from(*v).map_err(|_| shape(format!("{what} does not fit in 64 bits")))
            }
            Node::Bool(b) => Ok(i64::from(*b)),
            Node::BigInt => Err(shape(format!("{what} does not fit in 64 bits"))),
            other => Err(shape(format!("{what} is a {}, not an int", other.kind()))),
        }
    }

    pub(super) fn bytes_of(&self, body: &Bytes, id: u32, what: &str) -> Result<Bytes, WireError> {
        match self.node(id) {
            Node::Bytes(r) => Ok(body.slice(r.clone())),
            other => Err(shape(format!("{what} is a {}, not bytes", other.kind()))),
        }
    }
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Length of [`put_int`]'s encoding of `v`.
pub(super) fn int_len(v: i64) -> usize {
    if (0..=0xff).contains(&v) {
        2
    } else if (0..=0xffff).contains(&v) {
        3
    } else if i32::try_from(v).is_ok() {
        5
    } else {
        2 + long_bytes(v).1
    }
}

/// Minimal little-endian two's complement bytes of `v` (as LONG1 wants).
fn long_bytes(v: i64) -> ([u8; 8], usize) {
    let b = v.to_le_bytes();
    let mut n = 8;
    while n > 1 {
        let top = b[n - 1];
        let below_sign = b[n - 2] & 0x80;
        if (top == 0 && below_sign == 0) || (top == 0xff && below_sign != 0) {
            n -= 1;
        } else {
            break;
        }
    }
    (b, n)
}

pub(super) fn put_int(v: i64, out: &mut Vec<u8>) {
    if (0..=0xff).contains(&v) {
        out.extend_from_slice(&[op::BININT1, v as u8]);
    } else if (0..=0xffff).contains(&v) {
        out.push(op::BININT2);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if let Ok(v32) = i32::try_from(v) {
        out.push(op::BININT);
        out.extend_from_slice(&v32.to_le_bytes());
    } else {
        let (b, n) = long_bytes(v);
        out.extend_from_slice(&[op::LONG1, n as u8]);
        out.extend_from_slice(&b[..n]);
    }
}

/// Stamps are Python ints that may pass `i64::MAX` in theory; LONG1 with 9
/// bytes covers all of `u64`.
pub(super) fn stamp_len(stamp: u64) -> usize {
    match i64::try_from(stamp) {
        Ok(v) => int_len(v),
        Err(_) => 2 + 9,
    }
}

pub(super) fn put_stamp(stamp: u64, out: &mut Vec<u8>) {
    match i64::try_from(stamp) {
        Ok(v) => put_int(v, out),
        Err(_) => {
            out.extend_from_slice(&[op::LONG1, 9]);
            out.extend_from_slice(&stamp.to_le_bytes());
            out.push(0);
        }
    }
}

pub(super) fn str_len(s: &str) -> usize {
    if s.len() <= 0xff {
        2 + s.len()
    } else {
        5 + s.len()
    }
}

pub(super) fn put_str(s: &str, out: &mut Vec<u8>) {
    if s.len() <= 0xff {
        out.extend_from_slice(&[op::SHORT_BINUNICODE, s.len() as u8]);
    } else {
        // Strings over 4 GiB are not written by this codec.
        out.push(op::BINUNICODE);
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn bytes_len(b: &[u8]) -> usize {
    if b.len() <= 0xff {
        2 + b.len()
    } else if u32::try_from(b.len()).is_ok() {
        5 + b.len()
    } else {
        9 + b.len()
    }
}

pub(super) fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    if b.len() <= 0xff {
        out.extend_from_slice(&[op::SHORT_BINBYTES, b.len() as u8]);
    } else if let Ok(n) = u32::try_from(b.len()) {
        out.push(op::BINBYTES);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(op::BINBYTES8);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(b);
}

#[cfg(test)]
#[path = "pickle_tests.rs"]
mod tests;
