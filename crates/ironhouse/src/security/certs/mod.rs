//! CURVE key files, in the formats people already have.
//!
//! # Format
//!
//! Certificates are czmq's ZPL text files, as written by czmq's `zcert` and
//! pyzmq's `zmq.auth.create_certificates` and read by pyzmq's
//! `zmq.auth.load_certificate`:
//!
//! ```text
//! #   ****  Generated on 2024-05-01 12:00:00 UTC by ironhouse  ****
//! #   ZeroMQ CURVE Public Certificate
//! #   ...
//!
//! metadata
//!     name = "alice"
//! curve
//!     public-key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
//! ```
//!
//! A key pair is two files: `<name>.key`, the public certificate (give it to
//! peers), and `<name>.key_secret`, which also holds `secret-key` (keep it).
//!
//! # Permissions
//!
//! Secret certificates are created with mode `0600`, atomically (written to a
//! temporary file in the same folder, then renamed), so they are never
//! readable by others, not even for an instant. Folders this module creates
//! get mode `0700`. Loading a secret certificate that group or others can
//! access is refused, with the `chmod` that fixes it, unless the caller opts
//! in with [`LoadOptions::allow_insecure_permissions`] (some tools, vidgear
//! for one, write secret files `0644`). Existing files are never replaced
//! unless asked ([`KeyFiles::write`] with `force`).
//!
//! # Layouts
//!
//! [`Layout`] names the folders and files used by other tools, so keys made
//! here work there and the other way round: sqlite_rx's `~/.curve`, vidgear's
//! `~/.vidgear/keys`, or plain `<dir>/<id>.key`.
//!
//! # Example
//!
//! ```
//! use ironhouse::security::certs;
//! use ironhouse::CurveKeyPair;
//!
//! # fn main() -> Result<(), certs::CertError> {
//! # let dir = std::env::temp_dir().join(format!("ironhouse-doc-certs-{}", std::process::id()));
//! let keys = CurveKeyPair::generate();
//! let (public_path, secret_path) =
//!     certs::write_certificates(&dir, "server", &keys, &[("name", "my server")])?;
//!
//! // Give `server.key` to clients; load the pair on the server.
//! assert_eq!(certs::load_public(&public_path)?, keys.public);
//! assert_eq!(certs::load_keypair(&secret_path)?, keys);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ironhouse_zmtp::{CurveKeyPair, CurvePublicKey, CurveSecretKey};

/// Suffix of public certificates.
pub const PUBLIC_SUFFIX: &str = ".key";
/// Suffix of secret certificates.
pub const SECRET_SUFFIX: &str = ".key_secret";

/// Certificates are a few hundred bytes; anything this big is not one.
const MAX_CERT_LEN: u64 = 64 * 1024;

/// What went wrong with a key file. Every error names the file (and the line,
/// for syntax errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file is not a well-formed certificate.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0: the file as a whole).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No `public-key` in the file's `curve` section.
    #[error("{}: no public-key in a `curve` section; not a CURVE certificate", path.display())]
    MissingPublicKey {
        /// The file.
        path: PathBuf,
    },
    /// A secret key was expected but the file has none.
    #[error(
        "{}: no secret-key in the `curve` section; this is a public certificate \
         (secret certificates end in {SECRET_SUFFIX})",
        path.display()
    )]
    MissingSecretKey {
        /// The file.
        path: PathBuf,
    },
    /// The file's public key is not the one its secret key derives.
    #[error(
        "{}:{line}: public-key {found} does not match the secret key in the same file \
         (whose public key is {derived}); the file was edited or assembled from two pairs",
        path.display()
    )]
    KeyMismatch {
        /// The file.
        path: PathBuf,
        /// Line of `public-key`.
        line: usize,
        /// The public key written in the file.
        found: CurvePublicKey,
        /// The public key of the secret key.
        derived: CurvePublicKey,
    },
    /// A secret certificate that group or others may access.
    #[error(
        "{}: secret key file is accessible by group or others (mode {mode:04o}); \
         fix it with `chmod 600 {}` (or load it with allow_insecure_permissions)",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{}: already exists; not overwriting it without force", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A name, id or metadata entry that cannot be written.
    #[error("{0}")]
    Invalid(String),
    /// No folder given and no home folder to default to.
    #[error("HOME is not set: give a folder for the keys")]
    NoHome,
    /// The host name (for sqlite_rx's file names) could not be found.
    #[error("cannot find this machine's host name (tried /proc/sys/kernel/hostname, /etc/hostname, $HOSTNAME)")]
    NoHostname,
}

impl CertError {
    /// The file or folder the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            CertError::Io { path, .. }
            | CertError::Syntax { path, .. }
            | CertError::MissingPublicKey { path }
            | CertError::MissingSecretKey { path }
            | CertError::KeyMismatch { path, .. }
            | CertError::InsecurePermissions { path, .. }
            | CertError::AlreadyExists { path } => Some(path),
            CertError::Invalid(_) | CertError::NoHome | CertError::NoHostname => None,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Options for loading certificates.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    allow_insecure_permissions: bool,
}

impl LoadOptions {
    /// The safe defaults: secret files must be private to their owner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts secret certificates that group or others can read (vidgear
    /// and `umask 022` write them `0644`). Better: `chmod 600` them.
    pub fn allow_insecure_permissions(mut self, allow: bool) -> Self {
        self.allow_insecure_permissions = allow;
        self
    }
}

/// The contents of a certificate file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Certificate {
    /// `curve/public-key`.
    pub public: CurvePublicKey,
    /// `curve/secret-key`, in secret certificates.
    pub secret: Option<CurveSecretKey>,
    /// The `metadata` section's entries, in file order.
    pub metadata: Vec<(String, String)>,
}

/// Reads a certificate: the public key, the secret key if the file has one,
/// and the metadata. A file with a secret key must be private to its owner
/// unless `options` allow otherwise; a file with both keys must have
/// matching ones.
///
/// # Errors
/// [`CertError`], naming the file and, for syntax errors, the line.
pub fn load_certificate(
    path: impl AsRef<Path>,
    options: LoadOptions,
) -> Result<Certificate, CertError> {
    load(path.as_ref(), options, true)
}

/// Reads the public key of a certificate (public or secret).
///
/// # Errors
/// [`CertError`], naming the file and, for syntax errors, the line.
///
/// ```no_run
/// let server_key = ironhouse::security::certs::load_public("keys/server.key")?;
/// # Ok::<(), ironhouse::security::certs::CertError>(())
/// ```
pub fn load_public(path: impl AsRef<Path>) -> Result<CurvePublicKey, CertError> {
    // Only the public half is wanted: a secret file's permissions are the
    // business of whoever loads its secret.
    load(path.as_ref(), LoadOptions::new(), false).map(|c| c.public)
}

/// Reads a key pair from a secret certificate (`*.key_secret`), refusing a
/// file that group or others can access. Checks that the file's public key
/// is the one its secret key derives.
///
/// # Errors
/// [`CertError`]; [`CertError::InsecurePermissions`] says how to fix the mode.
///
/// ```no_run
/// use ironhouse::security::{certs, CurveAllowList};
/// use ironhouse::Security;
/// let keys = certs::load_keypair("keys/server.key_secret")?;
/// let security = Security::ironhouse(keys, CurveAllowList::new("keys/authorized_clients"));
/// # Ok::<(), certs::CertError>(())
/// ```
pub fn load_keypair(secret_path: impl AsRef<Path>) -> Result<CurveKeyPair, CertError> {
    load_keypair_with(secret_path, LoadOptions::new())
}

/// [`load_keypair`] with options, such as accepting loose permissions.
///
/// # Errors
/// As [`load_keypair`].
///
/// ```no_run
/// use ironhouse::security::certs::{self, LoadOptions};
/// // vidgear writes its secret files 0644.
/// let keys = certs::load_keypair_with(
///     "/home/me/.vidgear/keys/private_keys/server.key_secret",
///     LoadOptions::new().allow_insecure_permissions(true),
/// )?;
/// # Ok::<(), certs::CertError>(())
/// ```
pub fn load_keypair_with(
    secret_path: impl AsRef<Path>,
    options: LoadOptions,
) -> Result<CurveKeyPair, CertError> {
    let path = secret_path.as_ref();
    let cert = load(path, options, true)?;
    match cert.secret {
        Some(secret) => Ok(CurveKeyPair {
            public: cert.public,
            secret,
        }),
        None => Err(CertError::MissingSecretKey {
            path: path.to_path_buf(),
        }),
    }
}

fn load(path: &Path, options: LoadOptions, want_secret: bool) -> Result<Certificate, CertError> {
    let file = File::open(path).map_err(io_err(path))?;
    // One handle for the checks and the read: what is checked is what is read.
    let meta = file.metadata().map_err(io_err(path))?;
    if meta.is_dir() {
        return Err(CertError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "is a folder, not a file"),
        });
    }
    let mut bytes = Vec::new();
    let read = file
        .take(MAX_CERT_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path));
    let result = read.and_then(|_| {
        if bytes.len() as u64 > MAX_CERT_LEN {
            return Err(syntax(
                path,
                0,
                format!("larger than {MAX_CERT_LEN} bytes; not a certificate"),
            ));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| syntax(path, 0, "not UTF-8 text; not a certificate".into()))?;
        parse(path, text, want_secret)
    });
    // The buffer may hold a secret key: wipe it.
    bytes.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&bytes);
    let cert = result?;
    if want_secret && cert.secret.is_some() && !options.allow_insecure_permissions {
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CertError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(cert)
}

fn syntax(path: &Path, line: usize, message: String) -> CertError {
    CertError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Parses a ZPL certificate: top-level section names (`metadata`, `curve`)
/// and indented `name = value` lines under them; `#` starts a comment line.
fn parse(path: &Path, text: &str, want_secret: bool) -> Result<Certificate, CertError> {
    let mut section = String::new();
    let mut public: Option<(usize, CurvePublicKey)> = None;
    let mut secret: Option<(usize, CurveSecretKey)> = None;
    let mut metadata = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if !indented {
            // A section (`curve`), or a top-level `name = value`.
            section = match line.split_once('=') {
                Some(_) => String::new(),
                None => line.to_string(),
            };
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            if section == "curve" {
                return Err(syntax(
                    path,
                    n,
                    format!("expected `name = value`, found {line:?}"),
                ));
            }
            continue; // a nested section elsewhere: not ours to judge
        };
        let name = name.trim();
        match (section.as_str(), name) {
            ("curve", "public-key") => {
                if let Some((first, _)) = public {
                    return Err(syntax(
                        path,
                        n,
                        format!("second public-key (the first is on line {first})"),
                    ));
                }
                let v = value_of(path, n, value)?;
                let key = CurvePublicKey::from_z85(v).map_err(|e| {
                    syntax(
                        path,
                        n,
                        format!("public-key is not a 40-character Z85 key: {e}"),
                    )
                })?;
                public = Some((n, key));
            }
            ("curve", "secret-key") => {
                if !want_secret {
                    continue;
                }
                if let Some((first, _)) = secret {
                    return Err(syntax(
                        path,
                        n,
                        format!("second secret-key (the first is on line {first})"),
                    ));
                }
                let v = value_of(path, n, value)?;
                // No details of the decoding error: they would quote the secret.
                let key = CurveSecretKey::from_z85(v).map_err(|_| {
                    syntax(
                        path,
                        n,
                        format!(
                            "secret-key is not a 40-character Z85 key ({} characters)",
                            v.chars().count()
                        ),
                    )
                })?;
                secret = Some((n, key));
            }
            ("metadata", _) => {
                // pyzmq writes metadata values unquoted; take them as they are.
                let v = value.trim();
                let v = match value_of(path, n, v) {
                    Ok(q) if v.starts_with(['"', '\'']) => q,
                    _ => v,
                };
                metadata.push((name.to_string(), v.to_string()));
            }
            _ => {}
        }
    }
    let Some((public_line, public)) = public else {
        return Err(CertError::MissingPublicKey {
            path: path.to_path_buf(),
        });
    };
    if let Some((_, s)) = &secret {
        let derived = s.public_key();
        if derived != public {
            return Err(CertError::KeyMismatch {
                path: path.to_path_buf(),
                line: public_line,
                found: public,
                derived,
            });
        }
    }
    Ok(Certificate {
        public,
        secret: secret.map(|(_, s)| s),
        metadata,
    })
}

/// A ZPL value: `"quoted"` or `'quoted'` (then optionally a `#` comment), or
/// the rest of the line. Z85 keys may contain `#`, so an unquoted value has
/// no trailing comment.
fn value_of<'a>(path: &Path, line: usize, value: &'a str) -> Result<&'a str, CertError> {
    let value = value.trim();
    let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(value);
    };
    let rest = &value[1..];
    let Some(end) = rest.find(quote) else {
        return Err(syntax(path, line, format!("missing closing {quote}")));
    };
    let after = rest[end + 1..].trim_start();
    if !after.is_empty() && !after.starts_with('#') {
        return Err(syntax(
            path,
            line,
            format!("unexpected text after the closing {quote}: {after:?}"),
        ));
    }
    Ok(&rest[..end])
}

/// The public keys of every `*.key` certificate in `dir`, sorted by path.
/// Other files, `*.key_secret` files, hidden files and folders are skipped.
///
/// # Errors
/// The folder cannot be read, or one of its `*.key` files cannot be loaded
/// (the error names that file).
pub fn load_public_keys_dir(
    dir: impl AsRef<Path>,
) -> Result<Vec<(PathBuf, CurvePublicKey)>, CertError> {
    let (keys, mut errors) = scan_public_keys_dir(dir.as_ref())?;
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// Certificate paths and their public keys.
pub(crate) type PublicKeys = Vec<(PathBuf, CurvePublicKey)>;

/// As [`load_public_keys_dir`], but a bad file is reported and skipped
/// instead of failing the whole folder.
pub(crate) fn scan_public_keys_dir(dir: &Path) -> Result<(PublicKeys, Vec<CertError>), CertError> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if is_public_cert_name(&entry.file_name()) {
            paths.push(entry.path());
        }
    }
    paths.sort();
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        // Follows symbolic links; skips folders named `*.key`.
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => continue,
            _ => {}
        }
        match load_public(&path) {
            Ok(key) => keys.push((path, key)),
            Err(e) => errors.push(e),
        }
    }
    Ok((keys, errors))
}

/// `*.key`, not hidden (editors' and our own temporary files are).
pub(crate) fn is_public_cert_name(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| {
        n.len() > PUBLIC_SUFFIX.len() && n.ends_with(PUBLIC_SUFFIX) && !n.starts_with('.')
    })
}

mod layout;
mod write;

#[cfg(test)]
#[allow(unused_imports)]
use layout::*;
#[cfg(test)]
#[allow(unused_imports)]
use write::*;

pub use layout::{hostname, KeyFiles, Layout, Mode};
pub(crate) use write::civil_from_days;
pub use write::{write_certificates, write_public_certificate, write_secret_certificate};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_844), (2024, 5, 1));
    }

    #[test]
    fn values() {
        let p = Path::new("x");
        assert_eq!(value_of(p, 1, " \"ab#c\"  # note").unwrap(), "ab#c");
        assert_eq!(value_of(p, 1, " 'abc' ").unwrap(), "abc");
        assert_eq!(value_of(p, 1, " a#b ").unwrap(), "a#b");
        assert!(value_of(p, 1, " \"abc").is_err());
        assert!(value_of(p, 1, " \"abc\" x").is_err());
    }
}
