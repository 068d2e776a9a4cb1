//! Where key files live by convention: sqlite_rx's `~/.curve` naming,
//! vidgear's `keys/{public_keys,private_keys}` folders, or a plain folder.

#[allow(unused_imports)]
use super::write::*;
#[allow(unused_imports)]
use super::*;

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
    /// [`CurveAllowList`](crate::security::CurveAllowList)).
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

pub(super) fn check_file_stem(id: &str) -> Result<(), CertError> {
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

pub(super) fn home() -> Result<PathBuf, CertError> {
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
