//! # taskraft: a highly available task scheduler on Raft
//!
//! Three or more replicas keep the task log in consensus through openraft; the leader makes
//! every scheduling decision; any replica answers the HTTP API.
//!
//! Where things live:
//! - [`scheduler`]: the pure, deterministic core — task model, `Command`/`Query`/`Response`,
//!   `State::apply`. No I/O, no clock, no Raft.
//! - [`node`]: one replica wired together — openraft state-machine adapter, snapshots, storage,
//!   membership (bootstrap, join, add, remove), leader lookup, write and read paths.
//! - [`proto`]: the wire protocol — every request and response body, header names, limits and
//!   error codes, shared by server, client, worker and CLI.
//! - [`api`]: the axum handlers of the public API; HTTP status mapping in `api::error` only.
//! - [`server`]: the composition root of a replica — starts the [`node`] and serves the [`api`]
//!   on it (the only place that knows both).
//! - [`client`]: typed client with failover and idempotent retries (CLI, bench, worker, tests).
//! - [`worker`]: the worker agent and its executors.
//! - [`cli`]: the `taskraft` commands, including `taskraft dev`.
//! - [`config`]: server settings from TOML, environment and flags.
//! - [`dashboard`]: the web dashboard at `/` (static files in the binary) and its two views.
//! - [`listener`]: the accept loop of both listeners — TLS handshake, connection cap, slow
//!   and idle connection timeouts.
//! - [`tls`]: certificates (rustls with ring): loading, reloading, `tls init`.
//!
//! Dependencies point down: `cli` → `server` → `api` → `node` → `scheduler`, and `client`,
//! `worker` → `proto` → `scheduler`. `node`, `worker`, `client` and `cli` never import `api`.
//!
//! The Raft network lives in the `taskraft-raft` crate and durable storage in
//! `taskraft-storage`; neither depends on this package.

/// The unit tests run on the allocator the binary uses (`src/main.rs`): memory figures such
/// as `million_finished_tasks` depend on it.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod listener;
pub mod node;
pub mod proto;
pub mod scheduler;
pub mod server;
pub mod tls;
pub mod util;
pub mod worker;
