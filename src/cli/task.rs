//! `taskraft task …`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use serde_json::Value;
use serde_json::json;

use super::ClientArgs;
use super::output::print_json;
use super::output::print_task;
use super::output::print_tasks;
use crate::client::Client;

#[derive(Debug, clap::Subcommand)]
pub enum TaskCmd {
    /// Submit a task: `taskraft task submit --name hello -- echo hi`.
    Submit(SubmitArgs),
    /// Show one task.
    Get {
        /// Task id.
        id: u64,
        /// Read this replica's local state (may be behind) instead of a linearizable read.
        #[arg(long)]
        stale: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tasks, oldest first.
    List {
        /// Only tasks in this state (pending, running, succeeded, …).
        #[arg(long)]
        state: Option<String>,
        /// Page size (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this task id (the `next_cursor` of the previous page).
        #[arg(long)]
        cursor: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a task that has not finished.
    Cancel {
        /// Task id.
        id: u64,
        /// Reason kept on the task.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Wait until a task finishes; exit 0 if it succeeded, 1 otherwise, 2 on timeout.
    Wait {
        /// Task id.
        id: u64,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Options of `task submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Human-readable name.
    #[arg(long)]
    name: Option<String>,
    /// 0–1000, higher runs first.
    #[arg(long)]
    priority: Option<u32>,
    /// Idempotency key: submitting the same key again returns the first task.
    #[arg(long)]
    key: Option<String>,
    /// Attempts before the task fails for good.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Per-attempt timeout in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Label constraint `key=value` a worker must match (repeatable).
    #[arg(long = "label", value_parser = parse_pair)]
    labels: Vec<(String, String)>,
    /// Soft label preference `key=value` (repeatable): workers with the most of these are
    /// chosen when they fit; when none fits, any worker is (unlike --label).
    #[arg(long = "prefer", value_parser = parse_pair)]
    prefer: Vec<(String, String)>,
    /// Placement strategy: priority_fcfs (cluster default), shortest_job_first (sjf),
    /// least_loaded, best_fit, round_robin, weighted_round_robin, random, or hash:KEY
    /// (consistent hash of KEY).
    #[arg(long, value_parser = parse_placement)]
    placement: Option<Value>,
    /// Environment variable `NAME=value` for the process (repeatable).
    #[arg(long = "env", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Read the whole task as JSON from this file (`-` for stdin); other flags override it.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true)]
    command: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// A `--placement` name as the API's JSON value.
fn parse_placement(s: &str) -> Result<Value, String> {
    const NAMES: [&str; 7] = [
        "priority_fcfs",
        "shortest_job_first",
        "least_loaded",
        "best_fit",
        "round_robin",
        "weighted_round_robin",
        "random",
    ];
    match s {
        "sjf" => Ok(json!("shortest_job_first")),
        name if NAMES.contains(&name) => Ok(json!(name)),
        other => match other.strip_prefix("hash:") {
            Some(key) if !key.is_empty() => Ok(json!({"consistent_hash": {"key": key}})),
            _ => Err(format!("`{other}` is not a strategy; expected one of {}, sjf or hash:KEY", NAMES.join(", "))),
        },
    }
}

fn client(args: &ClientArgs) -> anyhow::Result<Client> {
    Ok(Client::new(args.addr.clone())?)
}

impl SubmitArgs {
    fn body(&self) -> anyhow::Result<Value> {
        let mut body = match &self.json {
            Some(path) => {
                let text = if path.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin()).context("reading stdin")?
                } else {
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
                };
                serde_json::from_str(&text).context("the --json task is not valid JSON")?
            }
            None => json!({}),
        };
        let Value::Object(map) = &mut body else { bail!("the --json task must be a JSON object") };
        if !self.command.is_empty() {
            map.insert("command".into(), json!(self.command));
        }
        if !map.contains_key("command") {
            bail!("give the command after `--`, e.g. `taskraft task submit -- echo hello`");
        }
        let optional = [
            ("name", self.name.as_ref().map(|v| json!(v))),
            ("priority", self.priority.map(|v| json!(v))),
            ("idempotency_key", self.key.as_ref().map(|v| json!(v))),
            ("max_attempts", self.max_attempts.map(|v| json!(v))),
            ("timeout_ms", self.timeout_ms.map(|v| json!(v))),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                map.insert(k.into(), v);
            }
        }
        if !self.labels.is_empty() {
            map.insert("constraints".into(), json!(self.labels.iter().cloned().collect::<BTreeMap<_, _>>()));
        }
        if let Some(placement) = &self.placement {
            map.insert("placement".into(), placement.clone());
        }
        if !self.prefer.is_empty() {
            let then = map.remove("placement").unwrap_or_else(|| json!("priority_fcfs"));
            let labels: BTreeMap<_, _> = self.prefer.iter().cloned().collect();
            map.insert("placement".into(), json!({"prefer": {"labels": labels, "then": then}}));
        }
        if !self.env.is_empty() {
            map.insert("env".into(), json!(self.env.iter().cloned().collect::<BTreeMap<_, _>>()));
        }
        Ok(body)
    }
}

impl TaskCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TaskCmd::Submit(args) => {
                let body = args.body()?;
                let (task, created) = client(&args.client)?.submit(body).await?;
                if args.client.output == super::Output::Json {
                    print_json(&task);
                } else if created {
                    println!("submitted task {} ({})", task.id, task.state.as_str());
                } else {
                    println!("task {} already exists for this idempotency key ({})", task.id, task.state.as_str());
                }
            }
            TaskCmd::Get { id, stale, client: c } => {
                let q = if stale { "?consistency=stale" } else { "" };
                let v: Value = client(&c)?.request(reqwest::Method::GET, &format!("/v1/tasks/{id}{q}"), None).await?;
                if c.output == super::Output::Json {
                    print_json(&v);
                } else {
                    let task: crate::scheduler::Task = serde_json::from_value(v.clone())?;
                    print_task(&task, c.output);
                    if let Some(why) = v["pending_reason"].as_str() {
                        println!("waiting:     {why}");
                    }
                }
            }
            TaskCmd::List { state, limit, cursor, client: c } => {
                let page = client(&c)?.list_tasks(state.as_deref(), limit, cursor).await?;
                if c.output == super::Output::Json {
                    print_json(&json!({"tasks": page.tasks, "next_cursor": page.next_cursor}));
                } else {
                    print_tasks(&page.tasks, c.output);
                    if let Some(next) = page.next_cursor {
                        println!("(more: --cursor {next})");
                    }
                }
            }
            TaskCmd::Cancel { id, reason, client: c } => {
                let task = client(&c)?.cancel(id, reason.as_deref()).await?;
                if c.output == super::Output::Json {
                    print_json(&task);
                } else if task.is_terminal() {
                    println!("task {id} cancelled");
                } else {
                    println!("task {id}: cancel requested; its worker will stop it");
                }
            }
            TaskCmd::Wait { id, timeout, client: c } => {
                let cl = client(&c)?.with_timeout(Duration::from_secs(timeout + 5));
                let task = cl.wait(id, Duration::from_secs(timeout)).await?;
                print_task(&task, c.output);
                return Ok(match task.state {
                    crate::scheduler::TaskState::Succeeded => ExitCode::SUCCESS,
                    _ if task.is_terminal() => ExitCode::FAILURE,
                    _ => ExitCode::from(2),
                });
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        submit: SubmitArgs,
    }

    fn body(args: &[&str]) -> Result<Value, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("submit").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        cli.submit.body().map_err(|e| e.to_string())
    }

    #[test]
    fn placement_and_preferences_become_the_api_placement() {
        let b = body(&["--placement", "sjf", "--", "true"]).unwrap();
        assert_eq!(b["placement"], json!("shortest_job_first"));
        let b = body(&["--placement", "hash:tenant-7", "--", "true"]).unwrap();
        assert_eq!(b["placement"], json!({"consistent_hash": {"key": "tenant-7"}}));
        let b =
            body(&["--prefer", "zone=a", "--prefer", "disk=ssd", "--placement", "least_loaded", "--", "true"]).unwrap();
        assert_eq!(b["placement"], json!({"prefer": {"labels": {"disk": "ssd", "zone": "a"}, "then": "least_loaded"}}));
        let b = body(&["--prefer", "zone=a", "--", "true"]).unwrap();
        assert_eq!(b["placement"], json!({"prefer": {"labels": {"zone": "a"}, "then": "priority_fcfs"}}));
        // What the CLI builds is what the API accepts.
        let spec: crate::scheduler::TaskSpec = serde_json::from_value(b).unwrap();
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn bad_placement_names_are_refused_with_the_choices() {
        let err = body(&["--placement", "fastest", "--", "true"]).unwrap_err();
        assert!(err.contains("`fastest` is not a strategy") && err.contains("least_loaded"), "{err}");
        assert!(body(&["--placement", "hash:", "--", "true"]).is_err());
        assert!(body(&["--prefer", "zone", "--", "true"]).unwrap_err().contains("not KEY=VALUE"));
    }
}
