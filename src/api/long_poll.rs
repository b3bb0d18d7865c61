//! The cap on long-polls in flight (`max_long_polls`).
//!
//! A long-poll (`GET /v1/tasks/{id}/wait`, `GET /v1/workers/{id}/inbox?wait_ms=N`) holds its
//! connection for up to a minute while doing nothing. Counted against their own semaphore,
//! waiting clients can never hold every connection of the replica: once the cap is reached a
//! new long-poll is answered at once with 503 `overloaded` and `Retry-After`, which the typed
//! client treats like any 503 (it tries another replica), while ordinary requests still find
//! connections (the cap is kept below `max_connections`).

use std::sync::Arc;

use axum::extract::Request;
use axum::extract::State;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use tokio::sync::Semaphore;

use super::ApiError;
use crate::proto::ErrorCode;

/// Permits for long-polls in flight, shared by every long-poll route of a replica.
#[derive(Clone)]
pub struct LongPolls {
    permits: Arc<Semaphore>,
    cap: usize,
}

impl LongPolls {
    /// At most `cap` long-polls at once.
    pub fn new(cap: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(cap)), cap }
    }

    /// Long-polls in flight right now.
    pub fn in_flight(&self) -> usize {
        self.cap - self.permits.available_permits()
    }
}

/// The value of `key` in a query string, if present.
fn query_value<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Whether this request will wait: a task wait unless `timeout_ms=0`; an inbox read only
/// with `wait_ms` above zero.
pub fn waits(path: &str, query: Option<&str>) -> bool {
    let positive = |key| query_value(query, key).is_some_and(|v| v.parse::<u64>().map_or(true, |ms| ms > 0));
    let (tasks, workers) = (path.starts_with("/v1/tasks/"), path.starts_with("/v1/workers/"));
    if workers && path.ends_with("/inbox") || tasks && path.ends_with("/output") {
        positive("wait_ms")
    } else if tasks && path.ends_with("/wait") {
        query_value(query, "timeout_ms").is_none() || positive("timeout_ms")
    } else {
        false
    }
}

/// Middleware of the long-poll routes: holds a permit for the whole wait, or refuses.
pub async fn gate(State(polls): State<LongPolls>, req: Request, next: Next) -> Response {
    if !waits(req.uri().path(), req.uri().query()) {
        return next.run(req).await;
    }
    match polls.permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let resp = next.run(req).await;
            drop(permit);
            resp
        }
        Err(_) => {
            tracing::warn!(cap = polls.cap, path = req.uri().path(), "refused a long-poll: at max_long_polls");
            ApiError::unavailable(
                ErrorCode::Overloaded,
                format!(
                    "this replica already serves {} long-polls (max_long_polls); retry shortly or at another replica",
                    polls.cap
                ),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_requests_count_as_long_polls() {
        assert!(waits("/v1/tasks/7/wait", None));
        assert!(waits("/v1/tasks/7/wait", Some("timeout_ms=500")));
        assert!(!waits("/v1/tasks/7/wait", Some("timeout_ms=0")));
        assert!(!waits("/v1/workers/w1/inbox", Some("after=3")));
        assert!(!waits("/v1/workers/w1/inbox", Some("after=3&wait_ms=0")));
        assert!(waits("/v1/workers/w1/inbox", Some("after=3&wait_ms=1000")));
        assert!(waits("/v1/tasks/7/output", Some("wait_ms=1000")));
        // The gate sits on every route: anything else is not a long-poll.
        assert!(!waits("/v1/tasks", None));
        assert!(!waits("/v1/workers/w1/heartbeat", None));
    }
}
