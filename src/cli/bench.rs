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
use crate::proto::cluster::Role;

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
    /// Start a local cluster (3 replicas + N workers), run M tasks through it end to end, and
    /// report completions/s and submit→start / submit→done latency percentiles.
    E2e {
        /// Worker agents to start.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Slots per worker.
        #[arg(long, default_value_t = 16)]
        slots: u32,
        /// Tasks to run.
        #[arg(long, default_value_t = 20_000)]
        tasks: usize,
        /// `noop` (built-in, no process) or `exec` (runs `true` as a real process).
        #[arg(long, value_enum, default_value_t = E2eExecutor::Noop)]
        executor: E2eExecutor,
        /// Offered load in tasks/s (submitted in small batches every 10 ms); default: all at once.
        #[arg(long)]
        rate: Option<u64>,
        /// API ports are BASE+1..BASE+3, Raft ports BASE+101..BASE+103.
        #[arg(long, default_value_t = 7300)]
        port_base: u16,
        /// The replicas' retention horizon in ms (`--retention-ms`): finished tasks older than
        /// this are forgotten during the run, and the latency figures cover only the tasks
        /// still kept at the end. Default: the servers' (7 days).
        #[arg(long)]
        retention_ms: Option<u64>,
        /// Sample every replica's resident memory (VmRSS) this often, in seconds; the report
        /// lists the samples (the RSS curve).
        #[arg(long, default_value_t = 30)]
        rss_every: u64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Start a local cluster (3 replicas + workers), create N schedules firing every M ms, and
    /// report fire lateness, p50/p99/max: the fire's proposal stamp, its commit on the leader
    /// (the leader's own measure, `GET /v1/cluster`), and its run's start, minus the nominal
    /// time. `--kill-leader` SIGKILLs the leader halfway and reports how soon fires resumed
    /// after the new leader was elected.
    Schedules {
        /// Schedules to create.
        #[arg(long, default_value_t = 1000)]
        schedules: usize,
        /// Interval of every schedule, in ms (their phases are spread by their creation times).
        #[arg(long, default_value_t = 1000)]
        every_ms: u64,
        /// Seconds to measure after the last schedule was created (default: max(20, 3 intervals)).
        #[arg(long)]
        duration: Option<u64>,
        /// Worker agents (256 slots each) running the `noop` runs.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// SIGKILL the leader halfway through and measure the resumption of fires.
        #[arg(long)]
        kill_leader: bool,
        /// API ports are BASE+1..BASE+3, Raft ports BASE+101..BASE+103.
        #[arg(long, default_value_t = 7300)]
        port_base: u16,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Start a local cluster (3 replicas + workers) and time workflows: a fan-out of 1 → N
    /// shards → 1 (makespan, per-edge overhead), then many small diamonds submitted at once
    /// (workflows completed per second). Tasks are `noop`; times are the leader's.
    Workflow {
        /// Shards of the fan-out's middle node.
        #[arg(long, default_value_t = 1000)]
        shards: u32,
        /// Fan-out workflows, run one after the other.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Small diamond workflows (a → b, c → d) submitted at once.
        #[arg(long, default_value_t = 1000)]
        diamonds: usize,
        /// Nodes of a chain run alone: its edges give the overhead per edge without queueing.
        #[arg(long, default_value_t = 100)]
        chain: usize,
        /// Worker agents to start.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Slots per worker.
        #[arg(long, default_value_t = 64)]
        slots: u32,
        /// API ports are BASE+1..BASE+3, Raft ports BASE+101..BASE+103.
        #[arg(long, default_value_t = 7300)]
        port_base: u16,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// What the e2e benchmark's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum E2eExecutor {
    /// The built-in no-op executor.
    Noop,
    /// A real process (`true`).
    Exec,
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
            BenchCmd::E2e { workers, slots, tasks, executor, rate, port_base, retention_ms, rss_every, output } => {
                let args = E2eArgs { workers, slots, tasks, executor, rate, port_base, retention_ms, rss_every };
                e2e(args, output).await
            }
            BenchCmd::Failover { kills, port_base, output, server_args } => {
                failover(kills, port_base, output, server_args).await
            }
            BenchCmd::Workflow { shards, rounds, diamonds, chain, workers, slots, port_base, output } => {
                let args = super::bench_workflow::WorkflowBenchArgs { shards, rounds, diamonds, chain };
                bench_workflow(args, workers, slots, port_base, output).await
            }
            BenchCmd::Schedules { schedules, every_ms, duration, workers, kill_leader, port_base, output } => {
                let duration = duration.unwrap_or_else(|| (3 * every_ms / 1000).max(20));
                let args = SchedulesArgs { schedules, every_ms, duration, workers, kill_leader, port_base };
                bench_schedules(args, output).await
            }
        }
    }
}

async fn submit(concurrency: usize, batch: usize, duration: u64, client: ClientArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!((1..=crate::proto::MAX_BATCH).contains(&batch), "--batch must be 1..={}", crate::proto::MAX_BATCH);
    let c = Arc::new(client.connect()?.with_timeout(Duration::from_secs(10)));
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
                    c.submit_batch_ids(tasks).await.map(|t| t.len() as u64)
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
    let all = client.cluster_status_all(Duration::from_secs(2)).await;
    let Some(leader) = all.iter().find_map(|(_, s)| s.as_ref().ok().filter(|s| s.role == Role::Leader).cloned()) else {
        return false;
    };
    let target = leader.last_applied.unwrap_or(0);
    all.iter().all(|(_, s)| {
        s.as_ref().is_ok_and(|s| s.leader_id == Some(leader.node_id) && s.last_applied.unwrap_or(0) >= target)
    })
}

async fn failover(kills: usize, port_base: u16, output: Output, server_args: Vec<String>) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("taskraft-failover-").tempdir()?;
    let mut extra = vec!["--cluster-secret".to_string(), "bench".into(), "--auth=false".into()];
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
            let leader = client.cluster_status().await?.leader_id.context("no leader")?;
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

struct E2eArgs {
    workers: usize,
    slots: u32,
    tasks: usize,
    executor: E2eExecutor,
    rate: Option<u64>,
    port_base: u16,
    retention_ms: Option<u64>,
    rss_every: u64,
}

/// Nearest-rank percentiles of `v` (and its count), as bench reports print them.
pub(crate) fn percentiles(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    let p = |q: f64| -> u64 {
        if v.is_empty() {
            return 0;
        }
        let rank = ((q / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    json!({"n": v.len(), "p50": p(50.0), "p90": p(90.0), "p99": p(99.0), "max": p(100.0)})
}

/// A local 3-replica cluster (auth off) with `workers` × `slots`, formed and registered.
async fn bench_cluster(
    dir: &std::path::Path,
    port_base: u16,
    workers: usize,
    slots: u32,
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<(super::local::LocalCluster, Arc<Client>)> {
    bench_cluster_with(dir, port_base, workers, slots, &[], stop).await
}

/// [`bench_cluster`] with extra server arguments.
async fn bench_cluster_with(
    dir: &std::path::Path,
    port_base: u16,
    workers: usize,
    slots: u32,
    extra: &[String],
    stop: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<(super::local::LocalCluster, Arc<Client>)> {
    let mut args: Vec<String> = vec!["--cluster-secret".into(), "bench".into(), "--auth=false".into()];
    args.extend_from_slice(extra);
    let mut cluster = super::local::LocalCluster::spawn(dir, 3, port_base, port_base + 100, &args)?;
    let client = Arc::new(Client::new(cluster.addrs())?.with_timeout(Duration::from_secs(30)));
    let formed = async {
        cluster.wait_formed(&client, 3, Duration::from_secs(60), stop).await?;
        for _ in 0..workers {
            cluster.spawn_worker(slots, &[])?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client.stats().await?.active_workers == workers as u64 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "workers did not register within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(client.prefer_leader().await?)
    }
    .await;
    match formed {
        Ok(()) => Ok((cluster, client)),
        Err(e) => {
            cluster.shutdown().await;
            Err(e)
        }
    }
}

async fn bench_workflow(
    args: super::bench_workflow::WorkflowBenchArgs,
    workers: usize,
    slots: u32,
    port_base: u16,
    output: Output,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.shards >= 1 && args.rounds >= 1, "--shards and --rounds must be at least 1");
    let dir = tempfile::Builder::new().prefix("taskraft-wf-bench-").tempdir()?;
    let stop = tokio_util::sync::CancellationToken::new();
    super::server::spawn_signal_handler(stop.clone());
    let (mut cluster, client) = bench_cluster(dir.path(), port_base, workers, slots, &stop).await?;
    let result = super::bench_workflow::run(&client, &args).await;
    cluster.shutdown().await;
    let mut report = result?;
    report["workers"] = json!(workers);
    report["slots"] = json!(slots);
    if output == Output::Json {
        print_json(&report);
    } else {
        let f = &report["fan_out"];
        let d = &report["diamonds"];
        let c = &report["chain"];
        println!(
            "fan-out 1 -> {} -> 1 on {workers} x {slots} slots, {} rounds: makespan p50 {} ms (max {}), client wall p50 {} ms; edge overhead p50 {} ms p99 {} ms",
            f["shards"],
            f["rounds"],
            f["makespan_ms"]["p50"],
            f["makespan_ms"]["max"],
            f["client_wall_ms"]["p50"],
            f["edge_overhead_ms"]["p50"],
            f["edge_overhead_ms"]["p99"]
        );
        println!(
            "chain of {} nodes alone: makespan {} ms; edge overhead p50 {} ms p90 {} ms p99 {} ms (parent end -> assign p50 {} ms, assign -> start p50 {} ms)",
            c["nodes"],
            c["makespan_ms"],
            c["edge_overhead_ms"]["p50"],
            c["edge_overhead_ms"]["p90"],
            c["edge_overhead_ms"]["p99"],
            c["parent_end_to_assign_ms"]["p50"],
            c["assign_to_start_ms"]["p50"]
        );
        println!(
            "{} diamonds at once: {} workflows/s (span {} ms, submitted in {} ms); makespan p50 {} ms p99 {} ms; edge overhead p50 {} ms p99 {} ms",
            d["workflows"],
            d["completed_per_sec"],
            d["span_ms"],
            d["submitted_in_ms"],
            d["makespan_ms"]["p50"],
            d["makespan_ms"]["p99"],
            d["edge_overhead_ms"]["p50"],
            d["edge_overhead_ms"]["p99"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn e2e(args: E2eArgs, output: Output) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("taskraft-e2e-").tempdir()?;
    let stop = tokio_util::sync::CancellationToken::new();
    super::server::spawn_signal_handler(stop.clone());
    let extra: Vec<String> =
        args.retention_ms.map(|ms| vec!["--retention-ms".into(), ms.to_string()]).unwrap_or_default();
    let (mut cluster, client) =
        bench_cluster_with(dir.path(), args.port_base, args.workers, args.slots, &extra, &stop).await?;
    let addrs = cluster.addrs();
    let pids: Vec<u32> = cluster.replicas.iter().filter_map(|r| r.child.as_ref().and_then(|c| c.id())).collect();
    let rss = RssSampler::start(pids, Duration::from_secs(args.rss_every.max(1)));
    let result = async {
        let (executor, command) = match args.executor {
            E2eExecutor::Noop => ("noop", json!([])),
            E2eExecutor::Exec => ("exec", json!(["true"])),
        };
        let spec = |i: usize| {
            json!({"executor": executor, "command": command, "name": "e2e", "idempotency_key": format!("e2e-{i}")})
        };
        let started = Instant::now();
        match args.rate {
            None => {
                let mut handles = Vec::new();
                for chunk in (0..args.tasks).collect::<Vec<_>>().chunks(1000) {
                    anyhow::ensure!(!stop.is_cancelled(), "interrupted");
                    let (c, specs) = (client.clone(), chunk.iter().map(|&i| spec(i)).collect::<Vec<_>>());
                    handles.push(tokio::spawn(async move { c.submit_batch_ids(specs).await }));
                    if handles.len() >= 4 {
                        handles.remove(0).await??;
                    }
                }
                for h in handles {
                    h.await??;
                }
            }
            Some(rate) => {
                let per_tick = (rate as usize / 100).max(1);
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let mut submits: tokio::task::JoinSet<crate::client::Result<Vec<u64>>> = tokio::task::JoinSet::new();
                let mut i = 0;
                while i < args.tasks {
                    tick.tick().await;
                    anyhow::ensure!(!stop.is_cancelled(), "interrupted");
                    // A refused submit ends the run at once, instead of as missing tasks later.
                    while let Some(done) = submits.try_join_next() {
                        done?.context("a submit of the offered load failed")?;
                    }
                    let n = per_tick.min(args.tasks - i);
                    let (c, specs) = (client.clone(), (i..i + n).map(spec).collect::<Vec<_>>());
                    submits.spawn(async move { c.submit_batch_ids(specs).await });
                    i += n;
                }
                while let Some(done) = submits.join_next().await {
                    done?.context("a submit of the offered load failed")?;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut forgotten;
        loop {
            let stats = client.stats().await?;
            // Retention forgets only finished tasks: every id below the next that is not
            // counted any more was forgotten after it ended.
            forgotten = stats.next_task_id.saturating_sub(1).saturating_sub(stats.total);
            let done = stats.counts.succeeded + stats.counts.failed + forgotten;
            if done >= args.tasks as u64 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "tasks did not finish within 10 minutes ({done} done)");
            anyhow::ensure!(!stop.is_cancelled(), "interrupted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wall = started.elapsed();
        let (mut to_start, mut to_done, mut first, mut last, mut failed) = (Vec::new(), Vec::new(), u64::MAX, 0, 0);
        // Tasks whose last attempt has no start time (its start report reached the leader after
        // its completion, and was refused): left out of the start figures, so they are counted.
        let mut no_start = 0u64;
        let (mut queued, mut assigned_to_started, mut started_to_done) = (Vec::new(), Vec::new(), Vec::new());
        let mut cursor = None;
        loop {
            let page = client.list_tasks(None, 1000, cursor).await?;
            for t in &page.tasks {
                let Some(a) = t.attempts.last() else { continue };
                if t.state != crate::scheduler::TaskState::Succeeded {
                    failed += 1;
                }
                if a.started_ms.is_none() {
                    no_start += 1;
                }
                if let Some(s) = a.started_ms {
                    to_start.push(s.saturating_sub(t.created_ms));
                    assigned_to_started.push(s.saturating_sub(a.assigned_ms));
                    if let Some(e) = a.ended_ms {
                        started_to_done.push(e.saturating_sub(s));
                    }
                }
                queued.push(a.assigned_ms.saturating_sub(t.created_ms));
                if let Some(f) = t.finished_ms {
                    to_done.push(f.saturating_sub(t.created_ms));
                    last = last.max(f);
                }
                first = first.min(t.created_ms);
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        if forgotten > 0 {
            // The kept tasks do not show the failures retention forgot: the applied counters do
            // (the cluster started with this run, so they count exactly its tasks).
            failed = failed_from_metrics(&addrs).await?;
        }
        let span_s = if forgotten > 0 {
            // The first tasks were forgotten: time the run from the first submit instead.
            wall.as_secs_f64()
        } else {
            (last.saturating_sub(first)).max(1) as f64 / 1000.0
        };
        Ok(json!({
            "tasks": args.tasks, "workers": args.workers, "slots": args.slots, "executor": format!("{:?}", args.executor).to_lowercase(),
            "offered_rate": args.rate, "failed": failed, "forgotten": forgotten, "retention_ms": args.retention_ms,
            "completed_per_sec": (args.tasks as f64 / span_s).round(),
            "wall_seconds": (wall.as_secs_f64() * 100.0).round() / 100.0,
            "submit_to_start_ms": percentiles(to_start),
            "without_start_time": no_start,
            "submit_to_done_ms": percentiles(to_done),
            "queued_ms": percentiles(queued),
            "assigned_to_started_ms": percentiles(assigned_to_started),
            "started_to_done_ms": percentiles(started_to_done),
        }))
    }
    .await;
    let samples = rss.stop().await;
    cluster.shutdown().await;
    let mut report = result?;
    report["rss_mb"] = json!(samples.iter().map(|s| json!({"t_s": s.0, "replicas": s.1})).collect::<Vec<_>>());
    if output == Output::Json {
        print_json(&report);
    } else {
        println!(
            "{} tasks ({}), {} workers x {} slots{}: {} completed/s; submit->start p50 {} ms p99 {} ms; submit->done p50 {} ms p99 {} ms; failed {}",
            report["tasks"],
            report["executor"].as_str().unwrap_or(""),
            report["workers"],
            report["slots"],
            args.rate.map(|r| format!(", offered {r}/s")).unwrap_or_default(),
            report["completed_per_sec"],
            report["submit_to_start_ms"]["p50"],
            report["submit_to_start_ms"]["p99"],
            report["submit_to_done_ms"]["p50"],
            report["submit_to_done_ms"]["p99"],
            report["failed"]
        );
        let st = |k: &str| format!("{}/{}", report[k]["p50"], report[k]["p99"]);
        println!(
            "  stages p50/p99 ms: queued {}, assigned->started {}, started->done {}",
            st("queued_ms"),
            st("assigned_to_started_ms"),
            st("started_to_done_ms")
        );
        if report["without_start_time"].as_u64().unwrap_or(0) > 0 {
            println!(
                "  without a start time (start report refused after the completion): {} tasks",
                report["without_start_time"]
            );
        }
        if report["forgotten"].as_u64().unwrap_or(0) > 0 {
            println!("  forgotten by retention during the run: {} tasks", report["forgotten"]);
        }
        println!("  RSS MB per replica (t = seconds since start):");
        for (t, mb) in &samples {
            println!("    t={t:>5} {}", mb.iter().map(|m| format!("{m:>7.1}")).collect::<Vec<_>>().join(" "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Samples the resident memory of processes at a fixed period, on its own task.
struct RssSampler {
    stop: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<Vec<(u64, Vec<f64>)>>,
}

impl RssSampler {
    fn start(pids: Vec<u32>, every: Duration) -> Self {
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let mb = pids.iter().map(|&p| vm_rss_kib(p).map_or(0.0, |k| k as f64 / 1024.0)).collect();
                samples.push((started.elapsed().as_secs(), mb));
            }
            samples
        });
        RssSampler { stop, handle }
    }

    async fn stop(self) -> Vec<(u64, Vec<f64>)> {
        self.stop.cancel();
        self.handle.await.unwrap_or_default()
    }
}

/// Tasks that entered `failed`, from the first replica's `/metrics` that answers
/// (`taskraft_task_transitions_total{to="failed"}`; the bench cluster runs without auth).
async fn failed_from_metrics(addrs: &[String]) -> anyhow::Result<u64> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    for addr in addrs {
        let Ok(resp) = http.get(format!("http://{addr}/metrics")).send().await else { continue };
        let Ok(text) = resp.text().await else { continue };
        let line = text.lines().find(|l| l.starts_with("taskraft_task_transitions_total{to=\"failed\"}"));
        if let Some(n) = line.and_then(|l| l.split_whitespace().last()).and_then(|n| n.parse().ok()) {
            return Ok(n);
        }
    }
    anyhow::bail!("no replica answered /metrics with the failed-task counter")
}

/// `VmRSS` of process `pid` in KiB, from `/proc/PID/status`.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct SchedulesArgs {
    schedules: usize,
    every_ms: u64,
    duration: u64,
    workers: usize,
    kill_leader: bool,
    port_base: u16,
}

async fn bench_schedules(args: SchedulesArgs, output: Output) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.schedules >= 1, "--schedules must be at least 1");
    let dir = tempfile::Builder::new().prefix("taskraft-schedules-").tempdir()?;
    let mut cluster = super::local::LocalCluster::spawn(
        dir.path(),
        3,
        args.port_base,
        args.port_base + 100,
        &["--cluster-secret".into(), "bench".into(), "--auth=false".into()],
    )?;
    let client = Arc::new(Client::new(cluster.addrs())?.with_timeout(Duration::from_secs(30)));
    let stop = tokio_util::sync::CancellationToken::new();
    super::server::spawn_signal_handler(stop.clone());
    let result = async {
        cluster.wait_formed(&client, 3, Duration::from_secs(60), &stop).await?;
        for _ in 0..args.workers {
            cluster.spawn_worker(256, &[])?;
        }
        client.prefer_leader().await?;
        // Create the schedules, 32 at a time; their phases follow their creation times.
        let mut ids = Vec::with_capacity(args.schedules);
        let mut pending = Vec::new();
        for i in 0..args.schedules {
            let c = client.clone();
            let body = json!({"name": format!("bench-{i}"), "every_ms": args.every_ms, "overlap": "allow", "catch_up": "all",
                              "idempotency_key": format!("bench-{i}"), "task": {"executor": "noop"}});
            pending.push(tokio::spawn(async move { c.create_schedule(body).await }));
            if pending.len() >= 32 {
                ids.push(pending.remove(0).await??.0.id);
            }
        }
        for h in pending {
            ids.push(h.await??.0.id);
        }
        let measure_from = crate::util::now_ms() + args.every_ms.min(2000);
        let run_for = Duration::from_secs(args.duration);
        let mut kill = None;
        if args.kill_leader {
            tokio::time::sleep(run_for / 2).await;
            let leader = client.cluster_status().await?.leader_id.context("no leader")?;
            let killed_ms = crate::util::now_ms();
            cluster.kill9(leader).await?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let elected_ms = loop {
                if let Ok(s) = client.cluster_status().await
                    && s.leader_id.is_some_and(|l| l != leader)
                {
                    break crate::util::now_ms();
                }
                anyhow::ensure!(Instant::now() < deadline, "no new leader within 30 s");
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            kill = Some((leader, killed_ms, elected_ms));
            tokio::time::sleep(run_for / 2).await;
            cluster.start(leader)?;
        } else {
            tokio::time::sleep(run_for).await;
        }
        let measure_to = crate::util::now_ms().saturating_sub(args.every_ms.min(2000));
        // The leader's own measure of commit lateness (since it took office).
        let calendar = client
            .cluster_status_all(Duration::from_secs(2))
            .await
            .into_iter()
            .find_map(|(_, s)| s.ok().and_then(|s| s.calendar));
        // Read every run back (each schedule's runs in nominal order).
        let (mut proposed, mut started, mut fires) = (Vec::new(), Vec::new(), 0u64);
        let mut created_after_kill: Vec<(u64, u64)> = Vec::new();
        let mut doubled = 0u64;
        for chunk in ids.chunks(16) {
            let mut reads = Vec::new();
            for &id in chunk {
                let c = client.clone();
                reads.push(tokio::spawn(async move { c.all_schedule_runs(id).await }));
            }
            for r in reads {
                let runs = r.await??;
                let mut seen = std::collections::BTreeSet::new();
                for t in runs {
                    let Some((_, nominal)) = t.spec.origin.schedule_run() else { continue };
                    if !seen.insert(nominal) {
                        doubled += 1;
                    }
                    if kill.is_some() {
                        created_after_kill.push((t.created_ms, nominal));
                    }
                    if nominal < measure_from || nominal > measure_to {
                        continue;
                    }
                    fires += 1;
                    proposed.push(t.created_ms.saturating_sub(nominal));
                    if let Some(s) = t.attempts.first().and_then(|a| a.started_ms) {
                        started.push(s.saturating_sub(nominal));
                    }
                }
            }
        }
        let span_s = (measure_to.saturating_sub(measure_from)).max(1) as f64 / 1000.0;
        let mut report = json!({
            "schedules": args.schedules, "every_ms": args.every_ms, "measured_seconds": span_s,
            "fires": fires, "fires_per_sec": (fires as f64 / span_s).round(),
            "expected_fires_per_sec": (args.schedules as f64 * 1000.0 / args.every_ms as f64).round(),
            "doubled": doubled,
            "lateness_proposed_ms": percentiles(proposed),
            "lateness_committed_ms": calendar.as_ref().map(|c| json!({
                "p50": c.commit_lateness_ms.p50, "p99": c.commit_lateness_ms.p99, "max": c.commit_lateness_ms.max,
                "fires": c.fires_committed, "sampled": c.commit_lateness_ms.count,
            })),
            "lateness_started_ms": percentiles(started),
        });
        if let Some((leader, killed_ms, elected_ms)) = kill {
            // The first fire proposed by the new leader, and how late the fires were that were
            // due while there was no leader.
            let first_after = created_after_kill.iter().map(|&(c, _)| c).filter(|&c| c >= killed_ms).min();
            let due_during: Vec<u64> = created_after_kill
                .iter()
                .filter(|&&(_, n)| n >= killed_ms && n <= elected_ms)
                .map(|&(c, n)| c.saturating_sub(n))
                .collect();
            report["kill"] = json!({
                "leader": leader,
                "election_ms": elected_ms - killed_ms,
                "first_fire_after_election_ms": first_after.map(|f| f as i64 - elected_ms as i64),
                "fires_due_without_leader": due_during.len(),
                "their_lateness_ms": percentiles(due_during),
            });
        }
        Ok(report)
    }
    .await;
    cluster.shutdown().await;
    let report = result?;
    if output == Output::Json {
        print_json(&report);
    } else {
        let l =
            |k: &str| format!("p50 {} ms p99 {} ms max {} ms", report[k]["p50"], report[k]["p99"], report[k]["max"]);
        println!(
            "{} schedules every {} ms: {} fires in {} s ({}/s, expected {}/s), doubled {}",
            report["schedules"],
            report["every_ms"],
            report["fires"],
            report["measured_seconds"],
            report["fires_per_sec"],
            report["expected_fires_per_sec"],
            report["doubled"]
        );
        println!("  fire proposed - nominal: {}", l("lateness_proposed_ms"));
        if report["lateness_committed_ms"].is_object() {
            println!(
                "  fire committed - nominal: {} (the leader's own measure, {} fires since it took office)",
                l("lateness_committed_ms"),
                report["lateness_committed_ms"]["fires"]
            );
        }
        println!("  run started   - nominal: {}", l("lateness_started_ms"));
        if let Some(k) = report.get("kill") {
            println!(
                "  leader {} killed: new leader after {} ms; first fire {} ms after the election; {} fires due meanwhile, late {}",
                k["leader"],
                k["election_ms"],
                k["first_fire_after_election_ms"],
                k["fires_due_without_leader"],
                format_args!("p50 {} ms max {} ms", k["their_lateness_ms"]["p50"], k["their_lateness_ms"]["max"])
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
