//! The client's pipelining: many requests in flight on one connection,
//! replies matched by id whatever their order, what a timeout does to the
//! others in flight, and `close` under load. A scripted ROUTER stands in
//! for the server where the test needs to hold or reorder replies.

mod support;

use std::time::Duration;

use bytes::Bytes;
use ironhouse::{Message, Socket, SocketType};
use ironhouse_sqlite::client::{Client, ClientConfig, ClientError, SqlValue};
use ironhouse_sqlite::wire::{self, Value};
use support::{quick, temp_dir, Running, ENDLESS_READ};

/// A scripted server: a bound ROUTER that the test drives by hand.
async fn scripted_server() -> (Socket, String) {
    let mut router = Socket::new(SocketType::Router);
    let endpoint = router.bind("tcp://127.0.0.1:*").await.unwrap().to_string();
    (router, endpoint)
}

/// One request as a server sees it: `[peer][id][empty][body]`, with the
/// first parameter of `SELECT ?` (or `None`) and the query.
struct Seen {
    envelope: Vec<Bytes>,
    query: String,
    param: Option<i64>,
}

async fn next_request(router: &mut Socket) -> Seen {
    let msg = tokio::time::timeout(Duration::from_secs(20), router.recv())
        .await
        .expect("a request within 20 s")
        .unwrap();
    let frames = msg.frames();
    assert_eq!(frames.len(), 4, "[peer][id][empty][body]");
    assert!(frames[2].is_empty(), "the REQ-style delimiter");
    let body = wire::unpack(&wire::decompress(&frames[3], 1 << 20).unwrap()).unwrap();
    let query = match body.subscript("query").unwrap() {
        Value::Str(q) => q.clone(),
        other => panic!("query is {other:?}"),
    };
    let param = match body.subscript("params").unwrap() {
        Value::Array(a) => match a.first() {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        },
        other => panic!("params are {other:?}"),
    };
    Seen {
        envelope: frames[..3].to_vec(),
        query,
        param,
    }
}

/// Answers `seen` with one row holding `value`, as sqlite_rx would.
async fn answer(router: &mut Socket, seen: &Seen, value: i64) {
    let reply = Value::Map(vec![
        (
            Value::Str("items".into()),
            Value::Array(vec![Value::Array(vec![Value::Int(value)])]),
        ),
        (Value::Str("error".into()), Value::Nil),
    ]);
    let mut raw = Vec::new();
    wire::pack(&mut raw, &reply);
    let mut frames = seen.envelope.clone();
    frames.push(Bytes::from(wire::compress(&raw)));
    router.send(Message::from(frames)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_many_tasks_are_in_flight_together_and_matched_by_id() {
    let (mut router, endpoint) = scripted_server().await;
    let db = Client::new(quick(&endpoint));
    const N: i64 = 10;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.execute("SELECT ?", [SqlValue::Integer(i)]).await })
        })
        .collect();
    // All N arrive before any is answered: a client that waited for each
    // reply would deliver one.
    let mut seen = Vec::new();
    for _ in 0..N {
        seen.push(next_request(&mut router).await);
    }
    let peer = &seen[0].envelope[0];
    assert!(
        seen.iter().all(|s| s.envelope[0] == *peer),
        "one connection"
    );
    // Answered in reverse order, each with its own parameter.
    for s in seen.iter().rev() {
        answer(&mut router, s, s.param.expect("a parameter")).await;
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.items, vec![vec![SqlValue::Integer(i as i64)]]);
    }
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_holds_the_rest_back() {
    let (mut router, endpoint) = scripted_server().await;
    let db = Client::new(quick(&endpoint).max_in_flight(3));
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.execute("SELECT ?", [SqlValue::Integer(i)]).await })
        })
        .collect();
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(next_request(&mut router).await);
    }
    // A fourth would be a fourth in flight: nothing more comes.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), router.recv())
            .await
            .is_err(),
        "no more than 3 in flight"
    );
    for s in &first {
        answer(&mut router, s, s.param.unwrap()).await;
    }
    for _ in 0..3 {
        let s = next_request(&mut router).await;
        answer(&mut router, &s, s.param.unwrap()).await;
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.items, vec![vec![SqlValue::Integer(i as i64)]]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_resends_reads_on_a_fresh_socket_and_interrupts_writes_in_flight() {
    let (mut router, endpoint) = scripted_server().await;
    let db = Client::new(
        ClientConfig::new(&endpoint)
            .request_timeout(Duration::from_millis(1500))
            .retries(2),
    );
    let read = tokio::spawn({
        let db = db.clone();
        async move { db.execute("SELECT ?", [SqlValue::Integer(41)]).await }
    });
    let first = next_request(&mut router).await;
    assert_eq!(first.param, Some(41));
    // The write goes out well after the read, so only the read's own
    // deadline passes first.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let write = tokio::spawn({
        let db = db.clone();
        async move { db.execute("INSERT INTO t VALUES (1)", ()).await }
    });
    let w = next_request(&mut router).await;
    assert!(w.query.starts_with("INSERT"));
    assert_eq!(w.envelope[0], first.envelope[0], "same connection so far");

    // Nothing is answered: the read times out, the socket is replaced, the
    // read comes again on a new connection (same id), the write does not.
    let again = next_request(&mut router).await;
    assert_eq!(again.param, Some(41));
    assert_ne!(again.envelope[0], first.envelope[0], "a fresh connection");
    assert_eq!(again.envelope[1], first.envelope[1], "the same request id");
    match write.await.unwrap() {
        Err(e @ ClientError::Interrupted { .. }) => {
            assert!(e.to_string().contains("not resent"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    answer(&mut router, &again, 42).await;
    let r = read.await.unwrap().unwrap();
    assert_eq!(r.items, vec![vec![SqlValue::Integer(42)]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_what_is_in_flight_and_a_clone_reconnects_after() {
    let (mut router, endpoint) = scripted_server().await;
    let db = Client::new(quick(&endpoint));
    let pending = tokio::spawn({
        let db = db.clone();
        async move { db.execute("SELECT ?", [SqlValue::Integer(1)]).await }
    });
    let first = next_request(&mut router).await;
    let other = db.clone();
    db.close().await;
    assert!(matches!(pending.await.unwrap(), Err(ClientError::Closed)));
    // The clone opens a new connection for its next request.
    let later =
        tokio::spawn(async move { other.execute("SELECT ?", [SqlValue::Integer(2)]).await });
    let s = next_request(&mut router).await;
    assert_ne!(s.envelope[0], first.envelope[0]);
    answer(&mut router, &s, 2).await;
    assert_eq!(
        later.await.unwrap().unwrap().items,
        vec![vec![SqlValue::Integer(2)]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_connection_a_slow_read_does_not_hold_up_the_others() {
    let dir = temp_dir("pipeline");
    let db_path = dir.join("main.db");
    let server = Running::start_with_readers(&db_path, Duration::from_secs(8)).await;
    let db = Client::new(quick(&server.endpoint).request_timeout(Duration::from_secs(60)));
    db.execute("CREATE TABLE t (a)", ())
        .await
        .unwrap()
        .check()
        .unwrap();
    let slow = tokio::spawn({
        let db = db.clone();
        async move { db.execute(ENDLESS_READ, ()).await }
    });
    // Same handle, same connection: served by the other reader and the
    // writer while the slow read runs, replies out of order.
    for i in 0..20 {
        let r = db
            .execute("INSERT INTO t VALUES (?)", [SqlValue::Integer(i)])
            .await
            .unwrap();
        assert_eq!(r.rowcount, Some(1));
    }
    let r = db.execute("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(r.items, vec![vec![SqlValue::Integer(20)]]);
    assert!(
        !slow.is_finished(),
        "the slow read is still running while the others were served"
    );
    let r = slow.await.unwrap().unwrap();
    assert!(r.error.unwrap().message.contains("time limit"));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_seen_at_once_when_the_connection_is_full() {
    let (mut router, endpoint) = scripted_server().await;
    let db = Client::new(quick(&endpoint).max_in_flight(1));
    let mut requests = Box::pin(async {
        tokio::join!(
            db.execute("SELECT 0", ()),
            db.execute("SELECT 1", ()),
            db.execute("SELECT 2", ()),
        )
    });
    // One poll hands all three to the connection (the hand-over is not
    // awaited), before `close` can run.
    tokio::select! {
        biased;
        _ = &mut requests => panic!("answered by nobody"),
        () = std::future::ready(()) => {}
    }
    let closer = db.clone();
    let (results, ()) = tokio::join!(requests, async {
        // One in flight (never answered), two waiting their turn.
        let _first = next_request(&mut router).await;
        tokio::time::timeout(Duration::from_secs(5), closer.close())
            .await
            .expect("close does not wait for a free place in flight");
    });
    for r in [results.0, results.1, results.2] {
        assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    }
}
