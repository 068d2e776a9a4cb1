//! Writing certificate files: pyzmq/czmq ZPL text, written atomically with
//! secret files `0600` inside `0700` folders, never replacing a file unless
//! asked.

#[allow(unused_imports)]
use super::*;

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

pub(super) const PUBLIC_BANNER: &str = "\
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange. Store public certificates in your home
#   directory, in the .curve subdirectory.
";

pub(super) const SECRET_BANNER: &str = "\
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.
";

pub(super) fn render(
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
pub(super) fn check_metadata(metadata: &[(&str, &str)]) -> Result<(), CertError> {
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
pub(super) fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    force: bool,
) -> Result<(), CertError> {
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
pub(super) fn place(tmp: &Path, path: &Path, force: bool) -> Result<(), CertError> {
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
pub(super) fn create_private_dir(dir: &Path) -> Result<(), CertError> {
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
pub(super) fn utc_now() -> String {
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
