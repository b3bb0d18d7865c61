//! `/v1/workflows…`: submit, list, get and cancel workflows. The DAG is checked here (unknown
//! nodes, self-loops, cycles named node by node, limits, every node's task as `POST /v1/tasks`
//! checks it) and again by apply; nothing is written for a bad request.

use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::time::Instant;

use super::error::ApiError;
use super::error::optional;
use super::error::path_error;
use super::tasks::Body;
use super::tasks::IdPath;
use super::tasks::Proposed;
use super::tasks::barrier;
use super::tasks::propose;
use crate::node::Node;
use crate::proto::tasks::ReadQuery;
use crate::proto::workflows::{
    CancelWorkflowRequest, NodeRequest, NodeTask, NodeView, Progress, WorkflowList, WorkflowListQuery, WorkflowRequest,
    WorkflowSummary, WorkflowView,
};
use crate::scheduler;
use crate::scheduler::Command;
use crate::scheduler::ResultData;
use crate::scheduler::State as SchedulerState;
use crate::scheduler::workflow::{NodeSpec, Workflow, WorkflowSpec};
use crate::util::now_ms;

/// Most result bytes one workflow answer carries; the rest are left out (and counted).
pub const MAX_VIEW_RESULT_BYTES: usize = 4 << 20;

/// How the API shows `wf`, with its tasks' states and results read from `state`.
pub fn view(wf: &Workflow, state: &SchedulerState) -> WorkflowView {
    let mut budget = MAX_VIEW_RESULT_BYTES;
    let mut omitted = 0u32;
    let nodes = wf
        .nodes
        .iter()
        .map(|n| {
            let sharded = n.spec.shards.is_some();
            let tasks = n
                .tasks
                .iter()
                .enumerate()
                .filter_map(|(i, &id)| {
                    let t = state.task(id)?;
                    Some(NodeTask {
                        shard: sharded.then_some(i as u32),
                        task_id: id,
                        state: t.state,
                        result: t.result.as_ref().and_then(|r| {
                            if r.data.len() > budget {
                                omitted += 1;
                                return None;
                            }
                            budget -= r.data.len();
                            Some(ResultData(r.data.clone()))
                        }),
                    })
                })
                .collect();
            let succeeded = n.succeeded();
            NodeView {
                id: n.spec.id.clone(),
                state: n.state,
                reason: n.reason.clone(),
                depends: n.spec.depends.clone(),
                trigger: n.spec.trigger,
                shards: n.spec.shards.clone(),
                progress: Progress {
                    total: n.shard_count(),
                    created: n.tasks.len() as u32,
                    live: n.live(),
                    succeeded,
                    failed: n.ended.len() as u32 - succeeded,
                },
                tasks,
                task: n.spec.task.clone(),
            }
        })
        .collect();
    WorkflowView {
        id: wf.id,
        name: wf.name.clone(),
        state: wf.state,
        idempotency_key: wf.idempotency_key.clone(),
        origin: wf.origin,
        created_ms: wf.created_ms,
        updated_ms: wf.updated_ms,
        finished_ms: wf.finished_ms,
        cancel_reason: wf.cancel_reason.clone(),
        version: wf.version,
        results_omitted: omitted,
        nodes,
    }
}

fn summary(wf: &Workflow) -> WorkflowSummary {
    let mut nodes = std::collections::BTreeMap::new();
    for n in &wf.nodes {
        *nodes.entry(n.state.as_str().to_string()).or_insert(0) += 1;
    }
    WorkflowSummary {
        id: wf.id,
        name: wf.name.clone(),
        state: wf.state,
        created_ms: wf.created_ms,
        finished_ms: wf.finished_ms,
        nodes,
    }
}

/// Parses and checks a submit body into a spec and its request id. Shared with schedules
/// whose template is a workflow.
pub(crate) fn parse_request(req: WorkflowRequest) -> Result<(WorkflowSpec, Option<String>), ApiError> {
    if req.nodes.len() > scheduler::workflow::MAX_WORKFLOW_NODES {
        let msg = format!(
            "nodes: a workflow holds 1 to {} nodes, not {}",
            scheduler::workflow::MAX_WORKFLOW_NODES,
            req.nodes.len()
        );
        return Err(ApiError::invalid(msg));
    }
    let nodes = parse_nodes(req.nodes, "")?;
    let spec = WorkflowSpec { name: req.name, idempotency_key: req.idempotency_key, nodes };
    spec.validate_replicated().map_err(|e| ApiError::invalid(format!("{}: {}", e.field, e.message)))?;
    Ok((spec, req.request_id))
}

/// Each node's task parsed like a task submit (shorthands, `labels`, `max_attempts`); errors
/// name `{prefix}nodes[i].task.…`.
pub(crate) fn parse_nodes(nodes: Vec<NodeRequest>, prefix: &str) -> Result<Vec<NodeSpec>, ApiError> {
    let mut out = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.into_iter().enumerate() {
        let at = format!("{prefix}nodes[{i}].task.");
        let (task, request_id) = super::tasks::parse_task(n.task, &at)?;
        if request_id.is_some() {
            return Err(ApiError::invalid(format!("{at}request_id: give request_id at the top level")));
        }
        out.push(NodeSpec { id: n.id, task, depends: n.depends, trigger: n.trigger, shards: n.shards });
    }
    Ok(out)
}

fn workflow_of(resp: scheduler::Response, what: &str) -> Result<(Box<Workflow>, bool), ApiError> {
    match resp {
        scheduler::Response::Workflow { workflow, created } => Ok((workflow, created)),
        scheduler::Response::Rejected(r) => Err(r.into()),
        other => Err(ApiError::internal(format!("unexpected answer to {what}: {other:?}"))),
    }
}

/// The view of workflow `id` as this replica's state has it now.
fn read_view(node: &Node, id: u64) -> Result<WorkflowView, ApiError> {
    node.view.read(|a| match a.state.workflow(id) {
        Some(w) => Ok(view(w, &a.state)),
        None => Err(ApiError::missing_workflow(&a.state, id)),
    })
}

/// `POST /v1/workflows`: 201 with the workflow, or 200 with the existing one for a known
/// idempotency key or request id.
#[utoipa::path(
    post,
    path = "/v1/workflows",
    tag = "workflows",
    operation_id = "submit_workflow",
    params(crate::api::openapi::RequestIdHeader),
    request_body(content = WorkflowRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; its root nodes' tasks are pending", body = WorkflowView),
        (status = 200, description = "The workflow an earlier submit with the same idempotency key or request id created", body = WorkflowView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn submit(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let req: WorkflowRequest =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(path_error)?;
    let (spec, request_id) = parse_request(req)?;
    let request_id = super::tasks::header_request_id(&headers)?.or(request_id);
    let cmd = Command::SubmitWorkflow { request_id, now_ms: now_ms(), spec: Box::new(spec) };
    let (workflow, created) = match propose(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Proposed::Forwarded(resp) => return Ok(resp),
        Proposed::Applied(resp) => workflow_of(*resp, "submit")?,
    };
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let view = node.view.read(|a| view(&workflow, &a.state));
    Ok((status, Json(view)).into_response())
}

/// `GET /v1/workflows`: a page of workflows in id order.
#[utoipa::path(
    get,
    path = "/v1/workflows",
    tag = "workflows",
    operation_id = "list_workflows",
    params(WorkflowListQuery),
    responses(
        (status = 200, description = "A page of workflows", body = WorkflowList),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    p: Result<Query<WorkflowListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = p?;
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    let q = scheduler::Query::ListWorkflows { after: p.cursor, limit: p.limit.unwrap_or(0) };
    let list = node.view.read(|a| match a.state.query(&q) {
        scheduler::QueryResponse::Workflows { workflows, next_cursor } => {
            Some(WorkflowList { workflows: workflows.iter().map(summary).collect(), next_cursor })
        }
        _ => None,
    });
    let list = list.ok_or_else(|| ApiError::internal("unexpected answer to a workflow list"))?;
    Ok(Json(list).into_response())
}

/// `GET /v1/workflows/{id}`: the workflow with every node's state, tasks and results.
#[utoipa::path(
    get,
    path = "/v1/workflows/{id}",
    tag = "workflows",
    operation_id = "get_workflow",
    params(("id" = u64, Path, description = "Workflow id"), ReadQuery),
    responses(
        (status = 200, description = "The workflow", body = WorkflowView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn get(
    State(node): State<Arc<Node>>,
    id: IdPath,
    p: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(id), Query(p)) = (id?, p?);
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    Ok(Json(read_view(&node, id)?).into_response())
}

/// `POST /v1/workflows/{id}/cancel` `{"reason"?}`: the workflow ends `cancelled`; waiting
/// nodes are cancelled and live tasks asked to stop.
#[utoipa::path(
    post,
    path = "/v1/workflows/{id}/cancel",
    tag = "workflows",
    operation_id = "cancel_workflow",
    params(("id" = u64, Path, description = "Workflow id")),
    request_body(content = Option<CancelWorkflowRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "The workflow, cancelled", body = WorkflowView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn cancel(
    State(node): State<Arc<Node>>,
    id: IdPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let body = body?;
    let req: CancelWorkflowRequest = optional(&body)?;
    let cmd = Command::CancelWorkflow { now_ms: now_ms(), id, reason: req.reason };
    let (workflow, _) = match propose(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Proposed::Forwarded(resp) => return Ok(resp),
        Proposed::Applied(resp) => workflow_of(*resp, "cancel")?,
    };
    let view = node.view.read(|a| view(&workflow, &a.state));
    Ok(Json(view).into_response())
}
