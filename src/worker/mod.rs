//! # The worker agent: runs tasks the leader assigns, and proves it is alive
//!
//! The path of one task through a worker ([`agent::run`]):
//! 1. The worker registers (committed through Raft); the answer carries its lease (the
//!    cluster's `worker_ttl_ms` and `worker_heartbeat_ms`). It then heartbeats the leader at
//!    that interval with the attempts it runs ([`lease`]). The leader renews its lease in
//!    memory and answers which attempts must stop (cancelled, or fenced off by a newer attempt).
//! 2. The attempt path ([`attempt`]) long-polls its inbox: committed assignments it has not
//!    reported started. It starts each at once (the leader already counted its slots; `exec`
//!    attempts run in a fresh per-attempt directory, a workflow task's parent results in its
//!    `inputs/`; an assignment whose inputs were too large to send fails at once) and
//!    reports `started` meanwhile, in the same report batches as completions, so a short task
//!    costs one round trip, not two. A refused or cancelled start stops the attempt.
//! 3. The [`executor`] runs the attempt (`exec` in its own process group, `http`, `noop`,
//!    `sleep`); every checkpoint the task writes is shipped with the attempt's fencing token.
//!    While it runs, its output is shipped to the leader every 250 ms ([`output`]), so
//!    `taskraft task logs --follow` shows it as it is produced.
//! 4. The outcome is reported with the token; a `stale_token` answer means the cluster has
//!    moved on (the task was reassigned): the worker drops the attempt, and kills its process
//!    if it still runs.
//! 5. Self-fencing: if the worker cannot renew its lease for the TTL, it stops every
//!    process it runs — by then the leader is reassigning them anyway.
//!
//! Deliberately not here: placement (the leader decides), retries (apply decides).

pub mod agent;
mod attempt;
pub mod executor;
mod lease;
pub mod load;
pub mod output;
pub mod reporter;

pub use agent::WorkerConfig;
