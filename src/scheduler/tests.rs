//! Tests of the core: golden scripts (behaviour as a reviewed transcript), property tests
//! (determinism, snapshots, idempotency) and unit tests of validation.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::script::{self, roundtrip};
use super::*;

/// Every `testdata/*.script` against its `.expected`, all failures reported together.
#[test]
fn golden_scripts() {
    let names = script::script_names();
    assert!(names.len() >= 10, "found only {names:?}");
    let failures: Vec<String> = names.iter().filter_map(|n| script::check_golden(n).err()).collect();
    assert!(failures.is_empty(), "{} golden script(s) differ:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Property tests. Ops are abstract ("complete task 3 with the right token") and are resolved
// against the state into concrete commands, so random sequences reach deep states instead of
// being rejected at the first fencing check.

#[derive(Debug, Clone)]
enum Op {
    Submit {
        key: Option<u8>,
        request: Option<u8>,
        spec: SpecSeed,
    },
    Batch {
        request: Option<u8>,
        specs: Vec<(Option<u8>, SpecSeed)>,
    },
    Cancel {
        task: u8,
        request: Option<u8>,
    },
    Register {
        worker: u8,
        slots: u32,
    },
    Assign {
        pairs: Vec<(u8, u8)>,
    },
    Start {
        task: u8,
        right: bool,
    },
    Checkpoint {
        task: u8,
        right: bool,
        data: Vec<u8>,
    },
    Complete {
        task: u8,
        right: bool,
        outcome: u8,
    },
    Lost {
        worker: u8,
    },
    Drain {
        worker: u8,
    },
    Remove {
        worker: u8,
    },
    /// Retention: forget what finished more than `age` steps ago, keeping at most `keep`.
    Forget {
        age: u64,
        keep: u64,
        max: u32,
    },
    Noop,
}

#[derive(Debug, Clone)]
struct SpecSeed {
    priority: u32,
    max_attempts: u32,
    backoff: u64,
    failover: u8,
    /// Parents: up to two, so a child can wait on one while the other is forgotten.
    deps: Vec<u8>,
    label: bool,
}

fn spec_seed() -> impl Strategy<Value = SpecSeed> {
    (
        prop_oneof![9 => 0..=1000u32, 1 => 1001..1100u32],
        0..4u32,
        prop_oneof![Just(0u64), Just(100), Just(1000)],
        0..3u8,
        prop_oneof![3 => Just(Vec::new()), 1 => proptest::collection::vec(1..12u8, 1..3)],
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(priority, max_attempts, backoff, failover, deps, label)| SpecSeed {
            priority,
            max_attempts,
            backoff,
            failover,
            deps,
            label,
        })
}

fn small() -> impl Strategy<Value = Option<u8>> {
    proptest::option::weighted(0.6, 0..5u8)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (small(), small(), spec_seed()).prop_map(|(key, request, spec)| Op::Submit { key, request, spec }),
        1 => (small(), proptest::collection::vec((small(), spec_seed()), 0..4))
            .prop_map(|(request, specs)| Op::Batch { request, specs }),
        1 => (1..14u8, small()).prop_map(|(task, request)| Op::Cancel { task, request }),
        1 => (0..3u8, 0..3u32).prop_map(|(worker, slots)| Op::Register { worker, slots }),
        3 => proptest::collection::vec((1..14u8, 0..4u8), 1..4).prop_map(|pairs| Op::Assign { pairs }),
        2 => (1..14u8, proptest::bool::weighted(0.8)).prop_map(|(task, right)| Op::Start { task, right }),
        2 => (1..14u8, proptest::bool::weighted(0.8), proptest::collection::vec(any::<u8>(), 0..4))
            .prop_map(|(task, right, data)| Op::Checkpoint { task, right, data }),
        3 => (1..14u8, proptest::bool::weighted(0.8), 0..5u8)
            .prop_map(|(task, right, outcome)| Op::Complete { task, right, outcome }),
        1 => (0..4u8).prop_map(|worker| Op::Lost { worker }),
        1 => (0..4u8).prop_map(|worker| Op::Drain { worker }),
        1 => (0..4u8).prop_map(|worker| Op::Remove { worker }),
        1 => Just(Op::Noop),
        1 => (0..20u64, prop_oneof![Just(u64::MAX), 0..4u64], 1..4u32)
            .prop_map(|(age, keep, max)| Op::Forget { age, keep, max }),
    ]
}

fn spec_of(key: Option<u8>, seed: &SpecSeed) -> TaskSpec {
    let mut spec = TaskSpec {
        command: vec!["true".into()],
        priority: seed.priority,
        idempotency_key: key.map(|k| format!("key-{k}")),
        depends_on: seed.deps.iter().map(|&d| u64::from(d)).collect(),
        failover: [FailoverPolicy::Resume, FailoverPolicy::Restart, FailoverPolicy::Fail][seed.failover as usize],
        ..TaskSpec::default()
    };
    spec.retry.max_attempts = seed.max_attempts;
    spec.retry.backoff_initial_ms = seed.backoff;
    if seed.label {
        spec.constraints.insert("zone".into(), "a".into());
    }
    spec
}

/// Turns an abstract op into the command a real cluster could have committed at `index`.
fn resolve(state: &State, index: u64, op: &Op) -> Command {
    let now_ms = index * 100;
    let request = |r: &Option<u8>| r.map(|r| format!("req-{r}"));
    let worker = |w: u8| format!("w{w}");
    let token = |task: u8, right: bool| {
        let current = state.task(u64::from(task)).and_then(|t| t.current_attempt()).map(|a| a.fencing_token);
        match (current, right) {
            (Some(t), true) => t,
            (Some(t), false) => t.saturating_sub(1),
            (None, _) => 3,
        }
    };
    match op {
        Op::Submit { key, request: r, spec } => {
            Command::Submit { request_id: request(r), now_ms, spec: spec_of(*key, spec), reuse: Reuse::SameBody }
        }
        Op::Batch { request: r, specs } => Command::SubmitBatch {
            request_id: request(r),
            now_ms,
            specs: specs.iter().map(|(k, s)| spec_of(*k, s)).collect(),
            reuse: Reuse::SameBody,
        },
        Op::Cancel { task, request: r } => {
            Command::Cancel { request_id: request(r), now_ms, task_id: u64::from(*task), reason: Some("test".into()) }
        }
        Op::Register { worker: w, slots } => Command::RegisterWorker {
            now_ms,
            worker: WorkerRegistration {
                id: worker(*w),
                slots: *slots,
                cpu_millis: 1000,
                memory_mib: 512,
                labels: if *w == 0 { BTreeMap::from([("zone".into(), "a".into())]) } else { BTreeMap::new() },
                ..WorkerRegistration::default()
            },
        },
        Op::Assign { pairs } => {
            Command::Assign { now_ms, assignments: pairs.iter().map(|&(t, w)| (u64::from(t), worker(w))).collect() }
        }
        Op::Start { task, right } => {
            Command::AttemptStarted { now_ms, task_id: u64::from(*task), token: token(*task, *right) }
        }
        Op::Checkpoint { task, right, data } => {
            Command::Checkpoint { now_ms, task_id: u64::from(*task), token: token(*task, *right), data: data.clone() }
        }
        Op::Complete { task, right, outcome } => Command::Complete {
            now_ms,
            task_id: u64::from(*task),
            token: token(*task, *right),
            outcome: [
                AttemptOutcome::Succeeded,
                AttemptOutcome::Failed,
                AttemptOutcome::Lost,
                AttemptOutcome::TimedOut,
                AttemptOutcome::Cancelled,
            ][*outcome as usize],
            exit_code: Some(i32::from(*outcome)),
            output_tail: "out".into(),
            error: None,
            // Some completions carry a result, so stale ones with a result get refused too.
            result: (*outcome % 2 == 0).then(|| vec![*task, *outcome]),
        },
        Op::Lost { worker: w } => Command::WorkerLost { now_ms, worker_id: worker(*w) },
        Op::Drain { worker: w } => Command::DrainWorker { now_ms, worker_id: worker(*w) },
        Op::Remove { worker: w } => Command::RemoveWorker { now_ms, worker_id: worker(*w) },
        Op::Forget { age, keep, max } => {
            Command::Forget { now_ms, before_ms: now_ms.saturating_sub(age * 100), keep: *keep, max: *max }
        }
        Op::Noop => Command::Noop,
    }
}

/// A small request window, so that eviction happens inside short sequences.
fn fresh() -> State {
    State::new(StateOptions { request_dedup_capacity: 3 })
}

fn bytes(state: &State) -> Vec<u8> {
    postcard::to_stdvec(state).expect("encode state")
}

/// Applies `ops` from `start_index`, checking invariants and wire formats on the way.
fn drive(state: &mut State, start_index: u64, ops: &[Op]) -> Vec<Response> {
    let mut responses = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let index = start_index + i as u64;
        let cmd = resolve(state, index, op);
        let resp = state.apply(index, cmd);
        if let Err(e) = state.check_invariants() {
            panic!("invariant broken at index {index} after {op:?}: {e}");
        }
        responses.push(resp);
    }
    responses
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Two replicas applying the same log agree on every answer and on every byte of state.
    #[test]
    fn replicas_agree(ops in proptest::collection::vec(op(), 1..120)) {
        let (mut a, mut b) = (fresh(), fresh());
        let mut ra = Vec::new();
        let mut rb = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let index = i as u64 + 1;
            let cmd = resolve(&a, index, op);
            roundtrip(&cmd);
            let resp = a.apply(index, cmd.clone());
            roundtrip(&resp);
            ra.push(resp);
            rb.push(b.apply(index, cmd));
            prop_assert!(a.check_invariants().is_ok(), "{:?}", a.check_invariants());
        }
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(bytes(&a), bytes(&b));
        for q in [Query::Stats, Query::ListWorkers, Query::ListTasks { state: None, after: None, limit: 5 }] {
            roundtrip(&q);
            roundtrip(&a.query(&q));
        }
    }

    /// A replica restored from a snapshot (postcard or JSON) continues exactly like one that
    /// never stopped.
    #[test]
    fn snapshot_then_continue(ops in proptest::collection::vec(op(), 2..120), cut in 0usize..120) {
        let cut = cut % ops.len();
        let mut straight = fresh();
        let prefix = drive(&mut straight, 1, &ops[..cut]);
        let snapshot = bytes(&straight);
        let mut restored: State = postcard::from_bytes(&snapshot).expect("decode snapshot");
        let json = serde_json::to_string(&straight).expect("json snapshot");
        let mut from_json: State = serde_json::from_str(&json).expect("decode json snapshot");
        prop_assert_eq!(&restored, &straight);
        let rest = &ops[cut..];
        let start = cut as u64 + 1;
        let a = drive(&mut straight, start, rest);
        let b = drive(&mut restored, start, rest);
        let c = drive(&mut from_json, start, rest);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
        prop_assert_eq!(bytes(&straight), bytes(&restored));
        prop_assert_eq!(bytes(&straight), bytes(&from_json));
        prop_assert_eq!(prefix.len(), cut);
    }

    /// However submits, retries, batches and retention interleave, a key names at most one
    /// task, and every answer for that key names that same task, or one that held the key
    /// before retention forgot it (a key is remembered as long as its task).
    #[test]
    fn idempotency_key_never_yields_two_tasks(ops in proptest::collection::vec(op(), 1..150)) {
        let mut state = fresh();
        let responses = drive(&mut state, 1, &ops);
        let mut owner: BTreeMap<String, TaskId> = BTreeMap::new();
        for task in state.tasks.values() {
            if let Some(k) = &task.spec.idempotency_key {
                let previous = owner.insert(k.clone(), task.id);
                prop_assert!(previous.is_none(), "key {} names tasks {:?} and {}", k, previous, task.id);
            }
        }
        let mut answered: BTreeMap<String, TaskId> = BTreeMap::new();
        for resp in responses {
            if let Response::Submitted { tasks } = resp {
                for s in tasks {
                    if let Some(k) = &s.task.spec.idempotency_key {
                        let id = s.task.id;
                        if owner.get(k) != Some(&id) {
                            prop_assert!(state.task_forgotten(id), "key {} answered task {}, neither its owner nor forgotten", k, id);
                        }
                        // A key moves on to a new task only after its old one was forgotten.
                        let before = answered.insert(k.clone(), id);
                        prop_assert!(before.is_none_or(|b| b <= id), "key {} answered {:?} after {}", k, before, id);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Frozen copies (snapshots encode them while apply goes on).

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A copy frozen at any point encodes to the bytes the state had then, however the state
    /// changes afterwards (tasks, indexes, request window, dependents, idempotency keys).
    #[test]
    fn a_frozen_copy_keeps_the_bytes_of_its_moment(ops in proptest::collection::vec(op(), 2..120), cut in 0usize..120) {
        let cut = cut % ops.len();
        let mut state = fresh();
        drive(&mut state, 1, &ops[..cut]);
        let then = format::encode_state(&state).unwrap();
        let frozen = state.freeze();
        prop_assert_eq!(frozen.last_applied_index(), state.last_applied_index());
        drive(&mut state, cut as u64 + 1, &ops[cut..]);
        prop_assert_eq!(frozen.encode().unwrap(), then);
        let decoded = format::decode_state(&frozen.encode().unwrap()).unwrap();
        prop_assert_eq!(decoded.check_invariants(), Ok(()));
    }
}

/// Tasks in the state of [`a_frozen_copy_encodes_its_moment_while_apply_goes_on`]: enough that
/// the encoder runs for a while in a debug build (the ignored `million_tasks` goes further).
const FROZEN_TASKS: u64 = 100_000;

/// What a snapshot does: the state is frozen, the copy encoded on another thread, and apply
/// goes on meanwhile, touching tasks all over the maps the copy shares. The copy's bytes are
/// the state's at the freeze, and the state's own are not.
#[test]
fn a_frozen_copy_encodes_its_moment_while_apply_goes_on() {
    let mut state = State::default();
    let mut index = 0;
    // Every command must be accepted, but the late submits (their parent may have failed).
    let mut apply = |state: &mut State, cmd: Command| {
        index += 1;
        let late = matches!(&cmd, Command::Submit { request_id: Some(r), .. } if r.starts_with("late-"));
        let resp = state.apply(index, cmd);
        assert!(late || !matches!(resp, Response::Rejected(_)), "{resp:?}");
        (index, resp)
    };
    for b in 0..FROZEN_TASKS / 1000 {
        let specs = (0..1000)
            .map(|i| TaskSpec {
                idempotency_key: Some(format!("key-{b}-{i}")),
                // A blocked child now and then, so that `dependents` is shared too.
                depends_on: if b > 0 && i % 100 == 0 { vec![b * 1000] } else { Vec::new() },
                ..valid()
            })
            .collect();
        let request_id = Some(format!("req-{b}"));
        apply(&mut state, Command::SubmitBatch { request_id, now_ms: b, specs, reuse: Reuse::SameBody });
    }
    let worker =
        WorkerRegistration { id: "w".into(), slots: 10_000, cpu_millis: 1000, memory_mib: 512, ..Default::default() };
    apply(&mut state, Command::RegisterWorker { now_ms: 1, worker });
    let pending: Vec<TaskId> = state.tasks_in(TaskState::Pending).map(|t| t.id).collect();

    let then = format::encode_state(&state).unwrap();
    let frozen = state.freeze();
    let encoder = std::thread::spawn(move || frozen.encode().unwrap());
    // Walk the pending tasks from both ends, so that writes land all over the shared trees.
    let (mut front, mut back, mut rounds) = (pending.iter(), pending.iter().rev(), 0);
    while !encoder.is_finished() || rounds < 200 {
        let (Some(&run), Some(&cancel)) = (front.next(), back.next()) else { break };
        let (token, _) = apply(&mut state, Command::Assign { now_ms: 2, assignments: vec![(run, "w".into())] });
        apply(&mut state, Command::AttemptStarted { now_ms: 3, task_id: run, token });
        let end = Command::Complete {
            now_ms: 4,
            task_id: run,
            token,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            output_tail: "done".into(),
            error: None,
            result: None,
        };
        apply(&mut state, end);
        apply(
            &mut state,
            Command::Cancel { request_id: Some(format!("c-{cancel}")), now_ms: 5, task_id: cancel, reason: None },
        );
        // Blocked on the next task the walk cancels (unless that one failed with its parent).
        let parent = cancel - 1;
        let spec = TaskSpec { idempotency_key: Some(format!("late-{rounds}")), depends_on: vec![parent], ..valid() };
        let submit =
            Command::Submit { request_id: Some(format!("late-{rounds}")), now_ms: 6, spec, reuse: Reuse::SameBody };
        apply(&mut state, submit);
        rounds += 1;
    }
    let got = encoder.join().expect("the encoder thread panicked");
    assert!(rounds >= 200, "only {rounds} rounds of apply ran beside the encoder");
    assert!(got == then, "the frozen copy's bytes differ from the state's at the freeze");
    assert!(format::encode_state(&state).unwrap() != then, "apply changed nothing the snapshot would see");
    state.check_invariants().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Validation.

fn valid() -> TaskSpec {
    TaskSpec { command: vec!["echo".into(), "hi".into()], ..TaskSpec::default() }
}

#[test]
fn default_spec_needs_only_a_command() {
    assert_eq!(valid().validate(), Ok(()));
    let d = TaskSpec::default();
    assert_eq!(d.priority, 500);
    assert_eq!(d.retry.max_attempts, 1);
    assert_eq!(d.failover, FailoverPolicy::Resume);
    assert_eq!(d.placement, PlacementStrategy::PriorityFcfs);
    assert_eq!(d.validate().unwrap_err().field, "command");
}

#[test]
fn validate_names_the_offending_field() {
    type Break = fn(&mut TaskSpec);
    let cases: &[(&str, Break)] = &[
        ("command", |s| s.command.clear()),
        ("command[0]", |s| s.command[0].clear()),
        ("command[1]", |s| s.command[1] = "a\0b".into()),
        ("command", |s| s.command = vec!["x".into(); MAX_ARGS + 1]),
        ("name", |s| s.name = "n".repeat(MAX_NAME_BYTES + 1)),
        ("priority", |s| s.priority = 1001),
        ("env.TASKRAFT_TASK_ID", |s| {
            s.env.insert("TASKRAFT_TASK_ID".into(), "1".into());
        }),
        ("env.A=B", |s| {
            s.env.insert("A=B".into(), "1".into());
        }),
        ("env", |s| {
            s.env.insert(String::new(), "1".into());
        }),
        ("working_dir", |s| s.working_dir = Some("".into())),
        ("constraints", |s| {
            s.constraints.insert(String::new(), "a".into());
        }),
        ("placement.consistent_hash.key", |s| s.placement = PlacementStrategy::ConsistentHash { key: String::new() }),
        ("prefer.labels", |s| s.prefer = prefer(&[])),
        ("prefer.labels", |s| s.prefer = prefer(&[("", "a")])),
        ("prefer.labels.zone", |s| s.prefer = prefer(&[("zone", &"a".repeat(MAX_KEY_BYTES + 1))])),
        ("timeout_ms", |s| s.timeout_ms = Some(0)),
        ("retry.max_attempts", |s| s.retry.max_attempts = 0),
        ("retry.max_attempts", |s| s.retry.max_attempts = MAX_RETRY_ATTEMPTS + 1),
        ("retry.backoff_multiplier_permille", |s| s.retry.backoff_multiplier_permille = 999),
        ("retry.backoff_initial_ms", |s| s.retry.backoff_initial_ms = s.retry.backoff_max_ms + 1),
        ("idempotency_key", |s| s.idempotency_key = Some("k".repeat(MAX_KEY_BYTES + 1))),
        ("idempotency_key", |s| s.idempotency_key = Some(String::new())),
        ("shard.total", |s| s.shard = Some(Shard { index: 0, total: 0 })),
        ("shard.index", |s| s.shard = Some(Shard { index: 4, total: 4 })),
        ("depends_on[0]", |s| s.depends_on = vec![0]),
        ("depends_on[1]", |s| s.depends_on = vec![3, 3]),
        ("origin.schedule.schedule_id", |s| {
            s.origin = TaskOrigin::Claimed { schedule_id: String::new(), nominal_time_ms: 0 }
        }),
    ];
    for (field, breaker) in cases {
        let mut spec = valid();
        breaker(&mut spec);
        let err = spec.validate().expect_err(field);
        assert_eq!(&err.field, field, "{err}");
        assert!(!err.message.is_empty());
    }
}

fn prefer(labels: &[(&str, &str)]) -> Option<Box<Preferences>> {
    Some(Box::new(Preferences { labels: labels.iter().map(|&(k, v)| (k.to_string(), v.to_string())).collect() }))
}

#[test]
fn preferences_are_a_field_beside_the_strategy() {
    let spec: TaskSpec = serde_json::from_str(
        r#"{"command": ["true"], "placement": "least_loaded", "prefer": {"labels": {"zone": "a"}}}"#,
    )
    .unwrap();
    assert_eq!(spec.placement, PlacementStrategy::LeastLoaded);
    assert_eq!(spec.prefer, prefer(&[("zone", "a")]));
    assert_eq!(spec.validate(), Ok(()));
    let back: TaskSpec = postcard::from_bytes(&postcard::to_stdvec(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn executor_arguments_are_checked_at_the_edge_only() {
    let with = |executor: Executor, args: &[&str]| TaskSpec {
        executor,
        command: args.iter().map(|a| a.to_string()).collect(),
        ..TaskSpec::default()
    };
    let field = |s: TaskSpec| s.validate().map_err(|e| e.field);
    assert_eq!(field(with(Executor::Sleep, &["50"])), Ok(()));
    assert_eq!(field(with(Executor::Sleep, &["abc"])), Err("command[0]".into()));
    assert_eq!(field(with(Executor::Sleep, &[])), Err("command".into()));
    assert_eq!(field(with(Executor::Sleep, &["1", "2"])), Err("command".into()));
    assert_eq!(field(with(Executor::Sleep, &[&(MAX_SLEEP_MS + 1).to_string()])), Err("command[0]".into()));
    assert_eq!(field(with(Executor::Noop, &[])), Ok(()));
    assert_eq!(field(with(Executor::Noop, &["x"])), Err("command".into()));
    assert_eq!(field(with(Executor::Http, &["http://127.0.0.1:9/x", "POST", "{}"])), Ok(()));
    assert_eq!(field(with(Executor::Http, &["https://example.com"])), Err("command[0]".into()));
    assert_eq!(field(with(Executor::Http, &["ftp://x"])), Err("command[0]".into()));
    assert_eq!(field(with(Executor::Http, &["http://"])), Err("command[0]".into()));
    assert_eq!(field(with(Executor::Http, &["http://h", "GET /"])), Err("command[1]".into()));
    assert_eq!(field(with(Executor::Http, &[])), Err("command".into()));
    assert_eq!(field(with(Executor::Exec, &["taskraft:sleep", "5"])), Err("command[0]".into()));
    // apply keeps format 1's rules: every one of these was (or could have been) committed.
    for s in [with(Executor::Sleep, &["abc"]), with(Executor::Noop, &["x"]), with(Executor::Http, &[])] {
        assert_eq!(s.validate_replicated(), Ok(()));
    }
}

#[test]
fn the_builtin_shorthand_expands_to_the_executor_field() {
    let mut spec = TaskSpec { command: vec!["taskraft:sleep".into(), "50".into()], ..TaskSpec::default() };
    spec.expand_shorthand().unwrap();
    assert_eq!((spec.executor, spec.command.clone()), (Executor::Sleep, vec!["50".to_string()]));
    let mut spec = TaskSpec { command: vec!["taskraft:noop".into()], ..TaskSpec::default() };
    spec.expand_shorthand().unwrap();
    assert_eq!((spec.executor, spec.command.len()), (Executor::Noop, 0));
    let mut spec = TaskSpec { command: vec!["taskraft:nope".into()], ..TaskSpec::default() };
    let err = spec.expand_shorthand().unwrap_err();
    assert!(err.message.contains("taskraft:nope") && err.message.contains("sleep"), "{err}");
    let mut plain = TaskSpec { command: vec!["echo".into()], ..TaskSpec::default() };
    plain.expand_shorthand().unwrap();
    assert_eq!(plain.executor, Executor::Exec);
}

#[test]
fn working_dir_is_absolute_or_stays_inside_the_attempt_directory() {
    let with = |dir: &str| TaskSpec { working_dir: Some(dir.into()), ..valid() };
    assert_eq!(with("/srv/app").validate(), Ok(()));
    assert_eq!(with("data/out").validate(), Ok(()));
    assert_eq!(with("./data").validate(), Ok(()));
    assert_eq!(with("../../etc").validate().unwrap_err().field, "working_dir");
    assert_eq!(with("a/../../b").validate().unwrap_err().field, "working_dir");
    let noop = TaskSpec { executor: Executor::Noop, command: vec![], working_dir: Some("/tmp".into()), ..valid() };
    assert_eq!(noop.validate().unwrap_err().field, "working_dir");
    assert_eq!(with("../../etc").validate_replicated(), Ok(()), "apply keeps the format-1 rule");
}

#[test]
fn validate_accepts_the_edges() {
    let mut spec = valid();
    spec.priority = MAX_PRIORITY;
    spec.retry.max_attempts = MAX_RETRY_ATTEMPTS;
    spec.shard = Some(Shard { index: 3, total: 4 });
    spec.idempotency_key = Some("k".repeat(MAX_KEY_BYTES));
    spec.name = String::new();
    spec.env.insert("PATH".into(), "/bin".into());
    spec.depends_on = vec![1, 2];
    assert_eq!(spec.validate(), Ok(()));
}

#[test]
fn batch_rejection_points_into_the_batch() {
    let mut state = State::default();
    let mut broken = valid();
    broken.retry.max_attempts = 0;
    let resp = state.apply(
        1,
        Command::SubmitBatch { request_id: None, now_ms: 1, specs: vec![valid(), broken], reuse: Reuse::SameBody },
    );
    match resp {
        Response::Rejected(r) => {
            assert_eq!(r.code, RejectCode::Invalid);
            assert!(r.message.starts_with("specs[1].retry.max_attempts:"), "{}", r.message);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(state.next_task_id(), 1, "a rejected batch allocates nothing");
}

#[test]
fn backoff_grows_and_caps() {
    let r = RetryPolicy {
        max_attempts: 10,
        backoff_initial_ms: 100,
        backoff_multiplier_permille: 1500,
        backoff_max_ms: 400,
    };
    let waits: Vec<u64> = (1..=6).map(|n| r.backoff_ms(n)).collect();
    assert_eq!(waits, [100, 150, 225, 337, 400, 400]);
    let huge = RetryPolicy {
        backoff_initial_ms: u64::MAX,
        backoff_max_ms: u64::MAX,
        backoff_multiplier_permille: 100_000,
        ..r
    };
    assert_eq!(huge.backoff_ms(100), u64::MAX);
}

#[test]
fn json_spec_defaults_and_typos() {
    let spec: TaskSpec = serde_json::from_str(r#"{"command":["echo","hi"]}"#).unwrap();
    assert_eq!(spec, valid());
    let hashed: TaskSpec =
        serde_json::from_str(r#"{"command":["x"],"placement":{"consistent_hash":{"key":"k"}},"failover":"restart"}"#)
            .unwrap();
    assert_eq!(hashed.placement, PlacementStrategy::ConsistentHash { key: "k".into() });
    assert_eq!(hashed.failover, FailoverPolicy::Restart);
    assert!(serde_json::from_str::<TaskSpec>(r#"{"command":["x"],"priorty":3}"#).is_err());
    assert_eq!(serde_json::to_string(&TaskState::RetryWait).unwrap(), r#""retry_wait""#);
}

#[test]
fn worker_registration_is_validated() {
    let mut state = State::default();
    let reg = WorkerRegistration {
        id: "w1".into(),
        api_addr: Some("w1:1".into()),
        slots: 0,
        cpu_millis: 0,
        memory_mib: 0,
        labels: BTreeMap::new(),
        ..WorkerRegistration::default()
    };
    match state.apply(1, Command::RegisterWorker { now_ms: 0, worker: reg }) {
        Response::Rejected(r) => assert_eq!(r.message, "worker.slots: must be at least 1"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn long_reports_are_truncated_not_refused() {
    let mut state = State::default();
    state.apply(1, Command::Submit { request_id: None, now_ms: 0, spec: valid(), reuse: Reuse::SameBody });
    let reg = WorkerRegistration {
        id: "w".into(),
        api_addr: Some("w:1".into()),
        slots: 1,
        cpu_millis: 0,
        memory_mib: 0,
        labels: BTreeMap::new(),
        ..WorkerRegistration::default()
    };
    state.apply(2, Command::RegisterWorker { now_ms: 0, worker: reg });
    state.apply(3, Command::Assign { now_ms: 0, assignments: vec![(1, "w".into())] });
    let resp = state.apply(
        4,
        Command::Complete {
            now_ms: 0,
            task_id: 1,
            token: 3,
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            output_tail: format!("{}é-end", "x".repeat(10_000)),
            error: Some("é".repeat(MAX_ERROR_BYTES)),
            result: None,
        },
    );
    let Response::Completed { task } = resp else { panic!("expected completion, got {resp:?}") };
    let a = &task.attempts[0];
    assert!(a.output_tail.len() <= MAX_OUTPUT_TAIL_BYTES && a.output_tail.ends_with("é-end"));
    assert!(a.error.as_ref().unwrap().len() <= MAX_ERROR_BYTES);
}

/// Workers never send a result over the limit (they fail the attempt instead), but apply must
/// not keep one that arrives anyway, nor leave the attempt live by refusing the completion.
#[test]
fn a_result_over_the_limit_is_dropped_with_a_note() {
    let mut state = State::default();
    state.apply(1, Command::Submit { request_id: None, now_ms: 0, spec: valid(), reuse: Reuse::SameBody });
    let reg = WorkerRegistration { id: "w".into(), slots: 1, ..WorkerRegistration::default() };
    state.apply(2, Command::RegisterWorker { now_ms: 0, worker: reg });
    state.apply(3, Command::Assign { now_ms: 0, assignments: vec![(1, "w".into())] });
    let complete = |result: Vec<u8>| Command::Complete {
        now_ms: 0,
        task_id: 1,
        token: 3,
        outcome: AttemptOutcome::Succeeded,
        exit_code: Some(0),
        output_tail: String::new(),
        error: None,
        result: Some(result),
    };
    let resp = state.apply(4, complete(vec![b'x'; MAX_RESULT_BYTES + 1]));
    let Response::Completed { task } = resp else { panic!("expected completion, got {resp:?}") };
    assert_eq!((task.state, task.result.is_none()), (TaskState::Succeeded, true));
    let error = task.attempts[0].error.as_deref().unwrap_or_default();
    assert!(error.contains(&format!("result of {} bytes dropped", MAX_RESULT_BYTES + 1)), "{error}");
    state.check_invariants().unwrap();
}

/// Throughput and memory at the design's scale. Run with
/// `cargo test --release -- --ignored million --nocapture`.
#[test]
#[ignore]
fn million_tasks() {
    let mut state = State::default();
    let started = std::time::Instant::now();
    let batch = 1000;
    for b in 0..1000u64 {
        let specs = (0..batch)
            .map(|i| TaskSpec {
                name: format!("task-{b}-{i}"),
                command: vec!["/bin/run".into(), "--id".into(), format!("{i}")],
                idempotency_key: Some(format!("key-{b}-{i}")),
                ..TaskSpec::default()
            })
            .collect();
        let resp = state.apply(
            b + 1,
            Command::SubmitBatch { request_id: Some(format!("req-{b}")), now_ms: b, specs, reuse: Reuse::SameBody },
        );
        assert!(matches!(resp, Response::Submitted { .. }));
    }
    let elapsed = started.elapsed();
    println!("1M submits in {elapsed:?}: {:.0} tasks/s", 1e6 / elapsed.as_secs_f64());
    let q = state.query(&Query::ListTasks { state: Some(TaskState::Pending), after: Some(500_000), limit: 10 });
    assert!(matches!(q, QueryResponse::Tasks { ref tasks, .. } if tasks.len() == 10));
    println!("RSS with 1M pending tasks: {} MiB", rss_mib());
    let started = std::time::Instant::now();
    let snapshot = postcard::to_stdvec(&state).unwrap();
    println!("snapshot: {} MB in {:?}", snapshot.len() / 1_000_000, started.elapsed());

    // What a snapshot does to apply: freeze (under the lock, in the node), encode the copy on
    // another thread, and time every command applied meanwhile.
    let worker =
        WorkerRegistration { id: "w".into(), slots: 10_000, cpu_millis: 1000, memory_mib: 512, ..Default::default() };
    let mut index = 1001;
    state.apply(index, Command::RegisterWorker { now_ms: 1, worker });
    let then = format::encode_state(&state).unwrap();
    let started = std::time::Instant::now();
    let frozen = state.freeze();
    println!("freeze: {:?}", started.elapsed());
    let encoder = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let bytes = frozen.encode().unwrap();
        (bytes, started.elapsed())
    });
    let mut took = Vec::new();
    let mut task = 0;
    while !encoder.is_finished() {
        // Spread over the whole id range, so that most writes copy a shared path.
        task = (task + 7919) % 1_000_000;
        index += 1;
        let cmd = Command::Assign { now_ms: 2, assignments: vec![(task + 1, "w".into())] };
        let t = std::time::Instant::now();
        state.apply(index, cmd);
        index += 1;
        state.apply(
            index,
            Command::Complete {
                now_ms: 3,
                task_id: task + 1,
                token: index - 1,
                outcome: AttemptOutcome::Succeeded,
                exit_code: Some(0),
                output_tail: String::new(),
                error: None,
                result: None,
            },
        );
        took.push(t.elapsed());
    }
    let (bytes, encoding) = encoder.join().unwrap();
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
    println!(
        "encoded {} MB in {encoding:?} while {} assign+complete pairs applied: p50 {:?} p99 {:?} max {:?}; RSS {} MiB",
        bytes.len() / 1_000_000,
        took.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        rss_mib()
    );
    assert!(bytes == then, "the frozen copy encodes the state at the freeze");
    let started = std::time::Instant::now();
    let decoded = format::decode_state(&bytes).unwrap();
    println!("decode (install): {:?}", started.elapsed());
    let started = std::time::Instant::now();
    drop(decoded);
    println!("drop: {:?}", started.elapsed());
}

/// Memory with a million *finished* tasks (one succeeded attempt each, as `bench e2e` leaves
/// them), then what retention gives back: every task forgotten in bounded `Forget`s, and
/// refilled. `cargo test --release -- --ignored million_finished --nocapture`.
#[test]
#[ignore]
fn million_finished_tasks() {
    let mut state = State::default();
    let worker =
        WorkerRegistration { id: "w".into(), slots: 1000, cpu_millis: 1000, memory_mib: 512, ..Default::default() };
    let mut index = 1;
    state.apply(index, Command::RegisterWorker { now_ms: 1, worker });
    let fill = |state: &mut State, index: &mut u64, round: u64| {
        for b in 0..1000u64 {
            let specs = (0..1000)
                .map(|i| TaskSpec {
                    name: "e2e".into(),
                    executor: Executor::Noop,
                    idempotency_key: Some(format!("e2e-{round}-{b}-{i}")),
                    ..TaskSpec::default()
                })
                .collect();
            *index += 1;
            let now_ms = *index;
            let Response::Submitted { tasks } =
                state.apply(*index, Command::SubmitBatch { request_id: None, now_ms, specs, reuse: Reuse::SameBody })
            else {
                panic!("submit refused")
            };
            let ids: Vec<TaskId> = tasks.iter().map(|t| t.task.id).collect();
            *index += 1;
            let assign = *index;
            state.apply(
                assign,
                Command::Assign { now_ms, assignments: ids.iter().map(|&id| (id, "w".into())).collect() },
            );
            for id in ids {
                *index += 1;
                let end = Command::Complete {
                    now_ms,
                    task_id: id,
                    token: assign,
                    outcome: AttemptOutcome::Succeeded,
                    exit_code: Some(0),
                    output_tail: String::new(),
                    error: None,
                    result: None,
                };
                assert!(matches!(state.apply(*index, end), Response::Completed { .. }));
            }
        }
    };
    fill(&mut state, &mut index, 0);
    assert_eq!(state.finished_task_count(), 1_000_000);
    println!("RSS with 1M finished tasks: {} MiB (a task is {} bytes)", rss_mib(), std::mem::size_of::<Task>());
    let started = std::time::Instant::now();
    let mut slowest = std::time::Duration::ZERO;
    while state.finished_task_count() > 0 {
        index += 1;
        let t = std::time::Instant::now();
        state.apply(
            index,
            Command::Forget {
                now_ms: index,
                before_ms: u64::MAX,
                keep: 0,
                max: super::retention::MAX_FORGET_PER_COMMAND,
            },
        );
        slowest = slowest.max(t.elapsed());
    }
    println!(
        "forgot 1M tasks in {:?} ({} per command max, slowest apply {slowest:?}); RSS {} MiB",
        started.elapsed(),
        super::retention::MAX_FORGET_PER_COMMAND,
        rss_mib()
    );
    fill(&mut state, &mut index, 1);
    println!("RSS after refilling 1M finished tasks: {} MiB", rss_mib());
    state.check_invariants().unwrap();
}

/// This process's resident memory, from `/proc` (0 where there is none).
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok());
    kib.unwrap_or(0u64) / 1024
}

#[test]
fn many_applies_each_command_in_order_like_separate_entries() {
    let submit = |key: &str| Command::Submit {
        request_id: Some(format!("r-{key}")),
        now_ms: 5,
        spec: TaskSpec { idempotency_key: Some(key.to_string()), ..valid() },
        reuse: Reuse::SameBody,
    };
    let cmds = vec![
        submit("a"),
        submit("b"),
        submit("a"),
        Command::Cancel { request_id: None, now_ms: 6, task_id: 1, reason: None },
    ];
    let mut together = fresh();
    let Response::Many { responses } = together.apply(1, Command::Many { commands: cmds.clone() }) else {
        panic!("Many must answer Many");
    };
    let mut apart = fresh();
    let separate: Vec<Response> = cmds.into_iter().enumerate().map(|(i, c)| apart.apply(i as u64 + 1, c)).collect();
    assert_eq!(responses, separate);
    assert_eq!(together.tasks, apart.tasks);
    assert_eq!(together.next_task_id(), 3, "the repeated key must not create a third task");
    let nested = together.apply(2, Command::Many { commands: vec![Command::Many { commands: vec![] }] });
    assert!(
        matches!(&nested, Response::Many { responses } if matches!(responses[0], Response::Rejected(_))),
        "{nested:?}"
    );
}

#[test]
fn a_checkpoint_shows_as_text_or_base64_in_json() {
    let text = Checkpoint { data: b"37\n".to_vec(), attempt: 2, token: 9, at_ms: 5 };
    let json = serde_json::to_value(&text).unwrap();
    assert_eq!(json, serde_json::json!({"attempt": 2, "token": 9, "at_ms": 5, "size": 3, "text": "37\n"}));
    assert_eq!(serde_json::from_value::<Checkpoint>(json).unwrap(), text);

    let binary = Checkpoint { data: vec![0xff, 0x00, 0xfe], attempt: 1, token: 4, at_ms: 6 };
    let json = serde_json::to_value(&binary).unwrap();
    assert_eq!(json, serde_json::json!({"attempt": 1, "token": 4, "at_ms": 6, "size": 3, "base64": "/wD+"}));
    assert_eq!(serde_json::from_value::<Checkpoint>(json).unwrap(), binary);

    // postcard keeps the plain record: bytes, not text.
    let bytes = postcard::to_allocvec(&binary).unwrap();
    assert_eq!(postcard::from_bytes::<Checkpoint>(&bytes).unwrap(), binary);
    let both = serde_json::json!({"attempt": 1, "token": 4, "at_ms": 6, "text": "a", "base64": "YQ=="});
    assert!(serde_json::from_value::<Checkpoint>(both).is_err());
}

#[test]
fn a_page_holds_the_default_when_asked_for_zero_and_at_most_the_cap() {
    let mut state = fresh();
    let specs: Vec<TaskSpec> = (0..MAX_LIST_LIMIT + 5).map(|_| valid()).collect();
    let resp = state.apply(1, Command::SubmitBatch { request_id: None, now_ms: 1, specs, reuse: Reuse::SameBody });
    assert!(matches!(resp, Response::Submitted { .. }), "{resp:?}");
    let page = |limit| match state.query(&Query::ListTasks { state: None, after: None, limit }) {
        QueryResponse::Tasks { tasks, next_cursor } => (tasks.len(), next_cursor),
        other => panic!("{other:?}"),
    };
    assert_eq!(page(0), (DEFAULT_LIST_LIMIT as usize, Some(u64::from(DEFAULT_LIST_LIMIT))));
    assert_eq!(page(5000), (MAX_LIST_LIMIT as usize, Some(u64::from(MAX_LIST_LIMIT))));
    assert_eq!(page(7), (7, Some(7)));
}
