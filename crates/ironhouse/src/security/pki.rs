//! X.509 material for `tls://`: certificate chains and private keys from PEM
//! files, SHA-256 fingerprints for pinning, and what an application may want
//! to know about a peer's certificate (subject, DNS names, IP addresses).
//!
//! PEM parsing is rustls-pki-types'. Names come from rustls-webpki where it
//! exposes them (DNS names, syntax-checked); the subject and IP addresses,
//! which webpki keeps private, come from a small bounds-checked DER walker
//! below. It only ever reads certificates that rustls has already accepted,
//! never panics, and on anything unexpected leaves the field empty: the
//! connection does not depend on it. (x509-parser would add about 25 crates,
//! x509-cert 9 including a second major version of `syn`, for two fields.)
//!
//! Fingerprints print as OpenSSL does (`openssl x509 -noout -fingerprint
//! -sha256`): uppercase hex pairs joined by colons. Parsing accepts any case,
//! with or without colons, and an optional `sha256:` or `SHA256 Fingerprint=`
//! prefix.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustls_pki_types::pem::PemObject;
/// The DER types of in-memory certificates and keys (from rustls-pki-types),
/// for [`TlsServer::from_der`](crate::TlsServer::from_der) and friends.
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors from loading certificates and keys, parsing fingerprints and
/// building TLS configurations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not valid PEM, or holds nothing of the kind expected.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// A fingerprint string is not 32 bytes of hex.
    #[error("invalid SHA-256 fingerprint {0:?}: expected 64 hex digits, colons optional")]
    Fingerprint(String),
    /// The certificates and key do not make a usable TLS configuration
    /// (key does not match the certificate, unsupported key type, …).
    #[error("{0}")]
    Config(String),
}

fn pem_error(path: &Path, e: rustls_pki_types::pem::Error) -> PkiError {
    use rustls_pki_types::pem::Error as E;
    let reason = match e {
        E::Io(source) => {
            return PkiError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
        E::MissingSectionEnd { .. } => "PEM section without its END line".to_string(),
        E::IllegalSectionStart { .. } => "malformed PEM BEGIN line".to_string(),
        E::Base64Decode(why) => format!("invalid base64 in PEM: {why}"),
        E::SectionTooLarge => "PEM section larger than 256 MB".to_string(),
        E::NoItemsFound => "no PEM item of the expected kind".to_string(),
        other => other.to_string(),
    };
    PkiError::Pem {
        path: path.to_path_buf(),
        reason,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads every `CERTIFICATE` block of a PEM file, in order (leaf first for a
/// chain).
///
/// # Errors
/// [`PkiError::Read`] if the file cannot be read, [`PkiError::Pem`] if it is
/// malformed or holds no certificate; both name the file.
///
/// ```no_run
/// let chain = ironhouse::security::pki::load_certs("server.pem")?;
/// # Ok::<(), ironhouse::security::pki::PkiError>(())
/// ```
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// Loads the first private key of a PEM file: PKCS#8 (`PRIVATE KEY`),
/// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
///
/// # Errors
/// As [`load_certs`], when the file holds no private key.
///
/// ```no_run
/// let key = ironhouse::security::pki::load_private_key("server.key")?;
/// # Ok::<(), ironhouse::security::pki::PkiError>(())
/// ```
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, PkiError> {
    let path = path.as_ref();
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PkiError::Pem {
            path: path.to_path_buf(),
            reason:
                "no private key found (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .into(),
        },
        e => pem_error(path, e),
    })
}

/// The SHA-256 digest of a certificate's DER encoding: what `tls://` clients
/// pin when a server has a self-signed certificate or only an IP address.
///
/// ```
/// use ironhouse::security::pki::Fingerprint;
/// let f: Fingerprint = "ab".repeat(32).parse()?;
/// assert_eq!(f.to_string(), ["AB"; 32].join(":"));
/// assert_eq!(f, ["ab"; 32].join(":").parse()?);
/// assert_eq!(f, format!("sha256:{}", "AB".repeat(32)).parse()?);
/// # Ok::<(), ironhouse::security::pki::PkiError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    /// The fingerprint of the first certificate in a PEM file.
    ///
    /// # Errors
    /// As [`load_certs`].
    pub fn of_pem_file(path: impl AsRef<Path>) -> Result<Fingerprint, PkiError> {
        let path = path.as_ref();
        let certs = load_certs(path)?;
        let first = certs.first().ok_or_else(|| PkiError::Pem {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block found".into(),
        })?;
        Ok(Fingerprint::of(first.as_ref()))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Parses any common spelling: 64 hex digits in any case, colons and spaces
/// optional, with an optional `sha256:` or `SHA256 Fingerprint=` prefix.
impl FromStr for Fingerprint {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, PkiError> {
        let bad = || PkiError::Fingerprint(s.to_string());
        let mut t = s.trim();
        for prefix in ["sha256 fingerprint=", "sha256:", "sha256="] {
            if let (Some(head), Some(tail)) = (t.get(..prefix.len()), t.get(prefix.len()..)) {
                if head.eq_ignore_ascii_case(prefix) {
                    t = tail.trim_start();
                }
            }
        }
        let digits: Vec<u8> = t
            .bytes()
            .filter(|c| !matches!(c, b':' | b' '))
            .map(|c| (c as char).to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            *o = (pair[0] << 4) | pair[1];
        }
        Ok(Fingerprint(out))
    }
}

/// What the application learns about a `tls://` peer's certificate (the
/// server's, on a client; the client's, on a server that requires client
/// certificates). Reaches [`AuthRequest::tls_peer`](super::AuthRequest) and
/// [`SocketEvent::Connected`](crate::SocketEvent).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerCertificate {
    /// The subject as an RFC 4514 string, most specific first
    /// (`CN=client1,O=Example`). Empty if it could not be read.
    pub subject: String,
    /// The subject's common name (CN), if any.
    pub common_name: Option<String>,
    /// DNS names from the subject alternative names.
    pub dns_names: Vec<String>,
    /// IP addresses from the subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// SHA-256 of the certificate.
    pub fingerprint: Fingerprint,
    /// The certificate itself, DER-encoded.
    pub der: CertificateDer<'static>,
}

impl PeerCertificate {
    /// Reads what the application needs from a DER certificate. Never
    /// fails: fields that cannot be read stay empty.
    ///
    /// ```no_run
    /// use ironhouse::security::pki::{load_certs, PeerCertificate};
    /// let cert = PeerCertificate::from_der(&load_certs("client.pem")?[0]);
    /// println!("{} {:?}", cert.subject, cert.dns_names);
    /// # Ok::<(), ironhouse::security::pki::PkiError>(())
    /// ```
    pub fn from_der(der: &CertificateDer<'_>) -> PeerCertificate {
        let dns_names = webpki::EndEntityCert::try_from(der)
            .map(|c| c.valid_dns_names().map(str::to_string).collect())
            .unwrap_or_default();
        let parts = x509::parse(der.as_ref()).unwrap_or_default();
        PeerCertificate {
            subject: parts.subject,
            common_name: parts.common_name,
            dns_names,
            ip_addresses: parts.ips,
            fingerprint: Fingerprint::of(der.as_ref()),
            der: der.clone().into_owned(),
        }
    }
}

/// A minimal, bounds-checked DER walker for the two things webpki does not
/// expose: the subject's attributes and IP-address alternative names.
mod x509 {
    use std::fmt::Write;
    use std::net::IpAddr;

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const OCTET_STRING: u8 = 0x04;
    /// subjectAltName, 2.5.29.17.
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
    /// GeneralName [7] iPAddress (implicit, primitive).
    const SAN_IP: u8 = 0x87;

    #[derive(Default)]
    pub(super) struct Parts {
        pub(super) subject: String,
        pub(super) common_name: Option<String>,
        pub(super) ips: Vec<IpAddr>,
    }

    /// One TLV from the front of `input`: (tag, contents, rest).
    fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // high tag numbers never occur in certificates
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None; // indefinite (not DER) or absurdly long
            }
            let (bytes, r) = rest.split_at_checked(n)?;
            rest = r;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let (body, rest) = rest.split_at_checked(len)?;
        Some((tag, body, rest))
    }

    fn take<'a>(input: &mut &'a [u8], want: u8) -> Option<&'a [u8]> {
        let (tag, body, rest) = next(input)?;
        if tag != want {
            return None;
        }
        *input = rest;
        Some(body)
    }

    pub(super) fn parse(der: &[u8]) -> Option<Parts> {
        let mut input = der;
        let mut cert = take(&mut input, SEQUENCE)?;
        let mut tbs = take(&mut cert, SEQUENCE)?;
        if let Some((0xa0, _, rest)) = next(tbs) {
            tbs = rest; // explicit version
        }
        let _serial = take(&mut tbs, 0x02)?;
        let _signature = take(&mut tbs, SEQUENCE)?;
        let _issuer = take(&mut tbs, SEQUENCE)?;
        let _validity = take(&mut tbs, SEQUENCE)?;
        let subject = take(&mut tbs, SEQUENCE)?;
        let _spki = take(&mut tbs, SEQUENCE)?;
        let mut parts = Parts::default();
        let (text, cn) = subject_string(subject);
        parts.subject = text;
        parts.common_name = cn;
        while let Some((tag, body, rest)) = next(tbs) {
            tbs = rest;
            if tag == 0xa3 {
                parts.ips = san_ips(body).unwrap_or_default();
            }
        }
        Some(parts)
    }

    fn san_ips(extensions: &[u8]) -> Option<Vec<IpAddr>> {
        let mut exts = extensions;
        let mut list = take(&mut exts, SEQUENCE)?;
        while !list.is_empty() {
            let mut ext = take(&mut list, SEQUENCE)?;
            let oid = take(&mut ext, OID)?;
            if oid != SAN_OID {
                continue;
            }
            if let Some((0x01, _, rest)) = next(ext) {
                ext = rest; // critical flag
            }
            let mut value = take(&mut ext, OCTET_STRING)?;
            let mut names = take(&mut value, SEQUENCE)?;
            let mut ips = Vec::new();
            while let Some((tag, body, rest)) = next(names) {
                names = rest;
                if tag == SAN_IP {
                    if let Ok(v4) = <[u8; 4]>::try_from(body) {
                        ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(body) {
                        ips.push(IpAddr::from(v6));
                    }
                }
            }
            return Some(ips);
        }
        Some(Vec::new())
    }

    /// RFC 4514: RDNs in reverse order, joined by commas; multi-valued RDNs
    /// joined by `+`.
    fn subject_string(mut rdns: &[u8]) -> (String, Option<String>) {
        let mut out: Vec<String> = Vec::new();
        let mut cn = None;
        while let Some(mut set) = take(&mut rdns, SET) {
            let mut atvs = Vec::new();
            while let Some(mut atv) = take(&mut set, SEQUENCE) {
                let Some(oid) = take(&mut atv, OID) else {
                    break;
                };
                let Some((tag, value, after)) = next(atv) else {
                    break;
                };
                let name = oid_name(oid);
                let text = match string_value(tag, value) {
                    Some(s) => {
                        if name == "CN" && cn.is_none() {
                            cn = Some(s.clone());
                        }
                        escape(&s)
                    }
                    None => {
                        // RFC 4514: unknown types as #hex of the whole TLV.
                        let whole = &atv[..atv.len() - after.len()];
                        let mut h = String::from("#");
                        for b in whole {
                            let _ = write!(h, "{b:02x}");
                        }
                        h
                    }
                };
                atvs.push(format!("{name}={text}"));
            }
            out.push(atvs.join("+"));
        }
        out.reverse();
        (out.join(","), cn)
    }

    fn string_value(tag: u8, v: &[u8]) -> Option<String> {
        match tag {
            // UTF8String, PrintableString, IA5String, NumericString, VisibleString
            0x0c | 0x13 | 0x16 | 0x12 | 0x1a => std::str::from_utf8(v).ok().map(str::to_string),
            // TeletexString: treated as Latin-1, as most software does.
            0x14 => Some(v.iter().map(|&b| char::from(b)).collect()),
            // BMPString: UTF-16BE.
            0x1e if v.len() % 2 == 0 => {
                let units = v.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                Some(
                    char::decode_utf16(units)
                        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                        .collect(),
                )
            }
            // UniversalString: UTF-32BE.
            0x1c if v.len() % 4 == 0 => Some(
                v.chunks_exact(4)
                    .map(|c| {
                        char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                            .unwrap_or(char::REPLACEMENT_CHARACTER)
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let last = s.chars().count().saturating_sub(1);
        for (i, c) in s.chars().enumerate() {
            let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                || (i == 0 && (c == '#' || c == ' '))
                || (i == last && c == ' ');
            if special {
                out.push('\\');
            }
            if c == '\0' {
                out.push_str("\\00");
            } else {
                out.push(c);
            }
        }
        out
    }

    fn oid_name(oid: &[u8]) -> String {
        let dotted = dotted(oid).unwrap_or_else(|| "?".into());
        let short = match dotted.as_str() {
            "2.5.4.3" => "CN",
            "2.5.4.4" => "SN",
            "2.5.4.5" => "serialNumber",
            "2.5.4.6" => "C",
            "2.5.4.7" => "L",
            "2.5.4.8" => "ST",
            "2.5.4.9" => "STREET",
            "2.5.4.10" => "O",
            "2.5.4.11" => "OU",
            "2.5.4.42" => "GN",
            "0.9.2342.19200300.100.1.1" => "UID",
            "0.9.2342.19200300.100.1.25" => "DC",
            "1.2.840.113549.1.9.1" => "emailAddress",
            _ => return dotted,
        };
        short.to_string()
    }

    fn dotted(oid: &[u8]) -> Option<String> {
        let mut arcs: Vec<u64> = Vec::new();
        let mut acc: u64 = 0;
        for (i, &b) in oid.iter().enumerate() {
            acc = acc.checked_mul(128)? | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (acc / 40).min(2);
                    arcs.push(first);
                    arcs.push(acc - first * 40);
                } else {
                    arcs.push(acc);
                }
                acc = 0;
            } else if i + 1 == oid.len() {
                return None; // truncated arc
            }
        }
        if arcs.is_empty() {
            return None;
        }
        Some(
            arcs.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn never_panics_on_truncations_and_noise() {
            // A hand-built certificate-like structure, then every prefix of it
            // and some noise: nothing may panic.
            let name = [
                0x30, 0x11, 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06, b'c',
                b'l', b'i', b'e', b'n', b't',
            ];
            let mut tbs = vec![0x02, 0x01, 0x01, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00];
            tbs.extend_from_slice(&name);
            tbs.extend_from_slice(&[0x30, 0x00]);
            let mut cert = vec![0x30, tbs.len() as u8 + 2, 0x30, tbs.len() as u8];
            cert.extend_from_slice(&tbs);
            let p = parse(&cert).expect("parses");
            assert_eq!(p.subject, "CN=client");
            assert_eq!(p.common_name.as_deref(), Some("client"));
            for n in 0..cert.len() {
                let _ = parse(&cert[..n]);
            }
            let mut x: u32 = 12345;
            for _ in 0..2000 {
                let noise: Vec<u8> = (0..64)
                    .map(|_| {
                        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (x >> 16) as u8
                    })
                    .collect();
                let _ = parse(&noise);
                let _ = subject_string(&noise);
                let _ = san_ips(&noise);
                let _ = dotted(&noise);
            }
        }

        #[test]
        fn oids_and_escaping() {
            assert_eq!(
                dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).as_deref(),
                Some("1.2.840.113549.1.9.1")
            );
            assert_eq!(dotted(&[0x2a, 0x86]), None);
            assert_eq!(escape(" a,b "), "\\ a\\,b\\ ");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_spellings() {
        let f = Fingerprint([0xab; 32]);
        let canonical = f.to_string();
        assert_eq!(canonical.len(), 32 * 3 - 1);
        for s in [
            canonical.clone(),
            canonical.to_lowercase(),
            canonical.replace(':', ""),
            format!("sha256:{}", canonical.to_lowercase()),
            format!("SHA256 Fingerprint={canonical}"),
        ] {
            assert_eq!(s.parse::<Fingerprint>().unwrap(), f, "{s}");
        }
        for bad in ["", "ab", "sha25é", "é", &"zz".repeat(32), &"ab".repeat(33)] {
            let e = bad.parse::<Fingerprint>().unwrap_err().to_string();
            assert!(e.contains("64 hex digits"), "{e}");
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("ironhouse-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = load_certs(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.pem") && e.contains("cannot read"),
            "{e}"
        );
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = load_certs(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let e = load_private_key(&empty).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no private key"),
            "{e}"
        );
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
        let e = load_certs(&broken).unwrap_err().to_string();
        assert!(e.contains("broken.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
