//! Network input never panics the engine and always gets a well-formed
//! reply: arbitrary bytes, and well-framed requests whose fields have
//! arbitrary types and values.

use std::sync::Arc;

use ironhouse_sqlite::exec::{Engine, Limits, Role, Shared};
use ironhouse_sqlite::wire::{self, Value};
use ironhouse_sqlite::AuthConfig;
use proptest::prelude::*;

fn engine() -> Engine {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t (a, b)").unwrap();
    Engine::new(
        conn,
        Role::Writer,
        AuthConfig::default(),
        Arc::new(Shared::default()),
        Limits::default(),
    )
}

/// The reply decodes to `{"items": [...], "error": nil | {type, message}, ...}`.
fn well_formed(reply: &[u8]) {
    let raw = wire::decompress(reply, 1 << 26).expect("reply is zlib");
    let v = wire::unpack(&raw).expect("reply is msgpack");
    assert!(matches!(v.subscript("items"), Ok(Value::Array(_))), "{v:?}");
    match v.subscript("error").expect("error key") {
        Value::Nil => {}
        e => {
            assert!(matches!(e.subscript("type"), Ok(Value::Str(_))));
            assert!(matches!(e.subscript("message"), Ok(Value::Str(_))));
        }
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f64>().prop_map(Value::Float),
        "[ -~]{0,12}".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bin),
        (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(c, d)| Value::Ext(if c == -1 { 0 } else { c }, d)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z]{1,3}".prop_map(Value::Str), inner), 0..4)
                .prop_map(Value::Map),
        ]
    })
}

fn query() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Str("SELECT ?, ?".into())),
        Just(Value::Str("INSERT INTO t VALUES (?, ?)".into())),
        Just(Value::Str("INSERT INTO t VALUES (:a, :b)".into())),
        Just(Value::Str("UPDATE t SET a = ? WHERE b = ?".into())),
        Just(Value::Str("DELETE FROM t".into())),
        Just(Value::Str("SELECT * FROM t; SELECT 1".into())),
        Just(Value::Str("BEGIN".into())),
        Just(Value::Str("COMMIT".into())),
        "[ -~]{0,30}".prop_map(Value::Str),
        value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_get_an_error_reply(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut e = engine();
        well_formed(&e.handle(&body));
        let mut zipped = wire::compress(&body);
        well_formed(&e.handle(&zipped));
        zipped.truncate(zipped.len() / 2);
        well_formed(&e.handle(&zipped));
    }

    #[test]
    fn arbitrary_fields_get_a_reply(
        requests in proptest::collection::vec(
            (query(), value(), value(), value(), any::<bool>()), 1..6)
    ) {
        // A sequence on one engine: shared cursor and transaction state too.
        let mut e = engine();
        for (q, params, many, script, drop_key) in requests {
            let mut entries = vec![
                (Value::Str("client_id".into()), Value::Str("fuzz".into())),
                (Value::Str("query".into()), q),
                (Value::Str("params".into()), params),
                (Value::Str("execute_many".into()), many),
                (Value::Str("execute_script".into()), script),
            ];
            if drop_key {
                entries.remove(2);
            }
            let mut raw = Vec::new();
            wire::pack(&mut raw, &Value::Map(entries));
            well_formed(&e.handle(&wire::compress(&raw)));
        }
    }
}
