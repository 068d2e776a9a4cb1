//! Binding request parameters to a statement as CPython's
//! `bind_parameters` does: a sequence (list, str, bytes, ExtType) binds by
//! position, a dict by name (`:a` looks up `"a"`); anything else, or an
//! element of an unsupported type, is refused with CPython's message.

use std::borrow::Cow;

use rusqlite::Statement;

use crate::exec::sqlite_error;
use crate::wire::{PyError, Value};

fn programming(text: impl std::fmt::Display) -> PyError {
    PyError::sqlite("ProgrammingError", text)
}

/// The items of a parameter value Python treats as a sequence (a list is
/// borrowed: it is the common case, once per row of an `executemany`).
pub(crate) fn sequence(p: &Value) -> Option<Cow<'_, [Value]>> {
    match p {
        Value::Array(a) => Some(Cow::Borrowed(a)),
        Value::Str(s) => Some(s.chars().map(|c| Value::Str(c.to_string())).collect()),
        Value::Bin(b) => Some(b.iter().map(|&x| Value::Int(i64::from(x))).collect()),
        Value::Ext(code, data) => Some(Cow::Owned(vec![
            Value::Int(i64::from(*code)),
            Value::Bin(data.clone()),
        ])),
        _ => None,
    }
}

/// CPython's `bind_parameters`: a sequence binds by position, a dict by
/// name; anything else is refused.
pub(crate) fn bind(
    stmt: &mut Statement<'_>,
    params: Option<&Value>,
    stale: Option<PyError>,
) -> Result<(), PyError> {
    let needed = stmt.parameter_count();
    match params {
        None => {
            if needed != 0 {
                return Err(programming(format!(
                    "Incorrect number of bindings supplied. The current statement uses {needed}, and there are 0 supplied."
                )));
            }
            Ok(())
        }
        Some(Value::Map(entries)) => {
            for i in 1..=needed {
                let Some(name) = stmt.parameter_name(i).map(str::to_string) else {
                    return Err(programming(format!(
                        "Binding {i} has no name, but you supplied a dictionary (which has only names)."
                    )));
                };
                let key = name.get(1..).unwrap_or("");
                let v = entries
                    .iter()
                    .rev()
                    .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        programming(format!(
                            "You did not supply a value for binding parameter :{key}."
                        ))
                    })?;
                bind_one(stmt, i, v).map_err(|e| stale.clone().unwrap_or(e))?;
            }
            Ok(())
        }
        Some(p) => {
            let Some(items) = sequence(p) else {
                return Err(programming("parameters are of unsupported type"));
            };
            if items.len() != needed {
                return Err(programming(format!(
                    "Incorrect number of bindings supplied. The current statement uses {needed}, and there are {} supplied.",
                    items.len()
                )));
            }
            for (i, v) in items.iter().enumerate() {
                bind_one(stmt, i + 1, v).map_err(|e| stale.clone().unwrap_or(e))?;
            }
            Ok(())
        }
    }
}

fn bind_one(stmt: &mut Statement<'_>, i: usize, v: &Value) -> Result<(), PyError> {
    let r = match v {
        Value::Nil => stmt.raw_bind_parameter(i, rusqlite::types::Null),
        Value::Bool(b) => stmt.raw_bind_parameter(i, i64::from(*b)),
        Value::Int(n) => stmt.raw_bind_parameter(i, *n),
        Value::UInt(_) => {
            return Err(PyError::builtin(
                "OverflowError",
                "Python int too large to convert to SQLite INTEGER",
            ))
        }
        Value::Float(f) => stmt.raw_bind_parameter(i, *f),
        Value::Str(s) => stmt.raw_bind_parameter(i, s.as_str()),
        Value::Bin(b) => stmt.raw_bind_parameter(i, b.as_slice()),
        other => {
            return Err(programming(format!(
                "Error binding parameter {i}: type '{}' is not supported",
                other.type_name()
            )))
        }
    };
    r.map_err(|e| sqlite_error(&e))
}
