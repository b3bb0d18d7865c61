//! Server configuration: TOML file, `TASKRAFT_*` environment variables and flags.
//!
//! Precedence, highest first: command-line flag, environment variable, TOML file, built-in
//! default. Every key of the file has a flag of the same name (`node_id` ↔ `--node-id` ↔
//! `TASKRAFT_NODE_ID`). Unknown keys in the file are an error, so a typo never silently
//! falls back to a default.

use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::listener::Limits;
use crate::tls::TlsFiles;

/// Default heartbeat interval. Loopback and LAN round trips are well under a millisecond, so
/// a leader can afford to prove it is alive often; followers then notice a dead leader fast.
pub const DEFAULT_HEARTBEAT_MS: u64 = 50;
/// Default lower bound of the randomized election timeout.
///
/// openraft starts an election only once the leader lease (= `election_timeout_max`) *plus* a
/// random timeout in `[min, max]` have passed since the last heartbeat, so a leader crash is
/// repaired after about `max + (min + max) / 2` ≈ 675 ms with these defaults (measured median
/// ≈ 630 ms to the first acknowledged write). The lease, 8 heartbeats long, is what protects a
/// busy leader from being deposed by scheduling hiccups.
pub const DEFAULT_ELECTION_MIN_MS: u64 = 150;
/// Default upper bound of the election timeout, and the length of the leader lease.
pub const DEFAULT_ELECTION_MAX_MS: u64 = 400;
/// Build a snapshot (and purge the log behind it) every this many applied entries. A snapshot
/// encodes the whole state (≈ 100 bytes per task), so this is a trade between log size on
/// disk and the CPU of re-encoding a large state too often.
pub const DEFAULT_SNAPSHOT_LOGS: u64 = 100_000;
/// Deadline of one API request, reads and writes alike. A write not committed by then
/// answers 504 `outcome_unknown`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Largest accepted request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default worker lease: a worker silent this long is declared lost and its attempts follow
/// their failover policy. Workers learn it from the cluster's answers.
pub const DEFAULT_WORKER_TTL_MS: u64 = 3_000;
/// Default interval between a worker's heartbeats (told to workers with the lease). At most a
/// third of the TTL, so a lease survives two lost heartbeats.
pub const DEFAULT_WORKER_HEARTBEAT_MS: u64 = 1_000;
/// Default longest pause between two dispatch rounds when nothing wakes the dispatcher (retry
/// backoffs falling due are noticed within this).
pub const DEFAULT_DISPATCH_INTERVAL_MS: u64 = 100;
/// Default cap on long-polls in flight: half the connections, so that waiting clients can
/// never take every connection from ordinary requests.
pub const DEFAULT_MAX_LONG_POLLS: usize = crate::listener::DEFAULT_MAX_CONNECTIONS / 2;
/// Secret used when none is configured. Fine for `taskraft dev`; the server logs a warning.
pub const INSECURE_DEFAULT_SECRET: &str = "taskraft-insecure-default-secret";

/// Raw settings as given by flags, environment and file; `None` = not given at that level.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerArgs {
    /// Replica id, unique in the cluster and never reused after removal.
    #[arg(long, env = "TASKRAFT_NODE_ID")]
    pub node_id: Option<u64>,
    /// Public HTTP API listen address (host:port); also what other replicas forward to.
    #[arg(long, env = "TASKRAFT_API_ADDR")]
    pub api_addr: Option<String>,
    /// Raft RPC listen address (host:port).
    #[arg(long, env = "TASKRAFT_RAFT_ADDR")]
    pub raft_addr: Option<String>,
    /// Directory holding the Raft log, vote and snapshots.
    #[arg(long, env = "TASKRAFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Shared secret that every Raft RPC between replicas must carry (printable ASCII, no spaces
    /// at either end: it travels as a header value). Prefer `cluster_secret_file` or the
    /// environment: a flag shows in `ps`.
    #[arg(long, env = "TASKRAFT_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (surrounding whitespace ignored).
    #[arg(long, env = "TASKRAFT_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Require an API token on every request but /health and /ready (default true).
    #[arg(long, env = "TASKRAFT_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub auth: Option<bool>,
    /// The first admin token (`trk_…`), committed when a bootstrapping replica finds no token
    /// in the cluster. Prefer `admin_token_file` or the environment: a flag shows in `ps`.
    #[arg(long, env = "TASKRAFT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the first admin token. A bootstrapping replica with auth on and no
    /// `admin_token` reads it from here, or creates it here (mode 0600) and prints it once
    /// [default: DATA_DIR/admin-token].
    #[arg(long, env = "TASKRAFT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Initialize a new single-member cluster on first start (exactly one node of a new cluster).
    #[arg(long, env = "TASKRAFT_BOOTSTRAP", num_args = 0..=1, default_missing_value = "true")]
    pub bootstrap: Option<bool>,
    /// API addresses of existing replicas to ask for membership on first start.
    #[arg(long, env = "TASKRAFT_JOIN", value_delimiter = ',')]
    pub join: Option<Vec<String>>,
    /// Storage engine: `sled` (durable, default) or `memory` (tests; loses everything on exit).
    #[arg(long, env = "TASKRAFT_STORAGE")]
    pub storage: Option<String>,
    /// Leader heartbeat interval in milliseconds.
    #[arg(long, env = "TASKRAFT_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Minimum election timeout in milliseconds.
    #[arg(long, env = "TASKRAFT_ELECTION_TIMEOUT_MIN_MS")]
    pub election_timeout_min_ms: Option<u64>,
    /// Maximum election timeout in milliseconds.
    #[arg(long, env = "TASKRAFT_ELECTION_TIMEOUT_MAX_MS")]
    pub election_timeout_max_ms: Option<u64>,
    /// Build a snapshot (and purge the log behind it) every this many applied log entries
    /// (default 100000). Each replica builds at its own offset within the interval, so the
    /// replicas of a cluster never encode their state at the same moment.
    #[arg(long, env = "TASKRAFT_SNAPSHOT_LOGS")]
    pub snapshot_logs: Option<u64>,
    /// Deadline of each API request in milliseconds.
    #[arg(long, env = "TASKRAFT_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Largest accepted API request body in bytes.
    #[arg(long, env = "TASKRAFT_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Worker lease in milliseconds: a worker silent this long is declared lost. Workers learn
    /// it from the cluster (default 3000).
    #[arg(long, env = "TASKRAFT_WORKER_TTL_MS")]
    pub worker_ttl_ms: Option<u64>,
    /// Interval between a worker's heartbeats in milliseconds, told to workers with the lease;
    /// at most a third of `worker_ttl_ms` (default 1000).
    #[arg(long, env = "TASKRAFT_WORKER_HEARTBEAT_MS")]
    pub worker_heartbeat_ms: Option<u64>,
    /// Most assignments the leader commits per dispatch round (default 1024).
    #[arg(long, env = "TASKRAFT_DISPATCH_BATCH")]
    pub dispatch_batch: Option<usize>,
    /// Longest pause between dispatch rounds in milliseconds when nothing new arrives (default 100).
    #[arg(long, env = "TASKRAFT_DISPATCH_INTERVAL_MS")]
    pub dispatch_interval_ms: Option<u64>,
    /// Retention horizon in milliseconds: finished tasks, workflows and schedule runs are
    /// forgotten this long after they finished; reads of them then answer 404 `forgotten`
    /// (default 604800000, 7 days; at least 1000).
    #[arg(long, env = "TASKRAFT_RETENTION_MS")]
    pub retention_ms: Option<u64>,
    /// Most finished tasks kept whatever their age (workflow tasks included); the oldest go
    /// first past it (default 1000000, about 1 GB of state per replica).
    #[arg(long, env = "TASKRAFT_RETENTION_KEEP")]
    pub retention_keep: Option<u64>,
    /// Preempt running tasks of lower priority for a waiting task that fits no worker (default
    /// true). See README "Preemption".
    #[arg(long, env = "TASKRAFT_PREEMPTION", num_args = 0..=1, default_missing_value = "true")]
    pub preemption: Option<bool>,
    /// A victim's priority is at most the waiting task's minus this (default 10).
    #[arg(long, env = "TASKRAFT_PREEMPTION_GAP")]
    pub preemption_gap: Option<u32>,
    /// A victim has been running for at least this many milliseconds (default 10000).
    #[arg(long, env = "TASKRAFT_PREEMPT_MIN_RUNTIME_MS")]
    pub preempt_min_runtime_ms: Option<u64>,
    /// A task is preempted at most this many times per hour (default 3).
    #[arg(long, env = "TASKRAFT_MAX_PREEMPTIONS_PER_HOUR")]
    pub max_preemptions_per_hour: Option<u32>,
    /// Migrate a checkpointable task off a worker that stays overloaded to one that is not
    /// (default false: load is the whole machine's, so on a host shared with other programs it
    /// is opt-in). See README "Migration off overloaded workers".
    #[arg(long, env = "TASKRAFT_MIGRATION", num_args = 0..=1, default_missing_value = "true")]
    pub migration: Option<bool>,
    /// A worker reporting a CPU or memory fraction at or above this is overloaded (default 0.9).
    #[arg(long, env = "TASKRAFT_MIGRATION_HIGH_WATER")]
    pub migration_high_water: Option<f64>,
    /// A worker reporting CPU and memory fractions below this may receive a task (default 0.5;
    /// below the high-water mark).
    #[arg(long, env = "TASKRAFT_MIGRATION_LOW_WATER")]
    pub migration_low_water: Option<f64>,
    /// Consecutive overloaded heartbeats before a worker's task is migrated (default 3).
    #[arg(long, env = "TASKRAFT_MIGRATION_HEARTBEATS")]
    pub migration_heartbeats: Option<u32>,
    /// After a migration, neither worker takes part in another for this many milliseconds
    /// (default 60000).
    #[arg(long, env = "TASKRAFT_MIGRATION_INTERVAL_MS")]
    pub migration_interval_ms: Option<u64>,
    /// A migrated attempt has been running for at least this many milliseconds (default 10000).
    #[arg(long, env = "TASKRAFT_MIGRATE_MIN_RUNTIME_MS")]
    pub migrate_min_runtime_ms: Option<u64>,
    /// A task is migrated at most this many times per hour (default 2).
    #[arg(long, env = "TASKRAFT_MAX_MIGRATIONS_PER_HOUR")]
    pub max_migrations_per_hour: Option<u32>,
    /// PEM certificate of this replica (with `tls_key` and `tls_ca`: TLS on both listeners,
    /// mutual TLS between replicas). Reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "TASKRAFT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[arg(long, env = "TASKRAFT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM cluster CA: peers must present a certificate it signed; clients verify against it.
    #[arg(long, env = "TASKRAFT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Most connections served at once per listener (default 8192); more wait in the backlog.
    #[arg(long, env = "TASKRAFT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most long-polls (task waits, worker inbox waits) in flight at once (default 4096, below
    /// `max_connections`); more are answered 503 `overloaded` with Retry-After.
    #[arg(long, env = "TASKRAFT_MAX_LONG_POLLS")]
    pub max_long_polls: Option<usize>,
    /// Milliseconds a client has for its TLS handshake and for each request head once begun
    /// (default 10000).
    #[arg(long, env = "TASKRAFT_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Milliseconds a connection may stay open with no request in flight (default 60000).
    #[arg(long, env = "TASKRAFT_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
}

impl ServerArgs {
    /// Fills every unset field of `self` from `lower` (a lower-precedence source).
    fn or(self, lower: ServerArgs) -> ServerArgs {
        ServerArgs {
            node_id: self.node_id.or(lower.node_id),
            api_addr: self.api_addr.or(lower.api_addr),
            raft_addr: self.raft_addr.or(lower.raft_addr),
            data_dir: self.data_dir.or(lower.data_dir),
            cluster_secret: self.cluster_secret.or(lower.cluster_secret),
            cluster_secret_file: self.cluster_secret_file.or(lower.cluster_secret_file),
            auth: self.auth.or(lower.auth),
            admin_token: self.admin_token.or(lower.admin_token),
            admin_token_file: self.admin_token_file.or(lower.admin_token_file),
            bootstrap: self.bootstrap.or(lower.bootstrap),
            join: self.join.or(lower.join),
            storage: self.storage.or(lower.storage),
            heartbeat_ms: self.heartbeat_ms.or(lower.heartbeat_ms),
            election_timeout_min_ms: self.election_timeout_min_ms.or(lower.election_timeout_min_ms),
            election_timeout_max_ms: self.election_timeout_max_ms.or(lower.election_timeout_max_ms),
            snapshot_logs: self.snapshot_logs.or(lower.snapshot_logs),
            request_timeout_ms: self.request_timeout_ms.or(lower.request_timeout_ms),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            worker_ttl_ms: self.worker_ttl_ms.or(lower.worker_ttl_ms),
            worker_heartbeat_ms: self.worker_heartbeat_ms.or(lower.worker_heartbeat_ms),
            dispatch_batch: self.dispatch_batch.or(lower.dispatch_batch),
            dispatch_interval_ms: self.dispatch_interval_ms.or(lower.dispatch_interval_ms),
            retention_ms: self.retention_ms.or(lower.retention_ms),
            retention_keep: self.retention_keep.or(lower.retention_keep),
            preemption: self.preemption.or(lower.preemption),
            preemption_gap: self.preemption_gap.or(lower.preemption_gap),
            preempt_min_runtime_ms: self.preempt_min_runtime_ms.or(lower.preempt_min_runtime_ms),
            max_preemptions_per_hour: self.max_preemptions_per_hour.or(lower.max_preemptions_per_hour),
            migration: self.migration.or(lower.migration),
            migration_high_water: self.migration_high_water.or(lower.migration_high_water),
            migration_low_water: self.migration_low_water.or(lower.migration_low_water),
            migration_heartbeats: self.migration_heartbeats.or(lower.migration_heartbeats),
            migration_interval_ms: self.migration_interval_ms.or(lower.migration_interval_ms),
            migrate_min_runtime_ms: self.migrate_min_runtime_ms.or(lower.migrate_min_runtime_ms),
            max_migrations_per_hour: self.max_migrations_per_hour.or(lower.max_migrations_per_hour),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_ca: self.tls_ca.or(lower.tls_ca),
            max_connections: self.max_connections.or(lower.max_connections),
            max_long_polls: self.max_long_polls.or(lower.max_long_polls),
            header_read_timeout_ms: self.header_read_timeout_ms.or(lower.header_read_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(lower.idle_timeout_ms),
        }
    }
}

/// Which storage engine backs the Raft log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// sled on disk, flushed before every acknowledgement.
    Sled,
    /// In memory only (tests).
    Memory,
}

/// Fully resolved server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// See [`ServerArgs::node_id`].
    pub node_id: u64,
    /// See [`ServerArgs::api_addr`].
    pub api_addr: SocketAddr,
    /// See [`ServerArgs::raft_addr`].
    pub raft_addr: SocketAddr,
    /// See [`ServerArgs::data_dir`].
    pub data_dir: PathBuf,
    /// See [`ServerArgs::cluster_secret`] (or read from `cluster_secret_file`).
    pub cluster_secret: String,
    /// See [`ServerArgs::auth`].
    pub auth: bool,
    /// See [`ServerArgs::admin_token`].
    pub admin_token: Option<String>,
    /// See [`ServerArgs::admin_token_file`]; resolved to its default.
    pub admin_token_file: PathBuf,
    /// See [`ServerArgs::bootstrap`].
    pub bootstrap: bool,
    /// See [`ServerArgs::join`].
    pub join: Vec<String>,
    /// See [`ServerArgs::storage`].
    pub storage: StorageKind,
    /// See [`ServerArgs::heartbeat_ms`].
    pub heartbeat: Duration,
    /// See [`ServerArgs::election_timeout_min_ms`].
    pub election_timeout_min: Duration,
    /// See [`ServerArgs::election_timeout_max_ms`].
    pub election_timeout_max: Duration,
    /// See [`ServerArgs::snapshot_logs`].
    pub snapshot_logs: u64,
    /// See [`ServerArgs::request_timeout_ms`].
    pub request_timeout: Duration,
    /// See [`ServerArgs::max_body_bytes`].
    pub max_body_bytes: usize,
    /// See [`ServerArgs::worker_ttl_ms`].
    pub worker_ttl: Duration,
    /// See [`ServerArgs::worker_heartbeat_ms`].
    pub worker_heartbeat: Duration,
    /// See [`ServerArgs::dispatch_batch`].
    pub dispatch_batch: usize,
    /// See [`ServerArgs::dispatch_interval_ms`].
    pub dispatch_interval: Duration,
    /// See [`ServerArgs::retention_ms`].
    pub retention: Duration,
    /// See [`ServerArgs::retention_keep`].
    pub retention_keep: u64,
    /// The preemption rules ([`ServerArgs::preemption_gap`] and the next two); `None` when
    /// [`ServerArgs::preemption`] is off.
    pub preemption: Option<crate::scheduler::PreemptRules>,
    /// Migration settings ([`ServerArgs::migration_high_water`] and the next five); `None`
    /// when [`ServerArgs::migration`] is off.
    pub migration: Option<crate::scheduler::placement::MigrationOptions>,
    /// See [`ServerArgs::tls_cert`]; `None`: plaintext.
    pub tls: Option<TlsFiles>,
    /// Connection limits of both listeners, see [`ServerArgs::max_connections`].
    pub limits: Limits,
    /// See [`ServerArgs::max_long_polls`].
    pub max_long_polls: usize,
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The TOML file is not valid or has unknown keys.
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value is missing or out of range.
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

fn parse_addr(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| invalid(key, format!("`{value}` is not an IP:port address (example: 127.0.0.1:7101)")))
}

/// Reads the TOML config file.
pub fn load_file(path: &Path) -> Result<ServerArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
}

impl ServerConfig {
    /// Resolves flags/env (`args`) over the optional file, then defaults, and validates.
    pub fn resolve(args: ServerArgs, file: Option<ServerArgs>) -> Result<Self, ConfigError> {
        let a = match file {
            Some(file) => args.or(file),
            None => args,
        };
        let node_id = a.node_id.ok_or_else(|| invalid("node_id", "required (e.g. --node-id 1)"))?;
        if node_id == 0 {
            return Err(invalid("node_id", "must be at least 1"));
        }
        let api_addr = parse_addr("api_addr", a.api_addr.as_deref().unwrap_or("127.0.0.1:7101"))?;
        let raft_addr = parse_addr("raft_addr", a.raft_addr.as_deref().unwrap_or("127.0.0.1:7201"))?;
        if api_addr == raft_addr {
            return Err(invalid("raft_addr", "must differ from api_addr"));
        }
        let storage = match a.storage.as_deref().unwrap_or("sled") {
            "sled" => StorageKind::Sled,
            "memory" => StorageKind::Memory,
            other => return Err(invalid("storage", format!("`{other}` is not one of: sled, memory"))),
        };
        let heartbeat = a.heartbeat_ms.unwrap_or(DEFAULT_HEARTBEAT_MS);
        let emin = a.election_timeout_min_ms.unwrap_or(DEFAULT_ELECTION_MIN_MS);
        let emax = a.election_timeout_max_ms.unwrap_or(DEFAULT_ELECTION_MAX_MS.max(emin + 1));
        if heartbeat == 0 || emin <= heartbeat * 2 || emax <= emin {
            return Err(invalid(
                "election_timeout_min_ms",
                format!(
                    "need 0 < heartbeat ({heartbeat}) and 2*heartbeat < election min ({emin}) < election max ({emax})"
                ),
            ));
        }
        let snapshot_logs = a.snapshot_logs.unwrap_or(DEFAULT_SNAPSHOT_LOGS);
        if snapshot_logs == 0 {
            return Err(invalid("snapshot_logs", "must be at least 1"));
        }
        let cluster_secret = match (a.cluster_secret, &a.cluster_secret_file) {
            (Some(_), Some(_)) => {
                return Err(invalid("cluster_secret_file", "give cluster_secret or cluster_secret_file, not both"));
            }
            (Some(s), None) => s,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| invalid("cluster_secret_file", format!("cannot read {}: {e}", path.display())))?
                .trim()
                .to_string(),
            (None, None) => INSECURE_DEFAULT_SECRET.to_string(),
        };
        if cluster_secret.is_empty() {
            return Err(invalid("cluster_secret", "must not be empty"));
        }
        // It travels as a header value, which HTTP trims: spaces at either end would never match.
        if axum::http::HeaderValue::from_str(&cluster_secret).is_err() || cluster_secret.trim() != cluster_secret {
            return Err(invalid(
                "cluster_secret",
                "must be printable ASCII (a valid HTTP header value) without spaces at either end",
            ));
        }
        let request_timeout_ms = a.request_timeout_ms.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS);
        if request_timeout_ms < 100 {
            return Err(invalid("request_timeout_ms", "must be at least 100"));
        }
        let worker_ttl_ms = a.worker_ttl_ms.unwrap_or(DEFAULT_WORKER_TTL_MS);
        let worker_heartbeat_ms = a.worker_heartbeat_ms.unwrap_or(DEFAULT_WORKER_HEARTBEAT_MS.min(worker_ttl_ms / 3));
        if worker_heartbeat_ms < 10 || worker_heartbeat_ms * 3 > worker_ttl_ms {
            return Err(invalid(
                "worker_heartbeat_ms",
                format!(
                    "need 10 <= worker_heartbeat_ms ({worker_heartbeat_ms}) <= worker_ttl_ms / 3 ({worker_ttl_ms} / 3), \
                     so a lease survives two lost heartbeats"
                ),
            ));
        }
        let dispatch_batch = a.dispatch_batch.unwrap_or(crate::scheduler::placement::DEFAULT_MAX_PER_ROUND);
        if !(1..=crate::scheduler::MAX_BATCH).contains(&dispatch_batch) {
            return Err(invalid("dispatch_batch", format!("must be 1 to {}", crate::scheduler::MAX_BATCH)));
        }
        let dispatch_interval_ms = a.dispatch_interval_ms.unwrap_or(DEFAULT_DISPATCH_INTERVAL_MS);
        if !(1..=60_000).contains(&dispatch_interval_ms) {
            return Err(invalid("dispatch_interval_ms", "must be 1 to 60000"));
        }
        let retention_ms = a.retention_ms.unwrap_or(crate::scheduler::retention::DEFAULT_RETENTION_MS);
        if retention_ms < 1000 {
            return Err(invalid("retention_ms", "must be at least 1000 (one second)"));
        }
        let retention_keep = a.retention_keep.unwrap_or(crate::scheduler::retention::DEFAULT_KEEP_FINISHED);
        if retention_keep == 0 {
            return Err(invalid(
                "retention_keep",
                "must be at least 1 (0 would forget every task as it finishes, before a client can read it)",
            ));
        }
        let preemption =
            resolve_preemption(a.preemption, a.preemption_gap, a.preempt_min_runtime_ms, a.max_preemptions_per_hour)?;
        let migration = resolve_migration(
            a.migration,
            (a.migration_high_water, a.migration_low_water, a.migration_heartbeats, a.migration_interval_ms),
            (a.migrate_min_runtime_ms, a.max_migrations_per_hour),
            worker_ttl_ms,
        )?;
        let tls = resolve_tls(a.tls_cert, a.tls_key, a.tls_ca)?;
        let (limits, max_long_polls) =
            resolve_limits(a.max_connections, a.max_long_polls, a.header_read_timeout_ms, a.idle_timeout_ms)?;
        // With auth on, the cluster secret admits replicas (Raft, join): a well-known one would
        // let anyone join the cluster and read its log.
        if a.auth.unwrap_or(true) && cluster_secret == INSECURE_DEFAULT_SECRET {
            return Err(invalid(
                "cluster_secret",
                "auth is on but no cluster secret is set: give every replica the same cluster_secret or \
                 cluster_secret_file (or run with auth = false)",
            ));
        }
        if let Some(t) = &a.admin_token
            && crate::proto::tokens::token_key(t.trim()).is_none()
        {
            return Err(invalid("admin_token", "not a taskraft token (expected trk_<16 hex>_<secret>)"));
        }
        let data_dir = a.data_dir.unwrap_or_else(|| PathBuf::from(format!("taskraft-data/node-{node_id}")));
        Ok(Self {
            node_id,
            api_addr,
            raft_addr,
            admin_token_file: a.admin_token_file.unwrap_or_else(|| data_dir.join("admin-token")),
            data_dir,
            cluster_secret,
            auth: a.auth.unwrap_or(true),
            admin_token: a.admin_token.map(|t| t.trim().to_string()),
            bootstrap: a.bootstrap.unwrap_or(false),
            join: a.join.unwrap_or_default(),
            storage,
            heartbeat: Duration::from_millis(heartbeat),
            election_timeout_min: Duration::from_millis(emin),
            election_timeout_max: Duration::from_millis(emax),
            snapshot_logs,
            request_timeout: Duration::from_millis(request_timeout_ms),
            max_body_bytes: a.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            worker_ttl: Duration::from_millis(worker_ttl_ms),
            worker_heartbeat: Duration::from_millis(worker_heartbeat_ms),
            dispatch_batch,
            dispatch_interval: Duration::from_millis(dispatch_interval_ms),
            retention: Duration::from_millis(retention_ms),
            retention_keep,
            preemption,
            migration,
            tls,
            limits,
            max_long_polls,
        })
    }

    /// `https` with TLS on, else `http`: the scheme of every URL of this cluster.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The IP outgoing connections are bound to: the node's own (raft) address, so that
    /// links between replicas on distinct loopback addresses can be cut one by one.
    pub fn local_ip(&self) -> Option<IpAddr> {
        let ip = self.raft_addr.ip();
        (!ip.is_unspecified()).then_some(ip)
    }
}

/// The preemption rules, `None` when preemption is off.
fn resolve_preemption(
    on: Option<bool>,
    gap: Option<u32>,
    min_runtime_ms: Option<u64>,
    max_per_hour: Option<u32>,
) -> Result<Option<crate::scheduler::PreemptRules>, ConfigError> {
    let d = crate::scheduler::PreemptRules::default();
    let rules = crate::scheduler::PreemptRules {
        gap: gap.unwrap_or(d.gap),
        min_runtime_ms: min_runtime_ms.unwrap_or(d.min_runtime_ms),
        max_per_hour: max_per_hour.unwrap_or(d.max_per_hour),
    };
    if rules.gap == 0 || rules.gap > crate::scheduler::MAX_PRIORITY {
        let msg = format!("must be 1 to {}", crate::scheduler::MAX_PRIORITY);
        return Err(invalid("preemption_gap", msg));
    }
    if rules.max_per_hour == 0 {
        return Err(invalid("max_preemptions_per_hour", "must be at least 1; turn preemption off instead"));
    }
    Ok(on.unwrap_or(true).then_some(rules))
}

/// The migration settings, `None` when migration is off. A target's report must be younger
/// than a worker TTL.
fn resolve_migration(
    on: Option<bool>,
    (high, low, heartbeats, interval_ms): (Option<f64>, Option<f64>, Option<u32>, Option<u64>),
    (min_runtime_ms, max_per_hour): (Option<u64>, Option<u32>),
    worker_ttl_ms: u64,
) -> Result<Option<crate::scheduler::placement::MigrationOptions>, ConfigError> {
    use crate::scheduler::placement::MigrationOptions;
    let d = MigrationOptions::default();
    let rules = crate::scheduler::MigrateRules {
        min_runtime_ms: min_runtime_ms.unwrap_or(d.rules.min_runtime_ms),
        max_per_hour: max_per_hour.unwrap_or(d.rules.max_per_hour),
    };
    let o = MigrationOptions {
        high_water: high.unwrap_or(d.high_water),
        low_water: low.unwrap_or(d.low_water),
        heartbeats: heartbeats.unwrap_or(d.heartbeats),
        interval_ms: interval_ms.unwrap_or(d.interval_ms),
        fresh_ms: worker_ttl_ms,
        rules,
    };
    if !(o.high_water > 0.0 && o.high_water <= 1.0) {
        return Err(invalid("migration_high_water", "must be above 0 and at most 1"));
    }
    if !(o.low_water > 0.0 && o.low_water < o.high_water) {
        return Err(invalid("migration_low_water", "must be above 0 and below migration_high_water (hysteresis)"));
    }
    if o.heartbeats == 0 {
        return Err(invalid("migration_heartbeats", "must be at least 1"));
    }
    if rules.max_per_hour == 0 {
        return Err(invalid("max_migrations_per_hour", "must be at least 1; turn migration off instead"));
    }
    Ok(on.unwrap_or(false).then_some(o))
}

/// All three TLS files or none: half a TLS setup is a mistake, not a choice.
fn resolve_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key, ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles { cert, key, ca })),
        (cert, key, ca) => {
            let missing: Vec<&str> =
                [("tls_cert", cert.is_none()), ("tls_key", key.is_none()), ("tls_ca", ca.is_none())]
                    .into_iter()
                    .filter_map(|(k, m)| m.then_some(k))
                    .collect();
            Err(invalid(
                "tls_cert",
                format!("TLS needs tls_cert, tls_key and tls_ca together; missing: {}", missing.join(", ")),
            ))
        }
    }
}

fn resolve_limits(
    max_connections: Option<usize>,
    max_long_polls: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
) -> Result<(Limits, usize), ConfigError> {
    let defaults = Limits::default();
    let max_connections = max_connections.unwrap_or(defaults.max_connections);
    if max_connections < 2 {
        return Err(invalid("max_connections", "must be at least 2"));
    }
    let max_long_polls = max_long_polls.unwrap_or(DEFAULT_MAX_LONG_POLLS.min(max_connections / 2));
    if max_long_polls >= max_connections {
        return Err(invalid(
            "max_long_polls",
            format!(
                "must be below max_connections ({max_connections}) so that long-polls cannot take every connection"
            ),
        ));
    }
    let header_read_timeout_ms = header_read_timeout_ms.unwrap_or(defaults.header_read_timeout.as_millis() as u64);
    let idle_timeout_ms = idle_timeout_ms.unwrap_or(defaults.idle_timeout.as_millis() as u64);
    if header_read_timeout_ms < 100 {
        return Err(invalid("header_read_timeout_ms", "must be at least 100"));
    }
    if idle_timeout_ms < 100 {
        return Err(invalid("idle_timeout_ms", "must be at least 100"));
    }
    let limits = Limits {
        max_connections,
        header_read_timeout: Duration::from_millis(header_read_timeout_ms),
        idle_timeout: Duration::from_millis(idle_timeout_ms),
    };
    Ok((limits, max_long_polls))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings with a cluster secret, which auth (on by default) requires.
    fn secret() -> ServerArgs {
        ServerArgs { cluster_secret: Some("s3cret".into()), ..Default::default() }
    }

    #[test]
    fn a_cluster_secret_that_cannot_travel_in_a_header_is_refused() {
        for bad in ["line\nbreak", " padded", "padded\t", "nul\0"] {
            let args = ServerArgs { node_id: Some(1), cluster_secret: Some(bad.into()), ..Default::default() };
            let err = ServerConfig::resolve(args, None).unwrap_err().to_string();
            assert!(err.contains("cluster_secret") && err.contains("header value"), "{bad:?}: {err}");
        }
        let ok = ServerArgs { node_id: Some(1), cluster_secret: Some("a b\tc!~".into()), ..Default::default() };
        assert!(ServerConfig::resolve(ok, None).is_ok());
    }

    #[test]
    fn auth_without_a_cluster_secret_is_refused() {
        let args = ServerArgs { node_id: Some(1), ..Default::default() };
        let err = ServerConfig::resolve(args, None).unwrap_err().to_string();
        assert!(err.contains("cluster_secret"), "{err}");
        let open = ServerArgs { node_id: Some(1), auth: Some(false), ..Default::default() };
        assert!(ServerConfig::resolve(open, None).is_ok());
    }

    #[test]
    fn flags_beat_file_and_defaults_fill_the_rest() {
        let file: ServerArgs = toml::from_str("node_id = 2\napi_addr = \"127.0.0.1:9000\"\njoin = [\"a:1\"]").unwrap();
        let flags = ServerArgs { api_addr: Some("127.0.0.1:9100".into()), ..secret() };
        let c = ServerConfig::resolve(flags, Some(file)).unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.api_addr.port(), 9100);
        assert_eq!(c.raft_addr.port(), 7201);
        assert_eq!(c.join, vec!["a:1".to_string()]);
        assert_eq!(c.storage, StorageKind::Sled);
    }

    #[test]
    fn preemption_is_on_by_default_with_documented_rules_and_can_be_tuned_or_turned_off() {
        let base = || ServerArgs { node_id: Some(1), ..secret() };
        let c = ServerConfig::resolve(base(), None).unwrap();
        let d = c.preemption.expect("on by default");
        assert_eq!((d.gap, d.min_runtime_ms, d.max_per_hour), (10, 10_000, 3));
        let file: ServerArgs =
            toml::from_str("preemption_gap = 50\npreempt_min_runtime_ms = 0\nmax_preemptions_per_hour = 1").unwrap();
        let c = ServerConfig::resolve(base(), Some(file)).unwrap();
        let r = c.preemption.unwrap();
        assert_eq!((r.gap, r.min_runtime_ms, r.max_per_hour), (50, 0, 1));
        let off = ServerArgs { preemption: Some(false), ..base() };
        assert_eq!(ServerConfig::resolve(off, None).unwrap().preemption, None);
        let zero_gap = ServerArgs { preemption_gap: Some(0), ..base() };
        let err = ServerConfig::resolve(zero_gap, None).unwrap_err().to_string();
        assert!(err.contains("preemption_gap"), "{err}");
        let no_cap = ServerArgs { max_preemptions_per_hour: Some(0), ..base() };
        let err = ServerConfig::resolve(no_cap, None).unwrap_err().to_string();
        assert!(err.contains("max_preemptions_per_hour"), "{err}");
    }

    #[test]
    fn migration_is_off_by_default_with_documented_settings_and_can_be_turned_on_or_tuned() {
        let base = || ServerArgs { node_id: Some(1), ..secret() };
        assert!(ServerConfig::resolve(base(), None).unwrap().migration.is_none(), "off by default");
        let on = ServerArgs { migration: Some(true), ..base() };
        let d = ServerConfig::resolve(on.clone(), None).unwrap().migration.expect("on");
        assert_eq!((d.high_water, d.low_water, d.heartbeats, d.interval_ms), (0.9, 0.5, 3, 60_000));
        assert_eq!((d.rules.min_runtime_ms, d.rules.max_per_hour, d.fresh_ms), (10_000, 2, DEFAULT_WORKER_TTL_MS));
        let file: ServerArgs = toml::from_str(
            "migration = true\nmigration_high_water = 0.8\nmigration_low_water = 0.3\nmigration_heartbeats = 5\n\
             migration_interval_ms = 1000\nmigrate_min_runtime_ms = 0\nmax_migrations_per_hour = 1",
        )
        .unwrap();
        let t = ServerConfig::resolve(base(), Some(file)).unwrap().migration.unwrap();
        assert_eq!((t.high_water, t.low_water, t.heartbeats, t.interval_ms), (0.8, 0.3, 5, 1000));
        assert_eq!((t.rules.min_runtime_ms, t.rules.max_per_hour), (0, 1));
        for (bad, key) in [
            (ServerArgs { migration_high_water: Some(1.5), ..on.clone() }, "migration_high_water"),
            (ServerArgs { migration_low_water: Some(0.9), ..on.clone() }, "migration_low_water"),
            (ServerArgs { migration_heartbeats: Some(0), ..on.clone() }, "migration_heartbeats"),
            (ServerArgs { max_migrations_per_hour: Some(0), ..on.clone() }, "max_migrations_per_hour"),
        ] {
            let err = ServerConfig::resolve(bad, None).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = toml::from_str::<ServerArgs>("node_idd = 1").unwrap_err().to_string();
        assert!(err.contains("node_idd"), "{err}");
        let args = ServerArgs { node_id: Some(1), api_addr: Some("nowhere".into()), ..secret() };
        let err = ServerConfig::resolve(args, None).unwrap_err().to_string();
        assert!(err.contains("api_addr"), "{err}");
        let err = ServerConfig::resolve(secret(), None).unwrap_err().to_string();
        assert!(err.contains("node_id"), "{err}");
    }

    #[test]
    fn worker_lease_settings_come_from_file_flag_or_default() {
        let file: ServerArgs = toml::from_str("node_id = 1\nworker_ttl_ms = 6000\ndispatch_batch = 64").unwrap();
        let c = ServerConfig::resolve(secret(), Some(file)).unwrap();
        assert_eq!(c.worker_ttl, Duration::from_millis(6000));
        assert_eq!(c.worker_heartbeat, Duration::from_millis(1000));
        assert_eq!(c.dispatch_batch, 64);
        // A short TTL brings the default heartbeat down with it.
        let args = ServerArgs { node_id: Some(1), worker_ttl_ms: Some(900), ..secret() };
        assert_eq!(ServerConfig::resolve(args, None).unwrap().worker_heartbeat, Duration::from_millis(300));
        let args =
            ServerArgs { node_id: Some(1), worker_ttl_ms: Some(1000), worker_heartbeat_ms: Some(600), ..secret() };
        let err = ServerConfig::resolve(args, None).unwrap_err().to_string();
        assert!(err.contains("worker_heartbeat_ms"), "{err}");
    }

    #[test]
    fn the_tls_example_configs_resolve() {
        for i in 1..=3 {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("cluster-configs/local-3-tls/node-{i}.toml"));
            let c = ServerConfig::resolve(secret(), Some(load_file(&path).unwrap())).unwrap();
            assert_eq!((c.node_id, c.scheme()), (i, "https"));
        }
    }

    #[test]
    fn tls_needs_all_three_files_and_limits_are_checked() {
        let file: ServerArgs = toml::from_str("node_id = 1\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap();
        let err = ServerConfig::resolve(secret(), Some(file)).unwrap_err().to_string();
        assert!(err.contains("missing: tls_ca"), "{err}");
        let file: ServerArgs =
            toml::from_str("node_id = 1\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_ca = \"ca.pem\"").unwrap();
        let c = ServerConfig::resolve(secret(), Some(file)).unwrap();
        assert_eq!(c.scheme(), "https");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.max_long_polls, DEFAULT_MAX_LONG_POLLS);
        let args = ServerArgs { node_id: Some(1), max_connections: Some(100), ..secret() };
        let c = ServerConfig::resolve(args, None).unwrap();
        assert_eq!((c.scheme(), c.limits.max_connections, c.max_long_polls), ("http", 100, 50));
        let args = ServerArgs { node_id: Some(1), max_connections: Some(100), max_long_polls: Some(100), ..secret() };
        let err = ServerConfig::resolve(args, None).unwrap_err().to_string();
        assert!(err.contains("max_long_polls"), "{err}");
    }
}
