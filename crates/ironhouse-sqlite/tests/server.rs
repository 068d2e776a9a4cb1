//! The server on its own (Rust client and raw sockets): malformed requests,
//! the authorizer, WAL, backups, limits, concurrent reads, shared
//! transactions.

mod support;

use std::time::Duration;

use ironhouse::{Message, Socket, SocketType};
use ironhouse_sqlite::client::{Client, SqlValue};
use ironhouse_sqlite::exec::Limits;
use ironhouse_sqlite::server::ServerConfig;
use ironhouse_sqlite::wire;
use ironhouse_sqlite::AuthConfig;
use support::{eventually, temp_dir, Running, ENDLESS_READ};

fn err_text(reply: &ironhouse_sqlite::client::Reply) -> String {
    reply
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_error_replies_and_the_server_goes_on() {
    let server = Running::start(ServerConfig::new(":memory:")).await;
    let mut req = Socket::new(SocketType::Req);
    req.connect(&server.endpoint).await.unwrap();
    let huge_array = {
        let mut v = vec![0xddu8, 0xff, 0xff, 0xff, 0xff];
        v.truncate(5);
        wire::compress(&v)
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"not zlib".to_vec(),
            "zlib.error: Error -3 while decompressing data: incorrect header check",
        ),
        (
            Vec::new(),
            "zlib.error: Error -5 while decompressing data: incomplete or truncated stream",
        ),
        (
            wire::compress(b"\x93\x01"),
            "ValueError: Unpack failed: incomplete input",
        ),
        (huge_array, "ValueError: Unpack failed: incomplete input"),
        (
            wire::compress(b"\x92\x01\x02"),
            "TypeError: list indices must be integers or slices, not str",
        ),
        (wire::compress(b"\x80"), "KeyError: 'execute_many'"),
        (
            wire::compress(&[0x91; 300]),
            "ValueError: Unpack failed: error = -3",
        ),
    ];
    for (body, expected) in cases {
        let (_, v) = exchange(&mut req, body).await;
        let msg = match v.subscript("error").unwrap().subscript("message").unwrap() {
            wire::Value::Str(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(msg, expected);
        assert_eq!(v.subscript("items").unwrap(), &wire::Value::Array(vec![]));
    }
    // A multipart request: the body is the last frame, as sqlite_rx reads it.
    let c = server.client();
    let ok = c.execute("SELECT 41 + 1", ()).await.unwrap();
    assert_eq!(ok.items, vec![vec![SqlValue::Integer(42)]]);
    req.send(Message::from(vec![
        bytes::Bytes::from_static(b"ignored"),
        bytes::Bytes::from(wire::compress(b"\x80")),
    ]))
    .await
    .unwrap();
    let reply = req.recv().await.unwrap();
    assert_eq!(reply.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_authorizer_denies_delete_and_drop_and_ignores_pragma() {
    let server = Running::start(ServerConfig::new(":memory:")).await;
    let c = server.client();
    c.execute("CREATE TABLE t (a)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    c.execute("INSERT INTO t VALUES (1)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    for q in ["DELETE FROM t", "DROP TABLE t"] {
        let r = c.execute(q, ()).await.unwrap();
        assert_eq!(err_text(&r), "sqlite3.DatabaseError: not authorized", "{q}");
        assert_eq!(r.error.unwrap().kind, "sqlite3.DatabaseError");
    }
    let r = c.execute("PRAGMA table_info(t)", ()).await.unwrap();
    assert!(r.error.is_none() && r.items.is_empty(), "{r:?}");
    server.stop().await;

    // A custom config replaces the default: DELETE allowed, functions denied.
    let cfg = AuthConfig::from_json(r#"{"DENY": ["SQLITE_FUNCTION"]}"#).unwrap();
    let server = Running::start(ServerConfig::new(":memory:").auth(cfg)).await;
    let c = server.client();
    c.execute("CREATE TABLE t (a)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    c.execute("INSERT INTO t VALUES (1)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    let r = c.execute("SELECT abs(a) FROM t", ()).await.unwrap();
    assert_eq!(
        err_text(&r),
        "sqlite3.OperationalError: not authorized to use function: abs"
    );
    let r = c.execute("DELETE FROM t", ()).await.unwrap();
    assert!(r.error.is_none(), "{r:?}");
    assert_eq!(r.rowcount, Some(1));
    let r = c.execute("PRAGMA table_info(t)", ()).await.unwrap();
    assert_eq!(r.items.len(), 1, "PRAGMA runs when not ignored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_database_is_wal_and_backups_follow_changes() {
    let dir = temp_dir("backup");
    let db = dir.join("main.db");
    let backup = dir.join("backup.db");
    let server = Running::start(
        ServerConfig::new(db.display().to_string()).backup(&backup, Duration::from_millis(200)),
    )
    .await;
    let c = server.client();
    c.execute("CREATE TABLE t (a)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    let rows: Vec<Vec<SqlValue>> = (0..27).map(|i| vec![SqlValue::Integer(i)]).collect();
    let r = c
        .execute_many("INSERT INTO t VALUES (?)", rows)
        .await
        .unwrap();
    assert_eq!(r.rowcount, Some(27));

    let count = |path: &std::path::Path| -> Option<i64> {
        let conn = rusqlite::Connection::open(path).ok()?;
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .ok()
    };
    assert!(
        eventually(Duration::from_secs(20), || count(&backup) == Some(27)).await,
        "the backup holds the 27 rows"
    );
    let mode: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    // The last change is in the backup taken at shutdown.
    c.execute("INSERT INTO t VALUES (100)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    server.stop().await;
    assert_eq!(count(&backup), Some(28));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_database_backups_hold_the_data() {
    // sqlite_rx backs up a fresh, empty in-memory database; this one is the
    // served one.
    let dir = temp_dir("membackup");
    let backup = dir.join("backup.db");
    let server =
        Running::start(ServerConfig::new(":memory:").backup(&backup, Duration::from_secs(600)))
            .await;
    let c = server.client();
    c.execute("CREATE TABLE t (a)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    c.execute("INSERT INTO t VALUES ('kept')", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    server.stop().await;
    let conn = rusqlite::Connection::open(&backup).unwrap();
    let v: String = conn.query_row("SELECT a FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(v, "kept");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_and_size_limits_give_clear_errors() {
    let limits = Limits {
        time: Some(Duration::from_millis(300)),
        max_result_bytes: 10_000,
        ..Limits::default()
    };
    let server = Running::start(ServerConfig::new(":memory:").limits(limits)).await;
    let c = server.client();
    let slow =
        "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n) SELECT count(*) FROM n";
    let r = c.execute(slow, ()).await.unwrap();
    let e = r.error.expect("interrupted");
    assert_eq!(e.kind, "sqlite3.OperationalError");
    assert!(e.message.contains("time limit of 0.300 s"), "{}", e.message);
    let big = "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 5000) SELECT v, 'some text' FROM n";
    let r = c.execute(big, ()).await.unwrap();
    let e = r.error.expect("too large");
    assert_eq!(e.kind, "sqlite3.DataError");
    assert!(e.message.contains("limit of 10000 bytes"), "{}", e.message);
    // Still serving.
    let r = c.execute("SELECT 1", ()).await.unwrap();
    assert_eq!(r.items, vec![vec![SqlValue::Integer(1)]]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_read_does_not_stall_other_clients() {
    let dir = temp_dir("readers");
    let db = dir.join("main.db");
    let server = Running::start_with_readers(&db, Duration::from_secs(8)).await;
    let setup = server.client();
    setup
        .execute("CREATE TABLE t (a)", ())
        .await
        .unwrap()
        .check()
        .unwrap();

    let slow_client =
        Client::new(support::quick(&server.endpoint).request_timeout(Duration::from_secs(60)));
    let slow = tokio::spawn(async move { slow_client.execute(ENDLESS_READ, ()).await });
    // Give the slow query time to start on a reader.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Served while the slow read runs (behind it they would wait 8 s and
    // time out after 3).
    let fast =
        Client::new(support::quick(&server.endpoint).request_timeout(Duration::from_secs(3)));
    let r = fast.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
    assert_eq!(r.rowcount, Some(1));
    let r = fast.execute("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(r.items, vec![vec![SqlValue::Integer(1)]]);
    assert!(
        !slow.is_finished(),
        "the slow read is still running while the others were served"
    );
    let r = slow.await.unwrap().unwrap();
    assert!(
        r.error.unwrap().message.contains("time limit"),
        "the endless read ends at the time limit"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_begin_is_shared_as_in_sqlite_rx() {
    let dir = temp_dir("txn");
    let db = dir.join("main.db");
    let server = Running::start(ServerConfig::new(db.display().to_string())).await;
    let a = server.client();
    let b = server.client();
    a.execute("CREATE TABLE t (a)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    a.execute("BEGIN", ()).await.unwrap().check().unwrap();
    a.execute("INSERT INTO t VALUES (1)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    // B reads through the shared connection: it sees A's uncommitted row.
    let r = b.execute("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(r.items, vec![vec![SqlValue::Integer(1)]]);
    b.execute("ROLLBACK", ()).await.unwrap().check().unwrap();
    let r = a.execute("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(r.items, vec![vec![SqlValue::Integer(0)]]);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reply body and the rows it holds, for a query sent over a raw REQ
/// socket (the request itself deflated, as sqlite_rx's client sends it).
async fn raw_reply(endpoint: &str, query: &str) -> (Vec<u8>, wire::Value) {
    let mut req = Socket::new(SocketType::Req);
    req.connect(endpoint).await.unwrap();
    let mut raw = Vec::new();
    wire::pack(
        &mut raw,
        &wire::Value::Map(vec![
            (
                wire::Value::Str("client_id".into()),
                wire::Value::Str("t".into()),
            ),
            (
                wire::Value::Str("query".into()),
                wire::Value::Str(query.into()),
            ),
            (
                wire::Value::Str("params".into()),
                wire::Value::Array(vec![]),
            ),
            (
                wire::Value::Str("execute_many".into()),
                wire::Value::Bool(false),
            ),
            (
                wire::Value::Str("execute_script".into()),
                wire::Value::Bool(false),
            ),
        ]),
    );
    exchange(
        &mut req,
        wire::compress_as(&raw, wire::Compression::Deflate),
    )
    .await
}

/// Sends `body` on a REQ socket; the reply's body and its decoded value.
async fn exchange(req: &mut Socket, body: Vec<u8>) -> (Vec<u8>, wire::Value) {
    req.send(body).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), req.recv())
        .await
        .expect("a reply, not a stall")
        .unwrap();
    let body = reply.frames()[0].to_vec();
    let value = wire::unpack(&wire::decompress(&body, 1 << 24).unwrap()).unwrap();
    (body, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_replies_are_stored_on_loopback_and_deflated_when_asked() {
    const ROWS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                        WHERE x < 3000) SELECT x, 'row ' || x, x * 0.5 FROM c";
    let mut seen = Vec::new();
    // (`Auto` on other addresses deflates: `wire`'s unit tests; these tests
    // bind loopback only.)
    for (how, deflated) in [
        (wire::Compression::Auto, false),
        (wire::Compression::Deflate, true),
    ] {
        let server = Running::start(ServerConfig::new(":memory:").compression(how)).await;
        let (body, value) = raw_reply(&server.endpoint, ROWS).await;
        let raw_len = wire::decompress(&body, 1 << 24).unwrap().len();
        assert!(raw_len > 16 * 1024, "{raw_len}");
        if deflated {
            assert!(
                body.len() < raw_len / 2,
                "{how:?}: {} of {raw_len}",
                body.len()
            );
        } else {
            assert!(body.len() > raw_len, "{how:?}: {} of {raw_len}", body.len());
        }
        match value.subscript("items").unwrap() {
            wire::Value::Array(rows) => assert_eq!(rows.len(), 3000),
            other => panic!("{other:?}"),
        }
        seen.push(value);
        // The server's own client talks to it in both forms, too.
        let c = server.client();
        let r = c.execute(ROWS, ()).await.unwrap().check().unwrap();
        assert_eq!(r.items.len(), 3000);
        assert_eq!(r.items[2999][1], SqlValue::Text("row 3000".into()));
        server.stop().await;
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "the same rows each way"
    );
}
