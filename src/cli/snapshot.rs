//! `taskraft snapshot save|restore`: backups of the whole cluster state, and new clusters
//! seeded from them (see [`crate::node::backup`] and the README's runbook).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::ClientArgs;
use super::output::print_json;
use crate::node::backup;

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCmd {
    /// Save a consistent, checksummed backup of the cluster's state (from the leader) to FILE.
    Save {
        /// Where to write the backup (replaced atomically).
        file: PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Seed a NEW cluster from a backup: writes it into the empty data dir of a replica that
    /// was never started. Start that replica with --bootstrap; the others join it as usual.
    Restore {
        /// The backup file written by `snapshot save`.
        file: PathBuf,
        /// Data dir of the first replica of the new cluster; must be empty or missing.
        #[arg(long)]
        data_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = super::Output::Table)]
        output: super::Output,
    },
}

impl SnapshotCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            SnapshotCmd::Save { file, timeout, client } => {
                let cl = client.connect()?.with_timeout(Duration::from_secs(timeout));
                let meta = cl.save_snapshot(&file).await?;
                if client.output == super::Output::Json {
                    print_json(&meta);
                } else {
                    println!(
                        "saved {}: index {} (term {}) from node {}, {} tasks, {} schedules, next task id {}",
                        file.display(),
                        meta.index,
                        meta.term,
                        meta.taken_by,
                        meta.tasks,
                        meta.schedules,
                        meta.next_task_id
                    );
                }
            }
            SnapshotCmd::Restore { file, data_dir, output } => {
                let now = crate::util::now_ms();
                let restored = tokio::task::spawn_blocking(move || backup::restore(&file, &data_dir, now)).await??;
                if output == super::Output::Json {
                    print_json(&serde_json::json!({
                        "backup": restored.backup,
                        "seed": restored.seed,
                        "seed_index": restored.seed_index,
                        "workers_lost": restored.workers_lost,
                        "attempts_lost": restored.attempts_lost,
                    }));
                } else {
                    let b = &restored.backup;
                    println!(
                        "restored a backup of index {} ({} tasks, {} schedules; next task id {}) into {}",
                        b.index,
                        b.tasks,
                        b.schedules,
                        b.next_task_id,
                        restored.seed.display()
                    );
                    println!(
                        "{} workers of the old cluster marked lost; {} running attempts ended lost (they follow their \
                         failover policy)",
                        restored.workers_lost, restored.attempts_lost
                    );
                    println!(
                        "next: start the first replica on this data dir with --bootstrap (a new cluster secret is \
                         advised), then join the others with empty data dirs"
                    );
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
