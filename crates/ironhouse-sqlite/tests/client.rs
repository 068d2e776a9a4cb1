//! The Rust client: the three request kinds, typed rows, Lazy Pirate retries
//! (reads resent, writes not), staying usable after a failure, CURVE, and a
//! ZAP allow-list that is reread when its folder changes.

mod support;

use std::time::Duration;

use ironhouse::security::{certs, CurveAllowList};
use ironhouse::{CurveKeyPair, Options, Security};
use ironhouse_sqlite::client::{Client, ClientConfig, ClientError, SqlValue};
use ironhouse_sqlite::server::ServerConfig;
use support::{quick, temp_dir, Running};

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Stock {
    id: i64,
    symbol: String,
    price: f64,
    note: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_many_script_and_typed_rows() {
    let server = Running::start(ServerConfig::new(":memory:")).await;
    let db = server.client();
    let r = db
        .execute(
            "CREATE TABLE stocks (id INTEGER PRIMARY KEY, symbol TEXT, price REAL, note TEXT)",
            (),
        )
        .await
        .unwrap();
    assert!(r.error.is_none() && r.rowcount.is_none() && r.lastrowid.is_none());
    let r = db
        .execute_many(
            "INSERT INTO stocks (symbol, price, note) VALUES (?, ?, ?)",
            vec![
                vec!["IBM".into(), 45.0.into(), SqlValue::Null],
                vec!["MSFT".into(), 72.5.into(), Some("big").into()],
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.rowcount, Some(2));
    let r = db
        .execute(
            "INSERT INTO stocks (symbol, price) VALUES (?, ?)",
            ["XOM".into(), 53.into()],
        )
        .await
        .unwrap();
    assert_eq!((r.rowcount, r.lastrowid), (Some(1), Some(3)));
    let r = db
        .execute("SELECT id, symbol, price, note FROM stocks ORDER BY id", ())
        .await
        .unwrap();
    let rows: Vec<Stock> = r.rows().unwrap();
    assert_eq!(
        rows[1],
        Stock {
            id: 2,
            symbol: "MSFT".into(),
            price: 72.5,
            note: Some("big".into())
        }
    );
    assert_eq!(rows.len(), 3);
    let tuples: Vec<(i64, String)> = db
        .execute("SELECT id, symbol FROM stocks WHERE id = 1", ())
        .await
        .unwrap()
        .rows()
        .unwrap();
    assert_eq!(tuples, vec![(1, "IBM".to_string())]);
    let r = db
        .execute_script("UPDATE stocks SET price = 1; UPDATE stocks SET price = 2 WHERE id = 1;")
        .await
        .unwrap();
    assert!(r.error.is_none());
    // A failing statement: an error in the reply; `check` turns it into Err.
    let r = db.execute("SELECT * FROM nope", ()).await.unwrap();
    assert_eq!(
        r.error.as_ref().unwrap().message,
        "sqlite3.OperationalError: no such table: nope"
    );
    assert!(matches!(r.check(), Err(ClientError::Remote(_))));
    let blob: Vec<(Vec<u8>,)> = db
        .execute("SELECT ?", [SqlValue::Blob(vec![0, 255])])
        .await
        .unwrap()
        .rows()
        .unwrap();
    assert_eq!(blob, vec![(vec![0, 255],)]);
    server.stop().await;
}

fn free_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("tcp://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_pirate_resends_reads_not_writes_and_stays_usable() {
    let endpoint = free_endpoint();
    let cfg = ClientConfig::new(&endpoint)
        .request_timeout(Duration::from_millis(150))
        .retries(3);
    let db = Client::new(cfg);

    // Nobody listens: a read is tried three times, a write once.
    match db.execute("SELECT 1", ()).await {
        Err(ClientError::Timeout {
            attempts,
            resend_refused,
            ..
        }) => assert_eq!((attempts, resend_refused), (3, false)),
        other => panic!("{other:?}"),
    }
    match db.execute("INSERT INTO t VALUES (1)", ()).await {
        Err(e @ ClientError::Timeout { .. }) => {
            let ClientError::Timeout {
                attempts,
                resend_refused,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*attempts, *resend_refused), (1, true));
            assert!(e.to_string().contains("not resent"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // The same client works once a server is there (sqlite_rx's does not).
    let server = Running::start_at(&endpoint, ServerConfig::new(":memory:")).await;
    let db = Client::new(db.config().clone().request_timeout(Duration::from_secs(10)));
    let r = db.execute("SELECT 7", ()).await.unwrap();
    assert_eq!(r.items, vec![vec![SqlValue::Integer(7)]]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_recovers_after_a_timeout() {
    let endpoint = free_endpoint();
    let db = Client::new(
        ClientConfig::new(&endpoint)
            .request_timeout(Duration::from_millis(200))
            .retries(2),
    );
    assert!(matches!(
        db.execute("SELECT 1", ()).await,
        Err(ClientError::Timeout { .. })
    ));
    let server = Running::start_at(&endpoint, ServerConfig::new(":memory:")).await;
    // Same object, after its failure: a fresh socket reaches the server.
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = db.execute("SELECT 2", ()).await {
            assert_eq!(r.items, vec![vec![SqlValue::Integer(2)]]);
            ok = true;
            break;
        }
    }
    assert!(ok, "the client recovered");
    server.stop().await;
}

fn curve_client(endpoint: &str, keys: CurveKeyPair, server: &CurveKeyPair) -> Client {
    Client::new(
        quick(endpoint)
            .options(
                Options::default()
                    .linger(Some(Duration::ZERO))
                    .security(Security::curve_client(keys, server.public)),
            )
            .request_timeout(Duration::from_millis(800)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curve_and_an_allow_list_reread_when_it_changes() {
    let dir = temp_dir("zap");
    let allowed = dir.join("authorized_clients");
    std::fs::create_dir_all(&allowed).unwrap();
    let server_keys = CurveKeyPair::generate();
    let config = ServerConfig::new(":memory:").options(Options::default().security(
        Security::ironhouse(server_keys.clone(), CurveAllowList::new(&allowed)),
    ));
    let server = Running::start(config).await;
    let client_keys = CurveKeyPair::generate();

    // Not in the folder yet: refused (a timeout, as with sqlite_rx).
    let db = curve_client(&server.endpoint, client_keys.clone(), &server_keys);
    assert!(matches!(
        db.execute("SELECT 1", ()).await,
        Err(ClientError::Timeout { .. })
    ));

    // Its certificate appears: admitted without a restart.
    certs::write_public_certificate(allowed.join("alice.key"), &client_keys.public, &[], false)
        .unwrap();
    let mut ok = false;
    for _ in 0..20 {
        let db = curve_client(&server.endpoint, client_keys.clone(), &server_keys);
        if let Ok(r) = db.execute("SELECT 3", ()).await {
            assert_eq!(r.items, vec![vec![SqlValue::Integer(3)]]);
            ok = true;
            break;
        }
    }
    assert!(ok, "admitted once its key is in authorized_clients");

    // A client with the wrong idea of the server's key never gets through.
    let wrong = curve_client(
        &server.endpoint,
        client_keys.clone(),
        &CurveKeyPair::generate(),
    );
    assert!(matches!(
        wrong.execute("SELECT 1", ()).await,
        Err(ClientError::Timeout { .. })
    ));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
