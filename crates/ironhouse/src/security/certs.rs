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

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Writes `<dir>/<name>.key` (the public key) and `<dir>/<name>.key_secret`
/// (both keys, mode `0600`), like pyzmq's `create_certificates`. `dir` is
/// created (mode `0700`) if missing. `metadata` goes in both files' `metadata`
/// section. Returns the public and the secret file's paths.
///
/// Never overwrites: use [`KeyFiles::write`] with `force` for that.
///
/// # Errors
/// [`CertError::AlreadyExists`] if either file exists; I/O errors; a `name`
/// or metadata that cannot be written.
pub fn write_certificates(
    dir: impl AsRef<Path>,
    name: &str,
    keys: &CurveKeyPair,
    metadata: &[(&str, &str)],
) -> Result<(PathBuf, PathBuf), CertError> {
    let files = Layout::Plain.key_files(Some(dir.as_ref()), Mode::Server, name)?;
    files.write(keys, metadata, false)?;
    Ok((files.public, files.secret))
}

/// Writes a public certificate at `path` (mode `0644`), atomically.
///
/// # Errors
/// [`CertError::AlreadyExists`] unless `force`; I/O errors.
pub fn write_public_certificate(
    path: impl AsRef<Path>,
    public: &CurvePublicKey,
    metadata: &[(&str, &str)],
    force: bool,
) -> Result<(), CertError> {
    check_metadata(metadata)?;
    let text = render(PUBLIC_BANNER, public, None, metadata);
    write_atomic(path.as_ref(), text.as_bytes(), 0o644, force)
}

/// Writes a secret certificate (both keys) at `path` with mode `0600`,
/// atomically: it is never readable by others, even for an instant.
///
/// # Errors
/// [`CertError::AlreadyExists`] unless `force`; I/O errors.
pub fn write_secret_certificate(
    path: impl AsRef<Path>,
    keys: &CurveKeyPair,
    metadata: &[(&str, &str)],
    force: bool,
) -> Result<(), CertError> {
    check_metadata(metadata)?;
    let mut text = render(SECRET_BANNER, &keys.public, Some(&keys.secret), metadata);
    let result = write_atomic(path.as_ref(), text.as_bytes(), 0o600, force);
    // Wipe the text that held the secret key.
    let mut bytes = std::mem::take(&mut text).into_bytes();
    bytes.iter_mut().for_each(|b| *b = 0);
    std::hint::black_box(&bytes);
    result
}

const PUBLIC_BANNER: &str = "\
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange. Store public certificates in your home
#   directory, in the .curve subdirectory.
";

const SECRET_BANNER: &str = "\
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.
";

fn render(
    banner: &str,
    public: &CurvePublicKey,
    secret: Option<&CurveSecretKey>,
    metadata: &[(&str, &str)],
) -> String {
    let mut s = format!(
        "#   ****  Generated on {} by ironhouse  ****\n{banner}\nmetadata\n",
        utc_now()
    );
    for (k, v) in metadata {
        s.push_str(&format!("    {k} = \"{v}\"\n"));
    }
    s.push_str("curve\n");
    s.push_str(&format!("    public-key = \"{}\"\n", public.to_z85()));
    if let Some(secret) = secret {
        s.push_str(&format!("    secret-key = \"{}\"\n", secret.to_z85()));
    }
    s
}

/// Metadata must survive a round trip through ZPL, czmq and pyzmq's loader
/// (which takes any line starting with `public-key` for the key).
fn check_metadata(metadata: &[(&str, &str)]) -> Result<(), CertError> {
    for (k, v) in metadata {
        let name_ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "$-_@.&+/".contains(c));
        if !name_ok {
            return Err(CertError::Invalid(format!(
                "metadata name {k:?}: use letters, digits and $-_@.&+/"
            )));
        }
        if k.starts_with("public-key") || k.starts_with("secret-key") {
            return Err(CertError::Invalid(format!(
                "metadata name {k:?} would be read as a key"
            )));
        }
        if v.chars().any(|c| c == '"' || c.is_control()) {
            return Err(CertError::Invalid(format!(
                "metadata {k:?}: the value may not contain quotes or control characters"
            )));
        }
    }
    Ok(())
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to a new hidden file in `path`'s folder, created with
/// `mode`, then moves it into place: readers see all or nothing, and the
/// file never has looser permissions than `mode`.
fn write_atomic(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<(), CertError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(CertError::Invalid(format!(
            "{}: not a file name",
            path.display()
        )));
    };
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(CertError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(path))?;
    let result = (|| {
        // The umask may have removed bits; set exactly `mode` (never more
        // than the creation mode, so there is no window).
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    })()
    .map_err(io_err(path))
    .and_then(|()| {
        drop(file);
        place(&tmp, path, force)
    });
    let _ = fs::remove_file(&tmp);
    if result.is_ok() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    result
}

/// Moves `tmp` to `path`: `rename` when replacing is allowed; otherwise a
/// hard link, which fails if `path` appeared meanwhile.
fn place(tmp: &Path, path: &Path, force: bool) -> Result<(), CertError> {
    if force {
        return fs::rename(tmp, path).map_err(io_err(path));
    }
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(CertError::AlreadyExists {
            path: path.to_path_buf(),
        }),
        // File systems without hard links: check, then rename.
        Err(_) => {
            if fs::symlink_metadata(path).is_ok() {
                return Err(CertError::AlreadyExists {
                    path: path.to_path_buf(),
                });
            }
            fs::rename(tmp, path).map_err(io_err(path))
        }
    }
}

/// Creates `dir` and its missing parents with mode `0700`. Existing folders
/// are left as they are.
fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    // The umask may have removed bits; make it exactly 0700.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// `YYYY-MM-DD hh:mm:ss UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (era arithmetic:
/// 400-year eras of 146097 days, years starting on March 1st).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------

/// Which side a key pair is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The side that binds and authenticates clients.
    Server,
    /// The side that connects.
    Client,
}

impl Mode {
    /// `"server"` or `"client"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Server => "server",
            Mode::Client => "client",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Folder and file naming of other tools' key stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// sqlite_rx's `curve-keygen`: `<dir>/id_<mode>_<hostname>_curve.key` and
    /// `.key_secret`, `dir` defaulting to `~/.curve`. Servers also get an
    /// `authorized_clients/` folder for client public keys (see
    /// [`CurveAllowList`](super::CurveAllowList)).
    SqliteRx,
    /// vidgear's NetGear: public certificates in
    /// `<dir>/keys/public_keys/<mode>.key`, secret ones in
    /// `<dir>/keys/private_keys/<mode>.key_secret`, `dir` defaulting to
    /// `~/.vidgear`.
    Vidgear,
    /// `<dir>/<id>.key` and `<dir>/<id>.key_secret`, `dir` defaulting to the
    /// current folder.
    Plain,
}

/// Where a key pair's files go.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyFiles {
    /// The public certificate.
    pub public: PathBuf,
    /// The secret certificate.
    pub secret: PathBuf,
    /// A folder for client public keys to create next to them (sqlite_rx
    /// servers).
    pub authorized_clients: Option<PathBuf>,
}

impl Layout {
    /// The files of a key pair in this layout. `dir`: the base folder, or
    /// `None` for the layout's default. `mode` names the files in the
    /// sqlite_rx and vidgear layouts; `id` names them in the plain one.
    ///
    /// # Errors
    /// No home folder or host name when needed; an `id` that is not a plain
    /// file name.
    ///
    /// ```
    /// use ironhouse::security::certs::{Layout, Mode};
    /// use std::path::Path;
    /// let f = Layout::Vidgear.key_files(Some(Path::new("/srv")), Mode::Client, "")?;
    /// assert_eq!(f.public, Path::new("/srv/keys/public_keys/client.key"));
    /// assert_eq!(f.secret, Path::new("/srv/keys/private_keys/client.key_secret"));
    /// # Ok::<(), ironhouse::security::certs::CertError>(())
    /// ```
    pub fn key_files(
        self,
        dir: Option<&Path>,
        mode: Mode,
        id: &str,
    ) -> Result<KeyFiles, CertError> {
        let base = |default: &str| -> Result<PathBuf, CertError> {
            match dir {
                Some(d) => Ok(d.to_path_buf()),
                None => home().map(|h| h.join(default)),
            }
        };
        Ok(match self {
            Layout::SqliteRx => {
                let dir = base(".curve")?;
                let stem = format!("id_{mode}_{}_curve", hostname()?);
                KeyFiles {
                    public: dir.join(format!("{stem}{PUBLIC_SUFFIX}")),
                    secret: dir.join(format!("{stem}{SECRET_SUFFIX}")),
                    authorized_clients: (mode == Mode::Server)
                        .then(|| dir.join("authorized_clients")),
                }
            }
            Layout::Vidgear => {
                let keys = base(".vidgear")?.join("keys");
                KeyFiles {
                    public: keys
                        .join("public_keys")
                        .join(format!("{mode}{PUBLIC_SUFFIX}")),
                    secret: keys
                        .join("private_keys")
                        .join(format!("{mode}{SECRET_SUFFIX}")),
                    authorized_clients: None,
                }
            }
            Layout::Plain => {
                check_file_stem(id)?;
                let dir = dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                KeyFiles {
                    public: dir.join(format!("{id}{PUBLIC_SUFFIX}")),
                    secret: dir.join(format!("{id}{SECRET_SUFFIX}")),
                    authorized_clients: None,
                }
            }
        })
    }
}

impl KeyFiles {
    /// Writes the pair: folders created `0700`, the secret certificate `0600`,
    /// the public one `0644`, and `authorized_clients` (`0700`) if the layout
    /// has one. Without `force`, nothing is written if either file exists.
    ///
    /// # Errors
    /// [`CertError::AlreadyExists`] naming the existing file; I/O errors.
    pub fn write(
        &self,
        keys: &CurveKeyPair,
        metadata: &[(&str, &str)],
        force: bool,
    ) -> Result<(), CertError> {
        check_metadata(metadata)?;
        if !force {
            for p in [&self.secret, &self.public] {
                if fs::symlink_metadata(p).is_ok() {
                    return Err(CertError::AlreadyExists { path: p.clone() });
                }
            }
        }
        for p in [&self.secret, &self.public] {
            if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent)?;
            }
        }
        write_secret_certificate(&self.secret, keys, metadata, force)?;
        write_public_certificate(&self.public, &keys.public, metadata, force)?;
        if let Some(dir) = &self.authorized_clients {
            create_private_dir(dir)?;
        }
        Ok(())
    }
}

fn check_file_stem(id: &str) -> Result<(), CertError> {
    if id.is_empty()
        || id.starts_with('.')
        || id.contains(['/', '\0'])
        || id.chars().any(char::is_control)
    {
        return Err(CertError::Invalid(format!(
            "{id:?} is not a usable key name: give a plain file name without '/' or a leading '.'"
        )));
    }
    Ok(())
}

fn home() -> Result<PathBuf, CertError> {
    match std::env::var_os("HOME") {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => Err(CertError::NoHome),
    }
}

/// This machine's host name, as `uname -n` (and Python's
/// `socket.gethostname()`, which sqlite_rx uses) gives it.
pub fn hostname() -> Result<String, CertError> {
    let from_file = |p: &str| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    [
        from_file("/proc/sys/kernel/hostname"),
        from_file("/etc/hostname"),
        std::env::var("HOSTNAME").ok().map(|s| s.trim().to_string()),
    ]
    .into_iter()
    .flatten()
    .find(|h| !h.is_empty() && check_file_stem(h).is_ok())
    .ok_or(CertError::NoHostname)
}

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
