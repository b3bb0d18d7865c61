//! # The `taskraft` command line
//!
//! One binary for everything: `server` runs a replica, `dev` runs a local 3-replica cluster,
//! `task …` and `cluster …` talk to a cluster through the typed [`crate::client::Client`]
//! (failing over between the `--addr` replicas), `bench` measures it.

mod bench;
mod bench_workflow;
mod cluster;
mod dev;
mod limit;
mod local;
mod output;
mod schedule;
mod server;
mod snapshot;
pub mod spec_file;
mod task;
mod tls;
mod token;
mod worker;
mod workflow;

use std::process::ExitCode;

use clap::Parser;
use clap::Subcommand;

pub use self::output::Output;

/// Replicas of the default local cluster (`taskraft dev`, `cluster-configs/local-3`).
pub const DEFAULT_ADDRS: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

/// taskraft: a highly available task scheduler on Raft.
#[derive(Debug, Parser)]
#[command(name = "taskraft", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by commands that talk to a running cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// API addresses of one or more replicas (comma-separated); the client fails over between them.
    #[arg(long, env = "TASKRAFT_ADDR", value_delimiter = ',', default_value = DEFAULT_ADDRS, global = true)]
    pub addr: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// API token (`trk_…`). Prefer TASKRAFT_TOKEN or a token file: a flag shows in `ps`.
    #[arg(long, env = "TASKRAFT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding the API token [default: $XDG_CONFIG_HOME/taskraft/token or
    /// ~/.config/taskraft/token, where `taskraft dev` writes its admin token].
    #[arg(long, env = "TASKRAFT_TOKEN_FILE", global = true)]
    pub token_file: Option<std::path::PathBuf>,
    /// PEM CA certificate of a TLS cluster: replicas are verified against it, and addresses
    /// without a scheme mean `https://`.
    #[arg(long, env = "TASKRAFT_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl ClientArgs {
    /// How to connect: the CA file and the token, if any.
    pub fn options(&self) -> anyhow::Result<crate::client::ClientOptions> {
        Ok(crate::client::ClientOptions { ca_file: self.ca_file.clone(), token: self.token()?, ..Default::default() })
    }

    /// A client of the `--addr` replicas, with the CA file and token.
    pub fn connect(&self) -> anyhow::Result<crate::client::Client> {
        Ok(crate::client::Client::with_options(self.addr.clone(), &self.options()?)?)
    }

    /// The API token: `--token` / TASKRAFT_TOKEN, else the `--token-file` / TASKRAFT_TOKEN_FILE,
    /// else the default token file if it exists, else none.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        use anyhow::Context;
        if let Some(t) = &self.token {
            return Ok(Some(t.trim().to_string()));
        }
        if let Some(path) = &self.token_file {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading token file {}", path.display()))?;
            return Ok(Some(text.trim().to_string()));
        }
        match default_token_file() {
            Some(path) if path.exists() => {
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("reading token file {}", path.display()))?;
                Ok(Some(text.trim().to_string()))
            }
            _ => Ok(None),
        }
    }
}

/// Where the CLI looks for a token when none is given: `$XDG_CONFIG_HOME/taskraft/token`, else
/// `~/.config/taskraft/token`.
pub fn default_token_file() -> Option<std::path::PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("taskraft").join("token"))
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at startup; the server's options are most of it")]
enum Command {
    /// Run one replica.
    Server(server::ServerCmd),
    /// Run a local 3-replica cluster in one command (no config needed).
    Dev(dev::DevCmd),
    /// Submit, inspect, cancel and wait for tasks.
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// Initialize a cluster, inspect it, add and remove replicas.
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Timed triggers: cron, intervals and one-shot schedules.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// Workflows: DAGs of tasks with edge conditions, shards and results passed to children.
    #[command(subcommand)]
    Workflow(workflow::WorkflowCmd),
    /// Concurrency limits: at most N tasks with the same concurrency key run at once.
    ///
    /// Tasks opt in with `task submit --concurrency-key KEY`. A permit is taken when a task is
    /// assigned and given back when its attempt ends, both committed through Raft, so a limit
    /// holds across leader changes. Lowering a limit stops no running task; 0 holds every task
    /// with the key; a key without a limit is unlimited.
    #[command(subcommand)]
    Limit(limit::LimitCmd),
    /// Back up the cluster's state, or seed a new cluster from a backup.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Run a worker agent, or list/drain/remove workers.
    Worker(worker::WorkerCmd),
    /// Create, list and revoke API tokens (admin).
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Measure a running cluster.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Certificates for a TLS cluster: a CA and replica, worker and client certificates.
    #[command(subcommand)]
    Tls(tls::TlsCmd),
}

/// Parses the command line and runs it.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(cmd) => cmd.run().await,
        Command::Dev(cmd) => cmd.run().await,
        Command::Task(cmd) => cmd.run().await,
        Command::Cluster(cmd) => cmd.run().await,
        Command::Schedule(cmd) => cmd.run().await,
        Command::Workflow(cmd) => cmd.run().await,
        Command::Limit(cmd) => cmd.run().await,
        Command::Snapshot(cmd) => cmd.run().await,
        Command::Worker(cmd) => cmd.run().await,
        Command::Token(cmd) => cmd.run().await,
        Command::Bench(cmd) => cmd.run().await,
        Command::Tls(cmd) => cmd.run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default `info` level. Colours only on a terminal:
/// a log file (`taskraft dev`, systemd, the chaos harness) gets plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
