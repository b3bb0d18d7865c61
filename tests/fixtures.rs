//! Writes the format-1 fixtures with the code that defines format 1 (this commit).
//!
//! `TASKRAFT_WRITE_FIXTURES=1 cargo test --test fixtures -- --nocapture` writes
//! `tests/fixtures/v1/`: every log entry exactly as the sled log store holds it, and the snapshot
//! file the state machine builds after applying them.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::path::PathBuf;

use openraft::Membership;
use openraft::RaftSnapshotBuilder;
use openraft::RaftTypeConfig;
use openraft::entry::RaftEntry;
use openraft::storage::RaftStateMachine;
use taskraft::node::LogId;
use taskraft::node::Member;
use taskraft::node::StateMachine;
use taskraft::node::TypeConfig;
use taskraft::scheduler::AttemptOutcome;
use taskraft::scheduler::Command;
use taskraft::scheduler::FailoverPolicy;
use taskraft::scheduler::PlacementStrategy;
use taskraft::scheduler::Resources;
use taskraft::scheduler::RetryPolicy;
use taskraft::scheduler::Shard;
use taskraft::scheduler::TaskOrigin;
use taskraft::scheduler::TaskSpec;
use taskraft::scheduler::WorkerRegistration;
use taskraft_storage::SnapshotStore;

type Entry = <TypeConfig as RaftTypeConfig>::Entry;

const T0: u64 = 1_700_000_000_000;

fn now(index: u64) -> u64 {
    T0 + index * 1000
}

fn spec(name: &str, command: &[&str]) -> TaskSpec {
    TaskSpec { name: name.into(), command: command.iter().map(|s| s.to_string()).collect(), ..TaskSpec::default() }
}

fn worker(id: &str, slots: u32, labels: &[(&str, &str)]) -> WorkerRegistration {
    WorkerRegistration {
        id: id.into(),
        api_addr: "127.0.0.1:0".into(),
        slots,
        cpu_millis: 2000,
        memory_mib: 4096,
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// The commands of the fixture log, from index 3 on (1 is a membership entry, 2 a blank one).
/// Together they use every `Command` variant and leave tasks in every state, workers in every
/// state, checkpoints, idempotency keys, request ids, dependents and a removed member.
fn commands() -> Vec<Command> {
    let full = TaskSpec {
        name: "full".into(),
        command: vec!["sh".into(), "-c".into(), "echo $GREETING".into()],
        env: BTreeMap::from([("GREETING".into(), "hello".into())]),
        working_dir: Some("/tmp".into()),
        priority: 700,
        resources: Resources { cpu_millis: 500, memory_mib: 256 },
        constraints: BTreeMap::from([("zone".into(), "a".into())]),
        placement: PlacementStrategy::Prefer {
            labels: BTreeMap::from([("disk".into(), "ssd".into())]),
            then: Box::new(PlacementStrategy::LeastLoaded),
        },
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
        origin: TaskOrigin::Schedule { schedule_id: "nightly".into(), nominal_time_ms: T0 },
    };
    let retrying =
        TaskSpec { retry: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() }, ..spec("retrying", &["false"]) };
    let hashed = TaskSpec {
        placement: PlacementStrategy::ConsistentHash { key: "tenant-7".into() },
        ..spec("hashed", &["taskraft:noop"])
    };
    let i = |n: u64| now(n);
    vec![
        // 3, 4, 5, 6
        Command::RegisterWorker { now_ms: i(3), worker: worker("w1", 8, &[("zone", "a"), ("disk", "ssd")]) },
        Command::RegisterWorker { now_ms: i(4), worker: worker("w2", 2, &[]) },
        Command::RegisterWorker { now_ms: i(5), worker: worker("w3", 1, &[]) },
        Command::RegisterWorker { now_ms: i(6), worker: worker("w4", 1, &[]) },
        // 7: task 1
        Command::Submit { request_id: Some("client-a:1".into()), now_ms: i(7), spec: full },
        // 8: tasks 2..=7
        Command::SubmitBatch {
            request_id: Some("client-a:2".into()),
            now_ms: i(8),
            specs: vec![
                spec("sleeper", &["taskraft:sleep", "50"]),
                retrying,
                spec("caller", &["taskraft:http", "http://127.0.0.1:9/hook", "POST", "{}"]),
                spec("to-cancel", &["sleep", "100"]),
                hashed,
                spec("orphan", &["sleep", "100"]),
            ],
        },
        // 9: task 8, blocked on task 2
        Command::Submit {
            request_id: None,
            now_ms: i(9),
            spec: TaskSpec { depends_on: vec![2], ..spec("child", &["true"]) },
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
    ]
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
        out.push(Entry::new_normal(log_id(i as u64 + 3), cmd));
    }
    out
}

fn variant(entry: &Entry) -> String {
    match &entry.payload {
        openraft::EntryPayload::Blank => "blank".into(),
        openraft::EntryPayload::Membership(_) => "membership".into(),
        openraft::EntryPayload::Normal(cmd) => {
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

/// Writes the log values and the snapshot file of this build's format into `dir`.
async fn write(dir: &Path) {
    let log_dir = dir.join("log");
    std::fs::create_dir_all(&log_dir).unwrap();
    let entries = entries();
    for e in &entries {
        let bytes = taskraft_storage::codec::encode("raft log entry", e).unwrap();
        let name = format!("{:04}-{}.bin", e.log_id.index, variant(e));
        std::fs::write(log_dir.join(name), bytes).unwrap();
    }
    let scratch = tempfile::tempdir().unwrap();
    let (mut sm, _view) = StateMachine::open(SnapshotStore::open(scratch.path()).unwrap()).unwrap();
    let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
    sm.apply(stream).await.unwrap();
    let mut builder = sm.get_snapshot_builder().await;
    builder.build_snapshot().await.unwrap();
    let file = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .expect("a snapshot file");
    std::fs::copy(file, dir.join("snapshot.bin")).unwrap();
    // A readable account of what the snapshot holds, for reviewers of the binary files.
    let (_sm, view) = StateMachine::open(SnapshotStore::open(scratch.path()).unwrap()).unwrap();
    let json = view.read(|a| serde_json::to_string_pretty(&a.state).unwrap());
    std::fs::write(dir.join("state.json"), json + "\n").unwrap();
}

#[tokio::test]
async fn write_fixtures_when_asked() {
    if std::env::var_os("TASKRAFT_WRITE_FIXTURES").is_none() {
        return;
    }
    let dir = fixtures_dir("v1");
    let _ = std::fs::remove_dir_all(&dir);
    write(&dir).await;
    println!("wrote {}", dir.display());
}
