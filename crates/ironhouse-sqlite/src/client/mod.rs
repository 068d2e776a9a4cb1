//! A Rust client for `ironhouse sqlite-server` and sqlite_rx servers (same
//! wire format), with or without CURVE.
//!
//! Requests are retried the Lazy Pirate way: send, wait up to the request
//! timeout, and if no reply comes, drop the socket and resend on a fresh one
//! (a new connection and CURVE handshake), up to `retries` attempts in all.
//! With several requests in flight, one request's timeout replaces the
//! connection under all of them: the others are resent on the new one
//! (reads) or fail with [`ClientError::Interrupted`] (requests that may
//! write, unless [`ClientConfig::resend_writes`]).
//! Unlike sqlite_rx's client:
//!
//! - requests from several tasks are **pipelined** on one connection
//!   ([`Client`] is cheap to clone and its methods take `&self`), where
//!   sqlite_rx's REQ socket waits for each reply before the next request;
//! - the client **stays usable** after a failure: the next call makes a new
//!   socket;
//! - a request that may write is **not resent** unless asked
//!   ([`ClientConfig::resend_writes`]): resending a delivered-but-slow
//!   INSERT would run it twice. Only a plain SELECT/VALUES is resent by
//!   default.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ironhouse_sqlite::client::{Client, ClientConfig};
//! let db = Client::new(ClientConfig::new("tcp://127.0.0.1:5000"));
//! db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)", ()).await?.check()?;
//! db.execute_many("INSERT INTO t (name) VALUES (?)", vec![vec!["a".into()], vec!["b".into()]])
//!     .await?
//!     .check()?;
//! #[derive(serde::Deserialize)]
//! struct Row { id: i64, name: String }
//! let rows: Vec<Row> = db.execute("SELECT id, name FROM t", ()).await?.rows()?;
//! assert_eq!(rows.len(), 2);
//! # Ok(()) }
//! ```

mod connection;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ironhouse::Options;
use tokio::sync::{mpsc, oneshot};

use connection::{Command, Request};

use crate::sql;
use crate::wire::{self, Compression};

/// A value bound to a parameter or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// INTEGER.
    Integer(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
    /// BLOB.
    Blob(Vec<u8>),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Real(v)
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Blob(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

impl SqlValue {
    fn write(&self, out: &mut Vec<u8>) {
        use rmp::encode as e;
        // Writes into a Vec cannot fail.
        let _ = match self {
            SqlValue::Null => e::write_nil(out).map_err(drop),
            SqlValue::Integer(i) => e::write_sint(out, *i).map(drop).map_err(drop),
            SqlValue::Real(f) => e::write_f64(out, *f).map_err(drop),
            SqlValue::Text(s) => e::write_str(out, s).map_err(drop),
            SqlValue::Blob(b) => e::write_bin(out, b).map_err(drop),
        };
    }
}

/// Positional parameters: `()`, a `Vec<SqlValue>`, an array or a slice of
/// values.
pub trait Params {
    /// The values, in order.
    fn into_values(self) -> Vec<SqlValue>;
}
impl Params for () {
    fn into_values(self) -> Vec<SqlValue> {
        Vec::new()
    }
}
impl Params for Vec<SqlValue> {
    fn into_values(self) -> Vec<SqlValue> {
        self
    }
}
impl<const N: usize> Params for [SqlValue; N] {
    fn into_values(self) -> Vec<SqlValue> {
        self.into()
    }
}
impl Params for &[SqlValue] {
    fn into_values(self) -> Vec<SqlValue> {
        self.to_vec()
    }
}

/// An error the server reported (a Python exception's type and text for
/// sqlite_rx compatibility: `sqlite3.OperationalError`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// `"sqlite3.OperationalError"`, …
    pub kind: String,
    /// `"sqlite3.OperationalError: no such table: t"`, …
    pub message: String,
}

/// A reply: rows, or the server's error, and the cursor's counters.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The rows.
    pub items: Vec<Vec<SqlValue>>,
    /// The server's error, if the statement failed.
    pub error: Option<RemoteError>,
    /// Rows changed (DML), as CPython's `cursor.rowcount` when > -1.
    pub rowcount: Option<i64>,
    /// `cursor.lastrowid` when non-zero.
    pub lastrowid: Option<i64>,
    raw: Vec<u8>,
}

impl Reply {
    /// The reply, or the server's error.
    ///
    /// # Errors
    /// [`ClientError::Remote`] if the server reported an error.
    pub fn check(self) -> Result<Reply, ClientError> {
        match self.error {
            Some(e) => Err(ClientError::Remote(e)),
            None => Ok(self),
        }
    }

    /// The rows as serde types (a struct reads a row by position, a tuple
    /// too).
    ///
    /// # Errors
    /// [`ClientError::Remote`] if the server reported an error,
    /// [`ClientError::BadReply`] if a row does not fit `T`.
    pub fn rows<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, ClientError> {
        if let Some(e) = &self.error {
            return Err(ClientError::Remote(e.clone()));
        }
        #[derive(serde::Deserialize)]
        struct Items<T> {
            items: Vec<T>,
        }
        rmp_serde::from_slice::<Items<T>>(&self.raw)
            .map(|i| i.items)
            .map_err(|e| ClientError::BadReply(format!("rows do not fit the type: {e}")))
    }

    /// One pass from MessagePack to [`SqlValue`]s (serde), without an
    /// intermediate value tree: decoding was the client's largest cost on
    /// 1,000-row replies.
    fn decode(body: &[u8]) -> Result<Reply, ClientError> {
        #[derive(serde::Deserialize)]
        struct WireError {
            #[serde(default, rename = "type")]
            kind: String,
            #[serde(default)]
            message: String,
        }
        #[derive(serde::Deserialize)]
        struct WireReply {
            items: Vec<Vec<SqlValue>>,
            #[serde(default)]
            error: Option<WireError>,
            #[serde(default)]
            rowcount: Option<i64>,
            #[serde(default)]
            lastrowid: Option<i64>,
        }
        let raw = wire::decompress(body, usize::MAX >> 1)
            .map_err(|e| ClientError::BadReply(e.message))?;
        let reply: WireReply = rmp_serde::from_slice(&raw)
            .map_err(|e| ClientError::BadReply(format!("not a sqlite reply: {e}")))?;
        Ok(Reply {
            items: reply.items,
            error: reply.error.map(|e| RemoteError {
                kind: e.kind,
                message: e.message,
            }),
            rowcount: reply.rowcount,
            lastrowid: reply.lastrowid,
            raw,
        })
    }
}

impl<'de> serde::Deserialize<'de> for SqlValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SqlValue, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SqlValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("nil, an integer, a float, a string or bytes")
            }
            fn visit_unit<E>(self) -> Result<SqlValue, E> {
                Ok(SqlValue::Null)
            }
            fn visit_none<E>(self) -> Result<SqlValue, E> {
                Ok(SqlValue::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<SqlValue, E> {
                Ok(SqlValue::Integer(i64::from(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<SqlValue, E> {
                Ok(SqlValue::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SqlValue, E> {
                i64::try_from(v)
                    .map(SqlValue::Integer)
                    .map_err(|_| E::custom(format!("{v} does not fit an SQLite integer")))
            }
            fn visit_f64<E>(self, v: f64) -> Result<SqlValue, E> {
                Ok(SqlValue::Real(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<SqlValue, E> {
                Ok(SqlValue::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<SqlValue, E> {
                Ok(SqlValue::Text(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<SqlValue, E> {
                Ok(SqlValue::Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<SqlValue, E> {
                Ok(SqlValue::Blob(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Parameters as sent: one row (`execute`) or many (`executemany`).
enum Args<'a> {
    Row(&'a [SqlValue]),
    Rows(&'a [Vec<SqlValue>]),
}

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No reply within the timeout after every attempt (server down, wrong
    /// keys or refused by the allow-list all look like this from a client).
    #[error("no reply from {endpoint} after {attempts} attempt(s) of {timeout:?}{}", if *.resend_refused { " (a request that may write is not resent; see ClientConfig::resend_writes)" } else { "" })]
    Timeout {
        /// The server.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// Each attempt's timeout.
        timeout: Duration,
        /// Attempts were left, but the request may write.
        resend_refused: bool,
    },
    /// The socket failed.
    #[error(transparent)]
    Socket(#[from] ironhouse::Error),
    /// The reply could not be understood.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// The server reported an error (from [`Reply::check`]).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// Another request on the same connection timed out, so the connection
    /// was replaced, and this one was not resent because it may write. It
    /// may or may not have run.
    #[error("the connection to {endpoint} was replaced after another request timed out; this request may write, so it was not resent (it may or may not have run; see ClientConfig::resend_writes)")]
    Interrupted {
        /// The server.
        endpoint: String,
    },
    /// [`Client::close`] was called while the request was in flight.
    #[error("the client was closed")]
    Closed,
}

/// How a client connects and retries.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The server endpoint.
    pub endpoint: String,
    /// Socket options; CURVE goes in `options.security`.
    pub options: Options,
    /// How long each attempt waits (sqlite_rx: 2.5 s).
    pub request_timeout: Duration,
    /// Attempts in all (sqlite_rx: 5).
    pub retries: u32,
    /// Resend requests that may write, too (sqlite_rx does; off here).
    pub resend_writes: bool,
    /// Sent as `client_id` (the server does not use it).
    pub client_id: String,
    /// Requests sent and not yet answered, at most, on one connection
    /// (default 128); more wait their turn in the client.
    pub max_in_flight: usize,
    /// How requests are compressed. Default `Auto`: stored (not deflated)
    /// when the server's address is loopback or ipc, deflated otherwise.
    pub compression: Compression,
}

impl ClientConfig {
    /// sqlite_rx's defaults: 2.5 s per attempt, 5 attempts.
    pub fn new(endpoint: impl Into<String>) -> Self {
        ClientConfig {
            endpoint: endpoint.into(),
            options: Options::default().linger(Some(Duration::ZERO)),
            request_timeout: Duration::from_millis(2500),
            retries: 5,
            resend_writes: false,
            client_id: format!("rust@{}_{}", hostname(), std::process::id()),
            max_in_flight: 128,
            compression: Compression::Auto,
        }
    }
    /// Sets [`ClientConfig::options`] (keeps linger 0 unless set).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }
    /// Sets [`ClientConfig::request_timeout`].
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }
    /// Sets [`ClientConfig::retries`] (at least 1).
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n.max(1);
        self
    }
    /// Sets [`ClientConfig::resend_writes`].
    pub fn resend_writes(mut self, on: bool) -> Self {
        self.resend_writes = on;
        self
    }
    /// Sets [`ClientConfig::max_in_flight`] (at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }
    /// Sets [`ClientConfig::compression`].
    pub fn compression(mut self, how: Compression) -> Self {
        self.compression = how;
        self
    }
}

fn hostname() -> String {
    ironhouse::security::certs::hostname().unwrap_or_else(|_| "localhost".into())
}

/// A connection to a sqlite server, shared by every clone of the handle.
///
/// Requests from several tasks (or clones) run **pipelined** on one
/// connection: each is sent at once, without waiting for the replies to
/// the others, up to [`ClientConfig::max_in_flight`]. A server answers one
/// connection's requests in the order it runs them (ours runs writes one at
/// a time, in arrival order), and replies are matched by a request id, so
/// the order of completion is the server's. Requests from one task that
/// awaits each reply before sending the next keep their order. sqlite_rx's
/// Python client can only wait for each reply in turn.
///
/// The connection is made on the first request, on the runtime that makes
/// it; it ends when the last handle is dropped and nothing is in flight,
/// or at [`Client::close`].
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ironhouse_sqlite::client::{Client, ClientConfig};
/// let db = Client::new(ClientConfig::new("tcp://127.0.0.1:5000"));
/// // Three queries in flight at once on one connection.
/// let (a, b, c) = tokio::join!(
///     db.execute("SELECT 1", ()),
///     db.execute("SELECT 2", ()),
///     db.execute("SELECT 3", ()),
/// );
/// assert_eq!(a?.items.len() + b?.items.len() + c?.items.len(), 3);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    /// The connection task's mailbox; `None` before the first request and
    /// after [`Client::close`] (the next request starts a new connection).
    commands: Arc<Mutex<Option<mpsc::UnboundedSender<Command>>>>,
    /// `config.compression` resolved against the endpoint.
    compression: Compression,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client; it connects on the first request.
    pub fn new(config: ClientConfig) -> Client {
        Client {
            compression: config.compression.for_link(&config.endpoint),
            config: Arc::new(config),
            commands: Arc::new(Mutex::new(None)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `cursor.execute(query, params)` on the server.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when no reply comes,
    /// [`ClientError::Interrupted`] when the connection was replaced under a
    /// request that may write, [`ClientError::Socket`] for an invalid
    /// endpoint or options, [`ClientError::Closed`] if [`Client::close`]
    /// ran meanwhile. A failing statement is not an error here: it is in
    /// [`Reply::error`] ([`Reply::check`] turns it into one).
    ///
    /// # Cancel safety
    /// Cancel safe in that the client stays usable and other requests are
    /// not disturbed. The cancelled request may still run on the server.
    pub async fn execute(&self, query: &str, params: impl Params) -> Result<Reply, ClientError> {
        let body = self.body(query, Args::Row(&params.into_values()), false, false);
        self.request(query, body, false, false).await
    }

    /// `cursor.executemany(query, rows)`. The rows are only read: pass
    /// `&rows` to keep them (a `Vec` works too).
    ///
    /// # Errors
    /// As [`Client::execute`].
    ///
    /// # Cancel safety
    /// As [`Client::execute`].
    pub async fn execute_many(
        &self,
        query: &str,
        rows: impl AsRef<[Vec<SqlValue>]>,
    ) -> Result<Reply, ClientError> {
        let body = self.body(query, Args::Rows(rows.as_ref()), true, false);
        self.request(query, body, true, false).await
    }

    /// `cursor.executescript(script)`.
    ///
    /// # Errors
    /// As [`Client::execute`].
    ///
    /// # Cancel safety
    /// As [`Client::execute`].
    pub async fn execute_script(&self, script: &str) -> Result<Reply, ClientError> {
        let body = self.body(script, Args::Row(&[]), false, true);
        self.request(script, body, false, true).await
    }

    /// The request, written straight as sqlite_rx's client writes it.
    fn body(&self, query: &str, params: Args<'_>, many: bool, script: bool) -> Bytes {
        use rmp::encode as e;
        let mut out = Vec::with_capacity(query.len() + 96);
        // Writes into a Vec cannot fail.
        let _ = e::write_map_len(&mut out, 5);
        let _ = e::write_str(&mut out, "client_id");
        let _ = e::write_str(&mut out, &self.config.client_id);
        let _ = e::write_str(&mut out, "query");
        let _ = e::write_str(&mut out, query);
        let _ = e::write_str(&mut out, "params");
        match params {
            Args::Row(values) => {
                let _ = e::write_array_len(&mut out, values.len() as u32);
                values.iter().for_each(|v| v.write(&mut out));
            }
            Args::Rows(rows) => {
                let _ = e::write_array_len(&mut out, rows.len() as u32);
                for r in rows {
                    let _ = e::write_array_len(&mut out, r.len() as u32);
                    r.iter().for_each(|v| v.write(&mut out));
                }
            }
        }
        let _ = e::write_str(&mut out, "execute_many");
        let _ = e::write_bool(&mut out, many);
        let _ = e::write_str(&mut out, "execute_script");
        let _ = e::write_bool(&mut out, script);
        Bytes::from(wire::compress_as(&out, self.compression))
    }

    /// The connection's mailbox, starting the connection task if there is
    /// none (first request, after `close`, or after the task ended).
    fn commands(&self) -> mpsc::UnboundedSender<Command> {
        let mut slot = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(connection::run(Arc::clone(&self.config), rx));
                *slot = Some(tx.clone());
                tx
            }
        }
    }

    async fn request(
        &self,
        query: &str,
        body: Bytes,
        many: bool,
        script: bool,
    ) -> Result<Reply, ClientError> {
        let read_only = !many && !script && is_plain_read(query);
        let (reply, answer) = oneshot::channel();
        let mut cmd = Command::Request(Request {
            body,
            resend: read_only || self.config.resend_writes,
            reply,
        });
        // A task that ended (a close raced us) gets one replacement.
        for _ in 0..2 {
            match self.commands().send(cmd) {
                Ok(()) => {
                    let body = answer.await.map_err(|_| ClientError::Closed)??;
                    return Reply::decode(&body);
                }
                Err(mpsc::error::SendError(back)) => cmd = back,
            }
        }
        Err(ClientError::Closed)
    }

    /// Closes the connection for every clone of this handle: requests in
    /// flight fail with [`ClientError::Closed`] and the socket is closed
    /// (linger as configured; 0 by default). A later request on a clone
    /// opens a new connection.
    ///
    /// It returns at once, except while no server is connected and a
    /// request is waiting to be sent: that send gives up first, within
    /// [`ClientConfig::request_timeout`].
    ///
    /// # Cancel safety
    /// Cancel safe: the connection closes anyway.
    pub async fn close(self) {
        let tx = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(tx) = tx {
            let (done, closed) = oneshot::channel();
            if tx.send(Command::Close(done)).is_ok() {
                let _ = closed.await;
            }
        }
    }
}

/// A single plain SELECT or VALUES: safe to run twice.
fn is_plain_read(query: &str) -> bool {
    let Some(s) = sql::lstrip(query) else {
        return true;
    };
    let word: String = s
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    (word == "select" || word == "values")
        && sql::lstrip(&query[sql::first_statement_end(query)..]).is_none()
}
