//! `taskraft limit …`: cluster-wide concurrency limits by key.

use std::process::ExitCode;

use super::ClientArgs;
use super::Output;
use super::output::print_json;
use super::output::print_table;
use crate::proto::limits::LimitView;
use crate::proto::limits::MAX_LIMIT_RUNNING;

/// `taskraft limit set|list|get|delete` (the long help is on `Command::Limit`).
#[derive(Debug, clap::Subcommand)]
pub enum LimitCmd {
    /// Set (or change) the limit of a key: at most N of its tasks run at once (operator).
    #[command(after_help = "Example: taskraft limit set db-backup 2\n         \
                            taskraft task submit --concurrency-key db-backup -- ./backup.sh")]
    Set {
        /// The concurrency key, as tasks give it in `--concurrency-key`.
        key: String,
        /// Most tasks with this key running at once (0 to 1000000; 0 holds them all).
        #[arg(value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_LIMIT_RUNNING)))]
        max_running: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List every limit, and every key in use without one.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one key: its limit and the tasks holding its permits.
    Get {
        /// The concurrency key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove the limit of a key: its tasks become unlimited at once (operator).
    Delete {
        /// The concurrency key.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl LimitCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            LimitCmd::Set { key, max_running, client } => {
                let limit = client.connect()?.set_limit(&key, max_running).await?;
                show(&limit, client.output, None);
            }
            LimitCmd::List { client } => {
                let list = client.connect()?.list_limits().await?;
                if client.output == Output::Json {
                    print_json(&list);
                } else if list.limits.is_empty() {
                    println!("no limits, and no task with a concurrency key is running");
                } else {
                    let rows: Vec<Vec<String>> = list.limits.iter().map(row).collect();
                    print_table(&["KEY", "MAX", "RUNNING", "TASKS"], &rows);
                }
            }
            LimitCmd::Get { key, client } => {
                let limit = client.connect()?.get_limit(&key).await?;
                show(&limit, client.output, None);
            }
            LimitCmd::Delete { key, client } => {
                let limit = client.connect()?.delete_limit(&key).await?;
                let note = "limit removed: new tasks with this key are no longer held back";
                show(&limit, client.output, Some(note));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One key as a table row: key, max (`-` for none), running count, the holders.
fn row(l: &LimitView) -> Vec<String> {
    vec![
        l.key.clone(),
        l.max_running.map_or_else(|| "-".to_string(), |m| m.to_string()),
        l.running.len().to_string(),
        holders(l),
    ]
}

fn holders(l: &LimitView) -> String {
    if l.running.is_empty() {
        return "-".to_string();
    }
    l.running.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// One key, in detail, with an optional closing note.
fn show(l: &LimitView, output: Output, note: Option<&str>) {
    if output == Output::Json {
        return print_json(l);
    }
    let key = super::output::escape(&l.key);
    let max = match l.max_running {
        Some(0) => "0 (every task with this key is held)".to_string(),
        Some(m) => m.to_string(),
        None => "none (unlimited)".to_string(),
    };
    println!("key:         {key}");
    println!("max running: {max}");
    println!("running:     {} ({})", l.running.len(), holders(l));
    if let Some(note) = note {
        println!("{note}");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Wrap {
        #[command(subcommand)]
        cmd: LimitCmd,
    }

    #[test]
    fn set_takes_a_key_and_a_bounded_count() {
        let w = Wrap::try_parse_from(["limit", "set", "db-backup", "2"]).unwrap();
        assert!(matches!(w.cmd, LimitCmd::Set { ref key, max_running: 2, .. } if key == "db-backup"));
        assert!(Wrap::try_parse_from(["limit", "set", "db", "0"]).is_ok(), "0 holds every task");
        assert!(Wrap::try_parse_from(["limit", "set", "db", "1000001"]).is_err());
        assert!(Wrap::try_parse_from(["limit", "set", "db", "-1"]).is_err());
        assert!(Wrap::try_parse_from(["limit", "set", "db"]).is_err());
    }

    #[test]
    fn rows_show_a_missing_limit_and_the_holders() {
        let l = LimitView { key: "db".into(), max_running: None, running: vec![3, 9] };
        assert_eq!(row(&l), ["db", "-", "2", "3,9"]);
        let l = LimitView { key: "db".into(), max_running: Some(2), running: vec![] };
        assert_eq!(row(&l), ["db", "2", "0", "-"]);
    }
}
