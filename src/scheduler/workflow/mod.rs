//! Workflows (format 6): a DAG of nodes submitted in one committed entry.
//!
//! Each node holds a task spec, edges to its parents with a condition on the parent's outcome,
//! and a rule (`all` | `any`) over those edges. A node becomes *ready* once its rule is met and
//! is *skipped* as soon as the rule can no longer be met; a skipped node's own children see it
//! as `skipped` (Airflow's `upstream_failed`, Argo's `Omitted`). A sharded node fans out into
//! `count` tasks, created lazily so that at most `max_parallel` are live, and succeeds per its
//! `success` rule. Everything here is decided in apply, so every replica agrees on every edge.
//!
//! | edge `on`    | satisfied by a parent that ended |
//! |--------------|----------------------------------|
//! | `success`    | succeeded                        |
//! | `failure`    | failed or cancelled              |
//! | `always`     | in any way (skipped included)    |
//! | `not_failed` | succeeded or skipped             |
//!
//! The workflow ends when every node has: `succeeded` unless some node failed (or was
//! cancelled) without a child that handles it (an edge `on: failure` or `always` from it),
//! then `failed`. Cancelling a workflow ends it `cancelled` at once: waiting nodes are
//! cancelled and the live tasks of running nodes are asked to stop.
//!
//! Results flow by shard index, never by a counter: a node records the outcome of each of its
//! shards once, under the shard's index, and a child's inputs are the results of the
//! parents' succeeded tasks, read from those tasks (committed under their fencing tokens).

pub(crate) mod apply;
mod spec;

pub use apply::TaskInput;
pub use spec::{
    EdgeOn, EdgeSpec, MAX_NODE_ID_BYTES, MAX_WORKFLOW_EDGES, MAX_WORKFLOW_NODES, MAX_WORKFLOW_SHARDS,
    MAX_WORKFLOW_TASKS, NodeRule, NodeSpec, ShardSuccess, ShardsSpec, WorkflowSpec,
};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::task::{TaskId, TaskState};

/// Workflow ids are allocated by apply from 1.
pub type WorkflowId = u64;

/// Where a workflow is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Some node has not ended.
    Running,
    /// Every node ended, and every failure was handled.
    Succeeded,
    /// Every node ended, and some node failed or was cancelled without a handler.
    Failed,
    /// Cancelled by a client; live tasks are asked to stop.
    Cancelled,
}

impl WorkflowState {
    /// True once the workflow will not change state again.
    pub fn is_terminal(self) -> bool {
        self != WorkflowState::Running
    }

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Running => "running",
            WorkflowState::Succeeded => "succeeded",
            WorkflowState::Failed => "failed",
            WorkflowState::Cancelled => "cancelled",
        }
    }
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Its rule is not decided yet.
    Waiting,
    /// Its tasks exist (all shards, or the first `max_parallel` of them).
    Running,
    /// Its task succeeded (a sharded node: its `success` rule was met).
    Succeeded,
    /// Its task failed (a sharded node: its `success` rule can no longer be met).
    Failed,
    /// Its rule can no longer be met; it never ran.
    Skipped,
    /// Cancelled with its workflow, or its task was cancelled.
    Cancelled,
}

impl NodeState {
    /// True once the node is decided.
    pub fn is_terminal(self) -> bool {
        !matches!(self, NodeState::Waiting | NodeState::Running)
    }

    /// The snake_case name used in JSON and in `workflow get`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Waiting => "waiting",
            NodeState::Running => "running",
            NodeState::Succeeded => "succeeded",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
            NodeState::Cancelled => "cancelled",
        }
    }
}

/// Who created a workflow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowOrigin {
    /// A client, through the API.
    #[default]
    Api,
    /// A run of a schedule whose template is a workflow.
    Schedule {
        /// The schedule.
        schedule: u64,
        /// The nominal fire time (for a manual trigger, the time of the trigger).
        nominal_ms: u64,
        /// Started by `trigger`.
        manual: bool,
    },
}

/// One node of a workflow as the state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Node {
    /// What was submitted for it.
    pub spec: NodeSpec,
    /// Where it is.
    pub state: NodeState,
    /// Its tasks, by shard index (one for a plain node); created lazily, so shorter than the
    /// shard count while `max_parallel` holds the rest back.
    #[schema(value_type = Vec<u64>)]
    pub tasks: Vec<TaskId>,
    /// The outcome of each of its tasks that ended, by shard index, recorded once.
    pub ended: BTreeMap<u32, TaskState>,
    /// Why it ended as it did (skipped, failed, cancelled), for people.
    pub reason: Option<String>,
    /// Indexes of its parents (in `depends` order) and of its children, resolved at submit.
    pub parents: Vec<u32>,
    /// Indexes of the nodes that depend on it.
    pub children: Vec<u32>,
    /// Shard indexes (ascending) whose results count: those that had succeeded when the node
    /// was decided. A shard still running then (the rest of a `min k`) may succeed later; its
    /// result is kept on its task but never handed on.
    pub counted: Vec<u32>,
    /// Parents (indexes) whose results this node's tasks receive: those that had ended when the
    /// node started (an `any` node may start before its other parents end). Fixed then, so
    /// every attempt of the node sees the same inputs.
    pub inputs_from: Vec<u32>,
}

impl Node {
    /// Number of shards (1 for a plain node).
    pub fn shard_count(&self) -> u32 {
        self.spec.shards.as_ref().map_or(1, |s| s.count)
    }

    /// Shards that ended `succeeded`.
    pub fn succeeded(&self) -> u32 {
        self.ended.values().filter(|s| **s == TaskState::Succeeded).count() as u32
    }

    /// Tasks created and not yet ended.
    pub fn live(&self) -> u32 {
        self.tasks.len() as u32 - self.ended.len() as u32
    }
}

/// A workflow as the state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Workflow {
    /// Allocated by apply.
    pub id: WorkflowId,
    /// From the spec.
    pub name: String,
    /// From the spec: a second submit with the same key returns this workflow.
    pub idempotency_key: Option<String>,
    /// Who created it.
    pub origin: WorkflowOrigin,
    /// Where it is.
    pub state: WorkflowState,
    /// Its nodes, in submitted order.
    pub nodes: Vec<Node>,
    /// Submission time (leader clock).
    pub created_ms: u64,
    /// Time of the last change.
    pub updated_ms: u64,
    /// When it ended.
    pub finished_ms: Option<u64>,
    /// 1 at creation, +1 on every change.
    pub version: u64,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
}

impl Workflow {
    /// Ended, and none of its tasks is still live (a cancel or a decided `min k` asks running
    /// tasks to stop; they end when their workers report). A schedule's run ends here.
    pub fn settled(&self) -> bool {
        self.state.is_terminal() && self.nodes.iter().all(|n| n.live() == 0)
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.spec.id == id)
    }

    pub(crate) fn touch(&mut self, now_ms: u64) {
        self.version += 1;
        self.updated_ms = now_ms;
    }
}
