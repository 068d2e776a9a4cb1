//! Relay scenarios, mirroring `bench/tlspyo_anchor.py` (and, for fan-out,
//! `bench/nats_anchor`): a relay and its endpoints, each on its own OS
//! thread with its own single-threaded runtime, over loopback TCP.
//!
//! - `relay-produce SIZE COUNT`: a consumer holds one big notify credit; a
//!   producer produces COUNT objects with at most 1000 in flight (the
//!   consumer's progress comes back through shared memory, as the anchor's
//!   comes through a pipe). Rate = (COUNT - 1) / (last - first arrival).
//! - `relay-broadcast SIZE COUNT`: the same with broadcasts, 4 in flight.
//! - `relay-rtt COUNT`: a 100 B broadcast ping-pong between two endpoints.
//! - `relay-fanout SUBS SIZE COUNT`: one publisher broadcasts COUNT objects
//!   to SUBS subscribers, as fast as it can; each subscriber times first to
//!   last arrival; the median subscriber's rate is reported, with losses.
//!
//! `--tls`: tls:// with a PLAIN password (tlspyo's TLS + password);
//! otherwise tcp:// without security (tlspyo's `security=None`, plain NATS).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ironhouse::security::SharedPassword;
use ironhouse::transport::tls::{TlsClient, TlsServer};
use ironhouse::{Bytes, Options, Security};
use ironhouse_relay::{Endpoint, Relay, Wait};

use super::{percentile, SelfSigned};
use crate::BoxError;

const PASSWORD: &str = "bench-password";
const DEADLINE: Duration = Duration::from_secs(170);

/// The sink's count of objects received, which the source waits on to keep
/// its window. The source sleeps rather than spins: on two cores a spinning
/// source takes CPU time from the relay and the sink it is waiting for.
#[derive(Default)]
struct Progress {
    got: AtomicU64,
    moved: tokio::sync::Notify,
}

impl Progress {
    fn get(&self) -> u64 {
        self.got.load(Ordering::Acquire)
    }

    fn advance(&self, got: u64) {
        self.got.store(got, Ordering::Release);
        self.moved.notify_one();
    }

    /// Returns once the count exceeds `n`, or after 100 ms (so the caller
    /// can check its deadline).
    async fn wait_beyond(&self, n: u64) {
        let moved = self.moved.notified();
        if self.get() > n {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), moved).await;
    }
}

/// Security of the relay and its endpoints for one run.
#[derive(Clone)]
struct Setup {
    tls: Option<(TlsServer, TlsClient)>,
}

impl Setup {
    fn new(tls: bool) -> Result<Setup, BoxError> {
        let tls = if tls {
            let SelfSigned { cert, key } = SelfSigned::generate()?;
            let server = TlsServer::from_der(vec![cert], key)?;
            let client = TlsClient::pinned(server.fingerprint());
            Some((server, client))
        } else {
            None
        };
        Ok(Setup { tls })
    }

    fn relay_options(&self) -> Options {
        match &self.tls {
            Some((server, _)) => Options::default()
                .tls_server(server.clone())
                .security(Security::plain_server(SharedPassword::new(PASSWORD))),
            None => Options::default(),
        }
    }

    fn endpoint_options(&self) -> Options {
        match &self.tls {
            Some((_, client)) => Options::default()
                .tls_client(client.clone())
                .security(Security::plain_client("bench", PASSWORD)),
            None => Options::default(),
        }
    }

    fn bind(&self) -> &'static str {
        if self.tls.is_some() {
            "tls://127.0.0.1:0"
        } else {
            "tcp://127.0.0.1:0"
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Starts the relay on its own thread; returns its URL and a stopper.
fn start_relay(setup: &Setup) -> Result<(String, std::sync::mpsc::Sender<()>), BoxError> {
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let setup = setup.clone();
    std::thread::spawn(move || {
        let rt = runtime().expect("runtime");
        rt.block_on(async move {
            let relay = match Relay::builder()
                .bind(setup.bind())
                .options(setup.relay_options())
                .start()
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = url_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = url_tx.send(Ok(relay.endpoints()[0].clone()));
            // Wait for the stop signal without blocking the runtime.
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            relay.stop().await;
        });
    });
    let url = url_rx.recv_timeout(Duration::from_secs(30))??;
    Ok((url, stop_tx))
}

async fn endpoint(url: &str, group: &str, setup: &Setup) -> Result<Endpoint, BoxError> {
    let ep = Endpoint::builder(url)
        .group(group)
        .options(setup.endpoint_options())
        .queue_capacity(1 << 20)
        .connect()
        .await?;
    ep.wait_joined(Duration::from_secs(30)).await?;
    Ok(ep)
}

fn object(seq: u64, size: usize) -> Bytes {
    let mut v = vec![0u8; size.max(8)];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    Bytes::from(v)
}

fn seq_of(b: &[u8]) -> u64 {
    b.get(..8)
        .and_then(|s| s.try_into().ok())
        .map_or(u64::MAX, u64::from_le_bytes)
}

/// produce (work queue) or broadcast, windowed, measured at the sink.
pub fn flow(produce: bool, size: usize, count: u64, tls: bool) -> Result<String, BoxError> {
    let count = count.max(2);
    let window: u64 = if produce { 1000 } else { 4 };
    let setup = Setup::new(tls)?;
    let (url, stop) = start_relay(&setup)?;
    let progress = Arc::new(Progress::default());
    let ready = Arc::new(Barrier::new(2));
    let failed = Arc::new(AtomicBool::new(false));

    let sink = {
        let (url, setup, progress, ready, failed) = (
            url.clone(),
            setup.clone(),
            progress.clone(),
            ready.clone(),
            failed.clone(),
        );
        std::thread::spawn(move || -> Result<(f64, bool), String> {
            let rt = runtime().map_err(|e| e.to_string())?;
            let r = rt.block_on(async {
                let ep = endpoint(&url, "cons", &setup).await?;
                if produce {
                    ep.notify("cons", count as i64).await?;
                }
                ready.wait();
                let (mut got, mut first, mut last, mut order_ok) = (0u64, None, None, true);
                let deadline = Instant::now() + DEADLINE;
                while got < count {
                    if failed.load(Ordering::Relaxed) || Instant::now() > deadline {
                        return Err::<_, BoxError>(format!("received {got} of {count}").into());
                    }
                    for r in ep
                        .receive_all_raw(Wait::For(Duration::from_millis(200)))
                        .await
                    {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = Some(now);
                        order_ok &= seq_of(&r.payload) == got;
                        got += 1;
                    }
                    progress.advance(got);
                }
                ep.stop().await;
                let secs = (last.unwrap() - first.unwrap()).as_secs_f64();
                Ok(((count - 1) as f64 / secs, order_ok))
            });
            r.map_err(|e| e.to_string())
        })
    };

    let source = {
        let (url, setup, progress, failed) = (url, setup, progress, failed.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let rt = runtime().map_err(|e| e.to_string())?;
            let r = rt.block_on(async {
                let ep = endpoint(&url, "src", &setup).await?;
                ready.wait();
                let dest = vec![("cons", if produce { 1 } else { -1 })];
                let deadline = Instant::now() + DEADLINE;
                for seq in 0..count {
                    while seq >= progress.get() + window {
                        if failed.load(Ordering::Relaxed) || Instant::now() > deadline {
                            return Err::<_, BoxError>("the sink stopped".into());
                        }
                        progress.wait_beyond(seq - window).await;
                    }
                    ep.send_bytes(object(seq, size), dest.clone()).await?;
                }
                ep.flush(DEADLINE).await?;
                // Stay until the sink has everything (the relay may still
                // be sending).
                while progress.get() < count
                    && !failed.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ep.stop().await;
                Ok(())
            });
            r.map_err(|e| e.to_string())
        })
    };
    let src = source.join().map_err(|_| "source panicked")?;
    if src.is_err() {
        failed.store(true, Ordering::Relaxed);
    }
    let snk = sink.join().map_err(|_| "sink panicked")?;
    let _ = stop.send(());
    src?;
    let (rate, order_ok) = snk?;
    if !order_ok {
        return Err("objects arrived out of order".into());
    }
    Ok(format!(
        "{{\"impl\":\"ironhouse\",\"mode\":\"{}\",\"security\":\"{}\",\"size\":{size},\"count\":{count},\"window\":{window},\"objs_per_sec\":{rate:.1},\"mb_per_sec\":{:.2}}}",
        if produce { "produce" } else { "broadcast" },
        if tls { "tls" } else { "none" },
        rate * size as f64 / 1e6
    ))
}

/// 100 B broadcast ping-pong through the relay.
pub fn rtt(count: u64, tls: bool) -> Result<String, BoxError> {
    let setup = Setup::new(tls)?;
    let (url, stop) = start_relay(&setup)?;
    let ready = Arc::new(Barrier::new(2));
    let done = Arc::new(AtomicBool::new(false));
    let echo = {
        let (url, setup, ready, done) = (url.clone(), setup.clone(), ready.clone(), done.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let rt = runtime().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let ep = endpoint(&url, "cons", &setup).await?;
                ready.wait();
                while !done.load(Ordering::Relaxed) {
                    for r in ep
                        .receive_all_raw(Wait::For(Duration::from_millis(100)))
                        .await
                    {
                        ep.send_bytes(r.payload, "src").await?;
                    }
                }
                ep.stop().await;
                Ok::<_, BoxError>(())
            })
            .map_err(|e| e.to_string())
        })
    };
    let warmup = (count / 10).max(10);
    let result = (|| -> Result<Vec<f64>, BoxError> {
        let rt = runtime()?;
        rt.block_on(async {
            let ep = endpoint(&url, "src", &setup).await?;
            ready.wait();
            let mut rtts = Vec::with_capacity(count as usize);
            for i in 0..count + warmup {
                let t0 = Instant::now();
                ep.send_bytes(object(i, 100), "cons").await?;
                let got = ep.pop_raw(1, Wait::For(Duration::from_secs(10))).await;
                if got.is_empty() {
                    return Err::<_, BoxError>(format!("no pong {i} within 10 s").into());
                }
                if i >= warmup {
                    rtts.push(t0.elapsed().as_secs_f64() * 1e6);
                }
            }
            ep.stop().await;
            Ok(rtts)
        })
    })();
    done.store(true, Ordering::Relaxed);
    let echoed = echo.join().map_err(|_| "echo panicked")?;
    let _ = stop.send(());
    let mut rtts = result?;
    echoed?;
    rtts.sort_by(f64::total_cmp);
    Ok(format!(
        "{{\"impl\":\"ironhouse\",\"mode\":\"rtt\",\"security\":\"{}\",\"size\":100,\"count\":{count},\"median_us\":{:.1},\"p99_us\":{:.1}}}",
        if tls { "tls" } else { "none" },
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99)
    ))
}

/// One publisher, `subs` subscribers, broadcasts as fast as possible.
pub fn fanout(subs: usize, size: usize, count: u64) -> Result<String, BoxError> {
    let count = count.max(2);
    let setup = Setup::new(false)?;
    let (url, stop) = start_relay(&setup)?;
    let ready = Arc::new(Barrier::new(subs + 1));
    let mut sinks = Vec::new();
    for _ in 0..subs {
        let (url, setup, ready) = (url.clone(), setup.clone(), ready.clone());
        sinks.push(std::thread::spawn(move || -> Result<(f64, u64), String> {
            let rt = runtime().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let ep = endpoint(&url, "fan", &setup).await?;
                ready.wait();
                let (mut got, mut first, mut last, mut top) = (0u64, None, None, 0u64);
                let deadline = Instant::now() + DEADLINE;
                // Until the last object arrives (a loss shows as a gap).
                while top + 1 < count && Instant::now() < deadline {
                    for r in ep
                        .receive_all_raw(Wait::For(Duration::from_millis(500)))
                        .await
                    {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = Some(now);
                        top = top.max(seq_of(&r.payload));
                        got += 1;
                    }
                }
                ep.stop().await;
                let (Some(f), Some(l)) = (first, last) else {
                    return Err::<_, BoxError>("received nothing".into());
                };
                Ok(((got.max(2) - 1) as f64 / (l - f).as_secs_f64(), count - got))
            })
            .map_err(|e| e.to_string())
        }));
    }
    let publish = (|| -> Result<f64, BoxError> {
        let rt = runtime()?;
        rt.block_on(async {
            let ep = endpoint(&url, "pub", &setup).await?;
            ready.wait();
            let t0 = Instant::now();
            for seq in 0..count {
                ep.send_bytes(object(seq, size), "fan").await?;
            }
            ep.flush(DEADLINE).await?;
            let rate = count as f64 / t0.elapsed().as_secs_f64();
            ep.stop().await;
            Ok(rate)
        })
    })();
    let mut rates = Vec::new();
    let mut lost = 0;
    for s in sinks {
        let (rate, l) = s.join().map_err(|_| "subscriber panicked")??;
        rates.push(rate);
        lost += l;
    }
    let _ = stop.send(());
    let pub_rate = publish?;
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    Ok(format!(
        "{{\"impl\":\"ironhouse\",\"mode\":\"fanout\",\"subs\":{subs},\"size\":{size},\"count\":{count},\"msgs_per_sec\":{median:.1},\"mb_per_sec\":{:.2},\"pub_msgs_per_sec\":{pub_rate:.1},\"lost\":{lost}}}",
        median * size as f64 / 1e6
    ))
}
