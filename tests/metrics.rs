//! `GET /metrics` on a real 3-replica cluster with a worker: every replica answers valid
//! OpenMetrics text, one says it leads, and the cluster counters (counted from apply) agree
//! across replicas once they have applied the same entries.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestCluster;
use common::eventually;
use serde_json::json;
use taskraft::scheduler::TaskState;

/// Families whose values come from applied commands or the replicated state: equal on every
/// replica at the same applied index.
const CLUSTER_FAMILIES: [&str; 11] = [
    "taskraft_tasks_submitted_total",
    "taskraft_task_transitions_total",
    "taskraft_attempts_ended_total",
    "taskraft_worker_lease_expiries_total",
    "taskraft_tasks",
    "taskraft_tasks_created_total",
    "taskraft_queue_depth",
    "taskraft_workers",
    "taskraft_worker_slots",
    "taskraft_schedules",
    "taskraft_schedule_fires_total",
];

/// The samples of an OpenMetrics text exposition, by series (`name{labels}`), after checking
/// its shape: comment lines are `# HELP|TYPE|UNIT`, the last line is `# EOF`, every sample is
/// `name{label="value",...} number`, and every sample belongs to a family announced by `# TYPE`.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "the exposition does not end with # EOF");
    assert_eq!(lines.iter().filter(|l| l.starts_with("# EOF")).count(), 1, "# EOF more than once");
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = BTreeMap::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            assert!(["HELP", "TYPE", "UNIT"].contains(&kind), "unknown comment: {line}");
            if kind == "TYPE" {
                let ty = words.next().unwrap_or("");
                let known = ["counter", "gauge", "histogram", "summary", "info", "stateset", "unknown"];
                assert!(known.contains(&ty), "unknown type: {line}");
                families.push((name.to_string(), ty.to_string()));
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            let labels = series[name_end + 1..].strip_suffix('}').unwrap_or_else(|| panic!("unclosed: {line}"));
            for label in labels.split(',') {
                let (k, v) = label.split_once('=').unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name: {line}");
                assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "unquoted label value: {line}");
            }
        }
        let family = families.last().unwrap_or_else(|| panic!("a sample before any # TYPE: {line}"));
        let suffixes: &[&str] = match family.1.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        assert!(
            suffixes.iter().any(|s| name.strip_suffix(s) == Some(family.0.as_str())),
            "sample {name} outside its family {}",
            family.0
        );
        assert!(samples.insert(series.to_string(), value).is_none(), "series twice: {series}");
    }
    samples
}

async fn scrape(addr: &str) -> Option<String> {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "content type {content_type}");
    resp.text().await.ok()
}

/// The samples of the cluster families.
fn cluster_part(samples: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|(series, _)| {
            let name = series.split('{').next().unwrap_or("");
            CLUSTER_FAMILIES.contains(&name)
        })
        .map(|(s, v)| (s.clone(), *v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_exports_metrics_and_the_cluster_counters_agree() {
    let mut cluster = TestCluster::start(3, &[]).await;
    cluster.add_worker("w1", 2, &[]);
    cluster.wait_workers(1).await;
    let client = cluster.client();

    let mut ids = Vec::new();
    for i in 0..4 {
        let (t, _) = client.submit(json!({"name": format!("ok-{i}"), "executor": "noop"})).await.unwrap();
        ids.push(t.id);
    }
    let (failing, _) = client.submit(json!({"name": "fails", "command": ["false"]})).await.unwrap();
    for &id in &ids {
        let t = client.wait(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    }
    let t = client.wait(failing.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(t.state, TaskState::Failed, "{t:?}");

    // Nothing writes to the log any more: poll until every replica has applied the same index
    // and reports the same cluster counters.
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let scraped: Vec<BTreeMap<String, f64>> =
        eventually("equal cluster counters on every replica", Duration::from_secs(30), || async {
            let mut all = Vec::new();
            for addr in &addrs {
                all.push(parse(&scrape(addr).await?));
            }
            let applied: Vec<f64> = all.iter().map(|s| s["taskraft_raft_applied_index"]).collect();
            let parts: Vec<BTreeMap<String, f64>> = all.iter().map(cluster_part).collect();
            let agree = applied.iter().all(|&a| a == applied[0]) && parts.iter().all(|p| *p == parts[0]);
            agree.then_some(all)
        })
        .await;

    let leaders = scraped.iter().filter(|s| s["taskraft_raft_is_leader"] == 1.0).count();
    assert_eq!(leaders, 1, "exactly one replica must report is_leader = 1");
    let c = cluster_part(&scraped[0]);
    let get = |series: &str| c.get(series).copied().unwrap_or_else(|| panic!("no {series} in {c:#?}"));
    assert_eq!(get("taskraft_tasks_submitted_total"), 5.0);
    assert_eq!(get("taskraft_tasks_created_total"), 5.0);
    assert_eq!(get(r#"taskraft_task_transitions_total{to="succeeded"}"#), 4.0);
    assert_eq!(get(r#"taskraft_task_transitions_total{to="failed"}"#), 1.0);
    assert_eq!(get(r#"taskraft_task_transitions_total{to="assigned"}"#), 5.0);
    assert_eq!(get(r#"taskraft_attempts_ended_total{outcome="succeeded"}"#), 4.0);
    assert_eq!(get(r#"taskraft_attempts_ended_total{outcome="failed"}"#), 1.0);
    assert_eq!(get(r#"taskraft_tasks{state="succeeded"}"#), 4.0);
    assert_eq!(get(r#"taskraft_workers{state="active"}"#), 1.0);
    assert_eq!(get(r#"taskraft_worker_slots{slots="free"}"#), 2.0);

    // HTTP series are labelled by route template: the scrapes above are counted on every
    // replica (a scrape is counted once it is answered, so look again), and the waits
    // somewhere, never by their raw path.
    let mut scraped = Vec::new();
    for addr in &addrs {
        scraped.push(parse(&scrape(addr).await.expect("a replica stopped answering")));
    }
    for s in &scraped {
        assert!(
            s.keys().any(|k| k.starts_with("taskraft_http_requests_total{") && k.contains(r#"route="/metrics""#)),
            "no request counter for /metrics: {s:#?}"
        );
    }
    // Every replica applied the entries and timed each batch: its waits for the state lock and
    // its apply time, one observation of each per batch.
    for s in &scraped {
        let batches = s.get("taskraft_apply_seconds_count").copied().unwrap_or(0.0);
        assert!(batches >= 1.0, "no apply batch timed: {s:#?}");
        assert_eq!(s.get("taskraft_apply_lock_wait_seconds_count"), Some(&batches), "{s:#?}");
    }
    let all_series: Vec<&String> = scraped.iter().flat_map(|s| s.keys()).collect();
    assert!(all_series.iter().any(|k| k.contains(r#"route="/v1/tasks/{id}/wait""#)), "{all_series:#?}");
    assert!(!all_series.iter().any(|k| k.contains(&format!("/v1/tasks/{}", ids[0]))), "raw path as a label");
}
