//! End-to-end tests of the overload limits of a replica's API listener: idle and slow
//! connections, and the cap on long-polls.

mod common;

use std::time::Duration;
use std::time::Instant;

use common::TestCluster;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Idle connections opened by the test.
const IDLE: usize = 500;
/// Connections that send half a request head and stall.
const HALF_HEADS: usize = 20;

/// Reads until the server closes the connection (EOF or reset); how long it was open.
async fn until_closed(opened: Instant, mut stream: TcpStream) -> Duration {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return opened.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_do_not_block_the_api_and_are_closed() {
    let cluster = TestCluster::start(1, &["--idle-timeout-ms", "1500", "--header-read-timeout-ms", "1000"]).await;
    let addr = cluster.nodes[0].api_addr.clone();
    let mut streams = Vec::new();
    for _ in 0..IDLE {
        streams.push((Instant::now(), TcpStream::connect(&addr).await.unwrap()));
    }
    for _ in 0..HALF_HEADS {
        let opened = Instant::now();
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /v1/cluster HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        streams.push((opened, s));
    }
    // With every one of them open, the API answers at once.
    let asked = Instant::now();
    let client = cluster.client().with_timeout(Duration::from_secs(2));
    client.cluster_status().await.unwrap();
    client.submit(json!({"command": ["true"]})).await.unwrap();
    assert!(asked.elapsed() < Duration::from_secs(2), "the API took {:?}", asked.elapsed());

    // The server closes every one of them after the timeouts; wait for each EOF, with a deadline.
    let waits = streams.into_iter().map(|(opened, s)| tokio::spawn(until_closed(opened, s)));
    let closed = tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(waits))
        .await
        .expect("the server closed every idle connection within 15 s");
    let open_for: Vec<Duration> = closed.into_iter().map(|r| r.unwrap()).collect();
    let (first, last) = (open_for.iter().min().unwrap(), open_for.iter().max().unwrap());
    // Closed by the timeouts (1 s for a stalled head, 1.5 s idle), not at once and not late.
    assert!(*first >= Duration::from_millis(900), "a connection was closed after only {first:?}");
    assert!(*last < Duration::from_secs(5), "the last idle connection was closed after {last:?}");

    // The listener is healthy afterwards.
    client.cluster_status().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_over_their_cap_get_503_with_retry_after() {
    let cluster = TestCluster::start(1, &["--max-long-polls", "2"]).await;
    let client = cluster.client();
    // No worker: the task stays pending, so waiting on it lasts the whole timeout.
    let (task, _) = client.submit(json!({"command": ["true"]})).await.unwrap();
    let url = format!("http://{}/v1/tasks/{}/wait?timeout_ms=4000", cluster.nodes[0].api_addr, task.id);
    let http = reqwest::Client::new();
    let hold = |http: reqwest::Client, url: String| async move {
        // A probe below may hold a permit for a moment: retry until this one holds its own.
        loop {
            let resp = http.get(&url).send().await.unwrap();
            if resp.status() != 503 {
                return resp;
            }
        }
    };
    let holders: Vec<_> = (0..2).map(|_| tokio::spawn(hold(http.clone(), url.clone()))).collect();
    // Once both hold their permit, a third long-poll is refused at once.
    let probe = url.replace("timeout_ms=4000", "timeout_ms=1");
    let refused = common::eventually("a refused third long-poll", Duration::from_secs(3), || async {
        let resp = http.get(&probe).send().await.ok()?;
        (resp.status() == 503).then_some(resp)
    })
    .await;
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    // Ordinary requests are not affected, and a wait that does not wait is no long-poll.
    client.cluster_status().await.unwrap();
    let quick = http.get(url.replace("timeout_ms=4000", "timeout_ms=0")).send().await.unwrap();
    assert_ne!(quick.status(), 503);
    for h in holders {
        assert_eq!(h.await.unwrap().status(), 200);
    }
    // Permits come back: a new long-poll is served.
    let again = http.get(url.replace("4000", "10")).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trickles_its_body_is_cut_off_at_the_request_deadline() {
    let cluster = TestCluster::start(1, &["--request-timeout-ms", "500", "--idle-timeout-ms", "60000"]).await;
    let addr = cluster.nodes[0].api_addr.clone();
    // A whole head, then 10 of the 100 body bytes it promised, then nothing.
    let opened = Instant::now();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"command\"")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut answer)).await;
    let took = opened.elapsed();
    assert!(read.is_ok(), "the stalled upload was still open after 15 s");
    // request_timeout (0.5 s) + the 5 s grace: not at once, and not never.
    assert!(took >= Duration::from_secs(5), "cut off after only {took:?}");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("outcome_unknown"), "{text}");
    cluster.client().cluster_status().await.unwrap();
}
