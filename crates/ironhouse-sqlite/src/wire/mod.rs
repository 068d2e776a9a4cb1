//! sqlite_rx's wire format: each request and reply is one frame holding
//! `zlib(msgpack(map))` — the zlib container (RFC 1950) as Python's
//! `zlib.compress` writes it, MessagePack as msgpack-python ≥ 1.0 writes it.
//!
//! Decoding mirrors what sqlite_rx's server does with `msgpack.loads(
//! zlib.decompress(body), raw=False)`, including its failures: a body that is
//! not zlib, or not MessagePack, gets the error Python would have raised
//! (`zlib.error: Error -3 while decompressing data: incorrect header check`,
//! `ValueError: Unpack failed: incomplete input`, …), so clients see the
//! same replies from this server as from sqlite_rx's. Nothing here panics or
//! allocates on a length read from the input before the bytes are there.

use std::fmt;

mod zlib;

pub use zlib::{compress, compress_as, decompress, Compression};

/// A Python exception as sqlite_rx reports it: `type` is
/// `"{module}.{name}"` and `message` the last line of
/// `traceback.format_exception_only` (`"sqlite3.OperationalError: no such
/// table: t"`, builtins without their module: `"KeyError: 'query'"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyError {
    /// `"sqlite3.OperationalError"`, `"builtins.KeyError"`, …
    pub kind: String,
    /// `"sqlite3.OperationalError: no such table: t"`, `"KeyError: 'query'"`, …
    pub message: String,
}

impl PyError {
    /// An exception of `module.name` with `text` as its `str()`.
    pub fn new(module: &str, name: &str, text: impl fmt::Display) -> PyError {
        let text = text.to_string();
        let shown = if module == "builtins" {
            name.to_string()
        } else {
            format!("{module}.{name}")
        };
        PyError {
            kind: format!("{module}.{name}"),
            message: if text.is_empty() {
                shown
            } else {
                format!("{shown}: {text}")
            },
        }
    }
    /// `sqlite3.<name>`.
    pub fn sqlite(name: &str, text: impl fmt::Display) -> PyError {
        PyError::new("sqlite3", name, text)
    }
    /// A builtin exception (`TypeError`, `KeyError`, …).
    pub fn builtin(name: &str, text: impl fmt::Display) -> PyError {
        PyError::new("builtins", name, text)
    }
    /// `KeyError: 'key'`.
    pub fn key_error(key: &str) -> PyError {
        PyError::builtin("KeyError", format!("'{key}'"))
    }
}

impl fmt::Display for PyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PyError {}

// ---------------------------------------------------------------------------
// MessagePack values, as msgpack-python hands them to sqlite_rx
// ---------------------------------------------------------------------------

/// A decoded MessagePack value, typed as Python sees it after
/// `msgpack.loads(..., raw=False)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    Nil,
    /// `bool`.
    Bool(bool),
    /// `int` that fits in i64.
    Int(i64),
    /// `int` above `i64::MAX` (uint64).
    UInt(u64),
    /// `float` (float32 and float64 alike).
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes`.
    Bin(Vec<u8>),
    /// `list`.
    Array(Vec<Value>),
    /// `dict`: keys are `str` or `bytes` (msgpack's `strict_map_key`).
    Map(Vec<(Value, Value)>),
    /// `msgpack.ExtType(code, data)` (a named tuple).
    Ext(i8, Vec<u8>),
    /// `msgpack.Timestamp` (extension type -1).
    Timestamp,
}

impl Value {
    /// Python's type name (`type(v).__name__`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bytes",
            Value::Array(_) => "list",
            Value::Map(_) => "dict",
            Value::Ext(..) => "ExtType",
            Value::Timestamp => "Timestamp",
        }
    }

    /// Python's truth value (`bool(v)`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::UInt(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bin(b) => !b.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Ext(..) | Value::Timestamp => true,
        }
    }

    /// `value[key]` for a `str` key, as Python evaluates it: a dict gives
    /// the entry (the last of duplicates) or `KeyError`; other types give
    /// the `TypeError` Python raises.
    ///
    /// # Errors
    /// `KeyError` or `TypeError`, as Python's.
    pub fn subscript(&self, key: &str) -> Result<&Value, PyError> {
        let type_error = |t: &str| Err(PyError::builtin("TypeError", t));
        match self {
            Value::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v)
                .ok_or_else(|| PyError::key_error(key)),
            Value::Array(_) => type_error("list indices must be integers or slices, not str"),
            Value::Str(_) => type_error("string indices must be integers, not 'str'"),
            Value::Bin(_) => type_error("byte indices must be integers or slices, not str"),
            Value::Ext(..) => type_error("tuple indices must be integers or slices, not str"),
            other => type_error(&format!(
                "'{}' object is not subscriptable",
                other.type_name()
            )),
        }
    }
}

/// Deepest nesting accepted. msgpack-python stops at 1024; requests never
/// nest more than three levels, and a shallower bound keeps the recursion
/// well inside any thread's stack.
const MAX_DEPTH: usize = 200;

fn incomplete() -> PyError {
    PyError::builtin("ValueError", "Unpack failed: incomplete input")
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PyError> {
        let end = self.pos.checked_add(n).ok_or_else(incomplete)?;
        let s = self.buf.get(self.pos..end).ok_or_else(incomplete)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, PyError> {
        Ok(self.take(1)?[0])
    }
    fn be<const N: usize>(&mut self) -> Result<[u8; N], PyError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn len(&mut self, width: usize) -> Result<usize, PyError> {
        Ok(match width {
            1 => usize::from(self.u8()?),
            2 => usize::from(u16::from_be_bytes(self.be()?)),
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn string(&mut self, n: usize) -> Result<Value, PyError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.to_string())),
            Err(e) => Err(utf8_error(bytes, &e)),
        }
    }

    fn ext(&mut self, n: usize) -> Result<Value, PyError> {
        let code = self.u8()? as i8;
        let data = self.take(n)?;
        if code == -1 {
            if matches!(n, 4 | 8 | 12) {
                Ok(Value::Timestamp)
            } else {
                Err(PyError::builtin(
                    "ValueError",
                    format!("invalid timestamp data (length {n})"),
                ))
            }
        } else {
            Ok(Value::Ext(code, data.to_vec()))
        }
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value, PyError> {
        // Each element takes at least one byte: never reserve more than remains.
        let mut items = Vec::with_capacity(n.min(self.buf.len() - self.pos));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, PyError> {
        let mut entries = Vec::with_capacity(n.min((self.buf.len() - self.pos) / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            if !matches!(k, Value::Str(_) | Value::Bin(_)) {
                return Err(PyError::builtin(
                    "ValueError",
                    format!(
                        "{} is not allowed for map key when strict_map_key=True",
                        k.type_name()
                    ),
                ));
            }
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }

    fn value(&mut self, depth: usize) -> Result<Value, PyError> {
        if depth > MAX_DEPTH {
            return Err(PyError::builtin("ValueError", "Unpack failed: error = -3"));
        }
        let b = self.u8()?;
        Ok(match b {
            0x00..=0x7f => Value::Int(i64::from(b)),
            0x80..=0x8f => return self.map(usize::from(b & 0x0f), depth),
            0x90..=0x9f => return self.array(usize::from(b & 0x0f), depth),
            0xa0..=0xbf => return self.string(usize::from(b & 0x1f)),
            0xc0 => Value::Nil,
            0xc1 => return Err(PyError::new("msgpack.exceptions", "FormatError", "")),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (b - 0xc4))?;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (b - 0xc7))?;
                return self.ext(n);
            }
            0xca => Value::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Value::Float(f64::from_be_bytes(self.be()?)),
            0xcc => Value::Int(i64::from(self.u8()?)),
            0xcd => Value::Int(i64::from(u16::from_be_bytes(self.be()?))),
            0xce => Value::Int(i64::from(u32::from_be_bytes(self.be()?))),
            0xcf => {
                let u = u64::from_be_bytes(self.be()?);
                i64::try_from(u).map_or(Value::UInt(u), Value::Int)
            }
            0xd0 => Value::Int(i64::from(self.u8()? as i8)),
            0xd1 => Value::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Value::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Value::Int(i64::from_be_bytes(self.be()?)),
            0xd4..=0xd8 => return self.ext(1 << (b - 0xd4)),
            0xd9..=0xdb => {
                let n = self.len(1 << (b - 0xd9))?;
                return self.string(n);
            }
            0xdc | 0xdd => {
                let n = self.len(if b == 0xdc { 2 } else { 4 })?;
                return self.array(n, depth);
            }
            0xde | 0xdf => {
                let n = self.len(if b == 0xde { 2 } else { 4 })?;
                return self.map(n, depth);
            }
            0xe0..=0xff => Value::Int(i64::from(b as i8)),
        })
    }
}

/// Python's `UnicodeDecodeError` text for invalid UTF-8 in a msgpack str.
fn utf8_error(bytes: &[u8], e: &std::str::Utf8Error) -> PyError {
    let start = e.valid_up_to();
    let (len, reason) = match e.error_len() {
        None => (bytes.len() - start, "unexpected end of data"),
        Some(n) => {
            let first = bytes[start];
            let bad_start = matches!(first, 0x80..=0xc1 | 0xf5..=0xff);
            (
                n,
                if bad_start {
                    "invalid start byte"
                } else {
                    "invalid continuation byte"
                },
            )
        }
    };
    let text = if len <= 1 {
        format!(
            "'utf-8' codec can't decode byte 0x{:02x} in position {start}: {reason}",
            bytes[start]
        )
    } else {
        format!(
            "'utf-8' codec can't decode bytes in position {start}-{}: {reason}",
            start + len - 1
        )
    };
    PyError::builtin("UnicodeDecodeError", text)
}

/// `msgpack.loads(data, raw=False)`.
///
/// # Errors
/// What msgpack-python raises: incomplete input, extra data, invalid UTF-8,
/// a map key that is not `str` or `bytes`, the reserved byte 0xc1.
pub fn unpack(data: &[u8]) -> Result<Value, PyError> {
    let mut r = Reader { buf: data, pos: 0 };
    let v = r.value(0)?;
    if r.pos != data.len() {
        return Err(PyError::new(
            "msgpack.exceptions",
            "ExtraData",
            "unpack(b) received extra data.",
        ));
    }
    Ok(v)
}

/// Writes a value as msgpack-python would (`str` as str, `bytes` as bin).
pub fn pack(out: &mut Vec<u8>, v: &Value) {
    use rmp::encode as e;
    // Writes into a Vec cannot fail.
    let _ = match v {
        Value::Nil => e::write_nil(out).map_err(|_| ()),
        Value::Bool(b) => e::write_bool(out, *b).map_err(|_| ()),
        Value::Int(i) => e::write_sint(out, *i).map(|_| ()).map_err(|_| ()),
        Value::UInt(u) => e::write_uint(out, *u).map(|_| ()).map_err(|_| ()),
        Value::Float(f) => e::write_f64(out, *f).map_err(|_| ()),
        Value::Str(s) => e::write_str(out, s).map_err(|_| ()),
        Value::Bin(b) => e::write_bin(out, b).map_err(|_| ()),
        Value::Array(items) => {
            let _ = e::write_array_len(out, items.len() as u32);
            for i in items {
                pack(out, i);
            }
            Ok(())
        }
        Value::Map(entries) => {
            let _ = e::write_map_len(out, entries.len() as u32);
            for (k, v) in entries {
                pack(out, k);
                pack(out, v);
            }
            Ok(())
        }
        Value::Ext(code, data) => e::write_ext_meta(out, data.len() as u32, *code)
            .map(|_| out.extend_from_slice(data))
            .map_err(|_| ()),
        Value::Timestamp => e::write_ext_meta(out, 4, -1)
            .map(|_| out.extend_from_slice(&[0; 4]))
            .map_err(|_| ()),
    };
}

/// A reply with an error and no rows: `{"items": [], "error": {"type": …,
/// "message": …}}`, compressed.
pub fn error_reply(err: &PyError) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + err.message.len() * 2);
    begin_reply(&mut out, 2);
    out.push(0x90);
    write_error_field(&mut out, Some(err));
    compress(&out)
}

/// Writes the map header and the `items` key; the caller writes the items.
pub(crate) fn begin_reply(out: &mut Vec<u8>, fields: u32) {
    let _ = rmp::encode::write_map_len(out, fields);
    let _ = rmp::encode::write_str(out, "items");
}

/// Writes the `error` key and its value.
pub(crate) fn write_error_field(out: &mut Vec<u8>, err: Option<&PyError>) {
    let _ = rmp::encode::write_str(out, "error");
    match err {
        None => out.push(0xc0),
        Some(err) => {
            let _ = rmp::encode::write_map_len(out, 2);
            let _ = rmp::encode::write_str(out, "type");
            let _ = rmp::encode::write_str(out, &err.kind);
            let _ = rmp::encode::write_str(out, "message");
            let _ = rmp::encode::write_str(out, &err.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgpack_errors_match_msgpack_python() {
        let msg = |b: &[u8]| unpack(b).unwrap_err().message;
        assert_eq!(
            msg(b"\xa2\xff\xfe"),
            "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"
        );
        assert_eq!(
            msg(b"\x81\x01\x02"),
            "ValueError: int is not allowed for map key when strict_map_key=True"
        );
        assert_eq!(
            msg(b"\x01\x02"),
            "msgpack.exceptions.ExtraData: unpack(b) received extra data."
        );
        assert_eq!(
            msg(b"\x92\x01"),
            "ValueError: Unpack failed: incomplete input"
        );
        assert_eq!(msg(b""), "ValueError: Unpack failed: incomplete input");
        assert_eq!(msg(b"\xc1"), "msgpack.exceptions.FormatError");
        assert_eq!(
            unpack(b"\xc1").unwrap_err().kind,
            "msgpack.exceptions.FormatError"
        );
        assert_eq!(
            msg(b"\xc7\x03\xff\x00\x00\x00"),
            "ValueError: invalid timestamp data (length 3)"
        );
        // A huge declared length with no data: an error, no allocation.
        assert_eq!(
            msg(b"\xdd\xff\xff\xff\xff"),
            "ValueError: Unpack failed: incomplete input"
        );
        let deep = vec![0x91u8; 5000];
        assert!(unpack(&deep).is_err());
    }

    #[test]
    fn subscript_like_python() {
        let m = unpack(b"\x82\xa1a\x01\xa1a\x02").unwrap();
        assert_eq!(m.subscript("a").unwrap(), &Value::Int(2));
        assert_eq!(m.subscript("b").unwrap_err().message, "KeyError: 'b'");
        assert_eq!(
            Value::Array(vec![]).subscript("a").unwrap_err().message,
            "TypeError: list indices must be integers or slices, not str"
        );
        assert_eq!(
            Value::Nil.subscript("a").unwrap_err().message,
            "TypeError: 'NoneType' object is not subscriptable"
        );
    }

    #[test]
    fn pack_unpack_round_trip() {
        let v = Value::Map(vec![
            (
                Value::Str("q".into()),
                Value::Array(vec![Value::Int(-5), Value::UInt(u64::MAX)]),
            ),
            (Value::Bin(b"k".to_vec()), Value::Float(1.5)),
        ]);
        let mut out = Vec::new();
        pack(&mut out, &v);
        assert_eq!(unpack(&out).unwrap(), v);
    }
}
