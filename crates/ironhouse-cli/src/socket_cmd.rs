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

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ironhouse::security::certs::{self, CertError, LoadOptions};
use ironhouse::security::{CurveAllowList, Fingerprint, PasswordTable};
use ironhouse::{
    Bytes, CurvePublicKey, Error, HostKeyPolicy, Message, Options, Security, Socket, SocketEvent,
    SocketType, SshIdentity, SshTunnel, TlsClient, TlsServer,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;
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

/// The SSH flags of `ironhouse socket`.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "SSH (reach --connect endpoints through an SSH server)")]
struct SshArgs {
    /// Connect through this SSH server, `[user@]host[:port]`: each --connect
    /// endpoint is reached from the server (a direct-tcpip channel; no local
    /// port is opened). The user defaults to $USER, the port to 22.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    ssh: Option<String>,
    /// Private key file (OpenSSH format) [default: the ssh-agent's keys].
    #[arg(long, value_name = "FILE", requires = "ssh")]
    ssh_key: Option<PathBuf>,
    /// known_hosts file to check the server's host key against
    /// [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE", requires = "ssh")]
    known_hosts: Option<PathBuf>,
    /// Record an unknown host key instead of refusing it (a changed key is
    /// still refused).
    #[arg(long, requires = "ssh")]
    ssh_accept_new: bool,
    /// Ask on the terminal (without echo) for the SSH password, or for the
    /// passphrase of an encrypted --ssh-key. Refused without a terminal.
    #[arg(long, requires = "ssh")]
    ssh_password: bool,
}

/// Parses `[user@]host[:port]` (IPv6 hosts in brackets).
fn ssh_target(spec: &str) -> Result<(Option<String>, String, u16), String> {
    let bad = |why: &str| format!("--ssh {spec:?}: {why} (expected [user@]host[:port])");
    let (user, rest) = match spec.rsplit_once('@') {
        Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
        Some(_) => return Err(bad("empty user name")),
        None => (None, spec),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        match tail.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if tail.is_empty() => (h, None),
            None => return Err(bad("junk after ]")),
        }
    } else if rest.matches(':').count() == 1 {
        let (h, p) = rest.split_once(':').expect("one colon");
        (h, Some(p))
    } else {
        (rest, None)
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| bad("port must be a number from 1 to 65535"))?,
        None => 22,
    };
    Ok((user, host.to_string(), port))
}

/// The SSH tunnel from the flags, if any.
fn ssh(args: &SshArgs) -> Result<Option<SshTunnel>, crate::BoxError> {
    let Some(spec) = &args.ssh else {
        return Ok(None);
    };
    let (user, host, port) = ssh_target(spec)?;
    let user = match user.or_else(|| std::env::var("USER").ok()) {
        Some(u) => u,
        None => {
            return Err(format!(
                "--ssh {spec:?}: no user given and $USER is not set; write user@host"
            )
            .into())
        }
    };
    let mut t = SshTunnel::new(user, host).port(port);
    if let Some(key) = &args.ssh_key {
        t = t.identity(SshIdentity::KeyFile(key.clone()));
    }
    if let Some(kh) = &args.known_hosts {
        t = t.known_hosts(kh.clone());
    }
    if args.ssh_accept_new {
        t = t.policy(HostKeyPolicy::AcceptNew);
    }
    if args.ssh_password {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err("--ssh-password asks on the terminal, and stdin is not one; use --ssh-key with an unencrypted key or the ssh-agent".into());
        }
        let prompt = format!("SSH password for {}@{}: ", t.user, t.host);
        let password = rpassword::prompt_password(prompt)
            .map_err(|e| format!("cannot read the SSH password: {e}"))?;
        t = t.password(password);
    }
    Ok(Some(t))
}

/// The `tls://` flags of `ironhouse socket`.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "TLS (tls:// endpoints)")]
struct TlsArgs {
    /// Certificate chain (PEM, leaf first): the server's for --bind tls://,
    /// the client certificate when connecting to a server that requires one.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert; mode 0600.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Server: require client certificates signed by a CA in this PEM file (mTLS).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Client: trust servers whose certificate chains to one in this PEM file
    /// (a self-signed server certificate is its own CA); the name is checked.
    #[arg(long, value_name = "FILE")]
    tls_trust: Option<PathBuf>,
    /// Client: trust exactly the server certificate with this SHA-256
    /// fingerprint (`ironhouse cert show`), whatever its names or issuer.
    #[arg(long, value_name = "FINGERPRINT")]
    tls_pin: Option<String>,
    /// Client: the name the server's certificate must carry (and SNI)
    /// [default: the endpoint's host]; tlspyo's servers use "default".
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
    /// Also accept TLS 1.2 (default: TLS 1.3 only).
    #[arg(long)]
    tls12: bool,
}

/// The security flags of `ironhouse socket`.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Security")]
struct SecurityArgs {
    /// CURVE server with this key pair (a czmq/pyzmq `.key_secret` certificate).
    /// Admits any client (StoneHouse) unless --authorized is given.
    #[arg(long, value_name = "SECRET_FILE")]
    curve_server: Option<PathBuf>,
    /// CURVE client with this key pair (a `.key_secret` certificate); needs --curve-serverkey.
    #[arg(long, value_name = "SECRET_FILE")]
    curve_client: Option<PathBuf>,
    /// The CURVE server's public key: its `.key` certificate, or the 40-character Z85 key.
    #[arg(long, value_name = "PUBLIC_FILE_OR_Z85")]
    curve_serverkey: Option<String>,
    /// CURVE server: admit only clients whose `.key` certificate is in DIR
    /// (IronHouse); the folder is reread when it changes, no restart needed.
    #[arg(long, value_name = "DIR")]
    authorized: Option<PathBuf>,
    /// PLAIN client: the user name; needs --plain-password-file.
    #[arg(long, value_name = "USER")]
    plain_user: Option<String>,
    /// PLAIN client: a file holding the password (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    plain_password_file: Option<PathBuf>,
    /// PLAIN server: a file of `user:password` lines (`#` comments, blank lines ignored).
    #[arg(long, value_name = "PASSWORD_TABLE_FILE")]
    plain_server: Option<PathBuf>,
    /// Let PLAIN send passwords in clear over tcp:// or ipc:// (trusted loopback only).
    #[arg(long)]
    allow_plaintext_password: bool,
    /// Accept secret key and password files that group or others can read.
    #[arg(long)]
    allow_insecure_key_permissions: bool,
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
    let tls = tls(&args, args.security.allow_insecure_key_permissions)?;
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

/// The socket's security from the flags, after checking they make sense
/// together. Reads key and password files now, so a bad one is an error
/// before any connection is made.
fn security(args: &SecurityArgs) -> Result<Security, crate::BoxError> {
    let plain_client_flag = match (&args.plain_user, &args.plain_password_file) {
        (Some(_), _) => Some("--plain-user"),
        (None, Some(_)) => Some("--plain-password-file"),
        (None, None) => None,
    };
    let chosen: Vec<&str> = [
        args.curve_server.as_ref().map(|_| "--curve-server"),
        args.curve_client.as_ref().map(|_| "--curve-client"),
        args.plain_server.as_ref().map(|_| "--plain-server"),
        plain_client_flag,
    ]
    .into_iter()
    .flatten()
    .collect();
    if let [first, second, ..] = chosen[..] {
        return Err(format!(
            "{first} and {second} cannot be combined: a socket uses one security mechanism \
             (CURVE server, CURVE client, PLAIN server or PLAIN client)"
        )
        .into());
    }
    if args.curve_serverkey.is_some() && args.curve_client.is_none() {
        return Err(if args.curve_server.is_some() {
            "--curve-serverkey is for CURVE clients; a --curve-server has its own key pair"
        } else {
            "--curve-serverkey is the server's public key for a CURVE client: give --curve-client SECRET_FILE too"
        }
        .into());
    }
    if args.authorized.is_some() && args.curve_server.is_none() {
        return Err(
            "--authorized lists the clients a CURVE server admits: give --curve-server SECRET_FILE too"
                .into(),
        );
    }
    let plain = args.plain_server.is_some() || plain_client_flag.is_some();
    if args.allow_plaintext_password && !plain {
        return Err(
            "--allow-plaintext-password is for PLAIN (--plain-user or --plain-server) only".into(),
        );
    }
    let load = LoadOptions::new().allow_insecure_permissions(args.allow_insecure_key_permissions);

    if let Some(secret) = &args.curve_server {
        let keys =
            certs::load_keypair_with(secret, load).map_err(|e| cert_error("--curve-server", e))?;
        return Ok(match &args.authorized {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(format!(
                        "--authorized {}: not a folder (it should hold the public certificates, *.key, of the clients to admit)",
                        dir.display()
                    )
                    .into());
                }
                Security::ironhouse(keys, CurveAllowList::new(dir))
            }
            None => Security::stonehouse(keys),
        });
    }
    if let Some(secret) = &args.curve_client {
        let Some(server_key) = &args.curve_serverkey else {
            return Err(
                "--curve-client needs --curve-serverkey: the server's public key \
                        (its .key certificate or the 40-character Z85 key)"
                    .into(),
            );
        };
        let keys =
            certs::load_keypair_with(secret, load).map_err(|e| cert_error("--curve-client", e))?;
        return Ok(Security::curve_client(keys, server_public_key(server_key)?));
    }
    if let Some(table) = &args.plain_server {
        let text = read_private_file(table, "password table", args.allow_insecure_key_permissions)
            .map_err(|e| format!("--plain-server: {e}"))?;
        let table = PasswordTable::parse(&text)
            .map_err(|e| format!("--plain-server {}: {e}", table.display()))?;
        return Ok(plaintext(Security::plain_server(table), args));
    }
    if plain_client_flag.is_some() {
        let (Some(user), Some(file)) = (&args.plain_user, &args.plain_password_file) else {
            return Err(if args.plain_user.is_some() {
                "--plain-user needs --plain-password-file (a file holding the password)"
            } else {
                "--plain-password-file needs --plain-user (the user name)"
            }
            .into());
        };
        let mut password =
            read_private_file(file, "password file", args.allow_insecure_key_permissions)
                .map_err(|e| format!("--plain-password-file: {e}"))?;
        while password.ends_with(['\n', '\r']) {
            password.pop();
        }
        if user.len() > 255 || password.len() > 255 {
            return Err("PLAIN user names and passwords are at most 255 bytes each".into());
        }
        return Ok(plaintext(
            Security::plain_client(user.as_str(), password),
            args,
        ));
    }
    Ok(Security::Null)
}

/// The `tls://` server and client settings from the flags, checked against
/// the endpoints: each flag must serve a `tls://` bind or connect, and each
/// `tls://` endpoint must have what it needs. Reads the files now.
fn tls(
    args: &Args,
    allow_insecure: bool,
) -> Result<(Option<TlsServer>, Option<TlsClient>), crate::BoxError> {
    let t = &args.tls;
    let is_tls = |ep: &String| ep.trim().to_ascii_lowercase().starts_with("tls://");
    let tls_bind = args.bind.iter().find(|ep| is_tls(ep));
    let tls_connect = args.connect.iter().find(|ep| is_tls(ep));
    let identity = match (&t.tls_cert, &t.tls_key) {
        (Some(c), Some(k)) => Some((c, k)),
        (Some(_), None) => {
            return Err("--tls-cert needs --tls-key (the certificate's private key)".into())
        }
        (None, Some(_)) => return Err("--tls-key needs --tls-cert (its certificate)".into()),
        (None, None) => None,
    };
    if tls_bind.is_none() && tls_connect.is_none() {
        let given: Vec<&str> = [
            t.tls_cert.as_ref().map(|_| "--tls-cert"),
            t.tls_ca.as_ref().map(|_| "--tls-ca"),
            t.tls_trust.as_ref().map(|_| "--tls-trust"),
            t.tls_pin.as_ref().map(|_| "--tls-pin"),
            t.tls_name.as_ref().map(|_| "--tls-name"),
            t.tls12.then_some("--tls12"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(flag) = given.first() {
            return Err(format!(
                "{flag} is for tls:// endpoints, and no --bind or --connect is tls://"
            )
            .into());
        }
        return Ok((None, None));
    }
    if let Some((_, key)) = identity {
        check_key_file(key, allow_insecure)?;
    }
    let server = match tls_bind {
        None => {
            if t.tls_ca.is_some() {
                return Err("--tls-ca is for a server binding tls:// (it names the CA of the client certificates to require)".into());
            }
            None
        }
        Some(ep) => {
            let Some((cert, key)) = identity else {
                return Err(format!(
                    "--bind {ep} needs --tls-cert FILE and --tls-key FILE \
                     (make a pair with `ironhouse cert generate`)"
                )
                .into());
            };
            let mut server = TlsServer::from_pem_files(cert, key)
                .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
            if let Some(ca) = &t.tls_ca {
                server = server
                    .require_client_certs_from(ca)
                    .map_err(|e| format!("--tls-ca: {e}"))?;
            }
            if t.tls12 {
                server = server.allow_tls12();
            }
            Some(server)
        }
    };
    let client = match tls_connect {
        None => {
            for (flag, set) in [
                ("--tls-trust", t.tls_trust.is_some()),
                ("--tls-pin", t.tls_pin.is_some()),
                ("--tls-name", t.tls_name.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "{flag} is for connecting to tls:// (no --connect is tls://)"
                    )
                    .into());
                }
            }
            None
        }
        Some(ep) => {
            let mut client = match (&t.tls_trust, &t.tls_pin) {
                (Some(_), Some(_)) => {
                    return Err("--tls-trust and --tls-pin cannot be combined: trust a CA file or pin one certificate".into())
                }
                (Some(ca), None) => {
                    TlsClient::trusting_ca_file(ca).map_err(|e| format!("--tls-trust: {e}"))?
                }
                (None, Some(pin)) => TlsClient::pinned(
                    pin.parse::<Fingerprint>()
                        .map_err(|e| format!("--tls-pin: {e}"))?,
                ),
                (None, None) => {
                    return Err(format!(
                        "--connect {ep} needs --tls-trust CA_FILE (the server's certificate or its CA) \
                         or --tls-pin FINGERPRINT (from `ironhouse cert show` on the server's certificate)"
                    )
                    .into())
                }
            };
            if let Some(name) = &t.tls_name {
                client = client.server_name(name.clone());
            }
            if let Some((cert, key)) = identity {
                client = client
                    .with_client_cert_files(cert, key)
                    .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
            }
            if t.tls12 {
                client = client.allow_tls12();
            }
            Some(client)
        }
    };
    Ok((server, client))
}

/// A TLS private key file must not be readable by group or others, as for
/// the other secret files, unless `allow_insecure`.
fn check_key_file(path: &Path, allow_insecure: bool) -> Result<(), crate::BoxError> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("--tls-key: {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 && !allow_insecure {
        return Err(format!(
            "--tls-key: {}: private key file is accessible by group or others (mode {mode:04o}); \
             fix it with `chmod 600 {}` or pass --allow-insecure-key-permissions",
            path.display(),
            path.display()
        )
        .into());
    }
    Ok(())
}

fn plaintext(security: Security, args: &SecurityArgs) -> Security {
    if args.allow_plaintext_password {
        security.allow_plaintext_password()
    } else {
        security
    }
}

/// A certificate error, with the flag that named the file and, for loose
/// permissions, the flag that accepts them.
fn cert_error(flag: &str, e: CertError) -> crate::BoxError {
    match e {
        CertError::InsecurePermissions { path, mode } => format!(
            "{flag}: {}: secret key file is accessible by group or others (mode {mode:04o}); \
             fix it with `chmod 600 {}` or pass --allow-insecure-key-permissions",
            path.display(),
            path.display()
        )
        .into(),
        other => format!("{flag}: {other}").into(),
    }
}

/// `--curve-serverkey`: a certificate file if one exists at that path,
/// otherwise a Z85 key.
fn server_public_key(arg: &str) -> Result<CurvePublicKey, crate::BoxError> {
    let path = Path::new(arg);
    if path.exists() {
        return certs::load_public(path).map_err(|e| format!("--curve-serverkey: {e}").into());
    }
    if arg.chars().count() == 40 {
        return CurvePublicKey::from_z85(arg).map_err(|e| {
            format!("--curve-serverkey {arg:?}: no such file, and not a Z85 key: {e}").into()
        });
    }
    Err(format!(
        "--curve-serverkey {arg:?}: no such file, and not a 40-character Z85 key ({} characters)",
        arg.chars().count()
    )
    .into())
}

/// Reads a file holding a secret (password, password table), refusing one
/// that group or others can access unless `allow_insecure`, as for secret keys.
fn read_private_file(path: &Path, what: &str, allow_insecure: bool) -> Result<String, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        return Err(format!("{}: is a folder, not a {what}", path.display()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 && !allow_insecure {
        return Err(format!(
            "{}: {what} is accessible by group or others (mode {mode:04o}); \
             fix it with `chmod 600 {}` or pass --allow-insecure-key-permissions",
            path.display(),
            path.display()
        ));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
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

/// A bind or connect error; PLAIN's refusal of a clear-text transport gets
/// this command's flag as the way out.
fn attach_error(e: Error) -> crate::BoxError {
    match e {
        Error::Insecure(msg) => {
            format!("{msg} (on the command line: --allow-plaintext-password)").into()
        }
        other => other.into(),
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

#[cfg(test)]
mod ssh_tests {
    use super::ssh_target;

    #[test]
    fn ssh_targets() {
        assert_eq!(
            ssh_target("me@host").unwrap(),
            (Some("me".into()), "host".into(), 22)
        );
        assert_eq!(
            ssh_target("host:2222").unwrap(),
            (None, "host".into(), 2222)
        );
        assert_eq!(
            ssh_target("u@[::1]:22").unwrap(),
            (Some("u".into()), "::1".into(), 22)
        );
        assert_eq!(ssh_target("[::1]").unwrap(), (None, "::1".into(), 22));
        for bad in ["@h", "u@", "h:x", "h:99999", "[::1", "[::1]x"] {
            assert!(ssh_target(bad).is_err(), "{bad}");
        }
    }
}
