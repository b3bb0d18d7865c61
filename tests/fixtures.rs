//! The promise that a user's data dir survives an upgrade.
//!
//! `tests/fixtures/vN/` holds what the release with format N wrote: every log entry exactly as
//! the log store keeps it (`log/NNNN-<command>.bin`), the snapshot file the state machine built
//! after applying them (`snapshot.bin`), and a readable dump of that state (`state.json`).
//! `v1/` was written by the first release's code (commit a883028); `v2/` by the release that
//! made formats versioned (commit 42a80f8); `v3/` (schedules) by commit 22e948e; `v4/` (API
//! tokens) by commit 94614ec; `v5/` (task results) by commit 0b14ebb; `v6/` (workflows and
//! concurrency limits) by commit f4cab0b; `v7/` (retention) by commit fb5ee0a; `v8/`
//! (preemption) by commit 354c322; `v9/` (migration) by this one.
//!
//! The tests read every version through the real paths (a sled log store with the upgrade hook,
//! the state machine opening a snapshot directory) and check the content. The newest version's
//! files must also equal what today's code writes, byte for byte: a change to a persisted type
//! that forgets to bump its format fails here. After a deliberate format change, freeze the
//! old shapes (see `src/scheduler/format/mod.rs`) and write the new version's fixtures with
//! `TASKRAFT_WRITE_FIXTURES=1 cargo test --test fixtures`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;

use openraft::Membership;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::RaftTypeConfig;
use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use taskraft::node::LogId;
use taskraft::node::Member;
use taskraft::node::StateMachine;
use taskraft::node::TypeConfig;
use taskraft::node::upgrade_entry;
use taskraft::scheduler::ApiToken;
use taskraft::scheduler::AttemptEvent;
use taskraft::scheduler::AttemptId;
use taskraft::scheduler::AttemptOutcome;
use taskraft::scheduler::AttemptReport;
use taskraft::scheduler::Command;
use taskraft::scheduler::Executor;
use taskraft::scheduler::FailoverPolicy;
use taskraft::scheduler::MigrateRules;
use taskraft::scheduler::Overlap;
use taskraft::scheduler::PlacementStrategy;
use taskraft::scheduler::PreemptRules;
use taskraft::scheduler::Preferences;
use taskraft::scheduler::Resources;
use taskraft::scheduler::ResultData;
use taskraft::scheduler::RetryPolicy;
use taskraft::scheduler::Reuse;
use taskraft::scheduler::Role;
use taskraft::scheduler::ScheduleSpec;
use taskraft::scheduler::Shard;
use taskraft::scheduler::State;
use taskraft::scheduler::TaskOrigin;
use taskraft::scheduler::TaskSpec;
use taskraft::scheduler::TaskState;
use taskraft::scheduler::WorkerRegistration;
use taskraft::scheduler::WorkerState;
use taskraft::scheduler::calendar::CatchUp;
use taskraft::scheduler::calendar::Trigger;
use taskraft::scheduler::format::LogCommand;
use taskraft::scheduler::workflow::{EdgeOn, EdgeSpec, NodeRule, NodeSpec, ShardSuccess, ShardsSpec};
use taskraft::scheduler::{WorkflowSpec, WorkflowState};
use taskraft_storage::Engine;
use taskraft_storage::LogStore;
use taskraft_storage::SledEngine;
use taskraft_storage::SnapshotStore;
use taskraft_storage::Tree;

/// The format this build writes; its fixtures must match today's bytes.
const CURRENT: &str = "v9";

type Entry = <TypeConfig as RaftTypeConfig>::Entry;

const T0: u64 = 1_700_000_000_000;

fn now(index: u64) -> u64 {
    T0 + index * 1000
}

fn spec(name: &str, command: &[&str]) -> TaskSpec {
    TaskSpec { name: name.into(), command: command.iter().map(|s| s.to_string()).collect(), ..TaskSpec::default() }
}

fn run(executor: Executor, name: &str, args: &[&str]) -> TaskSpec {
    TaskSpec { executor, ..spec(name, args) }
}

fn worker(id: &str, slots: u32, labels: &[(&str, &str)]) -> WorkerRegistration {
    WorkerRegistration {
        id: id.into(),
        api_addr: None,
        host: "fixture-host".into(),
        pid: Some(4242),
        slots,
        cpu_millis: 2000,
        memory_mib: 4096,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// The commands of the fixture log, from index 3 on (1 is a membership entry, 2 a blank one).
/// Together they use every `Command` variant and leave tasks in every state, workers in every
/// state, checkpoints, idempotency keys, request ids, dependents and a removed member. Entries
/// 3 to 23 are format 1's log with today's fields; 24 adds what format 2 introduced.
fn commands() -> Vec<Command> {
    let full = TaskSpec {
        name: "full".into(),
        executor: Executor::Exec,
        command: vec!["sh".into(), "-c".into(), "echo $GREETING".into()],
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        working_dir: Some("/tmp".into()),
        priority: 700,
        resources: Resources { cpu_millis: 500, memory_mib: 256 },
        constraints: BTreeMap::from([("zone".into(), "a".into())]),
        placement: PlacementStrategy::LeastLoaded,
        prefer: Some(Box::new(Preferences { labels: BTreeMap::from([("disk".into(), "ssd".into())]) })),
        timeout_ms: Some(60_000),
        retry: RetryPolicy {
            max_attempts: 3,
            backoff_initial_ms: 500,
            backoff_multiplier_permille: 1500,
            backoff_max_ms: 10_000,
        },
        failover: FailoverPolicy::Restart,
        idempotency_key: Some("key-full".into()),
        shard: Some(Shard { index: 0, total: 2 }),
        depends_on: vec![],
        origin: TaskOrigin::Claimed { schedule_id: "nightly".into(), nominal_time_ms: T0 },
        concurrency_key: None,
        preemptible: None,
    };
    let retrying =
        TaskSpec { retry: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() }, ..spec("retrying", &["false"]) };
    let hashed = TaskSpec {
        placement: PlacementStrategy::ConsistentHash { key: "tenant-7".into() },
        ..run(Executor::Noop, "hashed", &[])
    };
    let i = |n: u64| now(n);
    vec![
        // 3, 4, 5, 6
        Command::RegisterWorker { now_ms: i(3), worker: worker("w1", 8, &[("zone", "a"), ("disk", "ssd")]) },
        Command::RegisterWorker { now_ms: i(4), worker: worker("w2", 2, &[]) },
        Command::RegisterWorker { now_ms: i(5), worker: worker("w3", 1, &[]) },
        Command::RegisterWorker { now_ms: i(6), worker: worker("w4", 1, &[]) },
        // 7: task 1
        Command::Submit { request_id: Some("client-a:1".into()), now_ms: i(7), spec: full, reuse: Reuse::SameBody },
        // 8: tasks 2..=7
        Command::SubmitBatch {
            request_id: Some("client-a:2".into()),
            now_ms: i(8),
            specs: vec![
                run(Executor::Sleep, "sleeper", &["50"]),
                retrying,
                run(Executor::Http, "caller", &["http://127.0.0.1:9/hook", "POST", "{}"]),
                spec("to-cancel", &["sleep", "100"]),
                hashed,
                spec("orphan", &["sleep", "100"]),
            ],
            reuse: Reuse::SameBody,
        },
        // 9: task 8, blocked on task 2
        Command::Submit {
            request_id: None,
            now_ms: i(9),
            spec: TaskSpec { depends_on: vec![2], ..spec("child", &["true"]) },
            reuse: Reuse::SameBody,
        },
        // 10: task 5 cancelled while pending
        Command::Cancel {
            request_id: Some("client-a:3".into()),
            now_ms: i(10),
            task_id: 5,
            reason: Some("not needed".into()),
        },
        // 11: attempts with token 11 (the pair for the cancelled task 5 is refused)
        Command::Assign {
            now_ms: i(11),
            assignments: vec![
                (1, "w1".into()),
                (2, "w1".into()),
                (3, "w2".into()),
                (4, "w2".into()),
                (6, "w1".into()),
                (7, "w3".into()),
                (5, "w1".into()),
            ],
        },
        // 12..=16
        Command::AttemptStarted { now_ms: i(12), task_id: 1, token: 11 },
        Command::Checkpoint { now_ms: i(13), task_id: 1, token: 11, data: b"step-1\n".to_vec() },
        // task 2 succeeds, which releases task 8
        Command::Complete {
            now_ms: i(14),
            task_id: 2,
            token: 11,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            output_tail: "slept\n".into(),
            error: None,
            result: None,
        },
        // task 3 fails and waits to retry
        Command::Complete {
            now_ms: i(15),
            task_id: 3,
            token: 11,
            outcome: AttemptOutcome::Failed,
            exit_code: Some(1),
            output_tail: String::new(),
            error: Some("exit code 1".into()),
            result: None,
        },
        // task 4 times out and fails for good
        Command::Complete {
            now_ms: i(16),
            task_id: 4,
            token: 11,
            outcome: AttemptOutcome::TimedOut,
            exit_code: None,
            output_tail: String::new(),
            error: Some("timed out after 60000 ms (enforced by the leader)".into()),
            result: None,
        },
        // 17: w3 is lost with task 7 live on it: task 7 is pending again with a lost attempt
        Command::WorkerLost { now_ms: i(17), worker_id: "w3".into() },
        // 18: task 9, blocked on the running task 1, and a cancel request for the assigned task 6
        Command::Many {
            commands: vec![
                Command::Submit {
                    request_id: Some("client-b:1".into()),
                    now_ms: i(18),
                    spec: TaskSpec { depends_on: vec![1], ..spec("waits-for-full", &["true"]) },
                    reuse: Reuse::SameBody,
                },
                Command::Cancel { request_id: None, now_ms: i(18), task_id: 6, reason: None },
            ],
        },
        // 19..=23
        Command::DrainWorker { now_ms: i(19), worker_id: "w4".into() },
        Command::RemoveWorker { now_ms: i(20), worker_id: "w2".into() },
        Command::WorkerLostIncarnation { now_ms: i(21), worker_id: "w3".into(), registered_ms: now(5) },
        Command::MemberRemoved { now_ms: i(22), node_id: 4 },
        Command::Noop,
        // 24 (format 2): a report batch, refused item by item (a duplicate start, a lost token)
        Command::Reports {
            now_ms: i(24),
            worker_id: "w1".into(),
            reports: vec![
                AttemptReport { attempt: AttemptId::new(1, 11), event: AttemptEvent::Started },
                AttemptReport {
                    attempt: AttemptId::new(7, 11),
                    event: AttemptEvent::Ended {
                        outcome: AttemptOutcome::Succeeded,
                        exit_code: Some(0),
                        output_tail: String::new(),
                        error: None,
                        result: None,
                    },
                },
            ],
        },
        // 25… (format 3): schedules, every schedule command once.
        Command::CreateSchedule {
            request_id: Some("c1:25".into()),
            now_ms: i(25),
            spec: Box::new(schedule_spec("every-second", Trigger::Every { every_ms: 1000 }, Overlap::Forbid)),
            paused: false,
        },
        Command::CreateSchedule {
            request_id: None,
            now_ms: i(26),
            spec: Box::new(ScheduleSpec {
                time_zone: "Europe/Stockholm".into(),
                idempotency_key: Some("nightly".into()),
                catch_up: CatchUp::FireOnce,
                jitter_ms: 500,
                ..schedule_spec("nightly", Trigger::Cron { expr: "0 30 2 * * *".into() }, Overlap::BufferOne)
            }),
            paused: true,
        },
        // Two nominal times while the first run is live: the second is skipped (forbid).
        Command::FireSchedule {
            now_ms: i(27),
            id: 1,
            version: 1,
            nominal: vec![i(25), i(26)],
            advance_to: i(26),
            missed: 1,
        },
        Command::TriggerSchedule { request_id: Some("c1:28".into()), now_ms: i(28), id: 1 },
        Command::BackfillSchedule { now_ms: i(29), id: 1, version: 1, nominal: vec![i(20)] },
        Command::PauseSchedule { now_ms: i(30), id: 1, note: Some("maintenance".into()) },
        Command::ResumeSchedule { now_ms: i(31), id: 1 },
        Command::UpdateSchedule {
            now_ms: i(32),
            id: 2,
            spec: Box::new(ScheduleSpec {
                idempotency_key: Some("nightly".into()),
                ..schedule_spec("nightly", Trigger::At { at_ms: i(100) }, Overlap::Replace)
            }),
        },
        Command::DeleteSchedule { now_ms: i(33), id: 2, cancel_runs: true },
        // 34… (format 4): API tokens, and a checkpoint sent with another worker's token.
        Command::CreateToken {
            now_ms: i(34),
            token: api_token("00000000000000a1", "bootstrap-admin", Role::Admin, None),
        },
        Command::CreateToken {
            now_ms: i(35),
            token: api_token("00000000000000b2", "worker-w1", Role::Worker, Some("w1")),
        },
        Command::CreateToken { now_ms: i(36), token: api_token("00000000000000c3", "ci", Role::Submitter, None) },
        Command::RevokeToken { now_ms: i(37), key_or_name: "ci".into() },
        Command::WorkerCheckpoint { now_ms: i(38), worker_id: "w2".into(), task_id: 1, token: 11, data: b"x".to_vec() },
        // 39… (format 5): task results. Task 13 answers "42\n" in a report; a stale report
        // with a result is refused; task 14 answers bytes that are not UTF-8.
        Command::Submit {
            request_id: None,
            now_ms: i(39),
            spec: spec("answer", &["sh", "-c", "echo 42 > \"$TASKRAFT_RESULT_OUT\""]),
            reuse: Reuse::SameBody,
        },
        Command::Assign { now_ms: i(40), assignments: vec![(13, "w1".into())] },
        Command::Reports {
            now_ms: i(41),
            worker_id: "w1".into(),
            reports: vec![
                AttemptReport { attempt: AttemptId::new(13, 40), event: AttemptEvent::Started },
                AttemptReport { attempt: AttemptId::new(13, 11), event: ended(Some(b"stale\n")) },
                AttemptReport { attempt: AttemptId::new(13, 40), event: ended(Some(b"42\n")) },
            ],
        },
        Command::Submit {
            request_id: None,
            now_ms: i(42),
            spec: run(Executor::Noop, "binary", &[]),
            reuse: Reuse::SameBody,
        },
        Command::Assign { now_ms: i(43), assignments: vec![(14, "w1".into())] },
        Command::Complete {
            now_ms: i(44),
            task_id: 14,
            token: 43,
            outcome: AttemptOutcome::Succeeded,
            exit_code: None,
            output_tail: String::new(),
            error: None,
            result: Some(vec![0xff, 0x00, 0x01]),
        },
        // 45… (format 6): a concurrency limit of 1 and a task holding its permit; a workflow
        // cancelled while its root waits; a second one left running, with an idempotency key.
        Command::SetLimit { now_ms: i(45), key: "db-backup".into(), max_running: Some(1) },
        Command::Submit {
            request_id: None,
            now_ms: i(46),
            spec: TaskSpec { concurrency_key: Some("db-backup".into()), ..run(Executor::Noop, "backup", &[]) },
            reuse: Reuse::SameBody,
        },
        Command::Assign { now_ms: i(47), assignments: vec![(15, "w1".into())] },
        Command::SubmitWorkflow { request_id: Some("wf-1".into()), now_ms: i(48), spec: Box::new(word_count(None)) },
        Command::CancelWorkflow { now_ms: i(49), id: 1, reason: Some("fixture".into()) },
        Command::SubmitWorkflow { request_id: None, now_ms: i(50), spec: Box::new(word_count(Some("nightly"))) },
        // 51… (format 7): retention. The manual and the backfilled run of schedule 1 are
        // cancelled; then everything that finished before entry 53 is forgotten.
        Command::Cancel { request_id: None, now_ms: i(51), task_id: 11, reason: None },
        Command::Cancel { request_id: None, now_ms: i(52), task_id: 12, reason: None },
        Command::Forget { now_ms: i(53), before_ms: i(53), keep: u64::MAX, max: 10_000 },
        // 54… (format 8): preemption. Low-priority task 18 runs on w1; task 19 preempts it,
        // 18 saves a final checkpoint during its grace and ends `preempted`.
        Command::Submit {
            request_id: None,
            now_ms: i(54),
            spec: TaskSpec { priority: 100, preemptible: Some(true), ..spec("crunch", &["sh", "-c", "sleep 60"]) },
            reuse: Reuse::SameBody,
        },
        Command::Assign { now_ms: i(55), assignments: vec![(18, "w1".into())] },
        Command::Reports {
            now_ms: i(56),
            worker_id: "w1".into(),
            reports: vec![AttemptReport { attempt: AttemptId::new(18, 55), event: AttemptEvent::Started }],
        },
        Command::Submit {
            request_id: None,
            now_ms: i(57),
            spec: TaskSpec { priority: 900, preemptible: Some(false), ..spec("urgent", &["true"]) },
            reuse: Reuse::SameBody,
        },
        Command::Preempt {
            now_ms: i(58),
            for_task: 19,
            victims: vec![AttemptId::new(18, 55)],
            rules: PreemptRules { gap: 10, min_runtime_ms: 1, max_per_hour: 3 },
        },
        Command::Checkpoint { now_ms: i(59), task_id: 18, token: 55, data: b"row 7\n".to_vec() },
        Command::Reports {
            now_ms: i(60),
            worker_id: "w1".into(),
            reports: vec![AttemptReport {
                attempt: AttemptId::new(18, 55),
                event: AttemptEvent::Ended {
                    outcome: AttemptOutcome::Preempted,
                    exit_code: Some(143),
                    output_tail: String::new(),
                    error: None,
                    result: None,
                },
            }],
        },
        // 61… (format 9): migration. Task 20 runs on w1, which stays overloaded; the leader
        // migrates it to the new worker w5, it saves a checkpoint in its grace, ends `migrated`
        // and waits with w5 as its placement hint.
        Command::RegisterWorker { now_ms: i(61), worker: worker("w5", 2, &[]) },
        Command::Submit {
            request_id: None,
            now_ms: i(62),
            spec: spec("reindex", &["sh", "-c", "sleep 60"]),
            reuse: Reuse::SameBody,
        },
        Command::Assign { now_ms: i(63), assignments: vec![(20, "w1".into())] },
        Command::Reports {
            now_ms: i(64),
            worker_id: "w1".into(),
            reports: vec![AttemptReport { attempt: AttemptId::new(20, 63), event: AttemptEvent::Started }],
        },
        Command::Migrate {
            now_ms: i(65),
            attempt: AttemptId::new(20, 63),
            from: "w1".into(),
            to: "w5".into(),
            why: "cpu 0.97 for 3 heartbeats; w5 at cpu 0.10 mem 0.20".into(),
            rules: MigrateRules { min_runtime_ms: 1, max_per_hour: 2 },
        },
        Command::Checkpoint { now_ms: i(66), task_id: 20, token: 63, data: b"page 3\n".to_vec() },
        Command::Reports {
            now_ms: i(67),
            worker_id: "w1".into(),
            reports: vec![AttemptReport {
                attempt: AttemptId::new(20, 63),
                event: AttemptEvent::Ended {
                    outcome: AttemptOutcome::Migrated,
                    exit_code: Some(143),
                    output_tail: String::new(),
                    error: None,
                    result: None,
                },
            }],
        },
    ]
}

/// A split → count (2 shards, 1 at a time, at least 1 must succeed) → sum workflow.
fn word_count(key: Option<&str>) -> WorkflowSpec {
    let node = |id: &str, depends: &[&str], shards: Option<ShardsSpec>| NodeSpec {
        id: id.into(),
        task: run(Executor::Noop, "", &[]),
        depends: depends.iter().map(|d| EdgeSpec { node: d.to_string(), on: EdgeOn::Success }).collect(),
        trigger: NodeRule::All,
        shards,
    };
    WorkflowSpec {
        name: "wc".into(),
        idempotency_key: key.map(String::from),
        nodes: vec![
            node("split", &[], None),
            node(
                "count",
                &["split"],
                Some(ShardsSpec { count: 2, max_parallel: Some(1), success: ShardSuccess::Min(1) }),
            ),
            NodeSpec { trigger: NodeRule::Any, ..node("sum", &["count"], None) },
        ],
    }
}

fn ended(result: Option<&[u8]>) -> AttemptEvent {
    AttemptEvent::Ended {
        outcome: AttemptOutcome::Succeeded,
        exit_code: Some(0),
        output_tail: String::new(),
        error: None,
        result: result.map(|r| ResultData(r.to_vec())),
    }
}

fn api_token(key: &str, name: &str, role: Role, worker: Option<&str>) -> ApiToken {
    let mut sha256 = [0u8; 32];
    sha256[..key.len().min(32)].copy_from_slice(&key.as_bytes()[..key.len().min(32)]);
    ApiToken { key: key.into(), name: name.into(), role, worker_id: worker.map(str::to_string), sha256, created_ms: 0 }
}

fn schedule_spec(name: &str, trigger: Trigger, overlap: Overlap) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        trigger,
        time_zone: "UTC".into(),
        start_ms: None,
        end_ms: Some(now(10_000)),
        catch_up: CatchUp::All,
        catch_up_window_ms: 3_600_000,
        overlap,
        jitter_ms: 0,
        idempotency_key: None,
        task: run(Executor::Noop, "", &[]),
        workflow: None,
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new_term_index(1, index)
}

/// Every entry of the fixture log, in index order from 1.
fn entries() -> Vec<Entry> {
    let member = Member { api_addr: "127.0.0.1:7101".into(), raft_addr: "127.0.0.1:7201".into() };
    let membership = Membership::new(vec![BTreeSet::from([1])], BTreeMap::from([(1, member)])).unwrap();
    let mut out = vec![Entry::new_membership(log_id(1), membership), Entry::new_blank(log_id(2))];
    for (i, cmd) in commands().into_iter().enumerate() {
        out.push(Entry::new_normal(log_id(i as u64 + 3), LogCommand(cmd)));
    }
    out
}

fn variant(entry: &Entry) -> String {
    match &entry.payload {
        openraft::EntryPayload::Blank => "blank".into(),
        openraft::EntryPayload::Membership(_) => "membership".into(),
        openraft::EntryPayload::Normal(LogCommand(cmd)) => {
            let debug = format!("{cmd:?}");
            let name: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
            let mut snake = String::new();
            for (i, c) in name.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    snake.push('-');
                }
                snake.push(c.to_ascii_lowercase());
            }
            snake
        }
    }
}

fn fixtures_dir(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(version)
}

/// The files of one format version: log values by index, and the snapshot file.
struct Files {
    log: Vec<(u64, String, Vec<u8>)>,
    snapshot: Vec<u8>,
    state_json: String,
}

/// What today's code writes: the log values, and the snapshot built after applying them.
async fn today() -> Files {
    let entries = entries();
    let log = entries
        .iter()
        .map(|e| {
            let bytes = taskraft_storage::codec::encode_entry(e).unwrap();
            (e.log_id.index, format!("{:04}-{}.bin", e.log_id.index, variant(e)), bytes)
        })
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let state = apply_and_snapshot(entries, scratch.path()).await;
    let snapshot = std::fs::read(snapshot_file(scratch.path())).unwrap();
    Files { log, snapshot, state_json: serde_json::to_string_pretty(&state).unwrap() + "\n" }
}

/// Applies `entries` to a fresh state machine whose snapshots go to `dir`, builds a snapshot,
/// and returns the state.
async fn apply_and_snapshot(entries: Vec<Entry>, dir: &Path) -> State {
    let (mut sm, view) = StateMachine::open(SnapshotStore::open(dir).unwrap()).unwrap();
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.unwrap();
    let mut builder = sm.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap();
    view.read(|a| a.state.clone())
}

fn snapshot_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .expect("a snapshot file")
}

fn committed(version: &str) -> Files {
    let dir = fixtures_dir(version);
    let mut log: Vec<(u64, String, Vec<u8>)> = std::fs::read_dir(dir.join("log"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let index = name[..4].parse().unwrap();
            (index, name, std::fs::read(&path).unwrap())
        })
        .collect();
    log.sort();
    Files {
        log,
        snapshot: std::fs::read(dir.join("snapshot.bin")).unwrap(),
        state_json: std::fs::read_to_string(dir.join("state.json")).unwrap(),
    }
}

/// Reads committed log values the way a restarted replica does: written into a sled log tree,
/// then read back through the log store with the upgrade hook.
async fn read_log(files: &Files) -> Vec<Entry> {
    let dir = tempfile::tempdir().unwrap();
    let engine = SledEngine::open(dir.path().join("raft-log")).unwrap();
    let tree = engine.open_tree(taskraft_storage::log_store::LOG_TREE).unwrap();
    for (index, _, bytes) in &files.log {
        tree.insert(&taskraft_storage::codec::index_key(*index), bytes.clone()).unwrap();
    }
    let mut store = LogStore::<TypeConfig, _>::new(engine).unwrap().with_upgrade(upgrade_entry);
    let last = files.log.last().unwrap().0;
    store.try_get_log_entries(1..=last).await.unwrap()
}

/// Opens a committed snapshot file the way a restarting replica does.
fn read_snapshot(files: &Files) -> State {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("snapshot-{:020}.bin", 1)), &files.snapshot).unwrap();
    let (_sm, view) = StateMachine::open(SnapshotStore::open(dir.path()).unwrap()).unwrap();
    view.read(|a| {
        assert_eq!(a.last_applied.map(|l| l.index), Some(files.log.last().unwrap().0));
        a.state.clone()
    })
}

fn command(entries: &[Entry], index: u64) -> &Command {
    match &entries[index as usize - 1].payload {
        openraft::EntryPayload::Normal(LogCommand(cmd)) => cmd,
        other => panic!("entry {index} is {other:?}"),
    }
}

/// Checks the decoded log of either version: every variant in its place, and the fields that
/// format 2 moved read back as today's fields.
fn check_log(entries: &[Entry], reuse: Reuse) {
    let names: Vec<String> = entries.iter().map(variant).collect();
    assert_eq!(
        names[..23],
        [
            "membership",
            "blank",
            "register-worker",
            "register-worker",
            "register-worker",
            "register-worker",
            "submit",
            "submit-batch",
            "submit",
            "cancel",
            "assign",
            "attempt-started",
            "checkpoint",
            "complete",
            "complete",
            "complete",
            "worker-lost",
            "many",
            "drain-worker",
            "remove-worker",
            "worker-lost-incarnation",
            "member-removed",
            "noop"
        ]
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.log_id, log_id(i as u64 + 1));
    }
    match command(entries, 3) {
        Command::RegisterWorker { now_ms, worker } => {
            assert_eq!(*now_ms, now(3));
            assert_eq!(worker.id, "w1");
            assert_eq!(worker.slots, 8);
            // Format 1 workers sent "ip:0" as their address: no address at all.
            assert_eq!(worker.api_addr, None);
            assert_eq!(worker.labels.get("disk").map(String::as_str), Some("ssd"));
        }
        other => panic!("{other:?}"),
    }
    match command(entries, 7) {
        Command::Submit { request_id, spec, reuse: r, .. } => {
            assert_eq!(request_id.as_deref(), Some("client-a:1"));
            assert_eq!(*r, reuse);
            assert_eq!(spec.command, ["sh", "-c", "echo $GREETING"]);
            assert_eq!(spec.executor, Executor::Exec);
            assert_eq!(spec.placement, PlacementStrategy::LeastLoaded);
            assert_eq!(
                spec.prefer.as_deref(),
                Some(&Preferences { labels: BTreeMap::from([("disk".into(), "ssd".into())]) })
            );
            assert_eq!(spec.env.get("GREETING").map(String::as_str), Some("hello"));
            assert_eq!(spec.working_dir.as_deref(), Some("/tmp"));
            assert_eq!((spec.priority, spec.timeout_ms, spec.failover), (700, Some(60_000), FailoverPolicy::Restart));
            assert_eq!(spec.retry.backoff_multiplier_permille, 1500);
            assert_eq!(spec.shard, Some(Shard { index: 0, total: 2 }));
            assert_eq!(spec.origin, TaskOrigin::Claimed { schedule_id: "nightly".into(), nominal_time_ms: T0 });
        }
        other => panic!("{other:?}"),
    }
    match command(entries, 8) {
        Command::SubmitBatch { specs, reuse: r, .. } => {
            assert_eq!(*r, reuse);
            let runs: Vec<(Executor, Vec<&str>)> =
                specs.iter().map(|s| (s.executor, s.command.iter().map(String::as_str).collect())).collect();
            assert_eq!(
                runs,
                [
                    (Executor::Sleep, vec!["50"]),
                    (Executor::Exec, vec!["false"]),
                    (Executor::Http, vec!["http://127.0.0.1:9/hook", "POST", "{}"]),
                    (Executor::Exec, vec!["sleep", "100"]),
                    (Executor::Noop, vec![]),
                    (Executor::Exec, vec!["sleep", "100"]),
                ]
            );
            assert_eq!(specs[4].placement, PlacementStrategy::ConsistentHash { key: "tenant-7".into() });
            assert_eq!(specs[4].prefer, None);
        }
        other => panic!("{other:?}"),
    }
    match command(entries, 13) {
        Command::Checkpoint { task_id: 1, token: 11, data, .. } => assert_eq!(data, b"step-1\n"),
        other => panic!("{other:?}"),
    }
    match command(entries, 18) {
        Command::Many { commands } => assert_eq!(commands.len(), 2),
        other => panic!("{other:?}"),
    }
}

/// Checks a state holding the fixture log's outcome.
fn check_state(state: &State) {
    let states: Vec<(u64, TaskState)> = (1..=9).map(|id| (id, state.task(id).expect("task").state)).collect();
    use TaskState::*;
    assert_eq!(
        states,
        [
            (1, Running),
            (2, Succeeded),
            (3, RetryWait),
            (4, Failed),
            (5, Cancelled),
            (6, Assigned),
            (7, Pending),
            (8, Pending),
            (9, Blocked)
        ]
    );
    let full = state.task(1).unwrap();
    let ckpt = full.checkpoint.as_ref().expect("task 1 has a checkpoint");
    assert_eq!((ckpt.data.as_slice(), ckpt.attempt, ckpt.token), (&b"step-1\n"[..], 1, 11));
    assert_eq!(full.spec.prefer.as_ref().map(|p| p.labels.len()), Some(1));
    assert_eq!(full.spec.placement, PlacementStrategy::LeastLoaded);
    assert_eq!(state.task(2).unwrap().spec.executor, Executor::Sleep);
    assert_eq!(state.task(2).unwrap().spec.command, ["50"]);
    assert_eq!(state.task(4).unwrap().spec.executor, Executor::Http);
    assert!(state.task(6).unwrap().cancel_requested);
    let lost = &state.task(7).unwrap().attempts[0];
    assert_eq!((lost.worker_id.as_str(), lost.outcome), ("w3", Some(AttemptOutcome::Lost)));
    let workers: Vec<(&str, WorkerState)> = state.workers().map(|w| (w.id.as_str(), w.state)).collect();
    assert_eq!(
        workers,
        [
            ("w1", WorkerState::Active),
            ("w2", WorkerState::Removed),
            ("w3", WorkerState::Lost),
            ("w4", WorkerState::Draining)
        ]
    );
}

#[tokio::test]
async fn format_1_data_dir_is_read_and_upgraded() {
    let v1 = committed("v1");
    let entries = read_log(&v1).await;
    assert_eq!(entries.len(), 23);
    check_log(&entries, Reuse::AnyBody);
    let snapshot = read_snapshot(&v1);
    check_state(&snapshot);
    assert_eq!(snapshot.next_task_id(), 10);
    assert_eq!(snapshot.last_applied_index(), 23);
    // Replaying the upgraded log reaches exactly the state the old release snapshotted.
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

/// Position of `cmd`'s variant in `Command`. No wildcard arm: a new variant does not compile
/// until it is listed here, and [`every_command_variant_is_in_the_fixtures`] then fails until
/// the fixture log holds one (and a new format's fixtures are written).
fn variant_number(cmd: &Command) -> usize {
    match cmd {
        Command::Submit { .. } => 0,
        Command::SubmitBatch { .. } => 1,
        Command::Cancel { .. } => 2,
        Command::RegisterWorker { .. } => 3,
        Command::Assign { .. } => 4,
        Command::AttemptStarted { .. } => 5,
        Command::Checkpoint { .. } => 6,
        Command::Complete { .. } => 7,
        Command::WorkerLost { .. } => 8,
        Command::Noop => 9,
        Command::DrainWorker { .. } => 10,
        Command::RemoveWorker { .. } => 11,
        Command::MemberRemoved { .. } => 12,
        Command::Many { .. } => 13,
        Command::WorkerLostIncarnation { .. } => 14,
        Command::Reports { .. } => 15,
        Command::CreateSchedule { .. } => 16,
        Command::UpdateSchedule { .. } => 17,
        Command::PauseSchedule { .. } => 18,
        Command::ResumeSchedule { .. } => 19,
        Command::TriggerSchedule { .. } => 20,
        Command::BackfillSchedule { .. } => 21,
        Command::DeleteSchedule { .. } => 22,
        Command::FireSchedule { .. } => 23,
        Command::CreateToken { .. } => 24,
        Command::RevokeToken { .. } => 25,
        Command::WorkerCheckpoint { .. } => 26,
        Command::SubmitWorkflow { .. } => 27,
        Command::CancelWorkflow { .. } => 28,
        Command::SetLimit { .. } => 29,
        Command::Forget { .. } => 30,
        Command::Preempt { .. } => 31,
        Command::Migrate { .. } => 32,
    }
}

/// How many variants `Command` has (the arms of [`variant_number`]).
const COMMAND_VARIANTS: usize = 33;

#[test]
fn every_command_variant_is_in_the_fixtures() {
    let mut seen = BTreeSet::new();
    let mut stack = commands();
    while let Some(cmd) = stack.pop() {
        seen.insert(variant_number(&cmd));
        if let Command::Many { commands } = cmd {
            stack.extend(commands);
        }
    }
    let missing: Vec<usize> = (0..COMMAND_VARIANTS).filter(|n| !seen.contains(n)).collect();
    assert!(missing.is_empty(), "Command variants {missing:?} are in no fixture entry: add them to commands()");
}

#[tokio::test]
async fn format_2_data_dir_is_read_and_upgraded() {
    let v2 = committed("v2");
    let entries = read_log(&v2).await;
    assert_eq!(entries.len(), 24);
    check_log(&entries, Reuse::SameBody);
    assert!(matches!(command(&entries, 24), Command::Reports { reports, .. } if reports.len() == 2));
    let snapshot = read_snapshot(&v2);
    check_state(&snapshot);
    assert_eq!(snapshot.next_task_id(), 10);
    assert_eq!(snapshot.last_applied_index(), 24);
    assert_eq!(snapshot.schedules().count(), 0);
    // Replaying the upgraded log reaches exactly the state format 2 snapshotted.
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

/// The schedule entries (format 3) and what they leave in the state.
fn check_schedules(entries: &[Entry], state: &State) {
    assert!(matches!(command(entries, 25), Command::CreateSchedule { spec, .. } if spec.overlap == Overlap::Forbid));
    assert!(matches!(command(entries, 26), Command::CreateSchedule { paused: true, spec, .. }
        if spec.time_zone == "Europe/Stockholm" && spec.trigger == Trigger::Cron { expr: "0 30 2 * * *".into() }));
    assert!(matches!(command(entries, 27), Command::FireSchedule { nominal, missed: 1, .. } if nominal.len() == 2));
    let s = state.schedule(1).expect("schedule 1");
    assert_eq!(s.last_nominal_ms, Some(now(26)));
    assert_eq!((s.counters.fired, s.counters.skipped, s.counters.missed), (1, 1, 1));
    assert_eq!((s.counters.triggered, s.counters.backfilled), (1, 1));
    assert_eq!(s.runs, 3, "the calendar run, the manual one and the backfilled one");
    assert!(s.paused.is_none());
    assert_eq!(s.resumed_ms, Some(now(31)));
    assert!(state.schedule(2).is_none(), "schedule 2 was deleted");
    let run = state.task(10).expect("the fired run");
    assert_eq!(run.spec.origin, TaskOrigin::Schedule { schedule: 1, nominal_ms: now(25), manual: false });
    assert_eq!(run.spec.name, "every-second");
    let manual = state.task(11).expect("the triggered run");
    assert!(matches!(manual.spec.origin, TaskOrigin::Schedule { manual: true, .. }));
    assert!(state.task(12).is_some(), "the backfilled run");
}

#[tokio::test]
async fn format_3_data_dir_is_read_and_upgraded() {
    let v3 = committed("v3");
    let entries = read_log(&v3).await;
    assert_eq!(entries.len(), 33);
    check_log(&entries, Reuse::SameBody);
    let snapshot = read_snapshot(&v3);
    check_state(&snapshot);
    check_schedules(&entries, &snapshot);
    assert_eq!(snapshot.next_task_id(), 13);
    assert_eq!(snapshot.last_applied_index(), 33);
    assert_eq!(snapshot.tokens().count(), 0);
    // Replaying the upgraded log reaches exactly the state format 3 snapshotted.
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

/// The token entries (format 4) and what they leave in the state.
fn check_tokens(entries: &[Entry], state: &State) {
    assert!(matches!(command(entries, 34), Command::CreateToken { token, .. } if token.role == Role::Admin));
    assert!(matches!(command(entries, 38), Command::WorkerCheckpoint { worker_id, .. } if worker_id == "w2"));
    let kept: Vec<(&str, Role, Option<&str>)> =
        state.tokens().map(|t| (t.name.as_str(), t.role, t.worker_id.as_deref())).collect();
    assert_eq!(kept, [("bootstrap-admin", Role::Admin, None), ("worker-w1", Role::Worker, Some("w1"))]);
    let ckpt = state.task(1).unwrap().checkpoint.as_ref().unwrap();
    assert_eq!(ckpt.data, b"step-1\n", "w2's checkpoint of w1's attempt was refused");
}

#[tokio::test]
async fn format_4_data_dir_is_read_and_upgraded() {
    let v4 = committed("v4");
    let entries = read_log(&v4).await;
    assert_eq!(entries.len(), 38);
    check_log(&entries, Reuse::SameBody);
    let snapshot = read_snapshot(&v4);
    check_state(&snapshot);
    check_schedules(&entries, &snapshot);
    check_tokens(&entries, &snapshot);
    assert_eq!(snapshot.next_task_id(), 13);
    assert_eq!(snapshot.last_applied_index(), 38);
    // Format 4 had no results: every upgraded completion and task carries none.
    assert!(matches!(command(&entries, 14), Command::Complete { result: None, .. }));
    assert!(matches!(command(&entries, 24), Command::Reports { reports, .. }
        if matches!(&reports[1].event, AttemptEvent::Ended { result: None, .. })));
    assert!(snapshot.task(2).is_some_and(|t| t.state == TaskState::Succeeded && t.result.is_none()));
    // Replaying the upgraded log reaches exactly the state format 4 snapshotted.
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

/// The result entries (format 5) and what they leave in the state.
fn check_results(entries: &[Entry], state: &State) {
    assert!(matches!(command(entries, 44), Command::Complete { result: Some(r), .. } if r == &[0xff, 0, 1]));
    let answer = state.task(13).expect("task 13");
    assert_eq!(answer.state, TaskState::Succeeded);
    let result = answer.result.as_ref().expect("task 13 has a result");
    assert_eq!((result.data.as_slice(), result.attempt, result.token), (&b"42\n"[..], 1, 40), "not the stale one");
    let binary = state.task(14).unwrap().result.as_ref().expect("task 14 has a result");
    assert_eq!((binary.data.as_slice(), binary.token), (&[0xff, 0, 1][..], 43));
    let json = serde_json::to_value(state.task(14).unwrap()).unwrap();
    assert_eq!(json["result"]["base64"], "/wAB");
    assert_eq!(serde_json::to_value(answer).unwrap()["result"]["text"], "42\n");
}

#[tokio::test]
async fn format_5_data_dir_is_read_and_upgraded() {
    let v5 = committed("v5");
    let entries = read_log(&v5).await;
    assert_eq!(entries.len(), 44);
    check_log(&entries, Reuse::SameBody);
    let snapshot = read_snapshot(&v5);
    check_state(&snapshot);
    check_schedules(&entries, &snapshot);
    check_tokens(&entries, &snapshot);
    check_results(&entries, &snapshot);
    assert_eq!(snapshot.next_task_id(), 15);
    assert_eq!(snapshot.last_applied_index(), 44);
    // Format 5 had no concurrency keys, workflows or limits: every upgraded spec carries none.
    assert!(snapshot.task(1).is_some_and(|t| t.spec.concurrency_key.is_none()));
    assert!(snapshot.workflow(1).is_none());
    assert!(snapshot.limits_view().is_empty());
    // Replaying the upgraded log reaches exactly the state format 5 snapshotted.
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

/// The workflow and limit entries (format 6) and what they leave in the state.
fn check_workflows(entries: &[Entry], state: &State) {
    assert!(matches!(command(entries, 45), Command::SetLimit { max_running: Some(1), .. }));
    let limit = state.limit_view("db-backup");
    assert_eq!((limit.max_running, limit.running.as_slice()), (Some(1), &[15][..]), "task 15 holds the permit");
    let cancelled = state.workflow(1).expect("workflow 1");
    assert_eq!(cancelled.state, WorkflowState::Cancelled);
    assert_eq!(state.task(16).map(|t| t.state), Some(TaskState::Cancelled));
    let running = state.workflow(2).expect("workflow 2");
    assert_eq!((running.state, running.idempotency_key.as_deref()), (WorkflowState::Running, Some("nightly")));
    assert_eq!(running.nodes[0].tasks, [17]);
    assert_eq!(state.task(17).map(|t| t.spec.origin.workflow_node()), Some(Some((2, 0))));
    let json = serde_json::to_value(running).unwrap();
    assert_eq!(json["nodes"][1]["spec"]["shards"]["success"]["min"], 1);
}

#[tokio::test]
async fn format_6_data_dir_is_read_and_upgraded() {
    let v6 = committed("v6");
    let entries = read_log(&v6).await;
    assert_eq!(entries.len(), 50);
    check_log(&entries, Reuse::SameBody);
    let snapshot = read_snapshot(&v6);
    check_state(&snapshot);
    check_schedules(&entries, &snapshot);
    check_tokens(&entries, &snapshot);
    check_results(&entries, &snapshot);
    check_workflows(&entries, &snapshot);
    assert_eq!(snapshot.next_task_id(), 18);
    assert_eq!(snapshot.last_applied_index(), 50);
    // Format 6 forgot nothing and had no preemption: no spec says `preemptible` (its
    // priority decides), no task was preempted or preempted another.
    assert_eq!(snapshot.forgotten_runs(1).count, 0);
    assert!(!(1..18).any(|id| snapshot.task_forgotten(id)));
    assert!((1..18).all(|id| {
        snapshot
            .task(id)
            .is_none_or(|t| t.spec.preemptible.is_none() && t.preempted_by.is_none() && t.preempted.is_empty())
    }));
    let template = &snapshot.schedule(1).expect("schedule 1").spec.task;
    assert_eq!(template.preemptible, None);
    // Replaying the upgraded log reaches exactly the state format 6 snapshotted.
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

/// The retention entries (format 7) and what they leave: every record that finished before
/// entry 53 is gone, with the runs index entries and the workflow of the settled workflow.
fn check_forget(entries: &[Entry], state: &State) {
    assert!(matches!(command(entries, 53), Command::Forget { keep: u64::MAX, max: 10_000, .. }));
    let forgotten: Vec<u64> = (1..18).filter(|&id| state.task_forgotten(id)).collect();
    assert_eq!(forgotten, [2, 4, 5, 11, 12, 13, 14, 16], "the standalone tasks and workflow 1's task");
    assert!(state.workflow_forgotten(1), "the cancelled workflow had settled");
    assert!(state.workflow(2).is_some(), "the running workflow stays");
    assert!(state.task(1).is_some_and(|t| t.checkpoint.is_some()), "live tasks keep everything");
    let runs = state.forgotten_runs(1);
    assert_eq!((runs.count, runs.calendar_through_ms), (2, Some(now(20))), "the manual and the backfilled run");
    assert!(state.task(10).is_some(), "the live calendar run stays");
    assert_eq!(state.schedule(1).map(|s| s.runs), Some(3));
}

/// The preemption entries (format 8) and what they leave in the state.
fn check_preemption(entries: &[Entry], state: &State) {
    assert!(matches!(command(entries, 58), Command::Preempt { for_task: 19, .. }));
    let victim = state.task(18).expect("task 18");
    assert_eq!(victim.state, TaskState::Pending, "a preempted task waits again at once");
    let attempt = &victim.attempts[0];
    assert_eq!(attempt.outcome, Some(AttemptOutcome::Preempted));
    assert_eq!(attempt.error.as_deref(), Some("preempted by task 19"));
    assert_eq!(victim.failures(), 0);
    assert_eq!(victim.checkpoint.as_ref().map(|c| c.data.as_slice()), Some(&b"row 7\n"[..]));
    assert_eq!(victim.preempted_by.as_deref().map(|m| (m.by, m.token)), Some((19, 55)));
    assert_eq!((victim.spec.preemptible, state.task(19).unwrap().spec.preemptible), (Some(true), Some(false)));
    let preemptor = state.task(19).expect("task 19");
    assert_eq!((preemptor.state, preemptor.preempted.as_slice()), (TaskState::Pending, &[AttemptId::new(18, 55)][..]));
}

#[tokio::test]
async fn format_7_data_dir_is_read_and_upgraded() {
    let v7 = committed("v7");
    let entries = read_log(&v7).await;
    assert_eq!(entries.len(), 53);
    check_log(&entries, Reuse::SameBody);
    // Everything of formats 1 to 6 is as before, up to the entry that forgets.
    let scratch = tempfile::tempdir().unwrap();
    let before = apply_and_snapshot(entries[..52].to_vec(), scratch.path()).await;
    check_state(&before);
    check_schedules(&entries, &before);
    check_tokens(&entries, &before);
    check_results(&entries, &before);
    check_workflows(&entries, &before);
    let snapshot = read_snapshot(&v7);
    check_forget(&entries, &snapshot);
    assert_eq!(snapshot.next_task_id(), 18);
    assert_eq!(snapshot.last_applied_index(), 53);
    snapshot.check_invariants().unwrap();
    // Format 7 had no preemption.
    assert!((1..18).all(|id| snapshot.task(id).is_none_or(|t| t.spec.preemptible.is_none() && t.preempted.is_empty())));
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

/// The migration entries (format 9) and what they leave in the state.
fn check_migration(entries: &[Entry], state: &State) {
    assert!(matches!(command(entries, 65), Command::Migrate { .. }));
    let task = state.task(20).expect("task 20");
    assert_eq!(task.state, TaskState::Pending, "a migrated task waits again at once");
    let attempt = &task.attempts[0];
    assert_eq!(attempt.outcome, Some(AttemptOutcome::Migrated));
    assert_eq!(
        attempt.error.as_deref(),
        Some("migrated from worker w1 to worker w5 (cpu 0.97 for 3 heartbeats; w5 at cpu 0.10 mem 0.20)")
    );
    assert_eq!(task.failures(), 0);
    assert_eq!(task.checkpoint.as_ref().map(|c| c.data.as_slice()), Some(&b"page 3\n"[..]));
    assert_eq!(state.migration_target(task).map(|m| m.to.as_str()), Some("w5"));
}

#[tokio::test]
async fn format_8_data_dir_is_read_and_upgraded() {
    let v8 = committed("v8");
    let entries = read_log(&v8).await;
    assert_eq!(entries.len(), 60);
    check_log(&entries, Reuse::SameBody);
    let snapshot = read_snapshot(&v8);
    check_forget(&entries, &snapshot);
    check_preemption(&entries, &snapshot);
    assert_eq!(snapshot.next_task_id(), 20);
    assert_eq!(snapshot.last_applied_index(), 60);
    snapshot.check_invariants().unwrap();
    // Format 8 had no migration.
    assert!((1..20).all(|id| snapshot.migration_of(id).is_none()));
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(apply_and_snapshot(entries, scratch.path()).await, snapshot);
}

#[tokio::test]
async fn format_9_is_what_this_build_writes() {
    if std::env::var_os("TASKRAFT_WRITE_FIXTURES").is_some() {
        return; // being rewritten right now
    }
    let v8 = committed(CURRENT);
    let entries = read_log(&v8).await;
    assert_eq!(entries.len(), 67);
    check_log(&entries, Reuse::SameBody);
    // Everything of formats 1 to 6 is as before, up to the entry that forgets.
    let scratch = tempfile::tempdir().unwrap();
    let before = apply_and_snapshot(entries[..52].to_vec(), scratch.path()).await;
    check_state(&before);
    check_schedules(&entries, &before);
    check_tokens(&entries, &before);
    check_results(&entries, &before);
    check_workflows(&entries, &before);
    let snapshot = read_snapshot(&v8);
    check_forget(&entries, &snapshot);
    check_preemption(&entries, &snapshot);
    check_migration(&entries, &snapshot);
    assert_eq!(snapshot.next_task_id(), 21);
    assert_eq!(snapshot.last_applied_index(), 67);
    snapshot.check_invariants().unwrap();
    // A persisted type changed without a new format version: bump it (src/scheduler/format).
    let now = today().await;
    let names = |f: &Files| f.log.iter().map(|(_, n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&now), names(&v8), "the fixture log's entries changed");
    for ((_, name, want), (_, _, got)) in v8.log.iter().zip(&now.log) {
        assert!(want == got, "{name}: today's encoding differs from the committed format-9 bytes");
    }
    assert!(v8.snapshot == now.snapshot, "today's snapshot differs from the committed format-9 snapshot");
    assert_eq!(v8.state_json, now.state_json);
}

#[tokio::test]
async fn write_fixtures_when_asked() {
    if std::env::var_os("TASKRAFT_WRITE_FIXTURES").is_none() {
        return;
    }
    let dir = fixtures_dir(CURRENT);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("log")).unwrap();
    let files = today().await;
    for (_, name, bytes) in &files.log {
        std::fs::write(dir.join("log").join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("snapshot.bin"), &files.snapshot).unwrap();
    std::fs::write(dir.join("state.json"), &files.state_json).unwrap();
    println!("wrote {}", dir.display());
}
