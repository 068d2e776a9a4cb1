//! Helpers shared by the integration tests: bounded waits, unique ipc paths,
//! monitor-event matching and a hand-written ZMTP 3.1 peer for raw tests.
//!
//! Every wait here is bounded: a hang fails the test instead of blocking CI.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ironhouse::{Message, Socket, SocketEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

/// Upper bound for anything that should happen "soon".
pub const WAIT: Duration = Duration::from_secs(10);
/// How long to watch an operation that must *not* complete (a blocked send).
pub const BLOCKED: Duration = Duration::from_millis(300);

/// Awaits `fut` for at most [`WAIT`], panicking with `what` on a timeout.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Receives one message, bounded, and unwraps it.
pub async fn recv(sock: &mut Socket) -> Message {
    within("recv", sock.recv())
        .await
        .unwrap_or_else(|e| panic!("recv failed: {e}"))
}

/// Sends one message, bounded, and unwraps it.
pub async fn send(sock: &mut Socket, msg: impl Into<Message>) {
    within("send", sock.send(msg))
        .await
        .unwrap_or_else(|e| panic!("send failed: {e}"))
}

/// The frames of a message as byte vectors, for easy comparisons.
pub fn frames(msg: &Message) -> Vec<Vec<u8>> {
    msg.frames().iter().map(|f| f.to_vec()).collect()
}

/// The single frame of a one-frame message.
pub fn single(msg: &Message) -> Vec<u8> {
    assert_eq!(msg.len(), 1, "expected one frame, got {:?}", frames(msg));
    msg.frames()[0].to_vec()
}

/// Waits until `sock` has exactly `n` connected peers (bounded).
pub async fn wait_peers(sock: &Socket, n: usize) {
    for _ in 0..1000 {
        if sock.connected_peers() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "socket has {} connected peers, expected {n}",
        sock.connected_peers()
    );
}

/// A fresh ipc endpoint in the temp dir, unique per process and call.
pub fn ipc_endpoint(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "ironhouse-it-{}-{n}-{nanos}-{tag}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    format!("ipc://{}", path.display())
}

/// The two transports every pattern test runs over: a loopback TCP
/// endpoint to bind (port chosen by the OS) and a fresh ipc path.
pub fn bind_endpoints(tag: &str) -> [String; 2] {
    ["tcp://127.0.0.1:*".to_string(), ipc_endpoint(tag)]
}

/// Waits (bounded) for a monitor event accepted by `pred`; returns it.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<SocketEvent>,
    what: &str,
    mut pred: impl FnMut(&SocketEvent) -> bool,
) -> SocketEvent {
    let fut = async {
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            match rx.recv().await {
                Ok(ev) if pred(&ev) => return ev,
                Ok(ev) => seen.push(ev),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        panic!("no {what} event; saw {seen:?}");
    };
    match tokio::time::timeout(WAIT, fut).await {
        Ok(ev) => ev,
        Err(_) => panic!("timed out waiting for a {what} event"),
    }
}

/// Waits for `HandshakeFailed` from `peer` (any peer if `None`) and returns its reason.
pub async fn wait_handshake_failed(
    rx: &mut broadcast::Receiver<SocketEvent>,
    peer: Option<&str>,
) -> String {
    let ev = wait_event(rx, "HandshakeFailed", |ev| {
        matches!(ev, SocketEvent::HandshakeFailed { peer: p, .. } if peer.is_none_or(|want| p == want))
    })
    .await;
    match ev {
        SocketEvent::HandshakeFailed { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// Waits for `Disconnected` from `peer` (any peer if `None`) and returns its reason.
pub async fn wait_disconnected(
    rx: &mut broadcast::Receiver<SocketEvent>,
    peer: Option<&str>,
) -> Option<String> {
    let ev = wait_event(rx, "Disconnected", |ev| {
        matches!(ev, SocketEvent::Disconnected { peer: p, .. } if peer.is_none_or(|want| p == want))
    })
    .await;
    match ev {
        SocketEvent::Disconnected { reason, .. } => reason,
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------
// A raw ZMTP 3.1 peer, bytes written by hand (RFC 23).
// ---------------------------------------------------------------------------

/// A 64-byte greeting: signature, version, mechanism "NULL", as-server 0.
pub fn greeting(major: u8, minor: u8) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF; // signature: 0xFF, 8 padding bytes, 0x7F
    g[9] = 0x7F;
    g[10] = major;
    g[11] = minor;
    g[12..16].copy_from_slice(b"NULL"); // mechanism, zero-padded to 20 bytes
    g[32] = 0; // as-server
    g // 31 filler bytes stay zero
}

/// A frame header: flags, then a 1-byte size or (LONG flag) an 8-byte size.
pub fn frame_header(flags: u8, len: u64) -> Vec<u8> {
    if len <= 255 {
        vec![flags, len as u8]
    } else {
        let mut h = vec![flags | 0x02];
        h.extend_from_slice(&len.to_be_bytes());
        h
    }
}

/// A whole frame. `more` sets the MORE flag.
pub fn data_frame(more: bool, body: &[u8]) -> Vec<u8> {
    let mut f = frame_header(u8::from(more), body.len() as u64);
    f.extend_from_slice(body);
    f
}

/// A READY command with the given properties (name, value).
pub fn ready(props: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = vec![5u8];
    body.extend_from_slice(b"READY");
    for (name, value) in props {
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut cmd = frame_header(0x04, body.len() as u64);
    cmd.extend_from_slice(&body);
    cmd
}

/// One frame read from a raw stream.
#[derive(Debug)]
pub struct RawFrame {
    pub flags: u8,
    pub body: Vec<u8>,
}

impl RawFrame {
    pub fn is_command(&self) -> bool {
        self.flags & 0x04 != 0
    }
    /// The command name, for command frames.
    pub fn command_name(&self) -> Option<&[u8]> {
        let n = *self.body.first()? as usize;
        self.body.get(1..1 + n)
    }
}

/// Reads one frame (bounded).
pub async fn read_frame(s: &mut TcpStream) -> std::io::Result<RawFrame> {
    within("read a frame", async {
        let flags = s.read_u8().await?;
        let len = if flags & 0x02 != 0 {
            s.read_u64().await?
        } else {
            u64::from(s.read_u8().await?)
        };
        assert!(len < 1 << 20, "unexpectedly large frame from peer: {len}");
        let mut body = vec![0u8; len as usize];
        s.read_exact(&mut body).await?;
        Ok(RawFrame { flags, body })
    })
    .await
}

/// Connects to `addr`, sends a 3.1 greeting and READY(`socket_type`), and
/// reads the peer's greeting and READY: a raw peer ready for traffic.
pub async fn raw_handshake(addr: &str, socket_type: &str) -> TcpStream {
    raw_handshake_with(addr, &greeting(3, 1), socket_type).await
}

/// [`raw_handshake`] with our own greeting bytes.
pub async fn raw_handshake_with(addr: &str, our_greeting: &[u8], socket_type: &str) -> TcpStream {
    let mut s = within("raw connect", TcpStream::connect(addr))
        .await
        .expect("raw connect");
    s.write_all(our_greeting).await.unwrap();
    s.write_all(&ready(&[("Socket-Type", socket_type.as_bytes())]))
        .await
        .unwrap();
    let mut g = [0u8; 64];
    within("peer greeting", s.read_exact(&mut g))
        .await
        .expect("peer greeting");
    assert_eq!((g[0], g[9], g[10]), (0xFF, 0x7F, 3), "peer greeting {g:?}");
    let r = read_frame(&mut s).await.expect("peer READY");
    assert!(
        r.is_command() && r.command_name() == Some(b"READY"),
        "{r:?}"
    );
    s
}

/// Reads until the peer closes the connection (EOF or a reset), bounded;
/// returns every byte received before that. Panics if it stays open.
pub async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let res = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        for _ in 0..100_000 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        panic!("peer kept sending");
    })
    .await;
    assert!(res.is_ok(), "the connection was not closed by the peer");
    all
}

/// The `tcp://ip:port` string a bound socket's monitor uses for this raw peer.
pub fn peer_name(s: &TcpStream) -> String {
    format!("tcp://{}", s.local_addr().unwrap())
}

/// `host:port` of a bound tcp endpoint, for raw `TcpStream::connect`.
pub fn tcp_addr(ep: &ironhouse::Endpoint) -> String {
    match ep {
        ironhouse::Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        ironhouse::Endpoint::Tcp { host, port } => format!("{host}:{port}"),
        other => panic!("not a tcp endpoint: {other}"),
    }
}
