//! # The wire protocol of the public HTTP API
//!
//! Every request and response body the API speaks, the header names, the limits and the error
//! codes, defined once. The server ([`crate::api`]), the [`crate::client::Client`], the worker
//! agent and the CLI all use these types, so a field renamed here is renamed everywhere, and
//! nobody matches on error strings.
//!
//! | module       | endpoints                                                        |
//! |--------------|------------------------------------------------------------------|
//! | [`tasks`]    | `/v1/tasks…`, `/v1/stats`                                        |
//! | [`schedules`] | `/v1/schedules…`                                                |
//! | [`limits`]   | `/v1/limits…` (concurrency limits)                               |
//! | [`workers`]  | `/v1/workers…` (protocol and administration), attempt checkpoints |
//! | [`cluster`]  | `/v1/cluster…`, `/health`, `/ready`, `/v1/internal/read-index`   |
//! | [`tokens`]   | `/v1/tokens…`, and the token string format                       |
//! | [`dashboard`] | `/v1/dashboard/…`: what only the web dashboard asks              |
//! | [`backup`]   | `/v1/snapshot` (a backup file)                                   |
//! | [`output`]   | live attempt output: `/v1/workers/{id}/output`, `/v1/tasks/{id}/output` |
//!
//! Task specs, tasks, workers and statuses are the scheduler's own types
//! ([`crate::scheduler`]): their JSON form is part of this protocol.
//!
//! Dependencies point one way: `proto` uses only `scheduler`; everything else may use `proto`.

pub mod backup;
pub mod cluster;
pub mod dashboard;
mod error;
pub mod limits;
pub mod output;
pub mod schedules;
pub mod tasks;
pub mod tokens;
pub mod workers;
pub mod workflows;

use std::time::Duration;

pub use self::error::ErrorBody;
pub use self::error::ErrorCode;
pub use self::error::ErrorDetail;

/// Request header carrying the client's request id (client id + serial). Apply de-duplicates
/// it, so a retried write never doubles. Also accepted as a `request_id` body field.
pub const REQUEST_ID_HEADER: &str = "x-taskraft-request-id";
/// Response header naming the leader's API address on answers a follower relayed, so that
/// clients can go straight to the leader next time.
pub const LEADER_HEADER: &str = "x-taskraft-leader";
/// Request header marking a request forwarded by another replica: it is never forwarded again.
pub const FORWARDED_HEADER: &str = "x-taskraft-forwarded";
/// Request header by which one replica proves to another that it belongs to the cluster
/// (joining, read indexes): it carries the cluster secret, and is worth an admin token.
pub const CLUSTER_SECRET_HEADER: &str = "x-taskraft-cluster-secret";

/// Most tasks in one `POST /v1/tasks/batch` (apply enforces the same bound).
pub const MAX_BATCH: usize = crate::scheduler::MAX_BATCH;
/// Longest request id, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 256;
/// Longest `/v1/tasks/{id}/wait` long-poll; a longer `timeout_ms` is cut to this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// `/v1/tasks/{id}/wait` long-poll when `timeout_ms` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Longest inbox long-poll; a longer `wait_ms` is cut to this.
pub const MAX_INBOX_WAIT: Duration = Duration::from_secs(30);
/// Largest total of the parent results one assignment carries for `$TASKRAFT_INPUTS_DIR`
/// (64 MiB); over it the assignment carries `inputs_error` instead and the attempt fails.
pub const MAX_INPUTS_BYTES: usize = 64 * 1024 * 1024;
/// Most reports in one `POST /v1/workers/{id}/reports`.
pub const MAX_REPORTS: usize = 4096;
/// Page size of `GET /v1/tasks` when `limit` is not given, or is 0.
pub const DEFAULT_LIST_LIMIT: u32 = crate::scheduler::DEFAULT_LIST_LIMIT;
/// Largest page of `GET /v1/tasks`; a larger `limit` is cut to this.
pub const MAX_LIST_LIMIT: u32 = crate::scheduler::MAX_LIST_LIMIT;
/// Largest checkpoint, in bytes.
pub const MAX_CHECKPOINT_BYTES: usize = crate::scheduler::MAX_CHECKPOINT_BYTES;
