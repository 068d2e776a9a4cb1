//! Connecting through SSH, against Debian's OpenSSH sshd started here on
//! 127.0.0.1 with a throwaway host key and user key (feature `ssh-interop`).
//! A missing sshd or ssh-keygen fails these tests: they never skip.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironhouse::{HostKeyPolicy, Options, Socket, SocketEvent, SocketType, SshIdentity, SshTunnel};

const SSHD: &str = "/usr/sbin/sshd";
const WAIT: Duration = Duration::from_secs(10);

/// A private sshd on a free loopback port; killed on drop.
struct Sshd {
    child: Child,
    dir: PathBuf,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- sshd log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {out:?}");
}

fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "ironhouse-test",
            "-f",
        ])
        .arg(path));
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Sshd {
    fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install Debian's openssh-server (scripts/test-all.sh does)"
        );
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ironhouse-ssh-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        keygen(&dir.join("host_key"));
        keygen(&dir.join("user_key"));
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd's privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AllowTcpForwarding local\nPermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\n\
             StrictModes no\nUsePAM no\nLogLevel DEBUG1\n",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let sshd = Sshd {
            child,
            dir,
            port,
            log,
        };
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "sshd did not listen on {port}:\n{}",
                sshd.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits (bounded) until the log has `n` lines containing `needle`.
    async fn wait_for(&self, needle: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.count(needle) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sshd never logged {needle:?} {n} times:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `[127.0.0.1]:port <type> <base64>` for the throwaway host key.
    fn known_hosts_line(&self) -> String {
        let pubkey = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        let mut fields = pubkey.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        )
    }

    fn tunnel(&self, known_hosts: &Path) -> SshTunnel {
        SshTunnel::new(user(), "127.0.0.1")
            .port(self.port)
            .identity(SshIdentity::KeyFile(self.dir.join("user_key")))
            .known_hosts(known_hosts)
    }

    fn trusting_tunnel(&self) -> SshTunnel {
        let kh = self.dir.join("known_hosts");
        std::fs::write(&kh, self.known_hosts_line()).unwrap();
        self.tunnel(&kh)
    }
}

fn via(tunnel: SshTunnel) -> Options {
    Options::default()
        .ssh(tunnel)
        .linger(Some(Duration::ZERO))
        .handshake_timeout(Some(WAIT))
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn round_trip(req: &mut Socket, rep: &mut Socket, text: &str) {
    bounded("send", req.send(text.to_string())).await.unwrap();
    let got = bounded("rep recv", rep.recv()).await.unwrap();
    assert_eq!(got.frames()[0].as_ref(), text.as_bytes());
    bounded("rep send", rep.send(got)).await.unwrap();
    let back = bounded("req recv", req.recv()).await.unwrap();
    assert_eq!(back.frames()[0].as_ref(), text.as_bytes());
}

async fn wait_disconnected(events: &mut tokio::sync::broadcast::Receiver<SocketEvent>) {
    bounded("REP sees the peer go", async {
        loop {
            if let SocketEvent::Disconnected { .. } = events.recv().await.unwrap() {
                return;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_shares_one_connection_and_closes_channels() {
    let sshd = Sshd::start();
    let tunnel = sshd.trusting_tunnel();
    let mut rep = Socket::new(SocketType::Rep);
    let ep = rep.bind("tcp://127.0.0.1:*").await.unwrap().to_string();
    let mut events = rep.monitor();

    let mut a = Socket::with_options(SocketType::Req, via(tunnel.clone()));
    bounded("connect a", a.connect_now(&ep)).await.unwrap();
    let mut b = Socket::with_options(SocketType::Req, via(tunnel));
    bounded("connect b", b.connect_now(&ep)).await.unwrap();
    round_trip(&mut a, &mut rep, "through ssh, a").await;
    round_trip(&mut b, &mut rep, "through ssh, b").await;

    // Two sockets, two channels, one SSH connection (one login).
    assert_eq!(sshd.count("Accepted publickey"), 1, "{}", sshd.log());
    sshd.wait_for("direct-tcpip", 2).await;

    // Closing a socket closes its channel; the SSH connection stays for b.
    bounded("close a", a.close()).await;
    wait_disconnected(&mut events).await;
    sshd.wait_for("free: direct-tcpip", 1).await;
    round_trip(&mut b, &mut rep, "b still works").await;
    assert!(
        !sshd.log().contains("Received disconnect"),
        "{}",
        sshd.log()
    );

    // The last channel gone, the SSH connection goes too (sshd may log the
    // disconnect without freeing the channel first).
    bounded("close b", b.close()).await;
    wait_disconnected(&mut events).await;
    sshd.wait_for("Received disconnect", 1).await;

    // A new socket logs in again.
    let mut c = Socket::with_options(SocketType::Req, via(sshd.trusting_tunnel()));
    bounded("connect c", c.connect_now(&ep)).await.unwrap();
    round_trip(&mut c, &mut rep, "again").await;
    assert_eq!(sshd.count("Accepted publickey"), 2, "{}", sshd.log());
    rep.close().await;
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_goes_through_ssh_again() {
    let sshd = Sshd::start();
    let mut rep = Socket::new(SocketType::Rep);
    let ep = rep.bind("tcp://127.0.0.1:*").await.unwrap().to_string();
    let opts = via(sshd.trusting_tunnel())
        .reconnect(Duration::from_millis(50), Duration::from_millis(200));
    let mut req = Socket::with_options(SocketType::Req, opts);
    let mut events = req.monitor();
    req.connect(&ep).await.unwrap();
    round_trip(&mut req, &mut rep, "first").await;

    // The server goes away and comes back on the same port. (REQ drops a
    // request sent into a dying connection, as ZeroMQ's does: wait until the
    // REQ has seen it go.)
    rep.close().await;
    wait_disconnected(&mut events).await;
    let mut rep = Socket::new(SocketType::Rep);
    bounded("rebind", async {
        loop {
            if rep.bind(&ep).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    round_trip(&mut req, &mut rep, "second").await;
    assert!(sshd.count("direct-tcpip") >= 2, "{}", sshd.log());
    req.close().await;
    rep.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_host_key_is_refused() {
    let sshd = Sshd::start();
    // known_hosts names this server with another key.
    let other = sshd.dir.join("other_key");
    keygen(&other);
    let pubkey = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut f = pubkey.split_whitespace();
    let kh = sshd.dir.join("known_hosts_wrong");
    std::fs::write(
        &kh,
        format!(
            "# a comment\n[127.0.0.1]:{} {} {}\n",
            sshd.port,
            f.next().unwrap(),
            f.next().unwrap()
        ),
    )
    .unwrap();
    let mut req = Socket::with_options(SocketType::Req, via(sshd.tunnel(&kh)));
    let err = bounded("refusal", req.connect_now("tcp://127.0.0.1:9"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("host key of [127.0.0.1]"), "{text}");
    assert!(text.contains(&format!("{}:2", kh.display())), "{text}");
    assert_eq!(sshd.count("Accepted publickey"), 0);

    // Unknown host, strict: refused with the way out.
    let empty = sshd.dir.join("known_hosts_empty");
    std::fs::write(&empty, "").unwrap();
    let mut req = Socket::with_options(SocketType::Req, via(sshd.tunnel(&empty)));
    let err = bounded("refusal", req.connect_now("tcp://127.0.0.1:9"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("is not in"), "{text}");
    assert!(text.contains("AcceptNew"), "{text}");
    assert_eq!(std::fs::read_to_string(&empty).unwrap(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_records_the_key() {
    let sshd = Sshd::start();
    let kh = sshd.dir.join("new").join("known_hosts");
    let tunnel = sshd.tunnel(&kh).policy(HostKeyPolicy::AcceptNew);
    let mut rep = Socket::new(SocketType::Rep);
    let ep = rep.bind("tcp://127.0.0.1:*").await.unwrap().to_string();
    let mut req = Socket::with_options(SocketType::Req, via(tunnel.clone()));
    bounded("connect", req.connect_now(&ep)).await.unwrap();
    round_trip(&mut req, &mut rep, "new host").await;
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        sshd.known_hosts_line()
    );
    req.close().await;

    // Recorded once: strict checking now accepts it.
    let mut req = Socket::with_options(SocketType::Req, via(sshd.tunnel(&kh)));
    bounded("connect strict", req.connect_now(&ep))
        .await
        .unwrap();
    round_trip(&mut req, &mut rep, "known host").await;
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        sshd.known_hosts_line()
    );
    req.close().await;
    rep.close().await;
}

/// A self-signed certificate (in memory) for a `tls://` REP.
fn tls_server() -> ironhouse::TlsServer {
    let own = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::try_from(own.signing_key.serialize_der()).unwrap();
    ironhouse::TlsServer::from_der(vec![own.cert.der().clone()], key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_runs_end_to_end_through_the_tunnel() {
    let sshd = Sshd::start();
    let server = tls_server();
    let pin = server.fingerprint();
    let mut rep = Socket::with_options(SocketType::Rep, Options::default().tls_server(server));
    let ep = rep.bind("tls://127.0.0.1:*").await.unwrap().to_string();

    // The SSH server relays ciphertext; the pin is checked end to end.
    let opts = via(sshd.trusting_tunnel()).tls_client(ironhouse::TlsClient::pinned(pin));
    let mut req = Socket::with_options(SocketType::Req, opts);
    bounded("connect over ssh + tls", req.connect_now(&ep))
        .await
        .unwrap();
    round_trip(&mut req, &mut rep, "tls through ssh").await;
    sshd.wait_for("direct-tcpip", 1).await;

    // A wrong pin is refused by the client, through the tunnel too.
    let wrong = tls_server().fingerprint();
    let opts = via(sshd.trusting_tunnel()).tls_client(ironhouse::TlsClient::pinned(wrong));
    let mut bad = Socket::with_options(SocketType::Req, opts);
    let e = bounded("connect with a wrong pin", bad.connect_now(&ep))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("pin"), "{e}");
    req.close().await;
    rep.close().await;
}

/// An `ssh-agent` on its own socket, holding the test's user key; killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(sshd: &Sshd) -> Agent {
        let socket = sshd.dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "ssh-agent (openssh-client) must be installed: scripts/test-all.sh installs it",
            );
        let agent = Agent { child, socket };
        // Bounded wait for the socket to appear.
        for _ in 0..100 {
            if agent.socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            agent.socket.exists(),
            "ssh-agent did not create {}",
            agent.socket.display()
        );
        // The environment is set on the child only, never on this process.
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(sshd.dir.join("user_key"))
            .env("SSH_AUTH_SOCK", &agent.socket));
        agent
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_authenticates() {
    let sshd = Sshd::start();
    let agent = Agent::start(&sshd);
    let mut rep = Socket::new(SocketType::Rep);
    let ep = rep.bind("tcp://127.0.0.1:*").await.unwrap().to_string();
    let tunnel = sshd
        .trusting_tunnel()
        .identity(SshIdentity::AgentAt(agent.socket.clone()));
    let mut req = Socket::with_options(SocketType::Req, via(tunnel));
    bounded("connect with the agent's key", req.connect_now(&ep))
        .await
        .unwrap();
    round_trip(&mut req, &mut rep, "signed by the agent").await;
    assert_eq!(sshd.count("Accepted publickey"), 1, "{}", sshd.log());

    // An agent that holds no key gets a clear refusal.
    drop(agent);
    let empty = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(sshd.dir.join("empty.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut empty = Agent {
        child: empty,
        socket: sshd.dir.join("empty.sock"),
    };
    for _ in 0..100 {
        if empty.socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let tunnel = SshTunnel::new(user(), "127.0.0.1")
        .port(sshd.port)
        .identity(SshIdentity::AgentAt(empty.socket.clone()))
        .known_hosts(sshd.dir.join("known_hosts"));
    let mut denied = Socket::with_options(SocketType::Req, via(tunnel));
    let e = bounded("connect with an empty agent", denied.connect_now(&ep))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("agent"), "{e}");
    let _ = empty.child.kill();
    req.close().await;
    rep.close().await;
}
