//! Workers as the replicated state knows them: who they are, what they offer, whether they may
//! receive work. Liveness (heartbeats, leases) is *not* here: the leader tracks it in memory and
//! commits only its conclusion, `WorkerLostIncarnation`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::task::{FieldError, MAX_KEY_BYTES};

/// Longest worker id, in bytes.
pub const MAX_WORKER_ID_BYTES: usize = 128;
/// Longest API address or host name, in bytes.
pub const MAX_ADDR_BYTES: usize = 256;
/// Most labels a worker may carry.
pub const MAX_LABELS: usize = 64;
/// Most slots a worker may offer. Every slot is a concurrent attempt with its reports and, for
/// `exec`, a process: ten thousand is far beyond one machine, and a typo like 10^9 is refused.
pub const MAX_WORKER_SLOTS: u32 = 10_000;

/// What a worker sends to register (and re-register after a restart).
///
/// `#[serde(default)]` keeps the JSON of older workers (which sent no `host` or `pid`) valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerRegistration {
    /// Stable, operator-chosen id (e.g. the host name).
    pub id: String,
    /// The host the worker runs on, for people (`worker list`).
    pub host: String,
    /// The worker's process id on its host, for people.
    pub pid: Option<u32>,
    /// Where the worker can be reached (`host:port`), if it serves anything; informational.
    pub api_addr: Option<String>,
    /// Concurrent attempts it accepts.
    pub slots: u32,
    /// CPU it offers, in millicores.
    pub cpu_millis: u32,
    /// Memory it offers, in MiB.
    pub memory_mib: u32,
    /// Labels matched against task constraints and preferences.
    pub labels: BTreeMap<String, String>,
}

impl WorkerRegistration {
    /// Everything the API checks before a registration is proposed: the replicated rules plus
    /// the ones added since (a slot cap, a parseable address, a clean host name).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.validate_replicated()?;
        if self.slots > MAX_WORKER_SLOTS {
            let msg = format!("is {}; it must be between 1 and {MAX_WORKER_SLOTS}", self.slots);
            return Err(FieldError::new("slots", msg));
        }
        if let Some(addr) = &self.api_addr {
            check_host_port(addr).map_err(|m| FieldError::new("api_addr", m))?;
        }
        if self.host.len() > MAX_ADDR_BYTES || self.host.chars().any(char::is_control) {
            let msg = format!("must be at most {MAX_ADDR_BYTES} bytes without control characters");
            return Err(FieldError::new("host", msg));
        }
        Ok(())
    }

    /// The rules apply re-checks. Like [`crate::scheduler::TaskSpec::validate_replicated`]: they
    /// may be loosened, never tightened (a new rule goes into [`WorkerRegistration::validate`]).
    pub fn validate_replicated(&self) -> Result<(), FieldError> {
        if self.id.is_empty() {
            return Err(FieldError::new("id", "must not be empty"));
        }
        if self.id.len() > MAX_WORKER_ID_BYTES || self.id.chars().any(char::is_control) {
            let msg = format!("must be at most {MAX_WORKER_ID_BYTES} bytes without control characters");
            return Err(FieldError::new("id", msg));
        }
        if let Some(addr) = &self.api_addr
            && (addr.is_empty() || addr.len() > MAX_ADDR_BYTES)
        {
            let msg = format!("must be a host:port of 1 to {MAX_ADDR_BYTES} bytes");
            return Err(FieldError::new("api_addr", msg));
        }
        if self.slots == 0 {
            return Err(FieldError::new("slots", "must be at least 1"));
        }
        if self.labels.len() > MAX_LABELS {
            let msg = format!("has {} entries; the limit is {MAX_LABELS}", self.labels.len());
            return Err(FieldError::new("labels", msg));
        }
        for (k, v) in &self.labels {
            if k.is_empty() || k.len() > MAX_KEY_BYTES || v.len() > MAX_KEY_BYTES {
                let msg = format!("keys must be 1 to {MAX_KEY_BYTES} bytes, values at most that");
                return Err(FieldError::new(format!("labels.{k}"), msg));
            }
        }
        Ok(())
    }
}

/// `host:port` with a host and a port number from 1 to 65535.
fn check_host_port(addr: &str) -> Result<(), String> {
    let ok = addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.chars().any(|c| c.is_whitespace() || c.is_control())
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if ok { Ok(()) } else { Err(format!("{addr:?} is not a host:port address (e.g. 10.0.0.5:7000)")) }
}

/// Whether a worker may receive work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Receives assignments.
    Active,
    /// Finishes what it runs, receives nothing new.
    Draining,
    /// Missed its lease; its attempts were ended as lost. Re-registering revives it.
    Lost,
    /// Taken out by an operator. Re-registering revives it.
    Removed,
}

impl WorkerState {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Active => "active",
            WorkerState::Draining => "draining",
            WorkerState::Lost => "lost",
            WorkerState::Removed => "removed",
        }
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The replicated record of a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Stable id.
    pub id: String,
    /// The host the worker runs on (empty if it did not say).
    pub host: String,
    /// Its process id, if it said.
    pub pid: Option<u32>,
    /// Where it can be reached, if it serves anything.
    pub api_addr: Option<String>,
    /// Concurrent attempts it accepts; apply refuses assignments beyond it.
    pub slots: u32,
    /// CPU it offers, in millicores (the dispatcher's business; apply does not enforce it).
    pub cpu_millis: u32,
    /// Memory it offers, in MiB (the dispatcher's business; apply does not enforce it).
    pub memory_mib: u32,
    /// Labels matched against task constraints and preferences.
    pub labels: BTreeMap<String, String>,
    /// Whether it may receive work.
    pub state: WorkerState,
    /// When this incarnation registered (reset when a lost or removed worker comes back).
    pub registered_ms: u64,
    /// Time of the last change.
    pub updated_ms: u64,
}

impl WorkerInfo {
    /// A fresh, active record.
    pub fn from_registration(reg: WorkerRegistration, now_ms: u64) -> Self {
        WorkerInfo {
            id: reg.id,
            host: reg.host,
            pid: reg.pid,
            api_addr: reg.api_addr,
            slots: reg.slots,
            cpu_millis: reg.cpu_millis,
            memory_mib: reg.memory_mib,
            labels: reg.labels,
            state: WorkerState::Active,
            registered_ms: now_ms,
            updated_ms: now_ms,
        }
    }

    /// True if the worker has every `key=value` of `constraints`.
    pub fn satisfies(&self, constraints: &BTreeMap<String, String>) -> bool {
        constraints.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}
