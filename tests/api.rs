//! The HTTP API contract on a real cluster: status codes, error bodies, limits, security.

mod common;

use std::time::Duration;

use common::TestCluster;
use serde_json::Value;
use serde_json::json;

async fn raw(method: reqwest::Method, url: String, body: Option<Vec<u8>>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url).timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_contract() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let base = format!("http://{}", follower.api_addr);
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    let (s, v) = raw(
        post.clone(),
        format!("{base}/v1/tasks"),
        Some(br#"{"command": ["echo", "x"], "priority": 7, "idempotency_key": "k1"}"#.to_vec()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["state"], "pending");
    let id = v["id"].as_u64().unwrap();
    let (s, v2) = raw(
        post.clone(),
        format!("{base}/v1/tasks"),
        Some(br#"{"command": ["echo", "x"], "priority": 7, "idempotency_key": "k1"}"#.to_vec()),
    )
    .await;
    assert_eq!((s, v2["id"].as_u64()), (200, Some(id)));

    let (s, v) = raw(post.clone(), format!("{base}/v1/tasks"), Some(b"{not json".to_vec())).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request");
    let (s, v) =
        raw(post.clone(), format!("{base}/v1/tasks"), Some(br#"{"command": ["x"], "priority": 5000}"#.to_vec())).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("priority"), "{v}");
    let (s, v) =
        raw(post.clone(), format!("{base}/v1/tasks"), Some(br#"{"command": ["x"], "colour": "red"}"#.to_vec())).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"), "{v}");
    let big = format!(r#"{{"command": ["x"], "name": "{}"}}"#, "a".repeat(2 << 20));
    let (s, v) = raw(post.clone(), format!("{base}/v1/tasks"), Some(big.into_bytes())).await;
    assert_eq!(s, 413, "{v}");

    let (s, v) = raw(get.clone(), format!("{base}/v1/tasks/999999"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    let (s, v) = raw(get.clone(), format!("{base}/v1/tasks?state=bogus"), None).await;
    assert_eq!(s, 422, "{v}");

    // Batch, list with cursor.
    let tasks: Vec<Value> = (0..5).map(|i| json!({"command": ["true"], "name": format!("n{i}")})).collect();
    let (s, v) = raw(
        post.clone(),
        format!("{base}/v1/tasks/batch"),
        Some(serde_json::to_vec(&json!({"tasks": tasks})).unwrap()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tasks"].as_array().unwrap().len(), 5);
    let (s, page) = raw(get.clone(), format!("{base}/v1/tasks?limit=2&state=pending"), None).await;
    assert_eq!(s, 200);
    assert_eq!(page["tasks"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_u64().unwrap();
    let (_, page2) = raw(get.clone(), format!("{base}/v1/tasks?limit=2&state=pending&cursor={cursor}"), None).await;
    assert!(page2["tasks"][0]["id"].as_u64().unwrap() > cursor);

    // Cancel a pending task; a second cancel is an invalid transition; wait returns at once.
    let (s, v) =
        raw(post.clone(), format!("{base}/v1/tasks/{id}/cancel"), Some(br#"{"reason": "test"}"#.to_vec())).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("cancelled")), "{v}");
    let (s, v) = raw(post.clone(), format!("{base}/v1/tasks/{id}/cancel"), None).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = raw(get.clone(), format!("{base}/v1/tasks/{id}/wait?timeout_ms=5000"), None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("cancelled")));
    // Wait on a task that never finishes returns after its timeout with the task as it is.
    let pending = page2["tasks"][0]["id"].as_u64().unwrap();
    let t0 = std::time::Instant::now();
    let (s, v) = raw(get.clone(), format!("{base}/v1/tasks/{pending}/wait?timeout_ms=300"), None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("pending")));
    assert!(t0.elapsed() >= Duration::from_millis(300));

    // Cluster status, health, readiness.
    let (s, v) = raw(get.clone(), format!("{base}/v1/cluster"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["leader_id"].as_u64(), Some(leader));
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    assert_eq!(raw(get.clone(), format!("{base}/health"), None).await.0, 200);
    assert_eq!(raw(get.clone(), format!("{base}/ready"), None).await.0, 200);
    // Adding a member with a bad address names the field.
    let (s, v) = raw(
        post.clone(),
        format!("{base}/v1/cluster/members"),
        Some(br#"{"id": 9, "api_addr": "nope", "raft_addr": "127.0.0.1:1"}"#.to_vec()),
    )
    .await;
    assert_eq!(s, 422, "{v}");

    // Raft RPCs without the cluster secret are refused.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/raft/vote", follower.raft_addr))
        .body(vec![1u8, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = reqwest::Client::new()
        .post(format!("http://{}/raft/vote", follower.raft_addr))
        .header("x-taskraft-secret", "wrong")
        .body(vec![1u8, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_fail_definitely_or_indeterminately_never_silently() {
    let mut cluster = TestCluster::start(3, &["--request-timeout-ms", "1500"]).await;
    let leader = cluster.wait_leader().await;
    let ids: Vec<u64> = cluster.nodes.iter().map(|n| n.id).filter(|id| *id != leader).collect();
    for id in &ids {
        cluster.node_mut(*id).kill9();
    }
    let base = format!("http://{}", cluster.node(leader).api_addr);
    let t0 = std::time::Instant::now();
    let (s, v) =
        raw(reqwest::Method::POST, format!("{base}/v1/tasks"), Some(br#"{"command": ["true"]}"#.to_vec())).await;
    assert!(s == 503 || s == 504, "{s} {v}");
    assert!(t0.elapsed() < Duration::from_secs(5), "the request must not hang");
    let (s, _) = raw(reqwest::Method::GET, format!("{base}/v1/tasks/1"), None).await;
    assert!(s == 503 || s == 504, "{s}");
    // Stale reads still work.
    let (s, _) = raw(reqwest::Method::GET, format!("{base}/v1/tasks?consistency=stale"), None).await;
    assert_eq!(s, 200);
}

/// What a new user trips over first: every refusal is the JSON error shape with a code that
/// says what to do, and nothing is created by a refused request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_and_say_why() {
    let cluster = TestCluster::start(3, &[]).await;
    let leader = cluster.wait_leader().await;
    let base = format!("http://{}", cluster.node(leader).api_addr);
    let post = reqwest::Method::POST;
    let submit = |body: &str| raw(post.clone(), format!("{base}/v1/tasks"), Some(body.as_bytes().to_vec()));

    // 405 and 431 carry the JSON error shape, not an empty body.
    let (s, v) = raw(reqwest::Method::DELETE, format!("{base}/v1/tasks"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{v}");
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/stats"))
        .header("x-padding", "a".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "headers_too_large", "{v}");

    // Reusing an idempotency key with a different body is refused; an identical retry is not.
    let (s, first) = submit(r#"{"command": ["true"], "idempotency_key": "same"}"#).await;
    assert_eq!(s, 201, "{first}");
    let (s, v) = submit(r#"{"command": ["true"], "idempotency_key": "same"}"#).await;
    assert_eq!((s, &v["id"]), (200, &first["id"]));
    let (s, v) = submit(r#"{"command": ["false"], "idempotency_key": "same"}"#).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("idempotency_mismatch")), "{v}");
    // The same for a request id given in the header.
    let with_rid = |body: &'static str| {
        reqwest::Client::new()
            .post(format!("{base}/v1/tasks"))
            .header("x-taskraft-request-id", "client-9:1")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(with_rid(r#"{"command": ["true"], "name": "a"}"#).await.unwrap().status().as_u16(), 201);
    assert_eq!(with_rid(r#"{"command": ["true"], "name": "a"}"#).await.unwrap().status().as_u16(), 200);
    let resp = with_rid(r#"{"command": ["true"], "name": "b"}"#).await.unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "idempotency_mismatch");

    // working_dir may not climb out of the attempt directory.
    let (s, v) = submit(r#"{"command": ["true"], "working_dir": "../../etc"}"#).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().starts_with("working_dir"), "{v}");
    let (s, v) = submit(r#"{"command": ["true"], "working_dir": "out/logs"}"#).await;
    assert_eq!(s, 201, "{v}");

    // Executors: a real field, the old shorthand accepted on input, arguments checked at submit.
    let (s, v) = submit(r#"{"command": ["50"], "executor": "sleep"}"#).await;
    assert_eq!((s, v["spec"]["executor"].as_str(), &v["spec"]["command"]), (201, Some("sleep"), &json!(["50"])), "{v}");
    let (s, v) = submit(r#"{"command": ["taskraft:sleep", "50"]}"#).await;
    assert_eq!((s, v["spec"]["executor"].as_str(), &v["spec"]["command"]), (201, Some("sleep"), &json!(["50"])), "{v}");
    for bad in [
        r#"{"command": ["abc"], "executor": "sleep"}"#,
        r#"{"command": ["taskraft:sleep", "abc"]}"#,
        r#"{"command": ["taskraft:teleport"]}"#,
        r#"{"command": ["not a url"], "executor": "http"}"#,
    ] {
        let (s, v) = submit(bad).await;
        assert_eq!((s, v["error"]["code"].as_str()), (422, Some("invalid_field")), "{bad}: {v}");
    }

    // Preferences: a field beside placement; the first release's wrapper is still accepted.
    let (s, v) = submit(r#"{"command": ["true"], "prefer": {"labels": {"disk": "ssd"}}}"#).await;
    assert_eq!((s, &v["spec"]["prefer"]), (201, &json!({"labels": {"disk": "ssd"}})), "{v}");
    let (s, v) = submit(
        r#"{"command": ["true"], "placement": {"prefer": {"labels": {"disk": "ssd"}, "then": "least_loaded"}}}"#,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let spec = &v["spec"];
    assert_eq!((&spec["placement"], &spec["prefer"]), (&json!("least_loaded"), &json!({"labels": {"disk": "ssd"}})));

    // Worker registrations are checked at the edge.
    for (bad, field) in [
        (r#"{"id": "w-big", "slots": 1000000000}"#, "slots"),
        (r#"{"id": "w-addr", "slots": 1, "api_addr": "garbage"}"#, "api_addr"),
    ] {
        let (s, v) = raw(post.clone(), format!("{base}/v1/workers"), Some(bad.as_bytes().to_vec())).await;
        assert_eq!(s, 422, "{bad}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(field), "{v}");
    }
    // An unknown worker's inbox answers like its heartbeat: register first.
    let (s, v) = raw(reqwest::Method::GET, format!("{base}/v1/workers/nobody/inbox"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("not_registered")), "{v}");
    let (s, v) = raw(post.clone(), format!("{base}/v1/workers/nobody/heartbeat"), Some(b"{}".to_vec())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("not_registered")), "{v}");

    // Nothing above created a task it should not have: 7 accepted submits.
    let (_, stats) = raw(reqwest::Method::GET, format!("{base}/v1/stats"), None).await;
    assert_eq!(stats["total"], 7, "{stats}");
}

/// `GET /v1/openapi.json` on a live replica: OpenAPI 3.1, and its operations are exactly the
/// public routes the router serves. (The router registers each public handler together with
/// its description, so they cannot drift; this pins the list, and probes that every documented
/// operation reaches a handler rather than the 404/405 fallbacks.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_public_route() {
    const PUBLIC_ROUTES: &[(&str, &str)] = &[
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/metrics"),
        ("GET", "/v1/dashboard/replicas"),
        ("GET", "/v1/dashboard/leases"),
        ("GET", "/v1/snapshot"),
        ("POST", "/v1/workers/{id}/output"),
        ("GET", "/v1/tasks/{id}/output"),
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks"),
        ("POST", "/v1/tasks/batch"),
        ("GET", "/v1/tasks/{id}"),
        ("POST", "/v1/tasks/{id}/cancel"),
        ("GET", "/v1/tasks/{id}/wait"),
        ("POST", "/v1/tasks/{id}/attempts/{token}/checkpoint"),
        ("POST", "/v1/workers"),
        ("GET", "/v1/workers"),
        ("DELETE", "/v1/workers/{id}"),
        ("POST", "/v1/workers/{id}/heartbeat"),
        ("GET", "/v1/workers/{id}/inbox"),
        ("POST", "/v1/workers/{id}/drain"),
        ("POST", "/v1/workers/{id}/reports"),
        ("POST", "/v1/schedules"),
        ("GET", "/v1/schedules"),
        ("GET", "/v1/schedules/preview"),
        ("GET", "/v1/schedules/{id}"),
        ("PUT", "/v1/schedules/{id}"),
        ("DELETE", "/v1/schedules/{id}"),
        ("POST", "/v1/schedules/{id}/pause"),
        ("POST", "/v1/schedules/{id}/resume"),
        ("POST", "/v1/schedules/{id}/trigger"),
        ("POST", "/v1/schedules/{id}/backfill"),
        ("GET", "/v1/schedules/{id}/runs"),
        ("POST", "/v1/workflows"),
        ("GET", "/v1/workflows"),
        ("GET", "/v1/workflows/{id}"),
        ("POST", "/v1/workflows/{id}/cancel"),
        ("GET", "/v1/limits"),
        ("GET", "/v1/limits/{key}"),
        ("PUT", "/v1/limits/{key}"),
        ("DELETE", "/v1/limits/{key}"),
        ("GET", "/v1/stats"),
        ("GET", "/v1/cluster"),
        ("POST", "/v1/cluster/init"),
        ("POST", "/v1/cluster/members"),
        ("DELETE", "/v1/cluster/members/{id}"),
        ("POST", "/v1/tokens"),
        ("GET", "/v1/tokens"),
        ("DELETE", "/v1/tokens/{key}"),
    ];
    let cluster = TestCluster::start(1, &[]).await;
    cluster.wait_leader().await;
    let base = format!("http://{}", cluster.nodes[0].api_addr);
    let (s, doc) = raw(reqwest::Method::GET, format!("{base}/v1/openapi.json"), None).await;
    assert_eq!(s, 200, "{doc}");
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "OpenAPI {version}");

    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let expected: std::collections::BTreeSet<(String, String)> =
        PUBLIC_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected, "documented operations vs the public routes");

    for (method, path) in &documented {
        // Ids that exist nowhere: every handler answers fast and changes nothing (a 404, a
        // 409 for the last voter or an initialized cluster, a 422 for a missing body).
        let url = format!("{base}{}", path.replace("{id}", "77").replace("{token}", "1").replace("{key}", "nobody"));
        let (s, v) = raw(method.parse().unwrap(), url, None).await;
        assert_ne!(s, 405, "{method} {path} is documented but not routed: {v}");
        let fallback = v["error"]["message"].as_str().is_some_and(|m| m.starts_with("no such endpoint"));
        assert!(!fallback, "{method} {path} is documented but not routed: {v}");
    }
}
