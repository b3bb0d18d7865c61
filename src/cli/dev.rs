//! `taskraft dev`: a local 3-replica cluster in one command, no config.
//!
//! The replicas are real `taskraft server` child processes (see [`super::local`]). Ctrl-C
//! stops them all: SIGTERM, a grace period, then SIGKILL.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::local::LocalCluster;
use super::local::LocalSecrets;

/// How long to wait for the cluster to elect a leader and admit every replica.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const REPLICAS: u64 = 3;
/// Workers started by `dev`, and the slots of each.
const WORKERS: usize = 2;
const WORKER_SLOTS: u32 = 4;

/// Run a local 3-replica cluster (API ports 7101–7103, Raft ports 7201–7203 by default).
#[derive(Debug, clap::Args)]
pub struct DevCmd {
    /// Keep data here (reused on the next run) instead of a fresh temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Storage engine of the replicas: sled (durable) or memory.
    #[arg(long, default_value = "sled")]
    storage: String,
    /// Require API tokens (on by default, as in production). `--auth=false` runs an open
    /// cluster, e.g. to measure what auth costs.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    auth: bool,
    /// Worker agents to start (4 slots each); 0 for a cluster without workers (benchmarks).
    #[arg(long, default_value_t = WORKERS)]
    workers: usize,
    /// API ports are BASE+1..BASE+3, Raft ports BASE+101..BASE+103.
    #[arg(long, default_value_t = 7100)]
    port_base: u16,
    /// Serve TLS (mutual TLS between replicas) with certificates made by `tls init` in
    /// DATA_DIR/tls (kept if already there); clients need `--ca-file DATA_DIR/tls/ca.pem`.
    #[arg(long)]
    tls: bool,
    /// Forget finished tasks, workflows and schedule runs this long (ms) after they finished
    /// (the servers' `--retention-ms`; default 7 days).
    #[arg(long)]
    retention_ms: Option<u64>,
    /// Preempt running tasks of lower priority for waiting ones (README "Preemption").
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    preemption: bool,
    /// A preemption victim has run at least this long (the servers' default: 10000).
    #[arg(long)]
    preempt_min_runtime_ms: Option<u64>,
    /// Migrate tasks off overloaded workers (README "Migration off overloaded workers"). Each
    /// worker N then reports the load written in DATA_DIR/worker-N.load ("CPU MEM" fractions,
    /// e.g. `0.97 0.2`) when that file exists, its machine's otherwise.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    migration: bool,
    /// A migrated attempt has run at least this long (the servers' default: 10000).
    #[arg(long)]
    migrate_min_runtime_ms: Option<u64>,
    /// After a migration, neither worker takes part in another for this long (the servers'
    /// default: 60000).
    #[arg(long)]
    migration_interval_ms: Option<u64>,
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
        // Auth on, as in production: a random cluster secret and admin token, by file.
        let secrets = LocalSecrets::load_or_create(&dir)?;
        let mut extra = secrets.server_args();
        if !self.auth {
            extra.retain(|a| a != "--auth=true");
            extra.push("--auth=false".into());
        }
        extra.extend(["--storage".to_string(), self.storage.clone()]);
        if let Some(ms) = self.retention_ms {
            extra.extend(["--retention-ms".to_string(), ms.to_string()]);
        }
        extra.push(format!("--preemption={}", self.preemption));
        if let Some(ms) = self.preempt_min_runtime_ms {
            extra.extend(["--preempt-min-runtime-ms".to_string(), ms.to_string()]);
        }
        extra.push(format!("--migration={}", self.migration));
        if let Some(ms) = self.migrate_min_runtime_ms {
            extra.extend(["--migrate-min-runtime-ms".to_string(), ms.to_string()]);
        }
        if let Some(ms) = self.migration_interval_ms {
            extra.extend(["--migration-interval-ms".to_string(), ms.to_string()]);
        }
        let raft_base = self.port_base.checked_add(100).context("--port-base is too high")?;
        let tls_dir = dir.join("tls");
        if self.tls && !tls_dir.join("ca.pem").exists() {
            let options = crate::tls::init::InitOptions { replicas: REPLICAS, ..Default::default() };
            crate::tls::init::write_cluster(&tls_dir, &options).context("writing TLS certificates")?;
        }
        let tls = self.tls.then_some(tls_dir.as_path());
        let mut cluster = LocalCluster::spawn_with_tls(&dir, REPLICAS, self.port_base, raft_base, &extra, tls)?;
        let client = cluster.client()?.with_token(Some(&secrets.admin_token))?.with_timeout(Duration::from_secs(2));
        let stop = CancellationToken::new();
        super::server::spawn_signal_handler(stop.clone());
        // Formed = a leader, every voter, and the admin token committed (status answers 401
        // until then).
        if let Err(e) = cluster.wait_formed(&client, REPLICAS as usize, STARTUP_TIMEOUT, &stop).await {
            eprintln!("error: {e:#}");
            cluster.shutdown().await;
            return Ok(ExitCode::FAILURE);
        }
        let admin = client.with_timeout(Duration::from_secs(10));
        for n in 1..=self.workers {
            let load_file = dir.join(format!("worker-{n}.load"));
            let worker_extra =
                if self.migration { vec!["--load-file".to_string(), load_file.display().to_string()] } else { vec![] };
            let started = if self.auth {
                cluster.spawn_worker_with_token(&admin, WORKER_SLOTS, &worker_extra).await
            } else {
                cluster.spawn_worker(WORKER_SLOTS, &worker_extra)
            };
            if let Err(e) = started {
                eprintln!("error: starting a worker: {e:#}");
                cluster.shutdown().await;
                return Ok(ExitCode::FAILURE);
            }
        }
        // The CLI's default addresses are those of the default ports only.
        let cli_token = if self.auth && self.port_base == 7100 { publish_token(&secrets.admin_token) } else { None };
        print_banner(&cluster, raft_base, _temp.is_some(), &secrets, self.auth, cli_token.as_deref());
        supervise(&mut cluster, &stop).await;
        println!("\nstopping replicas…");
        cluster.shutdown().await;
        if let Some(path) = cli_token {
            // Only if it still holds our token: another cluster may have written its own since.
            if std::fs::read_to_string(&path).is_ok_and(|t| t.trim() == secrets.admin_token) {
                let _ = std::fs::remove_file(&path);
            }
        }
        println!("stopped.");
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes the admin token where the CLI looks by default, so that `taskraft task submit …`
/// works in another terminal with no flag. Returns the file, or `None` if it could not be
/// written (the banner then says how to pass the token).
fn publish_token(token: &str) -> Option<PathBuf> {
    let path = super::default_token_file()?;
    let _ = std::fs::remove_file(&path);
    match crate::node::admin_token::write_secret(&path, token) {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("warning: could not write the admin token to {}: {e}", path.display());
            None
        }
    }
}

fn print_banner(
    cluster: &LocalCluster,
    raft_base: u16,
    temporary: bool,
    secrets: &LocalSecrets,
    auth: bool,
    cli_token: Option<&std::path::Path>,
) {
    println!("taskraft dev cluster is up ({} replicas, {} workers)\n", cluster.replicas.len(), cluster.workers.len());
    println!("  {:<4} {:<8} {:<17} {:<17} LOG", "ID", "PID", "API", "RAFT");
    for r in &cluster.replicas {
        println!(
            "  {:<4} {:<8} {:<17} {:<17} {}",
            r.id,
            r.child.as_ref().and_then(|c| c.id()).map_or("-".into(), |p| p.to_string()),
            cluster.api_addr(r.id),
            format!("127.0.0.1:{}", u64::from(raft_base) + r.id),
            r.log.display()
        );
    }
    println!();
    for w in &cluster.workers {
        println!(
            "  worker-{:<3} pid {:<8} slots {WORKER_SLOTS}   log {}",
            w.id,
            w.child.as_ref().and_then(|c| c.id()).map_or("-".into(), |p| p.to_string()),
            w.log.display()
        );
    }
    println!("\ndata: {}{}", cluster.dir.display(), if temporary { " (deleted on exit)" } else { "" });
    let (curl_ca, scheme) = match cluster.ca_file() {
        Some(ca) => {
            println!("\nTLS is on: clients need the CA, e.g.\n  export TASKRAFT_CA_FILE={}", ca.display());
            (format!("--cacert {} ", ca.display()), "https://")
        }
        None => (String::new(), ""),
    };
    if cluster.addrs().join(",") != super::DEFAULT_ADDRS {
        println!(
            "\nnot the default ports: point clients at them, e.g.\n  export TASKRAFT_ADDR={}",
            cluster.addrs().join(",")
        );
    }
    if auth {
        println!("\nauth is on. admin token: {}", secrets.admin_token);
        match cli_token {
            Some(path) => println!("  written to {} (mode 0600), where the CLI finds it by itself", path.display()),
            None => {
                println!(
                    "  pass it to the CLI with: export TASKRAFT_TOKEN=$(cat {})",
                    secrets.admin_token_file.display()
                )
            }
        }
        println!("  dashboard: {}{}/ (paste the token when it asks)", web_scheme(scheme), cluster.api_addr(1));
    } else {
        println!("\nauth is OFF (--auth=false): anyone who reaches these ports can run commands on the workers");
        println!("  dashboard: {}{}/", web_scheme(scheme), cluster.api_addr(1));
    }
    println!("\ntry:");
    println!("  taskraft task submit --name hello -- echo hello");
    println!("  taskraft task wait 1                                   # its exit code, output tail and attempts");
    println!("  taskraft worker list");
    println!("  taskraft task list");
    println!(
        "  curl -s {curl_ca}-XPOST {scheme}{}/v1/tasks -H \"Authorization: Bearer $(cat {})\" -d '{{\"command\":[\"sleep\",\"1\"]}}'",
        cluster.api_addr(2),
        secrets.admin_token_file.display()
    );
    println!("  taskraft cluster status          # who leads; `kill -9 <its pid>` and keep submitting");
    println!("\nCtrl-C stops the cluster.");
}

/// The scheme a browser needs: `https://` with TLS, else `http://`.
fn web_scheme(scheme: &str) -> &str {
    if scheme.is_empty() { "http://" } else { scheme }
}

/// Waits for Ctrl-C, reporting replicas that exit on their own (e.g. killed by the user).
async fn supervise(cluster: &mut LocalCluster, stop: &CancellationToken) {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "taskraft".into());
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        for r in cluster.replicas.iter_mut().chain(cluster.workers.iter_mut()) {
            let Some(child) = r.child.as_mut() else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                r.child = None;
                let args: Vec<&str> = r.args.iter().map(String::as_str).filter(|a| *a != "--bootstrap").collect();
                println!(
                    "{} {} exited ({status}). The others carry on. Restart it in another terminal with:\n  {exe} {}",
                    if r.args[0] == "worker" { "worker" } else { "replica" },
                    r.id,
                    args.join(" ")
                );
            }
        }
    }
}
