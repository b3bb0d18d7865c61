//! Format 1, frozen: the shapes the first release wrote, and their upgrade to today's types.
//!
//! Never edit a type here: these are the bytes on users' disks. Shapes format 1 shares with
//! today's code (`Resources`, `RetryPolicy`, `Attempt`, `Checkpoint`, `WorkerState`, the request
//! window, …) are today's types; before one of those changes, copy its current shape here (the
//! fixture test in `tests/fixtures.rs` fails until you do).

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use crate::scheduler as now;
use crate::scheduler::dedup::RequestWindow;
use crate::scheduler::state::TaskIndex;
use crate::scheduler::{
    Attempt, AttemptOutcome, Checkpoint, FailoverPolicy, Resources, RetryPolicy, Shard, TaskId, TaskOrigin, TaskState,
    WorkerState,
};

/// A format-1 command (log payloads were written without a version byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copies; today's `Command` documents every field")]
#[allow(clippy::large_enum_variant, reason = "the frozen shape of format 1; only decoded, then converted")]
pub enum Command {
    Submit {
        request_id: Option<String>,
        now_ms: u64,
        spec: TaskSpec,
    },
    SubmitBatch {
        request_id: Option<String>,
        now_ms: u64,
        specs: Vec<TaskSpec>,
    },
    Cancel {
        request_id: Option<String>,
        now_ms: u64,
        task_id: TaskId,
        reason: Option<String>,
    },
    RegisterWorker {
        now_ms: u64,
        worker: WorkerRegistration,
    },
    Assign {
        now_ms: u64,
        assignments: Vec<(TaskId, String)>,
    },
    AttemptStarted {
        now_ms: u64,
        task_id: TaskId,
        token: u64,
    },
    Checkpoint {
        now_ms: u64,
        task_id: TaskId,
        token: u64,
        data: Vec<u8>,
    },
    Complete {
        now_ms: u64,
        task_id: TaskId,
        token: u64,
        outcome: AttemptOutcome,
        exit_code: Option<i32>,
        output_tail: String,
        error: Option<String>,
    },
    WorkerLost {
        now_ms: u64,
        worker_id: String,
    },
    Noop,
    DrainWorker {
        now_ms: u64,
        worker_id: String,
    },
    RemoveWorker {
        now_ms: u64,
        worker_id: String,
    },
    MemberRemoved {
        now_ms: u64,
        node_id: u64,
    },
    Many {
        commands: Vec<Command>,
    },
    WorkerLostIncarnation {
        now_ms: u64,
        worker_id: String,
        registered_ms: u64,
    },
}

/// A format-1 task spec: no `executor` (chosen by a `taskraft:` argv prefix), no `prefer`
/// (preferences wrapped the placement strategy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
pub struct TaskSpec {
    pub name: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    pub priority: u32,
    pub resources: Resources,
    pub constraints: BTreeMap<String, String>,
    pub placement: PlacementStrategy,
    pub timeout_ms: Option<u64>,
    pub retry: RetryPolicy,
    pub failover: FailoverPolicy,
    pub idempotency_key: Option<String>,
    pub shard: Option<Shard>,
    pub depends_on: Vec<TaskId>,
    pub origin: TaskOrigin,
}

/// A format-1 placement strategy, with the `Prefer` wrapper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
pub enum PlacementStrategy {
    PriorityFcfs,
    ShortestJobFirst,
    LeastLoaded,
    BestFit,
    RoundRobin,
    WeightedRoundRobin,
    Random,
    ConsistentHash { key: String },
    Prefer { labels: BTreeMap<String, String>, then: Box<PlacementStrategy> },
}

/// A format-1 worker registration: `api_addr` was required (workers sent `ip:0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
pub struct WorkerRegistration {
    pub id: String,
    pub api_addr: String,
    pub slots: u32,
    pub cpu_millis: u32,
    pub memory_mib: u32,
    pub labels: BTreeMap<String, String>,
}

/// A format-1 worker record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
pub struct WorkerInfo {
    pub id: String,
    pub api_addr: String,
    pub slots: u32,
    pub cpu_millis: u32,
    pub memory_mib: u32,
    pub labels: BTreeMap<String, String>,
    pub state: WorkerState,
    pub registered_ms: u64,
    pub updated_ms: u64,
}

/// A format-1 task record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
pub struct Task {
    pub id: TaskId,
    pub spec: TaskSpec,
    pub state: TaskState,
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: Option<u64>,
    pub attempts: Vec<Attempt>,
    pub checkpoint: Option<Checkpoint>,
    pub cancel_requested: bool,
    pub cancel_reason: Option<String>,
    pub retry_at_ms: Option<u64>,
    pub last_error: Option<String>,
}

/// The format-1 state (a snapshot's payload after its version byte).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs, reason = "frozen copy")]
pub struct State {
    pub tasks: BTreeMap<TaskId, Box<Task>>,
    pub next_task_id: TaskId,
    pub last_applied_index: u64,
    pub idempotency: BTreeMap<String, TaskId>,
    pub(crate) requests: RequestWindow,
    pub workers: BTreeMap<String, WorkerInfo>,
    pub(crate) index: TaskIndex,
    pub live: BTreeMap<String, BTreeSet<TaskId>>,
    pub dependents: BTreeMap<TaskId, Vec<TaskId>>,
    pub removed_members: BTreeSet<u64>,
}

impl From<Command> for now::Command {
    fn from(c: Command) -> Self {
        // Format 1 applied every reused key or request id by replaying the first answer.
        let reuse = now::Reuse::AnyBody;
        match c {
            Command::Submit { request_id, now_ms, spec } => {
                now::Command::Submit { request_id, now_ms, spec: spec.into(), reuse }
            }
            Command::SubmitBatch { request_id, now_ms, specs } => {
                let specs = specs.into_iter().map(Into::into).collect();
                now::Command::SubmitBatch { request_id, now_ms, specs, reuse }
            }
            Command::Cancel { request_id, now_ms, task_id, reason } => {
                now::Command::Cancel { request_id, now_ms, task_id, reason }
            }
            Command::RegisterWorker { now_ms, worker } => {
                now::Command::RegisterWorker { now_ms, worker: worker.into() }
            }
            Command::Assign { now_ms, assignments } => now::Command::Assign { now_ms, assignments },
            Command::AttemptStarted { now_ms, task_id, token } => {
                now::Command::AttemptStarted { now_ms, task_id, token }
            }
            Command::Checkpoint { now_ms, task_id, token, data } => {
                now::Command::Checkpoint { now_ms, task_id, token, data }
            }
            Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error } => {
                now::Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error, result: None }
            }
            Command::WorkerLost { now_ms, worker_id } => now::Command::WorkerLost { now_ms, worker_id },
            Command::Noop => now::Command::Noop,
            Command::DrainWorker { now_ms, worker_id } => now::Command::DrainWorker { now_ms, worker_id },
            Command::RemoveWorker { now_ms, worker_id } => now::Command::RemoveWorker { now_ms, worker_id },
            Command::MemberRemoved { now_ms, node_id } => now::Command::MemberRemoved { now_ms, node_id },
            Command::Many { commands } => {
                now::Command::Many { commands: commands.into_iter().map(Into::into).collect() }
            }
            Command::WorkerLostIncarnation { now_ms, worker_id, registered_ms } => {
                now::Command::WorkerLostIncarnation { now_ms, worker_id, registered_ms }
            }
        }
    }
}

impl From<TaskSpec> for now::TaskSpec {
    fn from(s: TaskSpec) -> Self {
        let (placement, prefer) = s.placement.split();
        let mut spec = now::TaskSpec {
            name: s.name,
            executor: now::Executor::Exec,
            command: s.command,
            env: s.env,
            working_dir: s.working_dir.map(Into::into),
            priority: s.priority,
            resources: s.resources,
            constraints: s.constraints,
            placement,
            prefer: prefer.map(Box::new),
            timeout_ms: s.timeout_ms,
            retry: s.retry,
            failover: s.failover,
            idempotency_key: s.idempotency_key,
            shard: s.shard,
            depends_on: s.depends_on,
            origin: s.origin,
            concurrency_key: None,
            preemptible: None,
        };
        // Format 1 chose the executor from `command[0]`. An unknown `taskraft:` name stays an
        // `exec` program, which fails to start just as the unknown built-in failed before.
        if let Some(Ok(executor)) = spec.command.first().and_then(|p| now::Executor::from_shorthand(p)) {
            spec.executor = executor;
            spec.command.remove(0);
        }
        spec
    }
}

impl PlacementStrategy {
    /// Today's strategy and preferences. Format 1 never committed a `prefer` inside a `prefer`
    /// (its validation refused it); were one there, its labels would join the outer ones.
    fn split(self) -> (now::PlacementStrategy, Option<now::Preferences>) {
        use now::PlacementStrategy as P;
        let strategy = match self {
            PlacementStrategy::PriorityFcfs => P::PriorityFcfs,
            PlacementStrategy::ShortestJobFirst => P::ShortestJobFirst,
            PlacementStrategy::LeastLoaded => P::LeastLoaded,
            PlacementStrategy::BestFit => P::BestFit,
            PlacementStrategy::RoundRobin => P::RoundRobin,
            PlacementStrategy::WeightedRoundRobin => P::WeightedRoundRobin,
            PlacementStrategy::Random => P::Random,
            PlacementStrategy::ConsistentHash { key } => P::ConsistentHash { key },
            PlacementStrategy::Prefer { mut labels, then } => {
                let (strategy, inner) = then.split();
                for (k, v) in inner.map(|p| p.labels).unwrap_or_default() {
                    labels.entry(k).or_insert(v);
                }
                return (strategy, Some(now::Preferences { labels }));
            }
        };
        (strategy, None)
    }
}

/// Format-1 workers sent a placeholder address with port 0 (they serve nothing): no address.
fn api_addr(addr: String) -> Option<String> {
    (!addr.is_empty() && !addr.ends_with(":0")).then_some(addr)
}

impl From<WorkerRegistration> for now::WorkerRegistration {
    fn from(w: WorkerRegistration) -> Self {
        now::WorkerRegistration {
            id: w.id,
            host: String::new(),
            pid: None,
            api_addr: api_addr(w.api_addr),
            slots: w.slots,
            cpu_millis: w.cpu_millis,
            memory_mib: w.memory_mib,
            labels: w.labels,
        }
    }
}

impl From<WorkerInfo> for now::WorkerInfo {
    fn from(w: WorkerInfo) -> Self {
        now::WorkerInfo {
            id: w.id,
            host: String::new(),
            pid: None,
            api_addr: api_addr(w.api_addr),
            slots: w.slots,
            cpu_millis: w.cpu_millis,
            memory_mib: w.memory_mib,
            labels: w.labels,
            state: w.state,
            registered_ms: w.registered_ms,
            updated_ms: w.updated_ms,
        }
    }
}

impl From<Task> for now::Task {
    fn from(t: Task) -> Self {
        now::Task {
            id: t.id,
            spec: t.spec.into(),
            state: t.state,
            version: t.version,
            created_ms: t.created_ms,
            updated_ms: t.updated_ms,
            finished_ms: t.finished_ms,
            attempts: t.attempts,
            checkpoint: t.checkpoint.map(Box::new),
            cancel_requested: t.cancel_requested,
            cancel_reason: t.cancel_reason.map(Into::into),
            retry_at_ms: t.retry_at_ms,
            last_error: t.last_error.map(Into::into),
            result: None,
            preempted_by: None,
            preempted: Vec::new(),
        }
    }
}

impl From<State> for now::State {
    fn from(s: State) -> Self {
        now::State::from_parts(now::state::Parts {
            tasks: s.tasks.into_iter().map(|(id, t)| (id, now::Task::from(*t))).collect(),
            next_task_id: s.next_task_id,
            last_applied_index: s.last_applied_index,
            idempotency: s.idempotency.into_iter().collect(),
            requests: s.requests,
            workers: s.workers.into_iter().map(|(id, w)| (id, w.into())).collect(),
            index: s.index,
            live: super::persistent_sets(s.live),
            dependents: s.dependents.into_iter().collect(),
            removed_members: s.removed_members,
            schedules: Default::default(),
            next_schedule_id: 1,
            schedule_keys: Default::default(),
            schedule_runs: Default::default(),
            tokens: Default::default(),
            ..now::state::Parts::empty_additions()
        })
    }
}

/// openraft wants a `Display` on log payloads (the upgrade path decodes old entries with this).
impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "format-1 {:?}", std::mem::discriminant(self))
    }
}
