//! `taskraft worker`: run a worker agent, or list/drain/remove workers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ClientArgs;
use super::Output;
use super::output::print_json;
use super::output::print_table;
use crate::proto::workers::WorkerEntry;
use crate::proto::workers::WorkerList;
use crate::worker::WorkerConfig;
use crate::worker::executor::ExecLimits;

/// Run a worker (`taskraft worker --cluster … --id …`) or manage workers (`list`, `drain`, `remove`).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerCmd {
    #[command(subcommand)]
    admin: Option<WorkerAdmin>,
    #[command(flatten)]
    run: WorkerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum WorkerAdmin {
    /// List workers with their state and running attempts.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop sending new tasks to a worker; it finishes what it runs.
    Drain {
        /// Worker id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a worker; its running attempts end lost and resume elsewhere.
    Remove {
        /// Worker id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Settings of a worker agent: flags, `TASKRAFT_WORKER_*`/`TASKRAFT_*` environment, TOML file.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerArgs {
    /// TOML config file with the keys below (`cluster = [...]`, `id = "w1"`, …).
    #[arg(long, env = "TASKRAFT_WORKER_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// API addresses of cluster replicas (comma-separated).
    #[arg(long, env = "TASKRAFT_CLUSTER", value_delimiter = ',')]
    cluster: Option<Vec<String>>,
    /// Stable worker id (default: the host name).
    #[arg(long, env = "TASKRAFT_WORKER_ID")]
    id: Option<String>,
    /// Concurrent attempts.
    #[arg(long, env = "TASKRAFT_WORKER_SLOTS")]
    slots: Option<u32>,
    /// CPU offered, in millicores (default: 1000 per core).
    #[arg(long, env = "TASKRAFT_WORKER_CPU")]
    cpu: Option<u32>,
    /// Memory offered, in MiB.
    #[arg(long, env = "TASKRAFT_WORKER_MEMORY")]
    memory: Option<u32>,
    /// Label `key=value` matched against task constraints and preferences (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    #[serde(rename = "labels")]
    label: Option<Vec<(String, String)>>,
    /// Directory for per-attempt working directories.
    #[arg(long, env = "TASKRAFT_WORKER_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Source IP of outgoing connections.
    #[arg(long, env = "TASKRAFT_WORKER_LOCAL_IP")]
    local_ip: Option<std::net::IpAddr>,
    /// PEM CA certificate of a TLS cluster: replicas are verified against it, and addresses
    /// without a scheme mean `https://`.
    #[arg(long, env = "TASKRAFT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Largest checkpoint shipped, in bytes (default and maximum 262144); a bigger one is
    /// refused with an error in the attempt.
    #[arg(long, env = "TASKRAFT_WORKER_CHECKPOINT_MAX_BYTES")]
    checkpoint_max_bytes: Option<usize>,
    /// Milliseconds between the TERM and the KILL that stop a task's process group (cancel,
    /// timeout, preemption: a preempted task saves its last checkpoint in this grace; default
    /// 5000, at most 600000).
    #[arg(long, env = "TASKRAFT_WORKER_KILL_GRACE_MS")]
    kill_grace_ms: Option<u64>,
    /// Testing and operations override of the load this worker reports in its heartbeats: read
    /// "CPU MEM" (two fractions, 0 to 1, e.g. `0.97 0.30`) from this file at every heartbeat
    /// instead of sampling /proc (while the file is missing or malformed, /proc). Lets a test
    /// (or an operator draining a machine by hand) make the leader see this worker overloaded
    /// or idle; see README "Migration off overloaded workers".
    #[arg(long, env = "TASKRAFT_WORKER_LOAD_FILE")]
    load_file: Option<PathBuf>,
    /// The worker's API token (role `worker`, bound to this worker's id). Prefer
    /// TASKRAFT_TOKEN or `token_file`: a flag shows in `ps`.
    #[arg(long, env = "TASKRAFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the worker's API token.
    #[arg(long, env = "TASKRAFT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

const WORKER_HEADER: [&str; 8] = ["ID", "STATE", "HOST", "PID", "RUNNING", "CPU", "MEMORY", "LABELS"];

/// The `worker list` rows ([`WORKER_HEADER`]) of a `GET /v1/workers` answer,
/// `{"workers": [{"worker": WorkerInfo, "running": n}]}`; `-` for what a worker did not say.
fn worker_rows(list: &WorkerList) -> Vec<Vec<String>> {
    let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    list.workers
        .iter()
        .map(|WorkerEntry { worker: w, running }| {
            let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                or_dash(w.id.clone()),
                w.state.as_str().to_string(),
                or_dash(w.host.clone()),
                w.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
                format!("{running}/{}", w.slots),
                w.cpu_millis.to_string(),
                w.memory_mib.to_string(),
                or_dash(labels.join(",")),
            ]
        })
        .collect()
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

impl WorkerArgs {
    fn resolve(self) -> anyhow::Result<WorkerConfig> {
        let file: WorkerArgs = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("invalid worker config {}", path.display()))?
            }
            None => WorkerArgs::default(),
        };
        let cluster = self
            .cluster
            .or(file.cluster)
            .unwrap_or_else(|| super::DEFAULT_ADDRS.split(',').map(String::from).collect());
        let id = match self.id.or(file.id) {
            Some(id) => id,
            None => std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default(),
        };
        anyhow::ensure!(!id.is_empty(), "give the worker an id with --id");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let slots = self.slots.or(file.slots).unwrap_or(4);
        anyhow::ensure!(slots >= 1, "--slots must be at least 1");
        let kill_grace_ms = self
            .kill_grace_ms
            .or(file.kill_grace_ms)
            .unwrap_or(crate::worker::executor::DEFAULT_KILL_GRACE.as_millis() as u64);
        anyhow::ensure!(kill_grace_ms <= 600_000, "--kill-grace-ms must be at most 600000 (ten minutes)");
        let kill_grace = std::time::Duration::from_millis(kill_grace_ms);
        let checkpoint_max =
            self.checkpoint_max_bytes.or(file.checkpoint_max_bytes).unwrap_or(crate::scheduler::MAX_CHECKPOINT_BYTES);
        anyhow::ensure!(
            (1..=crate::scheduler::MAX_CHECKPOINT_BYTES).contains(&checkpoint_max),
            "--checkpoint-max-bytes must be 1..={} (the cluster refuses bigger checkpoints)",
            crate::scheduler::MAX_CHECKPOINT_BYTES
        );
        let token = match (self.token.or(file.token), self.token_file.or(file.token_file)) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading token file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        Ok(WorkerConfig {
            cluster,
            token,
            work_dir: self
                .work_dir
                .or(file.work_dir)
                .unwrap_or_else(|| std::env::temp_dir().join(format!("taskraft-worker-{id}"))),
            id,
            slots,
            cpu_millis: self.cpu.or(file.cpu).unwrap_or(cores * 1000),
            memory_mib: self.memory.or(file.memory).unwrap_or(4096),
            labels: self.label.or(file.label).unwrap_or_default().into_iter().collect::<BTreeMap<_, _>>(),
            local_ip: self.local_ip.or(file.local_ip),
            ca_file: self.ca_file.or(file.ca_file),
            limits: ExecLimits { checkpoint_max_bytes: checkpoint_max, kill_grace, ..ExecLimits::default() },
            load_file: self.load_file.or(file.load_file),
        })
    }
}

impl WorkerCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.admin {
            None => {
                super::init_logging();
                let config = self.run.resolve()?;
                let span = tracing::info_span!("worker", id = %config.id);
                let shutdown = CancellationToken::new();
                super::server::spawn_signal_handler(shutdown.clone());
                async move {
                    tracing::info!(cluster = ?config.cluster, slots = config.slots, work_dir = %config.work_dir.display(), "worker starting");
                    crate::worker::agent::run(config, shutdown).await
                }
                .instrument(span)
                .await?;
            }
            Some(WorkerAdmin::List { client }) => {
                let c = client.connect()?;
                let list = c.list_workers().await?;
                if client.output == Output::Json {
                    print_json(&list);
                } else {
                    print_table(&WORKER_HEADER, &worker_rows(&list));
                }
            }
            Some(WorkerAdmin::Drain { id, client }) => {
                let c = client.connect()?;
                let worker = c.drain_worker(&id).await?;
                if client.output == Output::Json {
                    print_json(&worker)
                } else {
                    println!("worker {id} is draining: it gets no new tasks and finishes what it runs")
                }
            }
            Some(WorkerAdmin::Remove { id, client }) => {
                let c = client.connect()?;
                let removed = c.remove_worker(&id).await?;
                if client.output == Output::Json {
                    print_json(&removed)
                } else {
                    println!("worker {id} removed; {} running attempt(s) will resume elsewhere", removed.affected.len())
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::output::format_table;
    use crate::scheduler::WorkerInfo;

    fn info(id: &str, host: &str, pid: Option<u32>, labels: &[(&str, &str)]) -> WorkerInfo {
        WorkerInfo {
            id: id.to_string(),
            host: host.to_string(),
            pid,
            api_addr: None,
            slots: 4,
            cpu_millis: 2000,
            memory_mib: 4096,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            state: crate::scheduler::WorkerState::Active,
            registered_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn worker_list_shows_host_and_pid_or_a_dash() {
        // The answer as the API serializes it, read back as the CLI reads it.
        let answer = json!({"workers": [
            {"worker": info("w1", "node-a", Some(4242), &[("disk", "ssd"), ("zone", "eu")]), "running": 2},
            {"worker": info("w2", "", None, &[]), "running": 0},
        ]});
        let rows = worker_rows(&serde_json::from_value(answer).unwrap());
        assert_eq!(rows[0], ["w1", "active", "node-a", "4242", "2/4", "2000", "4096", "disk=ssd,zone=eu"]);
        assert_eq!(rows[1], ["w2", "active", "-", "-", "0/4", "2000", "4096", "-"]);
        let table = format_table(&WORKER_HEADER, &rows);
        assert_eq!(table.lines().next(), Some("ID  STATE   HOST    PID   RUNNING  CPU   MEMORY  LABELS"), "{table}");
        assert!(worker_rows(&WorkerList::default()).is_empty());
    }
}
