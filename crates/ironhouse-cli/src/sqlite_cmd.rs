//! `ironhouse sqlite-server` and `ironhouse sqlite-client`: sqlite_rx's
//! `sqlite-server` and `sqlite-client` commands, flag for flag, on
//! ironhouse (see the `ironhouse-sqlite` crate for what the server does).
//!
//! The server prints `bound <endpoint>` on stdout once it accepts clients
//! (with the real port when given `:*`), and exits 0 after SIGINT or
//! SIGTERM, having answered the requests in flight and taken a last backup.
//! `sqlite-client … exec QUERY` runs the query **once** (sqlite_rx's runs it
//! twice) and prints the reply as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ironhouse::security::certs;
use ironhouse::security::CurveAllowList;
use ironhouse::{Options, Security};
use ironhouse_sqlite::client::{Client, ClientConfig, SqlValue};
use ironhouse_sqlite::exec::Limits;
use ironhouse_sqlite::server::{Server, ServerConfig};
use ironhouse_sqlite::wire::Compression;
use ironhouse_sqlite::AuthConfig;

/// Flags of `ironhouse sqlite-server` (sqlite_rx's `sqlite-server`, plus
/// `--auth-config` and the limits).
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Logging level: CRITICAL, ERROR, WARNING, INFO or DEBUG (RUST_LOG and -v override).
    #[arg(short = 'l', long = "log-level", default_value = "INFO")]
    log_level: String,
    /// Address to bind.
    #[arg(
        short = 'a',
        long = "tcp-address",
        default_value = "tcp://0.0.0.0:5000"
    )]
    tcp_address: String,
    /// Database file, or :memory:.
    #[arg(short = 'd', long, default_value = ":memory:")]
    database: String,
    /// Admit only clients whose public key is in <curve-dir>/authorized_clients
    /// (needs --curvezmq). The folder is reread when it changes.
    #[arg(long, overrides_with = "no_zap")]
    zap: bool,
    /// Admit any client (the default).
    #[arg(long = "no-zap")]
    no_zap: bool,
    /// CURVE encryption with the server key <curve-dir>/<key-id>.key_secret.
    #[arg(long, overrides_with = "no_curvezmq")]
    curvezmq: bool,
    /// No encryption (the default).
    #[arg(long = "no-curvezmq")]
    no_curvezmq: bool,
    /// Curve key folder [default: ~/.curve].
    #[arg(short = 'c', long = "curve-dir")]
    curve_dir: Option<PathBuf>,
    /// Server key id [default: id_server_<hostname>_curve].
    #[arg(short = 'k', long = "key-id")]
    key_id: Option<String>,
    /// Backup database file, written every --backup-interval.
    #[arg(short = 'b', long = "backup-database")]
    backup_database: Option<PathBuf>,
    /// Seconds between backups.
    #[arg(short = 'i', long = "backup-interval", default_value_t = 600.0)]
    backup_interval: f64,
    /// Authorizer config replacing the default (DELETE and DROP denied, PRAGMA
    /// ignored): JSON inline or a file, {"DENY": ["SQLITE_DELETE"], "OK": [11]}.
    #[arg(long = "auth-config", value_name = "FILE|JSON")]
    auth_config: Option<String>,
    /// Interrupt a request after this many seconds [default: no limit].
    #[arg(long = "query-timeout", value_name = "SECS")]
    query_timeout: Option<f64>,
    /// Refuse results larger than this many bytes.
    #[arg(long = "max-result-size", value_name = "BYTES", default_value_t = 256 << 20)]
    max_result_size: usize,
    /// Reader threads for a file database (reads run beside writes).
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Deflate replies, or send them stored (valid zlib, not compressed);
    /// auto: stored when bound to loopback or ipc only.
    #[arg(long, value_enum, default_value_t = CompressionArg::Auto)]
    compression: CompressionArg,
}

/// `--compression`: how bodies are compressed (`wire::Compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    /// Stored on loopback and ipc links, deflated on others.
    Auto,
    /// Always deflate (fastest level).
    Deflate,
    /// Never deflate.
    Stored,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Compression {
        match c {
            CompressionArg::Auto => Compression::Auto,
            CompressionArg::Deflate => Compression::Deflate,
            CompressionArg::Stored => Compression::Stored,
        }
    }
}

impl ServerArgs {
    /// The tracing filter for `-l` (sqlite_rx's Python level names).
    pub fn log_filter(&self) -> &'static str {
        match self.log_level.to_ascii_uppercase().as_str() {
            "CRITICAL" | "FATAL" | "ERROR" => "error",
            "WARN" | "WARNING" => "warn",
            "DEBUG" | "NOTSET" => "debug",
            _ => "info",
        }
    }
}

fn seconds(s: f64, what: &str) -> Result<Duration, crate::BoxError> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{what} must be a positive number of seconds, not {s}").into())
}

fn curve_dir(dir: Option<PathBuf>) -> Result<PathBuf, crate::BoxError> {
    match dir {
        Some(d) => Ok(d),
        None => match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => Ok(PathBuf::from(h).join(".curve")),
            _ => Err("no HOME for the default curve folder ~/.curve; give -c/--curve-dir".into()),
        },
    }
}

fn default_id(mode: &str) -> Result<String, crate::BoxError> {
    Ok(format!("id_{mode}_{}_curve", certs::hostname()?))
}

fn server_security(args: &ServerArgs) -> Result<Security, crate::BoxError> {
    if args.zap && !args.curvezmq {
        return Err("ZAP requires CurveZMQ: --zap needs --curvezmq".into());
    }
    if !args.curvezmq {
        return Ok(Security::Null);
    }
    let dir = curve_dir(args.curve_dir.clone())?;
    let id = match &args.key_id {
        Some(id) => id.clone(),
        None => default_id("server")?,
    };
    let keys = certs::load_keypair(dir.join(format!("{id}.key_secret")))?;
    Ok(if args.zap {
        let allowed = dir.join("authorized_clients");
        tracing::info!(folder = %allowed.display(), "ZAP: admitting the clients whose keys are in the folder");
        Security::ironhouse(keys, CurveAllowList::new(allowed))
    } else {
        Security::stonehouse(keys)
    })
}

/// Runs `ironhouse sqlite-server`.
pub fn run_server(args: ServerArgs) -> Result<ExitCode, crate::BoxError> {
    let security = server_security(&args)?;
    let mut config = ServerConfig::new(args.database.clone())
        .readers(args.readers)
        .compression(args.compression.into())
        .options(Options::default().security(security))
        .limits(Limits {
            time: args
                .query_timeout
                .map(|s| seconds(s, "--query-timeout"))
                .transpose()?,
            max_result_bytes: args.max_result_size,
            ..Limits::default()
        });
    if let Some(a) = &args.auth_config {
        config = config.auth(AuthConfig::from_arg(a)?);
    }
    if let Some(b) = &args.backup_database {
        config = config.backup(
            b.clone(),
            seconds(args.backup_interval, "--backup-interval")?,
        );
    }
    // One worker for the socket and, for `:memory:`, the database; file
    // databases add their writer and reader threads. A multi-thread runtime
    // with one worker, not a current-thread one: its worker looks for work
    // a little before sleeping, which measured ~2x more `SELECT 1`/s from a
    // Python client on this 2-vCPU VM (waking a sleeping vCPU costs ~40 µs).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = crate::stop_signal::install()?;
        let server = Server::bind(&args.tcp_address, config).await?;
        println!("bound {}", server.endpoint());
        server.serve_until(shutdown).await?;
        Ok::<_, crate::BoxError>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Flags of `ironhouse sqlite-client` (sqlite_rx's `sqlite-client`).
#[derive(clap::Args, Debug)]
pub struct ClientArgs {
    /// Logging level (as sqlite-server's; default CRITICAL).
    #[arg(short = 'l', long = "log-level", default_value = "CRITICAL")]
    log_level: String,
    /// The server's address.
    #[arg(
        short = 'a',
        long = "connect-address",
        default_value = "tcp://0.0.0.0:5000"
    )]
    connect_address: String,
    /// CURVE encryption (needs the server's public key).
    #[arg(long, overrides_with = "no_curvezmq")]
    curvezmq: bool,
    /// No encryption (the default).
    #[arg(long = "no-curvezmq")]
    no_curvezmq: bool,
    /// Curve key folder [default: ~/.curve].
    #[arg(short = 'd', long = "curve-dir")]
    curve_dir: Option<PathBuf>,
    /// This client's key id [default: id_client_<hostname>_curve].
    #[arg(short = 'c', long = "client-key-id")]
    client_key_id: Option<String>,
    /// The server's key id [default: id_server_<hostname>_curve].
    #[arg(short = 's', long = "server-key-id")]
    server_key_id: Option<String>,
    /// Seconds to wait for each attempt.
    #[arg(long = "request-timeout", default_value_t = 2.5)]
    request_timeout: f64,
    /// Attempts in all (only reads are resent).
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Deflate requests, or send them stored; auto: stored when the server's
    /// address is loopback or ipc.
    #[arg(long, value_enum, default_value_t = CompressionArg::Auto)]
    compression: CompressionArg,
    #[command(subcommand)]
    command: ClientCommand,
}

impl ClientArgs {
    /// The tracing filter for `-l`.
    pub fn log_filter(&self) -> &'static str {
        match self.log_level.to_ascii_uppercase().as_str() {
            "WARN" | "WARNING" => "warn",
            "INFO" => "info",
            "DEBUG" | "NOTSET" => "debug",
            _ => "error",
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum ClientCommand {
    /// Run one query and print the reply as JSON.
    Exec {
        /// The SQL.
        query: String,
    },
    /// Load for bench/sqlite_bench.py: run a workload for a while and print
    /// one JSON line (queries per second, or seconds per batch).
    #[command(hide = true)]
    Bench {
        /// select1, rows1000 or many10k.
        kind: BenchKind,
        /// How long to run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Concurrent clients (one connection each).
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Requests each client keeps in flight (tasks sharing the client;
        /// 1: wait for each reply, as sqlite_rx's client does).
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BenchKind {
    /// `SELECT 1` in a loop.
    Select1,
    /// A 1,000-row, 3-column SELECT in a loop.
    Rows1000,
    /// `executemany` of 10,000 4-column rows, repeated.
    Many10k,
}

fn to_json(v: &SqlValue) -> serde_json::Value {
    match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
        SqlValue::Text(s) => s.clone().into(),
        SqlValue::Blob(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
    }
}

/// Runs `ironhouse sqlite-client`.
pub fn run_client(args: ClientArgs) -> Result<ExitCode, crate::BoxError> {
    let mut options = ClientConfig::new(args.connect_address.clone()).options;
    if args.curvezmq {
        let dir = curve_dir(args.curve_dir.clone())?;
        let cid = match &args.client_key_id {
            Some(id) => id.clone(),
            None => default_id("client")?,
        };
        let sid = match &args.server_key_id {
            Some(id) => id.clone(),
            None => default_id("server")?,
        };
        let keys = certs::load_keypair(dir.join(format!("{cid}.key_secret")))?;
        let server = certs::load_public(dir.join(format!("{sid}.key")))?;
        options = options.security(Security::curve_client(keys, server));
    }
    let config = ClientConfig::new(args.connect_address.clone())
        .options(options)
        .request_timeout(seconds(args.request_timeout, "--request-timeout")?)
        .retries(args.retries)
        .compression(args.compression.into());
    let query = match args.command {
        ClientCommand::Exec { query } => query,
        ClientCommand::Bench {
            kind,
            seconds: secs,
            clients,
            in_flight,
        } => {
            let load = Load {
                duration: seconds(secs, "--seconds")?,
                clients: clients.max(1),
                in_flight: in_flight.max(1),
            };
            return bench(config, kind, load);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = rt.block_on(async move {
        let client = Client::new(config);
        let r = client.execute(&query, ()).await;
        client.close().await;
        r
    })?;
    let mut out = serde_json::Map::new();
    out.insert(
        "items".into(),
        reply
            .items
            .iter()
            .map(|r| r.iter().map(to_json).collect::<Vec<_>>().into())
            .collect::<Vec<serde_json::Value>>()
            .into(),
    );
    out.insert(
        "error".into(),
        match &reply.error {
            None => serde_json::Value::Null,
            Some(e) => serde_json::json!({"type": e.kind, "message": e.message}),
        },
    );
    if let Some(n) = reply.rowcount {
        out.insert("rowcount".into(), n.into());
    }
    if let Some(n) = reply.lastrowid {
        out.insert("lastrowid".into(), n.into());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(out))?
    );
    Ok(if reply.error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How hard `sqlite-client bench` pushes.
struct Load {
    duration: Duration,
    /// Connections.
    clients: usize,
    /// Tasks sharing each connection.
    in_flight: usize,
}

/// The Rust side of bench/sqlite_bench.py.
fn bench(config: ClientConfig, kind: BenchKind, load: Load) -> Result<ExitCode, crate::BoxError> {
    let Load {
        duration,
        clients,
        in_flight,
    } = load;
    use std::time::Instant;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let line = rt.block_on(async move {
        let setup = Client::new(config.clone());
        match kind {
            BenchKind::Rows1000 => {
                setup
                    .execute(
                        "CREATE TABLE IF NOT EXISTS bench_rows (a INTEGER, b REAL, c TEXT)",
                        (),
                    )
                    .await?
                    .check()?;
                let rows: Vec<Vec<SqlValue>> = (0..1000)
                    .map(|i| {
                        vec![
                            SqlValue::Integer(i),
                            SqlValue::Real(i as f64 * 0.5),
                            SqlValue::Text(format!("row {i}")),
                        ]
                    })
                    .collect();
                setup
                    .execute_many("INSERT INTO bench_rows VALUES (?, ?, ?)", rows)
                    .await?
                    .check()?;
            }
            BenchKind::Many10k => {
                setup
                    .execute(
                        "CREATE TABLE IF NOT EXISTS bench_many (a INTEGER, b REAL, c TEXT, d TEXT)",
                        (),
                    )
                    .await?
                    .check()?;
            }
            BenchKind::Select1 => {}
        }
        if kind == BenchKind::Many10k {
            let rows: Vec<Vec<SqlValue>> = (0..10_000)
                .map(|i| {
                    vec![
                        SqlValue::Integer(i),
                        SqlValue::Real(i as f64 * 1.5),
                        SqlValue::Text("2006-03-28".into()),
                        SqlValue::Text("BUY".into()),
                    ]
                })
                .collect();
            let mut times = Vec::new();
            let start = Instant::now();
            while times.len() < 3 || start.elapsed() < duration {
                let t = Instant::now();
                let r = setup
                    .execute_many("INSERT INTO bench_many VALUES (?, ?, ?, ?)", &rows)
                    .await?
                    .check()?;
                times.push(t.elapsed().as_secs_f64());
                if r.rowcount != Some(10_000) {
                    return Err(format!("rowcount {:?}, expected 10000", r.rowcount).into());
                }
            }
            times.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            return Ok::<_, crate::BoxError>(serde_json::json!({
                "impl": "ironhouse", "kind": "many10k", "batches": times.len(),
                "seconds_per_batch": med, "rows_per_sec": 10_000.0 / med,
            }));
        }
        let query = match kind {
            BenchKind::Select1 => "SELECT 1",
            _ => "SELECT a, b, c FROM bench_rows",
        };
        let expect_rows = if kind == BenchKind::Select1 { 1 } else { 1000 };
        let deadline = Instant::now() + duration;
        let start = Instant::now();
        let mut tasks = Vec::new();
        let connections: Vec<Client> = (0..clients).map(|_| Client::new(config.clone())).collect();
        for c in connections
            .iter()
            .flat_map(|c| std::iter::repeat_n(c, in_flight))
        {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let r = c.execute(query, ()).await?;
                    if r.items.len() != expect_rows || r.error.is_some() {
                        return Err::<u64, crate::BoxError>(
                            format!(
                                "unexpected reply to {query:?}: {} rows (expected {expect_rows}), \
                                 error {:?} (the bench wants a fresh server: it adds its rows \
                                 on every run)",
                                r.items.len(),
                                r.error
                            )
                            .into(),
                        );
                    }
                    n += 1;
                }
                Ok(n)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        for c in connections {
            c.close().await;
        }
        Ok(serde_json::json!({
            "impl": "ironhouse", "kind": format!("{kind:?}").to_lowercase(), "clients": clients,
            "in_flight": in_flight,
            "queries": total, "seconds": secs, "qps": total as f64 / secs,
        }))
    })?;
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
