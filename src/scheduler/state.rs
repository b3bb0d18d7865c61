//! `State`: everything the cluster agrees on, and the two doors into it, `apply` and `query`.
//!
//! This file holds the state itself, its indexes, the dispatch of commands, submit, cancel and
//! the reads. What happens to attempts (assign, start, checkpoint, complete, lost workers) lives
//! in `lifecycle.rs`.
//!
//! Performance contract: no command scans all tasks or clones the state. Every index is an
//! ordered map, so the postcard bytes of two replicas that applied the same log are identical.
//! The one index that is not serialized, the dispatcher's [`ReadyIndex`], is derived: rebuilt
//! from the tasks whenever a state is decoded.
//!
//! Snapshots never stop apply for long: every map of the state is persistent (`imbl`, with
//! big records behind `Arc`s in a [`CowMap`]), so [`State::freeze`] copies the persisted state
//! in O(1) under the lock, and the snapshot encodes the [`Frozen`] copy while apply goes on. A
//! write after a freeze copies only the tree path and the record it touches. Only
//! `removed_members` (a few replica ids) stays a `BTreeSet`. The bytes are those the
//! `BTreeMap`s and `BTreeSet`s they replaced wrote.

use std::collections::{BTreeMap, BTreeSet};

use imbl::{OrdMap, OrdSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::command::{
    Command, Query, QueryResponse, RejectCode, Rejection, Response, Reuse, StateCounts, Stats, SubmittedTask,
};
use super::cow::CowMap;
use super::dedup::{REQUEST_DEDUP_CAPACITY, Recorded, RequestWindow};
use super::ready::ReadyIndex;
use super::retention::{ForgottenRuns, SettledWorkflows};
use super::schedule::{Runs, Schedule, ScheduleId};
use super::task::{Task, TaskId, TaskSpec, TaskState};
use super::token::ApiToken;
use super::worker::{WorkerInfo, WorkerState};
use super::workflow::{Workflow, WorkflowId};

/// Page size of `ListTasks` when the query says 0.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Largest page `ListTasks` returns, whatever the query asks.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// Most specs in one `SubmitBatch`; bigger batches belong in several log entries.
pub const MAX_BATCH: usize = 10_000;
/// Most characters of a cancel reason kept.
pub const MAX_REASON_BYTES: usize = 1024;

/// Tunables that shape the replicated state. They are stored *inside* the state (and so in
/// snapshots), because every replica must use the same values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOptions {
    /// Capacity of the request-id window (see [`REQUEST_DEDUP_CAPACITY`]).
    pub request_dedup_capacity: usize,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions { request_dedup_capacity: REQUEST_DEDUP_CAPACITY }
    }
}

/// Tasks by state plus per-state counters, kept in step with every task's `state` field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskIndex {
    by_state: OrdSet<(TaskState, TaskId)>,
    counts: StateCounts,
    /// Terminal tasks that retention forgets one by one (all but workflow tasks, which go with
    /// their workflow), by `(finished_ms, id)`: oldest first. Derived: never serialized (the
    /// bytes are those of the two fields above), rebuilt on decode by [`Self::rebuild_finished`].
    #[serde(skip)]
    pub(crate) finished: OrdSet<(u64, TaskId)>,
}

impl TaskIndex {
    fn insert(&mut self, id: TaskId, state: TaskState) {
        assert!(self.by_state.insert((state, id)).is_none(), "task {id} indexed twice");
        *self.counts.get_mut(state) += 1;
    }

    /// The only way a task changes state, so the index can never drift from the tasks. A task
    /// becoming terminal must have its `finished_ms` set first.
    pub(crate) fn set_state(&mut self, task: &mut Task, to: TaskState) {
        if task.state == to {
            return;
        }
        let removed = self.by_state.remove(&(task.state, task.id));
        assert!(removed.is_some(), "task {} missing from the {} index", task.id, task.state);
        *self.counts.get_mut(task.state) -= 1;
        self.by_state.insert((to, task.id));
        *self.counts.get_mut(to) += 1;
        task.state = to;
        if let Some(key) = finished_key(task) {
            self.finished.insert(key);
        }
    }

    /// Drops a forgotten task from every part of the index.
    pub(crate) fn remove(&mut self, task: &Task) {
        let removed = self.by_state.remove(&(task.state, task.id));
        assert!(removed.is_some(), "task {} missing from the {} index", task.id, task.state);
        *self.counts.get_mut(task.state) -= 1;
        if let Some(key) = finished_key(task) {
            self.finished.remove(&key);
        }
    }

    /// Recomputes the derived `finished` part from the tasks (after a decode).
    pub(crate) fn rebuild_finished<'a>(&mut self, tasks: impl Iterator<Item = &'a Task>) {
        self.finished = tasks.filter_map(finished_key).collect();
    }

    fn ids_in(&self, state: TaskState, from: TaskId) -> impl Iterator<Item = TaskId> + '_ {
        self.by_state.range((state, from)..=(state, TaskId::MAX)).map(|&(_, id)| id)
    }
}

/// A task's place in [`TaskIndex::finished`]: terminal and not part of a workflow.
fn finished_key(task: &Task) -> Option<(u64, TaskId)> {
    super::retention::forgets_alone(task).then(|| (task.finished_ms.unwrap_or(task.updated_ms), task.id))
}

/// The replicated state machine of the scheduler. Serializable as a whole: that is the snapshot.
///
/// `remote = "Self"` turns the derived impls into inherent functions, so that the real
/// `Deserialize` below can rebuild the derived index after decoding (the bytes are those of a
/// plain derive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct State {
    /// Behind `Arc`s in a persistent map: the map's nodes stay small, and a frozen copy shares
    /// every task until apply changes it (see the module docs).
    pub(crate) tasks: CowMap<TaskId, Task>,
    pub(crate) next_task_id: TaskId,
    pub(crate) last_applied_index: u64,
    /// Idempotency key → task, forever (the key is part of the task's identity).
    pub(crate) idempotency: OrdMap<String, TaskId>,
    pub(crate) requests: RequestWindow,
    pub(crate) workers: CowMap<String, WorkerInfo>,
    pub(crate) index: TaskIndex,
    /// Worker → tasks whose current attempt is live on it: slot accounting and `WorkerLost`
    /// without a scan.
    pub(crate) live: OrdMap<String, OrdSet<TaskId>>,
    /// Parent → blocked children waiting for it, in submission order. Dropped once the parent
    /// is terminal; children that stopped being blocked meanwhile are skipped then.
    pub(crate) dependents: CowMap<TaskId, Vec<TaskId>>,
    /// Raft node ids removed from the cluster; they may never join again.
    pub removed_members: BTreeSet<u64>,
    /// Schedules by id (format 3).
    pub(crate) schedules: CowMap<ScheduleId, Schedule>,
    /// The id the next schedule gets.
    pub(crate) next_schedule_id: ScheduleId,
    /// Schedule idempotency key → schedule, while the schedule exists.
    pub(crate) schedule_keys: OrdMap<String, ScheduleId>,
    /// Each schedule's runs by identity (schedule, nominal time).
    pub(crate) schedule_runs: OrdMap<ScheduleId, Runs>,
    /// API tokens by key (format 4): only their hashes.
    pub(crate) tokens: CowMap<String, ApiToken>,
    /// Workflows by id (format 6). Shared like tasks.
    pub(crate) workflows: CowMap<WorkflowId, Workflow>,
    /// The id the next workflow gets.
    pub(crate) next_workflow_id: WorkflowId,
    /// Workflow idempotency key → workflow, forever.
    pub(crate) workflow_keys: OrdMap<String, WorkflowId>,
    /// Concurrency limits (format 6): key → most tasks with that key that may hold a permit.
    pub(crate) limits: OrdMap<String, u32>,
    /// Concurrency key → tasks whose live attempt holds a permit: taken at `Assign`, released
    /// when the attempt ends. Kept for every key in use, limited or not, so that a limit set
    /// later counts the tasks already running.
    pub(crate) permits: OrdMap<String, OrdSet<TaskId>>,
    /// What retention forgot of each schedule's runs (format 7).
    pub(crate) forgotten_runs: OrdMap<ScheduleId, ForgottenRuns>,
    /// Committed migrations by task (format 9), until the task's next assignment: the stop
    /// order while the attempt is live, then the placement hint (see `scheduler::migrate`).
    pub(crate) migrations: OrdMap<TaskId, super::migrate::MigrateMark>,
    /// Dispatchable tasks by priority and ready time, for the planner. Derived from `tasks`:
    /// never serialized, rebuilt on decode, kept in step by apply.
    #[serde(skip)]
    pub(crate) ready: ReadyIndex,
    /// Settled workflows oldest first, for retention. Derived like `ready`.
    #[serde(skip)]
    pub(crate) settled: SettledWorkflows,
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        State::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut state = State::deserialize(deserializer)?;
        state.derive_indexes();
        Ok(state)
    }
}

impl Default for State {
    fn default() -> Self {
        State::new(StateOptions::default())
    }
}

/// A state's persisted fields as they were at one applied index, for a snapshot or a backup to
/// encode while apply goes on changing the state (see the module docs). It has no ready index
/// (nothing plans on it): it can only be encoded.
#[derive(Debug)]
pub struct Frozen(State);

impl Frozen {
    /// The snapshot payload of the state as it was when frozen
    /// ([`super::format::encode_state`]).
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        super::format::encode_state(&self.0)
    }

    /// Log index of the last command applied before the freeze.
    pub fn last_applied_index(&self) -> u64 {
        self.0.last_applied_index
    }
}

/// Every persisted field of a [`State`], for upgrades of older snapshot formats.
pub(crate) struct Parts {
    pub(crate) tasks: CowMap<TaskId, Task>,
    pub(crate) next_task_id: TaskId,
    pub(crate) last_applied_index: u64,
    pub(crate) idempotency: OrdMap<String, TaskId>,
    pub(crate) requests: RequestWindow,
    pub(crate) workers: CowMap<String, WorkerInfo>,
    pub(crate) index: TaskIndex,
    pub(crate) live: OrdMap<String, OrdSet<TaskId>>,
    pub(crate) dependents: CowMap<TaskId, Vec<TaskId>>,
    pub(crate) removed_members: BTreeSet<u64>,
    pub(crate) schedules: CowMap<ScheduleId, Schedule>,
    pub(crate) next_schedule_id: ScheduleId,
    pub(crate) schedule_keys: OrdMap<String, ScheduleId>,
    pub(crate) schedule_runs: OrdMap<ScheduleId, Runs>,
    pub(crate) tokens: CowMap<String, ApiToken>,
    pub(crate) workflows: CowMap<WorkflowId, Workflow>,
    pub(crate) next_workflow_id: WorkflowId,
    pub(crate) workflow_keys: OrdMap<String, WorkflowId>,
    pub(crate) limits: OrdMap<String, u32>,
    pub(crate) permits: OrdMap<String, OrdSet<TaskId>>,
    pub(crate) forgotten_runs: OrdMap<ScheduleId, ForgottenRuns>,
    pub(crate) migrations: OrdMap<TaskId, super::migrate::MigrateMark>,
}

impl Parts {
    /// The parts of an empty state: the base of an upgrade, which then names every field its
    /// format had, so that only what later formats added keeps these empty values.
    pub(crate) fn empty_additions() -> Self {
        let s = State::default();
        Parts {
            tasks: s.tasks,
            next_task_id: s.next_task_id,
            last_applied_index: s.last_applied_index,
            idempotency: s.idempotency,
            requests: s.requests,
            workers: s.workers,
            index: s.index,
            live: s.live,
            dependents: s.dependents,
            removed_members: s.removed_members,
            schedules: s.schedules,
            next_schedule_id: s.next_schedule_id,
            schedule_keys: s.schedule_keys,
            schedule_runs: s.schedule_runs,
            tokens: s.tokens,
            workflows: s.workflows,
            next_workflow_id: s.next_workflow_id,
            workflow_keys: s.workflow_keys,
            limits: s.limits,
            permits: s.permits,
            forgotten_runs: s.forgotten_runs,
            migrations: s.migrations,
        }
    }
}

impl State {
    /// An empty state; the first task will get id 1.
    pub fn new(options: StateOptions) -> Self {
        State {
            tasks: CowMap::new(),
            next_task_id: 1,
            last_applied_index: 0,
            idempotency: OrdMap::new(),
            requests: RequestWindow::new(options.request_dedup_capacity),
            workers: CowMap::new(),
            index: TaskIndex::default(),
            live: OrdMap::new(),
            dependents: CowMap::new(),
            removed_members: BTreeSet::new(),
            schedules: CowMap::new(),
            next_schedule_id: 1,
            schedule_keys: OrdMap::new(),
            schedule_runs: OrdMap::new(),
            tokens: CowMap::new(),
            workflows: CowMap::new(),
            next_workflow_id: 1,
            workflow_keys: OrdMap::new(),
            limits: OrdMap::new(),
            permits: OrdMap::new(),
            forgotten_runs: OrdMap::new(),
            migrations: OrdMap::new(),
            ready: ReadyIndex::default(),
            settled: SettledWorkflows::default(),
        }
    }

    /// A copy of every persisted field, to encode without holding up apply. O(1) but for the
    /// removed replica ids: the maps are persistent and shared until either side writes.
    pub fn freeze(&self) -> Frozen {
        // Every field by name, none by `..`: a new field must be decided on here.
        Frozen(State {
            tasks: self.tasks.clone(),
            next_task_id: self.next_task_id,
            last_applied_index: self.last_applied_index,
            idempotency: self.idempotency.clone(),
            requests: self.requests.clone(),
            workers: self.workers.clone(),
            index: self.index.clone(),
            live: self.live.clone(),
            dependents: self.dependents.clone(),
            removed_members: self.removed_members.clone(),
            schedules: self.schedules.clone(),
            next_schedule_id: self.next_schedule_id,
            schedule_keys: self.schedule_keys.clone(),
            schedule_runs: self.schedule_runs.clone(),
            tokens: self.tokens.clone(),
            workflows: self.workflows.clone(),
            next_workflow_id: self.next_workflow_id,
            workflow_keys: self.workflow_keys.clone(),
            limits: self.limits.clone(),
            permits: self.permits.clone(),
            forgotten_runs: self.forgotten_runs.clone(),
            migrations: self.migrations.clone(),
            ready: ReadyIndex::default(),
            settled: SettledWorkflows::default(),
        })
    }

    /// A state from its persisted fields; the derived indexes are rebuilt.
    pub(crate) fn from_parts(p: Parts) -> Self {
        let mut state = State {
            tasks: p.tasks,
            next_task_id: p.next_task_id,
            last_applied_index: p.last_applied_index,
            idempotency: p.idempotency,
            requests: p.requests,
            workers: p.workers,
            index: p.index,
            live: p.live,
            dependents: p.dependents,
            removed_members: p.removed_members,
            schedules: p.schedules,
            next_schedule_id: p.next_schedule_id,
            schedule_keys: p.schedule_keys,
            schedule_runs: p.schedule_runs,
            tokens: p.tokens,
            workflows: p.workflows,
            next_workflow_id: p.next_workflow_id,
            workflow_keys: p.workflow_keys,
            limits: p.limits,
            permits: p.permits,
            forgotten_runs: p.forgotten_runs,
            migrations: p.migrations,
            ready: ReadyIndex::default(),
            settled: SettledWorkflows::default(),
        };
        state.derive_indexes();
        state
    }

    /// Rebuilds every index that is not persisted (after a decode).
    fn derive_indexes(&mut self) {
        self.ready = ReadyIndex::of(self.tasks.values());
        self.index.rebuild_finished(self.tasks.values());
        self.settled = SettledWorkflows::of(self.workflows.values());
    }

    /// Applies one committed command. Deterministic: the result depends only on the state, the
    /// index and the command. Never panics on anything a client can send; refusals come back
    /// as `Response::Rejected` and leave the state untouched (except `last_applied_index`).
    ///
    /// # Panics
    /// If `log_index` does not grow: entries must be applied once each, in log order.
    pub fn apply(&mut self, log_index: u64, cmd: Command) -> Response {
        assert!(
            log_index > self.last_applied_index,
            "log index {log_index} applied after {}: entries must be applied once, in order",
            self.last_applied_index
        );
        self.last_applied_index = log_index;
        match cmd {
            Command::Many { commands } => {
                let responses = commands.into_iter().map(|c| self.apply_one(log_index, c)).collect();
                Response::Many { responses }
            }
            other => self.apply_one(log_index, other),
        }
    }

    /// One command of an entry (`Many` holds several, all with the entry's log index).
    fn apply_one(&mut self, log_index: u64, cmd: Command) -> Response {
        match cmd {
            Command::Many { .. } => {
                Response::Rejected(Rejection::new(RejectCode::Invalid, "a Many command cannot contain another Many"))
            }
            Command::Submit { request_id, now_ms, spec, reuse } => {
                self.submit(request_id, now_ms, vec![spec], false, reuse)
            }
            Command::SubmitBatch { request_id, now_ms, specs, reuse } => {
                self.submit(request_id, now_ms, specs, true, reuse)
            }
            Command::Cancel { request_id, now_ms, task_id, reason } => self.cancel(request_id, now_ms, task_id, reason),
            Command::RegisterWorker { now_ms, worker } => self.register_worker(now_ms, worker),
            Command::Assign { now_ms, assignments } => self.assign(log_index, now_ms, assignments),
            Command::AttemptStarted { now_ms, task_id, token } => self.attempt_started(now_ms, task_id, token),
            Command::Checkpoint { now_ms, task_id, token, data } => self.checkpoint(now_ms, task_id, token, data),
            Command::Complete { now_ms, task_id, token, outcome, exit_code, output_tail, error, result } => {
                let end = super::lifecycle::AttemptEnd { outcome, exit_code, output_tail, error, result };
                self.complete(now_ms, task_id, token, end)
            }
            Command::WorkerLost { now_ms, worker_id } => self.worker_gone(now_ms, &worker_id, WorkerState::Lost),
            Command::Noop => Response::Noop,
            Command::CreateToken { now_ms: _, token } => self.create_token(token),
            Command::RevokeToken { now_ms: _, key_or_name } => self.revoke_token(&key_or_name),
            Command::WorkerCheckpoint { now_ms, worker_id, task_id, token, data } => {
                let owner =
                    self.tasks.get(&task_id).and_then(|t| t.current_attempt()).filter(|a| a.fencing_token == token);
                match owner {
                    Some(a) if a.worker_id != worker_id => Response::Rejected(Rejection::new(
                        RejectCode::WrongWorker,
                        format!("attempt {token} of task {task_id} belongs to worker {}, not {worker_id}", a.worker_id),
                    )),
                    _ => self.checkpoint(now_ms, task_id, token, data),
                }
            }
            Command::DrainWorker { now_ms, worker_id } => self.drain_worker(now_ms, &worker_id),
            Command::RemoveWorker { now_ms, worker_id } => self.worker_gone(now_ms, &worker_id, WorkerState::Removed),
            Command::MemberRemoved { now_ms: _, node_id } => {
                self.removed_members.insert(node_id);
                Response::Noop
            }
            Command::WorkerLostIncarnation { now_ms, worker_id, registered_ms } => match self.workers.get(&worker_id) {
                Some(w) if w.registered_ms != registered_ms => Response::Rejected(Rejection::new(
                    RejectCode::InvalidTransition,
                    format!(
                        "worker {worker_id} registered again (at {}, not {registered_ms}); the new incarnation is not lost",
                        w.registered_ms
                    ),
                )),
                _ => self.worker_gone(now_ms, &worker_id, WorkerState::Lost),
            },
            Command::Reports { now_ms, worker_id, reports } => self.reports(now_ms, &worker_id, reports),
            Command::CreateSchedule { request_id, now_ms, spec, paused } => {
                self.create_schedule(request_id, now_ms, *spec, paused)
            }
            Command::UpdateSchedule { now_ms, id, spec } => self.update_schedule(now_ms, id, *spec),
            Command::PauseSchedule { now_ms, id, note } => self.pause_schedule(now_ms, id, note),
            Command::ResumeSchedule { now_ms, id } => self.resume_schedule(now_ms, id),
            Command::TriggerSchedule { request_id, now_ms, id } => self.trigger_schedule(request_id, now_ms, id),
            Command::BackfillSchedule { now_ms, id, version, nominal } => {
                self.backfill_schedule(now_ms, id, version, nominal)
            }
            Command::DeleteSchedule { now_ms, id, cancel_runs } => self.delete_schedule(now_ms, id, cancel_runs),
            Command::FireSchedule { now_ms, id, version, nominal, advance_to, missed } => {
                self.fire_schedule(now_ms, id, version, nominal, advance_to, missed)
            }
            Command::SubmitWorkflow { request_id, now_ms, spec } => {
                self.submit_workflow(request_id, now_ms, *spec, super::workflow::WorkflowOrigin::Api)
            }
            Command::CancelWorkflow { now_ms, id, reason } => self.cancel_workflow(now_ms, id, reason),
            Command::SetLimit { now_ms: _, key, max_running } => self.set_limit(key, max_running),
            Command::Forget { now_ms: _, before_ms, keep, max } => self.forget(before_ms, keep, max),
            Command::Preempt { now_ms, for_task, victims, rules } => self.preempt(now_ms, for_task, victims, rules),
            Command::Migrate { now_ms, attempt, from, to, why, rules } => {
                self.migrate(now_ms, attempt, from, to, why, rules)
            }
        }
    }

    /// Answers a read from the local state. Never changes anything.
    pub fn query(&self, q: &Query) -> QueryResponse {
        match *q {
            Query::GetTask { id } => QueryResponse::Task(self.tasks.get(&id).cloned()),
            Query::ListTasks { state, after, limit } => self.list(state, after, limit),
            Query::Stats => QueryResponse::Stats(self.stats()),
            Query::ListWorkers => QueryResponse::Workers { workers: self.workers.values().cloned().collect() },
            Query::GetSchedule { id } => QueryResponse::Schedule(self.schedules.get(&id).cloned().map(Box::new)),
            Query::ListSchedules => QueryResponse::Schedules { schedules: self.schedules.values().cloned().collect() },
            Query::ScheduleRuns { id, after, limit } => self.runs_query(id, after, limit),
            Query::GetWorkflow { id } => QueryResponse::Workflow(self.workflows.get(&id).cloned().map(Box::new)),
            Query::ListWorkflows { after, limit } => {
                let limit = match limit {
                    0 => DEFAULT_LIST_LIMIT,
                    n => n.min(MAX_LIST_LIMIT),
                } as usize;
                let (workflows, next_cursor) = self.workflows_page(after, limit);
                QueryResponse::Workflows { workflows, next_cursor }
            }
            Query::ListLimits => QueryResponse::Limits { limits: self.limits_view() },
        }
    }

    fn submit(
        &mut self,
        request_id: Option<String>,
        now_ms: u64,
        specs: Vec<TaskSpec>,
        batch: bool,
        reuse: Reuse,
    ) -> Response {
        let field = |i: usize| {
            if batch { format!("specs[{i}]") } else { String::new() }
        };
        // A retried request gets the first answer; the request id, not the content, identifies
        // the request (and under `SameBody` the content must match too).
        if let Some(recorded) = request_id.as_deref().and_then(|rid| self.requests.get(rid)) {
            if reuse == Reuse::SameBody
                && let Some(rejection) = self.request_reused(recorded, &specs, &field)
            {
                return Response::Rejected(rejection);
            }
            return self.replay(recorded);
        }
        let plan = match self.plan_submit(&specs, &field) {
            Ok(plan) => plan,
            Err(rejection) => return Response::Rejected(rejection),
        };
        if reuse == Reuse::SameBody
            && let Some(rejection) = self.key_reused(&specs, &plan, &field)
        {
            return Response::Rejected(rejection);
        }
        let mut ids: Vec<TaskId> = Vec::with_capacity(specs.len());
        let mut created = Vec::with_capacity(specs.len());
        for (spec, slot) in specs.into_iter().zip(plan) {
            let id = match slot {
                Slot::Existing(id) => id,
                Slot::SameAs(first) => ids[first],
                Slot::New => self.create(spec, now_ms),
            };
            ids.push(id);
            created.push(slot == Slot::New);
        }
        let tasks = ids
            .iter()
            .zip(created)
            .filter_map(|(id, created)| {
                let task = self.tasks.get_shared(id)?;
                Some(SubmittedTask { created, task })
            })
            .collect();
        if let Some(rid) = request_id {
            self.requests.record(rid, Recorded::Submitted(ids));
        }
        Response::Submitted { tasks }
    }

    /// Under `Reuse::SameBody`: why a request id that answered `recorded` cannot answer `specs`.
    fn request_reused(
        &self,
        recorded: &Recorded,
        specs: &[TaskSpec],
        field: &dyn Fn(usize) -> String,
    ) -> Option<Rejection> {
        let mismatch = |what: String| {
            let msg = format!("request_id was used before for {what}; a retry must send the same body");
            Some(Rejection::new(RejectCode::IdempotencyMismatch, msg))
        };
        let ids = match recorded {
            Recorded::Submitted(ids) => ids,
            Recorded::Cancelled(_) => return mismatch("a cancel".into()),
            Recorded::Schedule(_) | Recorded::Triggered(..) => return mismatch("a schedule request".into()),
            Recorded::Workflow(_) => return mismatch("a workflow submit".into()),
        };
        if ids.len() != specs.len() {
            return mismatch(format!("{} tasks, not {}", ids.len(), specs.len()));
        }
        let differs = ids.iter().zip(specs).position(|(id, spec)| self.tasks.get(id).is_some_and(|t| t.spec != *spec));
        match differs {
            Some(i) => {
                let at = field(i);
                let at = if at.is_empty() { String::new() } else { format!(" ({at})") };
                mismatch(format!("task {}{at} with a different spec", ids[i]))
            }
            None => None,
        }
    }

    /// Under `Reuse::SameBody`: a spec whose idempotency key already names a task (or an earlier
    /// spec of the same batch) with a different spec.
    fn key_reused(&self, specs: &[TaskSpec], plan: &[Slot], field: &dyn Fn(usize) -> String) -> Option<Rejection> {
        for (i, (spec, slot)) in specs.iter().zip(plan).enumerate() {
            let (other, what) = match *slot {
                Slot::Existing(id) => (self.tasks.get(&id).map(|t| &t.spec), format!("task {id}")),
                Slot::SameAs(first) => (specs.get(first), field(first)),
                Slot::New => continue,
            };
            if other.is_some_and(|o| o != spec) {
                let at = field(i);
                let prefix = if at.is_empty() { String::new() } else { format!("{at}.") };
                let key = spec.idempotency_key.as_deref().unwrap_or_default();
                let msg = format!(
                    "{prefix}idempotency_key: {key:?} belongs to {what}, which has a different spec; a retry must send the same body"
                );
                return Some(Rejection::new(RejectCode::IdempotencyMismatch, msg));
            }
        }
        None
    }

    /// Decides, before anything changes, what each spec maps to, so that a batch is all or
    /// nothing.
    fn plan_submit(&self, specs: &[TaskSpec], field: &dyn Fn(usize) -> String) -> Result<Vec<Slot>, Rejection> {
        if specs.is_empty() || specs.len() > MAX_BATCH {
            let msg = format!("specs: a batch holds 1 to {MAX_BATCH} tasks, not {}", specs.len());
            return Err(Rejection::new(RejectCode::Invalid, msg));
        }
        let at = |i: usize, e: super::task::FieldError| {
            let prefix = field(i);
            let e = if prefix.is_empty() { e } else { e.within(&prefix) };
            Rejection::new(RejectCode::Invalid, e.to_string())
        };
        let mut keys_in_batch: BTreeMap<&str, usize> = BTreeMap::new();
        let mut plan = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            spec.validate_replicated().map_err(|e| at(i, e))?;
            let key = spec.idempotency_key.as_deref();
            let slot = match key.and_then(|k| self.idempotency.get(k)) {
                Some(&existing) => Slot::Existing(existing),
                None => match key.and_then(|k| keys_in_batch.get(k)) {
                    Some(&first) => Slot::SameAs(first),
                    None => Slot::New,
                },
            };
            if slot == Slot::New {
                self.check_parents(spec).map_err(|mut r| {
                    let prefix = field(i);
                    if !prefix.is_empty() {
                        r.message = format!("{prefix}.{}", r.message);
                    }
                    r
                })?;
                if let Some(k) = key {
                    keys_in_batch.insert(k, i);
                }
            }
            plan.push(slot);
        }
        Ok(plan)
    }

    /// Parents must exist already (so the graph is acyclic by construction: a task can only
    /// depend on older tasks) and must still be able to succeed.
    fn check_parents(&self, spec: &TaskSpec) -> Result<(), Rejection> {
        for (i, parent) in spec.depends_on.iter().enumerate() {
            match self.tasks.get(parent) {
                None if self.task_forgotten(*parent) => {
                    let msg = format!(
                        "depends_on[{i}]: task {parent} finished longer ago than the retention horizon and was forgotten, so its outcome is no longer known"
                    );
                    return Err(Rejection::new(RejectCode::Forgotten, msg));
                }
                None => {
                    let msg = format!("depends_on[{i}]: task {parent} does not exist");
                    return Err(Rejection::new(RejectCode::NotFound, msg));
                }
                Some(t) if matches!(t.state, TaskState::Failed | TaskState::Cancelled) => {
                    let msg = format!(
                        "depends_on[{i}]: task {parent} already ended {}, so this task could never start",
                        t.state
                    );
                    return Err(Rejection::new(RejectCode::Invalid, msg));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    pub(crate) fn create(&mut self, spec: TaskSpec, now_ms: u64) -> TaskId {
        let id = self.next_task_id;
        self.next_task_id += 1;
        let mut blocked = false;
        for parent in &spec.depends_on {
            if self.tasks.get(parent).is_none_or(|p| p.state != TaskState::Succeeded) {
                self.dependents.get_or_default(*parent).push(id);
                blocked = true;
            }
        }
        let state = if blocked { TaskState::Blocked } else { TaskState::Pending };
        if let Some(key) = &spec.idempotency_key {
            self.idempotency.insert(key.clone(), id);
        }
        self.index.insert(id, state);
        let task = Task {
            id,
            spec,
            state,
            version: 1,
            created_ms: now_ms,
            updated_ms: now_ms,
            finished_ms: None,
            attempts: Vec::new(),
            checkpoint: None,
            cancel_requested: false,
            cancel_reason: None,
            retry_at_ms: None,
            last_error: None,
            result: None,
            preempted_by: None,
            preempted: Vec::new(),
        };
        self.ready.sync(&task);
        self.tasks.insert(id, task);
        id
    }

    fn replay(&self, recorded: &Recorded) -> Response {
        match recorded {
            Recorded::Submitted(ids) => {
                // A retry after retention forgot the tasks cannot get them back: say so rather
                // than answer a shorter list.
                if let Some(&gone) = ids.iter().find(|id| !self.tasks.contains_key(id)) {
                    return Response::Rejected(self.missing_task(gone));
                }
                Response::Submitted {
                    tasks: ids
                        .iter()
                        .filter_map(|id| self.tasks.get_shared(id))
                        .map(|task| SubmittedTask { created: false, task })
                        .collect(),
                }
            }
            Recorded::Cancelled(id) => match self.tasks.get(id) {
                Some(task) => Response::Cancelled { task: Task::clone(task) },
                None => Response::Rejected(self.missing_task(*id)),
            },
            Recorded::Schedule(_) | Recorded::Triggered(..) => Response::Rejected(Rejection::new(
                RejectCode::IdempotencyMismatch,
                "request_id was used before for a schedule request",
            )),
            Recorded::Workflow(_) => Response::Rejected(Rejection::new(
                RejectCode::IdempotencyMismatch,
                "request_id was used before for a workflow submit",
            )),
        }
    }

    pub(crate) fn cancel(
        &mut self,
        request_id: Option<String>,
        now_ms: u64,
        task_id: TaskId,
        reason: Option<String>,
    ) -> Response {
        if let Some(recorded) = request_id.as_deref().and_then(|rid| self.requests.get(rid)) {
            // Refusing instead of replaying changes nothing either way, so old entries replay
            // to the same state.
            if *recorded != Recorded::Cancelled(task_id) {
                let msg = format!("request_id was used before for another request, not a cancel of task {task_id}");
                return Response::Rejected(Rejection::new(RejectCode::IdempotencyMismatch, msg));
            }
            return self.replay(recorded);
        }
        if !self.tasks.contains_key(&task_id) {
            return Response::Rejected(self.missing_task(task_id));
        }
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Response::Rejected(not_found(task_id));
        };
        let reason = reason.map(|r| super::task::truncate(r, MAX_REASON_BYTES, false).into_boxed_str());
        match task.state {
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled => {
                let msg = format!("task {task_id} already ended {}", task.state);
                return Response::Rejected(Rejection::new(RejectCode::InvalidTransition, msg));
            }
            TaskState::Pending | TaskState::Blocked | TaskState::RetryWait => {
                task.cancel_reason = reason;
                task.retry_at_ms = None;
                task.finished_ms = Some(now_ms);
                self.index.set_state(task, TaskState::Cancelled);
                task.touch(now_ms);
                self.ready.sync(task);
                self.settle_dependents(task_id, now_ms);
            }
            // A live attempt: only its worker can stop the process. The task ends when the
            // worker reports the attempt cancelled (or the worker is lost).
            TaskState::Assigned | TaskState::Running => {
                if !task.cancel_requested {
                    task.cancel_requested = true;
                    task.cancel_reason = reason;
                    task.touch(now_ms);
                }
            }
        }
        if let Some(rid) = request_id {
            self.requests.record(rid, Recorded::Cancelled(task_id));
        }
        match self.tasks.get(&task_id) {
            Some(task) => Response::Cancelled { task: Task::clone(task) },
            None => Response::Rejected(not_found(task_id)),
        }
    }

    fn list(&self, state: Option<TaskState>, after: Option<TaskId>, limit: u32) -> QueryResponse {
        let limit = match limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n.min(MAX_LIST_LIMIT),
        } as usize;
        let from = match after {
            None => 0,
            Some(TaskId::MAX) => {
                return QueryResponse::Tasks { tasks: Vec::new(), next_cursor: None };
            }
            Some(after) => after + 1,
        };
        // One extra id tells whether another page exists without a second lookup.
        let ids: Vec<TaskId> = match state {
            None => self.tasks.range(from..).map(|(&id, _)| id).take(limit + 1).collect(),
            Some(s) => self.index.ids_in(s, from).take(limit + 1).collect(),
        };
        let more = ids.len() > limit;
        let tasks: Vec<Task> = ids.iter().take(limit).filter_map(|id| self.tasks.get(id).cloned()).collect();
        let next_cursor = if more { tasks.last().map(|t| t.id) } else { None };
        QueryResponse::Tasks { tasks, next_cursor }
    }

    fn stats(&self) -> Stats {
        let counts = self.index.counts.clone();
        let total = TaskState::ALL.iter().map(|&s| counts.get(s)).sum();
        Stats {
            counts,
            total,
            next_task_id: self.next_task_id,
            last_applied_index: self.last_applied_index,
            active_workers: self.workers.values().filter(|w| w.state == WorkerState::Active).count() as u64,
            workers: self.workers.len() as u64,
        }
    }

    /// One task, for the leader's loops (no clone).
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(&id)
    }

    /// The dispatchable tasks by priority and ready time (the planner's queue).
    pub(crate) fn ready_index(&self) -> &ReadyIndex {
        &self.ready
    }

    /// Tasks waiting for a worker (`pending` or `retry_wait`) per priority, lowest priority
    /// first; priorities without such tasks are left out. O(distinct priorities), at most
    /// `MAX_PRIORITY + 1` of them, whatever the backlog.
    pub fn queued_by_priority(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.ready.levels().map(|(priority, level)| (priority, level.len() as u64))
    }

    /// Tasks in `state`, in id order.
    pub fn tasks_in(&self, state: TaskState) -> impl Iterator<Item = &Task> + '_ {
        self.index.ids_in(state, 0).filter_map(|id| self.tasks.get(&id))
    }

    /// One worker.
    pub fn worker(&self, id: &str) -> Option<&WorkerInfo> {
        self.workers.get(id)
    }

    /// Every worker, in id order.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerInfo> + '_ {
        self.workers.values()
    }

    /// Tasks whose current attempt is live on `worker_id`, in id order.
    pub fn live_tasks_on(&self, worker_id: &str) -> impl Iterator<Item = TaskId> + '_ {
        self.live.get(worker_id).into_iter().flatten().copied()
    }

    /// Log index of the last applied command (0 before the first).
    pub fn last_applied_index(&self) -> u64 {
        self.last_applied_index
    }

    /// The id the next created task will get.
    pub fn next_task_id(&self) -> TaskId {
        self.next_task_id
    }

    /// Number of tasks, in any state.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks per state.
    pub fn counts(&self) -> &StateCounts {
        &self.index.counts
    }

    /// Recomputes every index from the tasks and compares. O(n): for tests and debug tooling.
    pub fn check_invariants(&self) -> Result<(), String> {
        // A migration mark names a task that has the marked attempt (dropped when the task is
        // assigned again or forgotten).
        for (id, m) in &self.migrations {
            let task = self.tasks.get(id).ok_or_else(|| format!("migration mark of missing task {id}"))?;
            if !task.attempts.iter().any(|a| a.fencing_token == m.token) {
                return Err(format!("task {id} has no attempt with the migrated token {}", m.token));
            }
        }
        let mut index = TaskIndex::default();
        index.rebuild_finished(self.tasks.values());
        let mut live: OrdMap<String, OrdSet<TaskId>> = OrdMap::new();
        for (&id, task) in &self.tasks {
            if task.id != id {
                return Err(format!("task stored under {id} has id {}", task.id));
            }
            index.insert(id, task.state);
            let live_attempt = task.live_attempt();
            let should_be_live = matches!(task.state, TaskState::Assigned | TaskState::Running);
            if live_attempt.is_some() != should_be_live {
                return Err(format!("task {id} is {} but live attempt = {live_attempt:?}", task.state));
            }
            if let Some(a) = live_attempt {
                live.entry(a.worker_id.clone()).or_default().insert(id);
            }
            // Only the fenced completion of an attempt writes a result: it is the last ended one's.
            if let Some(r) = &task.result {
                let ended = task.attempts.iter().rev().find(|a| !a.is_live());
                if ended.map(|a| (a.number, a.fencing_token)) != Some((r.attempt, r.token)) {
                    return Err(format!(
                        "task {id} has the result of attempt {}/t{}, not of its last ended one",
                        r.attempt, r.token
                    ));
                }
                if r.data.len() > super::MAX_RESULT_BYTES {
                    return Err(format!("task {id} keeps a result of {} bytes", r.data.len()));
                }
            }
            // A blocked task waits for a parent that is still there and not yet ended, and is
            // listed among its dependents (else nothing would ever release it).
            if task.state == TaskState::Blocked {
                let waits = task.spec.depends_on.iter().any(|p| {
                    self.tasks.get(p).is_some_and(|t| !t.is_terminal())
                        && self.dependents.get(p).is_some_and(|c| c.contains(&id))
                });
                if !waits {
                    return Err(format!("task {id} is blocked on no live parent ({:?})", task.spec.depends_on));
                }
            }
            // A requested cancel ends the task with its attempt: it is never requeued.
            if task.cancel_requested && !should_be_live && !task.is_terminal() {
                return Err(format!("task {id} is {} with cancel_requested", task.state));
            }
            if let Some(key) = &task.spec.idempotency_key
                && self.idempotency.get(key) != Some(&id)
            {
                return Err(format!("task {id} has key {key} not mapped to it"));
            }
        }
        if index != self.index {
            return Err("per-state index or counters drifted from the tasks".into());
        }
        if live != self.live {
            return Err(format!("live index {:?} != recomputed {live:?}", self.live));
        }
        self.ready.check(self.tasks.values())?;
        if self.next_task_id <= self.tasks.last_key().copied().unwrap_or(0) {
            return Err(format!("next_task_id {} is not above every id", self.next_task_id));
        }
        self.check_schedules()?;
        self.check_workflows()?;
        self.check_permits()?;
        self.check_retention()?;
        self.requests.check()
    }
}

/// What a spec of a submit maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Its idempotency key belongs to this existing task.
    Existing(TaskId),
    /// Its idempotency key appeared earlier in the same batch, at this position.
    SameAs(usize),
    /// A new task.
    New,
}

pub(crate) fn not_found(task_id: TaskId) -> Rejection {
    Rejection::new(RejectCode::NotFound, format!("task {task_id} does not exist"))
}
