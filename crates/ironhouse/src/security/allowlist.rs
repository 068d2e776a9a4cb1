//! IronHouse's allow-list: the CURVE clients whose public-key certificates
//! (`*.key`, see [`certs`](super::certs)) are in a folder, such as sqlite_rx's
//! `~/.curve/authorized_clients`.
//!
//! The folder is watched, not read once: adding a client's `.key` file admits
//! it and removing the file refuses it, without a restart. Each decision
//! checks, at most every 200 ms, a cheap fingerprint of the folder (its
//! modification time and each certificate's name, time, size and inode) and
//! rereads the certificates when it changed.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ironhouse_zmtp::CurvePublicKey;

use super::auth::{AuthDecision, AuthRequest, Authenticator};
use super::certs;

/// How often, at most, the folder is looked at.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// A file changed this recently may change again within the file system's
/// time granularity without its time changing: keep rereading until it is
/// older than this.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Admits CURVE clients whose public key has a certificate file (`*.key`)
/// in a folder (IronHouse); the user id is the file's stem (`alice` for
/// `alice.key`). Or a fixed set of keys ([`CurveAllowList::from_keys`]).
///
/// ```no_run
/// use ironhouse::security::{certs, CurveAllowList};
/// use ironhouse::Security;
/// let keys = certs::load_keypair("/home/me/.curve/id_server_myhost_curve.key_secret")?;
/// let security = Security::ironhouse(
///     keys,
///     CurveAllowList::new("/home/me/.curve/authorized_clients"),
/// );
/// # Ok::<(), certs::CertError>(())
/// ```
pub struct CurveAllowList {
    source: Source,
}

enum Source {
    Fixed(HashMap<CurvePublicKey, String>),
    Folder(Folder),
}

struct Folder {
    dir: PathBuf,
    interval: Duration,
    state: Mutex<FolderState>,
}

struct FolderState {
    checked: Option<Instant>,
    fingerprint: Option<Fingerprint>,
    /// Reread at the next check even if the fingerprint is the same.
    racy: bool,
    /// Key to user id, or why the folder could not be read.
    keys: Result<HashMap<CurvePublicKey, String>, String>,
}

/// What is compared to notice a change, cheaply (no file is opened).
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    dir: Result<Stamp, std::io::ErrorKind>,
    entries: Vec<(std::ffi::OsString, Option<Stamp>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: Option<SystemTime>,
    ctime: (i64, i64),
    len: u64,
    ino: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            mtime: meta.modified().ok(),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            len: meta.len(),
            ino: meta.ino(),
        }
    }

    /// Changed within [`RACY_WINDOW`] of `now` (or in the future).
    fn recent(&self, now: SystemTime) -> bool {
        let ctime = u64::try_from(self.ctime.0)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        [self.mtime, ctime]
            .into_iter()
            .flatten()
            .any(|t| now.duration_since(t).map_or(true, |age| age < RACY_WINDOW))
    }
}

fn fingerprint(dir: &Path) -> Fingerprint {
    let stamp = std::fs::metadata(dir)
        .map(|m| Stamp::of(&m))
        .map_err(|e| e.kind());
    let mut entries = Vec::new();
    if stamp.is_ok() {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for entry in rd.flatten() {
                let name = entry.file_name();
                if certs::is_public_cert_name(&name) {
                    // Follows symbolic links: a changed target counts.
                    let stamp = std::fs::metadata(entry.path()).ok().map(|m| Stamp::of(&m));
                    entries.push((name, stamp));
                }
            }
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Fingerprint {
        dir: stamp,
        entries,
    }
}

impl Fingerprint {
    fn recent(&self, now: SystemTime) -> bool {
        self.dir.as_ref().is_ok_and(|s| s.recent(now))
            || self
                .entries
                .iter()
                .any(|(_, s)| s.as_ref().is_some_and(|s| s.recent(now)))
    }
}

fn read_folder(dir: &Path) -> Result<HashMap<CurvePublicKey, String>, String> {
    match certs::scan_public_keys_dir(dir) {
        Ok((keys, errors)) => {
            for e in errors {
                tracing::warn!("allow-list: skipping a certificate: {e}");
            }
            let mut map = HashMap::new();
            for (path, key) in keys {
                let user = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // Sorted by path: the first file with a key names its user.
                map.entry(key).or_insert(user);
            }
            tracing::debug!(dir = %dir.display(), keys = map.len(), "allow-list read");
            Ok(map)
        }
        Err(e) => {
            let reason = format!(
                "the allow-list folder {} cannot be read: {}",
                dir.display(),
                match &e {
                    certs::CertError::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                }
            );
            tracing::warn!("{reason}");
            Err(reason)
        }
    }
}

impl Folder {
    fn lock(&self) -> MutexGuard<'_, FolderState> {
        // The state is always consistent: a panic elsewhere does not taint it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rereads the folder if it changed, at most once per interval.
    fn refresh(&self, state: &mut FolderState, force: bool) {
        let now = Instant::now();
        let due = force
            || state
                .checked
                .is_none_or(|t| now.duration_since(t) >= self.interval);
        if !due {
            return;
        }
        state.checked = Some(now);
        // Fingerprint first: a change during the read shows at the next check.
        let fp = fingerprint(&self.dir);
        if force || state.racy || state.fingerprint.as_ref() != Some(&fp) {
            state.keys = read_folder(&self.dir);
            state.racy = fp.recent(SystemTime::now());
            state.fingerprint = Some(fp);
        }
    }
}

impl CurveAllowList {
    /// Admits the clients with a certificate in `dir`. The folder is read
    /// now and again whenever it changes; a missing or unreadable folder
    /// denies every client (with a reason naming it) until it is fixed.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let folder = Folder {
            dir: dir.into(),
            interval: DEFAULT_CHECK_INTERVAL,
            state: Mutex::new(FolderState {
                checked: None,
                fingerprint: None,
                racy: false,
                keys: Ok(HashMap::new()),
            }),
        };
        {
            let mut state = folder.lock();
            folder.refresh(&mut state, true);
        }
        CurveAllowList {
            source: Source::Folder(folder),
        }
    }

    /// Admits exactly these keys (user id: the key in Z85).
    pub fn from_keys(keys: impl IntoIterator<Item = CurvePublicKey>) -> Self {
        CurveAllowList {
            source: Source::Fixed(keys.into_iter().map(|k| (k, k.to_z85())).collect()),
        }
    }

    /// How often, at most, the folder is checked for changes (200 ms by
    /// default). No effect on a fixed set.
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        if let Source::Folder(f) = &mut self.source {
            f.interval = interval;
        }
        self
    }

    /// Rereads the folder now.
    pub fn reload(&self) {
        if let Source::Folder(f) = &self.source {
            let mut state = f.lock();
            f.refresh(&mut state, true);
        }
    }

    /// The watched folder, if any.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            Source::Folder(f) => Some(&f.dir),
            Source::Fixed(_) => None,
        }
    }

    /// The admitted keys and their user ids, as of the last check.
    pub fn keys(&self) -> Vec<(String, CurvePublicKey)> {
        let mut v: Vec<_> = match &self.source {
            Source::Fixed(m) => m.iter().map(|(k, u)| (u.clone(), *k)).collect(),
            Source::Folder(f) => match &f.lock().keys {
                Ok(m) => m.iter().map(|(k, u)| (u.clone(), *k)).collect(),
                Err(_) => Vec::new(),
            },
        };
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl fmt::Debug for CurveAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Fixed(m) => write!(f, "CurveAllowList({} keys)", m.len()),
            Source::Folder(folder) => write!(f, "CurveAllowList({})", folder.dir.display()),
        }
    }
}

impl Authenticator for CurveAllowList {
    fn authenticate(&self, request: &AuthRequest) -> AuthDecision {
        if request.mechanism != "CURVE" {
            return AuthDecision::deny(format!(
                "the CURVE allow-list admits only CURVE clients, not {}",
                request.mechanism
            ));
        }
        let Some(key) = request.curve_key else {
            return AuthDecision::deny("no CURVE client key in the request");
        };
        match &self.source {
            Source::Fixed(m) => match m.get(&key) {
                Some(user) => AuthDecision::allow(user.clone()),
                None => AuthDecision::deny(format!("client key {key} is not in the allow-list")),
            },
            Source::Folder(folder) => {
                let mut state = folder.lock();
                folder.refresh(&mut state, false);
                match &state.keys {
                    Ok(m) => match m.get(&key) {
                        Some(user) => AuthDecision::allow(user.clone()),
                        None => AuthDecision::deny(format!(
                            "client key {key} is not in the allow-list {}",
                            folder.dir.display()
                        )),
                    },
                    // The server's configuration is at fault: ZAP's 500.
                    Err(reason) => AuthDecision::Deny {
                        status: 500,
                        reason: reason.clone(),
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhouse_zmtp::{CurveKeyPair, Metadata};

    fn request(mechanism: &'static str, key: Option<CurvePublicKey>) -> AuthRequest {
        AuthRequest {
            domain: String::new(),
            address: "tcp://127.0.0.1:1".into(),
            mechanism,
            curve_key: key,
            username: None,
            password: None,
            metadata: Metadata::new(),
            tls_peer: None,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let d = std::env::temp_dir().join(format!(
            "ironhouse-allowlist-unit-{}-{tag}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn fixed_set() {
        let a = CurveKeyPair::generate().public;
        let b = CurveKeyPair::generate().public;
        let list = CurveAllowList::from_keys([a]);
        assert_eq!(
            list.authenticate(&request("CURVE", Some(a))),
            AuthDecision::allow(a.to_z85())
        );
        assert_eq!(
            list.authenticate(&request("CURVE", Some(b))),
            AuthDecision::deny(format!("client key {b} is not in the allow-list"))
        );
        assert!(matches!(
            list.authenticate(&request("PLAIN", None)),
            AuthDecision::Deny { reason, .. } if reason.contains("only CURVE") && reason.contains("PLAIN")
        ));
        assert!(matches!(
            list.authenticate(&request("CURVE", None)),
            AuthDecision::Deny { .. }
        ));
    }

    #[test]
    fn folder_reload_and_missing_folder() {
        let dir = temp_dir("reload");
        let list = CurveAllowList::new(&dir).with_check_interval(Duration::ZERO);
        let alice = CurveKeyPair::generate().public;
        match list.authenticate(&request("CURVE", Some(alice))) {
            AuthDecision::Deny { status, reason } => {
                assert_eq!(status, 500);
                assert!(reason.contains(&dir.display().to_string()), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::create_dir_all(&dir).unwrap();
        certs::write_public_certificate(dir.join("alice.key"), &alice, &[], false).unwrap();
        assert_eq!(
            list.authenticate(&request("CURVE", Some(alice))),
            AuthDecision::allow("alice")
        );
        std::fs::remove_file(dir.join("alice.key")).unwrap();
        assert_eq!(
            list.authenticate(&request("CURVE", Some(alice))),
            AuthDecision::deny(format!(
                "client key {alice} is not in the allow-list {}",
                dir.display()
            ))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn same_length_rewrite_in_place_is_noticed() {
        // Rewritten within the file system's time granularity: same name,
        // size and (possibly) time. The racy window forces the reread.
        let dir = temp_dir("racy");
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (
            CurveKeyPair::generate().public,
            CurveKeyPair::generate().public,
        );
        certs::write_public_certificate(dir.join("c.key"), &a, &[], false).unwrap();
        let list = CurveAllowList::new(&dir).with_check_interval(Duration::ZERO);
        assert_eq!(list.keys(), vec![("c".to_string(), a)]);
        let text = std::fs::read_to_string(dir.join("c.key"))
            .unwrap()
            .replace(&a.to_z85(), &b.to_z85());
        std::fs::write(dir.join("c.key"), text).unwrap();
        assert_eq!(
            list.authenticate(&request("CURVE", Some(b))),
            AuthDecision::allow("c")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
