//! The NATS anchor of ironhouse's relay fan-out benchmark (issue 5).
//!
//! `nats_anchor fanout URL SUBS SIZE COUNT [--timeout SECS]` measures core NATS
//! pub/sub fan-out against a running `nats-server` with the async-nats client,
//! in the thread layout of the reference measurement
//! (`shared/reference/performance_anchors.md` §3): one publisher thread and
//! SUBS subscriber threads, each an OS thread with its own current_thread
//! tokio runtime and its own connection. The publisher sends COUNT messages of
//! SIZE bytes with `publish()` and then `flush()`; each subscriber
//! (subscription_capacity COUNT+1024) times the span from its first message to
//! its last and checks every message's size.
//!
//! It prints ONE JSON line on stdout:
//! `{"impl":"nats","mode":"fanout","subs":N,"size":S,"count":C,"curve":false,
//!   "tls":false,"msgs_per_sec":..,"mb_per_sec":..,"pub_msgs_per_sec":..,"lost":L,
//!   "sub_msgs_per_sec":[..]}` where `msgs_per_sec` is the median over the
//! subscribers of each one's delivery rate (COUNT / (last - first), the
//! libzmq `local_thr` convention), `mb_per_sec` is that times SIZE / 10^6,
//! `pub_msgs_per_sec` is COUNT / (first publish .. flush done) and `lost` is
//! SUBS*COUNT minus the messages received. Every wait is bounded: a
//! subscriber gives up after 5 s without a message (counted from the
//! publisher's flush if none came yet), a failed setup or publisher stops the
//! others at once, and the whole run ends after `--timeout` seconds (default
//! 120). On any loss, timeout, wrong-sized
//! message or error it explains on stderr and exits 1; it prints the JSON line
//! only when the publisher finished (so a loss is still visible as `lost`, but
//! a failed setup never looks like a result). Usage errors exit 2.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{oneshot, watch};

const SUBJECT: &str = "bench.fanout";
/// A subscriber that has started receiving gives up after this long without a message.
const IDLE: Duration = Duration::from_secs(5);

struct Args {
    url: String,
    subs: usize,
    size: usize,
    count: u64,
    timeout: Duration,
}

const USAGE: &str = "usage: nats_anchor fanout URL SUBS SIZE COUNT [--timeout SECS]";

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let mut timeout = Duration::from_secs(120);
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        if a == "--timeout" {
            let v = it.next().ok_or("--timeout needs a value")?;
            let secs: f64 = v.parse().map_err(|_| format!("bad --timeout {v:?}"))?;
            if !(secs.is_finite() && secs > 0.0) {
                return Err(format!("bad --timeout {v:?}"));
            }
            timeout = Duration::from_secs_f64(secs);
        } else if a == "-h" || a == "--help" {
            return Err(String::new());
        } else {
            pos.push(a);
        }
    }
    if pos.len() != 5 || pos[0] != "fanout" {
        return Err("expected: fanout URL SUBS SIZE COUNT".into());
    }
    let num = |name: &str, v: &str| -> Result<u64, String> {
        match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name} must be a positive integer, got {v:?}")),
        }
    };
    let subs = num("SUBS", &pos[2])?;
    let size = num("SIZE", &pos[3])?;
    let count = num("COUNT", &pos[4])?;
    if subs > 256 {
        return Err("SUBS must be at most 256".into());
    }
    Ok(Args {
        url: pos[1].clone(),
        subs: subs as usize,
        size: size as usize,
        count,
        timeout,
    })
}

/// Where the run is; main and the publisher move it on, subscribers watch it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Clients connecting and subscribing.
    Setup,
    /// Everyone is ready: publish.
    Go,
    /// The publisher has published and flushed everything.
    Published,
    /// Setup or publishing failed: stop waiting.
    Aborted,
}

/// What one subscriber saw.
struct SubResult {
    received: u64,
    span: Option<Duration>, // first -> last message, if it got at least one
    error: Option<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

async fn connect(
    url: &str,
    capacity: usize,
    deadline: Instant,
) -> Result<async_nats::Client, String> {
    let opts = async_nats::ConnectOptions::new()
        .subscription_capacity(capacity)
        .connection_timeout(remaining(deadline).min(Duration::from_secs(10)))
        // A lost connection already spoils the run: give up after one retry
        // instead of reconnecting forever (the timeouts would catch it, later).
        .max_reconnects(1)
        .event_callback(|ev| async move {
            // Disconnects, slow-consumer notices and server errors explain a loss.
            if !matches!(ev, async_nats::Event::Connected | async_nats::Event::Closed) {
                eprintln!("nats_anchor: client event: {ev}");
            }
        });
    match tokio::time::timeout(remaining(deadline), opts.connect(url)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("connect to {url}: {e}")),
        Err(_) => Err(format!("connect to {url}: timed out")),
    }
}

/// Subscribes, proves the subscription is registered at the server (a message
/// it publishes to itself after the SUB comes back, and the server handles one
/// connection's commands in order), reports ready, then receives.
fn subscriber(
    idx: usize,
    a: &Args,
    deadline: Instant,
    ready: mpsc::Sender<Result<(), String>>,
    mut phase: watch::Receiver<Phase>,
) -> SubResult {
    let fail = |e: String| SubResult {
        received: 0,
        span: None,
        error: Some(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.clone()));
            return fail(e);
        }
    };
    let capacity = usize::try_from(a.count)
        .unwrap_or(usize::MAX)
        .saturating_add(1024);
    rt.block_on(async {
        let setup = async {
            let client = connect(&a.url, capacity, deadline).await?;
            let sub = client
                .subscribe(SUBJECT)
                .await
                .map_err(|e| format!("subscribe: {e}"))?;
            let probe_subject = format!("bench.ready.{idx}");
            let mut probe = client
                .subscribe(probe_subject.clone())
                .await
                .map_err(|e| format!("subscribe: {e}"))?;
            client
                .publish(probe_subject, Bytes::from_static(b"ready"))
                .await
                .map_err(|e| format!("publish probe: {e}"))?;
            client.flush().await.map_err(|e| format!("flush: {e}"))?;
            match tokio::time::timeout(remaining(deadline), probe.next()).await {
                Ok(Some(_)) => Ok((client, sub)),
                Ok(None) => Err("probe subscription closed".to_string()),
                Err(_) => Err("timed out waiting for the readiness probe".to_string()),
            }
        };
        let (client, mut sub) = match setup.await {
            Ok(v) => {
                let _ = ready.send(Ok(()));
                v
            }
            Err(e) => {
                let e = format!("subscriber {idx}: {e}");
                let _ = ready.send(Err(e.clone()));
                return fail(e);
            }
        };
        let mut received = 0u64;
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        let mut error = None;
        while received < a.count {
            // Before the first message, wait up to the overall deadline (the
            // publisher may still be waiting for the other subscribers), unless
            // the run is aborted or everything has been published already.
            let now_phase = *phase.borrow_and_update();
            if first.is_none() && now_phase == Phase::Aborted {
                error = Some(format!("subscriber {idx}: run aborted before any message"));
                break;
            }
            let wait = if first.is_none() && now_phase != Phase::Published {
                remaining(deadline)
            } else {
                IDLE.min(remaining(deadline))
            };
            let next = tokio::select! {
                r = tokio::time::timeout(wait, sub.next()) => r,
                changed = phase.changed(), if first.is_none() => {
                    if changed.is_err() {
                        error = Some(format!("subscriber {idx}: run abandoned"));
                        break;
                    }
                    continue; // re-evaluate the phase
                }
            };
            match next {
                Ok(Some(msg)) => {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    last = now;
                    if msg.payload.len() != a.size {
                        error = Some(format!(
                            "subscriber {idx}: message {} has {} bytes, expected {}",
                            received + 1,
                            msg.payload.len(),
                            a.size
                        ));
                        break;
                    }
                    received += 1;
                }
                Ok(None) => {
                    error = Some(format!(
                        "subscriber {idx}: subscription closed after {received}/{} messages",
                        a.count
                    ));
                    break;
                }
                Err(_) => {
                    error = Some(format!(
                        "subscriber {idx}: timed out after {received}/{} messages ({})",
                        a.count,
                        if first.is_none() {
                            "none arrived before the deadline".to_string()
                        } else {
                            format!("no message for {:.1} s", wait.as_secs_f64())
                        }
                    ));
                    break;
                }
            }
        }
        drop(sub);
        drop(client);
        SubResult {
            received,
            span: first.map(|f| last - f),
            error,
        }
    })
}

/// Connects, reports ready, waits for `go`, publishes COUNT messages then
/// flushes, and keeps the connection open until `done` (closing it early
/// could reset the connection before the server has read every byte).
fn publisher(
    a: &Args,
    deadline: Instant,
    ready: mpsc::Sender<Result<(), String>>,
    phase: &watch::Sender<Phase>,
    done: oneshot::Receiver<()>,
) -> Result<Duration, String> {
    let result = publish(a, deadline, ready, phase.subscribe(), done, phase);
    if result.is_err() {
        phase.send_replace(Phase::Aborted);
    }
    result
}

fn publish(
    a: &Args,
    deadline: Instant,
    ready: mpsc::Sender<Result<(), String>>,
    mut go: watch::Receiver<Phase>,
    done: oneshot::Receiver<()>,
    phase: &watch::Sender<Phase>,
) -> Result<Duration, String> {
    let rt = runtime()?;
    rt.block_on(async {
        let client = match connect(&a.url, 1024, deadline).await {
            Ok(c) => {
                let _ = ready.send(Ok(()));
                c
            }
            Err(e) => {
                let e = format!("publisher: {e}");
                let _ = ready.send(Err(e.clone()));
                return Err(e);
            }
        };
        match tokio::time::timeout(remaining(deadline), go.wait_for(|p| *p != Phase::Setup)).await {
            Ok(Ok(p)) if *p == Phase::Go => {}
            Ok(_) => return Err("publisher: not started (setup failed)".to_string()),
            Err(_) => return Err("publisher: timed out waiting to start".to_string()),
        }
        let payload = Bytes::from(vec![b'x'; a.size]);
        let publish_all = async {
            let t0 = Instant::now();
            for i in 0..a.count {
                client
                    .publish(SUBJECT, payload.clone())
                    .await
                    .map_err(|e| format!("publisher: publish {}/{}: {e}", i + 1, a.count))?;
            }
            client
                .flush()
                .await
                .map_err(|e| format!("publisher: flush: {e}"))?;
            Ok::<_, String>(t0.elapsed())
        };
        let elapsed = match tokio::time::timeout(remaining(deadline), publish_all).await {
            Ok(r) => r?,
            Err(_) => return Err("publisher: timed out publishing".to_string()),
        };
        phase.send_replace(Phase::Published);
        // Keep the connection (and its runtime, which answers server PINGs) alive
        // until the subscribers are done.
        let _ = tokio::time::timeout(remaining(deadline), done).await;
        drop(client);
        Ok(elapsed)
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("nats_anchor: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let deadline = Instant::now() + a.timeout;
    let (ready_tx, ready_rx) = mpsc::channel();
    let (phase_tx, _) = watch::channel(Phase::Setup);
    let (done_tx, done_rx) = oneshot::channel();

    let (sub_results, pub_result, setup_errors) = thread::scope(|s| {
        let a = &a;
        let subs: Vec<_> = (0..a.subs)
            .map(|i| {
                let ready = ready_tx.clone();
                let phase = phase_tx.subscribe();
                s.spawn(move || subscriber(i, a, deadline, ready, phase))
            })
            .collect();
        let publisher = {
            let ready = ready_tx.clone();
            let phase = &phase_tx;
            s.spawn(move || publisher(a, deadline, ready, phase, done_rx))
        };
        drop(ready_tx);
        // Everyone connected (and every subscription registered) before publishing.
        let mut setup_errors = Vec::new();
        for _ in 0..=a.subs {
            match ready_rx.recv_timeout(remaining(deadline)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => setup_errors.push(e),
                Err(_) => {
                    setup_errors.push("timed out waiting for the clients to be ready".into());
                    break;
                }
            }
        }
        phase_tx.send_replace(if setup_errors.is_empty() {
            Phase::Go
        } else {
            Phase::Aborted
        });
        let sub_results: Vec<SubResult> = subs
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| SubResult {
                    received: 0,
                    span: None,
                    error: Some("a subscriber thread panicked".into()),
                })
            })
            .collect();
        let _ = done_tx.send(());
        let pub_result = publisher
            .join()
            .unwrap_or_else(|_| Err("the publisher thread panicked".into()));
        (sub_results, pub_result, setup_errors)
    });

    let mut errors = setup_errors;
    let mut rates: Vec<f64> = Vec::new();
    let mut received_total = 0u64;
    for r in &sub_results {
        received_total += r.received;
        if let Some(e) = &r.error {
            errors.push(e.clone());
        }
        let secs = r.span.map_or(0.0, |d| d.as_secs_f64()).max(1e-9);
        rates.push(if r.received == 0 {
            0.0
        } else {
            r.received as f64 / secs
        });
    }
    let pub_rate = match &pub_result {
        Ok(d) => a.count as f64 / d.as_secs_f64().max(1e-9),
        Err(e) => {
            errors.push(e.clone());
            0.0
        }
    };
    let lost = (a.subs as u64 * a.count).saturating_sub(received_total);
    // No JSON line unless the run happened: a failed setup must not look like a result.
    if pub_result.is_ok() {
        let per_sub: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
        let mps = median(&mut rates.clone());
        println!(
            "{{\"impl\":\"nats\",\"mode\":\"fanout\",\"subs\":{},\"size\":{},\"count\":{},\"curve\":false,\"tls\":false,\"msgs_per_sec\":{mps:.1},\"mb_per_sec\":{:.1},\"pub_msgs_per_sec\":{pub_rate:.1},\"lost\":{lost},\"sub_msgs_per_sec\":[{}]}}",
            a.subs,
            a.size,
            a.count,
            mps * a.size as f64 / 1e6,
            per_sub.join(",")
        );
    }
    if lost > 0 {
        errors.push(format!(
            "lost {lost} of {} messages ({} subscribers x {})",
            a.subs as u64 * a.count,
            a.subs,
            a.count
        ));
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        let mut seen = std::collections::HashSet::new();
        for e in errors.iter().filter(|e| seen.insert(e.as_str())) {
            eprintln!("nats_anchor: {e}");
        }
        ExitCode::from(1)
    }
}
