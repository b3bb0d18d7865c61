//! The worker protocol and worker administration: `/v1/workers…` and attempt checkpoints.
//!
//! A worker ([`crate::worker`]):
//! 1. registers: `POST /v1/workers` with a [`WorkerRegistration`] → [`Registered`], which
//!    carries the [`Lease`] (TTL and heartbeat interval) the cluster holds it to;
//! 2. heartbeats: `POST /v1/workers/{id}/heartbeat` with a [`Heartbeat`] → [`HeartbeatAnswer`]
//!    (the lease again, and the attempts it must stop);
//! 3. long-polls `GET /v1/workers/{id}/inbox?wait_ms=&after=` → [`Inbox`] of committed
//!    assignments, each with its workflow parents' results ([`TaskInput`]);
//! 4. reports attempts in batches: `POST /v1/workers/{id}/reports` with [`Reports`] →
//!    [`ReportResults`], one verdict per report, all committed as one log entry;
//! 5. ships checkpoints: `POST /v1/tasks/{id}/attempts/{token}/checkpoint` with the raw bytes →
//!    the task's [`TaskStatus`].
//!
//! Administration: `GET /v1/workers` → [`WorkerList`], `POST /v1/workers/{id}/drain` →
//! [`WorkerInfo`], `DELETE /v1/workers/{id}` → [`RemovedWorker`].

use std::time::Duration;

use serde::Deserialize;
use serde::Serialize;

pub use crate::scheduler::AttemptEvent;
pub use crate::scheduler::AttemptId;
pub use crate::scheduler::AttemptReport;
pub use crate::scheduler::ResultData;
use crate::scheduler::Task;
use crate::scheduler::TaskStatus;
use crate::scheduler::WorkerInfo;
pub use crate::scheduler::WorkerRegistration;
pub use crate::scheduler::verdict::StopOrder;
pub use crate::scheduler::verdict::StopReason;
pub use crate::scheduler::workflow::TaskInput;

use super::ErrorCode;

/// The lease the cluster holds a worker to. Workers learn it from every registration and
/// heartbeat answer, so it is configured once, on the servers (`worker_ttl_ms`,
/// `worker_heartbeat_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lease {
    /// A worker not heard from for this long is declared lost; a worker that cannot renew for
    /// this long stops its attempts itself.
    pub ttl_ms: u64,
    /// How often the worker heartbeats.
    pub heartbeat_ms: u64,
    /// The server takes a heartbeat's `load` (servers before it refuse a heartbeat that has
    /// one, so a worker sends its load only once it has read `true` here).
    #[serde(default)]
    pub accepts_load: bool,
    /// The server takes a heartbeat's `knows_preempted` (servers before preemption refuse a
    /// heartbeat that has it, so a worker sends it only once it has read `true` here).
    #[serde(default)]
    pub accepts_preempted: bool,
    /// The server takes a heartbeat's `knows_migrated` (servers before migration refuse a
    /// heartbeat that has it, so a worker sends it only once it has read `true` here).
    #[serde(default)]
    pub accepts_migrated: bool,
}

impl Lease {
    /// The TTL as a duration.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// The heartbeat interval as a duration.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
}

/// Answer of `POST /v1/workers`: the worker as registered, and its lease.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    /// The worker.
    #[serde(flatten)]
    pub worker: WorkerInfo,
    /// The lease.
    pub lease: Lease,
}

/// Body of a heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// Attempts the worker runs now.
    #[serde(default)]
    pub running: Vec<AttemptId>,
    /// The highest fencing token the worker has received from its inbox. A live attempt on
    /// this worker with a token up to this one that is not in `running` is run by nobody: the
    /// leader ends it `lost` so it resumes elsewhere.
    #[serde(default)]
    pub seen_token: u64,
    /// The machine's load since the previous heartbeat (absent on the first one, or where
    /// `/proc` cannot be read). Kept by the leader in memory, never replicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<WorkerLoad>,
    /// The worker obeys the `preempted` stop order (workers before preemption cannot parse
    /// it): the leader preempts only attempts of workers that say so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub knows_preempted: bool,
    /// The worker obeys the `migrated` stop order (workers before migration cannot parse it):
    /// the leader migrates only attempts of workers that say so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub knows_migrated: bool,
}

/// A worker machine's load, from its heartbeats.
/// Advisory, so fields a later worker adds are ignored rather than refused.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerLoad {
    /// Share of CPU time the whole machine spent busy (not idle or waiting for I/O) since the
    /// previous heartbeat, 0 to 1.
    pub cpu_busy: f64,
    /// Memory in use (`MemTotal - MemAvailable`), bytes.
    pub mem_used_bytes: u64,
    /// The machine's memory, bytes.
    pub mem_total_bytes: u64,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeartbeatAnswer {
    /// The lease, renewed.
    pub lease: Lease,
    /// Attempts to stop now, and why.
    pub stop: Vec<StopOrder>,
}

/// Query of the inbox long-poll.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Wait up to this long for an assignment (cut to [`super::MAX_INBOX_WAIT`]; default 0).
    pub wait_ms: Option<u64>,
    /// Only assignments with a fencing token above this (the highest the worker has seen).
    pub after: Option<u64>,
}

/// One committed assignment.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Assignment {
    /// The attempt number.
    pub attempt: u32,
    /// Its fencing token.
    pub token: u64,
    /// The task (spec and last committed checkpoint included).
    pub task: Task,
    /// The results of its workflow parents, which the worker writes to `$TASKRAFT_INPUTS_DIR`:
    /// those of every parent task that succeeded with one, by node and shard index. Computed
    /// from the committed state at each delivery; empty outside a workflow and for executors
    /// that run no process.
    #[serde(default)]
    pub inputs: Vec<TaskInput>,
    /// Set instead of `inputs` when they add up to more than [`super::MAX_INPUTS_BYTES`]: the
    /// worker fails the attempt with this message without running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_error: Option<String>,
}

impl Assignment {
    /// The attempt's id.
    pub fn id(&self) -> AttemptId {
        AttemptId::new(self.task.id, self.token)
    }
}

/// Answer of the inbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Inbox {
    /// Assignments not yet reported started.
    pub assignments: Vec<Assignment>,
}

/// Body of `POST /v1/workers/{id}/reports`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// The reports (at most [`super::MAX_REPORTS`]), answered in order.
    pub reports: Vec<AttemptReport>,
}

/// The verdict on one report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportResult {
    /// The task's status after an accepted report.
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Why it was refused (`stale_token`, `duplicate`, …): definite.
    #[serde(default)]
    pub code: Option<ErrorCode>,
    /// Human-readable reason.
    #[serde(default)]
    pub message: Option<String>,
}

/// Answer of `POST /v1/workers/{id}/reports`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportResults {
    /// One result per report, in order.
    pub results: Vec<ReportResult>,
}

/// One worker of `GET /v1/workers`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerEntry {
    /// The worker.
    pub worker: WorkerInfo,
    /// Its live attempts.
    pub running: usize,
}

/// Answer of `GET /v1/workers`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerList {
    /// Every worker the cluster knows, removed ones included.
    pub workers: Vec<WorkerEntry>,
}

/// Answer of `DELETE /v1/workers/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemovedWorker {
    /// The worker, now removed.
    pub worker: WorkerInfo,
    /// Tasks whose live attempt on it ended `lost`.
    pub affected: Vec<TaskStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{TaskSpec, TaskState};

    fn task() -> Task {
        Task {
            id: 5,
            spec: TaskSpec::default(),
            state: TaskState::Assigned,
            version: 2,
            created_ms: 1,
            updated_ms: 2,
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
        }
    }

    #[test]
    fn assignment_inputs_are_json_by_node_and_shard_and_optional_on_the_wire() {
        let inputs = vec![
            TaskInput { node: "a".into(), shard: None, data: ResultData(b"A".to_vec()) },
            TaskInput { node: "m".into(), shard: Some(1), data: ResultData(vec![0xff]) },
        ];
        let a = Assignment { attempt: 1, token: 9, task: task(), inputs, inputs_error: None };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json["inputs"],
            serde_json::json!([
                {"node": "a", "shard": null, "data": {"size": 1, "text": "A"}},
                {"node": "m", "shard": 1, "data": {"size": 1, "base64": "/w=="}},
            ])
        );
        assert!(json.get("inputs_error").is_none(), "{json}");
        let back: Assignment = serde_json::from_value(json.clone()).unwrap();
        assert_eq!((back.inputs, back.inputs_error), (a.inputs, None));

        // What a leader of before workflows sends: no inputs, no error.
        let mut old = json;
        old.as_object_mut().unwrap().remove("inputs");
        let back: Assignment = serde_json::from_value(old.clone()).unwrap();
        assert_eq!((back.inputs.len(), back.inputs_error), (0, None));
        old["inputs_error"] = "too large".into();
        assert_eq!(serde_json::from_value::<Assignment>(old).unwrap().inputs_error.as_deref(), Some("too large"));
    }

    #[test]
    fn preemption_crosses_old_servers_and_old_workers_only_where_both_sides_know_it() {
        // An older server's lease has no `accepts_preempted`: the worker must not send its flag.
        let lease: Lease = serde_json::from_str(r#"{"ttl_ms": 3000, "heartbeat_ms": 1000}"#).unwrap();
        assert!(!lease.accepts_preempted);
        // A worker that does not say it knows `preempted` sends exactly what older workers sent.
        let beat = serde_json::to_value(Heartbeat::default()).unwrap();
        assert_eq!(beat, serde_json::json!({"running": [], "seen_token": 0}));
        let said = Heartbeat { knows_preempted: true, ..Heartbeat::default() };
        let back: Heartbeat = serde_json::from_value(serde_json::to_value(&said).unwrap()).unwrap();
        assert!(back.knows_preempted);
        // An older worker's heartbeat parses, and says nothing.
        let old: Heartbeat = serde_json::from_str(r#"{"running": [], "seen_token": 3}"#).unwrap();
        assert!(!old.knows_preempted);
        let order = StopOrder { attempt: AttemptId::new(7, 9), reason: StopReason::Preempted };
        let json = serde_json::to_value(order).unwrap();
        assert_eq!(json, serde_json::json!({"task_id": 7, "token": 9, "reason": "preempted"}));
    }

    #[test]
    fn migration_crosses_old_servers_and_old_workers_only_where_both_sides_know_it() {
        // A server before migration sends no `accepts_migrated`: the worker must not send its flag.
        let lease: Lease =
            serde_json::from_str(r#"{"ttl_ms": 3000, "heartbeat_ms": 1000, "accepts_preempted": true}"#).unwrap();
        assert!(!lease.accepts_migrated);
        // A worker before migration sends exactly what it sent: no `knows_migrated`.
        let beat = Heartbeat { knows_preempted: true, ..Heartbeat::default() };
        let json = serde_json::to_value(&beat).unwrap();
        assert_eq!(json, serde_json::json!({"running": [], "seen_token": 0, "knows_preempted": true}));
        let said = Heartbeat { knows_migrated: true, ..beat };
        let back: Heartbeat = serde_json::from_value(serde_json::to_value(&said).unwrap()).unwrap();
        assert!(back.knows_migrated);
        let order = StopOrder { attempt: AttemptId::new(7, 9), reason: StopReason::Migrated };
        let json = serde_json::to_value(order).unwrap();
        assert_eq!(json, serde_json::json!({"task_id": 7, "token": 9, "reason": "migrated"}));
    }
}
