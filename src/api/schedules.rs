//! `/v1/schedules…`: create, list, get, update, delete, pause, resume, trigger, backfill, runs
//! and preview. The calendar and the template (a task, or a workflow whose node tasks are
//! parsed like task submits) are parsed here: a bad cron, zone, policy or template is a 422
//! naming the field, and nothing is written. Firing is the leader's job (`node::leader::fires`).

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
use super::forward;
use super::tasks::Body;
use super::tasks::IdPath;
use super::tasks::Proposed;
use super::tasks::barrier;
use super::tasks::propose;
use crate::node::Node;
use crate::proto::schedules::BackfillRequest;
use crate::proto::schedules::DeleteQuery;
use crate::proto::schedules::Deleted;
use crate::proto::schedules::FireTime;
use crate::proto::schedules::InstantInput;
use crate::proto::schedules::MAX_BACKFILL;
use crate::proto::schedules::MAX_PREVIEW;
use crate::proto::schedules::NEXT_FIRES_SHOWN;
use crate::proto::schedules::PauseRequest;
use crate::proto::schedules::Preview;
use crate::proto::schedules::PreviewQuery;
use crate::proto::schedules::RunPage;
use crate::proto::schedules::RunsQuery;
use crate::proto::schedules::RunsStarted;
use crate::proto::schedules::ScheduleList;
use crate::proto::schedules::ScheduleRequest;
use crate::proto::schedules::ScheduleRun;
use crate::proto::schedules::ScheduleView;
use crate::proto::schedules::TriggerRequest;
use crate::proto::schedules::WorkflowTemplate;
use crate::proto::tasks::ReadQuery;
use crate::scheduler;
use crate::scheduler::Command;
use crate::scheduler::QueryResponse;
use crate::scheduler::Schedule;
use crate::scheduler::ScheduleSpec;
use crate::scheduler::TaskOrigin;
use crate::scheduler::TaskSpec;
use crate::scheduler::WorkflowSpec;
use crate::scheduler::calendar;
use crate::scheduler::calendar::Calendar;
use crate::scheduler::calendar::Trigger;
use crate::scheduler::schedule::RunKind;
use crate::scheduler::workflow::WorkflowOrigin;
use crate::util::now_ms;

fn field_error(e: scheduler::FieldError) -> ApiError {
    ApiError::invalid(format!("{}: {}", e.field, e.message))
}

fn instant(field: &str, input: &InstantInput) -> Result<u64, ApiError> {
    match input {
        InstantInput::Ms(ms) => Ok(*ms),
        InstantInput::Text(text) => calendar::parse_instant(field, text).map_err(field_error),
    }
}

fn fire_time(ms: u64, time_zone: &str) -> FireTime {
    FireTime { ms, utc: calendar::rfc3339_utc(ms), local: calendar::rfc3339_in(ms, time_zone) }
}

/// How the API shows `s` at `now`.
pub fn view(s: &Schedule, now: u64) -> ScheduleView {
    let spec = &s.spec;
    let (cron, every_ms, at_ms) = match &spec.trigger {
        Trigger::Cron { expr } => (Some(expr.clone()), None, None),
        Trigger::Every { every_ms } => (None, Some(*every_ms), None),
        Trigger::At { at_ms } => (None, None, Some(*at_ms)),
    };
    let next_fires = match (&s.paused, s.calendar()) {
        (None, Ok(cal)) => {
            let after = s.plan_after().max(now).max(s.resumed_ms.unwrap_or(0).saturating_sub(1));
            cal.next_n(after, NEXT_FIRES_SHOWN).into_iter().map(|ms| fire_time(ms, &spec.time_zone)).collect()
        }
        _ => Vec::new(),
    };
    ScheduleView {
        id: s.id,
        name: spec.name.clone(),
        cron,
        every_ms,
        at_ms,
        time_zone: spec.time_zone.clone(),
        start_ms: spec.start_ms,
        end_ms: spec.end_ms,
        catch_up: spec.catch_up,
        catch_up_window_ms: spec.catch_up_window_ms,
        overlap: spec.overlap,
        jitter_ms: spec.jitter_ms,
        idempotency_key: spec.idempotency_key.clone(),
        task: spec.workflow.is_none().then(|| spec.task.clone()),
        workflow: spec.workflow.as_deref().cloned(),
        version: s.version,
        created_ms: s.created_ms,
        updated_ms: s.updated_ms,
        paused: s.paused.is_some(),
        pause_note: s.paused.as_ref().and_then(|p| p.note.clone()),
        paused_since_ms: s.paused.as_ref().map(|p| p.since_ms),
        last_nominal_ms: s.last_nominal_ms,
        last_nominal: s.last_nominal_ms.map(calendar::rfc3339_utc),
        counters: s.counters.clone(),
        live_runs: s.live.iter().copied().collect(),
        buffered_nominal_ms: s.buffered,
        runs: s.runs,
        next_fires,
    }
}

/// Parses and checks a create/update body: the calendar, the policies and the template.
/// `now` anchors an interval schedule without `start`, as apply will (its creation time).
fn parse_request(body: &[u8], now: u64) -> Result<(ScheduleSpec, bool, Option<String>), ApiError> {
    let req: ScheduleRequest =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(path_error)?;
    let trigger = match (&req.cron, req.every_ms, &req.at) {
        (Some(expr), None, None) => Trigger::Cron { expr: expr.trim().to_string() },
        (None, Some(every_ms), None) => Trigger::Every { every_ms },
        (None, None, Some(at)) => Trigger::At { at_ms: instant("at", at)? },
        (None, None, None) => return Err(ApiError::invalid("cron: give one of `cron`, `every_ms` or `at`")),
        _ => return Err(ApiError::invalid("cron: give only one of `cron`, `every_ms` or `at`")),
    };
    let time_zone = req.time_zone.clone().unwrap_or_else(|| "UTC".to_string());
    let start_ms = req.start.as_ref().map(|s| instant("start", s)).transpose()?;
    let end_ms = req.end.as_ref().map(|s| instant("end", s)).transpose()?;
    let catch_up_window_ms = req.catch_up_window_ms.unwrap_or(calendar::DEFAULT_CATCH_UP_WINDOW_MS);
    if catch_up_window_ms > calendar::MAX_CATCH_UP_WINDOW_MS {
        let msg =
            format!("catch_up_window_ms: is {catch_up_window_ms}; the limit is {}", calendar::MAX_CATCH_UP_WINDOW_MS);
        return Err(ApiError::invalid(msg));
    }
    let jitter_ms = req.jitter_ms.unwrap_or(0);
    if jitter_ms > calendar::MAX_JITTER_MS {
        return Err(ApiError::invalid(format!("jitter_ms: is {jitter_ms}; the limit is {}", calendar::MAX_JITTER_MS)));
    }
    let (task, workflow) = match (&req.task, &req.workflow) {
        (Some(task), None) => {
            let (task, task_request_id) = super::tasks::parse_task(task.clone(), "task.")?;
            if task_request_id.is_some() {
                return Err(ApiError::invalid("task.request_id: give request_id at the top level"));
            }
            (task, None)
        }
        (None, Some(workflow)) => (TaskSpec::default(), Some(Box::new(parse_workflow(workflow)?))),
        (Some(_), Some(_)) => return Err(ApiError::invalid("workflow: give either `task` or `workflow`, not both")),
        (None, None) => {
            return Err(ApiError::invalid(
                "task: give `task` (each run is a task) or `workflow` (each run is a workflow)",
            ));
        }
    };
    let spec = ScheduleSpec {
        name: req.name.clone(),
        trigger,
        time_zone,
        start_ms,
        end_ms,
        catch_up: req.catch_up.unwrap_or_default(),
        catch_up_window_ms,
        overlap: req.overlap.unwrap_or_default(),
        jitter_ms,
        idempotency_key: req.idempotency_key.clone(),
        task,
        workflow,
    };
    spec.validate_replicated().map_err(field_error)?;
    if let Trigger::At { at_ms } = spec.trigger
        && at_ms + 1000 < now
    {
        return Err(ApiError::invalid(
            "at: is in the past; a schedule fires from its creation on (use trigger for a run now)",
        ));
    }
    Calendar::new(&spec.trigger, &spec.time_zone, start_ms, end_ms, start_ms.unwrap_or(now)).map_err(field_error)?;
    Ok((spec, req.paused.unwrap_or(false), req.request_id))
}

/// A workflow template: each node's task is parsed like a task submit (shorthands, `labels`,
/// `max_attempts`); the graph rules are checked with the schedule's (`validate_replicated`).
fn parse_workflow(t: &WorkflowTemplate) -> Result<WorkflowSpec, ApiError> {
    let nodes = super::workflows::parse_nodes(t.nodes.clone(), "workflow.")?;
    Ok(WorkflowSpec { name: t.name.clone(), idempotency_key: None, nodes })
}

fn read_schedule(node: &Node, id: u64) -> Result<Schedule, ApiError> {
    node.view
        .read(|a| a.state.schedule(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("schedule {id} does not exist")))
}

fn schedule_of(resp: scheduler::Response, what: &str) -> Result<(Schedule, bool, Vec<u64>), ApiError> {
    match resp {
        scheduler::Response::Schedule { schedule, created, started } => Ok((*schedule, created, started)),
        scheduler::Response::Rejected(r) => Err(r.into()),
        other => Err(ApiError::internal(format!("unexpected answer to {what}: {other:?}"))),
    }
}

/// `POST /v1/schedules`: 201 with the schedule, or 200 with the existing one for a known
/// idempotency key or request id.
#[utoipa::path(
    post,
    path = "/v1/schedules",
    tag = "schedules",
    operation_id = "create_schedule",
    params(crate::api::openapi::RequestIdHeader),
    request_body(content = ScheduleRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = ScheduleView),
        (status = 200, description = "The schedule an earlier create with the same idempotency key or request id created", body = ScheduleView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn create(
    State(node): State<Arc<Node>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let now = now_ms();
    let (spec, paused, request_id) = parse_request(&body, now)?;
    let request_id = super::tasks::header_request_id(&headers)?.or(request_id);
    let cmd = Command::CreateSchedule { request_id, now_ms: now, spec: Box::new(spec), paused };
    let (schedule, created, _) = match propose(&node, cmd, Method::POST, &uri, &headers, body).await? {
        Proposed::Forwarded(resp) => return Ok(resp),
        Proposed::Applied(resp) => schedule_of(*resp, "create")?,
    };
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view(&schedule, now_ms()))).into_response())
}

/// `GET /v1/schedules`.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    tag = "schedules",
    operation_id = "list_schedules",
    params(ReadQuery),
    responses(
        (status = 200, description = "Every schedule, in id order", body = ScheduleList),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn list(
    State(node): State<Arc<Node>>,
    p: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = p?;
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    let now = now_ms();
    let schedules = node.view.read(|a| a.state.schedules().map(|s| view(s, now)).collect());
    Ok(Json(ScheduleList { schedules }).into_response())
}

/// `GET /v1/schedules/{id}`.
#[utoipa::path(
    get,
    path = "/v1/schedules/{id}",
    tag = "schedules",
    operation_id = "get_schedule",
    params(("id" = u64, Path, description = "Schedule id"), ReadQuery),
    responses(
        (status = 200, description = "The schedule", body = ScheduleView),
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
    Ok(Json(view(&read_schedule(&node, id)?, now_ms())).into_response())
}

/// `PUT /v1/schedules/{id}`: replaces the spec (same body as create), bumps the version.
#[utoipa::path(
    put,
    path = "/v1/schedules/{id}",
    tag = "schedules",
    operation_id = "update_schedule",
    params(("id" = u64, Path, description = "Schedule id")),
    request_body(content = ScheduleRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The schedule after the update", body = ScheduleView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn update(
    State(node): State<Arc<Node>>,
    id: IdPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let body = body?;
    let (spec, paused, _) = parse_request(&body, now_ms())?;
    if paused {
        return Err(ApiError::invalid("paused: use POST /v1/schedules/{id}/pause and /resume"));
    }
    let cmd = Command::UpdateSchedule { now_ms: now_ms(), id, spec: Box::new(spec) };
    simple(&node, cmd, Method::PUT, &uri, &headers, body, "update").await
}

async fn simple(
    node: &Node,
    cmd: Command,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: axum::body::Bytes,
    what: &str,
) -> Result<Response, ApiError> {
    match propose(node, cmd, method, uri, headers, body).await? {
        Proposed::Forwarded(resp) => Ok(resp),
        Proposed::Applied(resp) => {
            let (schedule, _, started) = schedule_of(*resp, what)?;
            let view = view(&schedule, now_ms());
            if matches!(what, "trigger" | "backfill") {
                Ok(Json(RunsStarted { schedule: view, started }).into_response())
            } else {
                Ok(Json(view).into_response())
            }
        }
    }
}

/// `POST /v1/schedules/{id}/pause` `{"note"?}`.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/pause",
    tag = "schedules",
    operation_id = "pause_schedule",
    params(("id" = u64, Path, description = "Schedule id")),
    request_body(content = Option<PauseRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "The schedule, paused", body = ScheduleView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn pause(
    State(node): State<Arc<Node>>,
    id: IdPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let body = body?;
    let req: PauseRequest = optional(&body)?;
    let cmd = Command::PauseSchedule { now_ms: now_ms(), id, note: req.note };
    simple(&node, cmd, Method::POST, &uri, &headers, body, "pause").await
}

/// `POST /v1/schedules/{id}/resume`.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/resume",
    tag = "schedules",
    operation_id = "resume_schedule",
    params(("id" = u64, Path, description = "Schedule id")),
    responses(
        (status = 200, description = "The schedule, resumed", body = ScheduleView),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn resume(
    State(node): State<Arc<Node>>,
    id: IdPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let body = body?;
    let cmd = Command::ResumeSchedule { now_ms: now_ms(), id };
    simple(&node, cmd, Method::POST, &uri, &headers, body, "resume").await
}

/// `POST /v1/schedules/{id}/trigger` `{"request_id"?}`: one manual run now.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/trigger",
    tag = "schedules",
    operation_id = "trigger_schedule",
    params(("id" = u64, Path, description = "Schedule id"), crate::api::openapi::RequestIdHeader),
    request_body(content = Option<TriggerRequest>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "The schedule and the run started (none if the overlap policy refused it)", body = RunsStarted),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn trigger(
    State(node): State<Arc<Node>>,
    id: IdPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let body = body?;
    let req: TriggerRequest = optional(&body)?;
    let request_id = super::tasks::header_request_id(&headers)?.or(req.request_id);
    let cmd = Command::TriggerSchedule { request_id, now_ms: now_ms(), id };
    simple(&node, cmd, Method::POST, &uri, &headers, body, "trigger").await
}

/// `POST /v1/schedules/{id}/backfill` `{"from", "to"}`: a run for every calendar time in the
/// range that has none yet. The leader computes the times, so a follower forwards first.
#[utoipa::path(
    post,
    path = "/v1/schedules/{id}/backfill",
    tag = "schedules",
    operation_id = "backfill_schedule",
    params(("id" = u64, Path, description = "Schedule id")),
    request_body(content = BackfillRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The schedule and the runs started, in nominal order", body = RunsStarted),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn backfill(
    State(node): State<Arc<Node>>,
    id: IdPath,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let body = body?;
    let req: BackfillRequest =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(path_error)?;
    let (from, to) = (instant("from", &req.from)?, instant("to", &req.to)?);
    let now = now_ms();
    if to < from {
        return Err(ApiError::invalid("to: is before from"));
    }
    if to > now {
        return Err(ApiError::invalid("to: is in the future; backfill fills the past (use trigger for now)"));
    }
    if !node.is_leader() {
        return Ok(forward::to_leader(&node, None, Method::POST, &uri, &headers, body).await);
    }
    node.read_barrier(Instant::now() + node.config.request_timeout).await?;
    let schedule = read_schedule(&node, id)?;
    let cal = schedule.calendar().map_err(field_error)?;
    let mut nominal = Vec::new();
    let mut at = from.saturating_sub(1);
    while let Some(next) = cal.next_after(at) {
        if next > to {
            break;
        }
        if nominal.len() == MAX_BACKFILL {
            let msg = format!("from: the range holds more than {MAX_BACKFILL} fire times; backfill it in parts");
            return Err(ApiError::invalid(msg));
        }
        nominal.push(next);
        at = next;
    }
    let cmd = Command::BackfillSchedule { now_ms: now, id, version: schedule.version, nominal };
    simple(&node, cmd, Method::POST, &uri, &headers, body, "backfill").await
}

/// `DELETE /v1/schedules/{id}?cancel_runs=true`.
#[utoipa::path(
    delete,
    path = "/v1/schedules/{id}",
    tag = "schedules",
    operation_id = "delete_schedule",
    params(("id" = u64, Path, description = "Schedule id"), DeleteQuery),
    responses(
        (status = 200, description = "The schedule as it was, and the runs cancelled with it", body = Deleted),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn delete(
    State(node): State<Arc<Node>>,
    id: IdPath,
    q: Result<Query<DeleteQuery>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (Path(id), Query(q)) = (id?, q?);
    let body = body?;
    let cmd = Command::DeleteSchedule { now_ms: now_ms(), id, cancel_runs: q.cancel_runs };
    match propose(&node, cmd, Method::DELETE, &uri, &headers, body).await? {
        Proposed::Forwarded(resp) => Ok(resp),
        Proposed::Applied(resp) => match *resp {
            scheduler::Response::ScheduleDeleted { schedule, cancelled } => {
                Ok(Json(Deleted { schedule: view(&schedule, now_ms()), cancelled }).into_response())
            }
            other => Err(ApiError::internal(format!("unexpected answer to delete: {other:?}"))),
        },
    }
}

/// `GET /v1/schedules/{id}/runs?limit=&cursor=`: a page of the schedule's runs in nominal
/// order, tasks or workflows (the cursor is a nominal time).
#[utoipa::path(
    get,
    path = "/v1/schedules/{id}/runs",
    tag = "schedules",
    operation_id = "list_schedule_runs",
    params(("id" = u64, Path, description = "Schedule id"), RunsQuery),
    responses(
        (status = 200, description = "One page of runs, in nominal order", body = RunPage),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn runs(
    State(node): State<Arc<Node>>,
    id: IdPath,
    p: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (Path(id), Query(p)) = (id?, p?);
    barrier(&node, &p.consistency, Instant::now() + node.config.request_timeout).await?;
    let q = scheduler::Query::ScheduleRuns { id, after: p.cursor, limit: p.limit.unwrap_or(0) };
    let page = match node.view.read(|a| a.state.query(&q)) {
        QueryResponse::Tasks { tasks, next_cursor } => {
            let runs = tasks
                .iter()
                .filter_map(|t| match t.spec.origin {
                    TaskOrigin::Schedule { nominal_ms, manual, .. } => Some(ScheduleRun {
                        nominal_ms,
                        manual,
                        kind: RunKind::Task,
                        id: t.id,
                        state: t.state.to_string(),
                        created_ms: t.created_ms,
                        finished_ms: t.finished_ms,
                    }),
                    _ => None,
                })
                .collect();
            RunPage { runs, next_cursor }
        }
        QueryResponse::Workflows { workflows, next_cursor } => {
            let runs = workflows
                .iter()
                .filter_map(|w| match w.origin {
                    WorkflowOrigin::Schedule { nominal_ms, manual, .. } => Some(ScheduleRun {
                        nominal_ms,
                        manual,
                        kind: RunKind::Workflow,
                        id: w.id,
                        state: w.state.as_str().to_string(),
                        created_ms: w.created_ms,
                        finished_ms: w.finished_ms,
                    }),
                    WorkflowOrigin::Api => None,
                })
                .collect();
            RunPage { runs, next_cursor }
        }
        QueryResponse::Schedule(None) => return Err(ApiError::not_found(format!("schedule {id} does not exist"))),
        other => return Err(ApiError::internal(format!("unexpected answer to runs: {other:?}"))),
    };
    Ok(Json(page).into_response())
}

/// `GET /v1/schedules/preview?cron=&time_zone=&after=&count=`: fire times, nothing created.
#[utoipa::path(
    get,
    path = "/v1/schedules/preview",
    tag = "schedules",
    operation_id = "preview_schedule",
    params(PreviewQuery),
    responses(
        (status = 200, description = "The next fire times", body = Preview),
        (status = 422, response = crate::api::openapi::Invalid),
    ),
)]
pub async fn preview(q: Result<Query<PreviewQuery>, QueryRejection>) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let now = now_ms();
    let after = match &q.after {
        None => now,
        Some(text) => calendar::parse_instant("after", text).map_err(field_error)?,
    };
    let trigger = match (&q.cron, q.every_ms) {
        (Some(expr), None) => Trigger::Cron { expr: expr.trim().to_string() },
        (None, Some(every_ms)) => Trigger::Every { every_ms },
        _ => return Err(ApiError::invalid("cron: give one of `cron` or `every_ms`")),
    };
    let time_zone = q.time_zone.clone().unwrap_or_else(|| "UTC".into());
    let count = q.count.unwrap_or(10);
    if count == 0 || count > MAX_PREVIEW {
        return Err(ApiError::invalid(format!("count: must be 1 to {MAX_PREVIEW}")));
    }
    let cal = Calendar::new(&trigger, &time_zone, None, None, after).map_err(field_error)?;
    let fires = cal.next_n(after, count).into_iter().map(|ms| fire_time(ms, &time_zone)).collect();
    Ok(Json(Preview { fires }).into_response())
}
