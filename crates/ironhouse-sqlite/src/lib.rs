//! # ironhouse-sqlite: a SQLite database served over ironhouse sockets
//!
//! A server that existing [sqlite_rx](https://pypi.org/project/sqlite-rx/)
//! 1.3.0 clients talk to unchanged (REQ client, `zlib(msgpack(map))` bodies,
//! the same `items`/`error`/`rowcount`/`lastrowid` replies CPython's `sqlite3`
//! gives), with ironhouse's CURVE encryption and ZAP-style allow-lists of
//! client keys; and a Rust client for it. It is not a general SQL proxy: one
//! database per server, one statement (or script) per request.
//!
//! - [`server`]: the server (threads, shutdown, backups);
//! - [`client`]: the Rust client (Lazy Pirate retries);
//! - [`exec`]: running a request with CPython `sqlite3` semantics;
//! - [`wire`]: the zlib + MessagePack codec, with Python's error texts;
//! - [`authz`]: the SQL authorizer config (sqlite_rx's `auth_config`);
//! - [`sql`]: the text-level SQL rules CPython applies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod authz;
mod bind;
pub mod client;
pub mod exec;
pub mod server;
pub mod sql;
pub mod wire;

pub use authz::AuthConfig;
pub use wire::PyError;
