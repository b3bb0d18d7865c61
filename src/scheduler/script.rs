//! Golden scripts: scheduler behaviour written as a tiny command language, with the printed
//! outcome checked in next to it (`testdata/<name>.script` → `testdata/<name>.expected`).
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files, then review the diff.
//!
//! One line per command; `#` starts a comment. Writes get the next fake log index (printed as
//! `@N`, which is also the fencing token of an `assign` on that line) and a clock of
//! `1000 × N` ms plus whatever `tick` added. After every write the runner prints the tasks and
//! workers that changed, checks the state's invariants, and round-trips the command and
//! response through postcard and JSON.
//!
//! ```text
//! submit name=a cmd="echo hi" priority=7 key=k1 request=r1 max_attempts=3 backoff=1000 preemptible=0
//!        failover=restart deps=1,2 label=zone:a timeout=5000 shard=0/4 env=K:V exec=sleep
//!        prefer=disk:ssd reuse=any          (reuse=any: format 1's rule for reused keys)
//! batch request=r1 | name=a key=k1 | name=b
//! cancel 1 reason="no longer needed" request=r2
//! register w1 slots=2 label=zone:a          drain w1      remove w1      lost w1 [registered=MS]
//! assign 1 w1 2 w2                          start 1 token=5
//! checkpoint 1 token=5 data=abc             complete 1 token=5 outcome=failed exit=1 error=boom result=42
//! done 1 outcome=failed result=42           (complete with the current attempt's token; outcome defaults to succeeded)
//! reports w1 | started 1@5 | ended 2@5 outcome=failed exit=1 error=boom result=42
//! get 1      list state=pending limit=2 after=1      stats      workers      tick 5000      noop
//! ```
//!
//! The leader's worker-facing verdicts (pure functions of the state, `super::verdict`) print
//! what the leader would answer or propose; they change nothing:
//!
//! ```text
//! heartbeat w1 running=1@4,2@4 seen=12       register? w1       expire w1,w2       overdue now=9000 watched=1@4:3000
//! output w1 1@4      (is a chunk of live output kept: store, stop or not yet)
//! deliver 7 max=4096 (the inputs task 7's assignment carries, or why they are refused)
//! ```
//!
//! Placement (a `Planner` lives across the script; `live=` defaults to every registered worker,
//! `now=` to the clock of the next write):
//!
//! ```text
//! submit name=a cpu=500 mem=256 placement=best_fit     (or hash:KEY, sjf, least_loaded, …)
//! planner seed=7 default=round_robin max=2 aging=1000 reasons=10     (a fresh planner)
//! plan live=w1,w2 now=5000       dry run: prints the plan; the planner's memory still moves
//! dispatch live=w1               plans and commits the assignments as one `Assign`
//! explain 3 now=5000             observe name=a ms=300             load
//! ```
//!
//! Preemption (`super::preempt`; rules default to gap=10 min_runtime=10000 cap=3):
//!
//! ```text
//! preemption live=w1,w2 capable=w1 gap=10 min_runtime=5000 cap=3 now=MS   the leader's choice
//! leader-preempt …same options…     chooses, then applies the `Preempt` it would propose
//! preempt 3 victims=1@4,2@4 gap=10 min_runtime=5000 cap=3               a raw `Preempt`
//! heartbeat w1 running=1@4 old=1    (old=1: a worker that does not know the `preempted` order)
//! ```
//!
//! Migration (`super::migrate`; options default to high=0.9 low=0.5 n=3 interval=60000
//! fresh=3000 min_runtime=10000 cap=2):
//!
//! ```text
//! loads w1=0.97/0.2 w2=0.1 now=MS        one heartbeat load report (cpu/mem) per worker
//! migration live=w1,w2 capable=w1 now=MS …options…   the leader's choice
//! leader-migrate …same options…        chooses, then applies the `Migrate` it would propose
//! migrate 1@4 from=w1 to=w2 why=text min_runtime=0 cap=2    a raw `Migrate`
//! heartbeat w1 running=1@4 old=8       (old=8: a worker that knows `preempted`, not `migrated`)
//! ```
//!
//! Workflows (`super::workflow`) and concurrency limits (`super::limit`):
//!
//! ```text
//! wf-submit request=r {"name": …, "nodes": […]}     (the rest of the line is the JSON spec)
//! wf-cancel 1 reason=why     wf 1     wfs after=1 limit=2     inputs 7  (what task 7's worker receives)
//! limit db max=2     limit db max=none (remove)     limits     submit … ckey=db
//! ```
//!
//! Schedules (`super::schedule`; the calendar is `super::calendar`'s):
//!
//! ```text
//! sched-create name=s every=1000 catch_up=all window=60000 overlap=forbid jitter=0 paused=1
//!              key=k request=r start=MS end=MS cron="0 30 2 * * *" tz=Europe/Stockholm at=MS
//!              exec=noop (task fields as in submit, prefixed by nothing)
//! sched-update 1 …same options…     pause 1 note="why"     resume 1     trigger 1 request=r
//! backfill 1 version=1 at=3000,4000 delete 1 cancel_runs=1
//! fire 1 version=1 at=3000,4000 advance=4000 missed=0    (a raw FireSchedule, as a leader proposes it)
//! due 1 [now=MS]       what the leader would propose now (changes nothing)
//! leader-fire 1        plans at the next write's clock and applies what it proposes
//! sched 1              runs 1 after=MS limit=N
//! wf-sched-create name=s every=1000 … {"nodes": […]}    (a workflow schedule: the JSON is its
//!                      workflow; the task template stays empty unless cmd= is given)
//! wf-sched-update 1 … {"nodes": […]}
//! restart              the node restarts from a snapshot (postcard round trip of the state)
//! ```
//!
//! Retention (`super::retention`):
//!
//! ```text
//! forget before=MS keep=N max=N     a `Forget` (keep and max default to unlimited); prints
//!                                   every task and workflow it removed
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::placement::{Load, LoadStreaks, MigrationOptions, choose_migration};
use super::*;

/// Where the scripts live. `file!()` is relative to the workspace root in the real package and
/// absolute when the module is compiled elsewhere through `#[path]`; both end in this directory.
fn testdata_dir() -> PathBuf {
    let here = Path::new(file!());
    let dir = here.parent().expect("script.rs has a parent directory");
    let dir = if dir.is_absolute() { dir.to_path_buf() } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(dir) };
    dir.join("testdata")
}

/// Every `testdata/*.script`, by name, in name order: a new script cannot be skipped.
pub(crate) fn script_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(testdata_dir())
        .expect("read testdata")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "script").then(|| path.file_stem()?.to_str().map(String::from))?
        })
        .collect();
    names.sort();
    names
}

/// Runs `testdata/<name>.script` and compares with (or, under `UPDATE_GOLDEN`, rewrites)
/// `testdata/<name>.expected`. `Err` says what differs.
pub(crate) fn check_golden(name: &str) -> Result<(), String> {
    let dir = testdata_dir();
    let script_path = dir.join(format!("{name}.script"));
    let script =
        std::fs::read_to_string(&script_path).map_err(|e| format!("cannot read {}: {e}", script_path.display()))?;
    let actual = run(&script);
    let expected_path = dir.join(format!("{name}.expected"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &actual).expect("write golden file");
        return Ok(());
    }
    let expected = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("cannot read {} ({e}); run with UPDATE_GOLDEN=1 to create it", expected_path.display()))?;
    if expected != actual {
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        let at = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
        let show =
            |lines: &[&str]| lines.iter().skip(at).take(3).map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n");
        return Err(format!(
            "{name}: differs at line {} (rerun with UPDATE_GOLDEN=1 and review the diff)\n  expected:\n{}\n  actual:\n{}",
            at + 1,
            show(&e),
            show(&a)
        ));
    }
    Ok(())
}

/// Runs a whole script and returns the transcript.
pub(crate) fn run(script: &str) -> String {
    let mut r = Runner {
        state: State::new(StateOptions::default()),
        index: 0,
        extra_ms: 0,
        out: String::new(),
        planner: Planner::new(PlacementOptions::default(), 1),
        streaks: LoadStreaks::default(),
    };
    for (n, line) in script.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            r.out.push_str(line);
            r.out.push('\n');
            continue;
        }
        writeln!(r.out, "> {trimmed}").unwrap();
        if let Err(e) = r.line(trimmed) {
            panic!("script line {}: {e}: {trimmed}", n + 1);
        }
    }
    r.out
}

struct Runner {
    state: State,
    index: u64,
    extra_ms: u64,
    out: String,
    planner: Planner,
    /// The leader's load streaks, for migration.
    streaks: LoadStreaks,
}

/// A parsed line: positional words and `key=value` options (repeatable).
struct Args {
    words: Vec<String>,
    opts: Vec<(String, String)>,
}

impl Args {
    fn parse(tokens: &[String]) -> Args {
        let mut args = Args { words: Vec::new(), opts: Vec::new() };
        for t in tokens {
            match t.split_once('=') {
                Some((k, v)) => args.opts.push((k.to_string(), v.to_string())),
                None => args.words.push(t.clone()),
            }
        }
        args
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.opts.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.opts.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String> {
        self.get(key).map(|v| v.parse().map_err(|_| format!("{key}={v} is not a number"))).transpose()
    }

    fn word<T: std::str::FromStr>(&self, i: usize) -> Result<T, String> {
        let w = self.words.get(i).ok_or(format!("missing argument {i}"))?;
        w.parse().map_err(|_| format!("cannot parse argument {w}"))
    }
}

/// Splits on whitespace, keeping `"quoted parts"` together (quotes removed).
fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    tokens.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quoted {
        return Err("unbalanced quote".into());
    }
    if any {
        tokens.push(cur);
    }
    Ok(tokens)
}

fn pair(v: &str) -> Result<(String, String), String> {
    v.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())).ok_or(format!("{v} is not key:value"))
}

fn spec_from(a: &Args) -> Result<TaskSpec, String> {
    let mut spec = TaskSpec {
        name: a.get("name").unwrap_or("").to_string(),
        command: a.get("cmd").unwrap_or("true").split_whitespace().map(String::from).collect(),
        idempotency_key: a.get("key").map(String::from),
        ..TaskSpec::default()
    };
    if let Some(p) = a.num("priority")? {
        spec.priority = p;
    }
    if let Some(n) = a.num("max_attempts")? {
        spec.retry.max_attempts = n;
    }
    if let Some(ms) = a.num("backoff")? {
        spec.retry.backoff_initial_ms = ms;
    }
    if let Some(ms) = a.num("backoff_max")? {
        spec.retry.backoff_max_ms = ms;
    }
    if let Some(pm) = a.num("multiplier")? {
        spec.retry.backoff_multiplier_permille = pm;
    }
    spec.timeout_ms = a.num("timeout")?;
    spec.failover = match a.get("failover") {
        None | Some("resume") => FailoverPolicy::Resume,
        Some("restart") => FailoverPolicy::Restart,
        Some("fail") => FailoverPolicy::Fail,
        Some(other) => return Err(format!("unknown failover {other}")),
    };
    if let Some(deps) = a.get("deps") {
        spec.depends_on =
            deps.split(',').map(|d| d.parse().map_err(|_| format!("bad dep {d}"))).collect::<Result<_, _>>()?;
    }
    if let Some(shard) = a.get("shard") {
        let (i, n) = shard.split_once('/').ok_or("shard is index/total")?;
        spec.shard =
            Some(Shard { index: i.parse().map_err(|_| "bad shard")?, total: n.parse().map_err(|_| "bad shard")? });
    }
    for l in a.all("label") {
        let (k, v) = pair(l)?;
        spec.constraints.insert(k, v);
    }
    spec.resources.cpu_millis = a.num("cpu")?.unwrap_or(0);
    spec.resources.memory_mib = a.num("mem")?.unwrap_or(0);
    if let Some(p) = a.get("placement") {
        spec.placement = strategy(p)?;
    }
    let prefer = a.all("prefer").map(pair).collect::<Result<BTreeMap<_, _>, _>>()?;
    if !prefer.is_empty() {
        spec.prefer = Some(Box::new(Preferences { labels: prefer }));
    }
    if let Some(e) = a.get("exec") {
        spec.executor = Executor::parse(e).ok_or(format!("unknown executor {e}"))?;
    }
    for e in a.all("env") {
        let (k, v) = pair(e)?;
        spec.env.insert(k, v);
    }
    spec.concurrency_key = a.get("ckey").map(String::from);
    spec.preemptible = a.get("preemptible").map(|v| v == "1");
    Ok(spec)
}

fn reuse(a: &Args) -> Result<Reuse, String> {
    match a.get("reuse") {
        None | Some("same") => Ok(Reuse::SameBody),
        Some("any") => Ok(Reuse::AnyBody),
        Some(other) => Err(format!("unknown reuse {other}")),
    }
}

/// `task@token`, e.g. `1@4`.
fn attempt_id(s: &str) -> Result<AttemptId, String> {
    let (t, k) = s.split_once('@').ok_or(format!("{s} is not task@token"))?;
    Ok(AttemptId::new(
        t.parse().map_err(|_| format!("bad task in {s}"))?,
        k.parse().map_err(|_| format!("bad token in {s}"))?,
    ))
}

fn attempt_ids(list: Option<&str>) -> Result<Vec<AttemptId>, String> {
    list.unwrap_or("").split(',').filter(|s| !s.is_empty()).map(attempt_id).collect()
}

fn outcome(name: &str) -> Result<AttemptOutcome, String> {
    Ok(match name {
        "succeeded" => AttemptOutcome::Succeeded,
        "failed" => AttemptOutcome::Failed,
        "lost" => AttemptOutcome::Lost,
        "timed_out" => AttemptOutcome::TimedOut,
        "cancelled" => AttemptOutcome::Cancelled,
        "preempted" => AttemptOutcome::Preempted,
        "migrated" => AttemptOutcome::Migrated,
        other => return Err(format!("unknown outcome {other}")),
    })
}

/// `started 1@5` or `ended 1@5 outcome=failed exit=1 error=boom output=…`.
fn report(a: &Args) -> Result<AttemptReport, String> {
    let attempt = attempt_id(&a.word::<String>(1)?)?;
    let event = match a.word::<String>(0)?.as_str() {
        "started" => AttemptEvent::Started,
        "ended" => AttemptEvent::Ended {
            outcome: outcome(a.get("outcome").ok_or("outcome= is required")?)?,
            exit_code: a.num("exit")?,
            output_tail: a.get("output").unwrap_or("").to_string(),
            error: a.get("error").map(String::from),
            result: a.get("result").map(|r| ResultData(r.as_bytes().to_vec())),
        },
        other => return Err(format!("unknown report {other}")),
    };
    Ok(AttemptReport { attempt, event })
}

/// ` migration=w1->w2@MS/tTOKEN(stopping|hint)` when the task has a migration mark.
fn migration_suffix(state: &State, t: &Task) -> String {
    let Some(m) = state.migration_of(t.id) else { return String::new() };
    let how = if state.migrate_requested(t).is_some() {
        "(stopping)"
    } else if state.migration_target(t).is_some() {
        "(hint)"
    } else {
        ""
    };
    format!(" migration={}->{}@{}/t{}{how}", m.from, m.to, m.at_ms, m.token)
}

/// `min_runtime=` and `cap=` over the default migration rules.
fn migrate_rules(a: &Args) -> Result<MigrateRules, String> {
    let d = MigrateRules::default();
    Ok(MigrateRules {
        min_runtime_ms: a.num("min_runtime")?.unwrap_or(d.min_runtime_ms),
        max_per_hour: a.num("cap")?.unwrap_or(d.max_per_hour),
    })
}

/// The leader's migration options: `high=`, `low=`, `n=`, `interval=`, `fresh=` and the rules.
fn migration_options(a: &Args) -> Result<MigrationOptions, String> {
    let d = MigrationOptions::default();
    let frac = |key: &str, default: f64| -> Result<f64, String> {
        a.get(key).map_or(Ok(default), |v| v.parse().map_err(|e| format!("{key}: {e}")))
    };
    Ok(MigrationOptions {
        high_water: frac("high", d.high_water)?,
        low_water: frac("low", d.low_water)?,
        heartbeats: a.num("n")?.unwrap_or(d.heartbeats),
        interval_ms: a.num("interval")?.unwrap_or(d.interval_ms),
        fresh_ms: a.num("fresh")?.unwrap_or(d.fresh_ms),
        rules: migrate_rules(a)?,
    })
}

/// `gap=`, `min_runtime=` and `cap=` over the default rules.
fn preempt_rules(a: &Args) -> Result<PreemptRules, String> {
    let d = PreemptRules::default();
    Ok(PreemptRules {
        gap: a.num("gap")?.unwrap_or(d.gap),
        min_runtime_ms: a.num("min_runtime")?.unwrap_or(d.min_runtime_ms),
        max_per_hour: a.num("cap")?.unwrap_or(d.max_per_hour),
    })
}

fn strategy(name: &str) -> Result<PlacementStrategy, String> {
    Ok(match name {
        "priority_fcfs" => PlacementStrategy::PriorityFcfs,
        "sjf" => PlacementStrategy::ShortestJobFirst,
        "least_loaded" => PlacementStrategy::LeastLoaded,
        "best_fit" => PlacementStrategy::BestFit,
        "round_robin" => PlacementStrategy::RoundRobin,
        "weighted_round_robin" => PlacementStrategy::WeightedRoundRobin,
        "random" => PlacementStrategy::Random,
        other => match other.strip_prefix("hash:") {
            Some(key) => PlacementStrategy::ConsistentHash { key: key.to_string() },
            None => return Err(format!("unknown placement {other}")),
        },
    })
}

impl Runner {
    /// The workers listed in `key=w1,w2`, or every registered worker when the key is absent.
    fn workers_in(&self, a: &Args, key: &str) -> BTreeSet<String> {
        match a.get(key) {
            Some(list) => list.split(',').filter(|w| !w.is_empty()).map(String::from).collect(),
            None => self.state.workers().map(|w| w.id.clone()).collect(),
        }
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        if let Some(rest) = line.strip_prefix("wf-submit ") {
            // `wf-submit [request=R] {json}`: the spec is JSON, as a client sends it.
            let at = rest.find('{').ok_or("wf-submit needs a JSON spec")?;
            let head = Args::parse(&tokenize(&rest[..at])?);
            let spec: WorkflowSpec =
                serde_json::from_str(&rest[at..]).map_err(|e| format!("bad workflow JSON: {e}"))?;
            self.index += 1;
            let cmd = Command::SubmitWorkflow {
                request_id: head.get("request").map(String::from),
                now_ms: self.now(),
                spec: Box::new(spec),
            };
            self.write(cmd);
            return Ok(());
        }
        if let Some((verb, rest)) = line.split_once(' ').filter(|(v, _)| v.starts_with("wf-sched-")) {
            // `wf-sched-create [options as sched-create] {json}`: the workflow each run starts as.
            let at = rest.find('{').ok_or("a workflow schedule needs a JSON workflow")?;
            let a = Args::parse(&tokenize(&rest[..at])?);
            let mut spec = schedule_spec(&a)?;
            if a.get("cmd").is_none() {
                spec.task = TaskSpec::default();
            }
            spec.workflow = Some(serde_json::from_str(&rest[at..]).map_err(|e| format!("bad workflow JSON: {e}"))?);
            self.index += 1;
            let (now_ms, spec) = (self.now(), Box::new(spec));
            let cmd = match verb {
                "wf-sched-create" => {
                    let request_id = a.get("request").map(String::from);
                    Command::CreateSchedule { request_id, now_ms, spec, paused: a.get("paused") == Some("1") }
                }
                "wf-sched-update" => Command::UpdateSchedule { now_ms, id: a.word(0)?, spec },
                other => return Err(format!("unknown command {other}")),
            };
            self.write(cmd);
            return Ok(());
        }
        let tokens = tokenize(line)?;
        let (verb, rest) = tokens.split_first().ok_or("empty line")?;
        let a = Args::parse(rest);
        if self.placement_line(verb, &a)? || self.verdict_line(verb, &a)? || self.schedule_line(verb, &a)? {
            return Ok(());
        }
        let query = match verb.as_str() {
            "get" => Some(Query::GetTask { id: a.word(0)? }),
            "list" => Some(Query::ListTasks {
                state: a.get("state").map(|s| TaskState::parse(s).ok_or(format!("unknown state {s}"))).transpose()?,
                after: a.num("after")?,
                limit: a.num("limit")?.unwrap_or(0),
            }),
            "stats" => Some(Query::Stats),
            "wf" => Some(Query::GetWorkflow { id: a.word(0)? }),
            "wfs" => Some(Query::ListWorkflows { after: a.num("after")?, limit: a.num("limit")?.unwrap_or(0) }),
            "limits" => Some(Query::ListLimits),
            "inputs" => {
                let task: TaskId = a.word(0)?;
                let inputs = self.state.inputs_of(task);
                roundtrip(&inputs);
                writeln!(self.out, "inputs of {task}: {}", describe_inputs(&inputs)).unwrap();
                return Ok(());
            }
            "workers" => Some(Query::ListWorkers),
            "tick" => {
                self.extra_ms += a.word::<u64>(0)?;
                return Ok(());
            }
            "restart" => {
                // What a replica restarting from its snapshot holds; the planner starts afresh.
                let bytes = postcard::to_stdvec(&self.state).expect("postcard encode");
                let back: State = postcard::from_bytes(&bytes).expect("postcard decode");
                assert_eq!(back, self.state, "a snapshot round trip changed the state");
                self.state = back;
                self.planner = Planner::new(PlacementOptions::default(), 1);
                writeln!(self.out, "restarted at applied index {}", self.state.last_applied_index()).unwrap();
                return Ok(());
            }
            _ => None,
        };
        if let Some(q) = query {
            let resp = self.state.query(&q);
            roundtrip(&q);
            roundtrip(&resp);
            self.print_query(&resp);
            return Ok(());
        }
        self.index += 1;
        let cmd = self.command(verb, &a, rest)?;
        self.write(cmd);
        Ok(())
    }

    fn now(&self) -> u64 {
        self.index * 1000 + self.extra_ms
    }

    /// The verdict verbs (`super::verdict`): print what the leader would answer or propose and
    /// change nothing. False if `verb` is not one of them.
    fn verdict_line(&mut self, verb: &str, a: &Args) -> Result<bool, String> {
        let next_now = (self.index + 1) * 1000 + self.extra_ms;
        let line = match verb {
            "heartbeat" => {
                let worker: String = a.word(0)?;
                let running = attempt_ids(a.get("running"))?;
                let seen = a.num("seen")?.unwrap_or(0);
                let knows_preempted = a.get("old") != Some("1");
                // old=8: a format-8 worker, which knows `preempted` but not `migrated`.
                let knows_migrated = knows_preempted && a.get("old") != Some("8");
                match verdict::heartbeat(&self.state, &worker, &running, seen, knows_preempted, knows_migrated) {
                    Err(verdict::HeartbeatRefusal::NotRegistered) => "refused not_registered".to_string(),
                    Err(verdict::HeartbeatRefusal::Removed) => "refused worker_removed".to_string(),
                    Ok(v) => {
                        let stop: Vec<String> = v.stop.iter().map(ToString::to_string).collect();
                        let mut line = format!("ok stop=[{}]", stop.join(", "));
                        for o in &v.orphans {
                            let cmd = verdict::orphan_command(&worker, *o, next_now);
                            write!(line, "\n  propose {}", describe_command(&cmd)).unwrap();
                        }
                        line
                    }
                }
            }
            "inbox" => {
                let worker: String = a.word(0)?;
                match verdict::inbox(&self.state, &worker, a.num("after")?.unwrap_or(0)) {
                    Err(verdict::HeartbeatRefusal::NotRegistered) => "refused not_registered".to_string(),
                    Err(verdict::HeartbeatRefusal::Removed) => "refused worker_removed".to_string(),
                    Ok(ids) => {
                        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                        format!("ok assignments=[{}]", ids.join(", "))
                    }
                }
            }
            "deliver" => {
                let task: TaskId = a.word(0)?;
                let max = a.num("max")?.ok_or("deliver needs max=<bytes>")?;
                match verdict::assignment_inputs(&self.state, task, max) {
                    Ok(inputs) => format!("inputs={}", describe_inputs(&inputs)),
                    Err(too_large) => format!("inputs_error: {too_large}"),
                }
            }
            "output" => {
                let worker: String = a.word(0)?;
                let attempt = attempt_id(&a.word::<String>(1)?)?;
                match verdict::output_chunk(&self.state, &worker, attempt) {
                    verdict::OutputVerdict::Store => "store".to_string(),
                    verdict::OutputVerdict::Stop => "stop".to_string(),
                    verdict::OutputVerdict::NotYet => "not yet".to_string(),
                }
            }
            "register?" => match verdict::stale_incarnation(&self.state, &a.word::<String>(0)?, next_now) {
                Some(cmd) => format!("stale incarnation: propose {}", describe_command(&cmd)),
                None => "clean".to_string(),
            },
            "expire" => {
                let mut line = String::from("expired");
                for worker in a.word::<String>(0)?.split(',') {
                    match verdict::expired_lease(&self.state, worker, next_now) {
                        verdict::Expiry::Declare(cmd) => {
                            write!(line, "\n  {worker}: propose {}", describe_command(&cmd)).unwrap()
                        }
                        verdict::Expiry::Forget => write!(line, "\n  {worker}: forget the lease").unwrap(),
                    }
                }
                line
            }
            "overdue" => {
                let now_ms = a.num("now")?.unwrap_or(next_now);
                let min_watch = a.num("min_watch")?.unwrap_or(u64::MAX);
                let mut watched = BTreeMap::new();
                for w in a.all("watched") {
                    let (attempt, ms) = w.split_once(':').ok_or("watched is task@token:ms")?;
                    watched.insert(attempt_id(attempt)?, ms.parse::<u64>().map_err(|_| "bad watched ms")?);
                }
                let found =
                    verdict::overdue(&self.state, now_ms, min_watch, &mut |id| watched.get(&id).copied().unwrap_or(0));
                let mut line = format!("overdue at t={now_ms}: {}", found.len());
                for o in &found {
                    write!(line, "\n  propose {}", describe_command(&o.command(now_ms))).unwrap();
                }
                line
            }
            _ => return Ok(false),
        };
        writeln!(self.out, "{line}").unwrap();
        Ok(true)
    }

    /// The placement verbs; false if `verb` is not one of them.
    fn placement_line(&mut self, verb: &str, a: &Args) -> Result<bool, String> {
        let next_now = (self.index + 1) * 1000 + self.extra_ms;
        match verb {
            "planner" => {
                let mut options = PlacementOptions::default();
                if let Some(d) = a.get("default") {
                    options.default_strategy = strategy(d)?;
                }
                options.max_per_round = a.num("max")?.unwrap_or(options.max_per_round);
                options.aging_ms_per_priority_point = a.num("aging")?.unwrap_or(options.aging_ms_per_priority_point);
                options.max_waiting_reasons = a.num("reasons")?.unwrap_or(options.max_waiting_reasons);
                self.planner = Planner::new(options, a.num("seed")?.unwrap_or(1));
            }
            "plan" | "dispatch" => {
                let live = self.workers_in(a, "live");
                let now_ms = a.num("now")?.unwrap_or(next_now);
                let plan = self.planner.plan(&self.state, &live, now_ms);
                let pairs: Vec<String> = plan.assignments.iter().map(|(t, w)| format!("{t}->{w}")).collect();
                writeln!(
                    self.out,
                    "plan t={now_ms} eligible={} assign=[{}] unexplained={}",
                    plan.eligible,
                    pairs.join(" "),
                    plan.unexplained
                )
                .unwrap();
                for (id, why) in &plan.waiting {
                    writeln!(self.out, "  wait {id}: {why}").unwrap();
                }
                if verb == "dispatch" && !plan.assignments.is_empty() {
                    self.index += 1;
                    let now_ms = a.num("now")?.unwrap_or(self.now());
                    self.write(Command::Assign { now_ms, assignments: plan.assignments });
                }
            }
            "preemption" | "leader-preempt" => {
                let (live, capable) = (self.workers_in(a, "live"), self.workers_in(a, "capable"));
                let now_ms = a.num("now")?.unwrap_or(next_now);
                let rules = preempt_rules(a)?;
                let Some(p) = self.planner.preemption(&self.state, &live, &capable, now_ms, &rules) else {
                    writeln!(self.out, "preemption t={now_ms}: none").unwrap();
                    return Ok(true);
                };
                let victims: Vec<String> = p.victims.iter().map(ToString::to_string).collect();
                writeln!(
                    self.out,
                    "preemption t={now_ms}: task {} on {} victims=[{}]",
                    p.for_task,
                    p.worker,
                    victims.join(" ")
                )
                .unwrap();
                if verb == "leader-preempt" {
                    self.index += 1;
                    self.write(Command::Preempt { now_ms, for_task: p.for_task, victims: p.victims, rules });
                }
            }
            "loads" => {
                // `loads w1=0.97/0.2 w2=0.1` (cpu/mem): one heartbeat report per worker.
                let now_ms = a.num("now")?.unwrap_or(next_now);
                let options = migration_options(a)?;
                for (w, v) in &a.opts {
                    if ["now", "high", "low", "n", "interval", "fresh", "min_runtime", "cap"].contains(&w.as_str()) {
                        continue;
                    }
                    let (cpu, mem) = v.split_once('/').unwrap_or((v, "0"));
                    let parse = |x: &str| x.parse::<f64>().map_err(|e| format!("load of {w}: {e}"));
                    let load = Load { cpu: parse(cpu)?, mem: parse(mem)? };
                    self.streaks.observe(w, load, now_ms, &options);
                }
                let parts: Vec<String> = self
                    .state
                    .workers()
                    .filter_map(|w| self.streaks.get(&w.id).map(|s| (w, s)))
                    .map(|(w, s)| format!("{} hot={} level={:.2}", w.id, s.hot, s.last.level()))
                    .collect();
                writeln!(self.out, "loads t={now_ms}: {}", parts.join(", ")).unwrap();
            }
            "migration" | "leader-migrate" => {
                let (live, capable) = (self.workers_in(a, "live"), self.workers_in(a, "capable"));
                let now_ms = a.num("now")?.unwrap_or(next_now);
                let options = migration_options(a)?;
                let Some(m) = choose_migration(&self.state, &live, &capable, &self.streaks, now_ms, &options) else {
                    writeln!(self.out, "migration t={now_ms}: none").unwrap();
                    return Ok(true);
                };
                writeln!(self.out, "migration t={now_ms}: {} from {} to {} ({})", m.attempt, m.from, m.to, m.why)
                    .unwrap();
                if verb == "leader-migrate" {
                    self.index += 1;
                    let (from, to) = (m.from.clone(), m.to.clone());
                    self.write(Command::Migrate {
                        now_ms,
                        attempt: m.attempt,
                        from: m.from,
                        to: m.to,
                        why: m.why,
                        rules: options.rules,
                    });
                    if self.state.migration_of(m.attempt.task_id).is_some_and(|x| x.token == m.attempt.token) {
                        self.streaks.migrated(&from, &to, now_ms);
                    }
                }
            }
            "explain" => {
                let id: TaskId = a.word(0)?;
                let why = explain_pending(&self.state, id, a.num("now")?.unwrap_or(next_now));
                writeln!(self.out, "{}", why.as_deref().unwrap_or("not waiting")).unwrap();
            }
            "observe" => {
                let ms = a.num("ms")?.ok_or("ms= is required")?;
                self.planner.observe_runtime(a.get("name").unwrap_or(""), ms);
            }
            "load" => {
                for w in self.state.workers() {
                    let live: Vec<TaskId> = self.state.live_tasks_on(&w.id).collect();
                    let (mut cpu, mut mem) = (0u64, 0u64);
                    for t in live.iter().filter_map(|&id| self.state.task(id)) {
                        cpu += u64::from(t.spec.resources.cpu_millis);
                        mem += u64::from(t.spec.resources.memory_mib);
                    }
                    writeln!(
                        self.out,
                        "{} {} slots={}/{} cpu={cpu}/{} mem={mem}/{}",
                        w.id,
                        w.state,
                        live.len(),
                        w.slots,
                        w.cpu_millis,
                        w.memory_mib
                    )
                    .unwrap();
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Schedule reads and the leader's calendar verdict. False if `verb` is not one of them.
    fn schedule_line(&mut self, verb: &str, a: &Args) -> Result<bool, String> {
        let next_now = (self.index + 1) * 1000 + self.extra_ms;
        match verb {
            "sched" => {
                let q = Query::GetSchedule { id: a.word(0)? };
                let resp = self.state.query(&q);
                roundtrip(&q);
                roundtrip(&resp);
                match resp {
                    QueryResponse::Schedule(Some(s)) => {
                        writeln!(self.out, "{}", dump_schedule(&s, &self.state)).unwrap()
                    }
                    _ => writeln!(self.out, "none").unwrap(),
                }
            }
            "runs" => {
                let q =
                    Query::ScheduleRuns { id: a.word(0)?, after: a.num("after")?, limit: a.num("limit")?.unwrap_or(0) };
                let resp = self.state.query(&q);
                roundtrip(&q);
                roundtrip(&resp);
                match &resp {
                    QueryResponse::Schedule(None) => writeln!(self.out, "none").unwrap(),
                    other => self.print_query(other),
                }
            }
            "due" | "leader-fire" => {
                let id: ScheduleId = a.word(0)?;
                let now = a.num("now")?.unwrap_or(next_now);
                let cmd = match self.state.schedule(id) {
                    None => None,
                    Some(s) => {
                        let cal = s.calendar().map_err(|e| e.to_string())?;
                        super::schedule::plan_fire(s, &cal, now)
                    }
                };
                let Some(cmd) = cmd else {
                    writeln!(self.out, "nothing due").unwrap();
                    return Ok(true);
                };
                writeln!(self.out, "propose {}", describe_command(&cmd)).unwrap();
                if verb == "leader-fire" {
                    self.index += 1;
                    let cmd = match cmd {
                        // The leader stamps the clock it planned with.
                        Command::FireSchedule { id, version, nominal, advance_to, missed, .. } => {
                            Command::FireSchedule { now_ms: now, id, version, nominal, advance_to, missed }
                        }
                        other => other,
                    };
                    self.write(cmd);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn command(&self, verb: &str, a: &Args, rest: &[String]) -> Result<Command, String> {
        let now_ms = self.now();
        let token = || a.num::<u64>("token")?.ok_or_else(|| "token= is required".to_string());
        let worker_id = || a.word::<String>(0);
        Ok(match verb {
            "submit" => Command::Submit {
                request_id: a.get("request").map(String::from),
                now_ms,
                spec: spec_from(a)?,
                reuse: reuse(a)?,
            },
            "batch" => {
                let mut groups = rest.split(|t| t == "|");
                let head = Args::parse(groups.next().unwrap_or_default());
                let specs = groups.map(|g| spec_from(&Args::parse(g))).collect::<Result<_, _>>()?;
                Command::SubmitBatch {
                    request_id: head.get("request").map(String::from),
                    now_ms,
                    specs,
                    reuse: reuse(&head)?,
                }
            }
            "cancel" => Command::Cancel {
                request_id: a.get("request").map(String::from),
                now_ms,
                task_id: a.word(0)?,
                reason: a.get("reason").map(String::from),
            },
            "register" => {
                let mut labels = BTreeMap::new();
                for l in a.all("label") {
                    let (k, v) = pair(l)?;
                    labels.insert(k, v);
                }
                let id: String = worker_id()?;
                let worker = WorkerRegistration {
                    api_addr: a.get("addr").map(String::from),
                    host: a.get("host").unwrap_or("").to_string(),
                    pid: a.num("pid")?,
                    id,
                    slots: a.num("slots")?.unwrap_or(1),
                    cpu_millis: a.num("cpu")?.unwrap_or(1000),
                    memory_mib: a.num("mem")?.unwrap_or(1024),
                    labels,
                };
                Command::RegisterWorker { now_ms, worker }
            }
            "assign" => {
                let pairs = a.words.chunks(2).map(|c| match c {
                    [t, w] => t.parse().map(|t| (t, w.clone())).map_err(|_| format!("bad task id {t}")),
                    _ => Err("assign takes task/worker pairs".to_string()),
                });
                Command::Assign { now_ms, assignments: pairs.collect::<Result<_, _>>()? }
            }
            "start" => Command::AttemptStarted { now_ms, task_id: a.word(0)?, token: token()? },
            "checkpoint" => Command::Checkpoint {
                now_ms,
                task_id: a.word(0)?,
                token: token()?,
                data: a.get("data").unwrap_or("").as_bytes().to_vec(),
            },
            "complete" => Command::Complete {
                now_ms,
                task_id: a.word(0)?,
                token: token()?,
                outcome: outcome(a.get("outcome").ok_or("outcome= is required")?)?,
                exit_code: a.num("exit")?,
                output_tail: a.get("output").unwrap_or("").to_string(),
                error: a.get("error").map(String::from),
                result: a.get("result").map(|r| r.as_bytes().to_vec()),
            },
            // `complete` with the current attempt's token, whatever it is: `done 3 outcome=failed`.
            "done" => {
                let task_id: TaskId = a.word(0)?;
                let token = self.state.task(task_id).and_then(|t| t.current_attempt()).map_or(0, |at| at.fencing_token);
                Command::Complete {
                    now_ms,
                    task_id,
                    token,
                    outcome: outcome(a.get("outcome").unwrap_or("succeeded"))?,
                    exit_code: a.num("exit")?,
                    output_tail: String::new(),
                    error: a.get("error").map(String::from),
                    result: a.get("result").map(|r| r.as_bytes().to_vec()),
                }
            }
            "lost" => match a.num("registered")? {
                Some(registered_ms) => {
                    Command::WorkerLostIncarnation { now_ms, worker_id: worker_id()?, registered_ms }
                }
                None => Command::WorkerLost { now_ms, worker_id: worker_id()? },
            },
            "drain" => Command::DrainWorker { now_ms, worker_id: worker_id()? },
            "remove" => Command::RemoveWorker { now_ms, worker_id: worker_id()? },
            "reports" => {
                let mut groups = rest.split(|t| t == "|");
                let head = Args::parse(groups.next().unwrap_or_default());
                let reports = groups.map(|g| report(&Args::parse(g))).collect::<Result<_, _>>()?;
                Command::Reports { now_ms, worker_id: head.word(0)?, reports }
            }
            "noop" => Command::Noop,
            "sched-create" => Command::CreateSchedule {
                request_id: a.get("request").map(String::from),
                now_ms,
                spec: Box::new(schedule_spec(a)?),
                paused: a.get("paused") == Some("1"),
            },
            "sched-update" => Command::UpdateSchedule { now_ms, id: a.word(0)?, spec: Box::new(schedule_spec(a)?) },
            "pause" => Command::PauseSchedule { now_ms, id: a.word(0)?, note: a.get("note").map(String::from) },
            "resume" => Command::ResumeSchedule { now_ms, id: a.word(0)? },
            "trigger" => {
                Command::TriggerSchedule { request_id: a.get("request").map(String::from), now_ms, id: a.word(0)? }
            }
            "backfill" => Command::BackfillSchedule {
                now_ms,
                id: a.word(0)?,
                version: a.num("version")?.unwrap_or(1),
                nominal: times(a.get("at"))?,
            },
            "delete" => {
                Command::DeleteSchedule { now_ms, id: a.word(0)?, cancel_runs: a.get("cancel_runs") == Some("1") }
            }
            "fire" => Command::FireSchedule {
                now_ms: a.num("now")?.unwrap_or(now_ms),
                id: a.word(0)?,
                version: a.num("version")?.unwrap_or(1),
                nominal: times(a.get("at"))?,
                advance_to: a.num("advance")?.unwrap_or(0),
                missed: a.num("missed")?.unwrap_or(0),
            },
            "wf-cancel" => {
                Command::CancelWorkflow { now_ms, id: a.word(0)?, reason: a.get("reason").map(String::from) }
            }
            "forget" => Command::Forget {
                now_ms,
                before_ms: a.num("before")?.unwrap_or(0),
                keep: a.num("keep")?.unwrap_or(u64::MAX),
                max: a.num("max")?.unwrap_or(super::retention::MAX_FORGET_PER_COMMAND),
            },
            "migrate" => Command::Migrate {
                now_ms,
                attempt: attempt_id(&a.word::<String>(0)?)?,
                from: a.get("from").ok_or("from= is required")?.to_string(),
                to: a.get("to").ok_or("to= is required")?.to_string(),
                why: a.get("why").unwrap_or("by hand").to_string(),
                rules: migrate_rules(a)?,
            },
            "preempt" => Command::Preempt {
                now_ms: a.num("now")?.unwrap_or(now_ms),
                for_task: a.word(0)?,
                victims: attempt_ids(a.get("victims"))?,
                rules: preempt_rules(a)?,
            },
            "limit" => Command::SetLimit {
                now_ms,
                key: a.word(0)?,
                max_running: match a.get("max") {
                    None | Some("none") => None,
                    Some(n) => Some(n.parse().map_err(|_| format!("max={n} is not a number"))?),
                },
            },
            other => return Err(format!("unknown command {other}")),
        })
    }

    fn write(&mut self, cmd: Command) {
        roundtrip(&cmd);
        let before_tasks: BTreeMap<TaskId, u64> = self.state.tasks.iter().map(|(&id, t)| (id, t.version)).collect();
        let before_workers = self.state.workers.clone();
        let before_schedules = self.state.schedules.clone();
        let before_workflows: BTreeMap<u64, u64> =
            self.state.workflows.iter().map(|(&id, w)| (id, w.version)).collect();
        // Each step also proves the copy on write snapshots rely on: a copy frozen before the
        // command still encodes to the bytes the state had then.
        let frozen = self.state.freeze();
        let bytes_before = super::format::encode_state(&self.state).expect("encode state");
        let resp = self.state.apply(self.index, cmd);
        roundtrip(&resp);
        if let Err(e) = self.state.check_invariants() {
            panic!("invariant broken after log index {}: {e}", self.index);
        }
        let frozen_bytes = frozen.encode().expect("encode frozen state");
        assert!(frozen_bytes == bytes_before, "log index {} changed a copy frozen before it", self.index);
        write!(self.out, "@{} t={} ", self.index, self.now()).unwrap();
        self.print_response(&resp);
        for (id, task) in &self.state.tasks {
            if before_tasks.get(id) != Some(&task.version) {
                writeln!(self.out, "  {}{}", dump_task(task), migration_suffix(&self.state, task)).unwrap();
            }
        }
        for id in before_tasks.keys().filter(|id| !self.state.tasks.contains_key(id)) {
            writeln!(self.out, "  task {id} forgotten").unwrap();
        }
        for (id, w) in &self.state.workers {
            if before_workers.get(id) != Some(w) {
                writeln!(self.out, "  {}", self.dump_worker(w)).unwrap();
            }
        }
        for (id, sch) in &self.state.schedules {
            if before_schedules.get(id) != Some(sch) {
                writeln!(self.out, "  {}", dump_schedule(sch, &self.state)).unwrap();
            }
        }
        for id in before_schedules.iter().map(|(id, _)| id).filter(|id| !self.state.schedules.contains_key(id)) {
            writeln!(self.out, "  schedule {id} deleted").unwrap();
        }
        for (id, wf) in &self.state.workflows {
            if before_workflows.get(id) != Some(&wf.version) {
                writeln!(self.out, "  {}", dump_workflow(wf)).unwrap();
            }
        }
        for id in before_workflows.keys().filter(|id| !self.state.workflows.contains_key(id)) {
            writeln!(self.out, "  workflow {id} forgotten").unwrap();
        }
    }

    fn print_response(&mut self, resp: &Response) {
        let line = describe(resp);
        writeln!(self.out, "{line}").unwrap();
    }

    fn print_query(&mut self, resp: &QueryResponse) {
        match resp {
            QueryResponse::Task(None) => writeln!(self.out, "none").unwrap(),
            QueryResponse::Task(Some(task)) => {
                writeln!(self.out, "{}{}", dump_task(task), migration_suffix(&self.state, task)).unwrap()
            }
            QueryResponse::Tasks { tasks, next_cursor } => {
                for t in tasks {
                    writeln!(self.out, "{}", dump_task(t)).unwrap();
                }
                match next_cursor {
                    Some(c) => writeln!(self.out, "next_cursor={c}").unwrap(),
                    None => writeln!(self.out, "next_cursor=none").unwrap(),
                }
            }
            QueryResponse::Stats(s) => {
                let counts: Vec<String> =
                    TaskState::ALL.iter().map(|&st| format!("{st}={}", s.counts.get(st))).collect();
                writeln!(
                    self.out,
                    "total={} {} next_id={} applied={} workers={}/{}",
                    s.total,
                    counts.join(" "),
                    s.next_task_id,
                    s.last_applied_index,
                    s.active_workers,
                    s.workers
                )
                .unwrap();
            }
            QueryResponse::Workers { workers } => {
                for w in workers {
                    writeln!(self.out, "{}", self.dump_worker(w)).unwrap();
                }
            }
            QueryResponse::Schedule(s) => match s {
                Some(s) => writeln!(self.out, "{}", dump_schedule(s, &self.state)).unwrap(),
                None => writeln!(self.out, "none").unwrap(),
            },
            QueryResponse::Schedules { schedules } => {
                for s in schedules {
                    writeln!(self.out, "{}", dump_schedule(s, &self.state)).unwrap();
                }
            }
            QueryResponse::Workflow(None) => writeln!(self.out, "none").unwrap(),
            QueryResponse::Workflow(Some(wf)) => {
                writeln!(self.out, "{}", dump_workflow(wf)).unwrap();
                for n in &wf.nodes {
                    if let Some(r) = &n.reason {
                        writeln!(self.out, "  {}: {r}", n.spec.id).unwrap();
                    }
                }
            }
            QueryResponse::Workflows { workflows, next_cursor } => {
                for wf in workflows {
                    writeln!(self.out, "{}", dump_workflow(wf)).unwrap();
                }
                writeln!(self.out, "next_cursor={}", next_cursor.map_or_else(|| "none".to_string(), |c| c.to_string()))
                    .unwrap();
            }
            QueryResponse::Limits { limits } => {
                for l in limits {
                    let max = l.max_running.map_or_else(|| "none".to_string(), |m| m.to_string());
                    writeln!(self.out, "limit {} max={max} running={:?}", l.key, l.running).unwrap();
                }
            }
        }
    }

    fn dump_worker(&self, w: &WorkerInfo) -> String {
        let live: Vec<String> = self.state.live_tasks_on(&w.id).map(|id| id.to_string()).collect();
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!(
            "worker {} {} slots={} labels=[{}] live=[{}] registered={}",
            w.id,
            w.state,
            w.slots,
            labels.join(" "),
            live.join(" "),
            w.registered_ms
        )
    }
}

fn dump_status(s: &TaskStatus) -> String {
    format!(
        "task={} state={} v{} attempt={} token={} cancel_requested={}",
        s.id,
        s.state,
        s.version,
        s.attempt,
        s.token.map_or_else(|| "-".to_string(), |t| t.to_string()),
        s.cancel_requested
    )
}

/// One deterministic line per task: everything a reviewer needs, nothing that is noise.
fn dump_task(t: &Task) -> String {
    let mut s = format!("task {} v{} {}", t.id, t.version, t.state);
    if !t.spec.name.is_empty() {
        write!(s, " name={}", t.spec.name).unwrap();
    }
    if t.spec.priority != DEFAULT_PRIORITY {
        write!(s, " prio={}", t.spec.priority).unwrap();
    }
    if let Some(k) = &t.spec.idempotency_key {
        write!(s, " key={k}").unwrap();
    }
    if !t.spec.constraints.is_empty() {
        let labels: Vec<String> = t.spec.constraints.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        write!(s, " needs=[{}]", labels.join(" ")).unwrap();
    }
    if !t.spec.depends_on.is_empty() {
        write!(s, " deps={:?}", t.spec.depends_on).unwrap();
    }
    let r = t.spec.resources;
    if r != Resources::default() {
        write!(s, " res={}m/{}Mi", r.cpu_millis, r.memory_mib).unwrap();
    }
    if t.spec.placement != PlacementStrategy::default() {
        write!(s, " placement={:?}", t.spec.placement).unwrap();
    }
    if let Some(p) = &t.spec.prefer {
        let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        write!(s, " prefer=[{}]", labels.join(" ")).unwrap();
    }
    if t.spec.executor != Executor::Exec {
        write!(s, " executor={}", t.spec.executor.as_str()).unwrap();
    }
    if let TaskOrigin::Workflow { workflow, node } = t.spec.origin {
        write!(s, " wf={workflow}/{node}").unwrap();
        if let Some(sh) = t.spec.shard {
            write!(s, " shard={}/{}", sh.index, sh.total).unwrap();
        }
    }
    if let Some(k) = &t.spec.concurrency_key {
        write!(s, " ckey={k}").unwrap();
    }
    if let Some(p) = t.spec.preemptible {
        write!(s, " preemptible={p}").unwrap();
    }
    if let TaskOrigin::Schedule { schedule, nominal_ms, manual } = t.spec.origin {
        write!(s, " run={schedule}@{nominal_ms}{}", if manual { "(manual)" } else { "" }).unwrap();
    }
    if !t.attempts.is_empty() {
        let parts: Vec<String> = t
            .attempts
            .iter()
            .map(|a| {
                let how = a.outcome.map_or(if a.started_ms.is_some() { "running" } else { "live" }, |o| o.as_str());
                let mut part = format!("#{}@{}/t{}:{how}", a.number, a.worker_id, a.fencing_token);
                if matches!(a.outcome, Some(AttemptOutcome::Preempted | AttemptOutcome::Migrated)) {
                    write!(part, "({})", a.error.as_deref().unwrap_or("")).unwrap();
                }
                part
            })
            .collect();
        write!(s, " attempts=[{}]", parts.join(" ")).unwrap();
    }
    if let Some(c) = &t.checkpoint {
        write!(s, " ckpt={}@#{}/t{}", String::from_utf8_lossy(&c.data), c.attempt, c.token).unwrap();
    }
    if let Some(r) = &t.result {
        write!(s, " result={:?}@#{}/t{}", String::from_utf8_lossy(&r.data), r.attempt, r.token).unwrap();
    }
    if let Some(m) = &t.preempted_by {
        write!(s, " preempted_by={}@{}/t{}", m.by, m.at_ms, m.token).unwrap();
        if t.preempt_requested().is_some() {
            s.push_str("(stopping)");
        }
    }
    if !t.preempted.is_empty() {
        let v: Vec<String> = t.preempted.iter().map(ToString::to_string).collect();
        write!(s, " preempted=[{}]", v.join(" ")).unwrap();
    }
    if t.cancel_requested {
        s.push_str(" cancel_requested");
    }
    if let Some(r) = &t.cancel_reason {
        write!(s, " reason={r:?}").unwrap();
    }
    if let Some(at) = t.retry_at_ms {
        write!(s, " retry_at={at}").unwrap();
    }
    if let Some(e) = &t.last_error {
        write!(s, " err={e:?}").unwrap();
    }
    s
}

/// Every value must survive both wire formats unchanged.
pub(crate) fn roundtrip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = postcard::to_stdvec(value).expect("postcard encode");
    let back: T = postcard::from_bytes(&bytes).expect("postcard decode");
    assert_eq!(&back, value, "postcard round trip changed the value");
    let json = serde_json::to_string(value).expect("json encode");
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("json decode {json}: {e}"));
    assert_eq!(&back, value, "json round trip changed the value");
}

/// One line describing a command a verdict proposes.
fn describe_command(cmd: &Command) -> String {
    match cmd {
        Command::Complete { task_id, token, outcome, error, .. } => {
            format!("complete {task_id}@{token} {} error={:?}", outcome.as_str(), error.as_deref().unwrap_or(""))
        }
        Command::WorkerLostIncarnation { worker_id, registered_ms, .. } => {
            format!("lost {worker_id} registered={registered_ms}")
        }
        Command::FireSchedule { now_ms, id, version, nominal, advance_to, missed } => {
            format!("fire {id} version={version} at={nominal:?} advance={advance_to} missed={missed} now={now_ms}")
        }
        other => format!("{other:?}"),
    }
}

/// One line describing a response (recursive for `Many`).
fn describe(resp: &Response) -> String {
    match resp {
        Response::Submitted { tasks } => {
            let parts: Vec<String> = tasks
                .iter()
                .map(|s| format!("{}({})", s.task.id, if s.created { "created" } else { "existing" }))
                .collect();
            format!("ok submitted {}", parts.join(" "))
        }
        Response::Cancelled { task } => {
            format!("ok cancel task={} state={} cancel_requested={}", task.id, task.state, task.cancel_requested)
        }
        Response::Worker { worker, affected } => {
            let parts: Vec<String> = affected.iter().map(|s| format!("{}:{}", s.id, s.state)).collect();
            format!("ok worker {} {} affected=[{}]", worker.id, worker.state, parts.join(" "))
        }
        Response::Assigned { results } => {
            let mut s = String::from("ok assign");
            for r in results {
                match &r.outcome {
                    AssignOutcome::Assigned { attempt, token, .. } => {
                        write!(s, "\n  {}->{} attempt={attempt} token={token}", r.task_id, r.worker_id).unwrap()
                    }
                    AssignOutcome::Rejected(rej) => {
                        write!(s, "\n  {}->{} rejected {rej}", r.task_id, r.worker_id).unwrap()
                    }
                }
            }
            s
        }
        Response::AttemptStarted { status } => format!("ok started {}", dump_status(status)),
        Response::CheckpointSaved { status } => {
            format!("ok checkpoint {}", dump_status(status))
        }
        Response::Completed { task } => {
            format!("ok completed task={} state={}", task.id, task.state)
        }
        Response::Noop => "ok noop".to_string(),
        Response::Migrating { attempt, mark } => {
            format!("ok migrating {attempt} {}->{} ({})", mark.from, mark.to, mark.why)
        }
        Response::Preempted { marked, skipped } => {
            let marked: Vec<String> = marked.iter().map(ToString::to_string).collect();
            let mut s = format!("ok preempt marked=[{}]", marked.join(" "));
            for (v, why) in skipped {
                write!(s, "\n  skipped {v}: {why}").unwrap();
            }
            s
        }
        Response::Token { token, created } => {
            format!("ok token {} {} created={created}", token.name, token.role)
        }
        Response::TokenRevoked { token } => format!("ok revoked token {}", token.name),
        Response::Rejected(rej) => format!("rejected {rej}"),
        Response::Many { responses } => {
            format!("ok many [{}]", responses.iter().map(describe).collect::<Vec<_>>().join("; "))
        }
        Response::Reports { results } => {
            let mut s = String::from("ok reports");
            for r in results {
                write!(s, "\n  {}", describe(r)).unwrap();
            }
            s
        }
        Response::Schedule { schedule, created, started } => {
            let what = if *created { "created" } else { "ok" };
            format!("ok schedule {} {what} started={started:?}", schedule.id)
        }
        Response::ScheduleDeleted { schedule, cancelled } => {
            format!("ok deleted schedule {} cancelled={cancelled:?}", schedule.id)
        }
        Response::Workflow { workflow, created } => {
            let what = if *created { "created" } else { "ok" };
            format!("ok workflow {} {what} {}", workflow.id, workflow.state.as_str())
        }
        Response::Limit { limit } => {
            let max = limit.max_running.map_or_else(|| "none".to_string(), |m| m.to_string());
            format!("ok limit {} max={max} running={:?}", limit.key, limit.running)
        }
        Response::Forgot { tasks, workflows, more } => {
            format!("ok forgot tasks={tasks} workflows={workflows}{}", if *more { " more" } else { "" })
        }
    }
}

/// `[a="A" m/0="m0"]`: parent results as a child receives them.
fn describe_inputs(inputs: &[workflow::TaskInput]) -> String {
    let parts: Vec<String> = inputs
        .iter()
        .map(|i| {
            let at = i.shard.map_or_else(String::new, |s| format!("/{s}"));
            format!("{}{at}={:?}", i.node, String::from_utf8_lossy(&i.data.0))
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

/// One deterministic line per workflow: each node's state and tasks.
fn dump_workflow(wf: &Workflow) -> String {
    let nodes: Vec<String> = wf
        .nodes
        .iter()
        .map(|n| {
            let mut s = format!("{}:{}", n.spec.id, n.state.as_str());
            if !n.tasks.is_empty() {
                let ids: Vec<String> = n.tasks.iter().map(ToString::to_string).collect();
                write!(s, "({})", ids.join(",")).unwrap();
            }
            if n.spec.shards.is_some() {
                write!(s, "[{}ok/{}ended/{}]", n.succeeded(), n.ended.len(), n.shard_count()).unwrap();
            }
            s
        })
        .collect();
    let mut out = format!("workflow {} v{} {} nodes=[{}]", wf.id, wf.version, wf.state.as_str(), nodes.join(" "));
    if let super::workflow::WorkflowOrigin::Schedule { schedule, nominal_ms, manual } = wf.origin {
        write!(out, " run={schedule}@{nominal_ms}{}", if manual { "(manual)" } else { "" }).unwrap();
    }
    out
}

/// One deterministic line per schedule, with its runs.
fn dump_schedule(s: &Schedule, state: &State) -> String {
    let runs = state.schedule_runs.get(&s.id);
    let c = &s.counters;
    let list = |m: &imbl::OrdMap<u64, TaskId>| m.iter().map(|(n, t)| format!("{n}:{t}")).collect::<Vec<_>>();
    let mut out = format!(
        "schedule {} v{}{} mark={} fired={} missed={} skipped={} dropped={} triggered={} backfilled={} replaced={} \
         live={:?}",
        s.id,
        s.version,
        if s.spec.workflow.is_some() { " workflows" } else { "" },
        s.last_nominal_ms.map_or_else(|| "none".to_string(), |m| m.to_string()),
        c.fired,
        c.missed,
        c.skipped,
        c.dropped,
        c.triggered,
        c.backfilled,
        c.replaced,
        s.live,
    );
    if let Some(r) = runs {
        write!(out, " runs={:?}", list(&r.calendar)).unwrap();
        if !r.manual.is_empty() {
            write!(out, " manual={:?}", list(&r.manual)).unwrap();
        }
    }
    let forgotten = state.forgotten_runs(s.id);
    if forgotten.count > 0 {
        let through = forgotten.calendar_through_ms.map_or_else(|| "none".to_string(), |t| t.to_string());
        write!(out, " forgotten={} through={through}", forgotten.count).unwrap();
    }
    if let Some(b) = s.buffered {
        write!(out, " buffered={b}").unwrap();
    }
    if let Some(p) = &s.paused {
        write!(out, " paused({})", p.note.as_deref().unwrap_or("")).unwrap();
    }
    if let Some(r) = s.resumed_ms {
        write!(out, " resumed={r}").unwrap();
    }
    out
}

/// `3000,4000` → nominal times.
fn times(list: Option<&str>) -> Result<Vec<u64>, String> {
    list.unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().map_err(|_| format!("bad time {t}")))
        .collect()
}

fn schedule_spec(a: &Args) -> Result<ScheduleSpec, String> {
    use super::calendar::{CatchUp, Trigger};
    let trigger = match (a.get("cron"), a.num::<u64>("every")?, a.num::<u64>("at")?) {
        (Some(expr), None, None) => Trigger::Cron { expr: expr.to_string() },
        (None, Some(every_ms), None) => Trigger::Every { every_ms },
        (None, None, Some(at_ms)) => Trigger::At { at_ms },
        _ => return Err("give one of cron=, every=, at=".into()),
    };
    let mut task = spec_from(a)?;
    task.idempotency_key = None;
    task.name = a.get("task_name").unwrap_or("").to_string();
    Ok(ScheduleSpec {
        name: a.get("name").unwrap_or("").to_string(),
        trigger,
        time_zone: a.get("tz").unwrap_or("UTC").to_string(),
        start_ms: a.num("start")?,
        end_ms: a.num("end")?,
        catch_up: match a.get("catch_up") {
            None | Some("skip") => CatchUp::Skip,
            Some("fire_once") => CatchUp::FireOnce,
            Some("all") => CatchUp::All,
            Some(other) => return Err(format!("unknown catch_up {other}")),
        },
        catch_up_window_ms: a.num("window")?.unwrap_or(3_600_000),
        overlap: match a.get("overlap") {
            None | Some("forbid") => Overlap::Forbid,
            Some("allow") => Overlap::Allow,
            Some("replace") => Overlap::Replace,
            Some("buffer_one") => Overlap::BufferOne,
            Some(other) => return Err(format!("unknown overlap {other}")),
        },
        jitter_ms: a.num("jitter")?.unwrap_or(0),
        idempotency_key: a.get("key").map(String::from),
        task,
        workflow: None,
    })
}
