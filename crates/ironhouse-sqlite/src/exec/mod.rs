//! Running one request on a SQLite connection with the exact results of
//! sqlite_rx's server, which runs `cursor.execute`, `executemany` or
//! `executescript` of CPython 3.11's `sqlite3` on one shared cursor and then
//! `fetchall()`.
//!
//! What has to match, and where it comes from:
//!
//! - **`rowcount`** (sent when > -1): `execute` sets it to 0 for DML (first
//!   word INSERT/UPDATE/DELETE/REPLACE, [`sql::is_dml`]) and -1 otherwise,
//!   then to `sqlite3_changes()` when a DML statement finishes (in
//!   `fetchall` for `… RETURNING`); `executemany` sums the changes; any error
//!   in `execute`/`executemany` sets -1; `executescript` leaves it alone.
//! - **`lastrowid`** (sent when non-zero): `execute` sets it to
//!   `sqlite3_last_insert_rowid()` after every success, SELECT included;
//!   `executemany` and `executescript` leave the stale value.
//! - **errors**: the exception's class and text, from SQLite's result code
//!   (CPython's `_pysqlite_seterror` table) or from the module's own checks
//!   (binding, one statement at a time, argument types).
//!
//! The cursor state lives in [`CursorState`], shared by the writer and the
//! readers (see [`crate::server`]), as sqlite_rx shares one cursor between
//! all clients.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::authz::{action_code, AuthConfig};
use crate::bind::{bind, sequence};
use crate::sql;
use crate::wire::{self, Compression, PyError, Value};

mod results;

pub use results::Reply;
use results::{encode_reply, step_all, step_all_with, Rows};

/// sqlite_rx's one shared cursor: the values a reply may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorState {
    /// `cursor.rowcount`.
    pub rowcount: i64,
    /// `cursor.lastrowid` (`None` is 0: both are left out of replies).
    pub lastrowid: i64,
}

impl Default for CursorState {
    fn default() -> Self {
        CursorState {
            rowcount: -1,
            lastrowid: 0,
        }
    }
}

/// Per-request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Interrupt a request that runs longer (`None`: no limit, as sqlite_rx).
    pub time: Option<Duration>,
    /// Largest reply (MessagePack bytes of the rows) before compression.
    pub max_result_bytes: usize,
    /// Largest request after decompression.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: None,
            max_result_bytes: 256 << 20,
            max_request_bytes: 256 << 20,
        }
    }
}

/// State shared by the writer and the reader connections.
#[derive(Debug, Default)]
pub struct Shared {
    /// The one cursor's state.
    pub cursor: Mutex<CursorState>,
    /// The writer's `last_insert_rowid()` after its last request.
    pub writer_last_rowid: AtomicI64,
    /// The writer's connection is inside a transaction (a client's BEGIN):
    /// every request then goes to the writer, so all clients see the
    /// transaction's state, as with sqlite_rx's one connection.
    pub writer_in_txn: AtomicBool,
    /// The writer's connection holds state readers do not have (TEMP
    /// objects, ATTACHed databases, PRAGMA changes): reads stay on it.
    pub readers_disabled: AtomicBool,
    /// What `sqlite3_errcode()` of sqlite_rx's one connection would say.
    errstate: Mutex<ErrState>,
}

/// CPython quirk: when binding a parameter fails (an unsupported type, an
/// int too large), CPython raises the connection's *current* SQLite error
/// if there is one — stale, from the last failed statement, when the query
/// came from its statement cache (no new prepare reset it). This keeps the
/// same state: the last SQLite error, and which query strings CPython's LRU
/// cache (128 entries) would hold.
#[derive(Debug, Default)]
struct ErrState {
    last: Option<PyError>,
    cache: std::collections::VecDeque<String>,
}

const STATEMENT_CACHE: usize = 128;

impl Shared {
    /// Locks the cursor state (never poisoned in practice: a panic while it
    /// is held leaves a consistent value).
    pub fn cursor(&self) -> std::sync::MutexGuard<'_, CursorState> {
        self.cursor.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self) -> std::sync::MutexGuard<'_, ErrState> {
        self.errstate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A SQLite call failed with `e`.
    fn sqlite_failed(&self, e: &rusqlite::Error) -> PyError {
        let err = sqlite_error(e);
        self.err().last = Some(err.clone());
        err
    }

    /// A SQLite call succeeded (errcode back to OK).
    fn sqlite_ok(&self) {
        self.err().last = None;
    }

    /// Whether CPython's statement cache holds `q` (and marks it used).
    fn cache_hit(&self, q: &str) -> bool {
        let mut st = self.err();
        match st.cache.iter().position(|c| c == q) {
            Some(i) => {
                if let Some(c) = st.cache.remove(i) {
                    st.cache.push_front(c);
                }
                true
            }
            None => false,
        }
    }

    fn cache_insert(&self, q: &str) {
        let mut st = self.err();
        st.cache.push_front(q.to_string());
        st.cache.truncate(STATEMENT_CACHE);
    }

    fn stale_error(&self) -> Option<PyError> {
        self.err().last.clone()
    }
}

/// Maps a SQLite error to the exception CPython raises for it.
pub fn sqlite_error(e: &rusqlite::Error) -> PyError {
    use rusqlite::Error as E;
    let (code, msg) = match e {
        E::SqliteFailure(err, msg) => (err.extended_code, msg.clone()),
        E::SqlInputError { error, msg, .. } => (error.extended_code, Some(msg.clone())),
        other => return PyError::sqlite("InterfaceError", other),
    };
    let class = match code & 0xff {
        1 | 3 | 4 | 5 | 6 | 8 | 9 | 10 | 13 | 14 | 15 | 16 | 17 => "OperationalError",
        19 | 20 => "IntegrityError",
        18 => "DataError",
        21 => "InterfaceError",
        2 | 12 => "InternalError",
        7 => return PyError::builtin("MemoryError", ""),
        _ => "DatabaseError",
    };
    let text = msg.unwrap_or_else(|| rusqlite::ffi::Error::new(code).to_string());
    PyError::sqlite(class, text)
}

fn programming(text: impl std::fmt::Display) -> PyError {
    PyError::sqlite("ProgrammingError", text)
}

/// Where an error happened: in `execute`/`executemany` (the cursor's
/// `rowcount` becomes -1) or in `fetchall` (the cursor is left alone).
enum Fail {
    Execute(PyError),
    Fetch(PyError),
    /// Raised before the cursor method ran (argument types, missing keys).
    Untouched(PyError),
}

/// Which connection a request is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The read-write connection: every kind of request.
    Writer,
    /// A read-only connection of a file database: plain SELECTs.
    Reader,
}

/// What a reader makes of a request.
pub enum ReadOutcome {
    /// Served: the reply.
    Reply(Vec<u8>),
    /// Not a plain read (or the reader cannot be sure): send to the writer.
    Forward(Value),
}

/// One connection and the logic that runs requests on it.
pub struct Engine {
    conn: Connection,
    role: Role,
    shared: Arc<Shared>,
    limits: Limits,
    /// Deadline of the running request, as nanoseconds since `epoch`; 0: none.
    deadline: Arc<AtomicU64>,
    epoch: Instant,
    /// Run an autocommit `executemany` inside one transaction (the
    /// authorizer allows TRANSACTION).
    batch_txn: bool,
    /// How result replies are compressed (`Auto` deflates, as in
    /// [`wire::compress_as`]).
    compression: Compression,
}

impl Engine {
    /// Wraps a connection: installs the authorizer and, with a time limit,
    /// the progress handler that enforces it.
    pub fn new(
        conn: Connection,
        role: Role,
        auth: AuthConfig,
        shared: Arc<Shared>,
        limits: Limits,
    ) -> Engine {
        conn.set_prepared_statement_cache_capacity(128);
        let watch = Arc::clone(&shared);
        let writer = role == Role::Writer;
        let batch_txn = writer && auth.permission(22) == rusqlite::hooks::Authorization::Allow;
        conn.authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
            let code = action_code(&ctx.action);
            let p = auth.permission(code);
            // Connection-local state the readers would not share.
            if writer
                && p != rusqlite::hooks::Authorization::Deny
                && matches!(code, 3..=6 | 19 | 24 | 25 | 29)
                && !(code == 19 && p == rusqlite::hooks::Authorization::Ignore)
            {
                watch.readers_disabled.store(true, Ordering::Relaxed);
            }
            p
        }));
        let deadline = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        if limits.time.is_some() {
            let d = Arc::clone(&deadline);
            conn.progress_handler(
                1000,
                Some(move || {
                    let due = d.load(Ordering::Relaxed);
                    due != 0 && epoch.elapsed().as_nanos() as u64 > due
                }),
            );
        }
        Engine {
            conn,
            role,
            shared,
            limits,
            deadline,
            epoch,
            batch_txn,
            compression: Compression::Deflate,
        }
    }

    /// Sets how result replies are compressed; `Auto` deflates here
    /// (resolve it against the link first, [`Compression::for_link`]).
    /// Default: `Deflate`.
    pub fn with_compression(mut self, how: Compression) -> Engine {
        self.compression = how;
        self
    }

    /// The connection (for backups).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes a request body (`zlib(msgpack(map))`).
    ///
    /// # Errors
    /// The Python exception sqlite_rx's server would report.
    pub fn decode(&self, body: &[u8]) -> Result<Value, PyError> {
        let raw = wire::decompress(body, self.limits.max_request_bytes)?;
        wire::unpack(&raw)
    }

    /// Handles one request body and returns the compressed reply. Never
    /// fails: every problem becomes an error reply.
    pub fn handle(&mut self, body: &[u8]) -> Vec<u8> {
        self.handle_deferred(body).into_body()
    }

    /// [`Engine::handle`], leaving a large reply uncompressed so the caller
    /// can compress it on another thread while this one runs the next
    /// request.
    pub fn handle_deferred(&mut self, body: &[u8]) -> Reply {
        match self.decode(body) {
            Ok(msg) => self.run_deferred(&msg),
            Err(e) => Reply::Ready(wire::error_reply(&e)),
        }
    }

    /// A reader's attempt: serves a plain read, or hands the decoded
    /// request back for the writer.
    pub fn read(&mut self, body: &[u8]) -> ReadOutcome {
        let msg = match self.decode(body) {
            Ok(m) => m,
            Err(e) => return ReadOutcome::Reply(wire::error_reply(&e)),
        };
        if !self.readable(&msg) {
            return ReadOutcome::Forward(msg);
        }
        match self.try_read(&msg) {
            Some(reply) => ReadOutcome::Reply(reply),
            None => ReadOutcome::Forward(msg),
        }
    }

    /// Whether a request may run on a reader: a plain `execute` of one
    /// SELECT/WITH/VALUES statement that does not ask about the writer's
    /// connection, while no transaction is open on the writer.
    fn readable(&self, msg: &Value) -> bool {
        if self.shared.writer_in_txn.load(Ordering::Acquire)
            || self.shared.readers_disabled.load(Ordering::Relaxed)
        {
            return false;
        }
        let (Ok(many), Ok(script), Ok(Value::Str(q))) = (
            msg.subscript("execute_many"),
            msg.subscript("execute_script"),
            msg.subscript("query"),
        ) else {
            return false;
        };
        if script.truthy() || many.truthy() || q.contains('\0') {
            return false;
        }
        let Some(s) = sql::lstrip(q) else {
            return false;
        };
        let word_end = s
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(s.len());
        let word = &s[..word_end];
        if !["select", "with", "values"]
            .iter()
            .any(|w| w.eq_ignore_ascii_case(word))
        {
            return false;
        }
        let lower = q.to_ascii_lowercase();
        !(lower.contains("last_insert_rowid") || lower.contains("changes"))
    }

    fn try_read(&mut self, msg: &Value) -> Option<Vec<u8>> {
        let Ok(Value::Str(q)) = msg.subscript("query") else {
            return None;
        };
        let params = msg.subscript("params").ok()?;
        let params = params.truthy().then_some(params);
        let end = sql::first_statement_end(q);
        if sql::lstrip(&q[end..]).is_some() || sql::is_empty_statement(&q[..end]) {
            return None;
        }
        self.arm_deadline();
        let result = (|| {
            let mut stmt = self.conn.prepare_cached(&q[..end]).ok()?;
            if !stmt.readonly() {
                return None;
            }
            bind(&mut stmt, params, None).ok()?;
            if !self.shared.cache_hit(q) {
                self.shared.cache_insert(q);
            }
            let lastrowid = self.shared.writer_last_rowid.load(Ordering::Acquire);
            let max = self.limits.max_result_bytes;
            Some(match step_all(&mut stmt, &self.shared, max) {
                Ok(rows) => {
                    let cursor = CursorState {
                        rowcount: -1,
                        lastrowid,
                    };
                    *self.shared.cursor() = cursor;
                    encode_reply(self.compression, &rows, cursor).into_body()
                }
                Err(Fail::Execute(e)) => {
                    self.shared.cursor().rowcount = -1;
                    wire::error_reply(&self.explain(e))
                }
                Err(Fail::Fetch(e)) => {
                    self.shared.cursor().lastrowid = lastrowid;
                    wire::error_reply(&self.explain(e))
                }
                Err(Fail::Untouched(e)) => wire::error_reply(&e),
            })
        })();
        self.disarm_deadline();
        result
    }

    fn arm_deadline(&self) {
        if let Some(t) = self.limits.time {
            let due = (self.epoch.elapsed() + t).as_nanos().max(1) as u64;
            self.deadline.store(due, Ordering::Relaxed);
        }
    }

    fn disarm_deadline(&self) {
        self.deadline.store(0, Ordering::Relaxed);
    }

    /// Explains an interruption caused by the time limit.
    fn explain(&self, e: PyError) -> PyError {
        match self.limits.time {
            Some(t) if e.message == "sqlite3.OperationalError: interrupted" => PyError::sqlite(
                "OperationalError",
                format!(
                    "interrupted: the query ran past the server's time limit of {:.3} s",
                    t.as_secs_f64()
                ),
            ),
            _ => e,
        }
    }

    /// Runs a decoded request as sqlite_rx's `QueryStreamHandler.execute`
    /// does, and returns the compressed reply.
    pub fn run(&mut self, msg: &Value) -> Vec<u8> {
        self.run_deferred(msg).into_body()
    }

    fn run_deferred(&mut self, msg: &Value) -> Reply {
        let (many, script) = match (
            msg.subscript("execute_many"),
            msg.subscript("execute_script"),
        ) {
            (Err(e), _) | (_, Err(e)) => return Reply::Ready(wire::error_reply(&e)),
            (Ok(m), Ok(s)) => (m.truthy(), s.truthy()),
        };
        self.arm_deadline();
        let outcome = self.dispatch(msg, many, script);
        self.disarm_deadline();
        let reply = {
            let mut cursor = self.shared.cursor();
            match outcome {
                Ok(rows) => encode_reply(self.compression, &rows, *cursor),
                Err(fail) => Reply::Ready({
                    let err = match fail {
                        Fail::Execute(e) => {
                            cursor.rowcount = -1;
                            e
                        }
                        Fail::Fetch(e) | Fail::Untouched(e) => e,
                    };
                    // sqlite_rx logs `message["query"]` while handling an
                    // error: a request without one reports that instead.
                    let err = match msg.subscript("query") {
                        Err(e) => e,
                        Ok(_) => self.explain(err),
                    };
                    wire::error_reply(&err)
                }),
            }
        };
        if self.role == Role::Writer {
            self.shared
                .writer_last_rowid
                .store(self.conn.last_insert_rowid(), Ordering::Release);
            self.shared
                .writer_in_txn
                .store(!self.conn.is_autocommit(), Ordering::Release);
        }
        reply
    }

    fn dispatch(&mut self, msg: &Value, many: bool, script: bool) -> Result<Rows, Fail> {
        let key = |k: &str| msg.subscript(k).map_err(Fail::Untouched);
        if script {
            let q = key("query")?;
            self.executescript(q).map_err(Fail::Untouched)?;
            return Ok(Rows::empty());
        }
        if many && key("params")?.truthy() {
            let q = key("query")?;
            let p = key("params")?;
            self.executemany(q, p)?;
            return Ok(Rows::empty());
        }
        let p = key("params")?;
        let q = key("query")?;
        self.execute(q, p.truthy().then_some(p))
    }

    fn query_str<'v>(q: &'v Value, method: &str, arg: &str) -> Result<&'v str, Fail> {
        match q {
            Value::Str(s) => Ok(s),
            other => Err(Fail::Untouched(PyError::builtin(
                "TypeError",
                format!(
                    "{method}() argument{arg} must be str, not {}",
                    other.type_name()
                ),
            ))),
        }
    }

    /// Checks and prepares the first statement; `None` for an empty one.
    fn prepare<'c>(
        conn: &'c Connection,
        shared: &Shared,
        q: &str,
    ) -> Result<Option<rusqlite::CachedStatement<'c>>, Fail> {
        if q.contains('\0') {
            return Err(Fail::Execute(programming(
                "the query contains a null character",
            )));
        }
        let hit = shared.cache_hit(q);
        let end = sql::first_statement_end(q);
        let stmt = if sql::is_empty_statement(&q[..end]) {
            None
        } else {
            Some(
                conn.prepare_cached(&q[..end])
                    .map_err(|e| Fail::Execute(shared.sqlite_failed(&e)))?,
            )
        };
        if !hit {
            // A real prepare: SQLite's error state is back to OK.
            shared.sqlite_ok();
        }
        if sql::lstrip(&q[end..]).is_some() {
            return Err(Fail::Execute(programming(
                "You can only execute one statement at a time.",
            )));
        }
        if !hit {
            shared.cache_insert(q);
        }
        Ok(stmt)
    }

    fn execute(&mut self, q: &Value, params: Option<&Value>) -> Result<Rows, Fail> {
        let q = Self::query_str(q, "execute", " 1")?;
        let max = self.limits.max_result_bytes;
        let conn = &self.conn;
        let stmt = Self::prepare(conn, &self.shared, q)?;
        let dml = sql::is_dml(q);
        self.shared.cursor().rowcount = if dml { 0 } else { -1 };
        let Some(mut stmt) = stmt else {
            bind_count_check(0, params)?;
            self.shared.cursor().lastrowid = conn.last_insert_rowid();
            return Ok(Rows::empty());
        };
        bind(&mut stmt, params, self.shared.stale_error()).map_err(Fail::Execute)?;
        let shared = &self.shared;
        let (rows, changes) = step_all_with(
            &mut stmt,
            shared,
            max,
            || shared.cursor().lastrowid = conn.last_insert_rowid(),
            || dml.then(|| conn.changes() as i64),
        )?;
        if let Some(c) = changes {
            shared.cursor().rowcount = c;
        }
        Ok(rows)
    }

    fn executemany(&mut self, q: &Value, params: &Value) -> Result<(), Fail> {
        let q = Self::query_str(q, "executemany", " 1")?;
        let items: Cow<'_, [Value]> = match params {
            Value::Map(m) => m.iter().map(|(k, _)| k.clone()).collect(),
            other => match sequence(other) {
                Some(items) => items,
                None => {
                    return Err(Fail::Execute(PyError::builtin(
                        "TypeError",
                        format!("'{}' object is not iterable", other.type_name()),
                    )))
                }
            },
        };
        let conn = &self.conn;
        let stmt = Self::prepare(conn, &self.shared, q)?;
        let Some(mut stmt) = stmt.filter(|s| !s.readonly()) else {
            return Err(Fail::Execute(programming(
                "executemany() can only execute DML statements.",
            )));
        };
        let dml = sql::is_dml(q);
        let mut rowcount: i64 = if dml { 0 } else { -1 };
        self.shared.cursor().rowcount = rowcount;
        // In autocommit mode CPython commits each row on its own; one
        // transaction around the batch leaves the same rows behind (a failing
        // row's statement is rolled back, the ones before it are kept and
        // committed) at a fraction of the cost: one commit, one fsync.
        let wrap = self.batch_txn
            && items.len() > 1
            && conn.is_autocommit()
            && conn.execute_batch("BEGIN").is_ok();
        let shared = &self.shared;
        // The shared "last SQLite error" is read only when a bind fails and
        // is cleared by every row that runs: read it once and clear it once,
        // not twice per row under its lock. `clear_due`: a row ran since the
        // state was last set, so it is to be cleared.
        let stale_before = shared.stale_error();
        let mut clear_due = false;
        let result = (|| {
            for p in items.iter() {
                let stale = if clear_due {
                    None
                } else {
                    stale_before.clone()
                };
                bind(&mut stmt, Some(p), stale).map_err(Fail::Execute)?;
                let mut rows = stmt.raw_query();
                match rows.next() {
                    Ok(None) => {
                        if dml {
                            rowcount += conn.changes() as i64;
                        }
                        clear_due = true;
                    }
                    Ok(Some(_)) => clear_due = true,
                    Err(e) => {
                        // The failure is the state now: nothing to clear.
                        clear_due = false;
                        return Err(Fail::Execute(shared.sqlite_failed(&e)));
                    }
                }
            }
            Ok(())
        })();
        if clear_due {
            shared.sqlite_ok();
        }
        drop(stmt);
        if wrap && !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("COMMIT") {
                let _ = conn.execute_batch("ROLLBACK");
                result?;
                return Err(Fail::Execute(sqlite_error(&e)));
            }
        }
        result?;
        self.shared.cursor().rowcount = rowcount;
        Ok(())
    }

    fn executescript(&mut self, q: &Value) -> Result<(), PyError> {
        let q = match q {
            Value::Str(s) => s.as_str(),
            other => {
                return Err(PyError::builtin(
                    "TypeError",
                    format!(
                        "executescript() argument must be str, not {}",
                        other.type_name()
                    ),
                ))
            }
        };
        if q.contains('\0') {
            return Err(PyError::builtin("ValueError", "embedded null character"));
        }
        let shared = &self.shared;
        if !self.conn.is_autocommit() {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| shared.sqlite_failed(&e))?;
        }
        let mut rest = q;
        while !rest.is_empty() {
            let end = sql::first_statement_end(rest);
            let (one, tail) = rest.split_at(end);
            rest = tail;
            if sql::is_empty_statement(one) {
                continue;
            }
            let mut stmt = self
                .conn
                .prepare(one)
                .map_err(|e| shared.sqlite_failed(&e))?;
            let mut rows = stmt.raw_query();
            loop {
                match rows.next() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return Err(shared.sqlite_failed(&e)),
                }
            }
        }
        shared.sqlite_ok();
        Ok(())
    }
}

fn bind_count_check(needed: usize, params: Option<&Value>) -> Result<(), Fail> {
    let supplied = match params {
        None => 0,
        Some(p) => match sequence(p) {
            Some(items) => items.len(),
            None => return Ok(()),
        },
    };
    if supplied != needed {
        return Err(Fail::Execute(programming(format!(
            "Incorrect number of bindings supplied. The current statement uses {needed}, and there are {supplied} supplied."
        ))));
    }
    Ok(())
}
