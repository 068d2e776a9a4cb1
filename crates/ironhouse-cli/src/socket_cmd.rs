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
//!
//! Security (one mechanism per socket; NULL without any of these flags):
//! - CURVE server: `--curve-server SECRET_FILE` (a czmq/pyzmq `.key_secret`
//!   certificate). Alone it admits any client that knows the server's public
//!   key (StoneHouse); with `--authorized DIR` only clients whose `.key`
//!   certificate is in DIR, reread when the folder changes (IronHouse).
//! - CURVE client: `--curve-client SECRET_FILE --curve-serverkey KEY`, KEY
//!   being the server's `.key` certificate or its 40-character Z85 key.
//! - PLAIN client: `--plain-user USER --plain-password-file FILE` (the
//!   file's contents, less the trailing newline, are the password).
//! - PLAIN server: `--plain-server FILE` (`user:password` lines).
//! - PLAIN over `tcp://`/`ipc://` is refused unless `--allow-plaintext-password`.
//! - Secret files (keys, passwords) readable by group or others are refused
//!   unless `--allow-insecure-key-permissions`.
//! - Refused handshakes are logged on stderr (WARN), and a `--timeout` error
//!   names the last handshake failure seen on the socket.
//!
//! TLS (`tls://` endpoints; certificates from `ironhouse cert`):
//! - server: `--tls-cert FILE --tls-key FILE`, and `--tls-ca FILE` to
//!   require client certificates from that CA;
//! - client: `--tls-trust FILE` (CA or self-signed server certificate) or
//!   `--tls-pin FINGERPRINT`, `--tls-name NAME` (e.g. tlspyo's "default"),
//!   and `--tls-cert/--tls-key` as the client certificate;
//! - `--tls12` also accepts TLS 1.2. Each flag must serve a `tls://`
//!   endpoint, and each `tls://` endpoint must have what it needs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ironhouse::{
    Bytes, Message, Options, Security, Socket, SocketEvent, SocketType, SshTunnel, TlsClient,
    TlsServer,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;
use tokio::time::{sleep_until, Instant};

use crate::conn_flags::{attach_error, security, ssh, tls, SecurityArgs, SshArgs, TlsArgs};
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
    /// Security (boxed: it is most of the flags, and rarely used).
    #[command(flatten)]
    security: Box<SecurityArgs>,
    /// TLS for tls:// endpoints.
    #[command(flatten)]
    tls: Box<TlsArgs>,
    /// SSH for reaching --connect endpoints through an SSH server.
    #[command(flatten)]
    ssh: Box<SshArgs>,
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
    let security = security(&args.security)?;
    tracing::debug!(?security, "socket security");
    let tls = tls(
        &args.tls,
        &args.bind,
        &args.connect,
        args.security.allow_insecure_key_permissions,
    )?;
    let ssh = ssh(&args.ssh)?;
    if ssh.is_some() && args.connect.is_empty() {
        return Err("--ssh reaches --connect endpoints; give at least one --connect".into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(main_loop(args, security, tls, ssh));
    // tokio's stdin reads on a blocking thread that cannot be interrupted;
    // waiting for it would keep the process alive after --count is reached.
    rt.shutdown_background();
    result
}

/// Follows the socket's monitor so that a timeout can say why no peer got
/// through (a refused or failed handshake, a refused connection).
struct Failures {
    events: broadcast::Receiver<SocketEvent>,
    handshake: Option<String>,
    connect: Option<String>,
}

impl Failures {
    fn new(socket: &Socket) -> Self {
        Failures {
            events: socket.monitor(),
            handshake: None,
            connect: None,
        }
    }

    /// Reads the events so far.
    fn update(&mut self) {
        loop {
            match self.events.try_recv() {
                Ok(SocketEvent::HandshakeFailed { reason, .. }) => self.handshake = Some(reason),
                Ok(SocketEvent::ConnectFailed { endpoint, reason }) => {
                    self.connect = Some(format!("{endpoint}: {reason}"));
                }
                Ok(SocketEvent::Connected { .. }) => self.connect = None,
                Ok(_) => {}
                // Missed old events: the latest ones are what matter.
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
    }

    /// ` (last handshake failure: …)`, or nothing if none was seen.
    fn suffix(&mut self) -> String {
        self.update();
        match (&self.handshake, &self.connect) {
            (Some(h), _) => format!(" (last handshake failure: {h})"),
            (None, Some(c)) => format!(" (last connection failure: {c})"),
            (None, None) => String::new(),
        }
    }
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

async fn main_loop(
    args: Args,
    security: Security,
    tls: (Option<TlsServer>, Option<TlsClient>),
    ssh: Option<SshTunnel>,
) -> Result<ExitCode, crate::BoxError> {
    let kind = args.kind;
    let mut opts = options(&args).security(security);
    if let Some(tunnel) = ssh {
        opts = opts.ssh(tunnel);
    }
    if let Some(server) = tls.0 {
        opts = opts.tls_server(server);
    }
    if let Some(client) = tls.1 {
        opts = opts.tls_client(client);
    }
    let mut socket = Socket::with_options(kind, opts);
    let mut failures = Failures::new(&socket);
    for ep in &args.bind {
        let bound = socket.bind(ep).await.map_err(attach_error)?;
        eprintln!("bound {bound}");
    }
    for ep in &args.connect {
        socket.connect_now(ep).await.map_err(attach_error)?;
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
                        send(&mut socket, Message::from(data), timeout, &mut failures).await?;
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
                send(&mut socket, msg, timeout, &mut failures).await?;
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
                    send(&mut socket, msg, timeout, &mut failures).await?;
                } else if kind == SocketType::Rep {
                    must_reply = true;
                }
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() && do_recv => {
                let secs = args.timeout.unwrap_or_default();
                return Err(format!("timed out: nothing received for {secs} seconds{}", failures.suffix()).into());
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
    failures: &mut Failures,
) -> Result<(), crate::BoxError> {
    match timeout {
        Some(t) => match tokio::time::timeout(t, socket.send(msg)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(format!(
                "timed out: could not send for {} seconds (no peer ready to receive){}",
                t.as_secs_f64(),
                failures.suffix()
            )
            .into()),
        },
        None => Ok(socket.send(msg).await?),
    }
}
