//! A statement's results: stepping it into MessagePack rows (as
//! `fetchall()` would, with its errors and the result-size limit), and the
//! reply that carries them, compressed now or left for the caller
//! ([`Reply`]).

use rusqlite::types::ValueRef;
use rusqlite::Statement;

use super::{sqlite_error, CursorState, Fail, Shared};
use crate::wire::{self, Compression, PyError};

/// The result of a request that did not fail: the encoded rows.
pub(super) struct Rows {
    pub(super) count: u32,
    pub(super) bytes: Vec<u8>,
}

impl Rows {
    /// No rows yet (and none for a script, an `executemany` or an empty
    /// statement).
    pub(super) fn empty() -> Rows {
        Rows {
            count: 0,
            bytes: Vec::new(),
        }
    }
}

/// Steps a prepared statement to the end: the first step is `execute`'s
/// (errors there are [`Fail::Execute`]), the rest are `fetchall`'s. Returns
/// the rows and, for DML, `sqlite3_changes()` when it finished.
pub(super) fn step_all(
    stmt: &mut Statement<'_>,
    shared: &Shared,
    max: usize,
) -> Result<Rows, Fail> {
    step_all_with(stmt, shared, max, || {}, || None).map(|(rows, _)| rows)
}

pub(super) fn step_all_with(
    stmt: &mut Statement<'_>,
    shared: &Shared,
    max: usize,
    after_first_step: impl FnOnce(),
    at_end: impl FnOnce() -> Option<i64>,
) -> Result<(Rows, Option<i64>), Fail> {
    let ncols = stmt.column_count();
    let names: Vec<String> = (0..ncols)
        .map(|i| stmt.column_name(i).map(str::to_string).unwrap_or_default())
        .collect();
    let mut out = Rows::empty();
    let mut rows = stmt.raw_query();
    let first = rows
        .next()
        .map_err(|e| Fail::Execute(shared.sqlite_failed(&e)))?;
    after_first_step();
    let mut current = first;
    loop {
        let Some(row) = current else {
            shared.sqlite_ok();
            return Ok((out, at_end()));
        };
        if out.count == u32::MAX {
            return Err(Fail::Fetch(PyError::sqlite("DataError", "too many rows")));
        }
        let _ = rmp::encode::write_array_len(&mut out.bytes, ncols as u32);
        for (i, name) in names.iter().enumerate() {
            let v = row.get_ref(i).map_err(|e| Fail::Fetch(sqlite_error(&e)))?;
            match v {
                ValueRef::Null => out.bytes.push(0xc0),
                ValueRef::Integer(n) => {
                    let _ = rmp::encode::write_sint(&mut out.bytes, n);
                }
                ValueRef::Real(f) => {
                    let _ = rmp::encode::write_f64(&mut out.bytes, f);
                }
                ValueRef::Text(t) => match std::str::from_utf8(t) {
                    Ok(s) => {
                        let _ = rmp::encode::write_str(&mut out.bytes, s);
                    }
                    Err(_) => {
                        return Err(Fail::Fetch(PyError::sqlite(
                            "OperationalError",
                            format!(
                                "Could not decode to UTF-8 column '{name}' with text '{}'",
                                String::from_utf8_lossy(t)
                            ),
                        )))
                    }
                },
                ValueRef::Blob(b) => {
                    let _ = rmp::encode::write_bin(&mut out.bytes, b);
                }
            }
        }
        out.count += 1;
        if out.bytes.len() > max {
            return Err(Fail::Fetch(PyError::sqlite(
                "DataError",
                format!("result too large: the rows exceed the server's limit of {max} bytes"),
            )));
        }
        current = rows
            .next()
            .map_err(|e| Fail::Fetch(shared.sqlite_failed(&e)))?;
    }
}

/// A reply, compressed or not yet.
#[derive(Debug)]
pub enum Reply {
    /// The compressed body, ready to send.
    Ready(Vec<u8>),
    /// A large MessagePack body still to deflate ([`Reply::into_body`]).
    Uncompressed(Vec<u8>),
}

impl Reply {
    /// The body to send: compressed now if it was not yet.
    pub fn into_body(self) -> Vec<u8> {
        match self {
            Reply::Ready(body) => body,
            Reply::Uncompressed(raw) => wire::compress(&raw),
        }
    }
}

/// From this size (uncompressed) a reply's compression is left to the
/// caller (`Reply::Uncompressed`): deflating a 1,000-row result takes
/// about as long as running its query, and the thread that runs queries
/// is the server's bottleneck. Smaller replies are compressed at once; a
/// hand-off would cost more than it saves.
const DEFER_COMPRESSION_MIN: usize = 16 * 1024;

pub(super) fn encode_reply(how: Compression, rows: &Rows, cursor: CursorState) -> Reply {
    let fields = 2 + u32::from(cursor.rowcount > -1) + u32::from(cursor.lastrowid != 0);
    let mut out = Vec::with_capacity(rows.bytes.len() + 48);
    wire::begin_reply(&mut out, fields);
    let _ = rmp::encode::write_array_len(&mut out, rows.count);
    out.extend_from_slice(&rows.bytes);
    wire::write_error_field(&mut out, None);
    if cursor.rowcount > -1 {
        let _ = rmp::encode::write_str(&mut out, "rowcount");
        let _ = rmp::encode::write_sint(&mut out, cursor.rowcount);
    }
    if cursor.lastrowid != 0 {
        let _ = rmp::encode::write_str(&mut out, "lastrowid");
        let _ = rmp::encode::write_sint(&mut out, cursor.lastrowid);
    }
    if how != Compression::Stored && out.len() >= DEFER_COMPRESSION_MIN {
        Reply::Uncompressed(out)
    } else {
        Reply::Ready(wire::compress_as(&out, how))
    }
}
