//! Where `ironhouse cert` writes, and how: folders 0700, private keys 0600
//! (written to a temporary file and renamed, so a key is never readable by
//! others, even for a moment), nothing replaced without `--force`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

fn home() -> Result<PathBuf, crate::BoxError> {
    env_dir("HOME").ok_or_else(|| "HOME is not set; pass --dir".into())
}

/// `$XDG_CONFIG_HOME/ironhouse/tls`, or `~/.config/ironhouse/tls`.
pub fn default_dir() -> Result<PathBuf, crate::BoxError> {
    let base = match env_dir("XDG_CONFIG_HOME") {
        Some(d) => d,
        None => home()?.join(".config"),
    };
    Ok(base.join("ironhouse").join("tls"))
}

/// tlspyo's default credentials folder (platformdirs' `user_data_dir()` on
/// Linux): `$XDG_DATA_HOME/tlspyo/credentials`, or
/// `~/.local/share/tlspyo/credentials`.
pub fn tlspyo_dir() -> Result<PathBuf, crate::BoxError> {
    let base = match env_dir("XDG_DATA_HOME") {
        Some(d) => d,
        None => home()?.join(".local").join("share"),
    };
    Ok(base.join("tlspyo").join("credentials"))
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn make_dir(dir: &Path) -> Result<(), crate::BoxError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()).into())
}

/// Fails if any of `paths` exists and `force` is off.
pub fn refuse_overwrite(paths: &[&Path], force: bool) -> Result<(), crate::BoxError> {
    if force {
        return Ok(());
    }
    for p in paths {
        if p.symlink_metadata().is_ok() {
            return Err(format!(
                "{} already exists; not overwriting it (pass --force to replace it)",
                p.display()
            )
            .into());
        }
    }
    Ok(())
}

/// Writes `contents` to `path` with `mode`, through a temporary file in
/// the same folder created with that mode, then renamed over `path`.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), crate::BoxError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()).into());
    }
    Ok(())
}

/// Reads a file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, crate::BoxError> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a file", path.display()).into());
    }
    if meta.len() > limit {
        return Err(format!(
            "{}: {} bytes, more than the {} KiB a {what} may have; refusing it",
            path.display(),
            meta.len(),
            limit / 1024
        )
        .into());
    }
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// A file-name-safe form of a certificate name.
pub fn stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "cert".into()
    } else {
        s
    }
}
