//! NetGear's secure modes and its key folder.
//!
//! vidgear keeps CURVE certificates in `<base>/.vidgear/keys/public_keys/
//! {server,client}.key` and `…/private_keys/{server,client}.key_secret`
//! (`<base>` is the home folder or `custom_cert_location`; `.vidgear` is
//! appended unless the path already ends in it). This module reads and
//! writes that layout through ironhouse's [`certs`] module, so files made
//! here work in NetGear and the other way round.
//!
//! Better than NetGear:
//! - each side loads and, when missing, makes only what it needs: the
//!   receiver (CURVE server) its own pair; the sender (CURVE client) its own
//!   pair plus the receiver's **public** key. No secret key ever needs
//!   copying between machines;
//! - files are written `0600` in `0700` folders; secret files others can
//!   read are refused unless allowed;
//! - IronHouse admits the clients whose `.key` files are in the allow-list
//!   folder (by default `public_keys/`, as NetGear does), whatever the bind
//!   address — NetGear's extra IP allow-list rejects every sender when the
//!   receiver keeps its default address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ironhouse::security::certs::{self, KeyFiles, Layout, LoadOptions, Mode};
use ironhouse::security::CurveAllowList;
use ironhouse::{CurveKeyPair, CurvePublicKey, Security};

use crate::FrameError;

/// NetGear's `secure_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecureMode {
    /// 0: no security (ZMTP NULL).
    #[default]
    Grassland,
    /// 1: CURVE; the sender authenticates the receiver, any sender admitted.
    StoneHouse,
    /// 2: CURVE; and the receiver admits only allow-listed senders.
    IronHouse,
}

impl SecureMode {
    /// From NetGear's number (0, 1, 2).
    pub fn from_number(n: u8) -> Option<SecureMode> {
        match n {
            0 => Some(SecureMode::Grassland),
            1 => Some(SecureMode::StoneHouse),
            2 => Some(SecureMode::IronHouse),
            _ => None,
        }
    }

    /// NetGear's number.
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// A vidgear key folder (`…/.vidgear`).
///
/// ```
/// use ironhouse_frames::KeyStore;
/// let ks = KeyStore::at("/srv/cam");
/// assert_eq!(ks.dir(), std::path::Path::new("/srv/cam/.vidgear"));
/// assert_eq!(ks.public_keys_dir(), std::path::Path::new("/srv/cam/.vidgear/keys/public_keys"));
/// ```
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
    allow_insecure_permissions: bool,
    allow_list: Option<PathBuf>,
}

impl KeyStore {
    /// `~/.vidgear`, NetGear's default.
    ///
    /// # Errors
    /// [`FrameError::Keys`] when `HOME` is not set.
    pub fn default_location() -> Result<KeyStore, FrameError> {
        match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => Ok(KeyStore::at(h)),
            _ => Err(FrameError::Keys(certs::CertError::NoHome)),
        }
    }

    /// NetGear's `custom_cert_location`: `.vidgear` is appended unless the
    /// path already ends in it.
    pub fn at(location: impl AsRef<Path>) -> KeyStore {
        let loc = location.as_ref();
        let dir = if loc.file_name().is_some_and(|n| n == ".vidgear") {
            loc.to_path_buf()
        } else {
            loc.join(".vidgear")
        };
        KeyStore {
            dir,
            allow_insecure_permissions: false,
            allow_list: None,
        }
    }

    /// Accepts secret files that group or others can read (NetGear writes
    /// them with the umask, usually `0644`). Better: `chmod 600` them.
    pub fn allow_insecure_permissions(mut self, allow: bool) -> KeyStore {
        self.allow_insecure_permissions = allow;
        self
    }

    /// The IronHouse allow-list folder (client `.key` files); default
    /// [`KeyStore::public_keys_dir`], as NetGear.
    pub fn allow_list(mut self, dir: impl Into<PathBuf>) -> KeyStore {
        self.allow_list = Some(dir.into());
        self
    }

    /// The `.vidgear` folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `keys/public_keys`.
    pub fn public_keys_dir(&self) -> PathBuf {
        self.dir.join("keys").join("public_keys")
    }

    /// `keys/private_keys`.
    pub fn private_keys_dir(&self) -> PathBuf {
        self.dir.join("keys").join("private_keys")
    }

    fn files(&self, mode: Mode) -> Result<KeyFiles, FrameError> {
        Ok(Layout::Vidgear.key_files(Some(&self.dir), mode, "")?)
    }

    /// Makes new server and client pairs, replacing any (NetGear's
    /// `overwrite_cert`). Receivers and senders elsewhere need the new
    /// public keys.
    ///
    /// # Errors
    /// [`FrameError::Keys`] when the files cannot be written.
    pub fn regenerate(&self) -> Result<(), FrameError> {
        for mode in [Mode::Server, Mode::Client] {
            self.files(mode)?
                .write(&CurveKeyPair::generate(), &[], true)?;
        }
        Ok(())
    }

    /// The pair of `mode`, made (and written) when its secret file is missing.
    ///
    /// # Errors
    /// [`FrameError::Keys`] naming the file that cannot be read or written.
    pub fn load_or_create(&self, mode: Mode) -> Result<CurveKeyPair, FrameError> {
        let files = self.files(mode)?;
        if std::fs::symlink_metadata(&files.secret).is_err() {
            let keys = CurveKeyPair::generate();
            tracing::info!(file = %files.secret.display(), "made a new {mode} key pair");
            files.write(&keys, &[], true)?;
            return Ok(keys);
        }
        let opts = LoadOptions::new().allow_insecure_permissions(self.allow_insecure_permissions);
        Ok(certs::load_keypair_with(&files.secret, opts)?)
    }

    /// The receiver's public key (`public_keys/server.key`), all a sender
    /// needs of the receiver.
    ///
    /// # Errors
    /// [`FrameError::Keys`], saying where the receiver's `server.key` must go.
    pub fn server_public(&self) -> Result<CurvePublicKey, FrameError> {
        let files = self.files(Mode::Server)?;
        certs::load_public(&files.public).map_err(|e| match e {
            certs::CertError::Io { source, path } if source.kind() == std::io::ErrorKind::NotFound => {
                FrameError::Config(format!(
                    "no receiver public key at {}: copy the receiver's public_keys/server.key there (its secret key is not needed)",
                    path.display()
                ))
            }
            e => FrameError::Keys(e),
        })
    }

    /// The socket security of a receiver in `mode`.
    pub(crate) fn receiver_security(&self, mode: SecureMode) -> Result<Security, FrameError> {
        Ok(match mode {
            SecureMode::Grassland => Security::Null,
            SecureMode::StoneHouse => {
                let keys = self.load_or_create(Mode::Server)?;
                if self.allow_list.is_none() {
                    self.load_or_create(Mode::Client)?;
                }
                Security::stonehouse(keys)
            }
            SecureMode::IronHouse => {
                let keys = self.load_or_create(Mode::Server)?;
                if self.allow_list.is_none() {
                    // As NetGear: a folder with both pairs, so a sender on
                    // this machine (or a NetGear sharing the folder, which
                    // otherwise regenerates everything) finds its own.
                    self.load_or_create(Mode::Client)?;
                }
                let dir = self
                    .allow_list
                    .clone()
                    .unwrap_or_else(|| self.public_keys_dir());
                // Handshakes are rare: look at the folder at each one, so a
                // newly copied client key is admitted at once.
                Security::ironhouse(
                    keys,
                    CurveAllowList::new(dir).with_check_interval(Duration::ZERO),
                )
            }
        })
    }

    /// The socket security of a sender in `mode`.
    pub(crate) fn sender_security(&self, mode: SecureMode) -> Result<Security, FrameError> {
        Ok(match mode {
            SecureMode::Grassland => Security::Null,
            SecureMode::StoneHouse | SecureMode::IronHouse => {
                let server = self.server_public()?;
                Security::curve_client(self.load_or_create(Mode::Client)?, server)
            }
        })
    }
}
