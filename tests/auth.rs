//! End-to-end tests of API tokens and roles on a real 3-replica cluster with auth on.

mod common;

use std::time::Duration;

use common::TestCluster;
use common::eventually;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::Value;
use serde_json::json;
use taskraft::client::Client;
use taskraft::proto::tokens::CreateToken;
use taskraft::proto::tokens::generate_token;
use taskraft::scheduler::Role;

/// One raw request to one replica, with or without a token: (status, JSON body).
async fn call(addr: &str, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, format!("http://{addr}{path}")).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the replica answers");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn create(client: &Client, name: &str, role: Role, worker: Option<&str>) -> String {
    let req = CreateToken { name: name.into(), role, worker_id: worker.map(str::to_string) };
    client.create_token(&req).await.expect("create token").token
}

/// Every route of the API that needs a token, as (method, path).
const GUARDED: &[(&str, &str)] = &[
    ("GET", "/v1/tasks"),
    ("POST", "/v1/tasks"),
    ("POST", "/v1/tasks/batch"),
    ("GET", "/v1/tasks/1"),
    ("POST", "/v1/tasks/1/cancel"),
    ("GET", "/v1/tasks/1/wait"),
    ("POST", "/v1/tasks/1/attempts/5/checkpoint"),
    ("GET", "/v1/workers"),
    ("POST", "/v1/workers"),
    ("DELETE", "/v1/workers/w1"),
    ("POST", "/v1/workers/w1/heartbeat"),
    ("GET", "/v1/workers/w1/inbox"),
    ("POST", "/v1/workers/w1/drain"),
    ("POST", "/v1/workers/w1/reports"),
    ("GET", "/v1/schedules"),
    ("POST", "/v1/schedules"),
    ("GET", "/v1/schedules/preview"),
    ("GET", "/v1/schedules/1"),
    ("PUT", "/v1/schedules/1"),
    ("DELETE", "/v1/schedules/1"),
    ("POST", "/v1/schedules/1/pause"),
    ("POST", "/v1/schedules/1/resume"),
    ("POST", "/v1/schedules/1/trigger"),
    ("POST", "/v1/schedules/1/backfill"),
    ("GET", "/v1/schedules/1/runs"),
    ("GET", "/v1/workflows"),
    ("POST", "/v1/workflows"),
    ("GET", "/v1/workflows/1"),
    ("POST", "/v1/workflows/1/cancel"),
    ("GET", "/v1/limits"),
    ("GET", "/v1/limits/db"),
    ("PUT", "/v1/limits/db"),
    ("DELETE", "/v1/limits/db"),
    ("GET", "/v1/stats"),
    ("GET", "/v1/cluster"),
    ("POST", "/v1/cluster/init"),
    ("POST", "/v1/cluster/members"),
    ("DELETE", "/v1/cluster/members/9"),
    ("GET", "/v1/internal/read-index"),
    ("GET", "/v1/tokens"),
    ("POST", "/v1/tokens"),
    ("DELETE", "/v1/tokens/ci"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/dashboard/replicas"),
    ("GET", "/v1/dashboard/leases"),
    ("GET", "/v1/snapshot"),
    ("POST", "/v1/workers/w1/output"),
    ("GET", "/v1/tasks/1/output"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_everything_but_health_is_refused_and_roles_decide_the_rest() {
    let admin = generate_token();
    let cluster = TestCluster::start_with_auth(3, &[], &admin).await;
    let leader = cluster.wait_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap().api_addr.clone();
    let client = cluster.client();

    // 1. No token, a malformed one, a forged one: 401 with the JSON error shape, everywhere.
    let forged = format!("{}x", &admin[..admin.len() - 1]);
    for node in &cluster.nodes {
        for (method, path) in GUARDED {
            let method: Method = method.parse().unwrap();
            for token in [None, Some("not-a-token"), Some(forged.as_str())] {
                let (status, body) = call(&node.api_addr, method.clone(), path, token, None).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {token:?} on node {}", node.id);
                assert_eq!(body["error"]["code"], "unauthorized", "{body}");
                let text = body.to_string();
                assert!(!text.contains(&admin[21..]), "an error echoed a secret: {text}");
            }
        }
        assert_eq!(call(&node.api_addr, Method::GET, "/health", None, None).await.0, StatusCode::OK);
        assert_ne!(call(&node.api_addr, Method::GET, "/ready", None, None).await.0, StatusCode::UNAUTHORIZED);
        // The dashboard's page and scripts are open: they hold no data and ask for a token.
        assert_eq!(call(&node.api_addr, Method::GET, "/", None, None).await.0, StatusCode::OK);
    }

    // 2. Roles. Tokens are made on the leader (through whichever replica) and used at once
    //    on a follower: it catches up before refusing an unknown key.
    let reader = create(&client, "viewer", Role::Reader, None).await;
    let submitter = create(&client, "ci", Role::Submitter, None).await;
    let operator = create(&client, "oncall", Role::Operator, None).await;
    let task = json!({"command": ["sleep", "30"], "name": "held"});
    let (s, body) = call(&follower, Method::POST, "/v1/tasks", Some(&reader), Some(task.clone())).await;
    assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("submitter"), "{body}");
    let (s, body) = call(&follower, Method::POST, "/v1/tasks", Some(&submitter), Some(task)).await;
    assert_eq!(s, StatusCode::CREATED, "a submitter submits, through a follower: {body}");
    let id = body["id"].as_u64().expect("task id");
    assert_eq!(call(&follower, Method::GET, &format!("/v1/tasks/{id}"), Some(&reader), None).await.0, StatusCode::OK);
    let cancel = format!("/v1/tasks/{id}/cancel");
    assert_eq!(call(&follower, Method::POST, &cancel, Some(&submitter), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&follower, Method::POST, &cancel, Some(&operator), None).await.0, StatusCode::OK);
    // Workflows: submitters submit, readers read, operators cancel.
    let wf = json!({"name": "roles", "nodes": [{"id": "a", "task": {"command": ["sleep", "30"]}}]});
    assert_eq!(
        call(&follower, Method::POST, "/v1/workflows", Some(&reader), Some(wf.clone())).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, body) = call(&follower, Method::POST, "/v1/workflows", Some(&submitter), Some(wf)).await;
    assert_eq!(s, StatusCode::CREATED, "a submitter submits a workflow: {body}");
    let wf_id = body["id"].as_u64().expect("workflow id");
    let get = format!("/v1/workflows/{wf_id}");
    assert_eq!(call(&follower, Method::GET, &get, Some(&reader), None).await.0, StatusCode::OK);
    let cancel = format!("/v1/workflows/{wf_id}/cancel");
    assert_eq!(call(&follower, Method::POST, &cancel, Some(&submitter), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(call(&follower, Method::POST, &cancel, Some(&operator), None).await.0, StatusCode::OK);
    assert_eq!(call(&follower, Method::GET, "/v1/tokens", Some(&operator), None).await.0, StatusCode::FORBIDDEN);
    // Limits: operators set and remove them, readers read them.
    let limit = Some(json!({"max_running": 2}));
    let (put, del) = (Method::PUT, Method::DELETE);
    assert_eq!(call(&follower, put.clone(), "/v1/limits/db", Some(&submitter), limit.clone()).await.0, 403);
    assert_eq!(call(&follower, put, "/v1/limits/db", Some(&operator), limit).await.0, StatusCode::OK);
    assert_eq!(call(&follower, Method::GET, "/v1/limits", Some(&reader), None).await.0, StatusCode::OK);
    assert_eq!(call(&follower, Method::GET, "/v1/limits/db", Some(&reader), None).await.0, StatusCode::OK);
    assert_eq!(call(&follower, del.clone(), "/v1/limits/db", Some(&reader), None).await.0, 403);
    assert_eq!(call(&follower, del, "/v1/limits/db", Some(&operator), None).await.0, StatusCode::OK);
    let (s, body) = call(&follower, Method::GET, "/v1/tokens", Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = body["tokens"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 4, "{body}");
    assert!(names.contains(&"bootstrap-admin") && names.contains(&"ci"), "{names:?}");
    assert!(!body.to_string().contains(&submitter[21..]), "the list shows no secret");

    // 3. A revoked token is refused by every replica once the revocation is applied there.
    client.revoke_token("ci").await.expect("revoke");
    for node in &cluster.nodes {
        let addr = node.api_addr.clone();
        let token = submitter.clone();
        eventually(&format!("node {} refuses the revoked token", node.id), Duration::from_secs(10), || {
            let (addr, token) = (addr.clone(), token.clone());
            async move { (call(&addr, Method::GET, "/v1/stats", Some(&token), None).await.0 == 401).then_some(()) }
        })
        .await;
    }

    // 4. Secrets never reach a log.
    for node in &cluster.nodes {
        let log = std::fs::read_to_string(&node.log).unwrap();
        for secret in [&admin, &reader, &submitter, &operator] {
            assert!(!log.contains(&secret[21..]), "node {} logged a token secret", node.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_token_speaks_only_for_its_own_worker_and_attempts() {
    let admin = generate_token();
    let mut cluster = TestCluster::start_with_auth(3, &[], &admin).await;
    let client = cluster.client();
    let w1 = create(&client, "w1", Role::Worker, Some("w1")).await;
    let w2 = create(&client, "w2", Role::Worker, Some("w2")).await;
    cluster.add_worker("w1", 2, &["--token", &w1]);
    cluster.add_worker("w2", 2, &["--token", &w2]);
    cluster.wait_workers(2).await;
    // Real workers with their own tokens run tasks.
    let (done, _) = client.submit(json!({"command": ["true"], "constraints": {}})).await.unwrap();
    let done = client.wait(done.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.state, taskraft::scheduler::TaskState::Succeeded);

    let addr = cluster.nodes[0].api_addr.clone();
    // w1's token cannot act as w2: heartbeat, inbox, reports, registration.
    for (method, path) in
        [("POST", "/v1/workers/w2/heartbeat"), ("GET", "/v1/workers/w2/inbox"), ("POST", "/v1/workers/w2/reports")]
    {
        let (s, body) = call(&addr, method.parse().unwrap(), path, Some(&w1), Some(json!({"reports": []}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    let takeover =
        json!({"id": "w2", "host": "evil", "slots": 1, "cpu_millis": 1000, "memory_mib": 1024, "labels": {}});
    let (s, body) = call(&addr, Method::POST, "/v1/workers", Some(&w1), Some(takeover)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "w1 re-registering w2: {body}");
    // Nor read or submit: a worker token is for the worker protocol only.
    assert_eq!(call(&addr, Method::GET, "/v1/tasks", Some(&w1), None).await.0, StatusCode::FORBIDDEN);

    // A running attempt of w2: w1 cannot write its checkpoint, even with the right fencing token.
    let (t, _) = client.submit(json!({"command": ["sleep", "30"], "constraints": {}})).await.unwrap();
    let running = eventually("the sleep runs", Duration::from_secs(20), || async {
        let t = client.get_task(t.id, false).await.ok()?;
        (t.state == taskraft::scheduler::TaskState::Running).then_some(t)
    })
    .await;
    let attempt = running.attempts.last().unwrap();
    let (owner, other) = if attempt.worker_id == "w1" { (&w1, &w2) } else { (&w2, &w1) };
    let path = format!("/v1/tasks/{}/attempts/{}/checkpoint", t.id, attempt.fencing_token);
    let http = reqwest::Client::new();
    let send = |token: &str| {
        http.post(format!("http://{addr}{path}"))
            .bearer_auth(token)
            .body("step")
            .timeout(Duration::from_secs(10))
            .send()
    };
    let stolen = send(other).await.unwrap();
    assert_eq!(stolen.status(), StatusCode::CONFLICT);
    let body: Value = stolen.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_worker", "{body}");
    assert_eq!(send(owner).await.unwrap().status(), StatusCode::OK, "the owner's own checkpoint is taken");
    client.cancel(t.id, None).await.unwrap();
}
