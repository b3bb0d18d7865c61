//! `/v1/tasks…`: submit (single and batch), get, list, cancel, wait.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::Value;
use serde_json::json;
use tokio::time::Instant;

use super::error::ApiError;
use super::error::optional;
use super::forward;
use crate::node::Node;
use crate::node::WriteError;
use crate::proto::DEFAULT_WAIT;
use crate::proto::MAX_BATCH;
use crate::proto::MAX_REQUEST_ID_BYTES;
use crate::proto::MAX_WAIT;
use crate::proto::REQUEST_ID_HEADER;
use crate::proto::tasks::BatchAnswer;
use crate::proto::tasks::BatchRequest;
use crate::proto::tasks::CancelRequest;
use crate::proto::tasks::Consistency;
use crate::proto::tasks::ListQuery;
use crate::proto::tasks::ReadQuery;
use crate::proto::tasks::TaskPage;
use crate::proto::tasks::TaskView;
use crate::proto::tasks::WaitQuery;
use crate::scheduler;
use crate::scheduler::Command;
use crate::scheduler::QueryResponse;
use crate::scheduler::Task;
use crate::scheduler::TaskSpec;
use crate::scheduler::TaskState;
use crate::util::now_ms;

/// A request body, or why axum could not read it.
pub type Body = Result<Bytes, BytesRejection>;
/// A `{id}` path segment; a non-number is a JSON 400, not axum's plain-text one.
pub type IdPath = Result<Path<u64>, PathRejection>;

/// A proposal either applied here (we are the leader) or was answered by the leader.
pub(crate) enum Proposed {
    Applied(Box<scheduler::Response>),
    Forwarded(Response),
}

/// Proposes `cmd` on the leader: here if we lead, otherwise by forwarding the original request.
pub(crate) async fn propose(
    node: &Node,
    cmd: Command,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Proposed, ApiError> {
    if !node.is_leader() {
        return Ok(Proposed::Forwarded(forward::to_leader(node, None, method, uri, headers, body).await));
    }
    let deadline = Instant::now() + node.config.request_timeout;
    match node.write(cmd, deadline).await {
        Ok(scheduler::Response::Rejected(r)) => Err(r.into()),
        Ok(resp) => Ok(Proposed::Applied(Box::new(resp))),
        // Refused before anything was appended: forwarding cannot double the write.
        Err(WriteError::NotLeader(hint)) => {
            Ok(Proposed::Forwarded(forward::to_leader(node, hint, method, uri, headers, body).await))
        }
        Err(e) => Err(e.into()),
    }
}

/// Parses one task object of the public API into a spec (+ request id).
///
/// Accepted on top of the [`TaskSpec`] fields: `max_attempts` (short for
/// `retry.max_attempts`), `labels` (alias of `constraints`), `request_id`, and what clients
/// of the first release sent: `"placement": {"prefer": {"labels", "then"}}` (lifted into
/// `prefer` beside `placement`); the `taskraft:` shorthand is expanded by [`accept`].
pub(crate) fn parse_task(value: Value, path: &str) -> Result<(TaskSpec, Option<String>), ApiError> {
    let Value::Object(mut map) = value else {
        return Err(ApiError::invalid(format!("{path}: expected a JSON object")));
    };
    let request_id = match map.remove("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_REQUEST_ID_BYTES => Some(s),
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "{path}request_id: must be a non-empty string of at most 256 bytes"
            )));
        }
    };
    if let Some(labels) = map.remove("labels") {
        if map.contains_key("constraints") {
            return Err(ApiError::invalid(format!("{path}labels: give either `labels` or `constraints`, not both")));
        }
        map.insert("constraints".into(), labels);
    }
    lift_legacy_prefer(&mut map, path)?;
    if let Some(max) = map.remove("max_attempts") {
        let retry = map.entry("retry").or_insert_with(|| json!({}));
        match retry {
            Value::Object(r) => {
                r.insert("max_attempts".into(), max);
            }
            _ => return Err(ApiError::invalid(format!("{path}retry: expected an object"))),
        }
    }
    let spec: TaskSpec = serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let field = e.path().to_string();
        ApiError::invalid(format!("{path}{field}: {}", e.into_inner()))
    })?;
    Ok((accept(spec, path)?, request_id))
}

/// Format 1 wrapped preferences around the strategy: `"placement": {"prefer": {"labels": {…},
/// "then": S}}`. Rewritten as `"placement": S, "prefer": {"labels": {…}}`.
fn lift_legacy_prefer(map: &mut serde_json::Map<String, Value>, path: &str) -> Result<(), ApiError> {
    let Some(Value::Object(placement)) = map.get_mut("placement") else {
        return Ok(());
    };
    let Some(Value::Object(mut prefer)) = placement.remove("prefer") else {
        return Ok(());
    };
    if map.contains_key("prefer") {
        return Err(ApiError::invalid(format!("{path}prefer: give `prefer` or `placement.prefer`, not both")));
    }
    let then = prefer.remove("then").unwrap_or_else(|| json!("priority_fcfs"));
    map.insert("placement".into(), then);
    map.insert("prefer".into(), Value::Object(prefer));
    Ok(())
}

/// Expands the `taskraft:` executor shorthand, then checks every rule of the API edge.
fn accept(mut spec: TaskSpec, path: &str) -> Result<TaskSpec, ApiError> {
    let invalid = |e: scheduler::FieldError| ApiError::invalid(format!("{path}{}: {}", e.field, e.message));
    spec.expand_shorthand().map_err(invalid)?;
    spec.validate().map_err(invalid)?;
    if spec.origin != scheduler::TaskOrigin::Api {
        return Err(ApiError::invalid(format!("{path}origin: is set by the cluster (schedule runs); leave it out")));
    }
    Ok(spec)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

pub(crate) fn header_request_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(REQUEST_ID_HEADER).map(|v| v.to_str()) {
        None => Ok(None),
        Some(Ok(s)) if !s.is_empty() && s.len() <= MAX_REQUEST_ID_BYTES => Ok(Some(s.to_string())),
        Some(_) => Err(ApiError::invalid(format!("{REQUEST_ID_HEADER}: must be 1 to 256 visible ASCII characters"))),
    }
}

/// Parses one task. The common case (a body of plain [`TaskSpec`] fields) is decoded in one
/// pass; anything else (shortcuts, or an error to explain) takes the slower [`parse_task`].
fn parse_one(body: &[u8]) -> Result<(TaskSpec, Option<String>), ApiError> {
    match serde_json::from_slice::<TaskSpec>(body) {
        Ok(spec) => Ok((accept(spec, "")?, None)),
        Err(_) => parse_task(parse_json(body)?, ""),
    }
}

/// Parses a batch body: one pass for plain specs, the explaining path otherwise.
fn parse_batch(body: &[u8]) -> Result<(Vec<TaskSpec>, Option<String>), ApiError> {
    let (specs, request_id) = match serde_json::from_slice::<BatchRequest>(body) {
        Ok(plain) => {
            let mut specs = Vec::with_capacity(plain.tasks.len());
            for (i, spec) in plain.tasks.into_iter().enumerate() {
                specs.push(accept(spec, &format!("tasks[{i}]."))?);
            }
            (specs, plain.request_id)
        }
        Err(_) => parse_batch_slow(body)?,
    };
    if specs.is_empty() || specs.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("tasks: must hold 1 to {MAX_BATCH} tasks, got {}", specs.len())));
    }
    Ok((specs, request_id))
}

fn parse_batch_slow(body: &[u8]) -> Result<(Vec<TaskSpec>, Option<String>), ApiError> {
    let Value::Object(mut map) = parse_json(body)? else {
        return Err(ApiError::invalid("body: expected an object {\"tasks\": [...]}"));
    };
    let request_id = match map.remove("request_id") {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => None,
        Some(_) => return Err(ApiError::invalid("request_id: must be a string")),
    };
    let Some(Value::Array(items)) = map.remove("tasks") else {
        return Err(ApiError::invalid("tasks: required, an array of task objects"));
    };
    if let Some(key) = map.keys().next() {
        return Err(ApiError::invalid(format!("{key}: unknown field (expected `tasks`, `request_id`)")));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("tasks: must hold 1 to {MAX_BATCH} tasks, got {}", items.len())));
    }
    let mut specs = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let (spec, rid) = parse_task(item, &format!("tasks[{i}]."))?;
        if rid.is_some() {
            return Err(ApiError::invalid(format!("tasks[{i}].request_id: give request_id once, at the top level")));
        }
        specs.push(spec);
    }
    Ok((specs, request_id))
}

/// `POST /v1/tasks`: 201 with the new task, or 200 with the existing one for a known
/// idempotency key / request id.
#[utoipa::path(
    post,
    path = "/v1/tasks",
    tag = "tasks",
    operation_id = "submit_task",
    params(crate::api::openapi::RequestIdHeader),
    request_body(content = crate::proto::tasks::TaskSubmission, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Task),
        (status = 200, description = "The task an earlier submit with the same idempotency key or request id created", body = Task),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
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
    let (spec, body_request_id) = parse_one(&body)?;
    let request_id = header_request_id(&headers)?.or(body_request_id);
    let cmd = Command::Submit { request_id, now_ms: now_ms(), spec, reuse: scheduler::Reuse::SameBody };
    match propose(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Proposed::Forwarded(resp) => Ok(resp),
        Proposed::Applied(resp) => match *resp {
            scheduler::Response::Submitted { tasks } => {
                let Some(first) = tasks.into_iter().next() else {
                    return Err(ApiError::internal("submit produced no task"));
                };
                let status = if first.created { StatusCode::CREATED } else { StatusCode::OK };
                Ok((status, Json(first.task)).into_response())
            }
            other => Err(ApiError::internal(format!("unexpected answer to submit: {other:?}"))),
        },
    }
}

/// [`BatchAnswer`] as the server writes it (the same JSON): the tasks shared with the state,
/// not copied out of it.
#[derive(serde::Serialize)]
struct BatchAnswerOut {
    tasks: Vec<BatchItemOut>,
}

/// [`crate::proto::tasks::BatchItem`] as the server writes it.
#[derive(serde::Serialize)]
struct BatchItemOut {
    #[serde(flatten)]
    task: Arc<Task>,
    created: bool,
}

/// `POST /v1/tasks/batch` `{"tasks": [...]}`: all or nothing; the created tasks in order,
/// each with a `created` flag.
#[utoipa::path(
    post,
    path = "/v1/tasks/batch",
    tag = "tasks",
    operation_id = "submit_batch",
    params(crate::api::openapi::RequestIdHeader),
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "At least one task was created", body = BatchAnswer),
        (status = 200, description = "Every task already existed (idempotency keys, or a retried request)", body = BatchAnswer),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn submit_batch(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let (specs, body_request_id) = parse_batch(&body)?;
    let request_id = header_request_id(&headers)?.or(body_request_id);
    // The answer echoes every spec, plus the task's own fields.
    let answer_capacity = body.len() + specs.len() * 256;
    let cmd = Command::SubmitBatch { request_id, now_ms: now_ms(), specs, reuse: scheduler::Reuse::SameBody };
    match propose(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Proposed::Forwarded(resp) => Ok(resp),
        Proposed::Applied(resp) => match *resp {
            scheduler::Response::Submitted { tasks } => {
                let any_created = tasks.iter().any(|t| t.created);
                let tasks = tasks.into_iter().map(|t| BatchItemOut { task: t.task, created: t.created }).collect();
                let status = if any_created { StatusCode::CREATED } else { StatusCode::OK };
                // Written into a buffer of about its final size: growing one from empty moved
                // the answer (up to megabytes) a dozen times.
                let mut buf = Vec::with_capacity(answer_capacity);
                serde_json::to_writer(&mut buf, &BatchAnswerOut { tasks })
                    .map_err(|e| ApiError::internal(format!("cannot encode the batch answer: {e}")))?;
                Ok((status, [(axum::http::header::CONTENT_TYPE, "application/json")], buf).into_response())
            }
            other => Err(ApiError::internal(format!("unexpected answer to batch submit: {other:?}"))),
        },
    }
}

/// `POST /v1/tasks/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/cancel",
    tag = "tasks",
    operation_id = "cancel_task",
    params(("id" = u64, Path, description = "Task id")),
    request_body(content = Option<CancelRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "The task: cancelled, or `cancel_requested` while its attempt is stopped", body = Task),
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
    let parsed: CancelRequest = optional(&body)?;
    let cmd = Command::Cancel { request_id: parsed.request_id, now_ms: now_ms(), task_id: id, reason: parsed.reason };
    match propose(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Proposed::Forwarded(resp) => Ok(resp),
        Proposed::Applied(resp) => match *resp {
            scheduler::Response::Cancelled { task } => Ok(Json(task).into_response()),
            other => Err(ApiError::internal(format!("unexpected answer to cancel: {other:?}"))),
        },
    }
}

/// Waits for the read barrier unless the client asked for a stale read.
pub async fn barrier(node: &Node, consistency: &Consistency, deadline: Instant) -> Result<(), ApiError> {
    match consistency {
        Consistency::Stale => Ok(()),
        Consistency::Linearizable => Ok(node.read_barrier(deadline).await?),
    }
}

fn get_task(node: &Node, id: u64) -> Option<Task> {
    node.view.read(|a| match a.state.query(&scheduler::Query::GetTask { id }) {
        QueryResponse::Task(t) => t,
        _ => None,
    })
}

/// `GET /v1/tasks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}",
    tag = "tasks",
    operation_id = "get_task",
    params(("id" = u64, Path, description = "Task id"), ReadQuery),
    responses(
        (status = 200, description = "The task", body = TaskView),
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
    let view = node.view.read(|a| {
        let task = a.state.task(id)?.clone();
        let pending_reason = scheduler::explain_pending(&a.state, id, now_ms());
        let migration = a.state.migration_of(id).cloned();
        let migrating = a.state.migrate_requested(&task).is_some();
        Some(TaskView { task, pending_reason, migration, migrating })
    });
    match view {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(node.view.read(|a| ApiError::missing_task(&a.state, id))),
    }
}

/// `GET /v1/tasks?state=&limit=&cursor=`: a page in id order and the cursor of the next one.
/// With `schedule=ID`: that schedule's runs in nominal order (the cursor is a nominal time).
#[utoipa::path(
    get,
    path = "/v1/tasks",
    tag = "tasks",
    operation_id = "list_tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, in id order (nominal order with `schedule`)", body = TaskPage),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    p: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = p?;
    let state = match p.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(TaskState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "state: `{s}` is not one of pending, blocked, assigned, running, retry_wait, succeeded, failed, cancelled"
            ))
        })?),
    };
    let q = match p.schedule {
        None => scheduler::Query::ListTasks { state, after: p.cursor, limit: p.limit.unwrap_or(0) },
        Some(_) if state.is_some() => {
            return Err(ApiError::invalid("state: cannot be combined with schedule; filter the runs yourself"));
        }
        Some(id) => scheduler::Query::ScheduleRuns { id, after: p.cursor, limit: p.limit.unwrap_or(0) },
    };
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    match node.view.read(|a| a.state.query(&q)) {
        QueryResponse::Tasks { tasks, next_cursor } => Ok(Json(TaskPage { tasks, next_cursor }).into_response()),
        QueryResponse::Schedule(None) => {
            Err(ApiError::not_found(format!("schedule {} does not exist", p.schedule.unwrap_or_default())))
        }
        QueryResponse::Workflows { .. } => {
            let id = p.schedule.unwrap_or_default();
            Err(ApiError::invalid(format!(
                "schedule: schedule {id} fires workflows, not tasks; list its runs with GET /v1/schedules/{id}/runs"
            )))
        }
        other => Err(ApiError::internal(format!("unexpected answer to list: {other:?}"))),
    }
}

/// `GET /v1/stats`: task counts per state, totals and worker counts (O(1)).
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "tasks",
    operation_id = "stats",
    params(ReadQuery),
    responses(
        (status = 200, description = "Counts", body = scheduler::Stats),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn stats(
    State(node): State<Arc<Node>>,
    p: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = p?;
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    match node.view.read(|a| a.state.query(&scheduler::Query::Stats)) {
        QueryResponse::Stats(stats) => Ok(Json(stats).into_response()),
        other => Err(ApiError::internal(format!("unexpected answer to stats: {other:?}"))),
    }
}

/// `GET /v1/tasks/{id}/wait?timeout_ms=`: long-polls until the task is terminal or the timeout
/// passes, then answers the task as it is (check `state`).
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}/wait",
    tag = "tasks",
    operation_id = "wait_task",
    params(("id" = u64, Path, description = "Task id"), WaitQuery),
    responses(
        (status = 200, description = "The task when it finished, or as it is when the wait timed out (check `state`)", body = Task),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn wait(
    State(node): State<Arc<Node>>,
    id: IdPath,
    p: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(id), Query(p)) = (id?, p?);
    let wait = p.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    let mut changes = node.view.subscribe();
    loop {
        changes.borrow_and_update();
        let Some(task) = get_task(&node, id) else {
            return Err(node.view.read(|a| ApiError::missing_task(&a.state, id)));
        };
        if task.is_terminal() {
            return Ok(Json(task).into_response());
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, changes.changed()) => match changed {
                Ok(Ok(())) => continue,
                _ => return Ok(Json(&task).into_response()),
            },
            // Shutting down: answer now rather than hold the graceful shutdown for a minute.
            _ = node.shutdown.cancelled() => return Ok(Json(&task).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_task_names_the_bad_field() {
        let err = parse_task(json!({"command": ["x"], "priority": "high"}), "").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(err.message.starts_with("priority"), "{}", err.message);
        let err = parse_task(json!({"command": ["x"], "nope": 1}), "tasks[2].").unwrap_err();
        assert!(err.message.contains("nope"), "{}", err.message);
        let err = parse_task(json!({"command": []}), "").unwrap_err();
        assert!(err.message.contains("command"), "{}", err.message);
    }

    #[test]
    fn the_batch_answer_is_written_as_documented() {
        let mut state = crate::scheduler::State::default();
        let (a, _) = parse_task(json!({"command": ["true"], "name": "a", "labels": {"k": "v"}}), "").unwrap();
        let (b, _) = parse_task(json!({"command": ["sh", "-c", "exit 1"], "priority": 7}), "").unwrap();
        let scheduler::Response::Submitted { tasks } = state.apply(
            1,
            Command::SubmitBatch { request_id: None, now_ms: 5, specs: vec![a, b], reuse: scheduler::Reuse::SameBody },
        ) else {
            panic!("submit refused")
        };
        let documented = BatchAnswer {
            tasks: tasks
                .iter()
                .map(|t| crate::proto::tasks::BatchItem { task: Task::clone(&t.task), created: t.created })
                .collect(),
        };
        let written = BatchAnswerOut {
            tasks: tasks.into_iter().map(|t| BatchItemOut { task: t.task, created: t.created }).collect(),
        };
        assert_eq!(serde_json::to_string(&written).unwrap(), serde_json::to_string(&documented).unwrap());
    }

    #[test]
    fn parse_task_accepts_shortcuts() {
        let (spec, rid) =
            parse_task(json!({"command": ["x"], "max_attempts": 3, "labels": {"gpu": "1"}, "request_id": "c:1"}), "")
                .unwrap();
        assert_eq!(spec.retry.max_attempts, 3);
        assert_eq!(spec.constraints.get("gpu").map(String::as_str), Some("1"));
        assert_eq!(rid.as_deref(), Some("c:1"));
    }
}
