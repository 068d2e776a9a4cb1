//! `ironhouse cert`: X.509 certificates for `tls://`.
//!
//! - `generate`: a self-signed server certificate, or a CA (`--ca`); with
//!   `--tlspyo`, `key.pem` and `certificate.pem` for the name "default" in
//!   tlspyo's credentials folder, so tlspyo relays and endpoints use them.
//! - `issue`: a server or client certificate signed by such a CA.
//! - `show`: fingerprint (as `ironhouse socket --tls-pin` takes it),
//!   subject, names, validity, CA or not.
//! - `serve` / `fetch`: hand a certificate (public data) to another machine
//!   over plain TCP, the fetching side accepting it only by its fingerprint.
//!
//! Output on stdout, one `<what> <value>` line each (`certificate`, `key`,
//! `fingerprint`, …). Private keys are PKCS#8 PEM, mode 0600, in 0700
//! folders; nothing is replaced without `--force`.
//!
//! Default key type: Ed25519. rustls (aws-lc-rs) and OpenSSL 3 (Python's
//! `ssl`, so tlspyo) both accept Ed25519 server certificates in TLS 1.3 and
//! 1.2, which the interop test checks; `--p256` and `--rsa` are there for
//! peers that do not (older OpenSSL, some Java and .NET stacks).

mod der;
pub(crate) mod files;
mod share;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironhouse::security::pki::{self, Fingerprint, PeerCertificate};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
};

/// Largest certificate or key file `ironhouse cert` reads.
pub const MAX_FILE: u64 = 64 * 1024;

/// Subcommands of `ironhouse cert`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// A self-signed server certificate (or, with --ca, a CA) and its key.
    Generate(GenerateArgs),
    /// A server or client certificate signed by a CA made with `generate --ca`.
    Issue(IssueArgs),
    /// Fingerprint, subject, names, validity of the certificates in a PEM file.
    Show {
        /// A PEM file.
        file: PathBuf,
    },
    /// Send a certificate (never a key) to whoever connects, over plain TCP, for a while.
    Serve(share::ServeArgs),
    /// Receive a certificate from `cert serve`, accepted only by its fingerprint.
    Fetch(share::FetchArgs),
}

#[derive(clap::Args, Debug)]
#[group(multiple = false)]
struct KeyType {
    /// RSA 3072 key (for peers without EC or Ed25519 support).
    #[arg(long)]
    rsa: bool,
    /// ECDSA P-256 key.
    #[arg(long)]
    p256: bool,
    /// Ed25519 key (the default).
    #[arg(long)]
    ed25519: bool,
}

impl KeyType {
    fn generate(&self) -> Result<KeyPair, crate::BoxError> {
        let key = if self.rsa {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_3072)
        } else if self.p256 {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        } else {
            KeyPair::generate_for(&rcgen::PKCS_ED25519)
        };
        key.map_err(|e| format!("cannot generate a key: {e}").into())
    }

    fn usages(&self) -> Vec<KeyUsagePurpose> {
        let mut u = vec![KeyUsagePurpose::DigitalSignature];
        if self.rsa {
            u.push(KeyUsagePurpose::KeyEncipherment);
        }
        u
    }
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Folder for the files [default: $XDG_CONFIG_HOME/ironhouse/tls, or
    /// ~/.config/ironhouse/tls; with --tlspyo, tlspyo's credentials folder].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Common name; also the first subject alternative name of a server
    /// certificate [default: localhost; "ironhouse CA" with --ca; "default" with --tlspyo].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Another DNS name or IP address the server is reached by (repeatable).
    /// Without --name nor --san: localhost, 127.0.0.1 and ::1.
    #[arg(long, value_name = "NAME_OR_IP")]
    san: Vec<String>,
    /// Make a CA (basicConstraints CA, keyCertSign) for `cert issue`: ca.pem, ca.key.
    #[arg(long, conflicts_with = "tlspyo")]
    ca: bool,
    #[command(flatten)]
    key: KeyType,
    /// Days of validity [default: 365; 3650 for a CA or --tlspyo].
    #[arg(long, value_name = "N")]
    days: Option<u32>,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
    /// tlspyo's files: key.pem and certificate.pem, name "default", in
    /// $XDG_DATA_HOME/tlspyo/credentials (or ~/.local/share/tlspyo/credentials).
    #[arg(long)]
    tlspyo: bool,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["server", "client"])))]
struct IssueArgs {
    /// The CA's certificate (from `cert generate --ca`).
    #[arg(long, value_name = "FILE")]
    ca_cert: PathBuf,
    /// The CA's private key.
    #[arg(long, value_name = "FILE")]
    ca_key: PathBuf,
    /// A server certificate (serverAuth; the name and --san values as SANs).
    #[arg(long)]
    server: bool,
    /// A client certificate (clientAuth), for servers started with --tls-ca.
    #[arg(long)]
    client: bool,
    /// Common name; for a server also its first subject alternative name.
    #[arg(long, value_name = "CN")]
    name: String,
    /// Another DNS name or IP address (repeatable).
    #[arg(long, value_name = "NAME_OR_IP")]
    san: Vec<String>,
    /// Folder for <name>.pem and <name>.key [default: $XDG_CONFIG_HOME/ironhouse/tls].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Days of validity [default: 365].
    #[arg(long, value_name = "N", default_value_t = 365)]
    days: u32,
    #[command(flatten)]
    key: KeyType,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<ExitCode, crate::BoxError> {
    match args.command {
        Command::Generate(a) => generate(a),
        Command::Issue(a) => issue(a),
        Command::Show { file } => show(&file),
        Command::Serve(a) => share::serve(a),
        Command::Fetch(a) => share::fetch(a),
    }
}

/// Validity from an hour ago (clock skew) to `days` from now.
fn validity(params: &mut CertificateParams, days: u32) -> Result<(), crate::BoxError> {
    if days == 0 {
        return Err("--days must be at least 1".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970")?;
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(Duration::from_secs(3600));
    params.not_after = epoch + now + Duration::from_secs(u64::from(days) * 86_400);
    Ok(())
}

fn subject_names(name: &str, sans: &[String]) -> Vec<String> {
    let mut all = vec![name.to_string()];
    for s in sans {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    all
}

fn params_for(sans: Vec<String>, cn: &str) -> Result<CertificateParams, crate::BoxError> {
    for s in &sans {
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(format!("{s:?} is not a DNS name or IP address").into());
        }
    }
    let mut params = CertificateParams::new(sans.clone())
        .map_err(|e| format!("invalid subject alternative name in {sans:?}: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    Ok(params)
}

/// Writes the certificate (0644) and key (0600), having checked neither
/// exists (unless `force`), and prints where they went.
fn write_pair(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    cert_der: &[u8],
    key: &KeyPair,
    force: bool,
) -> Result<(), crate::BoxError> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    files::refuse_overwrite(&[&cert_path, &key_path], force)?;
    files::make_dir(dir)?;
    files::write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    files::write_file(&cert_path, der::cert_pem(cert_der).as_bytes(), 0o644)?;
    println!("certificate {}", cert_path.display());
    println!("key {}", key_path.display());
    println!("fingerprint {}", Fingerprint::of(cert_der));
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<ExitCode, crate::BoxError> {
    let dir = match (&a.dir, a.tlspyo) {
        (Some(d), _) => d.clone(),
        (None, true) => files::tlspyo_dir()?,
        (None, false) => files::default_dir()?,
    };
    let key = a.key.generate()?;
    let (mut params, cert_file, key_file) = if a.ca {
        if !a.san.is_empty() {
            return Err(
                "--san is for server certificates; a CA has no names to be reached by".into(),
            );
        }
        let cn = a.name.clone().unwrap_or_else(|| "ironhouse CA".into());
        let mut p = params_for(Vec::new(), &cn)?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut p, a.days.unwrap_or(3650))?;
        (p, "ca.pem", "ca.key")
    } else {
        let default_name = if a.tlspyo { "default" } else { "localhost" };
        let cn = a.name.clone().unwrap_or_else(|| default_name.into());
        let mut sans = a.san.clone();
        if a.name.is_none() && sans.is_empty() && !a.tlspyo {
            sans = vec!["127.0.0.1".into(), "::1".into()];
        }
        if a.tlspyo && !sans.iter().any(|s| s == "default") && cn != "default" {
            // tlspyo's endpoints check the name "default" unless told otherwise.
            sans.push("default".into());
        }
        let mut p = params_for(subject_names(&cn, &sans), &cn)?;
        p.key_usages = a.key.usages();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let days = a.days.unwrap_or(if a.tlspyo { 3650 } else { 365 });
        validity(&mut p, days)?;
        let names = if a.tlspyo {
            ("certificate.pem", "key.pem")
        } else {
            ("server.pem", "server.key")
        };
        (p, names.0, names.1)
    };
    params.use_authority_key_identifier_extension = false;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot make the certificate: {e}"))?;
    write_pair(&dir, cert_file, key_file, cert.der(), &key, a.force)?;
    Ok(ExitCode::SUCCESS)
}

/// The CA's subject as rcgen writes it, checked to encode byte for byte as
/// in the CA certificate (so that chains build).
fn ca_name(ca: &der::Details, path: &Path) -> Result<DistinguishedName, crate::BoxError> {
    let unsupported = || -> crate::BoxError {
        format!(
            "{}: the CA's subject uses a form `cert issue` cannot reproduce \
             (multi-valued or repeated attributes, or unusual string types); \
             use a CA made with `ironhouse cert generate --ca`",
            path.display()
        )
        .into()
    };
    let attrs = ca.subject_attrs.as_ref().ok_or_else(unsupported)?;
    let mut dn = DistinguishedName::new();
    for a in attrs {
        let text = String::from_utf8(a.value.clone()).map_err(|_| unsupported())?;
        let value = match a.tag {
            0x0c => DnValue::Utf8String(text),
            0x13 => DnValue::PrintableString(text.try_into().map_err(|_| unsupported())?),
            0x16 => DnValue::Ia5String(text.try_into().map_err(|_| unsupported())?),
            _ => return Err(unsupported()),
        };
        let ty = DnType::from_oid(&a.oid);
        if dn.get(&ty).is_some() {
            return Err(unsupported());
        }
        dn.push(ty, value);
    }
    Ok(dn)
}

fn load_single_cert(path: &Path) -> Result<Vec<u8>, crate::BoxError> {
    files::read_bounded(path, MAX_FILE, "certificate file")?;
    let certs = pki::load_certs(path)?;
    Ok(certs[0].as_ref().to_vec())
}

fn issue(a: IssueArgs) -> Result<ExitCode, crate::BoxError> {
    let ca_der = load_single_cert(&a.ca_cert).map_err(|e| format!("--ca-cert: {e}"))?;
    let ca = der::details(&ca_der).ok_or_else(|| {
        format!(
            "--ca-cert {}: not a readable X.509 certificate",
            a.ca_cert.display()
        )
    })?;
    if !ca.is_ca {
        return Err(format!(
            "--ca-cert {}: not a CA certificate (no basicConstraints CA); make one with `ironhouse cert generate --ca`",
            a.ca_cert.display()
        )
        .into());
    }
    let key_text = files::read_bounded(&a.ca_key, MAX_FILE, "key file")
        .map_err(|e| format!("--ca-key: {e}"))?;
    let key_text = String::from_utf8(key_text)
        .map_err(|_| format!("--ca-key {}: not a PEM file", a.ca_key.display()))?;
    let ca_key = KeyPair::from_pem(&key_text).map_err(|e| {
        format!(
            "--ca-key {}: not a usable private key (PKCS#8 PEM expected): {e}",
            a.ca_key.display()
        )
    })?;
    if ca_key.subject_public_key_info() != ca.spki {
        return Err(format!(
            "--ca-key {} is not the key of --ca-cert {} (their public keys differ)",
            a.ca_key.display(),
            a.ca_cert.display()
        )
        .into());
    }
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = ca_name(&ca, &a.ca_cert)?;
    if let Some(ski) = &ca.subject_key_id {
        issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    }
    issuer_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let issuer = Issuer::new(issuer_params, ca_key);

    let sans = if a.server {
        subject_names(&a.name, &a.san)
    } else {
        a.san.clone()
    };
    let mut params = params_for(sans, &a.name)?;
    params.key_usages = a.key.usages();
    params.extended_key_usages = vec![if a.server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    params.use_authority_key_identifier_extension = ca.subject_key_id.is_some();
    validity(&mut params, a.days)?;
    let key = a.key.generate()?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    let issued = der::details(cert.der()).ok_or("the issued certificate does not parse")?;
    if issued.issuer_der != ca.subject_der {
        return Err(format!(
            "{}: cannot reproduce the CA's subject exactly; use a CA made with `ironhouse cert generate --ca`",
            a.ca_cert.display()
        )
        .into());
    }
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => files::default_dir()?,
    };
    let stem = files::stem(&a.name);
    write_pair(
        &dir,
        &format!("{stem}.pem"),
        &format!("{stem}.key"),
        cert.der(),
        &key,
        a.force,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn show(path: &Path) -> Result<ExitCode, crate::BoxError> {
    let bytes = files::read_bounded(path, MAX_FILE, "certificate file")?;
    if String::from_utf8_lossy(&bytes).contains("PRIVATE KEY") && pki::load_certs(path).is_err() {
        return Err(format!(
            "{}: holds a private key, not a certificate; show the certificate file instead",
            path.display()
        )
        .into());
    }
    let certs = pki::load_certs(path)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for (i, c) in certs.iter().enumerate() {
        if certs.len() > 1 {
            if i > 0 {
                println!();
            }
            println!("certificate #{}", i + 1);
        }
        let peer = PeerCertificate::from_der(c);
        let d = der::details(c.as_ref()).unwrap_or_default();
        println!("fingerprint {}", peer.fingerprint);
        println!("subject {}", peer.subject);
        let mut names: Vec<String> = peer.dns_names.iter().map(|n| format!("DNS:{n}")).collect();
        names.extend(peer.ip_addresses.iter().map(|ip| format!("IP:{ip}")));
        println!(
            "names {}",
            if names.is_empty() {
                "-".into()
            } else {
                names.join(", ")
            }
        );
        let at = |t: Option<der::Time>| t.map_or("?".into(), |t| t.to_string());
        println!("not-before {}", at(d.not_before));
        let status = match (d.not_before, d.not_after) {
            (_, Some(t)) if t.unix < now => " (expired)",
            (Some(t), _) if t.unix > now => " (not yet valid)",
            _ => "",
        };
        println!("not-after {}{status}", at(d.not_after));
        println!("ca {}", if d.is_ca { "yes" } else { "no" });
        let usage = match (d.has_eku, d.server_auth, d.client_auth) {
            (false, _, _) => "any",
            (true, true, true) => "server, client",
            (true, true, false) => "server",
            (true, false, true) => "client",
            (true, false, false) => "other",
        };
        println!("usage {usage}");
        println!(
            "self-signed {}",
            if d.issuer_der == d.subject_der {
                "yes"
            } else {
                "no"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
