//! Live attempt output (types and flow in [`crate::proto::output`]): workers ship it with
//! `POST /v1/workers/{id}/output`, readers follow it with `GET /v1/tasks/{id}/output`. Both are
//! served by the leader, which holds the output in memory
//! ([`crate::node::leader::output`]); a follower forwards them. Whether a chunk is kept is the
//! leader's verdict ([`verdict::output_chunk`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::time::Instant;

use super::error::ApiError;
use super::forward;
use super::tasks::Body;
use super::tasks::IdPath;
use super::worker_protocol::json_body;
use crate::node::Node;
use crate::proto::ErrorCode;
use crate::proto::output::ChunkAck;
use crate::proto::output::MAX_OUTPUT_CHUNK_BYTES;
use crate::proto::output::MAX_OUTPUT_CHUNKS;
use crate::proto::output::MAX_OUTPUT_WAIT;
use crate::proto::output::OutputAcks;
use crate::proto::output::OutputBatch;
use crate::proto::output::OutputChunk;
use crate::proto::output::OutputQuery;
use crate::proto::output::OutputSource;
use crate::proto::output::TaskOutput;
use crate::proto::workers::AttemptId;
use crate::scheduler::Task;
use crate::scheduler::verdict;
use crate::scheduler::verdict::OutputVerdict;

/// `POST /v1/workers/{id}/output`: stores each chunk of a live attempt of this worker, and
/// answers per chunk where the leader's copy of its stream ends.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/output",
    tag = "workers",
    operation_id = "ship_output",
    params(("id" = String, Path, description = "Worker id")),
    request_body(content = OutputBatch, content_type = "application/json"),
    responses(
        (status = 200, description = "One ack per chunk, in order", body = OutputAcks),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn ship(
    State(node): State<Arc<Node>>,
    id: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(worker) = id?;
    let body = body?;
    let batch: OutputBatch = json_body(&body)?;
    if batch.chunks.len() > MAX_OUTPUT_CHUNKS {
        return Err(ApiError::invalid(format!("chunks: at most {MAX_OUTPUT_CHUNKS} per request")));
    }
    if let Some((i, c)) = batch.chunks.iter().enumerate().find(|(_, c)| c.data.len() > MAX_OUTPUT_CHUNK_BYTES) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("chunks[{i}].data: {} bytes, over the {MAX_OUTPUT_CHUNK_BYTES} byte limit", c.data.len()),
        ));
    }
    if !node.is_leader() {
        return Ok(forward::to_leader(&node, None, Method::POST, &uri, &headers, body).await);
    }
    let verdicts: Vec<OutputVerdict> = node.view.read(|a| {
        let judge = |c: &OutputChunk| verdict::output_chunk(&a.state, &worker, AttemptId::new(c.task_id, c.token));
        batch.chunks.iter().map(judge).collect()
    });
    let acks = batch
        .chunks
        .into_iter()
        .zip(verdicts)
        .map(|(c, verdict)| {
            let (task_id, token) = (c.task_id, c.token);
            match verdict {
                OutputVerdict::Store => {
                    let next = node.leader.output.append(AttemptId::new(task_id, token), c.offset, c.gap, &c.data);
                    ChunkAck { task_id, token, next, stop: false }
                }
                OutputVerdict::Stop => ChunkAck { task_id, token, next: c.offset + c.data.len() as u64, stop: true },
                OutputVerdict::NotYet => ChunkAck { task_id, token, next: c.offset, stop: false },
            }
        })
        .collect();
    Ok(Json(OutputAcks { acks }).into_response())
}

/// `GET /v1/tasks/{id}/output?attempt=&after=&wait_ms=`: the attempt's output after `after`,
/// waiting up to `wait_ms` for some (or for the attempt's end).
#[utoipa::path(
    get,
    path = "/v1/tasks/{id}/output",
    tag = "tasks",
    operation_id = "task_output",
    params(("id" = u64, Path, description = "Task id"), OutputQuery),
    responses(
        (status = 200, description = "The attempt's output after `after`", body = TaskOutput),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 422, response = crate::api::openapi::Invalid),
        (status = 503, response = crate::api::openapi::Unavailable),
        (status = 504, response = crate::api::openapi::Timeout),
    ),
)]
pub async fn read(
    State(node): State<Arc<Node>>,
    id: IdPath,
    q: Result<Query<OutputQuery>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (Path(task_id), Query(q)) = (id?, q?);
    let wait = q.wait_ms.map_or(Duration::ZERO, Duration::from_millis).min(MAX_OUTPUT_WAIT);
    if !node.is_leader() {
        let within = wait + node.config.request_timeout;
        return Ok(forward::to_leader_within(&node, None, Method::GET, &uri, &headers, Bytes::new(), within).await);
    }
    // A new leader's state may lack recent attempts until it has applied its predecessor's log.
    if !node.leader.is_ready() {
        return Err(ApiError::unavailable(ErrorCode::LeaderNotReady, "the new leader is catching up; retry"));
    }
    let deadline = Instant::now() + wait;
    let after = q.after.unwrap_or(0);
    let mut applied = node.view.subscribe();
    let mut stored = node.leader.output.subscribe();
    loop {
        applied.borrow_and_update();
        stored.borrow_and_update();
        let answer = node.view.read(|a| a.state.task(task_id).map(|t| answer(&node, t, q.attempt, after)));
        let answer = match answer {
            None => return Err(node.view.read(|a| ApiError::missing_task(&a.state, task_id))),
            Some(Err(e)) => return Err(e),
            Some(Ok(answer)) => answer,
        };
        if !answer.text.is_empty() || answer.complete {
            return Ok(Json(answer).into_response());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(Json(answer).into_response()),
            _ = applied.changed() => {}
            _ = stored.changed() => {}
            _ = node.shutdown.cancelled() => return Ok(Json(answer).into_response()),
        }
    }
}

/// The answer for `task` as it is now.
fn answer(node: &Node, task: &Task, attempt: Option<u32>, after: u64) -> Result<TaskOutput, ApiError> {
    let mut out = TaskOutput {
        task_id: task.id,
        task_state: task.state,
        attempt: None,
        token: None,
        outcome: None,
        source: OutputSource::None,
        start: 0,
        next: after,
        text: String::new(),
        complete: false,
    };
    let chosen = match attempt {
        Some(n) => Some(task.attempts.iter().find(|a| a.number == n).ok_or_else(|| {
            ApiError::not_found(format!("task {} has no attempt {n} (it has {})", task.id, task.attempts.len()))
        })?),
        None => task.attempts.last(),
    };
    let Some(a) = chosen else {
        // No attempt yet; a terminal task (cancelled while pending) never gets one.
        out.complete = task.is_terminal();
        return Ok(out);
    };
    out.attempt = Some(a.number);
    out.token = Some(a.fencing_token);
    out.outcome = a.outcome;
    let ended = !a.is_live();
    match node.leader.output.read(AttemptId::new(task.id, a.fencing_token), after) {
        Some(held) => {
            let mut data = held.data;
            let mut next = held.next;
            if !ended {
                // Keep a character split across two shipments whole for the next answer.
                let cut = incomplete_utf8_suffix(&data);
                data.truncate(data.len() - cut);
                next -= cut as u64;
            }
            out.source = OutputSource::Live;
            out.start = held.start;
            out.next = next;
            out.text = String::from_utf8_lossy(&data).into_owned();
            out.complete = ended;
        }
        None if ended => {
            out.source = OutputSource::Committed;
            out.next = a.output_tail.len() as u64;
            if after == 0 {
                out.text = a.output_tail.clone();
            }
            out.complete = true;
        }
        None => {}
    }
    Ok(out)
}

/// Length of a UTF-8 sequence cut off at the end of `data` (0 if it ends on a boundary).
fn incomplete_utf8_suffix(data: &[u8]) -> usize {
    for back in 1..=data.len().min(3) {
        let b = data[data.len() - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_character_is_held_back() {
        let euro = "€".as_bytes();
        assert_eq!(incomplete_utf8_suffix(b"abc"), 0);
        assert_eq!(incomplete_utf8_suffix(euro), 0);
        assert_eq!(incomplete_utf8_suffix(&euro[..2]), 2);
        assert_eq!(incomplete_utf8_suffix(&[b'a', euro[0]]), 1);
        assert_eq!(incomplete_utf8_suffix(b""), 0);
    }
}
