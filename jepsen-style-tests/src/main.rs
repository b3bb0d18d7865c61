//! `taskraft-jepsen`: run chaos tests against real taskraft processes (see README.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::Parser;
use clap::Subcommand;
use clap::builder::TypedValueParser as _;
use taskraft_jepsen::checkers::Validity;
use taskraft_jepsen::nemesis;
use taskraft_jepsen::nemesis::Family;
use taskraft_jepsen::ns;
use taskraft_jepsen::run::RunOptions;
use taskraft_jepsen::sink;
use taskraft_jepsen::suite;

#[derive(Parser)]
#[command(name = "taskraft-jepsen", version, about = "Chaos tests for taskraft: faults, histories, checkers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One run: cluster + workload + faults, then the checkers. Exit 0 valid, 1 invalid, 2 unknown.
    Run(RunArgs),
    /// Many runs per nemesis family (`--smoke`: one short run each, for CI).
    Suite(SuiteArgs),
    /// Re-run the checkers on a stored run directory and rewrite its report.
    Check {
        /// A run directory (holding history.jsonl, sink.jsonl, leaders.jsonl, final.json).
        dir: PathBuf,
    },
    /// Pool every run stored under a directory: verdicts, failover distributions, error rates.
    Summarize {
        /// A store directory (holding run directories).
        store: PathBuf,
    },
    /// The workload's task program (run by taskraft workers, not by hand).
    #[command(hide = true)]
    Counter {
        #[arg(long)]
        steps: u64,
        #[arg(long)]
        step_ms: u64,
        #[arg(long)]
        sink: String,
    },
    /// The workflow workload's task program (run by taskraft workers, not by hand).
    #[command(hide = true)]
    WfTask {
        #[arg(long)]
        sink: String,
        #[arg(long)]
        workflow: String,
        #[arg(long)]
        node: String,
        #[arg(long)]
        steps: u64,
        #[arg(long)]
        step_ms: u64,
        /// Exit 1 after the steps.
        #[arg(long)]
        fail: bool,
        /// Record `$TASKRAFT_INPUTS_DIR` at the start and write it as the result.
        #[arg(long)]
        reduce: bool,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Replicas (3 or 5).
    #[arg(long, default_value_t = 3, value_parser = clap::builder::PossibleValuesParser::new(["3", "5"]).map(|s| s.parse::<usize>().expect("3 or 5")))]
    nodes: usize,
    /// Workers (2–4).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=4))]
    workers: u32,
    /// Client operations per second, all clients together.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Seconds between fault starts.
    #[arg(long, default_value_t = 8.0)]
    interval: f64,
    /// Where run directories go.
    #[arg(long, default_value = "store")]
    store: PathBuf,
    /// The taskraft binary (default: `taskraft` next to this executable).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Steps of each counter task (one checkpoint per step).
    #[arg(long, default_value_t = 10)]
    steps: u64,
    /// Milliseconds per step.
    #[arg(long, default_value_t = 250)]
    step_ms: u64,
    /// Longest wait, after healing, for every task to finish (seconds).
    #[arg(long, default_value_t = 90.0)]
    quiet_limit: f64,
    /// Run the cluster with TLS: certificates from `taskraft tls init` in each run's directory,
    /// mutual TLS between replicas, workers and the harness verifying against the run's CA.
    #[arg(long)]
    tls: bool,
    /// Run the cluster with auth on: a fresh admin token per run, sent by the workers and the
    /// harness (`auth = true` as in `cluster-configs/`).
    #[arg(long)]
    auth: bool,
    /// The replicas' retention horizon in seconds (default: 75 % of the time limit, at least
    /// 5 s, so that retention forgets finished records during the run; at least 1).
    #[arg(long)]
    retention: Option<f64>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds of workload and faults.
    #[arg(long, default_value_t = 60.0)]
    time_limit: f64,
    /// Fault families, comma-separated (kill, pause, partition, loss, membership, clock,
    /// worker-kill, worker-pause), `all` or `none`.
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Seed of the fault schedule and client choices (random when absent; printed either way).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args)]
struct SuiteArgs {
    #[command(flatten)]
    common: Common,
    /// Runs per nemesis family.
    #[arg(long, default_value_t = 20)]
    runs: u32,
    /// Seconds of workload and faults per run.
    #[arg(long, default_value_t = 120.0)]
    time_limit: f64,
    /// Families to cover, each on its own runs.
    #[arg(long, default_value = "all")]
    families: String,
    /// One short run per family (CI): overrides --runs and --time-limit.
    #[arg(long)]
    smoke: bool,
    /// First seed; run k of a family uses seed + k.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Bad fault names are refused before anything else happens (no namespace needed for that).
    let families = match &cli.cmd {
        Cmd::Run(a) => Some(&a.nemesis),
        Cmd::Suite(a) => Some(&a.families),
        _ => None,
    };
    if let Some(Err(e)) = families.map(|f| nemesis::parse_list(f)) {
        eprintln!("taskraft-jepsen: {e}");
        return ExitCode::from(2);
    }
    let needs_netns = matches!(cli.cmd, Cmd::Run(_) | Cmd::Suite(_));
    if needs_netns {
        // Before any thread exists: a user namespace can only be entered single-threaded.
        if let Err(e) = ns::enter_or_reexec().and_then(|()| ns::setup()) {
            eprintln!("taskraft-jepsen: {e:#}");
            return ExitCode::from(2);
        }
    }
    match cli.cmd {
        Cmd::Counter { steps, step_ms, sink } => match sink::counter(steps, step_ms, &sink) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("counter: {e:#}");
                ExitCode::from(3)
            }
        },
        Cmd::WfTask { sink, workflow, node, steps, step_ms, fail, reduce } => {
            let args = sink::WfTaskArgs { workflow, node, steps, step_ms, fail, reduce };
            match sink::wf_task(&args, &sink) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("wf-task: {e:#}");
                    ExitCode::from(3)
                }
            }
        }
        Cmd::Check { dir } => exit(taskraft_jepsen::run::recheck(&dir)),
        Cmd::Summarize { store } => match taskraft_jepsen::aggregate::aggregate(&store) {
            Ok(aggs) => {
                print!("{}", taskraft_jepsen::aggregate::summary(&aggs));
                let worst = if aggs.values().any(|a| a.invalid > 0) {
                    Validity::False
                } else if aggs.values().any(|a| a.unknown > 0) {
                    Validity::Unknown
                } else {
                    Validity::True
                };
                exit(Ok(worst))
            }
            Err(e) => exit(Err(e)),
        },
        Cmd::Run(args) => {
            let seed = args.seed.unwrap_or_else(rand::random);
            let families = match nemesis::parse_list(&args.nemesis) {
                Ok(f) => f,
                Err(e) => return exit(Err(anyhow::anyhow!(e))),
            };
            let opts = match options(&args.common, args.time_limit, families, seed) {
                Ok(o) => o,
                Err(e) => return exit(Err(e)),
            };
            let rt = runtime();
            exit(rt.block_on(interruptible(async { taskraft_jepsen::run::run(&opts).await.map(|o| o.valid) })))
        }
        Cmd::Suite(args) => {
            let (runs, time_limit) = if args.smoke { (1, 20.0) } else { (args.runs, args.time_limit) };
            let families = match nemesis::parse_list(&args.families) {
                Ok(f) => f,
                Err(e) => return exit(Err(anyhow::anyhow!(e))),
            };
            let opts = match options(&args.common, time_limit, Vec::new(), args.seed) {
                Ok(o) => o,
                Err(e) => return exit(Err(e)),
            };
            let rt = runtime();
            exit(rt.block_on(interruptible(suite::suite(&opts, &families, runs))))
        }
    }
}

fn options(c: &Common, time_limit: f64, nemesis: Vec<Family>, seed: u64) -> anyhow::Result<RunOptions> {
    let bin = match &c.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("taskraft"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "taskraft binary not found at {} (build it with `cargo build --release`, or pass --bin)",
        bin.display()
    );
    anyhow::ensure!(time_limit > 0.0 && c.rate > 0.0 && c.interval > 0.0, "time limit, rate and interval must be > 0");
    let time_limit_d = Duration::from_secs_f64(time_limit);
    let retention = match c.retention {
        Some(s) => {
            anyhow::ensure!(s >= 1.0, "--retention must be at least 1 s (the product refuses less)");
            Duration::from_secs_f64(s)
        }
        None => taskraft_jepsen::run::default_retention(time_limit_d),
    };
    Ok(RunOptions {
        nodes: c.nodes,
        workers: c.workers,
        time_limit: time_limit_d,
        rate: c.rate,
        clients: c.clients.max(1),
        nemesis,
        interval: Duration::from_secs_f64(c.interval),
        seed,
        store: std::path::absolute(&c.store).context("resolving --store")?,
        bin: std::path::absolute(bin)?,
        steps: c.steps,
        step_ms: c.step_ms,
        quiet_limit: Duration::from_secs_f64(c.quiet_limit),
        tls: c.tls,
        auth: c.auth,
        retention,
    })
}

/// Runs `f` unless SIGINT or SIGTERM arrives first. Either way the runtime is dropped on return,
/// which drops the cluster, which kills every process the harness started.
async fn interruptible(f: impl std::future::Future<Output = anyhow::Result<Validity>>) -> anyhow::Result<Validity> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = f => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted (SIGINT); stopped every node"),
        _ = term.recv() => anyhow::bail!("terminated (SIGTERM); stopped every node"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

fn exit(r: anyhow::Result<Validity>) -> ExitCode {
    match r {
        Ok(Validity::True) => ExitCode::SUCCESS,
        Ok(Validity::False) => ExitCode::from(1),
        Ok(Validity::Unknown) => ExitCode::from(2),
        Err(e) => {
            eprintln!("taskraft-jepsen: {e:#}");
            ExitCode::from(2)
        }
    }
}
