//! Relay and endpoints over loopback: every delivery rule, reconnects
//! (through a proxy that cuts connections), killed consumers, full queues,
//! limits and malformed input. Every wait is bounded; no timing asserted.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ironhouse::{Options, Socket, SocketType};
use ironhouse_relay::protocol::{Hello, ToEndpoint, ToRelay};
use ironhouse_relay::{
    ConnectionState, Endpoint, Error, GroupLimits, GroupPolicy, Pickle, Relay, Wait,
};

fn fast() -> Options {
    Options::default().reconnect(Duration::from_millis(10), Duration::from_millis(200))
}

async fn relay() -> Relay {
    Relay::builder()
        .bind("tcp://127.0.0.1:*")
        .start()
        .await
        .unwrap()
}

async fn endpoint(url: &str, groups: &[&str]) -> Endpoint {
    let ep = Endpoint::builder(url)
        .groups(groups.iter().copied())
        .options(fast())
        .connect()
        .await
        .unwrap();
    within("join", ep.wait_joined(LIMIT)).await.unwrap();
    ep
}

const SOON: Wait = Wait::For(Duration::from_secs(10));

/// Waits until `ep` holds `n` objects (decoded as strings), oldest first.
async fn collect(ep: &Endpoint, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    within("objects", async {
        while got.len() < n {
            got.extend(ep.receive_all::<String>(SOON).await.unwrap());
        }
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_members_and_late_joiners_get_the_last_one() {
    let r = relay().await;
    let url = &r.endpoints()[0];
    let a = endpoint(url, &["news"]).await;
    let b = endpoint(url, &["news", "other"]).await;
    a.broadcast("news", "b1").await.unwrap();
    a.broadcast("news", "b2").await.unwrap();
    assert_eq!(collect(&b, 2).await, ["b1", "b2"]);
    assert_eq!(collect(&a, 2).await, ["b1", "b2"], "the sender is a member");
    let late = endpoint(url, &["news"]).await;
    assert_eq!(collect(&late, 1).await, ["b2"]);
    // Nothing more for the late joiner.
    a.flush(LIMIT).await.unwrap();
    a.broadcast("other", "x").await.unwrap();
    assert_eq!(collect(&b, 1).await, ["x"]);
    assert!(late
        .receive_all::<String>(Wait::No)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_endpoint_does_not_get_the_kept_broadcast_twice() {
    let r = relay().await;
    let proxy = Proxy::start(addr_of(&r.endpoints()[0])).await;
    let sender = endpoint(&r.endpoints()[0], &["s"]).await;
    sender.broadcast("news", "kept").await.unwrap();
    sender.flush(LIMIT).await.unwrap();
    let ep = endpoint(&proxy.url(), &["news"]).await;
    assert_eq!(collect(&ep, 1).await, ["kept"]);
    let mut events = ep.events();
    proxy.cut();
    // Wait for the rejoin, then prove the channel works with a fresh broadcast.
    within("rejoin", async {
        loop {
            if let Ok(ironhouse_relay::EndpointEvent::Joined) = events.recv().await {
                return;
            }
        }
    })
    .await;
    sender.broadcast("news", "fresh").await.unwrap();
    assert_eq!(
        collect(&ep, 1).await,
        ["fresh"],
        "no second copy of \"kept\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_objects_wait_for_credit_and_credit_persists() {
    let r = relay().await;
    let url = &r.endpoints()[0];
    let producer = endpoint(url, &["p"]).await;
    let consumer = endpoint(url, &["work"]).await;
    for i in 0..3 {
        producer.produce("work", &format!("d{i}")).await.unwrap();
    }
    producer.flush(LIMIT).await.unwrap();
    assert!(consumer
        .receive_all::<String>(Wait::For(Duration::from_millis(100)))
        .await
        .unwrap()
        .is_empty());
    consumer.notify("work", 2).await.unwrap();
    assert_eq!(collect(&consumer, 2).await, ["d0", "d1"]);
    // d2 stays queued; one unit of new credit takes it.
    consumer.notify("work", 1).await.unwrap();
    assert_eq!(collect(&consumer, 1).await, ["d2"]);
    // Credit given before the object exists is used when it arrives.
    consumer.notify("work", 1).await.unwrap();
    producer.produce("work", "later").await.unwrap();
    assert_eq!(collect(&consumer, 1).await, ["later"]);
    // notify(-1) takes everything queued now, without credit.
    for i in 0..4 {
        producer.produce("work", &format!("e{i}")).await.unwrap();
    }
    producer.flush(LIMIT).await.unwrap();
    consumer.notify("work", -1).await.unwrap();
    assert_eq!(collect(&consumer, 4).await, ["e0", "e1", "e2", "e3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_survives_a_reconnect() {
    let r = relay().await;
    let proxy = Proxy::start(addr_of(&r.endpoints()[0])).await;
    let consumer = endpoint(&proxy.url(), &["work"]).await;
    consumer.notify("work", 2).await.unwrap();
    let mut events = consumer.events();
    // Let the credit reach the relay, then cut.
    tokio::time::sleep(Duration::from_millis(50)).await;
    proxy.cut();
    within("rejoin", async {
        loop {
            if let Ok(ironhouse_relay::EndpointEvent::Joined) = events.recv().await {
                return;
            }
        }
    })
    .await;
    let producer = endpoint(&r.endpoints()[0], &["p"]).await;
    producer.produce("work", "a").await.unwrap();
    producer.produce("work", "b").await.unwrap();
    assert_eq!(collect(&consumer, 2).await, ["a", "b"]);
}

/// Credit given while the endpoint is still joining (its HELLO sent, the
/// WELCOME not yet back) reaches the relay. A hand-driven relay holds the
/// WELCOME back; the credit used to be kept only for the next HELLO, and
/// the relay never heard of it (the blocking module's doc example lost
/// its job that way, now and then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_given_while_joining_reaches_the_relay() {
    let mut fake = Socket::new(SocketType::Router);
    let url = fake.bind("tcp://127.0.0.1:*").await.unwrap().to_string();
    let ep = Endpoint::builder(&url)
        .group("jobs")
        .options(fast())
        .connect()
        .await
        .unwrap();
    let mut hello = within("HELLO", fake.recv()).await.unwrap();
    let rid = hello.pop_front().unwrap();
    // Skip the ROUTER's arrival notice, if any, to the HELLO.
    while hello.frames().len() == 1 && hello.frames()[0].is_empty() {
        hello = within("HELLO", fake.recv()).await.unwrap();
        hello.pop_front();
    }
    match ToRelay::decode(&hello) {
        Ok(ToRelay::Hello(h)) => assert!(h.credit.is_empty(), "{:?}", h.credit),
        other => panic!("expected HELLO, got {other:?}"),
    }
    ep.notify("jobs", 2).await.unwrap();
    // Time for the endpoint to take the notify while it is still joining
    // (if it takes it after the WELCOME instead, it must send it all the
    // same: nothing here depends on which).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut welcome = ToEndpoint::Welcome {
        epoch: Bytes::from_static(b"epoch"),
        accepted: 0,
    }
    .encode();
    welcome.push_front(rid);
    fake.send(welcome).await.unwrap();
    let credit = within("NTF after WELCOME", async {
        loop {
            let mut m = fake.recv().await.unwrap();
            m.pop_front();
            if let Ok(ToRelay::Notify(c)) = ToRelay::decode(&m) {
                return c;
            }
        }
    })
    .await;
    assert_eq!(credit, vec![("jobs".to_string(), 2)]);
}

/// A consumer speaking the protocol by hand: joins, asks for 3, receives
/// them and vanishes without acknowledging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_of_a_consumer_that_dies_unacknowledged_go_to_another() {
    let r = relay().await;
    let url = &r.endpoints()[0];
    let producer = endpoint(url, &["p"]).await;
    for i in 0..3 {
        producer.produce("work", &format!("j{i}")).await.unwrap();
    }
    producer.flush(LIMIT).await.unwrap();
    let mut raw = Socket::new(SocketType::Dealer);
    raw.connect(url).await.unwrap();
    let hello = Hello {
        session: Bytes::from_static(&[9; 16]),
        groups: vec!["work".into()],
        ..Hello::default()
    };
    raw.send(ToRelay::Hello(hello).encode()).await.unwrap();
    raw.send(ToRelay::Notify(vec![("work".into(), 3)]).encode())
        .await
        .unwrap();
    let mut items = 0;
    within("3 items at the raw consumer", async {
        while items < 3 {
            let m = raw.recv().await.unwrap();
            if let Ok(ToEndpoint::Item { .. }) = ToEndpoint::decode(&m) {
                items += 1;
            }
        }
    })
    .await;
    raw.close().await; // killed before acknowledging
    let consumer = endpoint(url, &["work"]).await;
    consumer.notify("work", 10).await.unwrap();
    assert_eq!(collect(&consumer, 3).await, ["j0", "j1", "j2"]);
    assert_eq!(r.stats().requeued, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_while_the_relay_is_down_are_delivered_when_it_comes() {
    // Find a free port, then start the endpoint before the relay exists.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let producer = Endpoint::builder(&url)
        .group("p")
        .options(fast())
        .connect()
        .await
        .unwrap();
    assert_eq!(producer.state(), ConnectionState::Connecting);
    for i in 0..5 {
        producer.produce("work", &format!("q{i}")).await.unwrap();
    }
    let r = Relay::builder().bind(&url).start().await.unwrap();
    producer.flush(LIMIT).await.unwrap();
    let consumer = endpoint(r.endpoints()[0].as_str(), &["work"]).await;
    consumer.notify("work", 5).await.unwrap();
    assert_eq!(collect(&consumer, 5).await, ["q0", "q1", "q2", "q3", "q4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_cut_mid_stream_arrive_once_each() {
    let r = relay().await;
    let proxy = Proxy::start(addr_of(&r.endpoints()[0])).await;
    let producer = endpoint(&proxy.url(), &["p"]).await;
    let n = 2000;
    for i in 0..n {
        producer.produce("work", &i).await.unwrap();
        if i == n / 2 {
            proxy.cut();
        }
    }
    within("flush", producer.flush(LIMIT)).await.unwrap();
    let consumer = endpoint(&r.endpoints()[0], &["work"]).await;
    consumer.notify("work", -1).await.unwrap();
    let mut got: Vec<u32> = Vec::new();
    within("all objects", async {
        while got.len() < n as usize {
            got.extend(consumer.receive_all::<u32>(SOON).await.unwrap());
        }
    })
    .await;
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<u32>>(), "each once, none lost");
    // notify(-1) again: nothing left (no duplicates were queued).
    consumer.notify("work", -1).await.unwrap();
    assert!(consumer
        .receive_all::<u32>(Wait::For(Duration::from_millis(100)))
        .await
        .unwrap()
        .is_empty());
}

/// Broadcasts sent in a burst leave in batches (OBJS, BCASTS); a cut in the
/// middle makes the publisher resend batches the relay partly took. The
/// subscriber still gets each object once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_broadcasts_cut_mid_stream_arrive_once_each_in_order() {
    let r = relay().await;
    let subscriber = endpoint(&r.endpoints()[0], &["fan"]).await;
    let proxy = Proxy::start(addr_of(&r.endpoints()[0])).await;
    let publisher = endpoint(&proxy.url(), &["p"]).await;
    let n = 20_000u32;
    for i in 0..n {
        publisher.broadcast("fan", &i).await.unwrap();
        if i == n / 2 {
            proxy.cut();
        }
    }
    within("flush", publisher.flush(LIMIT)).await.unwrap();
    let mut got: Vec<u32> = Vec::new();
    within("all objects", async {
        while got.len() < n as usize {
            got.extend(subscriber.receive_all::<u32>(SOON).await.unwrap());
        }
    })
    .await;
    assert_eq!(got, (0..n).collect::<Vec<u32>>(), "each once, in order");
    assert!(subscriber
        .receive_all::<u32>(Wait::For(Duration::from_millis(100)))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(r.stats().published, u64::from(n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_limits_reject_clearly() {
    let mut groups = HashMap::new();
    groups.insert(
        "g".to_string(),
        GroupLimits {
            max_count: Some(1),
            max_consumables: Some(2),
        },
    );
    let r = Relay::builder()
        .bind("tcp://127.0.0.1:*")
        .groups(GroupPolicy::Only(groups))
        .start()
        .await
        .unwrap();
    let url = &r.endpoints()[0];
    let first = endpoint(url, &["g"]).await;
    let second = Endpoint::builder(url.as_str())
        .group("g")
        .options(fast())
        .connect()
        .await
        .unwrap();
    match within("reject", second.wait_joined(LIMIT)).await {
        Err(Error::Rejected(reason)) => assert!(reason.contains("max_count 1"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(matches!(
        second.produce("g", "x").await,
        Err(Error::Rejected(_))
    ));
    let stranger = Endpoint::builder(url.as_str())
        .group("nope")
        .connect()
        .await
        .unwrap();
    match within("reject", stranger.wait_joined(LIMIT)).await {
        Err(Error::Rejected(reason)) => assert!(reason.contains("not accepted"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // max_consumables: the third queued object is refused, with the reason.
    for i in 0..3 {
        first.produce("g", &i).await.unwrap();
    }
    match within("flush", first.flush(LIMIT)).await {
        Err(Error::Refused(reason)) => assert!(reason.contains("max_consumables 2"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Once taken, there is room again.
    first.notify("g", -1).await.unwrap();
    let mut taken: Vec<u32> = Vec::new();
    within("the two queued objects", async {
        while taken.len() < 2 {
            taken.extend(first.pop::<u32>(2 - taken.len(), SOON).await.unwrap());
        }
    })
    .await;
    assert_eq!(taken, [0, 1]);
    first.produce("g", &9).await.unwrap();
    first.flush(LIMIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_queue_pop_get_last_and_bound() {
    let r = relay().await;
    let url = &r.endpoints()[0];
    let sender = endpoint(url, &["s"]).await;
    let small = Endpoint::builder(url.as_str())
        .group("g")
        .queue_capacity(3)
        .options(fast())
        .connect()
        .await
        .unwrap();
    small.wait_joined(LIMIT).await.unwrap();
    for i in 0..5u32 {
        sender.broadcast("g", &i).await.unwrap();
    }
    sender.flush(LIMIT).await.unwrap();
    within("5 broadcasts handled", async {
        while small.queued() + (small.dropped_broadcasts() as usize) < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(small.dropped_broadcasts(), 2, "oldest broadcasts make room");
    assert_eq!(small.pop::<u32>(1, Wait::No).await.unwrap(), [2]);
    assert_eq!(small.get_last::<u32>(1, Wait::No).await.unwrap(), [4]);
    assert!(small.pop::<u32>(1, Wait::No).await.unwrap().is_empty());
    // A decode failure loses nothing.
    sender.broadcast("g", "text").await.unwrap();
    sender.broadcast("g", &7u32).await.unwrap();
    within("2 queued", async {
        while small.queued() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(matches!(
        small.receive_all::<u32>(Wait::No).await,
        Err(Error::Codec(_))
    ));
    assert_eq!(small.queued(), 2);
    let raw = small.receive_all_raw(Wait::No).await;
    assert_eq!(raw.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_do_not_disturb_the_relay() {
    let r = relay().await;
    let url = &r.endpoints()[0];
    let mut raw = Socket::new(SocketType::Dealer);
    raw.connect(url).await.unwrap();
    for m in [
        vec![Bytes::from_static(b"HELLO"), Bytes::from_static(b"\xc1")],
        vec![Bytes::from_static(b"OBJ"), Bytes::from_static(b"x")],
        vec![Bytes::from_static(b"???")],
        vec![Bytes::new(), Bytes::new(), Bytes::new()],
        // A batch whose object overruns the frame.
        vec![
            Bytes::from_static(b"OBJS"),
            Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1]),
            Bytes::from_static(b"\x81\xa1g\xff"),
            Bytes::from_static(b"\x00\x00\x00\x09ab"),
        ],
    ] {
        raw.send(m).await.unwrap();
    }
    // A publish before HELLO is answered with RESET, not taken.
    raw.send(
        ToRelay::Publish {
            seq: 1,
            dest: vec![("g".into(), 1)],
            payload: Bytes::from_static(b"x"),
        }
        .encode(),
    )
    .await
    .unwrap();
    let reply = within("RESET", raw.recv()).await.unwrap();
    assert_eq!(ToEndpoint::decode(&reply).unwrap(), ToEndpoint::Reset);
    let a = endpoint(url, &["g"]).await;
    a.broadcast("g", "still fine").await.unwrap();
    assert_eq!(collect(&a, 1).await, ["still fine"]);
    assert_eq!(r.stats().published, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickle_codec_and_stop_are_prompt() {
    let r = relay().await;
    let url = &r.endpoints()[0];
    let a = Endpoint::builder(url.as_str())
        .group("g")
        .connect_with(Pickle)
        .await
        .unwrap();
    a.wait_joined(LIMIT).await.unwrap();
    a.broadcast("g", &(1u8, "two", vec![3.5f64])).await.unwrap();
    let got: Vec<(u8, String, Vec<f64>)> = a.pop(1, SOON).await.unwrap();
    assert_eq!(got, [(1, "two".to_string(), vec![3.5])]);
    within("endpoint stop", a.stop()).await;
    assert_eq!(a.state(), ConnectionState::Stopped);
    assert!(matches!(a.broadcast("g", &1).await, Err(Error::Stopped)));
    within("relay stop", r.stop()).await;
}

/// A member that stops reading slows the publisher (its sends time out)
/// instead of missing broadcasts: every broadcast taken by the relay reaches
/// it, in order, once it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_member_slows_the_publisher_and_loses_nothing() {
    let r = relay().await;
    let url = &r.endpoints()[0];
    // A raw member that joins and then does not read for a while.
    let mut slow = Socket::with_options(
        SocketType::Dealer,
        Options::default().recv_hwm(1).hwm_bytes(1 << 20, 1 << 16),
    );
    slow.connect(url).await.unwrap();
    let hello = Hello {
        session: Bytes::from_static(&[5; 16]),
        groups: vec!["g".into()],
        ..Hello::default()
    };
    slow.send(ToRelay::Hello(hello).encode()).await.unwrap();
    let welcome = within("WELCOME", slow.recv()).await.unwrap();
    assert!(matches!(
        ToEndpoint::decode(&welcome),
        Ok(ToEndpoint::Welcome { .. })
    ));
    let publisher = Endpoint::builder(url.as_str())
        .group("p")
        .options(fast())
        .max_unconfirmed(100_000, 8 << 20)
        .send_timeout(Some(Duration::from_secs(2)))
        .connect()
        .await
        .unwrap();
    within("join", publisher.wait_joined(LIMIT)).await.unwrap();
    let obj = Bytes::from(vec![1u8; 64 << 10]);
    let mut sent = 0u64;
    let slowed = within("the publisher to be slowed", async {
        for _ in 0..20_000 {
            match publisher.send_bytes(obj.clone(), "g").await {
                Ok(()) => sent += 1,
                Err(Error::Timeout(_)) => return true,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        false
    })
    .await;
    assert!(
        slowed,
        "20,000 x 64 KiB to a member that does not read must slow the sender"
    );
    // Now read: every broadcast the relay took arrives, numbered without gaps.
    let mut next = 1u64;
    within("all broadcasts at the slow member", async {
        loop {
            let m = match tokio::time::timeout(Duration::from_secs(3), slow.recv()).await {
                Ok(m) => m.unwrap(),
                Err(_) => panic!("stuck at {next} of {sent}; relay stats {:?}", r.stats()),
            };
            if let Ok(ToEndpoint::Broadcast { bseq, .. }) = ToEndpoint::decode(&m) {
                assert_eq!(bseq, next, "a broadcast was lost");
                next += 1;
                if next > sent {
                    return;
                }
            }
        }
    })
    .await;
}
