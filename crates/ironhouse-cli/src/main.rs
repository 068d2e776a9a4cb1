//! `ironhouse`: the command line of ironhouse. A thin layer over the library:
//! each subcommand parses its flags, builds sockets and prints results. Its
//! flags and output are a contract that tests and scripts rely on.

mod bench;
mod cert_cmd;
mod conn_flags;
mod demo;
mod endpoint_cmd;
mod frames_cmd;
mod keygen;
mod lines;
mod relay_cmd;
mod socket_cmd;
mod sqlite_cmd;
mod stop_signal;

use std::process::ExitCode;

/// Errors of the command line: printed as one line on stderr.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

use clap::{Parser, Subcommand};

// glibc's malloc unmaps or trims large freed blocks and faults them back in
// on the next message (measured: ~270 page faults per 1 MiB message, a third
// of libzmq's throughput). mimalloc recycles them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Secure transport of objects between processes and machines.
#[derive(Parser, Debug)]
#[command(name = "ironhouse", version, about, long_about = None)]
struct Cli {
    /// More logging on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A ZeroMQ socket on the command line: stdin lines out, received messages to stdout.
    Socket(socket_cmd::Args),
    /// Benchmark scenarios, with the same arguments and output as bench/zmq_bench.c.
    Bench(bench::Args),
    /// A self-contained run of the main job, on loopback.
    Demo(demo::Args),
    /// Make a CURVE key pair: czmq/pyzmq certificates in sqlite_rx's, vidgear's or a plain layout.
    Keygen(keygen::Args),
    /// X.509 certificates for tls://: generate, issue, show, serve and fetch (by fingerprint).
    Cert(cert_cmd::Args),
    /// The relay: groups, broadcast, work queues; also serves tlspyo endpoints.
    Relay(relay_cmd::Args),
    /// A relay endpoint for scripts: broadcast, produce, listen, consume.
    Endpoint(endpoint_cmd::Args),
    /// NetGear-compatible frame streaming: `frames send`, `frames recv`.
    Frames(frames_cmd::Args),
    /// A SQLite database served to sqlite_rx clients (flag for flag with sqlite_rx's sqlite-server).
    SqliteServer(sqlite_cmd::ServerArgs),
    /// Run a query on a sqlite-server (flag for flag with sqlite_rx's sqlite-client, runs it once).
    SqliteClient(sqlite_cmd::ClientArgs),
}

fn init_logging(verbose: u8, quiet: bool, level: Option<&'static str>) {
    use tracing_subscriber::EnvFilter;
    let default = match (verbose, level) {
        // sqlite-server/-client: their -l/--log-level.
        (0, Some(level)) => level,
        // The demo provokes refusals on purpose and prints them itself.
        (0, None) if quiet => "error",
        (0, None) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match &cli.command {
        Command::SqliteServer(a) => Some(a.log_filter()),
        Command::SqliteClient(a) => Some(a.log_filter()),
        _ => None,
    };
    init_logging(cli.verbose, matches!(cli.command, Command::Demo(_)), level);
    let result = match cli.command {
        Command::Socket(args) => socket_cmd::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Cert(args) => cert_cmd::run(args),
        Command::Relay(args) => relay_cmd::run(args),
        Command::Endpoint(args) => endpoint_cmd::run(args),
        Command::Frames(args) => frames_cmd::run(args),
        Command::SqliteServer(args) => sqlite_cmd::run_server(args),
        Command::SqliteClient(args) => sqlite_cmd::run_client(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ironhouse: error: {e}");
            ExitCode::FAILURE
        }
    }
}
