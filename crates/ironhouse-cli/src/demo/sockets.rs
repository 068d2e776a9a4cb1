//! `ironhouse demo --sockets`: a tour of the socket layer on loopback:
//! request/reply, publish/subscribe with prefix filters, a work queue over
//! ipc://, a quick throughput sample and IronHouse. Everything runs in this
//! process and stops by itself.

use std::time::{Duration, Instant};

use ironhouse::security::CurveAllowList;
use ironhouse::{CurveKeyPair, Message, Options, Security, Socket, SocketEvent, SocketType};

use crate::BoxError;

fn text(m: &Message) -> String {
    m.frames()
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}

pub(super) async fn tour() -> Result<(), BoxError> {
    println!("ironhouse demo: ZeroMQ-compatible sockets over ZMTP 3.1, on loopback\n");

    // 1. Request/reply.
    let mut rep = Socket::new(SocketType::Rep);
    let ep = rep.bind("tcp://127.0.0.1:*").await?;
    println!("1. REQ/REP   server bound {ep}");
    let server = tokio::spawn(async move {
        for _ in 0..3 {
            let req = rep.recv().await?;
            let reply = format!("{} (handled by the REP side)", text(&req).to_uppercase());
            rep.send(reply).await?;
        }
        rep.close().await;
        Ok::<_, ironhouse::Error>(())
    });
    let mut req = Socket::new(SocketType::Req);
    req.connect(&ep.to_string()).await?;
    for q in ["hello", "how are you", "bye"] {
        req.send(q).await?;
        println!("   sent {q:?} -> got {:?}", text(&req.recv().await?));
    }
    server.await??;
    req.close().await;

    // 2. Publish/subscribe with a prefix filter.
    let mut publisher = Socket::new(SocketType::Pub);
    let ep = publisher.bind("tcp://127.0.0.1:*").await?;
    let mut sub = Socket::new(SocketType::Sub);
    sub.connect(&ep.to_string()).await?;
    sub.subscribe("weather.").await?;
    println!("\n2. PUB/SUB   publisher bound {ep}; subscriber wants \"weather.\"");
    // A subscription takes a moment to reach the publisher: publish a marker until it arrives.
    let mut synced = false;
    for _ in 0..200 {
        publisher.send("weather.sync").await?;
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(20), sub.recv()).await {
            synced = true;
            break;
        }
    }
    if !synced {
        return Err("the subscriber never received the publisher's marker".into());
    }
    for m in [
        "sports.results 2-1",
        "weather.paris 21C",
        "news.today nothing",
        "weather.oslo -3C",
    ] {
        publisher.send(m).await?;
    }
    let mut shown = 0;
    while shown < 2 {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .map_err(|_| "subscriber got nothing for 5 s")??;
        if text(&m) != "weather.sync" {
            println!("   subscriber got {:?}", text(&m));
            shown += 1;
        }
    }
    println!("   (sports.* and news.* were filtered out at the publisher)");
    publisher.close().await;
    sub.close().await;

    // 3. A work queue over ipc:// with two workers.
    let dir = std::env::temp_dir().join(format!("ironhouse-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ipc = format!("ipc://{}/work.sock", dir.display());
    let mut push = Socket::new(SocketType::Push);
    push.bind(&ipc).await?;
    println!("\n3. PUSH/PULL work queue on {ipc}, two workers");
    let mut workers = Vec::new();
    for w in 0..2 {
        let mut pull = Socket::new(SocketType::Pull);
        pull.connect(&ipc).await?;
        workers.push((w, pull));
    }
    while push.connected_peers() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for job in 0..6 {
        push.send(format!("job {job}")).await?;
    }
    for (w, pull) in &mut workers {
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(text(&pull.recv().await?));
        }
        println!("   worker {w} took {got:?}");
    }
    push.close().await;
    for (_, p) in workers {
        p.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    // 4. Throughput sample.
    let n = 200_000u32;
    let mut pull = Socket::new(SocketType::Pull);
    let ep = pull.bind("tcp://127.0.0.1:*").await?;
    let mut push = Socket::new(SocketType::Push);
    push.connect(&ep.to_string()).await?;
    let sender = tokio::spawn(async move {
        for _ in 0..n {
            push.send(&[0u8; 64][..]).await?;
        }
        push.close().await;
        Ok::<_, ironhouse::Error>(())
    });
    let start = Instant::now();
    for _ in 0..n {
        pull.recv().await?;
    }
    let secs = start.elapsed().as_secs_f64();
    sender.await??;
    println!(
        "\n4. PUSH/PULL {n} x 64 B over tcp:// in {:.0} ms: {:.2} M msg/s",
        secs * 1e3,
        f64::from(n) / secs / 1e6
    );
    println!("   (bench/run.py compares this against libzmq side by side)");

    // 5. IronHouse: CURVE encryption, and only allowed client keys get in.
    ironhouse_tour().await?;
    println!("\ndone.");
    Ok(())
}

async fn ironhouse_tour() -> Result<(), BoxError> {
    let server_keys = CurveKeyPair::generate();
    let alice = CurveKeyPair::generate();
    let mallory = CurveKeyPair::generate();
    let allowed = CurveAllowList::from_keys([alice.public]);
    let opts = Options::default().security(Security::ironhouse(server_keys.clone(), allowed));
    let mut rep = Socket::with_options(SocketType::Rep, opts);
    let ep = rep.bind("tcp://127.0.0.1:*").await?;
    println!("\n5. IronHouse (CURVE + client allow-list) on {ep}");
    println!("   server key {}", server_keys.public);

    let mut events = rep.monitor();
    let mut intruder = Socket::with_options(
        SocketType::Req,
        Options::default().security(Security::curve_client(mallory, server_keys.public)),
    );
    intruder.connect(&ep.to_string()).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .map_err(|_| "no refusal seen within 10 s")?
        {
            Ok(SocketEvent::HandshakeFailed { reason, .. }) => {
                println!("   unknown client refused: {reason}");
                break;
            }
            Ok(_) => continue,
            Err(e) => return Err(format!("monitor: {e}").into()),
        }
    }
    drop(intruder);

    let mut req = Socket::with_options(
        SocketType::Req,
        Options::default().security(Security::curve_client(alice, server_keys.public)),
    );
    req.connect(&ep.to_string()).await?;
    req.send("hello over CURVE").await?;
    let got = rep.recv().await?;
    rep.send(got).await?;
    println!(
        "   allowed client got its echo: {:?}",
        text(&req.recv().await?)
    );
    req.close().await;
    rep.close().await;
    Ok(())
}
