//! What a client submits for a workflow, and the rules it must follow. Checked by the API
//! before it is proposed and again by apply ([`WorkflowSpec::validate_replicated`]): like
//! every replicated check, these may be loosened later, never tightened.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scheduler::task::{FieldError, TaskOrigin, TaskSpec};

/// Most nodes in one workflow.
pub const MAX_WORKFLOW_NODES: usize = 1000;
/// Most edges in one workflow.
pub const MAX_WORKFLOW_EDGES: usize = 10_000;
/// Most shards of one node.
pub const MAX_WORKFLOW_SHARDS: u32 = 10_000;
/// Most tasks one workflow can create (the sum of its nodes' shard counts).
pub const MAX_WORKFLOW_TASKS: u64 = 20_000;
/// Longest node id, in bytes. Ids are directory names in `$TASKRAFT_INPUTS_DIR`.
pub const MAX_NODE_ID_BYTES: usize = 64;

/// A workflow as submitted: `POST /v1/workflows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Free text shown in lists; node tasks without a name are called `<name>/<node>`.
    #[serde(default)]
    pub name: String,
    /// Client-chosen key: a second submit with the same key returns the first workflow.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The nodes, 1 to `MAX_WORKFLOW_NODES`.
    pub nodes: Vec<NodeSpec>,
}

/// One node of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique within the workflow: letters, digits, `_`, `-` and `.`, 1 to 64 bytes.
    pub id: String,
    /// What the node runs (a task spec, without `depends_on` or `idempotency_key`).
    pub task: TaskSpec,
    /// Parents and the outcome each must reach.
    #[serde(default)]
    pub depends: Vec<EdgeSpec>,
    /// Whether every edge (`all`, the default) or one edge (`any`) must be satisfied.
    #[serde(default)]
    pub trigger: NodeRule,
    /// Fan out into several tasks.
    #[serde(default)]
    pub shards: Option<ShardsSpec>,
}

/// An edge from a parent node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    /// The parent's id.
    pub node: String,
    /// The outcome of the parent that satisfies this edge (default `success`).
    #[serde(default)]
    pub on: EdgeOn,
}

/// The parent outcomes that satisfy an edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeOn {
    /// The parent succeeded.
    #[default]
    Success,
    /// The parent failed or was cancelled.
    Failure,
    /// The parent ended, in any way (skipped included).
    Always,
    /// The parent succeeded or was skipped.
    NotFailed,
}

impl EdgeOn {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeOn::Success => "success",
            EdgeOn::Failure => "failure",
            EdgeOn::Always => "always",
            EdgeOn::NotFailed => "not_failed",
        }
    }
}

/// A node's rule over its edges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeRule {
    /// Every edge must be satisfied; skipped as soon as one cannot be.
    #[default]
    All,
    /// One satisfied edge is enough; skipped once every parent ended and none satisfied its edge.
    Any,
}

/// How a node fans out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardsSpec {
    /// Number of tasks, 1 to `MAX_WORKFLOW_SHARDS`; each gets `TASKRAFT_SHARD_INDEX`/`_COUNT`.
    pub count: u32,
    /// At most this many of them live at once (default: all).
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// When the node succeeds (default `all`).
    #[serde(default)]
    pub success: ShardSuccess,
}

impl ShardsSpec {
    /// `max_parallel`, or `count` when absent.
    pub fn parallel(&self) -> u32 {
        self.max_parallel.unwrap_or(self.count)
    }

    /// How many shards must succeed.
    pub fn needed(&self) -> u32 {
        match self.success {
            ShardSuccess::All => self.count,
            ShardSuccess::Min(k) => k,
        }
    }
}

/// When a sharded node succeeds. In JSON: `"all"` or `{"min": k}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShardSuccess {
    /// Every shard must succeed; the node fails at the first one that does not.
    #[default]
    All,
    /// At least this many shards must succeed; the rest are cancelled once they have.
    Min(u32),
}

impl WorkflowSpec {
    /// Every rule, as the API and apply check it. A cycle is named node by node.
    pub fn validate_replicated(&self) -> Result<(), FieldError> {
        if self.name.len() > crate::scheduler::MAX_NAME_BYTES {
            let msg = format!("is {} bytes; the limit is {}", self.name.len(), crate::scheduler::MAX_NAME_BYTES);
            return Err(FieldError::new("name", msg));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > crate::scheduler::MAX_KEY_BYTES)
        {
            let msg = format!("must be 1 to {} bytes", crate::scheduler::MAX_KEY_BYTES);
            return Err(FieldError::new("idempotency_key", msg));
        }
        if self.nodes.is_empty() || self.nodes.len() > MAX_WORKFLOW_NODES {
            let msg = format!("a workflow holds 1 to {MAX_WORKFLOW_NODES} nodes, not {}", self.nodes.len());
            return Err(FieldError::new("nodes", msg));
        }
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let at = format!("nodes[{i}]");
            node.validate().map_err(|e| e.within(&at))?;
            if let Some(first) = ids.insert(node.id.as_str(), i) {
                return Err(FieldError::new(format!("{at}.id"), format!("{:?} is also nodes[{first}]'s id", node.id)));
            }
        }
        let mut edges = 0usize;
        let mut tasks = 0u64;
        for (i, node) in self.nodes.iter().enumerate() {
            tasks += u64::from(node.shards.as_ref().map_or(1, |s| s.count));
            let mut seen = BTreeMap::new();
            for (j, edge) in node.depends.iter().enumerate() {
                let at = format!("nodes[{i}].depends[{j}].node");
                if edge.node == node.id {
                    return Err(FieldError::new(at, format!("node {:?} cannot depend on itself", node.id)));
                }
                if !ids.contains_key(edge.node.as_str()) {
                    return Err(FieldError::new(at, format!("no node has the id {:?}", edge.node)));
                }
                if seen.insert(edge.node.as_str(), j).is_some() {
                    return Err(FieldError::new(at, format!("{:?} appears twice in depends", edge.node)));
                }
            }
            edges += node.depends.len();
        }
        if edges > MAX_WORKFLOW_EDGES {
            let msg = format!("a workflow holds at most {MAX_WORKFLOW_EDGES} edges, not {edges}");
            return Err(FieldError::new("nodes", msg));
        }
        if tasks > MAX_WORKFLOW_TASKS {
            let msg = format!("the nodes' shards add up to {tasks} tasks; the limit is {MAX_WORKFLOW_TASKS}");
            return Err(FieldError::new("nodes", msg));
        }
        if let Some(cycle) = self.cycle(&ids) {
            let msg = format!("the dependencies form a cycle: {}", cycle.join(" → "));
            return Err(FieldError::new("nodes", msg));
        }
        Ok(())
    }

    /// One cycle, as node ids with the first repeated at the end, if the graph has any.
    /// Kahn's algorithm removes every node not on or behind a cycle; a walk along parents
    /// from any node left over must come back to a node it saw.
    fn cycle(&self, ids: &BTreeMap<&str, usize>) -> Option<Vec<String>> {
        let n = self.nodes.len();
        let parents: Vec<Vec<usize>> = self
            .nodes
            .iter()
            .map(|node| node.depends.iter().filter_map(|e| ids.get(e.node.as_str()).copied()).collect())
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (child, ps) in parents.iter().enumerate() {
            for &p in ps {
                children[p].push(child);
            }
        }
        let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
        let mut ready: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut done = 0;
        while let Some(i) = ready.pop() {
            done += 1;
            for &c in &children[i] {
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    ready.push(c);
                }
            }
        }
        if done == n {
            return None;
        }
        // Every left-over node has a left-over parent: walk parents until one repeats.
        let start = (0..n).find(|&i| waiting[i] > 0)?;
        let mut path = vec![start];
        let mut at = start;
        loop {
            at = *parents[at].iter().find(|&&p| waiting[p] > 0)?;
            if let Some(pos) = path.iter().position(|&p| p == at) {
                // The walk went child → parent; a cycle reads parent → child.
                let mut cycle: Vec<String> = path[pos..].iter().rev().map(|&i| self.nodes[i].id.clone()).collect();
                cycle.push(cycle[0].clone());
                return Some(cycle);
            }
            path.push(at);
        }
    }
}

impl NodeSpec {
    fn validate(&self) -> Result<(), FieldError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_NODE_ID_BYTES
            && self.id != "."
            && self.id != ".."
            && self.id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !id_ok {
            let msg = format!(
                "{:?} must be 1 to {MAX_NODE_ID_BYTES} letters, digits, '_', '-' or '.' (it names a directory of $TASKRAFT_INPUTS_DIR)",
                self.id
            );
            return Err(FieldError::new("id", msg));
        }
        self.task.validate_replicated().map_err(|e| e.within("task"))?;
        if self.task.idempotency_key.is_some() {
            let msg = "a node's task is identified by its workflow; set idempotency_key on the workflow instead";
            return Err(FieldError::new("task.idempotency_key", msg));
        }
        if !self.task.depends_on.is_empty() {
            return Err(FieldError::new("task.depends_on", "use the node's depends (node ids) instead"));
        }
        if self.task.shard.is_some() {
            return Err(FieldError::new("task.shard", "use the node's shards instead"));
        }
        if self.task.origin != TaskOrigin::Api {
            return Err(FieldError::new("task.origin", "is set by the cluster"));
        }
        if let Some(s) = &self.shards {
            if s.count == 0 || s.count > MAX_WORKFLOW_SHARDS {
                let msg = format!("is {}; it must be between 1 and {MAX_WORKFLOW_SHARDS}", s.count);
                return Err(FieldError::new("shards.count", msg));
            }
            if let Some(p) = s.max_parallel
                && (p == 0 || p > s.count)
            {
                let msg = format!("is {p}; it must be between 1 and shards.count ({})", s.count);
                return Err(FieldError::new("shards.max_parallel", msg));
            }
            if let ShardSuccess::Min(k) = s.success
                && (k == 0 || k > s.count)
            {
                let msg = format!("is {k}; it must be between 1 and shards.count ({})", s.count);
                return Err(FieldError::new("shards.success.min", msg));
            }
        }
        Ok(())
    }
}
