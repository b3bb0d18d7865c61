//! `taskraft schedule …`: timed triggers.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::Value;
use serde_json::json;

use super::ClientArgs;
use super::Output;
use super::output::escape;
use super::output::print_json;
use super::output::print_table;
use super::task::SubmitArgs;
use crate::proto::schedules::RunPage;
use crate::proto::schedules::ScheduleView;
use crate::scheduler::calendar;
use crate::scheduler::calendar::Calendar;
use crate::scheduler::calendar::Trigger;

const DEFAULTS_HELP: &str = "\
Defaults (what a cron user expects):
  --tz UTC; cron with 6 fields (seconds first) or the usual 5 (seconds = 0), L W # and @daily…
  --catch-up skip: after an outage, only the newest missed fire runs, and only if it is recent
  --overlap forbid: a fire while the previous run is still live is skipped (counted)
  an interval (--every 2s) is aligned to --start, or to the creation time (first run at once)

Examples:
  taskraft schedule create --every 2s -- date
  taskraft schedule create --name nightly --cron '0 0 2 * * *' --workflow nightly.toml
  taskraft schedule create --cron '0 30 2 * * *' --tz Europe/Berlin --overlap forbid -- ./backup.sh
  taskraft schedule create --at 2026-12-24T18:00:00+01:00 --executor http -- http://127.0.0.1:8080/ring";

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCmd {
    /// Create a schedule: `taskraft schedule create --every 2s -- date`.
    #[command(after_help = DEFAULTS_HELP)]
    Create(Box<CreateArgs>),
    /// List schedules.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one schedule: its mark, counters, live runs and next fires.
    Get {
        /// Schedule id.
        id: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop firing until resumed (fires due meanwhile are missed, not caught up).
    Pause {
        /// Schedule id.
        id: u64,
        /// Why; shown by `get`.
        #[arg(long, allow_hyphen_values = true)]
        note: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Fire again.
    Resume {
        /// Schedule id.
        id: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start one run now, outside the calendar.
    Trigger {
        /// Schedule id.
        id: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a schedule's runs (tasks, or workflows for a workflow schedule) in nominal order.
    Runs {
        /// Schedule id.
        id: u64,
        /// Page size (oldest first; the next page starts with --after).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only runs with a nominal time after this (epoch ms: the cursor a page printed).
        #[arg(long)]
        after: Option<u64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a run for every calendar time in [FROM, TO] that has none (at most 1000).
    Backfill {
        /// Schedule id.
        id: u64,
        /// First instant: RFC 3339 or epoch ms.
        #[arg(long)]
        from: String,
        /// Last instant (not in the future): RFC 3339 or epoch ms.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace a schedule's calendar, policies and task (bumps its version; the mark stays).
    #[command(after_help = DEFAULTS_HELP)]
    Update {
        /// Schedule id.
        id: u64,
        #[command(flatten)]
        args: Box<CreateArgs>,
    },
    /// Delete a schedule. Its runs stay; live ones keep running unless --cancel-runs.
    Delete {
        /// Schedule id.
        id: u64,
        /// Also cancel its live runs.
        #[arg(long)]
        cancel_runs: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the fire times of a calendar without creating anything.
    Preview {
        /// Cron expression (or use --every).
        cron: Option<String>,
        /// Interval instead of cron: 500ms, 2s, 5m, 1h or milliseconds.
        #[arg(long, value_parser = parse_every)]
        every: Option<u64>,
        /// IANA time zone.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// From this instant (RFC 3339 or epoch ms; default now).
        #[arg(long)]
        after: Option<String>,
        /// How many fire times.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

/// Options of `schedule create` and `update`: the calendar and policies, then the task as
/// `task submit` takes it (`--name` and `--key` name the schedule; the runs get the name), or
/// `--workflow FILE` instead of a task.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Cron expression: `sec min hour day month weekday`, or 5 fields, or @hourly/@daily/….
    #[arg(long, allow_hyphen_values = true)]
    cron: Option<String>,
    /// Fixed interval: 500ms, 2s, 5m, 1h, or milliseconds.
    #[arg(long, value_parser = parse_every)]
    every: Option<u64>,
    /// One shot at this instant: RFC 3339 or epoch ms.
    #[arg(long)]
    at: Option<String>,
    /// IANA time zone of the cron expression.
    #[arg(long)]
    tz: Option<String>,
    /// No fire before this instant.
    #[arg(long)]
    start: Option<String>,
    /// No fire after this instant.
    #[arg(long)]
    end: Option<String>,
    /// After an outage: skip (newest only, if recent), fire_once (newest in the window), all.
    #[arg(long, value_parser = ["skip", "fire_once", "all"])]
    catch_up: Option<String>,
    /// How far back fire_once and all reach, in ms (default one hour).
    #[arg(long)]
    catch_up_window_ms: Option<u64>,
    /// While a run is live: forbid (skip), allow, replace (cancel it), buffer_one.
    #[arg(long, value_parser = ["allow", "forbid", "replace", "buffer_one"])]
    overlap: Option<String>,
    /// Each fire waits a deterministic 0..=MS after its nominal time.
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    /// Each run is this workflow instead of a task: a JSON or TOML file (`{"name"?, "nodes":
    /// [{"id", "task", "depends"?, …}]}`, as `POST /v1/workflows` takes), `-` for stdin.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    workflow: Option<std::path::PathBuf>,
    #[command(flatten)]
    task: SubmitArgs,
}

/// `2s`, `500ms`, `5m`, `1h`, `1d` or plain milliseconds.
pub fn parse_every(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 500ms, 2s, 5m or 1h"))?;
    let factor = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use ms, s, m, h or d")),
    };
    n.checked_mul(factor).filter(|&ms| ms > 0).ok_or_else(|| format!("`{s}` must be a positive duration"))
}

impl CreateArgs {
    fn body(&self) -> anyhow::Result<Value> {
        let (name, key) = (self.task.name().map(str::to_string), self.task.key().map(str::to_string));
        let mut body = match &self.workflow {
            Some(path) => {
                if self.task.describes_a_task() {
                    bail!("--workflow: the runs are the workflow's; give the task options inside its nodes");
                }
                json!({"workflow": super::spec_file::read_workflow_spec(path)?})
            }
            None => {
                let mut task = self.task.body_without_key()?;
                if let Value::Object(t) = &mut task {
                    t.remove("idempotency_key");
                }
                json!({"task": task})
            }
        };
        let map = body.as_object_mut().expect("object");
        let given = [self.cron.is_some(), self.every.is_some(), self.at.is_some()].iter().filter(|&&b| b).count();
        if given != 1 {
            bail!("give exactly one of --cron, --every or --at");
        }
        let optional = [
            ("name", name.map(|v| json!(v))),
            ("idempotency_key", key.map(|v| json!(v))),
            ("cron", self.cron.as_ref().map(|v| json!(v))),
            ("every_ms", self.every.map(|v| json!(v))),
            ("at", self.at.as_ref().map(|v| json!(v))),
            ("time_zone", self.tz.as_ref().map(|v| json!(v))),
            ("start", self.start.as_ref().map(|v| json!(v))),
            ("end", self.end.as_ref().map(|v| json!(v))),
            ("catch_up", self.catch_up.as_ref().map(|v| json!(v))),
            ("catch_up_window_ms", self.catch_up_window_ms.map(|v| json!(v))),
            ("overlap", self.overlap.as_ref().map(|v| json!(v))),
            ("jitter_ms", self.jitter_ms.map(|v| json!(v))),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                map.insert(k.into(), v);
            }
        }
        if self.paused {
            map.insert("paused".into(), json!(true));
        }
        Ok(body)
    }
}

fn trigger_text(s: &ScheduleView) -> String {
    match (&s.cron, s.every_ms, s.at_ms) {
        (Some(c), _, _) => format!("cron {c}"),
        (_, Some(ms), _) => format!("every {ms}ms"),
        (_, _, Some(at)) => format!("at {}", calendar::rfc3339_utc(at)),
        _ => String::new(),
    }
}

fn print_schedule(s: &ScheduleView) {
    println!("id:          {}", s.id);
    println!("name:        {}", escape(&s.name));
    println!("trigger:     {} ({})", escape(&trigger_text(s)), escape(&s.time_zone));
    println!(
        "policies:    catch_up={} window={}ms overlap={} jitter={}ms",
        s.catch_up.as_str(),
        s.catch_up_window_ms,
        s.overlap.as_str(),
        s.jitter_ms
    );
    match &s.workflow {
        Some(w) => {
            let ids: Vec<&str> = w.nodes.iter().map(|n| n.id.as_str()).collect();
            println!("runs are:    workflows of {} node(s): {}", ids.len(), escape(&ids.join(", ")));
        }
        None => println!("runs are:    tasks"),
    }
    println!("version:     {}", s.version);
    match (&s.paused, &s.pause_note) {
        (true, Some(note)) => println!("paused:      yes ({})", escape(note)),
        (true, None) => println!("paused:      yes"),
        _ => println!("paused:      no"),
    }
    println!("last fired:  {}", s.last_nominal.as_deref().unwrap_or("never"));
    let c = &s.counters;
    println!(
        "counters:    fired={} missed={} skipped={} dropped={} triggered={} backfilled={} replaced={}",
        c.fired, c.missed, c.skipped, c.dropped, c.triggered, c.backfilled, c.replaced
    );
    println!("runs:        {} (live: {:?})", s.runs, s.live_runs);
    for f in &s.next_fires {
        println!("next:        {}  ({})", f.utc, f.local);
    }
}

fn print_schedules(list: &[ScheduleView]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                escape(&s.name),
                escape(&trigger_text(s)),
                s.time_zone.clone(),
                if s.paused { "paused".into() } else { "active".into() },
                s.counters.fired.to_string(),
                s.counters.missed.to_string(),
                s.counters.skipped.to_string(),
                s.next_fires.first().map_or_else(|| "-".into(), |f| f.utc.clone()),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "TRIGGER", "ZONE", "STATE", "FIRED", "MISSED", "SKIPPED", "NEXT"], &rows);
}

/// `task` or `workflow`: what the run ids of `s` name.
fn run_noun(s: &ScheduleView) -> &'static str {
    if s.workflow.is_some() { "workflow" } else { "task" }
}

fn print_runs(page: &RunPage) {
    let rows: Vec<Vec<String>> = page
        .runs
        .iter()
        .map(|r| {
            vec![
                calendar::rfc3339_utc(r.nominal_ms),
                if r.manual { "trigger".into() } else { "calendar".into() },
                format!("{} {}", r.kind.as_str(), r.id),
                r.state.clone(),
                r.finished_ms.map_or_else(|| "-".into(), calendar::rfc3339_utc),
            ]
        })
        .collect();
    print_table(&["NOMINAL", "BY", "RUN", "STATE", "FINISHED"], &rows);
    if let Some(c) = page.next_cursor {
        println!("more: --after {c}");
    }
}

fn show(s: &ScheduleView, output: Output) {
    if output == Output::Json { print_json(s) } else { print_schedule(s) }
}

impl ScheduleCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ScheduleCmd::Create(args) => {
                let body = args.body()?;
                let c = &args.task.client;
                let (s, created) = c.connect()?.create_schedule(body).await?;
                if c.output == Output::Json {
                    print_json(&s);
                } else {
                    let verb = if created { "created" } else { "already exists for this key:" };
                    println!("schedule {} {verb} ({})", s.id, trigger_text(&s));
                    for f in &s.next_fires {
                        println!("next:        {}  ({})", f.utc, f.local);
                    }
                    if s.workflow.is_some() {
                        println!("runs:        taskraft schedule runs {}", s.id);
                    } else {
                        println!("runs:        taskraft task list --schedule {}", s.id);
                    }
                }
            }
            ScheduleCmd::List { client: c } => {
                let list = c.connect()?.list_schedules().await?;
                if c.output == Output::Json { print_json(&list) } else { print_schedules(&list.schedules) }
            }
            ScheduleCmd::Get { id, client: c } => show(&c.connect()?.get_schedule(id).await?, c.output),
            ScheduleCmd::Pause { id, note, client: c } => {
                show(&c.connect()?.pause_schedule(id, note.as_deref()).await?, c.output)
            }
            ScheduleCmd::Resume { id, client: c } => show(&c.connect()?.resume_schedule(id).await?, c.output),
            ScheduleCmd::Trigger { id, client: c } => {
                let r = c.connect()?.trigger_schedule(id).await?;
                if c.output == Output::Json {
                    print_json(&r)
                } else {
                    println!("started {}(s) {:?}", run_noun(&r.schedule), r.started)
                }
            }
            ScheduleCmd::Backfill { id, from, to, client: c } => {
                let r = c.connect()?.backfill_schedule(id, &from, &to).await?;
                if c.output == Output::Json {
                    print_json(&r)
                } else {
                    println!("started {} {}(s): {:?}", r.started.len(), run_noun(&r.schedule), r.started)
                }
            }
            ScheduleCmd::Runs { id, limit, after, client: c } => {
                let page = c.connect()?.schedule_runs(id, limit, after).await?;
                if c.output == Output::Json {
                    print_json(&page);
                } else {
                    print_runs(&page);
                }
            }
            ScheduleCmd::Update { id, args } => {
                let body = args.body()?;
                let c = &args.task.client;
                show(&c.connect()?.update_schedule(id, body).await?, c.output)
            }
            ScheduleCmd::Delete { id, cancel_runs, client: c } => {
                let d = c.connect()?.delete_schedule(id, cancel_runs).await?;
                if c.output == Output::Json {
                    print_json(&d)
                } else {
                    println!("schedule {id} deleted; {}s cancelled: {:?}", run_noun(&d.schedule), d.cancelled)
                }
            }
            ScheduleCmd::Preview { cron, every, tz, after, count, output } => {
                let trigger = match (cron, every) {
                    (Some(expr), None) => Trigger::Cron { expr },
                    (None, Some(every_ms)) => Trigger::Every { every_ms },
                    _ => bail!("give a cron expression or --every"),
                };
                let after = match after {
                    Some(text) => calendar::parse_instant("--after", &text).map_err(|e| anyhow::anyhow!("{e}"))?,
                    None => crate::util::now_ms(),
                };
                let cal = Calendar::new(&trigger, &tz, None, None, after).map_err(|e| anyhow::anyhow!("{e}"))?;
                let fires = cal.next_n(after, count.min(crate::proto::schedules::MAX_PREVIEW));
                if output == Output::Json {
                    print_json(&fires);
                } else {
                    let rows: Vec<Vec<String>> = fires
                        .iter()
                        .map(|&ms| vec![calendar::rfc3339_utc(ms), calendar::rfc3339_in(ms, &tz), ms.to_string()])
                        .collect();
                    print_table(&["UTC", "LOCAL", "EPOCH_MS"], &rows);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Wrap {
        #[command(subcommand)]
        cmd: ScheduleCmd,
    }

    /// The body `schedule ARGS…` would send.
    fn create_body(args: &[&str]) -> anyhow::Result<Value> {
        use clap::Parser as _;
        match Wrap::try_parse_from(std::iter::once("schedule").chain(args.iter().copied()))?.cmd {
            ScheduleCmd::Create(a) => a.body(),
            other => panic!("not a create: {other:?}"),
        }
    }

    #[test]
    fn a_workflow_schedule_reads_its_file_and_takes_no_task_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wf.toml");
        std::fs::write(&path, "[[nodes]]\nid = \"a\"\ntask = { command = [\"true\"] }\n").unwrap();
        let path = path.to_str().unwrap();
        let body = create_body(&["create", "--name", "n", "--key", "k", "--every", "1s", "--workflow", path]).unwrap();
        assert_eq!(
            body,
            json!({"name": "n", "idempotency_key": "k", "every_ms": 1000,
                   "workflow": {"nodes": [{"id": "a", "task": {"command": ["true"]}}]}})
        );
        for extra in [&["--", "date"][..], &["--priority", "5"], &["--executor", "noop"], &["--label", "a=b"]] {
            let mut args = vec!["create", "--every", "1s", "--workflow", path];
            args.extend(extra);
            let err = create_body(&args).unwrap_err().to_string();
            assert!(err.contains("--workflow"), "{extra:?}: {err}");
        }
        // Without --workflow, a task as before.
        let body = create_body(&["create", "--every", "1s", "--", "date"]).unwrap();
        assert_eq!(body["task"]["command"], json!(["date"]));
        assert!(body.get("workflow").is_none());
    }

    #[test]
    fn durations_read_like_a_user_writes_them() {
        assert_eq!(parse_every("2s"), Ok(2000));
        assert_eq!(parse_every("500ms"), Ok(500));
        assert_eq!(parse_every("5m"), Ok(300_000));
        assert_eq!(parse_every("1h"), Ok(3_600_000));
        assert_eq!(parse_every("750"), Ok(750));
        assert!(parse_every("0s").is_err());
        assert!(parse_every("2 weeks").is_err());
        assert!(parse_every("s").is_err());
    }
}
