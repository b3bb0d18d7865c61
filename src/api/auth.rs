//! Authentication and authorization of API requests.
//!
//! The path of a request through [`authorize`] (a route layer, so it knows the matched route):
//! 1. `/health`, `/ready` and the dashboard's static files are open. So is everything when the
//!    replica runs with `auth = false` (the caller is then [`Principal::Open`]).
//! 2. A request carrying the cluster secret in [`CLUSTER_SECRET_HEADER`] comes from another
//!    replica (joining, asking for a read index): [`Principal::Replica`], worth an admin.
//! 3. Otherwise `Authorization: Bearer trk_<key>_<secret>` is required: the key names the
//!    record in the replicated state, and the SHA-256 of the string must equal the record's
//!    hash (compared in constant time). A key this replica does not know yet may be a token
//!    created an instant ago on the leader: a follower waits for the leader's read index once
//!    before refusing. No token or an unknown one → 401.
//! 4. The route's [`Need`] decides: a role that does not include the needed one → 403. Worker
//!    routes with a worker id in the path accept only that worker's token (or an admin).
//! 5. The [`Principal`] rides on the request, for handlers that check more (a worker may only
//!    register itself, and only checkpoint its own attempts).
//!
//! Messages name the token's key and name, never its secret; nothing here logs a header.

use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::extract::RawPathParams;
use axum::extract::Request;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::error::ApiError;
use crate::node::Node;
use crate::proto::CLUSTER_SECRET_HEADER;
use crate::proto::ErrorCode;
use crate::proto::tokens::token_key;
use crate::proto::tokens::token_sha256;
use crate::scheduler::Role;

/// Catch-ups (read barriers) for unknown token keys in flight on this replica; more are
/// refused at once (401), as if the barrier had not found the key.
static UNKNOWN_KEY_CATCH_UPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// Who is calling, as established by [`authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Auth is off on this replica: anyone may do anything.
    Open,
    /// Another replica of this cluster (it showed the cluster secret).
    Replica,
    /// A token holder.
    Token {
        /// The token's public key.
        key: String,
        /// The token's name.
        name: String,
        /// Its role.
        role: Role,
        /// The worker a worker token speaks for.
        worker_id: Option<String>,
    },
}

impl Principal {
    /// The role the caller acts with.
    pub fn role(&self) -> Role {
        match self {
            Principal::Open | Principal::Replica => Role::Admin,
            Principal::Token { role, .. } => *role,
        }
    }

    /// The one worker this caller may speak for; `None` when it may speak for any (admins).
    pub fn bound_worker(&self) -> Option<&str> {
        match self {
            Principal::Token { role: Role::Worker, worker_id, .. } => worker_id.as_deref(),
            _ => None,
        }
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: open to all.
    Open,
    /// A role including this one.
    Role(Role),
    /// A worker token for the worker named in the path's `{id}`, or an admin.
    OwnWorker,
    /// A worker token (the handler checks which worker), or an admin.
    AnyWorker,
}

/// The requirement of each route, by method and route template. One table, so that a new
/// route is either listed here or needs `admin` (the default): never open by accident.
pub fn need(method: &Method, route: &str) -> Need {
    use Role::*;
    let read = method == Method::GET || method == Method::HEAD;
    match (route, read) {
        ("/health" | "/ready", _) => Need::Open,
        ("/" | "/ui/{file}", true) => Need::Open,
        ("/v1/workers/{id}/heartbeat" | "/v1/workers/{id}/inbox" | "/v1/workers/{id}/reports", _) => Need::OwnWorker,
        ("/v1/workers/{id}/output", false) => Need::OwnWorker,
        ("/v1/workers", false) | ("/v1/tasks/{id}/attempts/{token}/checkpoint", false) => Need::AnyWorker,
        ("/v1/tokens" | "/v1/tokens/{key}" | "/v1/snapshot" | "/v1/internal/read-index", _) => Need::Role(Admin),
        ("/v1/cluster/init" | "/v1/cluster/members" | "/v1/cluster/members/{id}", false) => Need::Role(Admin),
        (_, true) => Need::Role(Reader),
        ("/v1/tasks" | "/v1/tasks/batch" | "/v1/schedules" | "/v1/workflows", false) => Need::Role(Submitter),
        ("/v1/schedules/{id}/trigger" | "/v1/schedules/{id}/backfill", false) => Need::Role(Submitter),
        ("/v1/schedules/{id}", false) if method == Method::PUT => Need::Role(Submitter),
        ("/v1/tasks/{id}/cancel" | "/v1/workflows/{id}/cancel", false) => Need::Role(Operator),
        ("/v1/workers/{id}" | "/v1/workers/{id}/drain", false) => Need::Role(Operator),
        ("/v1/schedules/{id}/pause" | "/v1/schedules/{id}/resume" | "/v1/schedules/{id}", false) => {
            Need::Role(Operator)
        }
        ("/v1/limits/{key}", false) => Need::Role(Operator),
        _ => Need::Role(Admin),
    }
}

/// The route layer: establishes the [`Principal`] and checks it against the route's [`Need`].
pub async fn authorize(
    State(node): State<Arc<Node>>,
    route: MatchedPath,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Response {
    let need = need(req.method(), route.as_str());
    let principal = match identify(&node, req.headers(), need, route.as_str()).await {
        Ok(p) => p,
        Err(e) => {
            let mut resp = e.into_response();
            // RFC 6750: a 401 names the scheme it wants.
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"taskraft\""));
            return resp;
        }
    };
    let path_id = params.iter().find(|(name, _)| *name == "id").map(|(_, v)| v);
    if let Err(e) = check(&principal, need, path_id, req.method(), route.as_str()) {
        return e.into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// The routes one replica calls on another with the cluster secret: joining, read indexes.
fn replica_route(route: &str) -> bool {
    matches!(route, "/v1/internal/read-index" | "/v1/cluster/members")
}

async fn identify(
    node: &Node,
    headers: &axum::http::HeaderMap,
    need: Need,
    route: &str,
) -> Result<Principal, ApiError> {
    if !node.config.auth || need == Need::Open {
        return Ok(Principal::Open);
    }
    if let Some(secret) = headers.get(CLUSTER_SECRET_HEADER) {
        // Only where replicas call each other: the secret is a replica's credential, not a
        // master key of the API.
        if !replica_route(route) {
            return Err(unauthorized("the cluster secret is accepted only on the join and read-index routes"));
        }
        return if bool::from(secret.as_bytes().ct_eq(node.config.cluster_secret.as_bytes())) {
            Ok(Principal::Replica)
        } else {
            Err(unauthorized("the cluster secret is wrong"))
        };
    }
    let Some(header) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(unauthorized(
            "this cluster requires a token: send `Authorization: Bearer <token>` (the CLI reads --token, \
             TASKRAFT_TOKEN or its token file)",
        ));
    };
    let token = bearer(header).ok_or_else(|| {
        unauthorized("the Authorization header must be `Bearer trk_<key>_<secret>`; this one is not a taskraft token")
    })?;
    let key = token_key(token).ok_or_else(|| unauthorized("malformed token: expected `trk_<16 hex>_<secret>`"))?;
    if let Some(p) = lookup(node, key, token) {
        return p;
    }
    // A token created a moment ago may not have reached this replica yet. Few such catch-ups
    // at once: a flood of made-up keys must not turn into a flood of quorum round trips.
    if !node.is_leader()
        && let Ok(_permit) = UNKNOWN_KEY_CATCH_UPS.try_acquire()
        && node.read_barrier(Instant::now() + node.config.request_timeout).await.is_ok()
        && let Some(p) = lookup(node, key, token)
    {
        return p;
    }
    Err(unauthorized(format!("token {key} is not known to this cluster (revoked, or from another cluster)")))
}

/// The principal for a well-formed token, `None` when its key is unknown here.
fn lookup(node: &Node, key: &str, token: &str) -> Option<Result<Principal, ApiError>> {
    let digest = token_sha256(token);
    node.view.read(|a| {
        let record = a.state.token(key)?;
        Some(if bool::from(record.sha256.ct_eq(&digest)) {
            Ok(Principal::Token {
                key: record.key.clone(),
                name: record.name.clone(),
                role: record.role,
                worker_id: record.worker_id.clone(),
            })
        } else {
            Err(unauthorized(format!("token {key} does not match its record (a mistyped or forged secret)")))
        })
    })
}

fn bearer(header: &HeaderValue) -> Option<&str> {
    let text = header.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn check(p: &Principal, need: Need, path_id: Option<&str>, method: &Method, route: &str) -> Result<(), ApiError> {
    let role = p.role();
    let who = describe(p);
    match need {
        Need::Open => Ok(()),
        Need::Role(needed) if role.includes(needed) => Ok(()),
        Need::Role(needed) => Err(forbidden(format!("{who} may not {method} {route}: that needs the {needed} role"))),
        Need::AnyWorker if role.includes(Role::Worker) => Ok(()),
        Need::OwnWorker if role == Role::Admin => Ok(()),
        Need::OwnWorker if role == Role::Worker => {
            let id = path_id;
            match (id, p.bound_worker()) {
                (Some(id), Some(mine)) if id == mine => Ok(()),
                _ => Err(forbidden(format!(
                    "{who} speaks for worker {:?} only, not {:?}",
                    p.bound_worker().unwrap_or(""),
                    id.unwrap_or("")
                ))),
            }
        }
        Need::AnyWorker | Need::OwnWorker => {
            Err(forbidden(format!("{who} may not {method} {route}: that needs a worker token")))
        }
    }
}

/// "token 0123… (ci, submitter)": how errors name the caller, without its secret.
fn describe(p: &Principal) -> String {
    match p {
        Principal::Open => "an unauthenticated caller".into(),
        Principal::Replica => "a replica".into(),
        Principal::Token { key, name, role, .. } => format!("token {key} ({name}, {role})"),
    }
}

/// The caller's principal, for handlers behind [`authorize`]; [`Principal::Open`] when the
/// route has no layer (tests that build a bare router).
pub fn principal_of(extensions: &axum::http::Extensions) -> Principal {
    extensions.get::<Principal>().cloned().unwrap_or(Principal::Open)
}

/// Refuses a worker token that speaks for another worker than `worker_id`.
pub fn ensure_worker(p: &Principal, worker_id: &str) -> Result<(), ApiError> {
    match p.bound_worker() {
        Some(mine) if mine != worker_id => {
            Err(forbidden(format!("{} speaks for worker {mine:?} only, not {worker_id:?}", describe(p))))
        }
        _ => Ok(()),
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_documented_roles() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(need(&get, "/health"), Need::Open);
        assert_eq!(need(&get, "/v1/tasks"), Need::Role(Role::Reader));
        assert_eq!(need(&post, "/v1/tasks"), Need::Role(Role::Submitter));
        assert_eq!(need(&post, "/v1/tasks/{id}/cancel"), Need::Role(Role::Operator));
        assert_eq!(need(&post, "/v1/schedules/{id}/pause"), Need::Role(Role::Operator));
        assert_eq!(need(&Method::PUT, "/v1/schedules/{id}"), Need::Role(Role::Submitter));
        assert_eq!(need(&Method::DELETE, "/v1/schedules/{id}"), Need::Role(Role::Operator));
        assert_eq!(need(&Method::DELETE, "/v1/workers/{id}"), Need::Role(Role::Operator));
        assert_eq!(need(&Method::PUT, "/v1/limits/{key}"), Need::Role(Role::Operator));
        assert_eq!(need(&Method::DELETE, "/v1/limits/{key}"), Need::Role(Role::Operator));
        assert_eq!(need(&get, "/v1/limits/{key}"), Need::Role(Role::Reader));
        assert_eq!(need(&get, "/v1/limits"), Need::Role(Role::Reader));
        assert_eq!(need(&get, "/v1/tokens"), Need::Role(Role::Admin));
        assert_eq!(need(&get, "/v1/snapshot"), Need::Role(Role::Admin));
        assert_eq!(need(&post, "/v1/cluster/members"), Need::Role(Role::Admin));
        assert_eq!(need(&get, "/v1/workers/{id}/inbox"), Need::OwnWorker);
        assert_eq!(need(&post, "/v1/workers"), Need::AnyWorker);
        assert_eq!(need(&post, "/v1/some/new/route"), Need::Role(Role::Admin), "unlisted writes need admin");
    }

    fn token(role: Role, worker: Option<&str>) -> Principal {
        Principal::Token { key: "k".into(), name: "n".into(), role, worker_id: worker.map(str::to_string) }
    }

    #[test]
    fn workers_speak_only_for_themselves() {
        let w1 = token(Role::Worker, Some("w1"));
        assert!(ensure_worker(&w1, "w1").is_ok());
        assert_eq!(ensure_worker(&w1, "w2").unwrap_err().status, StatusCode::FORBIDDEN);
        assert!(ensure_worker(&token(Role::Admin, None), "w2").is_ok());
        assert!(ensure_worker(&Principal::Open, "w2").is_ok());
        let get = Method::GET;
        let reader = token(Role::Reader, None);
        assert!(check(&reader, Need::AnyWorker, None, &get, "/v1/workers").is_err());
        assert!(check(&w1, Need::Role(Role::Reader), None, &get, "/v1/tasks").is_err(), "workers do not read");
        assert!(check(&token(Role::Operator, None), Need::Role(Role::Submitter), None, &get, "/v1/tasks").is_ok());
        let inbox = "/v1/workers/{id}/inbox";
        assert!(check(&w1, Need::OwnWorker, Some("w1"), &get, inbox).is_ok());
        assert!(check(&w1, Need::OwnWorker, Some("w2"), &get, inbox).is_err());
        assert!(check(&token(Role::Operator, None), Need::OwnWorker, Some("w2"), &get, inbox).is_err());
        assert!(check(&token(Role::Admin, None), Need::OwnWorker, Some("w2"), &get, inbox).is_ok());
    }
}
