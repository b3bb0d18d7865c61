//! The web dashboard as a real cluster serves it: the static files with their content types
//! and cache headers from any replica (no token needed), and the two views it polls, through
//! a follower. The browser test is `tests/dashboard/test_dashboard.py` (`.ci/dashboard.sh`).

mod common;

use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::Value;

async fn get(url: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url).timeout(Duration::from_secs(10));
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    req.send().await.unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_serves_the_dashboard_and_its_views() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 2, &[]);
    cluster.wait_workers(1).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let base = format!("http://{}", follower.api_addr);

    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "/ui/app.js"),
        ("/ui/app.js", "text/javascript; charset=utf-8", "function route()"),
        ("/ui/pages.js", "text/javascript; charset=utf-8", "function tasksPage("),
        ("/ui/app.css", "text/css; charset=utf-8", ".badge"),
    ] {
        let resp = get(&format!("{base}{path}"), None).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-type"), content_type, "{path}");
        assert_eq!(header(&resp, "cache-control"), "no-cache", "{path}");
        assert_eq!(header(&resp, "x-content-type-options"), "nosniff", "{path}");
        let etag = header(&resp, "etag").to_string();
        assert!(etag.starts_with('"'), "{path}: etag {etag:?}");
        assert!(resp.text().await.unwrap().contains(needle), "{path} lacks {needle:?}");
        let again = get(&format!("{base}{path}"), Some(&etag)).await;
        assert_eq!(again.status(), 304, "{path} with a matching If-None-Match");
    }
    let csp = get(&format!("{base}/"), None).await;
    assert!(header(&csp, "content-security-policy").contains("script-src 'self'"), "the page forbids foreign scripts");

    let missing = get(&format!("{base}/ui/nope.js"), None).await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");

    // Every member answers the probe of the follower, the leader among them.
    let probes = eventually("every replica probed", Duration::from_secs(20), || async {
        let v: Value = get(&format!("{base}/v1/dashboard/replicas"), None).await.json().await.ok()?;
        let replicas = v["replicas"].as_array()?;
        (replicas.len() == 3 && replicas.iter().all(|r| r["status"].is_object())).then_some(v)
    })
    .await;
    assert_eq!(probes["answered_by"], follower.id, "{probes}");
    let roles: Vec<&str> =
        probes["replicas"].as_array().unwrap().iter().filter_map(|r| r["status"]["role"].as_str()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "{probes}");

    // Heartbeat ages live on the leader: the follower forwards.
    let leases: Value = get(&format!("{base}/v1/dashboard/leases"), None).await.json().await.unwrap();
    assert_eq!(leases["leader_id"], leader, "{leases}");
    assert!(leases["workers"]["w1"].as_u64().is_some_and(|age| age < leases["ttl_ms"].as_u64().unwrap()), "{leases}");
    // From its second heartbeat on, the worker process reports its machine's load from /proc.
    let load = eventually("the worker's load reported", Duration::from_secs(20), || async {
        let v: Value = get(&format!("{base}/v1/dashboard/leases"), None).await.json().await.ok()?;
        v["load"]["w1"].is_object().then(|| v["load"]["w1"].clone())
    })
    .await;
    let busy = load["cpu_busy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&busy), "{load}");
    let (used, total) = (load["mem_used_bytes"].as_u64().unwrap(), load["mem_total_bytes"].as_u64().unwrap());
    assert!(used > 0 && used <= total, "{load}");
}
