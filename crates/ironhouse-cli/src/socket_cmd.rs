//! `ironhouse socket`: one ZeroMQ socket driven from stdin and printing to stdout.
//!
//! Contract (tests and scripts depend on it):
//! - stdin: one message per line, TAB between frames; ROUTER lines start with
//!   the routing id in hex. REQ waits for each reply before the next line.
//! - stdout: one received message per line, frames joined by TAB (ROUTER: the
//!   routing id first, in hex); `--hex` prints frames in hex,
//!   `--print-sizes` prints frame sizes.
//! - stderr: `bound <endpoint>` for each bind; errors as one line.
//! - exit: 0 after `--count` messages, or at stdin EOF once sends are done;
//!   non-zero on `--timeout`, bad endpoints, refused connections.
//! - `--echo` ignores stdin and sends every received message back; it runs
//!   until `--count`, `--timeout` or a signal.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ironhouse::{Bytes, Message, Options, Socket, SocketType};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::{sleep_until, Instant};

use crate::lines::{format_message, parse_line, Format};

/// Flags of `ironhouse socket`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Socket type: req, rep, dealer, router, pub, sub, xpub, xsub, push, pull, pair.
    #[arg(value_parser = parse_kind)]
    kind: SocketType,
    /// Bind an endpoint (tcp://host:port, tcp://*:port, port * for any; ipc://path). Repeatable.
    #[arg(long, value_name = "EP")]
    bind: Vec<String>,
    /// Connect to an endpoint. Repeatable. A refused first attempt is an error.
    #[arg(long, value_name = "EP")]
    connect: Vec<String>,
    /// Send every received message straight back (REP, ROUTER, DEALER, PAIR); stdin is ignored.
    #[arg(long)]
    echo: bool,
    /// Exit 0 after receiving N messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// SUB: subscribe to a prefix (repeatable). Without any, SUB receives everything.
    #[arg(long, value_name = "PREFIX")]
    subscribe: Vec<String>,
    /// Fail if nothing arrives (or a send cannot complete) for this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Print every received frame in hex.
    #[arg(long)]
    hex: bool,
    /// Routing id to announce (REQ, DEALER, ROUTER).
    #[arg(long, value_name = "ID")]
    identity: Option<String>,
    /// After stdin ends, send this file's bytes as one single-frame message.
    #[arg(long, value_name = "PATH")]
    send_file: Option<PathBuf>,
    /// Print frame sizes instead of contents.
    #[arg(long)]
    print_sizes: bool,
    /// Refuse messages larger than this many bytes from peers (default 256 MiB).
    #[arg(long, value_name = "BYTES")]
    max_msg_size: Option<u64>,
    /// Seconds to keep delivering queued messages on exit (default 30).
    #[arg(long, value_name = "SECS")]
    linger: Option<f64>,
}

fn parse_kind(s: &str) -> Result<SocketType, String> {
    s.parse::<SocketType>().map_err(|e| e.to_string())
}

/// Runs the command on its own single-threaded runtime.
pub fn run(args: Args) -> Result<ExitCode, crate::BoxError> {
    if args.bind.is_empty() && args.connect.is_empty() {
        return Err("give at least one --bind or --connect endpoint".into());
    }
    if args.echo
        && !matches!(
            args.kind,
            SocketType::Rep | SocketType::Router | SocketType::Dealer | SocketType::Pair
        )
    {
        return Err(format!(
            "--echo needs a socket that can answer (rep, router, dealer, pair), not {}",
            args.kind
        )
        .into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(main_loop(args));
    // tokio's stdin reads on a blocking thread that cannot be interrupted;
    // waiting for it would keep the process alive after --count is reached.
    rt.shutdown_background();
    result
}

fn options(args: &Args) -> Options {
    let mut o = Options::default();
    if let Some(id) = &args.identity {
        o = o.identity(Bytes::from(id.clone().into_bytes()));
    }
    if let Some(max) = args.max_msg_size {
        o = o.max_message_size(Some(max));
    }
    if let Some(l) = args.linger {
        o = o.linger(Some(Duration::from_secs_f64(l.max(0.0))));
    }
    o
}

async fn main_loop(args: Args) -> Result<ExitCode, crate::BoxError> {
    let kind = args.kind;
    let mut socket = Socket::with_options(kind, options(&args));
    for ep in &args.bind {
        let bound = socket.bind(ep).await?;
        eprintln!("bound {bound}");
    }
    for ep in &args.connect {
        socket.connect_now(ep).await?;
    }
    if matches!(kind, SocketType::Sub) {
        if args.subscribe.is_empty() {
            socket.subscribe("").await?;
        }
        for p in &args.subscribe {
            socket.subscribe(p.as_bytes()).await?;
        }
    }

    let can_send = !matches!(kind, SocketType::Pull | SocketType::Sub);
    let can_recv = !matches!(kind, SocketType::Push | SocketType::Pub);
    let format = Format {
        hex: args.hex,
        sizes: args.print_sizes,
        first_is_id: kind == SocketType::Router,
    };
    let timeout = args.timeout.map(|s| Duration::from_secs_f64(s.max(0.0)));
    let mut deadline = timeout.map(|t| Instant::now() + t);

    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut stdin_open = !args.echo;
    let mut awaiting_reply = false; // REQ: a request is out.
    let mut must_reply = false; // REP without --echo: the next stdin line is the reply.
    let mut received: u64 = 0;
    let mut out = std::io::stdout();

    loop {
        if args.count.is_some_and(|n| received >= n) {
            break;
        }
        if !stdin_open && !awaiting_reply && args.count.is_none() && !args.echo {
            break;
        }
        let read_stdin = stdin_open && !awaiting_reply && (kind != SocketType::Rep || must_reply);
        let do_recv = can_recv && !must_reply && (kind != SocketType::Req || awaiting_reply);
        tokio::select! {
            r = stdin.read_until(b'\n', &mut line), if read_stdin => {
                let n = r?;
                if n > 0 && line.last() != Some(&b'\n') {
                    continue; // Partial line (cancelled read); keep reading.
                }
                if n == 0 && line.is_empty() {
                    stdin_open = false;
                    if must_reply {
                        return Err("stdin ended before the reply to the last request was given".into());
                    }
                    if let Some(path) = &args.send_file {
                        let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        send(&mut socket, Message::from(data), timeout).await?;
                        awaiting_reply = kind == SocketType::Req;
                        deadline = timeout.map(|t| Instant::now() + t);
                    }
                    continue;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                let msg = parse_line(&line, kind == SocketType::Router)?;
                line.clear();
                if !can_send {
                    tracing::warn!("{kind} sockets cannot send; ignoring a line from stdin");
                    continue;
                }
                send(&mut socket, msg, timeout).await?;
                awaiting_reply = kind == SocketType::Req;
                must_reply = false;
                deadline = timeout.map(|t| Instant::now() + t);
            }
            r = socket.recv(), if do_recv => {
                let msg = r?;
                received += 1;
                let mut text = format_message(&msg, format);
                text.push(b'\n');
                out.write_all(&text)?;
                out.flush()?;
                awaiting_reply = false;
                deadline = timeout.map(|t| Instant::now() + t);
                if args.echo {
                    send(&mut socket, msg, timeout).await?;
                } else if kind == SocketType::Rep {
                    must_reply = true;
                }
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && do_recv => {
                let secs = args.timeout.unwrap_or_default();
                return Err(format!("timed out: nothing received for {secs} seconds").into());
            }
        }
    }
    socket.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn send(
    socket: &mut Socket,
    msg: Message,
    timeout: Option<Duration>,
) -> Result<(), crate::BoxError> {
    match timeout {
        Some(t) => match tokio::time::timeout(t, socket.send(msg)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(format!(
                "timed out: could not send for {} seconds (no peer ready to receive)",
                t.as_secs_f64()
            )
            .into()),
        },
        None => Ok(socket.send(msg).await?),
    }
}
