//! Placement tests: golden scripts for behaviour (`testdata/placement_*.script`), property tests
//! for the promises (apply accepts every plan; nothing is over-committed; a task left waiting
//! really fits nowhere; same seed, same plans), and unit tests pinning the hash and generator.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::super::*;
use super::choose::{XorShift64Star, fnv1a64};
use super::queue::{Queue, Runtimes};
use super::scan::ScanQueue;
use super::{MAX_RUNTIME_NAMES, rendezvous_hash};

// ---------------------------------------------------------------------------------------------
// A random cluster driven by the planner: workers come and go, attempts end, rounds dispatch.

#[derive(Debug, Clone)]
struct WorkerSeed {
    slots: u32,
    cpu: u32,
    mem: u32,
    zone: u8,
}

#[derive(Debug, Clone)]
struct TaskSeed {
    priority: u32,
    cpu: u32,
    mem: u32,
    zone: u8,
    strategy: u8,
    key: u8,
    name: u8,
    retries: bool,
    /// Concurrency key: 0 none, 1 `a`, 2 `b` (limits come and go on both).
    ckey: u8,
}

#[derive(Debug, Clone)]
enum Step {
    /// A dispatch round with these workers live (bit i = worker i), `advance` ms later.
    Round {
        live: u8,
        advance: u64,
    },
    Submit(TaskSeed),
    /// The live attempt of the `pick`-th running task ends.
    Finish {
        pick: u8,
        outcome: u8,
        runtime: u64,
    },
    /// 0 drain, 1 lost, 2 remove, 3 register again.
    Fate {
        worker: u8,
        fate: u8,
    },
    /// Sets (`Some`) or removes the limit of concurrency key `a` (0) or `b` (1).
    Limit {
        key: u8,
        max: Option<u32>,
    },
}

const WORKERS: usize = 6;

fn worker_seed() -> impl Strategy<Value = WorkerSeed> {
    (
        1..4u32,
        prop_oneof![Just(0u32), Just(1000), Just(2000), Just(4000)],
        prop_oneof![Just(0u32), Just(512), Just(2048)],
        0..3u8,
    )
        .prop_map(|(slots, cpu, mem, zone)| WorkerSeed { slots, cpu, mem, zone })
}

fn task_seed() -> impl Strategy<Value = TaskSeed> {
    (
        0..=1000u32,
        prop_oneof![3 => Just(0u32), 1 => Just(250), 1 => Just(500), 1 => Just(1500), 1 => Just(5000)],
        prop_oneof![3 => Just(0u32), 1 => Just(256), 1 => Just(1024)],
        prop_oneof![4 => Just(0u8), 1 => Just(1), 1 => Just(2)],
        0..8u8,
        0..4u8,
        0..4u8,
        any::<bool>(),
        prop_oneof![2 => Just(0u8), 1 => Just(1), 1 => Just(2)],
    )
        .prop_map(|(priority, cpu, mem, zone, strategy, key, name, retries, ckey)| TaskSeed {
            priority,
            cpu,
            mem,
            zone,
            strategy,
            key,
            name,
            retries,
            ckey,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<u8>(), prop_oneof![Just(0u64), Just(500), Just(3000)]).prop_map(|(live, advance)| Step::Round { live, advance }),
        4 => task_seed().prop_map(Step::Submit),
        3 => (any::<u8>(), 0..3u8, 0..5000u64).prop_map(|(pick, outcome, runtime)| Step::Finish { pick, outcome, runtime }),
        1 => (0..WORKERS as u8, 0..4u8).prop_map(|(worker, fate)| Step::Fate { worker, fate }),
        1 => (0..2u8, proptest::option::of(0..4u32)).prop_map(|(key, max)| Step::Limit { key, max }),
    ]
}

fn zone_labels(zone: u8) -> BTreeMap<String, String> {
    match zone {
        0 => BTreeMap::new(),
        z => BTreeMap::from([("zone".to_string(), if z == 1 { "a" } else { "b" }.to_string())]),
    }
}

fn registration(i: usize, w: &WorkerSeed) -> WorkerRegistration {
    WorkerRegistration {
        id: format!("w{i}"),
        api_addr: None,
        host: String::new(),
        pid: None,
        slots: w.slots,
        cpu_millis: w.cpu,
        memory_mib: w.mem,
        labels: zone_labels(w.zone),
    }
}

fn spec(t: &TaskSeed) -> TaskSpec {
    let placement = match t.strategy {
        0 => PlacementStrategy::PriorityFcfs,
        1 => PlacementStrategy::ShortestJobFirst,
        2 => PlacementStrategy::LeastLoaded,
        3 => PlacementStrategy::BestFit,
        4 => PlacementStrategy::RoundRobin,
        5 => PlacementStrategy::WeightedRoundRobin,
        6 => PlacementStrategy::Random,
        _ => PlacementStrategy::ConsistentHash { key: format!("key-{}", t.key) },
    };
    let mut spec = TaskSpec {
        name: format!("job-{}", t.name),
        command: vec!["true".into()],
        priority: t.priority,
        resources: Resources { cpu_millis: t.cpu, memory_mib: t.mem },
        constraints: zone_labels(t.zone),
        placement,
        ..TaskSpec::default()
    };
    spec.concurrency_key = match t.ckey {
        0 => None,
        k => Some(limit_key(k - 1).to_string()),
    };
    if t.retries {
        spec.retry.max_attempts = 3;
        spec.retry.backoff_initial_ms = 1000;
    }
    spec
}

/// What the worker offers minus what its live attempts reserve; `None` for an untracked resource.
fn free(state: &State, w: &WorkerInfo) -> (u64, Option<i64>, Option<i64>) {
    let live: Vec<&Task> = state.live_tasks_on(&w.id).filter_map(|id| state.task(id)).collect();
    let cpu: i64 = live.iter().map(|t| i64::from(t.spec.resources.cpu_millis)).sum();
    let mem: i64 = live.iter().map(|t| i64::from(t.spec.resources.memory_mib)).sum();
    let slots = u64::from(w.slots).saturating_sub(live.len() as u64);
    let left = |cap: u32, used: i64| (cap > 0).then(|| i64::from(cap) - used);
    (slots, left(w.cpu_millis, cpu), left(w.memory_mib, mem))
}

fn limit_key(k: u8) -> &'static str {
    if k == 0 { "a" } else { "b" }
}

/// An independent statement of "fits": what the planner must never leave unused. A task whose
/// key is at its limit fits nowhere (counted from the tasks, not from the state's permits).
fn fits_somewhere(state: &State, live: &BTreeSet<String>, spec: &TaskSpec) -> Option<String> {
    if let Some(key) = &spec.concurrency_key
        && let Some(max) = state.limit_view(key).max_running
    {
        let running = state
            .tasks
            .values()
            .filter(|t| t.spec.concurrency_key.as_ref() == Some(key) && t.live_attempt().is_some())
            .count();
        if running >= max as usize {
            return None;
        }
    }
    state
        .workers()
        .filter(|w| w.state == WorkerState::Active && live.contains(&w.id) && w.satisfies(&spec.constraints))
        .find(|w| {
            let (slots, cpu, mem) = free(state, w);
            slots > 0
                && cpu.is_none_or(|c| i64::from(spec.resources.cpu_millis) <= c)
                && mem.is_none_or(|m| i64::from(spec.resources.memory_mib) <= m)
        })
        .map(|w| w.id.clone())
}

struct Sim {
    state: State,
    index: u64,
    now: u64,
    workers: Vec<WorkerSeed>,
}

impl Sim {
    fn apply(&mut self, cmd: Command) -> Response {
        self.index += 1;
        self.now += 100;
        let resp = self.state.apply(self.index, cmd);
        assert_eq!(self.state.check_invariants(), Ok(()));
        resp
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// For any cluster and backlog: apply accepts every pair of every plan (the plan never
    /// over-commits slots, breaks constraints or exceeds a concurrency limit, even with many
    /// tasks of one key in one round), cpu and memory are never promised twice, only active live
    /// workers get work, a task left waiting fits nowhere (or its key is at its limit), and two
    /// planners with the same seed and the same inputs make the same plans.
    #[test]
    fn plans_are_accepted_complete_and_deterministic(
        workers in proptest::collection::vec(worker_seed(), 1..=WORKERS),
        tasks in proptest::collection::vec(task_seed(), 0..25),
        steps in proptest::collection::vec(step(), 1..40),
        seed in any::<u64>(),
        max_per_round in prop_oneof![Just(1usize), Just(3), Just(1024)],
        aging in prop_oneof![Just(0u64), Just(1000)],
        limit_a in proptest::option::of(0..4u32),
    ) {
        let options = PlacementOptions { max_per_round, aging_ms_per_priority_point: aging, ..PlacementOptions::default() };
        let (mut a, mut b) = (Planner::new(options.clone(), seed), Planner::new(options, seed));
        let mut sim = Sim { state: State::default(), index: 0, now: 1_000, workers: workers.clone() };
        for (i, w) in workers.iter().enumerate() {
            let now_ms = sim.now;
            sim.apply(Command::RegisterWorker { now_ms, worker: registration(i, w) });
        }
        if limit_a.is_some() {
            let now_ms = sim.now;
            sim.apply(Command::SetLimit { now_ms, key: "a".into(), max_running: limit_a });
        }
        if !tasks.is_empty() {
            let now_ms = sim.now;
            sim.apply(Command::SubmitBatch { request_id: None, now_ms, specs: tasks.iter().map(spec).collect(), reuse: Reuse::SameBody });
        }
        for step in &steps {
            match step {
                Step::Round { live, advance } => {
                    sim.now += advance;
                    let live: BTreeSet<String> =
                        (0..sim.workers.len()).filter(|i| live & (1 << i) != 0).map(|i| format!("w{i}")).collect();
                    let now_ms = sim.now + 100;
                    let plan = a.plan(&sim.state, &live, now_ms);
                    prop_assert_eq!(&plan, &b.plan(&sim.state, &live, now_ms), "same seed, same inputs, different plans");
                    prop_assert_eq!(plan.eligible, plan.assignments.len() + plan.waiting.len() + plan.unexplained);
                    prop_assert!(plan.assignments.len() <= max_per_round);
                    for (task, worker) in &plan.assignments {
                        prop_assert!(live.contains(worker), "task {} planned on non-live {}", task, worker);
                        prop_assert!(!plan.waiting.contains_key(task));
                    }
                    let placed: BTreeSet<TaskId> = plan.assignments.iter().map(|(t, _)| *t).collect();
                    prop_assert_eq!(placed.len(), plan.assignments.len(), "a task planned twice");
                    if !plan.assignments.is_empty() {
                        let resp = sim.apply(Command::Assign { now_ms, assignments: plan.assignments.clone() });
                        let Response::Assigned { results } = resp else { panic!("Assign answered {resp:?}") };
                        for r in results {
                            prop_assert!(matches!(r.outcome, AssignOutcome::Assigned { .. }), "apply refused {:?}", r);
                        }
                    }
                    for w in sim.state.workers() {
                        let (_, cpu, mem) = free(&sim.state, w);
                        prop_assert!(cpu.is_none_or(|c| c >= 0), "worker {} cpu over-committed", w.id);
                        prop_assert!(mem.is_none_or(|m| m >= 0), "worker {} memory over-committed", w.id);
                    }
                    // A round that stopped for the cap may leave fitting tasks; any other may not.
                    if plan.assignments.len() < max_per_round {
                        for (&id, why) in &plan.waiting {
                            let task = sim.state.task(id).expect("waiting task exists");
                            let fit = fits_somewhere(&sim.state, &live, &task.spec);
                            prop_assert!(fit.is_none(), "task {} waits ({}) but fits {:?}", id, why, fit);
                        }
                        let due = sim.state.tasks_in(TaskState::RetryWait).filter(|t| t.retry_at_ms.is_none_or(|at| at <= now_ms));
                        for task in sim.state.tasks_in(TaskState::Pending).chain(due) {
                            let fit = fits_somewhere(&sim.state, &live, &task.spec);
                            prop_assert!(fit.is_none(), "task {} left {} but fits {:?}", task.id, task.state, fit);
                        }
                    }
                }
                Step::Submit(t) => {
                    let now_ms = sim.now;
                    sim.apply(Command::Submit { request_id: None, now_ms, spec: spec(t), reuse: Reuse::SameBody });
                }
                Step::Finish { pick, outcome, runtime } => {
                    let running: Vec<&Task> = sim.state.tasks_in(TaskState::Assigned).collect();
                    if running.is_empty() {
                        continue;
                    }
                    let task = running[*pick as usize % running.len()];
                    let (task_id, token) = (task.id, task.live_attempt().expect("assigned is live").fencing_token);
                    let name = task.spec.name.clone();
                    let outcome = [AttemptOutcome::Succeeded, AttemptOutcome::Failed, AttemptOutcome::Lost][*outcome as usize];
                    let now_ms = sim.now;
                    let resp = sim.apply(Command::Complete {
                        now_ms, task_id, token, outcome, exit_code: None, output_tail: String::new(), error: None, result: None,
                    });
                    prop_assert!(matches!(resp, Response::Completed { .. }), "{:?}", resp);
                    a.observe_runtime(&name, *runtime);
                    b.observe_runtime(&name, *runtime);
                }
                Step::Fate { worker, fate } => {
                    let i = *worker as usize % sim.workers.len();
                    let worker_id = format!("w{i}");
                    let now_ms = sim.now;
                    let cmd = match fate {
                        0 => Command::DrainWorker { now_ms, worker_id },
                        1 => Command::WorkerLost { now_ms, worker_id },
                        2 => Command::RemoveWorker { now_ms, worker_id },
                        _ => Command::RegisterWorker { now_ms, worker: registration(i, &sim.workers[i]) },
                    };
                    sim.apply(cmd);
                }
                Step::Limit { key, max } => {
                    let now_ms = sim.now;
                    sim.apply(Command::SetLimit { now_ms, key: limit_key(*key).to_string(), max_running: *max });
                }
            }
        }
    }

    /// Rendezvous hashing: adding a worker moves a key only onto the new worker.
    #[test]
    fn adding_a_worker_moves_keys_only_to_it(
        ids in proptest::collection::btree_set("[a-z0-9]{1,6}", 1..8),
        newcomer in "[A-Z]{1,6}",
        keys in proptest::collection::vec("[ -~]{1,12}", 1..20),
    ) {
        let register = |state: &mut State, index: u64, id: &str| {
            let worker = WorkerRegistration {
                id: id.to_string(), api_addr: None, host: String::new(), pid: None, slots: 64, cpu_millis: 0, memory_mib: 0, labels: BTreeMap::new(),
            };
            state.apply(index, Command::RegisterWorker { now_ms: 0, worker });
        };
        let mut state = State::default();
        for (i, id) in ids.iter().enumerate() {
            register(&mut state, i as u64 + 1, id);
        }
        let specs = keys
            .iter()
            .map(|k| TaskSpec {
                command: vec!["true".into()],
                placement: PlacementStrategy::ConsistentHash { key: k.clone() },
                ..TaskSpec::default()
            })
            .collect();
        state.apply(100, Command::SubmitBatch { request_id: None, now_ms: 0, specs, reuse: Reuse::SameBody });
        let everyone = |s: &State| s.workers().map(|w| w.id.clone()).collect::<BTreeSet<_>>();
        let before = Planner::new(PlacementOptions::default(), 1).plan(&state, &everyone(&state), 0);
        register(&mut state, 101, &newcomer);
        let after = Planner::new(PlacementOptions::default(), 2).plan(&state, &everyone(&state), 0);
        prop_assert_eq!(before.assignments.len(), keys.len());
        for ((t1, w1), (t2, w2)) in before.assignments.iter().zip(&after.assignments) {
            prop_assert_eq!(t1, t2);
            prop_assert!(w1 == w2 || *w2 == newcomer, "task {} moved {} -> {}", t1, w1, w2);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The indexed queue against the full scan it replaced: the same tasks, in the same order.

/// A task of a random backlog.
#[derive(Debug, Clone)]
struct QueuedSeed {
    /// Few levels, close together, so that aging makes levels tie and overtake each other.
    priority: u32,
    /// 0 default (follows the cluster), 1 SJF, 2 least loaded.
    strategy: u8,
    name: u8,
    /// Depends on the task submitted this many before it (0: none).
    parent: u8,
    /// Submit time relative to the previous command (negative: a leader whose clock is behind).
    dt: i64,
}

/// What happens to the `pick`-th task of the backlog, `dt` ms after the previous command.
#[derive(Debug, Clone)]
enum Fate {
    /// Assigned, then fails: retry_wait with a backoff (or failed for good).
    Fails,
    /// Assigned, then its worker loses it: pending again, ready from now.
    Lost,
    /// Assigned and succeeds: its children become pending.
    Succeeds,
    /// Assigned and left running.
    Runs,
    Cancelled,
}

fn queued_seed() -> impl Strategy<Value = QueuedSeed> {
    (prop_oneof![Just(0u32), Just(1), Just(2), Just(3), Just(500), Just(1000)], 0..3u8, 0..3u8, 0..4u8, -300..3000i64)
        .prop_map(|(priority, strategy, name, parent, dt)| QueuedSeed { priority, strategy, name, parent, dt })
}

fn fate() -> impl Strategy<Value = (u8, Fate, i64)> {
    let fate = prop_oneof![
        3 => Just(Fate::Fails),
        2 => Just(Fate::Lost),
        2 => Just(Fate::Succeeds),
        1 => Just(Fate::Runs),
        1 => Just(Fate::Cancelled),
    ];
    (any::<u8>(), fate, -300..3000i64)
}

/// A state reached through apply only (so the index is maintained the way it is in a replica),
/// with pending, blocked, running, retrying and finished tasks whose ready times spread out.
fn backlog(tasks: &[QueuedSeed], fates: &[(u8, Fate, i64)]) -> (State, u64) {
    let mut state = State::default();
    let (mut index, mut now) = (0u64, 1_000_000u64);
    let mut apply = |state: &mut State, cmd: Command| {
        index += 1;
        let response = state.apply(index, cmd);
        assert_eq!(state.check_invariants(), Ok(()));
        response
    };
    let later = |now: u64, dt: i64| now.saturating_add_signed(dt);
    let worker = WorkerRegistration { id: "w".into(), slots: 10_000, ..registration(0, &WORKER_SEED) };
    apply(&mut state, Command::RegisterWorker { now_ms: now, worker });
    for (i, t) in tasks.iter().enumerate() {
        now = later(now, t.dt);
        let placement =
            [PlacementStrategy::PriorityFcfs, PlacementStrategy::ShortestJobFirst, PlacementStrategy::LeastLoaded]
                [t.strategy as usize]
                .clone();
        let mut spec = TaskSpec {
            name: format!("job-{}", t.name),
            command: vec!["true".into()],
            priority: t.priority,
            placement,
            ..TaskSpec::default()
        };
        spec.retry.max_attempts = 3;
        spec.retry.backoff_initial_ms = 700;
        if t.parent > 0 && usize::from(t.parent) <= i {
            spec.depends_on = vec![(i + 1 - usize::from(t.parent)) as TaskId];
        }
        // A parent that already failed refuses the child: a few submits are rejected, fine.
        apply(&mut state, Command::Submit { request_id: None, now_ms: now, spec, reuse: Reuse::SameBody });
    }
    for (pick, fate, dt) in fates {
        now = later(now, *dt);
        let waiting: Vec<TaskId> = state
            .tasks_in(TaskState::Pending)
            .chain(state.tasks_in(TaskState::RetryWait))
            .chain(state.tasks_in(TaskState::Blocked))
            .map(|t| t.id)
            .collect();
        if waiting.is_empty() {
            break;
        }
        let task_id = waiting[usize::from(*pick) % waiting.len()];
        if let Fate::Cancelled = fate {
            apply(&mut state, Command::Cancel { request_id: None, now_ms: now, task_id, reason: None });
            continue;
        }
        let assign = Command::Assign { now_ms: now, assignments: vec![(task_id, "w".into())] };
        let Response::Assigned { results } = apply(&mut state, assign) else { panic!("Assign answered otherwise") };
        let AssignOutcome::Assigned { token, .. } = results[0].outcome else { continue };
        let outcome = match fate {
            Fate::Fails => AttemptOutcome::Failed,
            Fate::Lost => AttemptOutcome::Lost,
            Fate::Succeeds => AttemptOutcome::Succeeded,
            Fate::Runs | Fate::Cancelled => continue,
        };
        now = later(now, 250);
        let (output_tail, error) = (String::new(), None);
        apply(
            &mut state,
            Command::Complete {
                now_ms: now,
                task_id,
                token,
                outcome,
                exit_code: None,
                output_tail,
                error,
                result: None,
            },
        );
    }
    (state, now)
}

const WORKER_SEED: WorkerSeed = WorkerSeed { slots: 1, cpu: 0, mem: 0, zone: 0 };

/// Every task of both queues, in the order they hand them out.
fn both_orders(
    state: &State,
    now_ms: u64,
    options: &PlacementOptions,
    runtimes: &Runtimes,
) -> ((usize, Vec<TaskId>), (usize, Vec<TaskId>)) {
    let mut scan = ScanQueue::build(state, now_ms, options, runtimes);
    let scan_len = scan.len();
    let scan_order: Vec<TaskId> = std::iter::from_fn(|| scan.pop().map(|t| t.id)).collect();
    let mut queue = Queue::build(state, now_ms, options, runtimes);
    let len = queue.len();
    let order: Vec<TaskId> = std::iter::from_fn(|| queue.pop().map(|t| t.id)).collect();
    ((scan_len, scan_order), (len, order))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The indexed queue hands out exactly the tasks of the full scan, in exactly its order,
    /// and counts the same eligible tasks: for any backlog, clock (before, between and after
    /// the ready times and backoff ends, or at the ends of the range), aging, cluster default
    /// and runtime memory. A state decoded from its snapshot (index rebuilt) agrees too.
    #[test]
    fn indexed_queue_matches_the_full_scan(
        tasks in proptest::collection::vec(queued_seed(), 0..60),
        fates in proptest::collection::vec(fate(), 0..40),
        clocks in proptest::collection::vec(
            prop_oneof![6 => -5_000..60_000i64, 1 => Just(i64::MIN), 1 => Just(i64::MAX)], 1..6),
        aging in prop_oneof![Just(0u64), Just(1), Just(7), Just(250), Just(1000), Just(u64::MAX)],
        sjf_default in any::<bool>(),
        observed in proptest::collection::vec((0..3u8, 0..5000u64), 0..4),
    ) {
        let (state, now) = backlog(&tasks, &fates);
        let default_strategy =
            if sjf_default { PlacementStrategy::ShortestJobFirst } else { PlacementStrategy::PriorityFcfs };
        let options = PlacementOptions { default_strategy, aging_ms_per_priority_point: aging, ..PlacementOptions::default() };
        let mut runtimes = Runtimes::default();
        for (name, ms) in &observed {
            runtimes.observe(&format!("job-{name}"), *ms);
        }
        let decoded: State = postcard::from_bytes(&postcard::to_stdvec(&state).expect("encode")).expect("decode");
        prop_assert_eq!(&decoded, &state);
        for dt in clocks {
            let now_ms = match dt {
                i64::MIN => 0,
                i64::MAX => u64::MAX,
                dt => now.saturating_add_signed(dt - 30_000),
            };
            let (scan, indexed) = both_orders(&state, now_ms, &options, &runtimes);
            prop_assert_eq!(&scan, &indexed, "at {}", now_ms);
            prop_assert_eq!(both_orders(&decoded, now_ms, &options, &runtimes).1, indexed, "decoded, at {}", now_ms);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pinned definitions: these values are part of the contract (a key keeps its worker across
// builds and leaders), so a change here must be deliberate.

#[test]
fn fnv1a64_matches_the_reference_vectors() {
    assert_eq!(fnv1a64(&[]), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(&[b"foo"]), 0xdcb2_7518_fed9_d577);
    assert_eq!(fnv1a64(&[b"fo", b"o"]), fnv1a64(&[b"foo"]));
}

#[test]
fn rendezvous_hash_is_pinned_and_separates_key_from_worker() {
    assert_eq!(rendezvous_hash("alpha", "h1"), rendezvous_hash("alpha", "h1"));
    assert_ne!(rendezvous_hash("ab", "c"), rendezvous_hash("a", "bc"));
    let pinned = [rendezvous_hash("alpha", "h1"), rendezvous_hash("alpha", "h2"), rendezvous_hash("", "")];
    assert_eq!(pinned, PINNED_RENDEZVOUS, "the rendezvous hash changed: keys would move between workers");
}

/// Computed independently (a few lines of Python) from the definition in `rendezvous_hash`.
const PINNED_RENDEZVOUS: [u64; 3] = [0xd249_4157_6392_6e70, 0x1cb3_07ed_18c1_e6dd, 0x4f2d_b50f_1240_40cd];

#[test]
fn xorshift_is_seeded_reproducibly_and_stays_in_range() {
    let draws = |seed| {
        let mut r = XorShift64Star::new(seed);
        (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draws(7), draws(7));
    assert_ne!(draws(0), draws(1));
    assert!(draws(0).iter().all(|&x| x != 0));
    let mut r = XorShift64Star::new(3);
    let mut seen = [0u32; 5];
    for _ in 0..5000 {
        seen[r.below(5)] += 1;
    }
    assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "skewed draws {seen:?}");
}

#[test]
fn runtimes_average_forget_the_oldest_and_report_a_median() {
    let mut r = Runtimes::default();
    assert_eq!(r.typical(), 0);
    r.observe("", 5);
    assert_eq!(r.len(), 0, "unnamed tasks teach nothing");
    r.observe("a", 1000);
    r.observe("a", 2000);
    assert_eq!(r.estimate("a"), Some(1250));
    r.observe("a", 0);
    assert_eq!(r.estimate("a"), Some(938), "1250 - 1250/4, rounded toward the old value");
    r.observe("b", 10);
    r.observe("c", 5000);
    assert_eq!(r.typical(), 938);
    for i in 0..MAX_RUNTIME_NAMES {
        r.observe(&format!("n{i}"), 1);
    }
    assert_eq!(r.len(), MAX_RUNTIME_NAMES);
    assert_eq!(r.estimate("a"), None, "the least recently observed name goes first");
    assert_eq!(r.estimate("n0"), Some(1));
}

#[test]
fn observe_completed_learns_only_from_successes() {
    let mut p = Planner::new(PlacementOptions::default(), 0);
    let mut state = State::default();
    let reg = WorkerRegistration {
        id: "w".into(),
        api_addr: None,
        host: String::new(),
        pid: None,
        slots: 2,
        cpu_millis: 0,
        memory_mib: 0,
        labels: BTreeMap::new(),
    };
    state.apply(1, Command::RegisterWorker { now_ms: 0, worker: reg });
    let spec = TaskSpec { name: "n".into(), command: vec!["x".into()], ..TaskSpec::default() };
    state.apply(
        2,
        Command::SubmitBatch { request_id: None, now_ms: 0, specs: vec![spec.clone(), spec], reuse: Reuse::SameBody },
    );
    state.apply(3, Command::Assign { now_ms: 0, assignments: vec![(1, "w".into()), (2, "w".into())] });
    state.apply(4, Command::AttemptStarted { now_ms: 1000, task_id: 1, token: 3 });
    state.apply(5, Command::AttemptStarted { now_ms: 1000, task_id: 2, token: 3 });
    let end = |task_id, outcome| Command::Complete {
        now_ms: 4000,
        task_id,
        token: 3,
        outcome,
        exit_code: None,
        output_tail: String::new(),
        error: None,
        result: None,
    };
    let Response::Completed { task: failed } = state.apply(6, end(2, AttemptOutcome::Failed)) else { panic!() };
    p.observe_completed(&failed);
    assert_eq!(p.runtime_estimate("n"), None);
    let Response::Completed { task: ok } = state.apply(7, end(1, AttemptOutcome::Succeeded)) else { panic!() };
    p.observe_completed(&ok);
    assert_eq!(p.runtime_estimate("n"), Some(3000));
}

/// Cost of one round against a large backlog. Run with
/// `cargo test --release -p taskraft --lib -- --ignored plan_a_million --nocapture`.
#[test]
#[ignore]
fn plan_a_million() {
    let mut state = State::default();
    let mut index = 0;
    let mut next = || {
        index += 1;
        index
    };
    for i in 0..100u32 {
        let labels = BTreeMap::from([("zone".to_string(), format!("z{}", i % 4))]);
        let worker = WorkerRegistration {
            id: format!("w{i:03}"),
            api_addr: None,
            host: String::new(),
            pid: None,
            slots: 16,
            cpu_millis: 16_000,
            memory_mib: 65_536,
            labels,
        };
        state.apply(next(), Command::RegisterWorker { now_ms: 0, worker });
    }
    for b in 0..1000u64 {
        let specs = (0..1000u64)
            .map(|i| TaskSpec {
                name: format!("job-{}", i % 50),
                command: vec!["true".into()],
                priority: (i * 7 % 1000) as u32,
                resources: Resources { cpu_millis: 500, memory_mib: 256 },
                constraints: if i % 3 == 0 { zone_labels(1) } else { BTreeMap::new() },
                placement: [PlacementStrategy::PriorityFcfs, PlacementStrategy::BestFit, PlacementStrategy::Random]
                    [(i % 3) as usize]
                    .clone(),
                ..TaskSpec::default()
            })
            .collect();
        state.apply(next(), Command::SubmitBatch { request_id: None, now_ms: b, specs, reuse: Reuse::SameBody });
    }
    let live: BTreeSet<String> = state.workers().map(|w| w.id.clone()).collect();
    let mut planner = Planner::new(PlacementOptions::default(), 1);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let plan = planner.plan(&state, &live, 2_000_000);
        println!(
            "plan over {} eligible: {} placed, {} reasons, in {:?}",
            plan.eligible,
            plan.assignments.len(),
            plan.waiting.len(),
            started.elapsed()
        );
    }
}

/// Cost of a steady dispatch round against a 100k backlog: each round completes a quarter of
/// the running attempts, plans, and applies the `Assign`. Run with
/// `cargo test --release -p taskraft --lib -- --ignored plan_round_cost --nocapture`.
#[test]
#[ignore]
fn plan_round_cost() {
    const TASKS: u64 = 100_000;
    const ROUNDS: u64 = 200;
    let mut state = State::default();
    let mut index = 0;
    let mut next = || {
        index += 1;
        index
    };
    for i in 0..4u32 {
        let worker = WorkerRegistration {
            id: format!("w{i}"),
            api_addr: None,
            host: String::new(),
            pid: None,
            slots: 64,
            cpu_millis: 0,
            memory_mib: 0,
            labels: BTreeMap::new(),
        };
        state.apply(next(), Command::RegisterWorker { now_ms: 0, worker });
    }
    // 100 batches of 1000, 10 ms apart, over four priority levels.
    let submitting = std::time::Instant::now();
    for b in 0..TASKS / 1000 {
        let specs = (0..1000u64)
            .map(|i| TaskSpec {
                name: format!("job-{}", i % 50),
                command: vec!["true".into()],
                priority: [100, 500, 500, 900][(i % 4) as usize],
                ..TaskSpec::default()
            })
            .collect();
        state.apply(next(), Command::SubmitBatch { request_id: None, now_ms: b * 10, specs, reuse: Reuse::SameBody });
    }
    let submitted = submitting.elapsed();
    let live: BTreeSet<String> = state.workers().map(|w| w.id.clone()).collect();
    let mut planner = Planner::new(PlacementOptions::default(), 1);
    let (mut planning, mut total) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let mut placed = 0;
    for round in 0..ROUNDS {
        let now_ms = 2_000_000 + round * 5;
        let started = std::time::Instant::now();
        let running: Vec<(TaskId, u64)> = state
            .tasks_in(TaskState::Assigned)
            .take(64)
            .map(|t| (t.id, t.live_attempt().expect("assigned is live").fencing_token))
            .collect();
        for (task_id, token) in running {
            let outcome = AttemptOutcome::Succeeded;
            let (output_tail, error, exit_code) = (String::new(), None, Some(0));
            state.apply(
                next(),
                Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error, result: None },
            );
        }
        let planned = std::time::Instant::now();
        let plan = planner.plan(&state, &live, now_ms);
        planning += planned.elapsed();
        placed += plan.assignments.len();
        state.apply(next(), Command::Assign { now_ms, assignments: plan.assignments });
        total += started.elapsed();
    }
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / ROUNDS as f64;
    let snapshot = postcard::to_stdvec(&state).expect("encode");
    let decoding = std::time::Instant::now();
    let decoded: State = postcard::from_bytes(&snapshot).expect("decode");
    println!("plan_round_cost: decoding a snapshot of {} tasks took {:?}", decoded.task_count(), decoding.elapsed());
    println!(
        "plan_round_cost: {TASKS} tasks, {ROUNDS} rounds, {placed} placed: plan {:.1} µs/round, whole round {:.1} \
         µs/round; submitting took {:.2} µs/task",
        per(planning),
        per(total),
        submitted.as_secs_f64() * 1e6 / TASKS as f64
    );
}
