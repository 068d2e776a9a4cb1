//! The native relay protocol from Python: `interop/relay/pyzmq_endpoint.py`
//! (pyzmq + msgpack only) and a Rust endpoint exchange objects through an
//! ironhouse relay, both directions: work items, broadcasts, and a batch of
//! broadcasts (OBJS in, BCASTS back).
//! Needs the venv of scripts/test-all.sh (IRONHOUSE_PYTHON); fails without it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use ironhouse_relay::{Endpoint, Relay, Wait};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Deserialize, PartialEq)]
struct News {
    k: Vec<u32>,
    from: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pyzmq_endpoint_and_a_rust_endpoint_share_groups() {
    let python = python_with(&["zmq", "msgpack"]);
    let relay = Relay::builder()
        .bind("tcp://127.0.0.1:*")
        .start()
        .await
        .unwrap();
    let url = relay.endpoints()[0].clone();
    let rust = Endpoint::builder(&url)
        .groups(["jobs", "news"])
        .connect()
        .await
        .unwrap();
    within("join", rust.wait_joined(LIMIT)).await.unwrap();
    rust.notify("jobs", 3).await.unwrap();

    let mut child = tokio::process::Command::new(&python)
        .arg(repo_root().join("interop/relay/pyzmq_endpoint.py"))
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    // Python → Rust: three work items and a broadcast, decoded by serde.
    let mut jobs: Vec<String> = Vec::new();
    within("3 jobs from python", async {
        while jobs.len() < 3 {
            let got: Vec<String> = rust
                .pop(3 - jobs.len(), Wait::For(Duration::from_secs(10)))
                .await
                .unwrap();
            jobs.extend(got);
        }
    })
    .await;
    assert_eq!(jobs, ["job-0", "job-1", "job-2"]);
    // The batch of two broadcasts (OBJS) may have arrived before the jobs;
    // take it from the queue.
    let mut news: Vec<News> = Vec::new();
    within("the python broadcasts", async {
        while news.len() < 2 {
            let raw = rust
                .receive_all_raw(Wait::For(Duration::from_secs(10)))
                .await;
            news.extend(
                raw.into_iter()
                    .filter(|r| r.group == "news")
                    .map(|r| rmp_serde::from_slice(&r.payload).unwrap()),
            );
        }
    })
    .await;
    let from_python = |k: Vec<u32>| News {
        k,
        from: "python".into(),
    };
    assert_eq!(news, [from_python(vec![1, 2]), from_python(vec![3])]);

    // Rust → Python: two items, which python asked for with NTF.
    rust.produce("fromrust", &"r1").await.unwrap();
    rust.produce("fromrust", &vec![7u8, 8]).await.unwrap();
    let mut out = Vec::new();
    within("python's output", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    })
    .await;
    let status = within("python exit", child.wait()).await.unwrap();
    assert!(status.success(), "python failed: {out:?}");
    let items: Vec<_> = out.iter().filter(|v| v["kind"] == "ITEM").collect();
    assert_eq!(items.len(), 2, "{out:?}");
    assert_eq!(items[0]["obj"], "r1");
    assert_eq!(items[1]["obj"], serde_json::json!([7, 8]));
    // Python is a member of news and said `batch`: its own batch comes back
    // to it as one BCASTS.
    let own: Vec<_> = out
        .iter()
        .filter(|v| v["kind"] == "BCASTS" && v["obj"]["from"] == "python")
        .map(|v| v["obj"]["k"].clone())
        .collect();
    assert_eq!(
        own,
        [serde_json::json!([1, 2]), serde_json::json!([3])],
        "{out:?}"
    );
    rust.stop().await;
    relay.stop().await;
}
