//! `ironhouse bench`: the Rust side of the benchmark harness (`bench/run.py`).
//! Arguments, thread layout and the one-line JSON output mirror
//! `bench/zmq_bench.c`, so the two are measured the same way; see
//! `bench/README.md` for the rules.
//!
//! Layout: two OS threads (one per side), each running its own tokio
//! runtime; see [`runtime`] for the two layouts measured. libzmq's layout is
//! two application threads plus one I/O thread per context.
//!
//! `--tls` runs thr/lat/hs over `tls://127.0.0.1` with a fresh in-memory
//! self-signed certificate (ECDSA P-256), the client pinning its
//! fingerprint; `rawtls` and `rawtls-hs` ([`rawtls`]) are the raw rustls
//! anchors for those scenarios.

mod rawtls;
mod relay;

use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use ironhouse::transport::tls::{TlsClient, TlsServer};
use ironhouse::{Bytes, CurveKeyPair, Message, Options, Security, Socket, SocketType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Flags of `ironhouse bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// thr, lat, hs, rawtls (raw rustls stream throughput) or rawtls-hs
    /// (raw rustls connect + handshake + first round trip).
    mode: String,
    /// thr/lat/rawtls: message size in bytes; hs/rawtls-hs: the count.
    first: u64,
    /// thr/lat/rawtls: message count.
    second: Option<u64>,
    /// relay-fanout: the count (after SUBS and SIZE).
    third: Option<u64>,
    /// Use CURVE security.
    #[arg(long)]
    curve: bool,
    /// thr/lat/hs over tls:// (fresh self-signed ECDSA P-256 certificate,
    /// pinned by the client).
    #[arg(long)]
    tls: bool,
    /// thr: port to bind (default: any free port).
    #[arg(long)]
    port: Option<u16>,
}

use crate::BoxError;

/// The runtime for one side. `IRONHOUSE_BENCH_LAYOUT` chooses the layout:
/// `single` (default: application and its connections on one thread) or
/// `io-thread` (libzmq's: the application on its own thread, the connection
/// tasks on one tokio worker). BENCHMARKS.md reports both.
fn runtime() -> tokio::runtime::Runtime {
    match std::env::var("IRONHOUSE_BENCH_LAYOUT").as_deref() {
        Ok("io-thread") => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime")
}

/// Runs one scenario and prints its JSON line.
pub fn run(args: Args) -> Result<ExitCode, crate::BoxError> {
    if args.mode.starts_with("relay-") {
        let line =
            match (args.mode.as_str(), args.second, args.third) {
                ("relay-produce", Some(count), None) => {
                    relay::flow(true, args.first as usize, count, args.tls)?
                }
                ("relay-broadcast", Some(count), None) => {
                    relay::flow(false, args.first as usize, count, args.tls)?
                }
                ("relay-rtt", None, None) => relay::rtt(args.first, args.tls)?,
                ("relay-fanout", Some(size), Some(count)) if !args.tls => {
                    relay::fanout(args.first as usize, size as usize, count)?
                }
                _ => return Err(
                    "usage: ironhouse bench relay-produce SIZE COUNT | relay-broadcast SIZE COUNT \
                     | relay-rtt COUNT (each with optional --tls) | relay-fanout SUBS SIZE COUNT"
                        .into(),
                ),
            };
        println!("{line}");
        return Ok(ExitCode::SUCCESS);
    }
    let raw = args.mode.starts_with("rawtls");
    if raw && (args.curve || args.tls || args.port.is_some()) {
        return Err("rawtls and rawtls-hs take no --curve, --tls or --port".into());
    }
    let sec = Keys::new(args.curve, args.tls)?;
    let line = match (args.mode.as_str(), args.second) {
        ("thr", Some(count)) => thr(args.first as usize, count, args.port, &sec)?,
        ("lat", Some(count)) => lat(args.first as usize, count, &sec)?,
        ("hs", None) => hs(args.first, &sec)?,
        ("rawtls", Some(count)) => rawtls::thr(args.first as usize, count)?,
        ("rawtls-hs", None) => rawtls::hs(args.first)?,
        _ => {
            return Err(
                "usage: ironhouse bench thr SIZE COUNT [--port P] | lat SIZE COUNT | hs COUNT \
                 (each with optional --curve, --tls) | rawtls SIZE COUNT | rawtls-hs COUNT"
                    .into(),
            )
        }
    };
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

/// A self-signed ECDSA P-256 certificate for 127.0.0.1, made in memory
/// for one run.
pub(crate) struct SelfSigned {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl SelfSigned {
    fn generate() -> Result<SelfSigned, BoxError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.self_signed(&key)?;
        Ok(SelfSigned {
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

/// Fresh CURVE keys for one run (as zmq_bench.c makes with
/// zmq_curve_keypair), or none; and a fresh TLS certificate with its pin,
/// or none. The bound side is the server; no authenticator, like the C
/// side's absent ZAP handler.
#[derive(Clone)]
struct Keys {
    curve: Option<(CurveKeyPair, CurveKeyPair)>,
    /// One client for the whole run: its configuration (and session cache)
    /// is shared by every connection, as an application's would be.
    tls: Option<(TlsServer, TlsClient)>,
}

impl Keys {
    fn new(curve: bool, tls: bool) -> Result<Self, BoxError> {
        let tls = if tls {
            let SelfSigned { cert, key } = SelfSigned::generate()?;
            let server = TlsServer::from_der(vec![cert], key)?;
            let client = TlsClient::pinned(server.fingerprint());
            Some((server, client))
        } else {
            None
        };
        Ok(Keys {
            curve: curve.then(|| (CurveKeyPair::generate(), CurveKeyPair::generate())),
            tls,
        })
    }
    fn curve(&self) -> bool {
        self.curve.is_some()
    }
    fn tls(&self) -> bool {
        self.tls.is_some()
    }
    /// Where the bound side listens (any free port).
    fn bind_endpoint(&self, port: Option<u16>) -> String {
        let scheme = if self.tls() { "tls" } else { "tcp" };
        format!("{scheme}://127.0.0.1:{}", port.unwrap_or(0))
    }
    fn server(&self, mut o: Options) -> Options {
        if let Some((server, _)) = &self.curve {
            o = o.security(Security::stonehouse(server.clone()));
        }
        if let Some((server, _)) = &self.tls {
            o = o.tls_server(server.clone());
        }
        o
    }
    fn client(&self, mut o: Options) -> Options {
        if let Some((server, client)) = &self.curve {
            o = o.security(Security::curve_client(client.clone(), server.public));
        }
        if let Some((_, client)) = &self.tls {
            o = o.tls_client(client.clone());
        }
        o
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn thr(size: usize, count: u64, port: Option<u16>, keys: &Keys) -> Result<String, BoxError> {
    let (server_keys, client_keys) = (keys.clone(), keys.clone());
    let (ep_tx, ep_rx) = std_mpsc::channel::<String>();
    let receiver = std::thread::spawn(move || -> Result<f64, BoxError> {
        runtime().block_on(async move {
            let mut pull =
                Socket::with_options(SocketType::Pull, server_keys.server(Options::default()));
            let ep = pull.bind(&server_keys.bind_endpoint(port)).await?;
            ep_tx.send(ep.to_string())?;
            let first = pull.recv().await?;
            let start = Instant::now();
            let mut bad = usize::from(first.size() != size);
            for _ in 1..count {
                bad += usize::from(pull.recv().await?.size() != size);
            }
            let elapsed = start.elapsed().as_secs_f64();
            if bad > 0 {
                return Err(format!("{bad} messages had the wrong size").into());
            }
            pull.close().await;
            Ok(elapsed)
        })
    });
    let ep = ep_rx.recv_timeout(Duration::from_secs(30))?;
    let sender = std::thread::spawn(move || -> Result<(), BoxError> {
        runtime().block_on(async move {
            let mut push = Socket::with_options(
                SocketType::Push,
                client_keys.client(Options::default().linger(None)),
            );
            push.connect(&ep).await?;
            for _ in 0..count {
                // A fresh, filled buffer per message, as the C side does.
                push.send(Message::from(Bytes::from(vec![b'x'; size])))
                    .await?;
            }
            push.close().await;
            Ok(())
        })
    });
    sender.join().map_err(|_| "sender thread panicked")??;
    let elapsed = receiver.join().map_err(|_| "receiver thread panicked")??;
    // COUNT over first-to-last, the libzmq local_thr convention used by zmq_bench.c.
    let rate = count as f64 / elapsed.max(1e-9);
    Ok(format!(
        "{{\"impl\":\"ironhouse\",\"mode\":\"thr\",\"size\":{size},\"count\":{count},\"curve\":{},\"tls\":{},\"msgs_per_sec\":{rate:.1},\"mb_per_sec\":{:.1}}}",
        keys.curve(),
        keys.tls(),
        rate * size as f64 / 1e6
    ))
}

fn echo_server(
    total: u64,
    keys: &Keys,
) -> Result<(String, std::thread::JoinHandle<Result<(), BoxError>>), BoxError> {
    let keys = keys.clone();
    let (ep_tx, ep_rx) = std_mpsc::channel::<String>();
    let server = std::thread::spawn(move || -> Result<(), BoxError> {
        runtime().block_on(async move {
            let mut rep = Socket::with_options(SocketType::Rep, keys.server(Options::default()));
            let ep = rep.bind(&keys.bind_endpoint(None)).await?;
            ep_tx.send(ep.to_string())?;
            for _ in 0..total {
                let m = rep.recv().await?;
                rep.send(m).await?;
            }
            rep.close().await;
            Ok(())
        })
    });
    Ok((ep_rx.recv_timeout(Duration::from_secs(30))?, server))
}

const WARMUP: u64 = 1000;

fn lat(size: usize, count: u64, keys: &Keys) -> Result<String, BoxError> {
    let (ep, server) = echo_server(count + WARMUP, keys)?;
    let client = keys.clone();
    let mut rtts = runtime().block_on(async move {
        let mut req = Socket::with_options(SocketType::Req, client.client(Options::default()));
        req.connect(&ep).await?;
        let payload = Bytes::from(vec![b'x'; size]);
        let mut rtts = Vec::with_capacity(count as usize);
        for i in 0..count + WARMUP {
            let t = Instant::now();
            req.send(payload.clone()).await?;
            let reply = req.recv().await?;
            if reply.size() != size {
                return Err::<Vec<f64>, BoxError>("reply has the wrong size".into());
            }
            if i >= WARMUP {
                rtts.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        req.close().await;
        Ok(rtts)
    })?;
    server.join().map_err(|_| "server thread panicked")??;
    rtts.sort_by(f64::total_cmp);
    Ok(format!(
        "{{\"impl\":\"ironhouse\",\"mode\":\"lat\",\"size\":{size},\"count\":{count},\"curve\":{},\"tls\":{},\"median_us\":{:.1},\"p99_us\":{:.1}}}",
        keys.curve(),
        keys.tls(),
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99)
    ))
}

fn hs(count: u64, keys: &Keys) -> Result<String, BoxError> {
    let (ep, server) = echo_server(count, keys)?;
    let client = keys.clone();
    let mut times = runtime().block_on(async move {
        let payload = Bytes::from(vec![b'x'; 64]);
        let mut times = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let t = Instant::now();
            let mut req = Socket::with_options(
                SocketType::Req,
                client.client(Options::default().linger(Some(Duration::ZERO))),
            );
            req.connect(&ep).await?;
            req.send(payload.clone()).await?;
            req.recv().await?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            req.close().await;
        }
        Ok::<_, BoxError>(times)
    })?;
    server.join().map_err(|_| "server thread panicked")??;
    times.sort_by(f64::total_cmp);
    Ok(format!(
        "{{\"impl\":\"ironhouse\",\"mode\":\"hs\",\"count\":{count},\"curve\":{},\"tls\":{},\"median_us\":{:.1},\"p99_us\":{:.1}}}",
        keys.curve(),
        keys.tls(),
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    ))
}
