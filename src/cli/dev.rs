//! `taskraft dev`: a local 3-replica cluster in one command, no config.
//!
//! Each replica is a real `taskraft server` child process (own process group, logs in the
//! data dir), so killing one with `kill -9` behaves exactly like a crashed server. Ctrl-C
//! stops them all: SIGTERM, a grace period, then SIGKILL.

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Child;
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Client;

/// How long to wait for the cluster to elect a leader and admit every replica.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Grace period between SIGTERM and SIGKILL at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(10);
const REPLICAS: u64 = 3;

/// Run a local 3-replica cluster (API ports 7101–7103, Raft ports 7201–7203).
#[derive(Debug, clap::Args)]
pub struct DevCmd {
    /// Keep data here (reused on the next run) instead of a fresh temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Storage engine of the replicas: sled (durable) or memory.
    #[arg(long, default_value = "sled")]
    storage: String,
}

struct Replica {
    id: u64,
    child: Child,
    args: Vec<String>,
    log: PathBuf,
}

fn api_addr(id: u64) -> String {
    format!("127.0.0.1:{}", 7100 + id)
}

fn replica_args(id: u64, dir: &Path, storage: &str) -> Vec<String> {
    let mut args = vec![
        "server".into(),
        "--node-id".into(),
        id.to_string(),
        "--api-addr".into(),
        api_addr(id),
        "--raft-addr".into(),
        format!("127.0.0.1:{}", 7200 + id),
        "--data-dir".into(),
        dir.join(format!("node-{id}")).display().to_string(),
        "--cluster-secret".into(),
        "taskraft-dev".into(),
        "--storage".into(),
        storage.into(),
    ];
    if id == 1 {
        args.push("--bootstrap".into());
    } else {
        args.push("--join".into());
        args.push((1..=REPLICAS).map(api_addr).collect::<Vec<_>>().join(","));
    }
    args
}

fn spawn(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        // Own process group: Ctrl-C reaches only `dev`, which then stops replicas in order.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok(child)
}

impl DevCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let (dir, _temp) = match &self.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("taskraft-dev-").tempdir().context("creating a temp dir")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let exe = std::env::current_exe().context("locating the taskraft binary")?;
        let mut replicas = Vec::new();
        for id in 1..=REPLICAS {
            let args = replica_args(id, &dir, &self.storage);
            let log = dir.join(format!("node-{id}.log"));
            let child = spawn(&exe, &args, &log)?;
            replicas.push(Replica { id, child, args, log });
        }
        let addrs: Vec<String> = (1..=REPLICAS).map(api_addr).collect();
        let client = Client::new(addrs.clone())?.with_timeout(Duration::from_secs(2));
        let stop = CancellationToken::new();
        super::server::spawn_signal_handler(stop.clone());
        if let Err(e) = wait_for_cluster(&client, &stop).await {
            eprintln!("error: {e:#}; replica logs are in {}", dir.display());
            shutdown(&mut replicas).await;
            return Ok(ExitCode::FAILURE);
        }
        print_banner(&replicas, &dir, self.data_dir.is_none());
        supervise(&mut replicas, &stop).await;
        println!("\nstopping replicas…");
        shutdown(&mut replicas).await;
        println!("stopped.");
        Ok(ExitCode::SUCCESS)
    }
}

/// Polls until a leader is known and every replica is a voter.
async fn wait_for_cluster(client: &Client, stop: &CancellationToken) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(status) = client.cluster_status().await {
            let voters = status["members"].as_array().map_or(0, |m| m.iter().filter(|m| m["voter"] == true).count());
            if status["leader_id"].is_u64() && voters as u64 == REPLICAS {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            anyhow::bail!("the cluster did not form within {STARTUP_TIMEOUT:?}");
        }
        tokio::select! {
            _ = stop.cancelled() => anyhow::bail!("interrupted"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn print_banner(replicas: &[Replica], dir: &Path, temporary: bool) {
    println!("taskraft dev cluster is up ({} replicas)\n", replicas.len());
    println!("  {:<4} {:<8} {:<17} {:<17} LOG", "ID", "PID", "API", "RAFT");
    for r in replicas {
        println!(
            "  {:<4} {:<8} {:<17} {:<17} {}",
            r.id,
            r.child.id().map_or("-".into(), |p| p.to_string()),
            api_addr(r.id),
            format!("127.0.0.1:{}", 7200 + r.id),
            r.log.display()
        );
    }
    println!("\ndata: {}{}", dir.display(), if temporary { " (deleted on exit)" } else { "" });
    println!("\ntry:");
    println!("  taskraft task submit --name hello -- echo hello");
    println!("  taskraft task list");
    println!("  curl -s -XPOST localhost:7102/v1/tasks -d '{{\"command\":[\"sleep\",\"1\"]}}'");
    println!("  taskraft cluster status          # who leads; `kill -9 <its pid>` and keep submitting");
    println!("\nCtrl-C stops the cluster.");
}

/// Waits for Ctrl-C, reporting replicas that exit on their own (e.g. killed by the user).
async fn supervise(replicas: &mut [Replica], stop: &CancellationToken) {
    let mut reported = vec![false; replicas.len()];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        for (i, r) in replicas.iter_mut().enumerate() {
            if reported[i] {
                continue;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                reported[i] = true;
                let exe =
                    std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "taskraft".into());
                println!(
                    "replica {} exited ({status}). The others carry on. Restart it with:\n  {exe} {}",
                    r.id,
                    r.args.iter().filter(|a| *a != "--bootstrap").cloned().collect::<Vec<_>>().join(" ")
                );
            }
        }
    }
}

/// SIGTERM every running replica, wait for them, SIGKILL stragglers.
async fn shutdown(replicas: &mut [Replica]) {
    for r in replicas.iter() {
        if let Some(pid) = r.child.id() {
            // SAFETY: plain kill(2) on a child we spawned and have not reaped yet.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
    for r in replicas.iter_mut() {
        if tokio::time::timeout(STOP_GRACE, r.child.wait()).await.is_err() {
            eprintln!("replica {} did not stop within {STOP_GRACE:?}; killing it", r.id);
            let _ = r.child.kill().await;
        }
    }
}
