//! Test helpers: bounded waits and a TCP proxy whose connections can be cut,
//! to make endpoints reconnect while the relay stays up.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Every wait in these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test after [`LIMIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Forwards connections from its own port to `target`; `cut()` drops every
/// current connection (the peers see a reset), new ones are forwarded again.
pub struct Proxy {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let c2 = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let h = tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                c2.lock().unwrap().push(h);
            }
        });
        Proxy {
            addr,
            conns,
            accept,
        }
    }

    /// The proxy's URL for endpoints.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Drops every forwarded connection.
    pub fn cut(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// "tcp://127.0.0.1:PORT" → the socket address.
pub fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("tcp://").parse().unwrap()
}

/// The repository's root.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, checked to import `modules`. Panics with a clear
/// message otherwise: interop suites never skip.
pub fn python_with(modules: &[&str]) -> std::path::PathBuf {
    let python = match std::env::var_os("IRONHOUSE_PYTHON") {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => repo_root().join(".venv/bin/python"),
    };
    let code = format!("import {}", modules.join(", "));
    let out = std::process::Command::new(&python)
        .args(["-c", &code])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "interop peer unavailable: cannot run {}: {e}; run scripts/test-all.sh or set IRONHOUSE_PYTHON",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "interop peer unavailable: {} cannot `{code}`: {}; run scripts/test-all.sh or set IRONHOUSE_PYTHON",
        python.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    python
}
