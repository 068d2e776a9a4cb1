//! A Rust client for `ironhouse sqlite-server` and sqlite_rx servers (same
//! wire format), with or without CURVE.
//!
//! Requests are retried the Lazy Pirate way: send, wait up to the request
//! timeout, and if no reply comes, drop the socket and resend on a fresh one
//! (a new connection and CURVE handshake), up to `retries` attempts in all.
//! Unlike sqlite_rx's client:
//!
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
//! let mut db = Client::new(ClientConfig::new("tcp://127.0.0.1:5000"));
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

use std::time::Duration;

use bytes::Bytes;
use ironhouse::{Message, Options, Socket, SocketType};

use crate::sql;
use crate::wire::{self, Value};

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
    fn from_wire(v: Value) -> Result<SqlValue, ClientError> {
        Ok(match v {
            Value::Nil => SqlValue::Null,
            Value::Bool(b) => SqlValue::Integer(i64::from(b)),
            Value::Int(i) => SqlValue::Integer(i),
            Value::Float(f) => SqlValue::Real(f),
            Value::Str(s) => SqlValue::Text(s),
            Value::Bin(b) => SqlValue::Blob(b),
            other => {
                return Err(ClientError::BadReply(format!(
                    "a row holds a {}",
                    other.type_name()
                )))
            }
        })
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

    fn decode(body: &[u8]) -> Result<Reply, ClientError> {
        let raw = wire::decompress(body, usize::MAX >> 1)
            .map_err(|e| ClientError::BadReply(e.message))?;
        let Value::Map(entries) =
            wire::unpack(&raw).map_err(|e| ClientError::BadReply(e.message))?
        else {
            return Err(ClientError::BadReply("the reply is not a map".into()));
        };
        let mut reply = Reply {
            items: Vec::new(),
            error: None,
            rowcount: None,
            lastrowid: None,
            raw: Vec::new(),
        };
        let mut has_items = false;
        for (k, v) in entries {
            let Value::Str(k) = k else { continue };
            match (k.as_str(), v) {
                ("items", Value::Array(rows)) => {
                    has_items = true;
                    reply.items = rows
                        .into_iter()
                        .map(|r| match r {
                            Value::Array(cols) => {
                                cols.into_iter().map(SqlValue::from_wire).collect()
                            }
                            other => Err(ClientError::BadReply(format!(
                                "a row is a {}",
                                other.type_name()
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                }
                ("error", Value::Nil) => reply.error = None,
                ("error", e) => {
                    let text = |k| match e.subscript(k) {
                        Ok(Value::Str(s)) => s.clone(),
                        _ => String::new(),
                    };
                    reply.error = Some(RemoteError {
                        kind: text("type"),
                        message: text("message"),
                    });
                }
                ("rowcount", Value::Int(i)) => reply.rowcount = Some(i),
                ("lastrowid", Value::Int(i)) => reply.lastrowid = Some(i),
                _ => {}
            }
        }
        if !has_items {
            return Err(ClientError::BadReply("the reply has no items list".into()));
        }
        reply.raw = raw;
        Ok(reply)
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
}

fn hostname() -> String {
    ironhouse::security::certs::hostname().unwrap_or_else(|_| "localhost".into())
}

/// A connection to a sqlite server. Not shared between tasks: make one per
/// task (each is one REQ socket).
pub struct Client {
    config: ClientConfig,
    socket: Option<Socket>,
}

impl Client {
    /// A client; it connects on the first request.
    pub fn new(config: ClientConfig) -> Client {
        Client {
            config,
            socket: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `cursor.execute(query, params)` on the server.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when no reply comes, [`ClientError::Socket`]
    /// for an invalid endpoint or options. A failing statement is not an
    /// error here: it is in [`Reply::error`] ([`Reply::check`] turns it into one).
    ///
    /// # Cancel safety
    /// Cancel safe in that the client stays usable: the next request uses a
    /// new socket. The cancelled request may still run on the server.
    pub async fn execute(
        &mut self,
        query: &str,
        params: impl Params,
    ) -> Result<Reply, ClientError> {
        let body = self.body(query, Args::Row(&params.into_values()), false, false);
        self.request(query, body, false, false).await
    }

    /// `cursor.executemany(query, rows)`.
    ///
    /// # Errors
    /// As [`Client::execute`].
    ///
    /// # Cancel safety
    /// As [`Client::execute`].
    pub async fn execute_many(
        &mut self,
        query: &str,
        rows: Vec<Vec<SqlValue>>,
    ) -> Result<Reply, ClientError> {
        let body = self.body(query, Args::Rows(&rows), true, false);
        self.request(query, body, true, false).await
    }

    /// `cursor.executescript(script)`.
    ///
    /// # Errors
    /// As [`Client::execute`].
    ///
    /// # Cancel safety
    /// As [`Client::execute`].
    pub async fn execute_script(&mut self, script: &str) -> Result<Reply, ClientError> {
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
        Bytes::from(wire::compress(&out))
    }

    async fn socket(&mut self) -> Result<&mut Socket, ClientError> {
        if self.socket.is_none() {
            let mut s = Socket::with_options(SocketType::Req, self.config.options.clone());
            s.connect(&self.config.endpoint).await?;
            self.socket = Some(s);
        }
        // Just set.
        Ok(self.socket.as_mut().expect("socket present"))
    }

    async fn drop_socket(&mut self) {
        if let Some(s) = self.socket.take() {
            s.close().await;
        }
    }

    async fn request(
        &mut self,
        query: &str,
        body: Bytes,
        many: bool,
        script: bool,
    ) -> Result<Reply, ClientError> {
        let read_only = !many && !script && is_plain_read(query);
        let resend = read_only || self.config.resend_writes;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let timeout = self.config.request_timeout;
            let socket = self.socket().await?;
            let outcome = tokio::time::timeout(timeout, async {
                socket.send(Message::from(body.clone())).await?;
                socket.recv().await
            })
            .await;
            match outcome {
                Ok(Ok(msg)) => {
                    let frame = msg.frames().last().cloned().unwrap_or_default();
                    return Reply::decode(&frame);
                }
                Ok(Err(e)) => {
                    self.drop_socket().await;
                    return Err(e.into());
                }
                Err(_elapsed) => {
                    tracing::debug!(attempts, "no reply; dropping the socket");
                    self.drop_socket().await;
                    if attempts >= self.config.retries || !resend {
                        return Err(ClientError::Timeout {
                            endpoint: self.config.endpoint.clone(),
                            attempts,
                            timeout,
                            resend_refused: !resend && attempts < self.config.retries,
                        });
                    }
                }
            }
        }
    }

    /// Closes the socket (pending replies are dropped).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn close(mut self) {
        self.drop_socket().await;
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
