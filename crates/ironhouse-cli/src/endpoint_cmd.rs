//! `ironhouse endpoint`: a relay endpoint for scripts.
//!
//! - `broadcast [DATA|-]` / `produce [DATA|-]`: sends DATA (or each stdin
//!   line for `-`) to the `--group` groups, waits until the relay confirms
//!   every object, exits 0. A refusal (full queue, group not accepted) is an
//!   error naming the relay's reason.
//! - `listen [--count N]`: prints each object received (broadcasts and
//!   work items), one per line, until N objects or a signal.
//! - `consume [--count N]`: asks for work (`notify`) and prints each item;
//!   with N, asks for exactly N; without, keeps asking while it prints.
//!
//! Objects are raw bytes: printed as text (`--hex` for hex). Exit is
//! non-zero on `--timeout`, a rejection (with the relay's reason) or a bad
//! flag.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use ironhouse::{Options, Security};
use ironhouse_relay::{Endpoint, Wait};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::conn_flags::{read_private_file, security, ssh, tls, SecurityArgs, SshArgs, TlsArgs};

/// Flags of `ironhouse endpoint`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The relay: tcp://HOST:PORT, tls://HOST:PORT or ipc://PATH.
    #[arg(long, value_name = "URL")]
    relay: String,
    /// A group to join (and, for broadcast/produce, to send to); repeatable.
    #[arg(long, value_name = "G", required = true)]
    group: Vec<String>,
    /// The relay's password (PLAIN; user name "endpoint"), from a file; mode 0600.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Print received objects in hex.
    #[arg(long, global = true)]
    hex: bool,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, value_name = "SECS", global = true)]
    timeout: Option<f64>,
    /// What to do.
    #[command(subcommand)]
    action: Action,
    /// Security.
    #[command(flatten)]
    security: Box<SecurityArgs>,
    /// TLS for tls:// relays.
    #[command(flatten)]
    tls: Box<TlsArgs>,
    /// SSH tunnel to the relay.
    #[command(flatten)]
    ssh: Box<SshArgs>,
}

/// What `ironhouse endpoint` does.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Broadcast DATA (or each stdin line with `-`) to the groups.
    Broadcast {
        /// The object, or `-` for stdin lines.
        data: String,
    },
    /// Produce DATA (or each stdin line with `-`) into the groups' work queues.
    Produce {
        /// The object, or `-` for stdin lines.
        data: String,
    },
    /// Print received objects.
    Listen {
        /// Stop after N objects.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Ask for work items and print them.
    Consume {
        /// Take exactly N items.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// Runs the endpoint.
pub fn run(args: Args) -> Result<ExitCode, crate::BoxError> {
    let allow_insecure = args.security.allow_insecure_key_permissions;
    let mut sec = security(&args.security)?;
    if let Some(f) = &args.password_file {
        if !matches!(sec, Security::Null) {
            return Err(
                "--password-file is PLAIN; do not combine it with CURVE or PLAIN flags".into(),
            );
        }
        let pw = read_private_file(f, "password file", allow_insecure)
            .map_err(|e| format!("--password-file: {e}"))?;
        sec = Security::plain_client("endpoint", pw.trim_end_matches(['\n', '\r']));
        if args.security.allow_plaintext_password {
            sec = sec.allow_plaintext_password();
        }
    }
    let (server, client) = tls(
        &args.tls,
        &[],
        std::slice::from_ref(&args.relay),
        allow_insecure,
    )?;
    let mut opts = Options::default().security(sec);
    if let Some(s) = server {
        opts = opts.tls_server(s);
    }
    if let Some(c) = client {
        opts = opts.tls_client(c);
    }
    if let Some(t) = ssh(&args.ssh)? {
        opts = opts.ssh(t);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let timeout = args.timeout.map(|s| Duration::from_secs_f64(s.max(0.0)));
    let result = rt.block_on(async {
        let work = main(args, opts);
        match timeout {
            Some(t) => tokio::time::timeout(t, work)
                .await
                .map_err(|_| format!("timed out after {t:?}"))?,
            None => work.await,
        }
    });
    rt.shutdown_background();
    result
}

async fn main(args: Args, opts: Options) -> Result<ExitCode, crate::BoxError> {
    let ep = Endpoint::builder(args.relay.clone())
        .groups(args.group.iter().cloned())
        .options(opts)
        // Scripts want an answer, not a 30 s wait, when the relay is away.
        .send_timeout(args.timeout.map(Duration::from_secs_f64))
        .connect()
        .await?;
    let mut events = ep.events();
    let join = ep.wait_joined(Duration::from_secs(3600));
    tokio::pin!(join);
    // Report handshake trouble while waiting (wrong key, password, certificate).
    loop {
        tokio::select! {
            r = &mut join => { r?; break; }
            Ok(ev) = events.recv() => match ev {
                ironhouse_relay::EndpointEvent::HandshakeFailed { reason, .. } => {
                    tracing::warn!(%reason, "handshake with the relay failed; retrying");
                }
                ironhouse_relay::EndpointEvent::ConnectFailed { reason, .. } => {
                    tracing::debug!(%reason, "cannot reach the relay yet; retrying");
                }
                _ => {}
            },
        }
    }
    let code = match &args.action {
        Action::Broadcast { data } | Action::Produce { data } => {
            let n = if matches!(args.action, Action::Broadcast { .. }) {
                -1
            } else {
                1
            };
            let dest: Vec<(String, i64)> = args.group.iter().map(|g| (g.clone(), n)).collect();
            if data == "-" {
                let mut lines = BufReader::new(tokio::io::stdin()).lines();
                while let Some(line) = lines.next_line().await? {
                    ep.send_bytes(Bytes::from(line.into_bytes()), dest.clone())
                        .await?;
                }
            } else {
                ep.send_bytes(Bytes::from(data.clone().into_bytes()), dest)
                    .await?;
            }
            ep.flush(Duration::from_secs(3600)).await?;
            ExitCode::SUCCESS
        }
        Action::Listen { count } => {
            print_objects(&ep, *count, args.hex, None).await?;
            ExitCode::SUCCESS
        }
        Action::Consume { count } => {
            print_objects(&ep, *count, args.hex, Some(&args.group)).await?;
            ExitCode::SUCCESS
        }
    };
    ep.stop().await;
    Ok(code)
}

/// Prints objects until `count` (or forever); with `consume`, keeps enough
/// credit out to get them.
async fn print_objects(
    ep: &Endpoint,
    count: Option<u64>,
    hex: bool,
    consume: Option<&[String]>,
) -> Result<(), crate::BoxError> {
    const WINDOW: u64 = 256;
    let mut printed = 0u64;
    let mut credit = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        if count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
        if let Some(groups) = consume {
            // Ask for what is still wanted, a window at a time.
            let wanted = count.map_or(WINDOW, |c| (c - printed).min(WINDOW));
            if credit < wanted / 2 + 1 {
                let more = wanted - credit;
                for g in groups {
                    ep.notify(g, more as i64).await?;
                }
                credit += more;
            }
        }
        let max = count.map_or(usize::MAX, |c| (c - printed) as usize);
        for r in ep.pop_raw(max, Wait::Forever).await {
            if hex {
                writeln!(out, "{}", ironhouse::hex(&r.payload))?;
            } else {
                out.write_all(&r.payload)?;
                out.write_all(b"\n")?;
            }
            printed += 1;
            if r.kind == ironhouse_relay::Kind::Item {
                credit = credit.saturating_sub(1);
            }
        }
        out.flush()?;
        if ep.state() == ironhouse_relay::ConnectionState::Stopped {
            return Err("the endpoint stopped".into());
        }
    }
}
