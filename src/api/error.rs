//! Every error the public API can return, and its HTTP status: the one place of that mapping.
//!
//! Definite failures (nothing was written): 400, 404, 409, 413, 422, and 503 with
//! `Retry-After`. Indefinite: 504 `outcome_unknown` — the write may still commit, so retry
//! it with the same idempotency key or request id.

use crate::node::MembershipError;
use crate::node::ReadError;
use crate::node::WriteError;
use crate::proto::ErrorBody;
use crate::proto::ErrorCode;
use crate::proto::ErrorDetail;
use crate::scheduler::RejectCode;
use crate::scheduler::Rejection;
use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::rejection::QueryRejection;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::IntoResponse;
use axum::response::Response;

/// A JSON error answer `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds for `Retry-After` (503 only).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// 404 for task `id`, absent from `state`: code `forgotten` if retention removed it, else
    /// `not_found`.
    pub fn missing_task(state: &crate::scheduler::State, id: u64) -> Self {
        if state.task_forgotten(id) {
            let msg = crate::scheduler::retention::forgotten_task_message(id);
            Self::new(StatusCode::NOT_FOUND, ErrorCode::Forgotten, msg)
        } else {
            Self::not_found(format!("task {id} does not exist"))
        }
    }

    /// 404 for workflow `id`, absent from `state` (see [`Self::missing_task`]).
    pub fn missing_workflow(state: &crate::scheduler::State, id: u64) -> Self {
        if state.workflow_forgotten(id) {
            let msg = crate::scheduler::retention::forgotten_workflow_message(id);
            Self::new(StatusCode::NOT_FOUND, ErrorCode::Forgotten, msg)
        } else {
            Self::not_found(format!("workflow {id} does not exist"))
        }
    }

    /// Any error with a status and code.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }
    /// 400: the request cannot be parsed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }
    /// 422: a field has an invalid value; the message names it.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidField, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    /// 503 + Retry-After: try again shortly (no leader, no quorum). Nothing was written.
    pub fn unavailable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { retry_after: Some(1), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }
    /// 504: the write may or may not have taken effect.
    pub fn outcome_unknown(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, ErrorCode::OutcomeUnknown, message)
    }
    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody { error: ErrorDetail { code: self.code, message: self.message } });
        let mut resp = (self.status, body).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "request body is over the size limit (max_body_bytes)",
            )
        } else {
            ApiError::new(r.status(), ErrorCode::BadRequest, r.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(format!("bad path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid(format!("query string: {}", r.body_text()))
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let status = match r.code {
            RejectCode::NotFound | RejectCode::Forgotten => StatusCode::NOT_FOUND,
            RejectCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        };
        ApiError::new(status, r.code.into(), r.message)
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotLeader(_) => {
                ApiError::unavailable(ErrorCode::NoLeader, "no leader is known right now; retry shortly")
            }
            WriteError::NoQuorum => ApiError::unavailable(
                ErrorCode::NoQuorum,
                "the leader cannot reach a majority of replicas; nothing was written",
            ),
            WriteError::Unknown(m) => ApiError::outcome_unknown(format!(
                "{m}; the write may still take effect: retry with the same idempotency_key or request_id"
            )),
            WriteError::Stopped(m) => {
                ApiError::unavailable(ErrorCode::Unavailable, format!("this replica is stopping: {m}"))
            }
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::NoLeader => ApiError::unavailable(
                ErrorCode::NoLeader,
                "no leader is known right now; retry shortly, or read with ?consistency=stale",
            ),
            ReadError::NoQuorum(m) => {
                ApiError::unavailable(ErrorCode::NoQuorum, format!("cannot confirm leadership with a majority: {m}"))
            }
            ReadError::Timeout => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::Timeout,
                "the read did not complete before its deadline",
            ),
        }
    }
}

impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        let message = e.to_string();
        match e {
            MembershipError::NotLeader(_) => {
                ApiError::unavailable(ErrorCode::NoLeader, "no leader is known right now; retry shortly")
            }
            MembershipError::AlreadyInitialized => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyInitialized, message)
            }
            MembershipError::RemovedBefore(_) => ApiError::new(StatusCode::CONFLICT, ErrorCode::MemberRemoved, message),
            MembershipError::UnknownMember(_) => ApiError::not_found(message),
            MembershipError::LastVoter(_) => ApiError::new(StatusCode::CONFLICT, ErrorCode::LastVoter, message),
            MembershipError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message),
            MembershipError::Invalid { .. } => ApiError::invalid(message),
            MembershipError::Unknown(_) => ApiError::outcome_unknown(message),
            MembershipError::Unavailable(_) => ApiError::unavailable(ErrorCode::Unavailable, message),
        }
    }
}

/// 405 as a JSON error (axum's own answer has an empty body).
pub fn method_not_allowed(method: &axum::http::Method, path: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {path}; see the API reference in the README"),
    )
}

/// An optional JSON body: empty (or only whitespace) is `T::default()`.
pub fn optional<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(path_error)
}

/// A JSON body that did not deserialize: 422 naming the field path.
pub fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        ApiError::bad_request(format!("malformed JSON: {inner}"))
    } else {
        ApiError::invalid(format!("{path}: {inner}"))
    }
}
