//! Shared helpers: an in-process server that stops when dropped or asked,
//! temporary folders, and a bounded wait.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use ironhouse_sqlite::client::{Client, ClientConfig};
use ironhouse_sqlite::exec::Limits;
use ironhouse_sqlite::server::{Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on a free loopback port.
pub struct Running {
    pub endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub async fn start(config: ServerConfig) -> Running {
        Self::start_at("tcp://127.0.0.1:*", config).await
    }

    pub async fn start_at(endpoint: &str, config: ServerConfig) -> Running {
        let server = Server::bind(endpoint, config).await.expect("bind");
        let endpoint = server.endpoint().to_string();
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve_until(async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Running {
            endpoint,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A file database at `db` with two reader threads and a time limit of
    /// `limit` per request (an [`ENDLESS_READ`] ends there).
    pub async fn start_with_readers(db: &std::path::Path, limit: Duration) -> Running {
        let limits = Limits {
            time: Some(limit),
            ..Limits::default()
        };
        let config = ServerConfig::new(db.display().to_string())
            .readers(2)
            .limits(limits);
        Self::start(config).await
    }

    /// A client with short timeouts (tests never wait 12 s for a refusal).
    pub fn client(&self) -> Client {
        Client::new(quick(&self.endpoint))
    }

    /// Stops the server and waits until it has finished (last backup taken).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("server stops within 30 s")
                .expect("server task");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Runs until the server's time limit interrupts it.
pub const ENDLESS_READ: &str =
    "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n) SELECT count(*) FROM n";

pub fn quick(endpoint: &str) -> ClientConfig {
    ClientConfig::new(endpoint)
        .request_timeout(Duration::from_secs(10))
        .retries(1)
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ih-sqlite-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Polls `f` every 50 ms for up to `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
