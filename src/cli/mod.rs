//! # The `taskraft` command line
//!
//! One binary for everything: `server` runs a replica, `dev` runs a local 3-replica cluster,
//! `task …` and `cluster …` talk to a cluster through the typed [`crate::client::Client`]
//! (failing over between the `--addr` replicas), `bench` measures it.

mod bench;
mod cluster;
mod dev;
mod local;
mod output;
mod schedule;
mod server;
mod task;
mod tls;
mod worker;

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
    /// PEM CA certificate of a TLS cluster: replicas are verified against it, and addresses
    /// without a scheme mean `https://`.
    #[arg(long, env = "TASKRAFT_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl ClientArgs {
    /// How to connect: the CA file, if any.
    pub fn options(&self) -> crate::client::ClientOptions {
        crate::client::ClientOptions { ca_file: self.ca_file.clone(), ..Default::default() }
    }

    /// A client of the `--addr` replicas.
    pub fn connect(&self) -> crate::client::Result<crate::client::Client> {
        crate::client::Client::with_options(self.addr.clone(), &self.options())
    }
}

#[derive(Debug, Subcommand)]
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
    /// Run a worker agent, or list/drain/remove workers.
    Worker(worker::WorkerCmd),
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
        Command::Worker(cmd) => cmd.run().await,
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
