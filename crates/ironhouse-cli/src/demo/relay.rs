//! The relay demo: IronHouse relay, a sensor broadcasting, two workers
//! sharing a work queue, a late joiner, an intruder.

use std::path::Path;
use std::time::Duration;

use ironhouse::security::certs::{load_keypair, load_public, write_certificates};
use ironhouse::security::CurveAllowList;
use ironhouse::{CurveKeyPair, Options, Security};
use ironhouse_relay::{Endpoint, EndpointEvent, Relay, Wait};

use crate::BoxError;

const WAIT: Wait = Wait::For(Duration::from_secs(10));
const JOIN: Duration = Duration::from_secs(10);

/// Writes a fresh key pair as czmq certificates; returns (public, secret) paths.
fn new_keys(dir: &Path, name: &str) -> Result<(std::path::PathBuf, std::path::PathBuf), BoxError> {
    Ok(write_certificates(
        dir,
        name,
        &CurveKeyPair::generate(),
        &[("name", name)],
    )?)
}

/// An endpoint authenticated with its secret certificate.
async fn endpoint(
    url: &str,
    groups: &[&str],
    secret: &Path,
    server_public: &Path,
) -> Result<Endpoint, BoxError> {
    let me = load_keypair(secret)?;
    let server = load_public(server_public)?;
    let ep = Endpoint::builder(url)
        .groups(groups.iter().copied())
        .options(Options::default().security(Security::curve_client(me, server)))
        .connect()
        .await?;
    ep.wait_joined(JOIN).await?;
    Ok(ep)
}

pub(super) async fn tour() -> Result<(), BoxError> {
    println!(
        "ironhouse demo: a relay and endpoints in groups, over CURVE (IronHouse), on loopback\n"
    );
    let tmp = std::env::temp_dir().join(format!("ironhouse-demo-{}", std::process::id()));
    let result = run_in(&tmp).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn run_in(tmp: &Path) -> Result<(), BoxError> {
    let keys = tmp.join("keys");
    let allowed = tmp.join("authorized");
    let (relay_pub, relay_secret) = new_keys(&keys, "relay")?;
    // Every endpoint's public certificate goes in the allow-list folder.
    let mut secrets = Vec::new();
    for name in ["sensor", "worker-1", "worker-2", "late"] {
        let (public, secret) = new_keys(&keys, name)?;
        std::fs::create_dir_all(&allowed)?;
        std::fs::copy(&public, allowed.join(format!("{name}.key")))?;
        secrets.push(secret);
    }
    let (_, intruder_secret) = new_keys(&tmp.join("elsewhere"), "intruder")?;
    println!("1. fresh CURVE keys in {}", keys.display());
    println!(
        "   allow-list folder {} (4 endpoint keys)",
        allowed.display()
    );

    let relay_keys = load_keypair(&relay_secret)?;
    let relay = Relay::builder()
        .bind("tcp://127.0.0.1:*")
        .options(Options::default().security(Security::ironhouse(
            relay_keys,
            CurveAllowList::new(&allowed),
        )))
        .start()
        .await?;
    let url = relay.endpoints()[0].clone();
    println!("2. relay listening on {url}");

    let sensor = endpoint(&url, &["sensor"], &secrets[0], &relay_pub).await?;
    let w1 = endpoint(&url, &["jobs", "status"], &secrets[1], &relay_pub).await?;
    let w2 = endpoint(&url, &["jobs", "status"], &secrets[2], &relay_pub).await?;
    println!("3. endpoints joined: sensor, worker-1 and worker-2 (groups jobs, status)");

    for reading in ["temp=20.5", "temp=20.7", "temp=21.0"] {
        sensor.broadcast("status", reading).await?;
    }
    sensor.flush(JOIN).await?;
    for (name, w) in [("worker-1", &w1), ("worker-2", &w2)] {
        let got = take::<String>(w, 3).await?;
        println!("4. broadcast: {name} received {got:?}");
    }
    let late = endpoint(&url, &["status"], &secrets[3], &relay_pub).await?;
    let got: Vec<String> = late.pop(1, WAIT).await?;
    println!("5. late joiner received only the kept last broadcast: {got:?}");

    for job in 0..6 {
        sensor.produce("jobs", &format!("job-{job}")).await?;
    }
    sensor.flush(JOIN).await?;
    println!("6. produced 6 jobs; they wait at the relay until a worker asks");
    w1.notify("jobs", 2).await?;
    let got1 = take::<String>(&w1, 2).await?;
    println!("   worker-1 notify(2)  -> {got1:?}");
    w2.notify("jobs", -1).await?;
    let got2 = take::<String>(&w2, 4).await?;
    println!("   worker-2 notify(-1) -> {got2:?} (everything queued)");

    let intruder = endpoint_unjoined(&url, &intruder_secret, &relay_pub).await?;
    let mut events = intruder.events();
    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(EndpointEvent::HandshakeFailed { reason, .. }) = events.recv().await {
                return reason;
            }
        }
    })
    .await
    .map_err(|_| "the intruder was not refused within 10 s")?;
    println!("7. an endpoint whose key is not in the allow-list: {reason}");
    intruder.stop().await;

    for ep in [&sensor, &w1, &w2, &late] {
        ep.stop().await;
    }
    let s = relay.stats();
    println!(
        "8. relay stats: {} objects in, {} work items delivered",
        s.published, s.delivered
    );
    relay.stop().await;
    println!("\ndone.");
    Ok(())
}

async fn endpoint_unjoined(
    url: &str,
    secret: &Path,
    server_public: &Path,
) -> Result<Endpoint, BoxError> {
    let me = load_keypair(secret)?;
    let server = load_public(server_public)?;
    Ok(Endpoint::builder(url)
        .group("status")
        .options(Options::default().security(Security::curve_client(me, server)))
        .connect()
        .await?)
}

/// Takes exactly `n` objects (waiting up to 10 s for each batch).
async fn take<T: serde::de::DeserializeOwned>(ep: &Endpoint, n: usize) -> Result<Vec<T>, BoxError> {
    let mut got = Vec::new();
    while got.len() < n {
        let more: Vec<T> = ep.pop(n - got.len(), WAIT).await?;
        if more.is_empty() {
            return Err(format!("expected {n} objects, got {} within 10 s", got.len()).into());
        }
        got.extend(more);
    }
    Ok(got)
}
