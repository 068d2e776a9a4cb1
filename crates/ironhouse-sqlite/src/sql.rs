//! Small, text-level facts about SQL that CPython's `sqlite3` module decides
//! by looking at the characters rather than asking SQLite:
//!
//! - [`lstrip`]: skip whitespace and comments (`lstrip_sql` in CPython's
//!   `statement.c`);
//! - [`is_dml`]: a statement counts as DML (and so has a `rowcount`) when its
//!   first word is INSERT, UPDATE, DELETE or REPLACE;
//! - [`first_statement_end`]: where SQLite's parser stops after the first
//!   statement (the "tail" that `sqlite3_prepare` hands back), found with the
//!   state machine of SQLite's own `sqlite3_complete` so that
//!   `CREATE TRIGGER … BEGIN …; END;` stays one statement.

/// The SQL after leading whitespace and comments, or `None` if nothing else
/// is left (an unterminated comment counts as nothing).
pub fn lstrip(sql: &str) -> Option<&str> {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\x0c' | b'\n' | b'\r' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i += 2;
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                if i >= b.len() {
                    return None;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                if i >= b.len() {
                    return None;
                }
                i += 2;
            }
            _ => return Some(&sql[i..]),
        }
    }
    None
}

/// Whether SQL holds no statement at all: only whitespace, comments and
/// semicolons (SQLite prepares it to nothing).
pub fn is_empty_statement(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        match lstrip(rest) {
            None => return true,
            Some(s) if s.starts_with(';') => rest = &s[1..],
            Some(_) => return false,
        }
    }
}

/// CPython's rule for "this statement changes rows": the first word, after
/// whitespace and comments, starts with INSERT, UPDATE, DELETE or REPLACE
/// (case-insensitive). `WITH … INSERT` does not count.
pub fn is_dml(sql: &str) -> bool {
    let Some(s) = lstrip(sql) else { return false };
    let starts =
        |w: &str| s.len() >= w.len() && s.as_bytes()[..w.len()].eq_ignore_ascii_case(w.as_bytes());
    starts("insert") || starts("update") || starts("delete") || starts("replace")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    Semi,
    Ws,
    Other,
    Explain,
    Create,
    Temp,
    Trigger,
    End,
}

/// Byte offset just past the first statement's terminating `;`, or the
/// length of `sql` when it has none: what SQLite's prepare leaves as the
/// tail. Leading empty statements (`;`) belong to the first statement, as
/// SQLite skips them.
pub fn first_statement_end(sql: &str) -> usize {
    // sqlite3_complete's transitions: state x token -> state.
    const TRANS: [[u8; 8]; 8] = [
        /* 0 INVALID */ [1, 0, 2, 3, 4, 2, 2, 2],
        /* 1 START   */ [1, 1, 2, 3, 4, 2, 2, 2],
        /* 2 NORMAL  */ [1, 2, 2, 2, 2, 2, 2, 2],
        /* 3 EXPLAIN */ [1, 3, 3, 2, 4, 2, 2, 2],
        /* 4 CREATE  */ [1, 4, 2, 2, 2, 4, 5, 2],
        /* 5 TRIGGER */ [6, 5, 5, 5, 5, 5, 5, 5],
        /* 6 SEMI    */ [6, 6, 5, 5, 5, 5, 5, 7],
        /* 7 END     */ [1, 7, 5, 5, 5, 5, 5, 5],
    ];
    let b = sql.as_bytes();
    let mut state = 0u8;
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let tok = match b[i] {
            b';' => {
                i += 1;
                Tok::Semi
            }
            b' ' | b'\t' | b'\n' | b'\x0c' | b'\r' => {
                i += 1;
                Tok::Ws
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                Tok::Ws
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
                Tok::Ws
            }
            q @ (b'\'' | b'"' | b'`' | b'[') => {
                let close = if q == b'[' { b']' } else { q };
                i += 1;
                while i < b.len() && b[i] != close {
                    i += 1;
                }
                i = (i + 1).min(b.len());
                Tok::Other
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 || c == b'$' => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] >= 0x80
                        || b[i] == b'$')
                {
                    i += 1;
                }
                let word = &b[start..i];
                let is = |w: &str| word.eq_ignore_ascii_case(w.as_bytes());
                if is("create") {
                    Tok::Create
                } else if is("temp") || is("temporary") {
                    Tok::Temp
                } else if is("trigger") {
                    Tok::Trigger
                } else if is("explain") {
                    Tok::Explain
                } else if is("end") {
                    Tok::End
                } else {
                    Tok::Other
                }
            }
            _ => {
                i += 1;
                Tok::Other
            }
        };
        let next = TRANS[state as usize][tok as usize];
        if tok == Tok::Semi && next == 1 && !matches!(state, 0 | 1) {
            return i;
        }
        state = next;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstrip_skips_whitespace_and_comments() {
        assert_eq!(lstrip("  -- c\n /* d */ SELECT 1"), Some("SELECT 1"));
        assert_eq!(lstrip("  -- only"), None);
        assert_eq!(lstrip("/* open"), None);
        assert_eq!(lstrip(""), None);
        assert_eq!(lstrip(";"), Some(";"));
        assert!(is_empty_statement(" ; -- x\n ;"));
        assert!(!is_empty_statement("; SELECT 1"));
    }

    #[test]
    fn dml_by_first_word() {
        assert!(is_dml("/* c */ insert into t values (1)"));
        assert!(is_dml("\n REPLACE INTO t VALUES (1)"));
        assert!(!is_dml(
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x"
        ));
        assert!(!is_dml("SELECT 1"));
        assert!(!is_dml(""));
    }

    #[test]
    fn statement_ends_like_sqlite() {
        fn end(s: &str) -> &str {
            &s[first_statement_end(s)..]
        }
        assert_eq!(end("SELECT 1"), "");
        assert_eq!(end("SELECT 1; SELECT 2"), " SELECT 2");
        assert_eq!(end("SELECT ';'; x"), " x");
        assert_eq!(end("; SELECT 1"), "");
        assert_eq!(end("SELECT 1;;"), ";");
        assert_eq!(end("SELECT \"a;b\" -- ;\n; y"), " y");
        assert_eq!(
            end("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END; z"),
            " z"
        );
        assert_eq!(
            end("CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;"),
            ""
        );
    }
}
