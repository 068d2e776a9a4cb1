//! `ironhouse relay`: the relay server. Native endpoints connect to its
//! `--bind` endpoints (ZMTP, any security of `ironhouse socket`); real
//! tlspyo endpoints connect to `--tlspyo-port` unchanged. Both kinds share
//! the groups. Runs until SIGINT or SIGTERM, then exits 0.
//!
//! Contract: one `bound <endpoint>` line on stderr per native bind, and
//! `tlspyo listening on <addr>` for the tlspyo listener.
//!
//! The password (`--password` or `--password-file`) is tlspyo's frame
//! password on the tlspyo listener and, on native binds, a PLAIN password
//! any user name may give (so it needs `tls://`, or
//! `--allow-plaintext-password` on a trusted network).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use ironhouse::security::SharedPassword;
use ironhouse::{Options, Security, TlsServer};
use ironhouse_relay::{GroupLimits, GroupPolicy, Relay, TlspyoConfig};

use crate::conn_flags::{attach_error, read_private_file, security, tls, SecurityArgs, TlsArgs};

/// tlspyo's `security` setting.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlspyoSecurity {
    /// TLS with `certificate.pem` / `key.pem` from --keys-dir (tlspyo's default).
    Tls,
    /// Plain TCP (tlspyo's `security=None`): passwords and objects in clear.
    None,
}

/// Flags of `ironhouse relay`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Listen for native endpoints here (tcp://, ipc://, tls://); repeatable.
    #[arg(long, value_name = "EP")]
    bind: Vec<String>,
    /// The password, given on the command line (visible in `ps`; prefer --password-file).
    #[arg(
        long,
        value_name = "PW",
        conflicts_with = "password_file",
        allow_hyphen_values = true
    )]
    password: Option<String>,
    /// A file holding the password (a trailing newline is ignored); mode 0600.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Groups the relay accepts, as tlspyo's `accepted_groups` JSON, e.g.
    /// '{"g": {"max_count": 2, "max_consumables": 10}}' [default: any group].
    #[arg(long, value_name = "JSON")]
    accepted_groups: Option<String>,
    /// Serve tlspyo endpoints on this TCP port.
    #[arg(long, value_name = "PORT", help_heading = "tlspyo endpoints")]
    tlspyo_port: Option<u16>,
    /// Address of the tlspyo listener (tlspyo listens on every interface).
    #[arg(
        long,
        value_name = "IP",
        default_value = "0.0.0.0",
        help_heading = "tlspyo endpoints"
    )]
    tlspyo_address: IpAddr,
    /// tlspyo's `security`: tls or none.
    #[arg(
        long,
        value_enum,
        default_value = "tls",
        help_heading = "tlspyo endpoints"
    )]
    security: TlspyoSecurity,
    /// Folder with `key.pem` and `certificate.pem` [default: tlspyo's credentials folder].
    #[arg(long, value_name = "DIR", help_heading = "tlspyo endpoints")]
    keys_dir: Option<PathBuf>,
    /// tlspyo's `header_size`: width of the length header.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10,
        help_heading = "tlspyo endpoints"
    )]
    header_size: usize,
    /// Security of the native binds.
    #[command(flatten)]
    native_security: Box<SecurityArgs>,
    /// TLS of the native tls:// binds.
    #[command(flatten)]
    native_tls: Box<TlsArgs>,
}

/// Parses tlspyo's `accepted_groups` dict.
pub fn parse_accepted_groups(json: &str) -> Result<GroupPolicy, crate::BoxError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("--accepted-groups: not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("--accepted-groups: expected a JSON object {group: {max_count, max_consumables}}")?;
    let mut groups = HashMap::new();
    for (name, limits) in obj {
        let field = |key: &str| -> Result<Option<usize>, crate::BoxError> {
            match limits.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(n) => n.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
                    format!("--accepted-groups: {name}.{key} must be a number or null").into()
                }),
            }
        };
        if !(limits.is_object() || limits.is_null()) {
            return Err(format!("--accepted-groups: {name} must map to an object").into());
        }
        groups.insert(
            name.clone(),
            GroupLimits {
                max_count: field("max_count")?,
                max_consumables: field("max_consumables")?,
            },
        );
    }
    Ok(GroupPolicy::Only(groups))
}

/// Runs the relay on a multi-threaded runtime until a signal.
pub fn run(args: Args) -> Result<ExitCode, crate::BoxError> {
    if args.bind.is_empty() && args.tlspyo_port.is_none() {
        return Err("give at least one --bind endpoint or --tlspyo-port".into());
    }
    let allow_insecure = args.native_security.allow_insecure_key_permissions;
    let password = match (&args.password, &args.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => Some(
            read_private_file(f, "password file", allow_insecure)
                .map_err(|e| format!("--password-file: {e}"))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    let policy = match &args.accepted_groups {
        Some(j) => parse_accepted_groups(j)?,
        None => GroupPolicy::default(),
    };
    let mut builder = Relay::builder().groups(policy);
    if !args.bind.is_empty() {
        let mut sec = security(&args.native_security)?;
        if let Some(p) = &password {
            if !matches!(sec, Security::Null) {
                return Err(
                    "--password on native binds is PLAIN; do not combine it with --curve-server or --plain-server"
                        .into(),
                );
            }
            sec = Security::plain_server(SharedPassword::new(p.clone()));
            if args.native_security.allow_plaintext_password {
                sec = sec.allow_plaintext_password();
            }
        }
        let (server, client) = tls(&args.native_tls, &args.bind, &[], allow_insecure)?;
        let mut opts = Options::default().security(sec);
        if let Some(s) = server {
            opts = opts.tls_server(s);
        }
        if let Some(c) = client {
            opts = opts.tls_client(c);
        }
        builder = builder.options(opts);
        for b in &args.bind {
            builder = builder.bind(b.clone());
        }
    }
    if let Some(port) = args.tlspyo_port {
        let password = password
            .ok_or("--tlspyo-port needs --password or --password-file (tlspyo's password)")?;
        let mut cfg = TlspyoConfig::new(SocketAddr::new(args.tlspyo_address, port), password)
            .header_size(args.header_size);
        if args.security == TlspyoSecurity::Tls {
            let dir = match &args.keys_dir {
                Some(d) => d.clone(),
                None => crate::cert_cmd::files::tlspyo_dir()?,
            };
            let (cert, key) = (dir.join("certificate.pem"), dir.join("key.pem"));
            let server = TlsServer::from_pem_files(&cert, &key)
                .map_err(|e| {
                    format!(
                        "tlspyo TLS credentials in {}: {e} (make them with `ironhouse cert generate --tlspyo`)",
                        dir.display()
                    )
                })?
                // tlspyo's endpoints (Twisted/OpenSSL) speak TLS 1.3; 1.2 as tlspyo's relay allows.
                .allow_tls12();
            cfg = cfg.tls(server);
        }
        builder = builder.tlspyo(cfg);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let stop = crate::stop_signal::install()?;
        let relay = builder.start().await.map_err(|e| match e {
            ironhouse_relay::Error::Socket(e) => attach_error(e),
            e => e.into(),
        })?;
        for ep in relay.endpoints() {
            eprintln!("bound {ep}");
        }
        if let Some(a) = relay.tlspyo_addr() {
            eprintln!("tlspyo listening on {a}");
        }
        stop.await;
        tracing::info!(stats = ?relay.stats(), "relay stopping");
        relay.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_groups_json() {
        let p = parse_accepted_groups(
            r#"{"g": {"max_count": 2, "max_consumables": 10}, "h": {"max_count": null}}"#,
        )
        .unwrap();
        let GroupPolicy::Only(m) = p else {
            panic!("expected a list")
        };
        assert_eq!(m["g"].max_count, Some(2));
        assert_eq!(m["g"].max_consumables, Some(10));
        assert_eq!(m["h"], GroupLimits::default());
        for bad in ["[]", "{\"g\": 3}", "{\"g\": {\"max_count\": -1}}", "nope"] {
            assert!(parse_accepted_groups(bad).is_err(), "{bad}");
        }
    }
}
