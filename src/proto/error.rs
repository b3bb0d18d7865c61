//! Error codes and the error body `{"error": {"code", "message"}}`.

use std::fmt;

use serde::Deserialize;
use serde::Serialize;

use crate::scheduler::RejectCode;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// Every machine-readable error code of the API. Clients match on these, never on
        /// messages. A code this build does not know (from a newer server) reads as
        /// [`ErrorCode::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
            /// A code this build does not know.
            #[serde(other)]
            Unknown,
        }

        impl ErrorCode {
            /// Every known code (not `Unknown`).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                    ErrorCode::Unknown => "unknown",
                }
            }
        }
    };
}

error_codes! {
    /// 400: the request cannot be parsed (malformed JSON, bad path).
    BadRequest = "bad_request",
    /// 422: a field has an invalid value; the message names it.
    InvalidField = "invalid_field",
    /// 401: no token, or a token this cluster does not know (revoked, mistyped).
    Unauthorized = "unauthorized",
    /// 403: the token's role may not do this.
    Forbidden = "forbidden",
    /// 404: no such task, member, worker or endpoint.
    NotFound = "not_found",
    /// 405: the endpoint exists but not with this method.
    MethodNotAllowed = "method_not_allowed",
    /// 413: the body is over `max_body_bytes`.
    PayloadTooLarge = "payload_too_large",
    /// 413: a checkpoint over the checkpoint limit.
    CheckpointTooLarge = "checkpoint_too_large",
    /// 431: the request's headers are too large.
    HeadersTooLarge = "headers_too_large",
    /// 503: no leader is known; retry shortly. Nothing was written.
    NoLeader = "no_leader",
    /// 503: the leader cannot reach a majority. Nothing was written.
    NoQuorum = "no_quorum",
    /// 503: this replica cannot serve right now (stopping, or a membership change failed).
    Unavailable = "unavailable",
    /// 503: this replica has as many long-polls in flight as it allows (`max_long_polls`);
    /// retry after the Retry-After delay or at another replica. Nothing was written.
    Overloaded = "overloaded",
    /// 503: a new leader is still applying what was committed before its term; retry.
    LeaderNotReady = "leader_not_ready",
    /// 503: a leader-only endpoint reached a follower.
    NotLeader = "not_leader",
    /// 504: the write may or may not have taken effect; retry with the same request id.
    OutcomeUnknown = "outcome_unknown",
    /// 504: a read did not complete before its deadline.
    Timeout = "timeout",
    /// 500: a bug.
    Internal = "internal",
    /// 409: the worker is not registered (or was declared lost): register again.
    NotRegistered = "not_registered",
    /// 409: an operator removed the worker: it must stop.
    WorkerRemoved = "worker_removed",
    /// 409: `cluster init` on a replica that already has a cluster.
    AlreadyInitialized = "already_initialized",
    /// 409: that replica id was removed before and cannot come back.
    MemberRemoved = "member_removed",
    /// 409: removing the last voter.
    LastVoter = "last_voter",
    /// 409: a membership change conflicts with one in progress.
    Conflict = "conflict",
    /// 409: the task is not in a state that allows this.
    InvalidTransition = "invalid_transition",
    /// 409: the attempt's fencing token is not the task's current one: the attempt was
    /// fenced off (reassigned, timed out, lost). The worker kills it.
    StaleToken = "stale_token",
    /// 409: this report was already applied.
    Duplicate = "duplicate",
    /// 422: apply refused the command's content.
    Invalid = "invalid",
    /// 409: the worker cannot take work (not active).
    WorkerUnavailable = "worker_unavailable",
    /// 409: the worker has no free slot or resources.
    WorkerFull = "worker_full",
    /// 409: the worker lacks a label the task requires.
    ConstraintMismatch = "constraint_mismatch",
    /// 409: an idempotency key or request id was reused with a different body.
    IdempotencyMismatch = "idempotency_mismatch",
    /// 409: a worker reported on an attempt of another worker.
    WrongWorker = "wrong_worker",
    /// 409: a schedule command planned for an older version of the schedule.
    StaleVersion = "stale_version",
    /// 409: the task's concurrency key is at its limit (an `Assign` waits for a permit).
    LimitReached = "limit_reached",
    /// 404: the task or workflow existed, finished longer ago than the retention horizon and
    /// was forgotten (its record, output and result are gone).
    Forgotten = "forgotten",
}

/// Every known code; `unknown` is only how a client reads a code from a newer server.
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("Stable machine-readable error code; clients match on it, never on the message."))
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RejectCode> for ErrorCode {
    fn from(code: RejectCode) -> Self {
        match code {
            RejectCode::NotFound => ErrorCode::NotFound,
            RejectCode::InvalidTransition => ErrorCode::InvalidTransition,
            RejectCode::StaleToken => ErrorCode::StaleToken,
            RejectCode::Duplicate => ErrorCode::Duplicate,
            RejectCode::Invalid => ErrorCode::Invalid,
            RejectCode::WorkerUnavailable => ErrorCode::WorkerUnavailable,
            RejectCode::WorkerFull => ErrorCode::WorkerFull,
            RejectCode::ConstraintMismatch => ErrorCode::ConstraintMismatch,
            RejectCode::IdempotencyMismatch => ErrorCode::IdempotencyMismatch,
            RejectCode::WrongWorker => ErrorCode::WrongWorker,
            RejectCode::StaleVersion => ErrorCode::StaleVersion,
            RejectCode::LimitReached => ErrorCode::LimitReached,
            RejectCode::Forgotten => ErrorCode::Forgotten,
        }
    }
}

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_as_written_and_unknown_ones_do_not_fail() {
        for &code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(serde_json::from_str::<ErrorCode>("\"from_the_future\"").unwrap(), ErrorCode::Unknown);
    }

    #[test]
    fn every_reject_code_keeps_its_name() {
        use crate::scheduler::RejectCode::*;
        for r in [
            NotFound,
            InvalidTransition,
            StaleToken,
            Duplicate,
            Invalid,
            WorkerUnavailable,
            WorkerFull,
            ConstraintMismatch,
            IdempotencyMismatch,
            WrongWorker,
            StaleVersion,
            LimitReached,
        ] {
            assert_eq!(ErrorCode::from(r).as_str(), r.as_str());
        }
    }
}
