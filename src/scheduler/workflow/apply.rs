//! How workflows change the state: submit, cancel, and what happens when one of a node's tasks
//! ends. Pure, like the rest of apply: the same log gives every replica the same workflows.

use serde::{Deserialize, Serialize};

use super::{EdgeOn, Node, NodeRule, NodeState, Workflow, WorkflowId, WorkflowOrigin, WorkflowSpec, WorkflowState};
use crate::scheduler::command::{RejectCode, Rejection, Response};
use crate::scheduler::dedup::Recorded;
use crate::scheduler::result::ResultData;
use crate::scheduler::state::State;
use crate::scheduler::task::{Shard, TaskId, TaskOrigin, TaskState};

/// One parent result handed to a node's task: written by the worker to
/// `$TASKRAFT_INPUTS_DIR/<node>` (plain parent) or `$TASKRAFT_INPUTS_DIR/<node>/<shard>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskInput {
    /// The parent node's id.
    pub node: String,
    /// The shard index, for a sharded parent.
    pub shard: Option<u32>,
    /// The result of the parent's succeeded task.
    pub data: ResultData,
}

/// Whether a parent that ended `parent` satisfies an edge `on`.
fn satisfies(on: EdgeOn, parent: NodeState) -> bool {
    match on {
        EdgeOn::Success => parent == NodeState::Succeeded,
        EdgeOn::Failure => matches!(parent, NodeState::Failed | NodeState::Cancelled),
        EdgeOn::Always => parent.is_terminal(),
        EdgeOn::NotFailed => matches!(parent, NodeState::Succeeded | NodeState::Skipped),
    }
}

/// What a waiting node's rule says now.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Wait,
    Start,
    Skip(String),
}

fn judge(wf: &Workflow, idx: usize) -> Verdict {
    let node = &wf.nodes[idx];
    let edges = node.spec.depends.iter().zip(&node.parents).map(|(e, &p)| (e, &wf.nodes[p as usize]));
    match node.spec.trigger {
        NodeRule::All => {
            let mut all = true;
            for (edge, parent) in edges {
                if !parent.state.is_terminal() {
                    all = false;
                } else if !satisfies(edge.on, parent.state) {
                    return Verdict::Skip(format!(
                        "parent {} ended {}, and its edge wants {} (trigger all)",
                        parent.spec.id,
                        parent.state.as_str(),
                        edge.on.as_str()
                    ));
                }
            }
            if all { Verdict::Start } else { Verdict::Wait }
        }
        NodeRule::Any => {
            let mut open = false;
            for (edge, parent) in edges {
                if !parent.state.is_terminal() {
                    open = true;
                } else if satisfies(edge.on, parent.state) {
                    return Verdict::Start;
                }
            }
            if open || node.parents.is_empty() {
                if node.parents.is_empty() { Verdict::Start } else { Verdict::Wait }
            } else {
                Verdict::Skip("every parent ended, and none as its edge wants (trigger any)".into())
            }
        }
    }
}

impl State {
    /// `SubmitWorkflow`: validates again, then creates the workflow and its roots' tasks.
    pub(crate) fn submit_workflow(
        &mut self,
        request_id: Option<String>,
        now_ms: u64,
        spec: WorkflowSpec,
        origin: WorkflowOrigin,
    ) -> Response {
        if let Some(recorded) = request_id.as_deref().and_then(|rid| self.requests.get(rid)) {
            return match *recorded {
                Recorded::Workflow(id) => self.workflow_answer(id, false),
                _ => Response::Rejected(Rejection::new(
                    RejectCode::IdempotencyMismatch,
                    "request_id was used before for another request, not a workflow submit",
                )),
            };
        }
        if let Err(e) = spec.validate_replicated() {
            return Response::Rejected(Rejection::new(RejectCode::Invalid, e.to_string()));
        }
        if let Some(&existing) = spec.idempotency_key.as_ref().and_then(|k| self.workflow_keys.get(k)) {
            let same = self.workflows.get(&existing).is_some_and(|w| {
                w.nodes.len() == spec.nodes.len() && w.nodes.iter().zip(&spec.nodes).all(|(n, s)| n.spec == *s)
            });
            if !same {
                let msg = format!(
                    "idempotency_key: {:?} belongs to workflow {existing}, which has different nodes; a retry must send the same body",
                    spec.idempotency_key.as_deref().unwrap_or_default()
                );
                return Response::Rejected(Rejection::new(RejectCode::IdempotencyMismatch, msg));
            }
            return self.workflow_answer(existing, false);
        }
        let id = self.create_workflow(now_ms, spec, origin);
        if let Some(rid) = request_id {
            self.requests.record(rid, Recorded::Workflow(id));
        }
        self.workflow_answer(id, true)
    }

    /// Creates a workflow from a spec that passed [`WorkflowSpec::validate_replicated`], and
    /// its roots' tasks (a workflow is never born terminal: it has a root, and roots start).
    pub(crate) fn create_workflow(&mut self, now_ms: u64, spec: WorkflowSpec, origin: WorkflowOrigin) -> WorkflowId {
        let id = self.next_workflow_id;
        self.next_workflow_id += 1;
        let index: std::collections::BTreeMap<&str, u32> =
            spec.nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i as u32)).collect();
        let mut nodes: Vec<Node> = spec
            .nodes
            .iter()
            .map(|n| Node {
                spec: n.clone(),
                state: NodeState::Waiting,
                tasks: Vec::new(),
                ended: Default::default(),
                reason: None,
                parents: n.depends.iter().map(|e| index[e.node.as_str()]).collect(),
                children: Vec::new(),
                counted: Vec::new(),
                inputs_from: Vec::new(),
            })
            .collect();
        for child in 0..nodes.len() {
            for p in nodes[child].parents.clone() {
                nodes[p as usize].children.push(child as u32);
            }
        }
        if let Some(key) = &spec.idempotency_key {
            self.workflow_keys.insert(key.clone(), id);
        }
        let wf = Workflow {
            id,
            name: spec.name,
            idempotency_key: spec.idempotency_key,
            origin,
            state: WorkflowState::Running,
            nodes,
            created_ms: now_ms,
            updated_ms: now_ms,
            finished_ms: None,
            version: 1,
            cancel_reason: None,
        };
        let roots: Vec<usize> = (0..wf.nodes.len()).filter(|&i| wf.nodes[i].parents.is_empty()).collect();
        self.workflows.insert(id, wf);
        for root in roots {
            self.start_node(id, root, now_ms);
        }
        id
    }

    fn workflow_answer(&self, id: WorkflowId, created: bool) -> Response {
        match self.workflows.get(&id) {
            Some(w) => Response::Workflow { workflow: Box::new(w.clone()), created },
            None => Response::Rejected(self.missing_workflow(id)),
        }
    }

    /// `CancelWorkflow`: the workflow ends `cancelled`; waiting nodes are cancelled, and the
    /// live tasks of running nodes are cancelled (at once, or by their worker).
    pub(crate) fn cancel_workflow(&mut self, now_ms: u64, id: WorkflowId, reason: Option<String>) -> Response {
        let Some(wf) = self.workflows.get_mut(&id) else {
            return Response::Rejected(self.missing_workflow(id));
        };
        // A retried cancel (its first answer lost in a leader change) gets the same answer.
        if wf.state == WorkflowState::Cancelled {
            return self.workflow_answer(id, false);
        }
        if wf.state.is_terminal() {
            let msg = format!("workflow {id} already ended {}", wf.state.as_str());
            return Response::Rejected(Rejection::new(RejectCode::InvalidTransition, msg));
        }
        let reason = reason.map(|r| crate::scheduler::task::truncate(r, crate::scheduler::MAX_REASON_BYTES, false));
        wf.state = WorkflowState::Cancelled;
        wf.finished_ms = Some(now_ms);
        wf.cancel_reason.clone_from(&reason);
        wf.touch(now_ms);
        let mut live = Vec::new();
        for node in &mut wf.nodes {
            if node.state.is_terminal() {
                continue;
            }
            live.extend(node.tasks.iter().copied());
            node.state = NodeState::Cancelled;
            node.reason = Some("the workflow was cancelled".into());
        }
        for task in live {
            if self.tasks.get(&task).is_some_and(|t| !t.is_terminal()) {
                let why = reason.clone().or_else(|| Some(format!("workflow {id} was cancelled")));
                let _ = self.cancel(None, now_ms, task, why);
            }
        }
        if self.workflows.get(&id).is_some_and(|w| w.settled()) {
            self.workflow_settled(id, now_ms);
        }
        self.workflow_answer(id, false)
    }

    /// Creates the tasks of a node whose rule is met (a sharded node: as many as
    /// `max_parallel` allows).
    fn start_node(&mut self, wf_id: WorkflowId, idx: usize, now_ms: u64) {
        if let Some(node) = self.workflows.get_mut(&wf_id).map(|w| &mut w.nodes[idx]) {
            node.state = NodeState::Running;
        }
        self.release_shards(wf_id, idx, now_ms);
    }

    /// Creates shard tasks in index order while fewer than `max_parallel` are live.
    fn release_shards(&mut self, wf_id: WorkflowId, idx: usize, now_ms: u64) {
        loop {
            let Some(wf) = self.workflows.get(&wf_id) else { return };
            let node = &wf.nodes[idx];
            let count = node.shard_count();
            let parallel = node.spec.shards.as_ref().map_or(1, |s| s.parallel());
            let next = node.tasks.len() as u32;
            if node.state != NodeState::Running || next >= count || node.live() >= parallel {
                return;
            }
            let mut spec = node.spec.task.clone();
            if spec.name.is_empty() {
                spec.name = if wf.name.is_empty() {
                    format!("wf{wf_id}/{}", node.spec.id)
                } else {
                    format!("{}/{}", wf.name, node.spec.id)
                };
                spec.name = crate::scheduler::task::truncate(spec.name, crate::scheduler::MAX_NAME_BYTES, false);
            }
            spec.origin = TaskOrigin::Workflow { workflow: wf_id, node: idx as u32 };
            if node.spec.shards.is_some() {
                spec.shard = Some(Shard { index: next, total: count });
            }
            let task = self.create(spec, now_ms);
            if let Some(wf) = self.workflows.get_mut(&wf_id) {
                wf.nodes[idx].tasks.push(task);
                wf.touch(now_ms);
            }
        }
    }

    /// A task became terminal: if it belongs to a workflow's node, record its outcome by shard
    /// index, decide the node if its rule says so, and walk the decision down to the children.
    pub(crate) fn workflow_task_ended(&mut self, task_id: TaskId, now_ms: u64) {
        let Some(task) = self.tasks.get(&task_id) else { return };
        let Some((wf_id, node_idx)) = task.spec.origin.workflow_node() else { return };
        let (end, shard) = (task.state, task.spec.shard.map_or(0, |s| s.index));
        let idx = node_idx as usize;
        let decided = {
            let Some(wf) = self.workflows.get_mut(&wf_id) else { return };
            let Some(node) = wf.nodes.get_mut(idx) else { return };
            if node.tasks.get(shard as usize) != Some(&task_id) || node.ended.contains_key(&shard) {
                return;
            }
            node.ended.insert(shard, end);
            wf.touch(now_ms);
            if wf.state.is_terminal() {
                // The workflow ended before this task did (cancelled, or a decided node's
                // rest); its schedule run ends with its last live task.
                let settled = wf.settled();
                if settled {
                    self.workflow_settled(wf_id, now_ms);
                }
                return;
            }
            let node = &mut wf.nodes[idx];
            if node.state != NodeState::Running {
                // Decided already (the rest of a `min k`, or a cancelled workflow): recorded only.
                None
            } else {
                let needed = node.spec.shards.as_ref().map_or(1, |s| s.needed());
                let count = node.shard_count();
                let succeeded = node.succeeded();
                let unfinished = count - node.ended.len() as u32;
                node.counted =
                    node.ended.iter().filter(|(_, s)| **s == TaskState::Succeeded).map(|(&i, _)| i).collect();
                if succeeded >= needed {
                    node.state = NodeState::Succeeded;
                    Some(node.tasks.clone())
                } else if succeeded + unfinished < needed {
                    let plain = node.spec.shards.is_none();
                    node.state =
                        if plain && end == TaskState::Cancelled { NodeState::Cancelled } else { NodeState::Failed };
                    node.reason = Some(if plain {
                        format!("task {task_id} ended {end}")
                    } else {
                        format!(
                            "shard {shard} (task {task_id}) ended {end}: {succeeded} of {count} succeeded, {needed} needed"
                        )
                    });
                    Some(node.tasks.clone())
                } else {
                    None
                }
            }
        };
        match decided {
            None => self.release_shards(wf_id, idx, now_ms),
            Some(tasks) => {
                // The rule is decided: shards still live are no longer needed.
                for t in tasks {
                    if self.tasks.get(&t).is_some_and(|t| !t.is_terminal()) {
                        let why =
                            Some(format!("node {} of workflow {wf_id} is already decided", self.node_id(wf_id, idx)));
                        let _ = self.cancel(None, now_ms, t, why);
                    }
                }
                self.settle_children(wf_id, idx, now_ms);
            }
        }
    }

    fn node_id(&self, wf_id: WorkflowId, idx: usize) -> String {
        self.workflows.get(&wf_id).map(|w| w.nodes[idx].spec.id.clone()).unwrap_or_default()
    }

    /// A node was decided: judge its waiting children, and theirs when they are skipped
    /// (a worklist, no recursion), then derive the workflow's state.
    fn settle_children(&mut self, wf_id: WorkflowId, decided: usize, now_ms: u64) {
        let mut work = vec![decided];
        let mut start = Vec::new();
        while let Some(idx) = work.pop() {
            let Some(wf) = self.workflows.get_mut(&wf_id) else { return };
            if wf.state != WorkflowState::Running {
                break;
            }
            for child in wf.nodes[idx].children.clone() {
                let child = child as usize;
                if wf.nodes[child].state != NodeState::Waiting {
                    continue;
                }
                match judge(wf, child) {
                    Verdict::Wait => {}
                    Verdict::Start => {
                        // Marked now so a later parent in the same walk does not judge it again.
                        let ended: Vec<u32> = wf.nodes[child]
                            .parents
                            .iter()
                            .copied()
                            .filter(|&p| wf.nodes[p as usize].state.is_terminal())
                            .collect();
                        wf.nodes[child].inputs_from = ended;
                        wf.nodes[child].state = NodeState::Running;
                        start.push(child);
                    }
                    Verdict::Skip(why) => {
                        wf.nodes[child].state = NodeState::Skipped;
                        wf.nodes[child].reason = Some(why);
                        work.push(child);
                    }
                }
            }
        }
        for child in start {
            self.release_shards(wf_id, child, now_ms);
        }
        self.derive_workflow_state(wf_id, now_ms);
    }

    /// Once every node ended: `succeeded` unless a node failed or was cancelled with no child
    /// handling it (an edge `on: failure` or `always` from it).
    fn derive_workflow_state(&mut self, wf_id: WorkflowId, now_ms: u64) {
        let Some(wf) = self.workflows.get_mut(&wf_id) else { return };
        if wf.state != WorkflowState::Running || wf.nodes.iter().any(|n| !n.state.is_terminal()) {
            return;
        }
        let unhandled = wf.nodes.iter().enumerate().any(|(i, n)| {
            matches!(n.state, NodeState::Failed | NodeState::Cancelled)
                && !n.children.iter().any(|&c| {
                    let child = &wf.nodes[c as usize];
                    // Handled only by a child that ran: a skipped handler handled nothing.
                    let ran = matches!(child.state, NodeState::Succeeded | NodeState::Failed);
                    ran && child
                        .spec
                        .depends
                        .iter()
                        .zip(&child.parents)
                        .any(|(e, &p)| p as usize == i && matches!(e.on, EdgeOn::Failure | EdgeOn::Always))
                })
        });
        wf.state = if unhandled { WorkflowState::Failed } else { WorkflowState::Succeeded };
        wf.finished_ms = Some(now_ms);
        wf.touch(now_ms);
        if wf.settled() {
            self.workflow_settled(wf_id, now_ms);
        }
    }

    /// The results a node's task receives from its parents: every parent task that succeeded
    /// and wrote one, by node and shard index. Empty for a task outside a workflow.
    pub fn inputs_of(&self, task_id: TaskId) -> Vec<TaskInput> {
        self.parent_results(task_id)
            .map(|(node, shard, data)| TaskInput { node: node.to_string(), shard, data: ResultData(data.to_vec()) })
            .collect()
    }

    /// [`State::inputs_of`] borrowed, in the same order: `(parent node id, shard index of a
    /// sharded parent, result bytes)`. Lets a caller weigh the inputs before copying them.
    pub(crate) fn parent_results(&self, task_id: TaskId) -> impl Iterator<Item = (&str, Option<u32>, &[u8])> + '_ {
        let node = self.tasks.get(&task_id).and_then(|t| t.spec.origin.workflow_node()).and_then(|(wf_id, idx)| {
            let wf = self.workflows.get(&wf_id)?;
            Some((wf, wf.nodes.get(idx as usize)?))
        });
        node.into_iter().flat_map(move |(wf, node)| {
            node.inputs_from.iter().flat_map(move |&p| {
                let parent = &wf.nodes[p as usize];
                let sharded = parent.spec.shards.is_some();
                parent.counted.iter().filter_map(move |&shard| {
                    let task = self.tasks.get(parent.tasks.get(shard as usize)?)?;
                    let result = task.result.as_ref().filter(|_| task.state == TaskState::Succeeded)?;
                    Some((parent.spec.id.as_str(), sharded.then_some(shard), result.data.as_slice()))
                })
            })
        })
    }

    /// One workflow.
    pub fn workflow(&self, id: WorkflowId) -> Option<&Workflow> {
        self.workflows.get(&id)
    }

    /// Workflows in id order from `after` (exclusive), at most `limit`, and whether more exist.
    pub(crate) fn workflows_page(
        &self,
        after: Option<WorkflowId>,
        limit: usize,
    ) -> (Vec<Workflow>, Option<WorkflowId>) {
        let from = after.map_or(0, |a| a.saturating_add(1));
        let mut page: Vec<Workflow> =
            self.workflows.range(from..).take(limit + 1).map(|(_, w)| Workflow::clone(w)).collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more { page.last().map(|w| w.id) } else { None };
        (page, next)
    }

    /// Checks every workflow against its tasks. O(workflow tasks): for tests.
    pub(crate) fn check_workflows(&self) -> Result<(), String> {
        for (&id, wf) in &self.workflows {
            if wf.id != id || id >= self.next_workflow_id {
                return Err(format!("workflow {id} is filed wrong (next id {})", self.next_workflow_id));
            }
            for (i, node) in wf.nodes.iter().enumerate() {
                let parallel = node.spec.shards.as_ref().map_or(1, |s| s.parallel());
                let live = node.tasks.iter().filter(|t| self.tasks.get(t).is_some_and(|t| !t.is_terminal())).count();
                if node.state == NodeState::Running && live as u32 > parallel {
                    return Err(format!(
                        "workflow {id} node {} has {live} live tasks, max_parallel {parallel}",
                        node.spec.id
                    ));
                }
                for (shard, t) in node.tasks.iter().enumerate() {
                    let Some(task) = self.tasks.get(t) else {
                        return Err(format!("workflow {id} node {} lists missing task {t}", node.spec.id));
                    };
                    if task.spec.origin.workflow_node() != Some((id, i as u32)) {
                        return Err(format!(
                            "task {t} is listed by workflow {id} but has origin {:?}",
                            task.spec.origin
                        ));
                    }
                    let recorded = node.ended.get(&(shard as u32));
                    if task.is_terminal() != recorded.is_some() || recorded.is_some_and(|s| *s != task.state) {
                        return Err(format!(
                            "workflow {id} node {} shard {shard}: task {t} is {}, recorded {recorded:?}",
                            node.spec.id, task.state
                        ));
                    }
                }
                if node.state == NodeState::Waiting && !node.tasks.is_empty() {
                    return Err(format!("workflow {id} node {} is waiting with tasks", node.spec.id));
                }
                if matches!(node.state, NodeState::Skipped) && !node.tasks.is_empty() {
                    return Err(format!("workflow {id} node {} was skipped but has tasks", node.spec.id));
                }
            }
            if wf.state == WorkflowState::Running && wf.nodes.iter().all(|n| n.state.is_terminal()) {
                return Err(format!("workflow {id} is running with every node ended"));
            }
        }
        for (key, id) in &self.workflow_keys {
            if self.workflows.get(id).is_none_or(|w| w.idempotency_key.as_deref() != Some(key)) {
                return Err(format!("workflow key {key} maps to {id}, which does not carry it"));
            }
        }
        Ok(())
    }
}

pub(crate) fn workflow_not_found(id: WorkflowId) -> Rejection {
    Rejection::new(RejectCode::NotFound, format!("workflow {id} does not exist"))
}
