//! The server: a ROUTER socket (REQ clients see a REP server) in front of
//! SQLite connections on their own threads.
//!
//! # Threads and what a client's BEGIN means
//!
//! - **The writer** owns the read-write connection, opened as sqlite_rx
//!   opens its own (autocommit, `journal_mode=wal`, then the authorizer). It
//!   runs every request that may write, one at a time, so writes stay
//!   serialised in arrival order. It also takes the backups. Without
//!   readers (`:memory:`, or `readers(0)`) it runs inside the serving task
//!   itself, one request at a time like sqlite_rx's single thread, which
//!   saves two thread hand-offs per request; with readers it has its own
//!   thread, so the serving task keeps handing reads out while it works.
//! - **Readers** (file databases only; `readers`, default 2) each own a
//!   read-only connection. A plain `execute` of one SELECT/WITH/VALUES
//!   statement runs on a reader, so a slow query does not stall every
//!   client; WAL lets readers and the writer work at the same time. Anything
//!   else a reader hands to the writer, unchanged.
//!
//! As in sqlite_rx, there is **one shared connection and one shared cursor**
//! for all clients: a client's `BEGIN` opens a transaction on the writer's
//! connection that every client's statements join until someone commits.
//! While it is open, reads also go to the writer, so every client sees the
//! transaction's uncommitted rows exactly as with sqlite_rx. `rowcount` and
//! `lastrowid` are the shared cursor's (stale values included).
//!
//! # Shutdown
//!
//! [`Server::serve_until`] stops receiving when its future completes,
//! finishes and answers the requests already received, takes a last backup
//! and closes the socket.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ironhouse::{Endpoint, Message, Options, Socket, SocketType};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::mpsc;

use crate::authz::AuthConfig;
use crate::exec::{Engine, Limits, ReadOutcome, Reply, Role, Shared};
use crate::wire::{self, Compression, PyError, Value};

/// Errors starting or running a server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The database could not be opened or set up.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database given.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The socket failed (bind, receive).
    #[error(transparent)]
    Socket(#[from] ironhouse::Error),
    /// A worker thread could not be started.
    #[error("cannot start a database thread: {0}")]
    Thread(std::io::Error),
}

/// Online backups: where to and how often.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// The backup database file (replaced by each backup).
    pub path: PathBuf,
    /// Time between backups (sqlite_rx's `--backup-interval`, default 600 s).
    /// A change is backed up at the latest one interval after the previous
    /// backup, and at once if that is already past; an idle database is
    /// not backed up again. A last backup is taken at shutdown.
    pub interval: Duration,
}

/// How a server runs. Build with [`ServerConfig::new`] and the setters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// A file path or `:memory:`.
    pub database: String,
    /// The SQL authorizer. Default: sqlite_rx's `DEFAULT_AUTH_CONFIG`.
    pub auth: AuthConfig,
    /// Time and size limits.
    pub limits: Limits,
    /// Reader threads for a file database (`None`: 2). `:memory:` has none.
    pub readers: Option<usize>,
    /// Online backups.
    pub backup: Option<BackupConfig>,
    /// Socket options, security (CURVE, allow-list) included.
    pub options: Options,
    /// How result replies are compressed. Default `Auto`: stored (not
    /// deflated) when the server is bound to loopback or ipc only, deflated
    /// otherwise ([`Compression::for_link`]).
    pub compression: Compression,
}

impl ServerConfig {
    /// Defaults for `database`: sqlite_rx's authorizer, no time limit,
    /// 256 MiB result limit, NULL security, no backups.
    pub fn new(database: impl Into<String>) -> Self {
        ServerConfig {
            database: database.into(),
            auth: AuthConfig::default(),
            limits: Limits::default(),
            readers: None,
            backup: None,
            options: Options::default(),
            compression: Compression::Auto,
        }
    }
    /// Sets [`ServerConfig::auth`].
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }
    /// Sets [`ServerConfig::limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets [`ServerConfig::readers`].
    pub fn readers(mut self, n: usize) -> Self {
        self.readers = Some(n);
        self
    }
    /// Sets [`ServerConfig::backup`].
    pub fn backup(mut self, path: impl Into<PathBuf>, interval: Duration) -> Self {
        self.backup = Some(BackupConfig {
            path: path.into(),
            interval,
        });
        self
    }
    /// Sets [`ServerConfig::options`] (security goes here).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }
    /// Sets [`ServerConfig::compression`].
    pub fn compression(mut self, how: Compression) -> Self {
        self.compression = how;
        self
    }
}

/// Whether a database name is an in-memory database (no readers possible).
pub fn is_memory(database: &str) -> bool {
    database.is_empty()
        || database == ":memory:"
        || (database.starts_with("file:") && database.contains("memory"))
}

/// A request and where its reply goes.
struct Job {
    envelope: Vec<Bytes>,
    body: Bytes,
}

enum ToWriter {
    Body(Job),
    Decoded(Job, Value),
}

type Replies = mpsc::UnboundedSender<(Vec<Bytes>, Vec<u8>)>;

/// A running server: the bound socket and the database threads.
pub struct Server {
    socket: Socket,
    endpoint: Endpoint,
    writer: Option<std_mpsc::Sender<ToWriter>>,
    readers: Option<std_mpsc::Sender<Job>>,
    replies: mpsc::UnboundedReceiver<(Vec<Bytes>, Vec<u8>)>,
    /// Where a task that compressed an inline reply hands it back.
    compressed: Replies,
    threads: Vec<JoinHandle<()>>,
    /// Without readers (`:memory:`, `readers(0)`), the writer runs right in
    /// the serving task: requests are serialised anyway, and no thread
    /// hand-off is paid per request (as sqlite_rx's single thread).
    inline: Option<(Engine, Backups)>,
}

/// When backups are due.
struct Backups {
    config: Option<BackupConfig>,
    last: Instant,
    /// Requests ran since the last backup (the first one is due one
    /// interval after the start, changed or not).
    dirty: bool,
}

impl Backups {
    fn new(config: Option<BackupConfig>) -> Backups {
        Backups {
            config,
            last: Instant::now(),
            dirty: true,
        }
    }

    /// When the next backup is due, if one is.
    fn due(&self) -> Option<Instant> {
        match &self.config {
            Some(b) if self.dirty => Some(self.last + b.interval),
            _ => None,
        }
    }

    /// Takes a backup if one is due now.
    fn tick(&mut self, engine: &Engine) {
        if let (Some(b), Some(due)) = (&self.config, self.due()) {
            if Instant::now() >= due {
                take_backup(engine, b);
                self.last = Instant::now();
                self.dirty = false;
            }
        }
    }

    fn last_one(&self, engine: &Engine) {
        if let Some(b) = &self.config {
            take_backup(engine, b);
        }
    }
}

fn open_writer(config: &ServerConfig) -> Result<Connection, ServerError> {
    let err = |source| ServerError::Open {
        path: config.database.clone(),
        source,
    };
    let conn = Connection::open(&config.database).map_err(err)?;
    // sqlite3.connect's default timeout is 5 s.
    conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
    let mode: String = conn
        .query_row("pragma journal_mode=wal", [], |r| r.get(0))
        .map_err(err)?;
    tracing::debug!(database = %config.database, journal_mode = %mode, "database opened");
    Ok(conn)
}

fn panic_reply(what: &str) -> Vec<u8> {
    wire::error_reply(&PyError::new(
        "ironhouse",
        "InternalError",
        format!("the server failed while {what}; the request was not completed"),
    ))
}

impl Server {
    /// Opens the database, starts the threads and binds `endpoint`.
    ///
    /// # Errors
    /// [`ServerError::Open`] if SQLite cannot open the database,
    /// [`ServerError::Socket`] if the endpoint cannot be bound.
    ///
    /// # Cancel safety
    /// Not cancel safe: threads already started stop when their channels
    /// close, but a cancelled bind may leave the database file created.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use ironhouse_sqlite::server::{Server, ServerConfig};
    /// let server = Server::bind("tcp://127.0.0.1:*", ServerConfig::new(":memory:")).await?;
    /// println!("serving on {}", server.endpoint());
    /// server.serve_until(async {}).await?;
    /// # Ok(()) }
    /// ```
    pub async fn bind(endpoint: &str, config: ServerConfig) -> Result<Server, ServerError> {
        let shared = Arc::new(Shared::default());
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let conn = open_writer(&config)?;
        let memory = is_memory(&config.database);
        let n_readers = if memory {
            0
        } else {
            config.readers.unwrap_or(2)
        };
        let mut reader_conns = Vec::new();
        for _ in 0..n_readers {
            let c = Connection::open_with_flags(
                &config.database,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|source| ServerError::Open {
                path: config.database.clone(),
                source,
            })?;
            let _ = c.busy_timeout(Duration::from_secs(5));
            reader_conns.push(c);
        }

        let mut threads = Vec::new();
        let (writer_tx, writer_rx) = std_mpsc::channel::<ToWriter>();
        let engine = Engine::new(
            conn,
            Role::Writer,
            config.auth.clone(),
            Arc::clone(&shared),
            config.limits,
        );
        // Decided from the address asked for: the engines exist before the
        // socket is bound.
        let compression = config.compression.for_link(endpoint);
        let engine = engine.with_compression(compression);
        let backups = Backups::new(config.backup.clone());
        let inline = if reader_conns.is_empty() {
            Some((engine, backups))
        } else {
            let tx = reply_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sqlite-writer".into())
                    .stack_size(8 << 20)
                    .spawn(move || writer_loop(engine, writer_rx, tx, backups))
                    .map_err(ServerError::Thread)?,
            );
            None
        };

        let readers = if reader_conns.is_empty() {
            None
        } else {
            let (rtx, rrx) = std_mpsc::channel::<Job>();
            let rrx = Arc::new(Mutex::new(rrx));
            for (i, c) in reader_conns.into_iter().enumerate() {
                let engine = Engine::new(
                    c,
                    Role::Reader,
                    config.auth.clone(),
                    Arc::clone(&shared),
                    config.limits,
                )
                .with_compression(compression);
                let rrx = Arc::clone(&rrx);
                let tx = reply_tx.clone();
                let wtx = writer_tx.clone();
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("sqlite-reader-{i}"))
                        .stack_size(8 << 20)
                        .spawn(move || reader_loop(engine, rrx, tx, wtx))
                        .map_err(ServerError::Thread)?,
                );
            }
            Some(rtx)
        };

        let mut socket = Socket::with_options(SocketType::Router, config.options.clone());
        let endpoint = socket.bind(endpoint).await?;
        tracing::info!(
            %endpoint,
            database = %config.database,
            readers = n_readers,
            security = socket.options().security.mechanism_name(),
            ?compression,
            "sqlite server ready"
        );
        Ok(Server {
            socket,
            endpoint,
            writer: inline.is_none().then_some(writer_tx),
            readers,
            replies,
            compressed: reply_tx,
            threads,
            inline,
        })
    }

    /// The bound endpoint (with the real port).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The socket, e.g. for [`Socket::monitor`].
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    fn dispatch(&mut self, msg: Message) -> Option<(Vec<Bytes>, Vec<u8>)> {
        let frames = msg.frames();
        // ROUTER gives [routing id, (REQ's empty delimiter), body…]. The
        // envelope is everything up to the delimiter; the body is the last
        // frame, as sqlite_rx reads `frames[-1]`.
        let delimiter = frames.iter().skip(1).position(|f| f.is_empty());
        let env_len = match delimiter {
            Some(p) => p + 2,
            None => 1.min(frames.len()),
        };
        let envelope = frames[..env_len].to_vec();
        let body = if frames.len() > env_len {
            frames.last().cloned().unwrap_or_default()
        } else {
            Bytes::new()
        };
        let job = Job { envelope, body };
        if let Some((engine, backups)) = &mut self.inline {
            let reply =
                std::panic::catch_unwind(AssertUnwindSafe(|| engine.handle_deferred(&job.body)))
                    .unwrap_or_else(|_| Reply::Ready(panic_reply("running the request")));
            backups.dirty = true;
            return match reply {
                Reply::Ready(body) => Some((job.envelope, body)),
                // A large reply is compressed by a task on the runtime's
                // workers while this task runs the next request; it comes
                // back through `replies` like a reader's.
                uncompressed => {
                    let done = self.compressed.clone();
                    tokio::spawn(async move {
                        let _ = done.send((job.envelope, uncompressed.into_body()));
                    });
                    None
                }
            };
        }
        match (&self.readers, &self.writer) {
            (Some(r), _) => {
                let _ = r.send(job);
            }
            (None, Some(w)) => {
                let _ = w.send(ToWriter::Body(job));
            }
            (None, None) => {}
        }
        None
    }

    /// Serves until `shutdown` completes, then finishes the requests already
    /// received (their replies are sent), takes a last backup and closes.
    ///
    /// # Errors
    /// [`ServerError::Socket`] if the socket fails.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future drops the server; requests in
    /// progress still finish on their threads but their replies are lost.
    pub async fn serve_until<F>(mut self, shutdown: F) -> Result<(), ServerError>
    where
        F: std::future::Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        let mut in_flight = 0usize;
        let mut stopping = false;
        loop {
            if stopping && in_flight == 0 {
                break;
            }
            let backup_due = self
                .inline
                .as_ref()
                .and_then(|(_, b)| b.due())
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                Some((envelope, reply)) = self.replies.recv() => {
                    in_flight = in_flight.saturating_sub(1);
                    let mut frames = envelope;
                    frames.push(Bytes::from(reply));
                    if let Err(e) = self.socket.send(Message::from(frames)).await {
                        tracing::warn!("cannot send a reply: {e}");
                    }
                }
                () = &mut shutdown, if !stopping => {
                    tracing::info!(in_flight, "shutting down: finishing the requests in flight");
                    stopping = true;
                }
                () = tokio::time::sleep_until(backup_due.unwrap_or_else(tokio::time::Instant::now)),
                    if backup_due.is_some() => {
                    if let Some((engine, backups)) = &mut self.inline {
                        backups.tick(engine);
                    }
                }
                msg = self.socket.recv(), if !stopping => {
                    let msg = msg?;
                    if let Some((envelope, reply)) = self.dispatch(msg) {
                        let mut frames = envelope;
                        frames.push(Bytes::from(reply));
                        if let Err(e) = self.socket.send(Message::from(frames)).await {
                            tracing::warn!("cannot send a reply: {e}");
                        }
                    } else {
                        in_flight += 1;
                    }
                }
            }
        }
        if let Some((engine, backups)) = &self.inline {
            backups.last_one(engine);
        }
        // Closing the channels stops the threads; the writer takes its last
        // backup first.
        self.readers = None;
        self.writer = None;
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        self.socket.close().await;
        Ok(())
    }
}

fn writer_loop(
    mut engine: Engine,
    rx: std_mpsc::Receiver<ToWriter>,
    replies: Replies,
    mut backups: Backups,
) {
    loop {
        let msg = match backups.due() {
            Some(due) => {
                let wait = due.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(m) => Some(m),
                    Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            },
        };
        if let Some(m) = msg {
            let (job, reply) = match m {
                ToWriter::Body(job) => {
                    let r = std::panic::catch_unwind(AssertUnwindSafe(|| engine.handle(&job.body)))
                        .unwrap_or_else(|_| panic_reply("running the request"));
                    (job, r)
                }
                ToWriter::Decoded(job, value) => {
                    let r = std::panic::catch_unwind(AssertUnwindSafe(|| engine.run(&value)))
                        .unwrap_or_else(|_| panic_reply("running the request"));
                    (job, r)
                }
            };
            let _ = replies.send((job.envelope, reply));
            backups.dirty = true;
        }
        backups.tick(&engine);
    }
    backups.last_one(&engine);
}

fn take_backup(engine: &Engine, b: &BackupConfig) {
    let t = Instant::now();
    match engine.connection().backup(rusqlite::MAIN_DB, &b.path, None) {
        Ok(()) => tracing::debug!(path = %b.path.display(), took = ?t.elapsed(), "backup taken"),
        Err(e) => tracing::warn!(path = %b.path.display(), "backup failed: {e}"),
    }
}

fn reader_loop(
    mut engine: Engine,
    rx: Arc<Mutex<std_mpsc::Receiver<Job>>>,
    replies: Replies,
    writer: std_mpsc::Sender<ToWriter>,
) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            match guard.recv() {
                Ok(j) => j,
                Err(_) => break,
            }
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| engine.read(&job.body)))
            .unwrap_or_else(|_| ReadOutcome::Reply(panic_reply("reading")));
        match outcome {
            ReadOutcome::Reply(r) => {
                let _ = replies.send((job.envelope, r));
            }
            ReadOutcome::Forward(v) => {
                if let Err(std_mpsc::SendError(ToWriter::Decoded(job, _) | ToWriter::Body(job))) =
                    writer.send(ToWriter::Decoded(job, v))
                {
                    let _ = replies.send((job.envelope, panic_reply("shutting down")));
                }
            }
        }
    }
}
