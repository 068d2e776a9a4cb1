//! `ironhouse socket` security flags, ironhouse against ironhouse over
//! loopback TCP (no Python): StoneHouse and IronHouse CURVE, the reloading
//! allow-list folder, PLAIN with and without `--allow-plaintext-password`,
//! refusals with their reasons, and the flag checks.
//!
//! Every process is bounded (`--timeout`, the harness's waits) and killed
//! when its [`Peer`] is dropped.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{authorize, keygen, KeyPair, Peer, Spec, TempDir};

const ERR: &str = "ironhouse: error:";

fn spawn(spec: Spec) -> Peer {
    spec.spawn_ironhouse()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

struct Keys {
    _dir: TempDir,
    server: KeyPair,
    alice: KeyPair,
    mallory: KeyPair,
}

fn keys(tag: &str) -> Keys {
    let dir = TempDir::new(tag);
    let server = keygen(&dir.path, "server");
    let alice = keygen(&dir.path, "alice");
    let mallory = keygen(&dir.path, "mallory");
    Keys {
        _dir: dir,
        server,
        alice,
        mallory,
    }
}

// ------------------------------------------------------------------ CURVE

/// StoneHouse: any client that knows the server's public key (given as the
/// `.key` file or as Z85) gets through, both ways. One client after the
/// other: see [`stonehouse_two_clients_at_once`].
#[test]
fn stonehouse_req_rep() {
    let k = keys("stone");
    let mut rep = spawn(
        Spec::new("rep")
            .bind_any()
            .echo()
            .curve_server(&k.server.secret_file),
    );
    let ep = rep.bound();
    let mut by_file = spawn(
        Spec::new("req")
            .connect(&ep)
            .curve_client(&k.alice.secret_file, path(&k.server.public_file))
            .timeout(10.0),
    );
    by_file.send("hello\tcurve");
    by_file.expect_lines(&["hello\tcurve"]);
    by_file.send("");
    by_file.expect_lines(&[""]);
    rep.expect_lines(&["hello\tcurve", ""]);
    by_file.close_stdin();
    by_file.expect_success();

    let mut by_z85 = spawn(
        Spec::new("req")
            .connect(&ep)
            .curve_client(&k.mallory.secret_file, &k.server.public_key)
            .timeout(10.0),
    );
    by_z85.send("z85");
    by_z85.expect_lines(&["z85"]);
    rep.expect_lines(&["z85"]);
    by_z85.close_stdin();
    by_z85.expect_success();
}

/// Two clients connected at the same time are both served.
#[test]
fn stonehouse_two_clients_at_once() {
    let k = keys("stone2");
    let mut pull = spawn(
        Spec::new("pull")
            .bind_any()
            .curve_server(&k.server.secret_file),
    );
    let ep = pull.bound();
    let client = |who: &KeyPair| {
        spawn(
            Spec::new("push")
                .connect(&ep)
                .curve_client(&who.secret_file, &k.server.public_key)
                .timeout(10.0),
        )
    };
    let mut alice = client(&k.alice);
    alice.send("alice 1");
    pull.expect_lines(&["alice 1"]);
    let mut mallory = client(&k.mallory);
    mallory.send("mallory 1");
    pull.expect_lines(&["mallory 1"]);
    alice.send("alice 2");
    pull.expect_lines(&["alice 2"]);
}

/// IronHouse: a client whose `.key` is in the folder gets through; another
/// is refused, the server logs why and the client's timeout says why.
#[test]
fn ironhouse_allows_listed_and_refuses_others() {
    let k = keys("iron");
    let allowed = TempDir::new("iron-allowed");
    authorize(&allowed.path, "alice", &k.alice);
    let mut pull = spawn(
        Spec::new("pull")
            .bind_any()
            .curve_server(&k.server.secret_file)
            .authorized(&allowed.path),
    );
    let ep = pull.bound();
    let mut alice = spawn(
        Spec::new("push")
            .connect(&ep)
            .curve_client(&k.alice.secret_file, path(&k.server.public_file))
            .timeout(10.0),
    );
    alice.send("from alice");
    pull.expect_lines(&["from alice"]);
    alice.close_stdin();
    alice.expect_success();

    let mut mallory = spawn(
        Spec::new("push")
            .connect(&ep)
            .curve_client(&k.mallory.secret_file, path(&k.server.public_file))
            .timeout(3.0),
    );
    mallory.send("from mallory");
    mallory.expect_error(&[
        ERR,
        "timed out",
        "last handshake failure",
        &k.mallory.public_key,
        "is not in the allow-list",
    ]);
    pull.expect_stderr(&[
        "refused: client key",
        &k.mallory.public_key,
        "is not in the allow-list",
    ]);
    pull.expect_no_line(Duration::from_millis(300));
}

/// The `--authorized` folder is watched: a key added is admitted and a key
/// removed is refused, without restarting the server.
#[test]
fn authorized_folder_changes_apply_without_restart() {
    let k = keys("reload");
    let allowed = TempDir::new("reload-allowed");
    let mut pull = spawn(
        Spec::new("pull")
            .bind_any()
            .curve_server(&k.server.secret_file)
            .authorized(&allowed.path),
    );
    let ep = pull.bound();
    let alice = || {
        Spec::new("push")
            .connect(&ep)
            .curve_client(&k.alice.secret_file, &k.server.public_key)
    };

    let mut before = spawn(alice().timeout(2.0));
    before.send("too early");
    before.expect_error(&[ERR, "is not in the allow-list"]);

    let cert = authorize(&allowed.path, "alice", &k.alice);
    let mut admitted = spawn(alice().timeout(15.0));
    admitted.send("admitted");
    pull.expect_lines(&["admitted"]);
    admitted.close_stdin();
    admitted.expect_success();

    std::fs::remove_file(&cert).unwrap();
    // The folder is looked at no more than every 200 ms.
    std::thread::sleep(Duration::from_millis(500));
    let mut after = spawn(alice().timeout(2.0));
    after.send("too late");
    after.expect_error(&[ERR, "is not in the allow-list"]);
    pull.expect_no_line(Duration::from_millis(300));
}

/// A client with the wrong server key cannot open a session; both sides say so.
#[test]
fn wrong_server_key_is_a_clear_error() {
    let k = keys("wrongkey");
    let mut pull = spawn(
        Spec::new("pull")
            .bind_any()
            .curve_server(&k.server.secret_file),
    );
    let ep = pull.bound();
    let mut client = spawn(
        Spec::new("push")
            .connect(&ep)
            .curve_client(&k.alice.secret_file, &k.mallory.public_key)
            .timeout(2.0),
    );
    client.send("lost");
    client.expect_error(&[ERR, "last handshake failure", "server's public key"]);
    pull.expect_stderr(&["handshake failed", "cannot open HELLO"]);
}

/// A NULL client against a CURVE server: a mechanism mismatch, named.
#[test]
fn null_client_against_curve_server() {
    let k = keys("nullcurve");
    let mut pull = spawn(
        Spec::new("pull")
            .bind_any()
            .curve_server(&k.server.secret_file),
    );
    let ep = pull.bound();
    let mut client = spawn(Spec::new("push").connect(&ep).timeout(2.0));
    client.send("lost");
    client.expect_error(&[
        ERR,
        "last handshake failure: security mechanism mismatch",
        "NULL",
        "CURVE",
    ]);
    pull.expect_stderr(&["mechanism mismatch", "the peer uses NULL"]);
}

// ------------------------------------------------------------------ PLAIN

fn password_table(dir: &TempDir) -> std::path::PathBuf {
    dir.write(
        "passwords",
        "# user:password\nalice:open sesame\n\nbob:b:o:b\n",
        0o600,
    )
}

#[test]
fn plain_over_tcp_is_refused_without_allow_plaintext_password() {
    let dir = TempDir::new("plain-refused");
    let table = password_table(&dir);
    let pw = dir.write("alice.pw", "open sesame\n", 0o600);
    let mut server = spawn(Spec::new("pull").bind_any().plain_server(&table));
    server.expect_error(&[
        ERR,
        "PLAIN would send passwords in clear",
        "--allow-plaintext-password",
    ]);
    // The client refuses before connecting, whatever listens there.
    let mut listener = spawn(Spec::new("pull").bind_any());
    let ep = listener.bound();
    let mut client = spawn(Spec::new("push").connect(&ep).plain_client("alice", &pw));
    client.expect_error(&[
        ERR,
        "PLAIN would send passwords in clear",
        "--allow-plaintext-password",
    ]);
    listener.expect_no_stderr(&["handshake"], Duration::from_millis(200));
}

#[test]
fn plain_right_and_wrong_passwords() {
    let dir = TempDir::new("plain");
    let table = password_table(&dir);
    let mut pull = spawn(
        Spec::new("pull")
            .bind_any()
            .plain_server(&table)
            .allow_plaintext_password(),
    );
    let ep = pull.bound();
    let client = |user: &str, pw: &Path, timeout: f64| {
        spawn(
            Spec::new("push")
                .connect(&ep)
                .plain_client(user, pw)
                .allow_plaintext_password()
                .timeout(timeout),
        )
    };

    // The trailing newline (LF or CRLF) is not part of the password.
    let right = dir.write("right.pw", "open sesame\n", 0o600);
    let mut alice = client("alice", &right, 10.0);
    alice.send("alice in");
    pull.expect_lines(&["alice in"]);
    alice.close_stdin();
    alice.expect_success();
    let crlf = dir.write("bob.pw", "b:o:b\r\n", 0o600);
    let mut bob = client("bob", &crlf, 10.0);
    bob.send("bob in");
    pull.expect_lines(&["bob in"]);
    bob.close_stdin();
    bob.expect_success();

    let wrong = dir.write("wrong.pw", "open sesame!\n", 0o600);
    let mut eve = client("alice", &wrong, 2.0);
    eve.send("eve");
    eve.expect_error(&[ERR, "last handshake failure", "wrong user name or password"]);
    pull.expect_stderr(&["refused: wrong user name or password"]);
    // The refusal never shows the password.
    assert!(
        !pull
            .stderr_lines()
            .iter()
            .any(|l| l.contains("open sesame")),
        "a password was logged\n{}",
        pull.diagnostics()
    );

    let mut nobody = client("nobody", &right, 2.0);
    nobody.send("nobody");
    nobody.expect_error(&[ERR, "wrong user name or password"]);
    pull.expect_no_line(Duration::from_millis(300));
}

/// PLAIN against CURVE: a mechanism mismatch, named.
#[test]
fn plain_client_against_curve_server() {
    let k = keys("plaincurve");
    let dir = TempDir::new("plaincurve-pw");
    let pw = dir.write("pw", "x\n", 0o600);
    let mut pull = spawn(
        Spec::new("pull")
            .bind_any()
            .curve_server(&k.server.secret_file),
    );
    let ep = pull.bound();
    let mut client = spawn(
        Spec::new("push")
            .connect(&ep)
            .plain_client("alice", &pw)
            .allow_plaintext_password()
            .timeout(2.0),
    );
    client.send("lost");
    client.expect_error(&[ERR, "security mechanism mismatch", "PLAIN", "CURVE"]);
}

// ------------------------------------------------------------ permissions

/// Secret keys and password files readable by others are refused with the
/// fix; `--allow-insecure-key-permissions` accepts them.
#[test]
fn loose_secret_files_are_refused_unless_allowed() {
    let k = keys("perm");
    let loose = k.server.secret_file.with_file_name("loose.key_secret");
    std::fs::copy(&k.server.secret_file, &loose).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut refused = spawn(Spec::new("pull").bind_any().curve_server(&loose));
    refused.expect_error(&[
        ERR,
        "--curve-server",
        "accessible by group or others (mode 0644)",
        "chmod 600",
        "--allow-insecure-key-permissions",
    ]);
    let mut server = spawn(
        Spec::new("pull")
            .bind_any()
            .curve_server(&loose)
            .allow_insecure_key_permissions(),
    );
    let ep = server.bound();
    let mut client = spawn(
        Spec::new("push")
            .connect(&ep)
            .curve_client(&k.alice.secret_file, &k.server.public_key)
            .timeout(10.0),
    );
    client.send("loose but allowed");
    server.expect_lines(&["loose but allowed"]);

    let dir = TempDir::new("perm-pw");
    let pw = dir.write("pw", "secret\n", 0o640);
    let mut refused = spawn(
        Spec::new("push")
            .connect(&ep)
            .plain_client("u", &pw)
            .allow_plaintext_password(),
    );
    refused.expect_error(&[
        ERR,
        "--plain-password-file",
        "accessible by group or others (mode 0640)",
        "chmod 600",
    ]);
    let table = dir.write("table", "u:secret\n", 0o644);
    let mut refused = spawn(
        Spec::new("pull")
            .bind_any()
            .plain_server(&table)
            .allow_plaintext_password(),
    );
    refused.expect_error(&[ERR, "--plain-server", "accessible by group or others"]);
    let mut plain_server = spawn(
        Spec::new("pull")
            .bind_any()
            .plain_server(&table)
            .allow_plaintext_password()
            .allow_insecure_key_permissions(),
    );
    let ep = plain_server.bound();
    let mut plain_client = spawn(
        Spec::new("push")
            .connect(&ep)
            .plain_client("u", &pw)
            .allow_plaintext_password()
            .allow_insecure_key_permissions()
            .timeout(10.0),
    );
    plain_client.send("plain, loosely kept");
    plain_server.expect_lines(&["plain, loosely kept"]);
}

// ------------------------------------------------------------ flag checks

#[test]
fn flag_combinations_are_checked() {
    let k = keys("flags");
    let dir = TempDir::new("flags-files");
    let pw = dir.write("pw", "pw\n", 0o600);
    let table = dir.write("table", "u:pw\n", 0o600);
    let bad_table = dir.write("bad-table", "u:pw\nno colon here\n", 0o600);
    let server = path(&k.server.secret_file);
    let client = path(&k.alice.secret_file);
    let public = path(&k.server.public_file);
    let missing = dir.join("missing");
    let missing = path(&missing);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--curve-client", client],
            vec!["--curve-client needs --curve-serverkey"],
        ),
        (
            vec!["--curve-serverkey", public],
            vec!["--curve-serverkey", "give --curve-client"],
        ),
        (
            vec!["--curve-server", server, "--curve-serverkey", public],
            vec!["--curve-serverkey is for CURVE clients"],
        ),
        (
            vec!["--authorized", path(&dir.path)],
            vec!["--authorized", "give --curve-server"],
        ),
        (
            vec![
                "--curve-server",
                server,
                "--curve-client",
                client,
                "--curve-serverkey",
                public,
            ],
            vec!["--curve-server and --curve-client cannot be combined"],
        ),
        (
            vec!["--curve-server", server, "--plain-server", path(&table)],
            vec!["--curve-server and --plain-server cannot be combined"],
        ),
        (
            vec![
                "--plain-server",
                path(&table),
                "--plain-user",
                "u",
                "--plain-password-file",
                path(&pw),
            ],
            vec!["--plain-server and --plain-user cannot be combined"],
        ),
        (
            vec!["--plain-user", "u"],
            vec!["--plain-user needs --plain-password-file"],
        ),
        (
            vec!["--plain-password-file", path(&pw)],
            vec!["--plain-password-file needs --plain-user"],
        ),
        (
            vec!["--curve-server", server, "--allow-plaintext-password"],
            vec!["--allow-plaintext-password is for PLAIN"],
        ),
        (
            vec!["--curve-server", public],
            vec!["--curve-server", "no secret-key", "public certificate"],
        ),
        (
            vec!["--curve-server", missing],
            vec!["--curve-server", missing],
        ),
        (
            vec!["--curve-client", client, "--curve-serverkey", "not-a-key"],
            vec!["--curve-serverkey", "not a 40-character Z85 key"],
        ),
        (
            vec![
                "--curve-client",
                client,
                "--curve-serverkey",
                "abcdefghijabcdefghijabcdefghijabcdefghi~",
            ],
            vec!["--curve-serverkey", "not a Z85 key"],
        ),
        (
            vec!["--curve-server", server, "--authorized", missing],
            vec!["--authorized", "not a folder"],
        ),
        (
            vec![
                "--plain-server",
                path(&bad_table),
                "--allow-plaintext-password",
            ],
            vec!["--plain-server", "line 2: expected user:password"],
        ),
        (
            vec![
                "--plain-user",
                "u",
                "--plain-password-file",
                missing,
                "--allow-plaintext-password",
            ],
            vec!["--plain-password-file", missing],
        ),
    ];
    for (flags, said) in cases {
        let mut spec = Spec::new("pair").bind_any();
        for f in &flags {
            spec = spec.arg(f);
        }
        let mut p = spawn(spec);
        let mut needles = vec![ERR];
        needles.extend(said.iter().copied());
        p.expect_error(&needles);
        assert!(
            !p.stderr_lines().iter().any(|l| l.starts_with("bound ")),
            "{flags:?} bound before failing\n{}",
            p.diagnostics()
        );
    }
}
