//! `ironhouse keygen`, run as a process. Every run gets `--dir` in a fresh
//! temp folder and a HOME that must stay untouched.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use ironhouse::security::certs;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "ironhouse-keygen-{}-{}-{nanos}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `ironhouse keygen <args>` with a decoy HOME inside `tmp`.
fn keygen(tmp: &TempDir, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ironhouse"))
        .arg("keygen")
        .args(args)
        .env("HOME", tmp.join("decoy-home"))
        .output()
        .expect("run ironhouse");
    assert!(
        !tmp.join("decoy-home").exists(),
        "keygen touched HOME with {args:?}"
    );
    out
}

/// stdout's `<what> <value>` lines.
fn report(out: &Output) -> HashMap<String, String> {
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("`<what> <value>` line");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The written pair loads, matches the printed key, and has the right modes.
fn check_pair(r: &HashMap<String, String>, public: &Path, secret: &Path) {
    assert_eq!(Path::new(&r["public-file"]), public);
    assert_eq!(Path::new(&r["secret-file"]), secret);
    let keys = certs::load_keypair(secret).unwrap();
    assert_eq!(keys.public.to_z85(), r["public-key"]);
    assert_eq!(certs::load_public(public).unwrap(), keys.public);
    assert_eq!(mode_of(secret), 0o600);
}

#[test]
fn sqlite_rx_server_is_the_default() {
    let tmp = TempDir::new("sqlite-server");
    let dir = tmp.join("curve");
    let r = report(&keygen(&tmp, &["--dir", dir.to_str().unwrap()]));
    let host = certs::hostname().unwrap();
    check_pair(
        &r,
        &dir.join(format!("id_server_{host}_curve.key")),
        &dir.join(format!("id_server_{host}_curve.key_secret")),
    );
    let authorized = dir.join("authorized_clients");
    assert_eq!(Path::new(&r["authorized-clients"]), authorized);
    assert!(authorized.is_dir());
    assert_eq!(mode_of(&authorized), 0o700);
    assert_eq!(mode_of(&dir), 0o700);
}

#[test]
fn sqlite_rx_client() {
    let tmp = TempDir::new("sqlite-client");
    let dir = tmp.join("curve");
    let r = report(&keygen(
        &tmp,
        &["--mode", "client", "--dir", dir.to_str().unwrap()],
    ));
    let host = certs::hostname().unwrap();
    check_pair(
        &r,
        &dir.join(format!("id_client_{host}_curve.key")),
        &dir.join(format!("id_client_{host}_curve.key_secret")),
    );
    assert!(!r.contains_key("authorized-clients"));
    assert!(!dir.join("authorized_clients").exists());
}

#[test]
fn refuses_to_overwrite_without_force() {
    let tmp = TempDir::new("force");
    let dir = tmp.join("keys");
    let args = [
        "--layout",
        "plain",
        "--id",
        "srv",
        "--dir",
        dir.to_str().unwrap(),
    ];
    let first = report(&keygen(&tmp, &args));

    let out = keygen(&tmp, &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--force"), "{err}");
    assert!(
        err.contains(&dir.join("srv.key_secret").display().to_string()),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // Untouched.
    let keys = certs::load_keypair(dir.join("srv.key_secret")).unwrap();
    assert_eq!(keys.public.to_z85(), first["public-key"]);

    let mut forced = args.to_vec();
    forced.push("--force");
    let second = report(&keygen(&tmp, &forced));
    assert_ne!(second["public-key"], first["public-key"]);
    check_pair(&second, &dir.join("srv.key"), &dir.join("srv.key_secret"));
}

#[test]
fn vidgear_layout() {
    let tmp = TempDir::new("vidgear");
    let dir = tmp.join(".vidgear");
    for mode in ["server", "client"] {
        let r = report(&keygen(
            &tmp,
            &[
                "--layout",
                "vidgear",
                "--mode",
                mode,
                "--dir",
                dir.to_str().unwrap(),
            ],
        ));
        check_pair(
            &r,
            &dir.join(format!("keys/public_keys/{mode}.key")),
            &dir.join(format!("keys/private_keys/{mode}.key_secret")),
        );
    }
    // The public folder holds only public certificates.
    let publics = certs::load_public_keys_dir(dir.join("keys/public_keys")).unwrap();
    assert_eq!(publics.len(), 2);
}

#[test]
fn plain_layout_defaults_its_id() {
    let tmp = TempDir::new("plain");
    let dir = tmp.join("p");
    let r = report(&keygen(
        &tmp,
        &["--layout", "plain", "--dir", dir.to_str().unwrap()],
    ));
    check_pair(
        &r,
        &dir.join("ironhouse.key"),
        &dir.join("ironhouse.key_secret"),
    );
}

#[test]
fn bad_arguments_fail() {
    let tmp = TempDir::new("bad");
    let dir = tmp.join("d");
    let d = dir.to_str().unwrap();
    for args in [
        &["--mode", "bogus", "--dir", d][..],
        &["--layout", "bogus", "--dir", d],
        &["--id", "x", "--dir", d],
        &["--layout", "plain", "--id", "../escape", "--dir", d],
    ] {
        let out = keygen(&tmp, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
    assert!(!tmp.join("escape.key").exists());
}
