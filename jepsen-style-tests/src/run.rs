//! One test run, start to verdict.
//!
//! 1. Form the cluster (`--nodes` replicas, the first bootstraps) and start `--workers` workers,
//!    each on its own loopback address; wait until all are in.
//! 2. Create the workload's schedules ([`schedules`]) and set its concurrency limit
//!    ([`workflows::set_limit`]), then start the sink, the clients (`--rate` operations/s in
//!    all), the leader poller, the schedule poller, the workflow driver (waves of
//!    workflows, [`workflows::drive`]) and the nemesis with its seeded schedule.
//! 3. At `--time-limit`, stop the clients, the workflow driver and the nemesis, heal
//!    everything, wait until the cluster has converged, pause the schedules, wait until no task
//!    is in flight (bounded: liveness failures are reported, not waited out), and read every
//!    task, then every schedule and its runs, then every workflow.
//! 4. Write the history, sink events, leader observations, final state, schedule and workflow
//!    records; run the checkers; write `results.json`, the plot and the summary. The verdict is
//!    the exit code.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::checkers::Validity;
use crate::cluster::Cluster;
use crate::cluster::Layout;
use crate::cluster::api_url;
use crate::history::Body;
use crate::history::FinalState;
use crate::history::Op;
use crate::history::ReplicaViews;
use crate::history::ScheduleRecord;
use crate::history::SinkEvent;
use crate::history::WorkflowRecord;
use crate::judge;
use crate::nemesis;
use crate::nemesis::Family;
use crate::report;
use crate::schedules;
use crate::sink::Sink;
use crate::workflows;
use crate::workload;
use crate::workload::Shared;

/// Everything a run needs to know (the `run` command's options).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Replicas at the start (3 or 5).
    pub nodes: usize,
    /// Workers (2–4).
    pub workers: u32,
    /// How long the workload and the faults run.
    pub time_limit: Duration,
    /// Client operations per second, all clients together.
    pub rate: f64,
    /// Concurrent clients.
    pub clients: u32,
    /// Fault families.
    pub nemesis: Vec<Family>,
    /// One fault starts every `interval`.
    pub interval: Duration,
    /// Seed of the fault schedule and the clients' choices.
    pub seed: u64,
    /// Where runs are stored (`DIR/<name>/`).
    pub store: PathBuf,
    /// The `taskraft` binary.
    pub bin: PathBuf,
    /// Steps of each counter task.
    pub steps: u64,
    /// Milliseconds per step.
    pub step_ms: u64,
    /// Longest wait for the cluster to finish its tasks after the heal.
    pub quiet_limit: Duration,
    /// Run the cluster with TLS (certificates from `taskraft tls init` in the run's directory).
    pub tls: bool,
    /// Run the cluster with auth on (an admin token for the run; see [`crate::tls`]).
    pub auth: bool,
    /// The replicas' retention horizon ([`default_retention`] unless given).
    pub retention: Duration,
}

/// Shortest horizon the suite uses (the product's minimum is 1 s).
pub const MIN_RETENTION: Duration = Duration::from_secs(5);

/// The suite's retention horizon for a run of `time_limit`: 75 % of it, at least
/// [`MIN_RETENTION`]. Retention must fire inside the run: the first counter tasks finish a few
/// seconds in, so they are forgotten during the last quarter of the load and client reads meet
/// `forgotten`. Yet the final reads, made after the heal and the quiet wait, must still find
/// most records whole (the checkers judge a present record by far more than a forgotten one):
/// what finished in roughly the first third of the load is forgotten by then, the rest is read
/// whole. (A 20 s smoke run gets 15 s, a 60 s run 45 s.)
pub fn default_retention(time_limit: Duration) -> Duration {
    time_limit.mul_f64(0.75).max(MIN_RETENTION)
}

/// A client retries a key only within this window of its first submit: a third of the horizon.
/// A retried submit could make a second task only once the first one was forgotten, that is at
/// least one task run plus the horizon after the first submit; a retry sent within a third of it
/// would have to wait two thirds of the horizon inside the cluster before being applied.
pub fn retry_window(retention: Duration) -> Duration {
    retention / 3
}

/// How long one worker reports itself overloaded before the next one does.
const HOT_TURN: Duration = Duration::from_secs(6);

/// Migration load: one worker at a time reports itself overloaded (its load file) for
/// [`HOT_TURN`], the others idle, so the leader migrates counters off it through every fault;
/// all idle once `stop` fires (no migration while the cluster heals).
async fn rotate_loads(cluster: Arc<Mutex<Cluster>>, workers: u32, stop: CancellationToken) -> anyhow::Result<()> {
    use crate::cluster::{LOAD_COLD, LOAD_HOT};
    let mut turn = 0u32;
    loop {
        {
            let c = cluster.lock().await;
            let hot = turn % workers.max(1) + 1;
            for j in 1..=workers {
                c.set_worker_load(j, if j == hot && workers > 1 { LOAD_HOT } else { LOAD_COLD })?;
            }
        }
        turn += 1;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(HOT_TURN) => {}
        }
    }
    let c = cluster.lock().await;
    for j in 1..=workers {
        c.set_worker_load(j, LOAD_COLD)?;
    }
    Ok(())
}

/// What a run ended with.
pub struct RunOutcome {
    /// The overall verdict.
    pub valid: Validity,
    /// The run's directory.
    pub dir: PathBuf,
}

/// Runs one test and writes its report. Errors mean the harness itself failed (verdict unknown).
pub async fn run(opts: &RunOptions) -> anyhow::Result<RunOutcome> {
    let names: Vec<&str> = opts.nemesis.iter().map(|f| f.name()).collect();
    let label = if names.is_empty() { "none".to_string() } else { names.join("+") };
    let dir = opts.store.join(format!("{}-{label}-seed{}", unix_time(), opts.seed));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("run: {} (seed {}, nemesis {label})", dir.display(), opts.seed);
    let epoch = Instant::now();
    let tls = if opts.tls { Some(crate::tls::generate(&opts.bin, &dir)?) } else { None };
    crate::tls::activate(tls.as_deref())?;
    let admin_token = crate::tls::activate_auth(opts.auth.then_some(dir.as_path()))?;
    let clock = opts.nemesis.contains(&Family::Clock);
    let retention_ms = opts.retention.as_millis() as u64;
    println!("retention: {retention_ms} ms (keys retried within {} ms)", retry_window(opts.retention).as_millis());
    let layout = Layout { dir: dir.clone(), bin: opts.bin.clone(), clock, tls, admin_token, retention_ms };
    let mut cluster = Cluster::new(layout)?;
    cluster.form(opts.nodes).await.context("forming the cluster")?;
    for j in 1..=opts.workers {
        cluster.set_worker_load(j, crate::cluster::LOAD_COLD)?;
        cluster.start_worker(j)?;
    }
    wait_workers(&cluster.members(), u64::from(opts.workers), Duration::from_secs(30)).await?;
    println!("cluster up: {} replicas, {} workers ({:.1}s)", opts.nodes, opts.workers, epoch.elapsed().as_secs_f64());

    // The schedule workload starts first: its schedules fire from creation on, through every fault.
    let schedule_record =
        schedules::create_all(&cluster.members(), names.iter().map(|s| s.to_string()).collect()).await;
    let created: Vec<String> = schedule_record
        .schedules
        .iter()
        .map(|s| format!("{} = {}", s.name, s.id.map_or("?".into(), |i| i.to_string())))
        .collect();
    println!("schedules: {}", created.join(", "));
    let schedule_record = Arc::new(std::sync::Mutex::new(schedule_record));
    let limit = workflows::set_limit(&cluster.members()).await;
    println!(
        "limit: {} = {} ({:?}{})",
        limit.key,
        limit.max_running,
        limit.status,
        limit.last_error.as_ref().map_or(String::new(), |e| format!(": {e}"))
    );

    let sink = Sink::start(epoch).await?;
    let exe = std::env::current_exe()?.display().to_string();
    let program = workflows::Program { exe: exe.clone(), sink: sink.addr.clone() };
    let workflow_record = Arc::new(std::sync::Mutex::new(WorkflowRecord {
        workflows: workflows::plan(&program, &limit, workflows::wave_count(opts.time_limit)),
        limit,
        ..WorkflowRecord::default()
    }));
    let task_command = vec![
        exe,
        "counter".into(),
        "--steps".into(),
        opts.steps.to_string(),
        "--step-ms".into(),
        opts.step_ms.to_string(),
        "--sink".into(),
        sink.addr.clone(),
    ];
    let members = cluster.members();
    let shared = Arc::new(Shared::new(epoch, members, task_command, retry_window(opts.retention)));
    let cluster = Arc::new(Mutex::new(cluster));

    let stop_clients = CancellationToken::new();
    let stop_poll = CancellationToken::new();
    let mut clients = Vec::new();
    let per_client = opts.rate / f64::from(opts.clients.max(1));
    for id in 0..opts.clients {
        clients.push(tokio::spawn(workload::client_loop(
            shared.clone(),
            id,
            opts.seed,
            per_client,
            stop_clients.clone(),
        )));
    }
    let poller = tokio::spawn(workload::poll_leaders(shared.clone(), Duration::from_millis(200), stop_poll.clone()));
    let stop_schedule_poll = CancellationToken::new();
    let schedule_poller =
        tokio::spawn(schedules::poll(shared.clone(), schedule_record.clone(), opts.seed, stop_schedule_poll.clone()));
    let load_start = Instant::now();
    let stop_workflows = CancellationToken::new();
    let limit_poller =
        tokio::spawn(workflows::poll_limit(shared.clone(), workflow_record.clone(), opts.seed, stop_workflows.clone()));
    let workflow_driver = tokio::spawn(workflows::drive(
        shared.clone(),
        workflow_record.clone(),
        load_start,
        opts.time_limit,
        stop_workflows.clone(),
    ));
    let steps = nemesis::schedule(opts.seed, &opts.nemesis, opts.time_limit, opts.interval);
    println!("schedule: {} faults", steps.len());
    let nemesis = tokio::spawn(nemesis::run(
        cluster.clone(),
        shared.clone(),
        steps,
        opts.nodes,
        load_start,
        stop_clients.clone(),
    ));

    let loads = tokio::spawn(rotate_loads(cluster.clone(), opts.workers, stop_clients.clone()));

    tokio::time::sleep_until(load_start + opts.time_limit).await;
    stop_clients.cancel();
    loads.await??;
    stop_workflows.cancel();
    for c in clients {
        c.await?;
    }
    workflow_driver.await?;
    limit_poller.await?;
    nemesis.await?;
    println!("load done; healing");
    nemesis::heal_all(&cluster, &shared, opts.nodes).await.context("healing")?;
    let members = shared.members.lock().unwrap().clone();
    let converged = cluster.lock().await.wait_members(&members, Duration::from_secs(60)).await;
    if let Err(e) = &converged {
        println!("after heal: {e:#}");
    }
    // Stop the calendars before waiting for quiet: runs would keep the cluster busy forever, and
    // the final reads should see a mark that no longer moves.
    stop_schedule_poll.cancel();
    schedule_poller.await?;
    let mut schedule_record = std::mem::take(&mut *schedule_record.lock().unwrap());
    if !schedules::pause_all(&members, &mut schedule_record).await {
        println!("schedules: could not pause every schedule");
    }
    let quiet = workload::wait_quiet(&members, opts.quiet_limit).await;
    match quiet {
        Some(d) => println!("quiet after {:.1}s", d.as_secs_f64()),
        None => println!("still busy after {:.0}s", opts.quiet_limit.as_secs_f64()),
    }
    // The sink first: every start it holds then had its assignment committed before the final
    // read began, so the final read must show it (a later start would be judged against a state
    // that could not know it yet).
    let sink_events = sink.events();
    // Every task id the run knows of: a listing lacks the forgotten ones, and these are the ids
    // the final reads ask about one by one.
    let known = known_task_ids(&shared.rec.ops(), &sink_events, &schedule_record);
    let final_state: FinalState = workload::final_state(&members, &known).await;
    // Each member is asked about the same ids and every task the main read found.
    let mut known_all = known.clone();
    known_all.extend(final_state.tasks.iter().map(|t| t.task_id));
    let mut replicas = ReplicaViews { quiet: quiet.is_some(), views: Vec::new() };
    for &m in &members {
        replicas.views.push((m, workload::final_state(&[m], &known_all).await));
    }
    println!(
        "final read: {} tasks, {} forgotten (of {} the run knew of)",
        final_state.tasks.len(),
        final_state.forgotten.len(),
        known.len()
    );
    schedules::final_read(&members, &mut schedule_record).await;
    let mut workflow_record = std::mem::take(&mut *workflow_record.lock().unwrap());
    workflows::final_read(&shared, &members, &mut workflow_record).await;
    stop_poll.cancel();
    poller.await?;
    cluster.lock().await.shutdown();

    let history = shared.rec.ops();
    let leaders = shared.rec.leaders();
    judge::write_jsonl(&dir.join("history.jsonl"), &history)?;
    judge::write_jsonl(&dir.join("sink.jsonl"), &sink_events)?;
    judge::write_jsonl(&dir.join("leaders.jsonl"), &leaders)?;
    std::fs::write(dir.join("final.json"), serde_json::to_vec_pretty(&final_state)?)?;
    std::fs::write(dir.join("replicas.json"), serde_json::to_vec(&replicas)?)?;
    std::fs::write(dir.join(schedules::FILE), serde_json::to_vec_pretty(&schedule_record)?)?;
    std::fs::write(dir.join(workflows::FILE), serde_json::to_vec_pretty(&workflow_record)?)?;

    let valid = judge::judge(&judge::RunRecord {
        dir: &dir,
        seed: opts.seed,
        nemesis: names.iter().map(|s| s.to_string()).collect(),
        nodes: opts.nodes,
        workers: opts.workers,
        time_limit_s: opts.time_limit.as_secs_f64(),
        history: &history,
        sink: &sink_events,
        leaders: &leaders,
        final_state: &final_state,
        replicas: &replicas,
        schedules: Some(&schedule_record),
        workflows: Some(&workflow_record),
        retention_ms: Some(retention_ms),
    })?;
    Ok(RunOutcome { valid, dir })
}

/// Re-checks a stored run (its jsonl files and final state) and rewrites its report.
pub fn recheck(dir: &std::path::Path) -> anyhow::Result<Validity> {
    let history = report::read_jsonl(&dir.join("history.jsonl"))?;
    let sink_events = report::read_jsonl(&dir.join("sink.jsonl"))?;
    let leaders = report::read_jsonl(&dir.join("leaders.jsonl"))?;
    let final_state: FinalState = serde_json::from_slice(&std::fs::read(dir.join("final.json"))?)?;
    // Runs recorded before replicas.json existed: an empty, not-quiet view (the checker says unknown).
    let replicas: ReplicaViews = match std::fs::read(dir.join("replicas.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes)?,
        Err(_) => ReplicaViews::default(),
    };
    // Runs recorded before the schedule workload have no schedules.json (the checker says unknown).
    let schedule_record: Option<ScheduleRecord> = match std::fs::read(dir.join(schedules::FILE)) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes)?),
        Err(_) => None,
    };
    // Runs recorded before the workflow workload have no workflows.json (the checker says unknown).
    let workflow_record: Option<WorkflowRecord> = match std::fs::read(dir.join(workflows::FILE)) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes)?),
        Err(_) => None,
    };
    let old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap_or_default()).unwrap_or_default();
    judge::judge(&judge::RunRecord {
        dir,
        seed: old["seed"].as_u64().unwrap_or(0),
        nemesis: old["nemesis"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
        nodes: old["nodes"].as_u64().unwrap_or(0) as usize,
        workers: old["workers"].as_u64().unwrap_or(0) as u32,
        time_limit_s: old["time_limit_s"].as_f64().unwrap_or(0.0),
        history: &history,
        sink: &sink_events,
        leaders: &leaders,
        final_state: &final_state,
        replicas: &replicas,
        schedules: schedule_record.as_ref(),
        workflows: workflow_record.as_ref(),
        retention_ms: old["retention"]["horizon_ms"].as_u64(),
    })
}

async fn wait_workers(members: &[u64], want: u64, limit: Duration) -> anyhow::Result<()> {
    let http = workload::http_client();
    let deadline = Instant::now() + limit;
    let mut seen = 0;
    while Instant::now() < deadline {
        for &id in members {
            let url = api_url(id, "/v1/stats");
            let answer = match http.get(url).send().await {
                Ok(resp) => resp.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            };
            if let Some(v) = answer {
                seen = v["active_workers"].as_u64().unwrap_or(0);
                if seen >= want {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("only {seen} of {want} workers registered within {limit:?} (see logs/w*.log)")
}

/// Task ids named anywhere in the run's records: acknowledged submits, reads and cancels, sink
/// lines (counter and workflow tasks) and the runs the schedule polls saw.
pub fn known_task_ids(history: &[Op], sink: &[SinkEvent], schedules: &ScheduleRecord) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    for op in history {
        match &op.body {
            Body::Submit(v) => ids.extend(v.task_id),
            Body::Read(v) => {
                ids.insert(v.task_id);
            }
            Body::Cancel(v) => {
                ids.insert(v.task_id);
            }
            Body::Nemesis(_) => {}
        }
    }
    ids.extend(sink.iter().map(|e| e.task_id));
    ids.extend(schedules.schedules.iter().flat_map(|s| s.first_seen.iter().map(|r| r.task_id)));
    ids
}

fn unix_time() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
