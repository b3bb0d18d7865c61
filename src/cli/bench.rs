//! `taskraft bench submit`: closed-loop load against a running cluster.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::time::Instant;

use super::ClientArgs;
use super::Output;
use super::output::print_json;
use crate::client::Client;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Submit no-op tasks as fast as N concurrent clients can (each waits for its answer).
    Submit {
        /// Concurrent requests in flight.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Tasks per request: 1 uses POST /v1/tasks, more uses POST /v1/tasks/batch.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Length of the measurement in seconds.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a local 3-replica cluster, SIGKILL its leader `--kills` times and time the first
    /// acknowledged write after each kill (the killed replica is restarted in between).
    Failover {
        /// How many leader kills to measure.
        #[arg(long, default_value_t = 5)]
        kills: usize,
        /// API ports are BASE+1..BASE+3, Raft ports BASE+101..BASE+103.
        #[arg(long, default_value_t = 7300)]
        port_base: u16,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Extra flag for every replica, e.g. `--server-arg=--election-timeout-min-ms=200` (repeatable).
        #[arg(long = "server-arg", allow_hyphen_values = true)]
        server_args: Vec<String>,
    },
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u64>,
    tasks: u64,
    errors: u64,
    last_error: Option<String>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

impl BenchCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            BenchCmd::Submit { concurrency, batch, duration, client } => {
                submit(concurrency, batch, duration, client).await
            }
            BenchCmd::Failover { kills, port_base, output, server_args } => {
                failover(kills, port_base, output, server_args).await
            }
        }
    }
}

async fn submit(concurrency: usize, batch: usize, duration: u64, client: ClientArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!((1..=crate::api::tasks::MAX_BATCH).contains(&batch), "--batch must be 1..=10000");
    let c = Arc::new(Client::new(client.addr.clone())?.with_timeout(Duration::from_secs(10)));
    c.prefer_leader().await?;
    let start = Instant::now();
    let end = start + Duration::from_secs(duration);
    let mut handles = Vec::new();
    for w in 0..concurrency {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            let mut s = WorkerStats::default();
            let mut n = 0u64;
            while Instant::now() < end {
                let t0 = Instant::now();
                let result = if batch == 1 {
                    c.submit(json!({"command": ["true"], "name": format!("bench-{w}-{n}")})).await.map(|_| 1)
                } else {
                    let tasks = (0..batch)
                        .map(|i| json!({"command": ["true"], "name": format!("bench-{w}-{n}-{i}")}))
                        .collect();
                    c.submit_batch(tasks).await.map(|t| t.len() as u64)
                };
                n += 1;
                match result {
                    Ok(k) => {
                        s.tasks += k;
                        s.latencies_us.push(t0.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        s.errors += 1;
                        s.last_error = Some(e.to_string());
                    }
                }
            }
            s
        }));
    }
    let mut all = WorkerStats::default();
    for h in handles {
        let s = h.await?;
        all.latencies_us.extend(s.latencies_us);
        all.tasks += s.tasks;
        all.errors += s.errors;
        all.last_error = s.last_error.or(all.last_error);
    }
    let secs = start.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    let report = json!({
        "concurrency": concurrency,
        "batch": batch,
        "seconds": (secs * 100.0).round() / 100.0,
        "requests": all.latencies_us.len(),
        "tasks": all.tasks,
        "tasks_per_sec": (all.tasks as f64 / secs).round(),
        "requests_per_sec": (all.latencies_us.len() as f64 / secs).round(),
        "latency_ms": {
            "p50": percentile(&all.latencies_us, 50.0),
            "p99": percentile(&all.latencies_us, 99.0),
            "p99_9": percentile(&all.latencies_us, 99.9),
            "max": percentile(&all.latencies_us, 100.0),
        },
        "errors": all.errors,
        "last_error": all.last_error,
    });
    if client.output == Output::Json {
        print_json(&report);
    } else {
        println!(
            "concurrency={concurrency} batch={batch}: {} tasks/s ({} req/s) p50={:.2}ms p99={:.2}ms p99.9={:.2}ms errors={}",
            report["tasks_per_sec"],
            report["requests_per_sec"],
            report["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            report["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
            report["latency_ms"]["p99_9"].as_f64().unwrap_or(0.0),
            all.errors
        );
        if let Some(e) = &all.last_error {
            println!("last error: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every replica reports the same leader and has applied as far as the leader.
async fn settled(client: &Client) -> bool {
    let all = client.cluster_status_all().await;
    let Some(leader) = all.iter().find_map(|(_, s)| s.as_ref().ok().filter(|s| s["role"] == "leader").cloned()) else {
        return false;
    };
    let target = leader["last_applied"].as_u64().unwrap_or(0);
    all.iter().all(|(_, s)| {
        s.as_ref()
            .is_ok_and(|s| s["leader_id"] == leader["node_id"] && s["last_applied"].as_u64().unwrap_or(0) >= target)
    })
}

async fn failover(kills: usize, port_base: u16, output: Output, server_args: Vec<String>) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("taskraft-failover-").tempdir()?;
    let mut extra = vec!["--cluster-secret".to_string(), "bench".into()];
    extra.extend(server_args);
    let mut cluster = super::local::LocalCluster::spawn(dir.path(), 3, port_base, port_base + 100, &extra)?;
    let client = Client::new(cluster.addrs())?.with_timeout(Duration::from_secs(10));
    let stop = tokio_util::sync::CancellationToken::new();
    super::server::spawn_signal_handler(stop.clone());
    let result = async {
        cluster.wait_formed(&client, 3, Duration::from_secs(60), &stop).await?;
        let mut times = Vec::new();
        for k in 1..=kills {
            // Start from a healthy cluster: everyone agrees on the leader and has caught up.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !settled(&client).await {
                anyhow::ensure!(Instant::now() < deadline, "cluster did not settle before kill {k}");
                anyhow::ensure!(!stop.is_cancelled(), "interrupted");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            client.submit(json!({"command": ["true"], "name": format!("before-kill-{k}")})).await?;
            let leader = client.cluster_status().await?["leader_id"].as_u64().context("no leader")?;
            cluster.kill9(leader).await?;
            let t0 = Instant::now();
            client.submit(json!({"command": ["true"], "name": format!("after-kill-{k}")})).await?;
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            if output == Output::Table {
                println!("kill {k}: leader {leader} SIGKILLed -> first acknowledged write after {ms:.0} ms");
            }
            times.push(ms);
            cluster.start(leader)?;
        }
        Ok(times)
    }
    .await;
    cluster.shutdown().await;
    let mut times: Vec<f64> = result?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let report = json!({"kills": times.len(), "median_ms": median, "min_ms": times[0], "max_ms": times[times.len() - 1], "all_ms": times});
    if output == Output::Json {
        print_json(&report);
    } else {
        println!(
            "leader kill -> first acknowledged write: median {median:.0} ms, min {:.0} ms, max {:.0} ms over {} kills",
            times[0],
            times[times.len() - 1],
            times.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
