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
use super::output::escape;
use super::output::escape_output;
use super::output::output_excerpt;
use super::output::print_json;
use super::output::print_task;
use super::output::print_tasks;
use crate::client::Client;
use crate::proto::output::OutputSource;
use crate::scheduler::DEFAULT_LIST_LIMIT;
use crate::scheduler::Executor;
use crate::scheduler::MAX_PRIORITY;

/// What `--help` of `task submit` says about words that start with `-`; kept true by the tests.
const HYPHEN_HELP: &str = "\
Words starting with `-`:
  Everything after `--` is the command, passed on as is, dashes included:
    taskraft task submit -- sleep -5          (argv [\"sleep\", \"-5\"])
    taskraft task submit --executor sleep -- 50
  An option's value may start with `-` too: `--name -x` and `--name=-x` both name the task \"-x\".
  A negative number is refused by the option itself (`--priority -5`: not in 0..=1000).";

#[derive(Debug, clap::Subcommand)]
pub enum TaskCmd {
    /// Submit a task: `taskraft task submit --name hello -- echo hi`.
    #[command(after_help = HYPHEN_HELP)]
    Submit(Box<SubmitArgs>),
    /// Show one task.
    Get {
        /// Task id.
        #[arg(allow_negative_numbers = true)]
        id: u64,
        /// Read this replica's local state (may be behind) instead of a linearizable read.
        #[arg(long)]
        stale: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tasks, oldest first.
    List {
        /// Only tasks in this state (pending, blocked, assigned, running, retry_wait, succeeded,
        /// failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Page size. The server returns at most 1000 tasks per page (a bigger limit is cut to
        /// 1000), and 0 means its default page of 100, not "all": follow `--cursor` for more.
        #[arg(long, default_value_t = DEFAULT_LIST_LIMIT, allow_negative_numbers = true)]
        limit: u32,
        /// Start after this task id (the `next_cursor` of the previous page; with --schedule, a
        /// nominal time).
        #[arg(long, allow_negative_numbers = true)]
        cursor: Option<u64>,
        /// Only the runs of this schedule, in nominal order.
        #[arg(long, allow_negative_numbers = true)]
        schedule: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Cancel a task that has not finished.
    Cancel {
        /// Task id.
        #[arg(allow_negative_numbers = true)]
        id: u64,
        /// Reason kept on the task.
        #[arg(long, allow_hyphen_values = true)]
        reason: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show an attempt's output, as it is produced: the leader's live copy of what the worker
    /// shipped (kept for a lost attempt too), or the committed output tail once it ended.
    Logs {
        /// Task id.
        #[arg(allow_negative_numbers = true)]
        id: u64,
        /// Keep printing output as it arrives; exit when the attempt ends (waits for the first
        /// attempt of a task that has none yet).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Attempt number (default: the latest).
        #[arg(long, allow_negative_numbers = true)]
        attempt: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Wait until a task finishes; exit 0 if it succeeded, 1 otherwise, 2 on timeout.
    Wait {
        /// Task id.
        #[arg(allow_negative_numbers = true)]
        id: u64,
        /// Give up after this many seconds in all. The server holds one long-poll for at most
        /// 60 s (30 s when a request names no wait), so the CLI polls again until the time is up.
        #[arg(long, default_value_t = 60, allow_negative_numbers = true)]
        timeout: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Options of `task submit`. Every option takes a value that starts with `-` (see
/// [`HYPHEN_HELP`]): clap's own tip for such a value (`use '-- -x'`) would be wrong for an
/// option, since after `--` everything is the command.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Human-readable name.
    #[arg(long, allow_hyphen_values = true)]
    name: Option<String>,
    /// How the worker runs the task; the command holds its arguments: exec (default): the
    /// program and its arguments; http: URL [METHOD [BODY]] (2xx succeeds); noop: nothing;
    /// sleep: milliseconds.
    #[arg(long, value_name = "EXECUTOR", allow_hyphen_values = true, value_parser = executor_parser())]
    executor: Option<Executor>,
    /// 0–1000, higher runs first (default 500). Below 500 the task is preemptible: a waiting
    /// task at least `preemption_gap` (default 10) higher may stop it after it ran
    /// `preempt_min_runtime_ms`; it resumes later from its last checkpoint (README "Preemption").
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_PRIORITY)))]
    priority: Option<u32>,
    /// May be stopped for a waiting task of higher priority, and resume later from its last
    /// checkpoint (default: yes below priority 500, no at 500 and above).
    #[arg(long, overrides_with = "no_preemptible")]
    preemptible: bool,
    /// Never stopped for another task, whatever its priority.
    #[arg(long, overrides_with = "preemptible")]
    no_preemptible: bool,
    /// Idempotency key: submitting the same key again returns the first task.
    #[arg(long, allow_hyphen_values = true)]
    key: Option<String>,
    /// Concurrency key: the task runs only while its key's limit has a permit free (set limits
    /// with `taskraft limit set KEY N`; a key without a limit is unlimited).
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    concurrency_key: Option<String>,
    /// Attempts before the task fails for good.
    #[arg(long, allow_negative_numbers = true)]
    max_attempts: Option<u32>,
    /// Per-attempt timeout in milliseconds.
    #[arg(long, allow_negative_numbers = true)]
    timeout_ms: Option<u64>,
    /// When the worker running an attempt is lost: resume (default: from the last checkpoint),
    /// restart (from scratch) or fail.
    #[arg(long, allow_hyphen_values = true, value_parser = ["resume", "restart", "fail"])]
    failover: Option<String>,
    /// CPU the task reserves on its worker, in millicores (1000 = one core).
    #[arg(long, value_name = "MILLIS", allow_negative_numbers = true)]
    cpu: Option<u32>,
    /// Memory the task reserves on its worker, in MiB.
    #[arg(long, value_name = "MIB", allow_negative_numbers = true)]
    memory: Option<u32>,
    /// Working directory of an exec task: absolute, or relative to the attempt's own directory
    /// (created if missing; `..` may not climb out). Default: the attempt directory.
    #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
    working_dir: Option<String>,
    /// A task that must succeed first (repeatable, or comma-separated ids).
    #[arg(long = "depends-on", value_name = "ID", value_delimiter = ',', allow_negative_numbers = true)]
    depends_on: Vec<u64>,
    /// Label constraint `key=value` a worker must match (repeatable).
    #[arg(long = "label", allow_hyphen_values = true, value_parser = parse_pair)]
    labels: Vec<(String, String)>,
    /// Soft label preference `key=value` (repeatable): workers with the most of these are
    /// chosen when they fit; when none fits, any worker is (unlike --label).
    #[arg(long = "prefer", allow_hyphen_values = true, value_parser = parse_pair)]
    prefer: Vec<(String, String)>,
    /// Placement strategy: priority_fcfs (cluster default), shortest_job_first (sjf),
    /// least_loaded, best_fit, round_robin, weighted_round_robin, random, or hash:KEY
    /// (consistent hash of KEY).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_placement)]
    placement: Option<Value>,
    /// Environment variable `NAME=value` for the process (repeatable).
    #[arg(long = "env", allow_hyphen_values = true, value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Read the whole task as JSON from this file (`-` for stdin); other flags override it.
    #[arg(long, allow_hyphen_values = true)]
    json: Option<PathBuf>,
    /// The executor's arguments: for exec, the program and its arguments.
    #[arg(last = true)]
    command: Vec<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `--executor`: one of [`Executor::ALL`], listed in `--help`.
fn executor_parser() -> impl clap::builder::TypedValueParser<Value = Executor> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Executor::ALL.map(Executor::as_str))
        .map(|name| Executor::parse(&name).expect("a possible value is an executor"))
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
    args.connect()
}

fn label_map(pairs: &[(String, String)]) -> Value {
    json!(pairs.iter().cloned().collect::<BTreeMap<_, _>>())
}

impl SubmitArgs {
    /// `--name`.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `--key`.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Whether any flag but `--name` and `--key` was given: a task template is meant.
    pub(crate) fn describes_a_task(&self) -> bool {
        self.executor.is_some()
            || self.priority.is_some()
            || self.max_attempts.is_some()
            || self.timeout_ms.is_some()
            || self.failover.is_some()
            || self.cpu.is_some()
            || self.memory.is_some()
            || self.working_dir.is_some()
            || self.placement.is_some()
            || self.json.is_some()
            || !self.depends_on.is_empty()
            || !self.labels.is_empty()
            || !self.prefer.is_empty()
            || !self.env.is_empty()
            || !self.command.is_empty()
            || self.concurrency_key.is_some()
            || self.preemptible
            || self.no_preemptible
    }

    /// `--preemptible` (true), `--no-preemptible` (false), or neither: the priority decides.
    fn preemptible_choice(&self) -> Option<bool> {
        match (self.preemptible, self.no_preemptible) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

    /// The task body without `--key` (a schedule's template: `--key` names the schedule).
    pub(crate) fn body_without_key(&self) -> anyhow::Result<Value> {
        let mut body = self.body()?;
        if let Value::Object(map) = &mut body {
            map.remove("idempotency_key");
        }
        Ok(body)
    }

    /// The `POST /v1/tasks` body: the `--json` task (if any) with the flags given on top.
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
        if let Some(executor) = self.executor {
            map.insert("executor".into(), json!(executor.as_str()));
        }
        // Only noop runs without arguments; the others need a command (the API says which).
        let noop = map.get("executor").and_then(Value::as_str) == Some(Executor::Noop.as_str());
        if !map.contains_key("command") && !noop {
            bail!("give the command after `--`, e.g. `taskraft task submit -- echo hello`");
        }
        let optional = [
            ("name", self.name.as_ref().map(|v| json!(v))),
            ("priority", self.priority.map(|v| json!(v))),
            ("idempotency_key", self.key.as_ref().map(|v| json!(v))),
            ("concurrency_key", self.concurrency_key.as_ref().map(|v| json!(v))),
            ("max_attempts", self.max_attempts.map(|v| json!(v))),
            ("timeout_ms", self.timeout_ms.map(|v| json!(v))),
            ("failover", self.failover.as_ref().map(|v| json!(v))),
            ("working_dir", self.working_dir.as_ref().map(|v| json!(v))),
            ("placement", self.placement.clone()),
            ("preemptible", self.preemptible_choice().map(|v| json!(v))),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                map.insert(k.into(), v);
            }
        }
        if self.cpu.is_some() || self.memory.is_some() {
            let resources = map.entry("resources").or_insert_with(|| json!({}));
            let Value::Object(resources) = resources else { bail!("the --json task's `resources` must be an object") };
            if let Some(cpu) = self.cpu {
                resources.insert("cpu_millis".into(), json!(cpu));
            }
            if let Some(memory) = self.memory {
                resources.insert("memory_mib".into(), json!(memory));
            }
        }
        if !self.depends_on.is_empty() {
            map.insert("depends_on".into(), json!(self.depends_on));
        }
        if !self.labels.is_empty() {
            // `labels` is the API's alias of `constraints`; the flag replaces either.
            map.remove("labels");
            map.insert("constraints".into(), label_map(&self.labels));
        }
        if !self.prefer.is_empty() {
            map.insert("prefer".into(), json!({"labels": label_map(&self.prefer)}));
        }
        if !self.env.is_empty() {
            map.insert("env".into(), label_map(&self.env));
        }
        Ok(body)
    }
}

/// One long-poll of `task logs --follow`.
const LOGS_POLL: Duration = Duration::from_secs(10);

/// `task logs`: prints the attempt's output; with `follow`, until the attempt ends.
async fn logs(cl: &Client, id: u64, mut attempt: Option<u32>, follow: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut after = 0;
    let mut printed = false;
    loop {
        let wait = if follow { LOGS_POLL } else { Duration::ZERO };
        let out = cl.task_output(id, attempt, after, wait).await?;
        // Follow the attempt shown first, even if a retry starts meanwhile.
        if attempt.is_none() {
            attempt = out.attempt;
        }
        if printed && out.source == OutputSource::Live && out.start > after {
            eprintln!("[… {} bytes of output dropped …]", out.start - after);
        }
        let text = match out.source {
            OutputSource::Live => out.text.as_str(),
            // The leader changed and lost its live copy: the committed tail repeats what was
            // printed, so it is shown only if nothing was.
            OutputSource::Committed if !printed => out.text.as_str(),
            _ => "",
        };
        if !text.is_empty() {
            print!("{}", escape_output(text));
            std::io::stdout().flush()?;
            printed = true;
        }
        after = out.next;
        if !follow || out.complete {
            if !printed && !follow {
                eprintln!(
                    "(no output{})",
                    if out.attempt.is_none() { ": the task has not started yet" } else { " yet" }
                );
            }
            return Ok(());
        }
    }
}

/// `task get`: the leader's live output of a running attempt, and of lost attempts whose
/// completion carries no output tail (best effort: nothing is printed if it cannot be read).
async fn print_live_output(cl: &Client, task: &crate::scheduler::Task) {
    for a in &task.attempts {
        let lost = a.outcome == Some(crate::scheduler::AttemptOutcome::Lost) && a.output_tail.is_empty();
        if !(lost || a.is_live()) {
            continue;
        }
        let Ok(out) = cl.task_output(task.id, Some(a.number), 0, Duration::ZERO).await else { continue };
        if out.source != OutputSource::Live || out.text.is_empty() {
            continue;
        }
        let when = if lost { "shipped before it was lost" } else { "so far" };
        println!("  output of attempt {} {when} (`taskraft task logs {} --attempt {}`):", a.number, task.id, a.number);
        print!("{}", output_excerpt(&out.text, 5));
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
                let cl = client(&c)?;
                let view = cl.get_task_view(id, stale).await?;
                if c.output == super::Output::Json {
                    print_json(&view);
                } else {
                    print_task(&view.task, c.output);
                    if let Some(m) = &view.migration {
                        let (from, to, why) = (escape(&m.from), escape(&m.to), escape(&m.why));
                        if view.migrating {
                            println!(
                                "migrating:   from worker {from} to worker {to} ({why}); its worker is stopping attempt token {}",
                                m.token
                            );
                        } else {
                            println!(
                                "migration:   from worker {from} to worker {to} ({why}); placed on {to} next if it fits"
                            );
                        }
                    }
                    if let Some(why) = &view.pending_reason {
                        println!("waiting:     {}", escape(why));
                    }
                    print_live_output(&cl, &view.task).await;
                }
            }
            TaskCmd::Logs { id, follow, attempt, client: c } => {
                let cl = client(&c)?.with_timeout(LOGS_POLL + Duration::from_secs(10));
                logs(&cl, id, attempt, follow).await?;
            }
            TaskCmd::List { state, limit, cursor, schedule, client: c } => {
                let page = match schedule {
                    Some(_) if state.is_some() => bail!("--state cannot be combined with --schedule"),
                    Some(id) => client(&c)?.list_schedule_runs(id, limit, cursor).await?,
                    None => client(&c)?.list_tasks(state.as_deref(), limit, cursor).await?,
                };
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
    use clap::CommandFactory;
    use clap::Parser;

    use super::*;
    use crate::scheduler::MAX_LIST_LIMIT;
    use crate::scheduler::TaskSpec;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        submit: SubmitArgs,
    }

    /// `taskraft task …` as the binary parses it.
    #[derive(Debug, clap::Parser)]
    #[command(name = "task")]
    struct TaskCli {
        #[command(subcommand)]
        cmd: TaskCmd,
    }

    fn body(args: &[&str]) -> Result<Value, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("submit").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        cli.submit.body().map_err(|e| e.to_string())
    }

    /// What the API makes of a body the CLI built (the API's own aliases aside).
    fn to_spec(body: Value) -> TaskSpec {
        let mut spec: TaskSpec = serde_json::from_value(body).unwrap();
        spec.expand_shorthand().unwrap();
        spec
    }

    fn help_of(subcommand: &str) -> String {
        let mut cmd = TaskCli::command();
        cmd.find_subcommand_mut(subcommand).unwrap().render_long_help().to_string()
    }

    #[test]
    fn placement_and_preferences_become_the_api_placement() {
        let b = body(&["--placement", "sjf", "--", "true"]).unwrap();
        assert_eq!(b["placement"], json!("shortest_job_first"));
        let b = body(&["--placement", "hash:tenant-7", "--", "true"]).unwrap();
        assert_eq!(b["placement"], json!({"consistent_hash": {"key": "tenant-7"}}));
        let b =
            body(&["--prefer", "zone=a", "--prefer", "disk=ssd", "--placement", "least_loaded", "--", "true"]).unwrap();
        assert_eq!(b["placement"], json!("least_loaded"));
        assert_eq!(b["prefer"], json!({"labels": {"disk": "ssd", "zone": "a"}}));
        let b = body(&["--prefer", "zone=a", "--", "true"]).unwrap();
        assert_eq!(b, json!({"command": ["true"], "prefer": {"labels": {"zone": "a"}}}));
        // What the CLI builds is what the API accepts.
        let spec = to_spec(b);
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.prefer.unwrap().labels, BTreeMap::from([("zone".to_string(), "a".to_string())]));
    }

    #[test]
    fn concurrency_key_becomes_the_api_field() {
        let b = body(&["--concurrency-key", "db-backup", "--", "pg_dump"]).unwrap();
        assert_eq!(b, json!({"command": ["pg_dump"], "concurrency_key": "db-backup"}));
        assert_eq!(to_spec(b).concurrency_key.as_deref(), Some("db-backup"));
    }

    #[test]
    fn preemptible_flags_become_the_api_field_and_the_last_one_wins() {
        let b = body(&["--preemptible", "--", "true"]).unwrap();
        assert_eq!(b, json!({"command": ["true"], "preemptible": true}));
        assert_eq!(to_spec(b).preemptible, Some(true));
        let b = body(&["--priority", "100", "--no-preemptible", "--", "true"]).unwrap();
        assert_eq!(to_spec(b).preemptible, Some(false));
        let b = body(&["--no-preemptible", "--preemptible", "--", "true"]).unwrap();
        assert_eq!(b["preemptible"], json!(true));
        assert!(body(&["--", "true"]).unwrap().get("preemptible").is_none(), "neither flag: the priority decides");
    }

    #[test]
    fn bad_placement_names_are_refused_with_the_choices() {
        let err = body(&["--placement", "fastest", "--", "true"]).unwrap_err();
        assert!(err.contains("`fastest` is not a strategy") && err.contains("least_loaded"), "{err}");
        assert!(body(&["--placement", "hash:", "--", "true"]).is_err());
        assert!(body(&["--prefer", "zone", "--", "true"]).unwrap_err().contains("not KEY=VALUE"));
    }

    #[test]
    fn submit_examples_build_the_documented_json() {
        assert_eq!(
            body(&["--executor", "sleep", "--", "50"]).unwrap(),
            json!({"command": ["50"], "executor": "sleep"})
        );
        assert_eq!(
            body(&["--prefer", "disk=ssd", "--", "true"]).unwrap(),
            json!({"command": ["true"], "prefer": {"labels": {"disk": "ssd"}}})
        );
        assert_eq!(body(&["--", "echo", "hi"]).unwrap(), json!({"command": ["echo", "hi"]}));
    }

    #[test]
    fn every_executor_is_a_choice_and_only_noop_needs_no_command() {
        for executor in Executor::ALL {
            let b = body(&["--executor", executor.as_str(), "--", "x"]).unwrap();
            assert_eq!(b["executor"], json!(executor.as_str()));
        }
        assert_eq!(body(&["--executor", "noop"]).unwrap(), json!({"executor": "noop"}));
        assert_eq!(to_spec(body(&["--executor", "noop"]).unwrap()).validate(), Ok(()));
        let err = body(&["--executor", "sleep"]).unwrap_err();
        assert!(err.contains("give the command after `--`"), "{err}");
        let err = body(&["--executor", "shell", "--", "true"]).unwrap_err();
        assert!(err.contains("invalid value 'shell'") && err.contains("exec, http, noop, sleep"), "{err}");
        let b = body(&["--executor", "http", "--", "http://127.0.0.1:9/hook", "POST", "{}"]).unwrap();
        let spec = to_spec(b);
        assert_eq!((spec.executor, spec.validate()), (Executor::Http, Ok(())));
    }

    #[test]
    fn resource_failover_dependency_env_and_working_dir_flags_reach_the_spec() {
        let b = body(&[
            "--failover",
            "restart",
            "--cpu",
            "500",
            "--memory",
            "256",
            "--working-dir",
            "out/logs",
            "--depends-on",
            "1,2",
            "--depends-on",
            "7",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--",
            "sh",
            "-c",
            "env",
        ])
        .unwrap();
        assert_eq!(
            b,
            json!({
                "command": ["sh", "-c", "env"],
                "failover": "restart",
                "resources": {"cpu_millis": 500, "memory_mib": 256},
                "working_dir": "out/logs",
                "depends_on": [1, 2, 7],
                "env": {"A": "1", "B": "x=y"},
            })
        );
        let spec = to_spec(b);
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.failover, crate::scheduler::FailoverPolicy::Restart);
        assert_eq!((spec.resources.cpu_millis, spec.resources.memory_mib), (500, 256));
        assert_eq!(spec.depends_on, vec![1, 2, 7]);
        assert_eq!(spec.env.get("B").map(String::as_str), Some("x=y"));

        let err = body(&["--failover", "retry", "--", "true"]).unwrap_err();
        assert!(err.contains("[possible values: resume, restart, fail]"), "{err}");
        assert!(body(&["--depends-on", "1,x", "--", "true"]).unwrap_err().contains("invalid value 'x'"));
        assert!(body(&["--env", "NOVALUE", "--", "true"]).unwrap_err().contains("not KEY=VALUE"));
        // The API refuses what the worker would refuse.
        let refused = to_spec(body(&["--working-dir", "../up", "--", "true"]).unwrap()).validate().unwrap_err();
        assert_eq!(refused.field, "working_dir");
    }

    #[test]
    fn flags_override_the_json_task() {
        let dir = tempfile::TempDir::new().unwrap();
        let file = dir.path().join("task.json");
        std::fs::write(&file, r#"{"command": ["a"], "labels": {"gpu": "1"}, "resources": {"cpu_millis": 100}}"#)
            .unwrap();
        let file = file.to_str().unwrap();
        let b = body(&["--json", file, "--memory", "64", "--label", "gpu=2"]).unwrap();
        assert_eq!(
            b,
            json!({"command": ["a"], "constraints": {"gpu": "2"}, "resources": {"cpu_millis": 100, "memory_mib": 64}})
        );
    }

    /// Each claim of [`HYPHEN_HELP`], checked against the real parser.
    #[test]
    fn the_help_about_leading_dashes_is_true() {
        assert!(help_of("submit").contains(HYPHEN_HELP));
        assert_eq!(body(&["--", "sleep", "-5"]).unwrap()["command"], json!(["sleep", "-5"]));
        assert_eq!(body(&["--executor", "sleep", "--", "50"]).unwrap()["command"], json!(["50"]));
        assert_eq!(body(&["--name", "-x", "--", "true"]).unwrap()["name"], json!("-x"));
        assert_eq!(body(&["--name=-x", "--", "true"]).unwrap()["name"], json!("-x"));
        let err = body(&["--priority", "-5", "--", "true"]).unwrap_err();
        assert!(err.contains("-5 is not in 0..=1000"), "{err}");
        // clap's generic tip (`use '-- -5'`) would be wrong here: after `--` comes the command.
        assert!(!err.contains("tip:"), "{err}");
        for (flag, value) in [("--key", "-k"), ("--working-dir", "-w"), ("--env", "-A=1"), ("--label", "-l=1")] {
            assert!(body(&[flag, value, "--", "true"]).is_ok(), "{flag} {value}");
        }
        let err = body(&["--timeout-ms", "-1", "--", "true"]).unwrap_err();
        assert!(err.contains("invalid value '-1'") && !err.contains("tip:"), "{err}");
        // A stray word is not swallowed silently.
        let err = body(&["--name", "n", "-x"]).unwrap_err();
        assert!(err.contains("unexpected argument '-x'"), "{err}");

        let cancel = TaskCli::try_parse_from(["task", "cancel", "3", "--reason", "-because"]).unwrap();
        assert!(matches!(cancel.cmd, TaskCmd::Cancel { id: 3, reason: Some(r), .. } if r == "-because"));
        let err = TaskCli::try_parse_from(["task", "get", "-1"]).unwrap_err().to_string();
        assert!(err.contains("invalid value '-1'") && !err.contains("tip:"), "{err}");
    }

    #[test]
    fn list_and_wait_help_state_the_server_limits() {
        let list = help_of("list");
        assert!(list.contains(&format!("at most {MAX_LIST_LIMIT} tasks per page")), "{list}");
        assert!(list.contains(&format!("0 means its default page of {DEFAULT_LIST_LIMIT}")), "{list}");
        assert!(list.contains(&format!("[default: {DEFAULT_LIST_LIMIT}]")), "{list}");
        let wait = help_of("wait");
        let (max, default) = (crate::proto::MAX_WAIT.as_secs(), crate::proto::DEFAULT_WAIT.as_secs());
        assert!(wait.contains(&format!("at most {max} s ({default} s when a request names no wait)")), "{wait}");
        let parsed = TaskCli::try_parse_from(["task", "list", "--limit", "0"]).unwrap();
        assert!(matches!(parsed.cmd, TaskCmd::List { limit: 0, .. }));
    }
}
