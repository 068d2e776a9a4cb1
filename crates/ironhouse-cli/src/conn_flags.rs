//! Connection flags shared by the commands that open sockets (`socket`,
//! `relay`, `endpoint`): security (CURVE, PLAIN), `tls://` certificates and
//! SSH tunnels, each checked against the endpoints they serve and read from
//! disk before any connection is made, so a bad file is an error at once.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ironhouse::security::certs::{self, CertError, LoadOptions};
use ironhouse::security::{CurveAllowList, Fingerprint, PasswordTable};
use ironhouse::{
    CurvePublicKey, Error, HostKeyPolicy, Security, SshIdentity, SshTunnel, TlsClient, TlsServer,
};

/// The SSH flags of `ironhouse socket`.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "SSH (reach --connect endpoints through an SSH server)")]
pub(crate) struct SshArgs {
    /// Connect through this SSH server, `[user@]host[:port]`: each --connect
    /// endpoint is reached from the server (a direct-tcpip channel; no local
    /// port is opened). The user defaults to $USER, the port to 22.
    #[arg(long, value_name = "[USER@]HOST[:PORT]")]
    pub(crate) ssh: Option<String>,
    /// Private key file (OpenSSH format) [default: the ssh-agent's keys].
    #[arg(long, value_name = "FILE", requires = "ssh")]
    pub(crate) ssh_key: Option<PathBuf>,
    /// known_hosts file to check the server's host key against
    /// [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE", requires = "ssh")]
    pub(crate) known_hosts: Option<PathBuf>,
    /// Record an unknown host key instead of refusing it (a changed key is
    /// still refused).
    #[arg(long, requires = "ssh")]
    pub(crate) ssh_accept_new: bool,
    /// Ask on the terminal (without echo) for the SSH password, or for the
    /// passphrase of an encrypted --ssh-key. Refused without a terminal.
    #[arg(long, requires = "ssh")]
    pub(crate) ssh_password: bool,
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
pub(crate) fn ssh(args: &SshArgs) -> Result<Option<SshTunnel>, crate::BoxError> {
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
pub(crate) struct TlsArgs {
    /// Certificate chain (PEM, leaf first): the server's for --bind tls://,
    /// the client certificate when connecting to a server that requires one.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert; mode 0600.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Server: require client certificates signed by a CA in this PEM file (mTLS).
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Client: trust servers whose certificate chains to one in this PEM file
    /// (a self-signed server certificate is its own CA); the name is checked.
    #[arg(long, value_name = "FILE")]
    pub(crate) tls_trust: Option<PathBuf>,
    /// Client: trust exactly the server certificate with this SHA-256
    /// fingerprint (`ironhouse cert show`), whatever its names or issuer.
    #[arg(long, value_name = "FINGERPRINT")]
    pub(crate) tls_pin: Option<String>,
    /// Client: the name the server's certificate must carry (and SNI)
    /// [default: the endpoint's host]; tlspyo's servers use "default".
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_name: Option<String>,
    /// Also accept TLS 1.2 (default: TLS 1.3 only).
    #[arg(long)]
    tls12: bool,
}

/// The security flags of `ironhouse socket`.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Security")]
pub(crate) struct SecurityArgs {
    /// CURVE server with this key pair (a czmq/pyzmq `.key_secret` certificate).
    /// Admits any client (StoneHouse) unless --authorized is given.
    #[arg(long, value_name = "SECRET_FILE")]
    pub(crate) curve_server: Option<PathBuf>,
    /// CURVE client with this key pair (a `.key_secret` certificate); needs --curve-serverkey.
    #[arg(long, value_name = "SECRET_FILE")]
    pub(crate) curve_client: Option<PathBuf>,
    /// The CURVE server's public key: its `.key` certificate, or the 40-character Z85 key.
    // Z85 keys may begin with '-'.
    #[arg(long, value_name = "PUBLIC_FILE_OR_Z85", allow_hyphen_values = true)]
    pub(crate) curve_serverkey: Option<String>,
    /// CURVE server: admit only clients whose `.key` certificate is in DIR
    /// (IronHouse); the folder is reread when it changes, no restart needed.
    #[arg(long, value_name = "DIR")]
    pub(crate) authorized: Option<PathBuf>,
    /// PLAIN client: the user name; needs --plain-password-file.
    #[arg(long, value_name = "USER", allow_hyphen_values = true)]
    pub(crate) plain_user: Option<String>,
    /// PLAIN client: a file holding the password (a trailing newline is ignored).
    #[arg(long, value_name = "FILE")]
    pub(crate) plain_password_file: Option<PathBuf>,
    /// PLAIN server: a file of `user:password` lines (`#` comments, blank lines ignored).
    #[arg(long, value_name = "PASSWORD_TABLE_FILE")]
    pub(crate) plain_server: Option<PathBuf>,
    /// Let PLAIN send passwords in clear over tcp:// or ipc:// (trusted loopback only).
    #[arg(long)]
    pub(crate) allow_plaintext_password: bool,
    /// Accept secret key and password files that group or others can read.
    #[arg(long)]
    pub(crate) allow_insecure_key_permissions: bool,
}

/// The socket's security from the flags, after checking they make sense
/// together. Reads key and password files now, so a bad one is an error
/// before any connection is made.
pub(crate) fn security(args: &SecurityArgs) -> Result<Security, crate::BoxError> {
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
pub(crate) fn tls(
    t: &TlsArgs,
    binds: &[String],
    connects: &[String],
    allow_insecure: bool,
) -> Result<(Option<TlsServer>, Option<TlsClient>), crate::BoxError> {
    let is_tls = |ep: &&String| ep.trim().to_ascii_lowercase().starts_with("tls://");
    let tls_bind = binds.iter().find(is_tls);
    let tls_connect = connects.iter().find(is_tls);
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
pub(crate) fn check_key_file(path: &Path, allow_insecure: bool) -> Result<(), crate::BoxError> {
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

pub(crate) fn plaintext(security: Security, args: &SecurityArgs) -> Security {
    if args.allow_plaintext_password {
        security.allow_plaintext_password()
    } else {
        security
    }
}

/// A certificate error, with the flag that named the file and, for loose
/// permissions, the flag that accepts them.
pub(crate) fn cert_error(flag: &str, e: CertError) -> crate::BoxError {
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
pub(crate) fn server_public_key(arg: &str) -> Result<CurvePublicKey, crate::BoxError> {
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
pub(crate) fn read_private_file(
    path: &Path,
    what: &str,
    allow_insecure: bool,
) -> Result<String, String> {
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

/// A bind or connect error; PLAIN's refusal of a clear-text transport gets
/// this command's flag as the way out.
pub(crate) fn attach_error(e: Error) -> crate::BoxError {
    match e {
        Error::Insecure(msg) => {
            format!("{msg} (on the command line: --allow-plaintext-password)").into()
        }
        other => other.into(),
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

#[cfg(test)]
mod flag_tests {
    use super::SecurityArgs;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        security: SecurityArgs,
    }

    /// A Z85 key (or a user name) may begin with '-'; clap must take it as
    /// the flag's value, not as another flag (this once failed ~1 run in 40
    /// with random keys).
    #[test]
    fn values_beginning_with_a_hyphen_are_values() {
        let key = "-+7EC{BeY(Kg1}gX[Rxjncv6F5H1/n5+hwpsJ:!F";
        let cli = Cli::try_parse_from([
            "t",
            "--curve-client",
            "alice.key_secret",
            "--curve-serverkey",
            key,
            "--plain-user",
            "-me",
        ])
        .expect("parses");
        assert_eq!(cli.security.curve_serverkey.as_deref(), Some(key));
        assert_eq!(cli.security.plain_user.as_deref(), Some("-me"));
    }
}
