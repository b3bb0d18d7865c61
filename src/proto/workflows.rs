//! `/v1/workflows…`: DAGs of tasks submitted in one committed entry.
//!
//! A workflow is created from a [`WorkflowRequest`]: nodes, each with a task (the same object
//! `POST /v1/tasks` takes), edges to parent nodes with a condition, a rule over those edges and
//! optional shards. Answers are [`WorkflowView`]s: every node with its state, its tasks (one
//! per shard) with their states and results, and why it was skipped or failed.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::scheduler::ResultData;
use crate::scheduler::TaskId;
use crate::scheduler::TaskSpec;
use crate::scheduler::TaskState;
use crate::scheduler::workflow::{EdgeSpec, NodeRule, NodeState, ShardsSpec, WorkflowOrigin, WorkflowState};

/// Body of `POST /v1/workflows`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// Shown in lists; node tasks without a name are called `<name>/<node>`.
    #[serde(default)]
    pub name: String,
    /// A second submit with the same key answers the first workflow (and must carry the same nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Retry key of this request (the `Idempotency-Key` header takes precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The nodes, 1 to 1000.
    pub nodes: Vec<NodeRequest>,
}

/// One node of a [`WorkflowRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRequest {
    /// Unique in the workflow: letters, digits, `_`, `-`, `.` (it names a directory of
    /// `$TASKRAFT_INPUTS_DIR`).
    pub id: String,
    /// The task, as `POST /v1/tasks` takes it (without `depends_on` or `idempotency_key`).
    #[schema(value_type = super::tasks::TaskSubmission)]
    pub task: serde_json::Value,
    /// Parents: `{"node": "a", "on": "success"|"failure"|"always"|"not_failed"}` (default success).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<EdgeSpec>,
    /// `all` (default): every edge satisfied; `any`: one is enough.
    #[serde(default)]
    pub trigger: NodeRule,
    /// Fan out into `count` tasks: `{"count", "max_parallel"?, "success": "all"|{"min": k}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsSpec>,
}

/// Body of `POST /v1/workflows/{id}/cancel` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelWorkflowRequest {
    /// Kept on the workflow and on the tasks it stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A workflow as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowView {
    /// Allocated by the cluster.
    pub id: u64,
    /// From the request.
    pub name: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub state: WorkflowState,
    /// From the request.
    pub idempotency_key: Option<String>,
    /// `api`, or the schedule run that started it.
    pub origin: WorkflowOrigin,
    /// Submission time (ms since the epoch, leader clock).
    pub created_ms: u64,
    /// Last change.
    pub updated_ms: u64,
    /// When it ended.
    pub finished_ms: Option<u64>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// +1 on every change.
    pub version: u64,
    /// Task results left out of this answer to keep it under 4 MiB of results (read them with
    /// `GET /v1/tasks/{id}`).
    #[serde(default)]
    pub results_omitted: u32,
    /// The nodes, in submitted order.
    pub nodes: Vec<NodeView>,
}

/// One node of a [`WorkflowView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeView {
    /// The node's id.
    pub id: String,
    /// `waiting`, `running`, `succeeded`, `failed`, `skipped` or `cancelled`.
    pub state: NodeState,
    /// Why it was skipped, failed or cancelled.
    pub reason: Option<String>,
    /// Its parents and their conditions.
    pub depends: Vec<EdgeSpec>,
    /// `all` or `any`.
    pub trigger: NodeRule,
    /// Its shards, if any.
    pub shards: Option<ShardsSpec>,
    /// Shard counts.
    pub progress: Progress,
    /// Its tasks, by shard index (created lazily under `max_parallel`).
    pub tasks: Vec<NodeTask>,
    /// The task template.
    pub task: TaskSpec,
}

/// How far a node's shards got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Shards in all (1 for a plain node).
    pub total: u32,
    /// Tasks created so far.
    pub created: u32,
    /// Created and not ended.
    pub live: u32,
    /// Ended `succeeded`.
    pub succeeded: u32,
    /// Ended otherwise.
    pub failed: u32,
}

/// One task of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeTask {
    /// The shard index, for a sharded node.
    pub shard: Option<u32>,
    /// The task.
    #[schema(value_type = u64)]
    pub task_id: TaskId,
    /// Its state.
    pub state: TaskState,
    /// Its result, once it wrote one (committed with its completion).
    pub result: Option<ResultData>,
}

/// One line of `GET /v1/workflows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    /// The workflow.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: WorkflowState,
    /// Submission time.
    pub created_ms: u64,
    /// When it ended.
    pub finished_ms: Option<u64>,
    /// Nodes per state (only states some node is in).
    pub nodes: BTreeMap<String, u32>,
}

/// Answer to `GET /v1/workflows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkflowList {
    /// In id order.
    pub workflows: Vec<WorkflowSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_cursor: Option<u64>,
}

/// Query of `GET /v1/workflows`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkflowListQuery {
    /// Page size: absent or 0 means 100; cut to 1000.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// See [`crate::proto::tasks::Consistency`].
    #[serde(default)]
    pub consistency: crate::proto::tasks::Consistency,
}
