//! Workers as the replicated state knows them: who they are, what they offer, whether they may
//! receive work. Liveness (heartbeats, leases) is *not* here: the leader tracks it in memory and
//! commits only its conclusion, `WorkerLost`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::task::{FieldError, MAX_KEY_BYTES};

/// Longest worker id, in bytes.
pub const MAX_WORKER_ID_BYTES: usize = 128;
/// Longest API address, in bytes.
pub const MAX_ADDR_BYTES: usize = 256;
/// Most labels a worker may carry.
pub const MAX_LABELS: usize = 64;

/// What a worker sends to register (and re-register after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerRegistration {
    /// Stable, operator-chosen id (e.g. the host name).
    pub id: String,
    /// Where the worker's own API listens (`host:port`).
    pub api_addr: String,
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
    /// Checks what can be checked without the cluster state.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.id.is_empty() {
            return Err(FieldError::new("id", "must not be empty"));
        }
        if self.id.len() > MAX_WORKER_ID_BYTES || self.id.chars().any(char::is_control) {
            let msg = format!("must be at most {MAX_WORKER_ID_BYTES} bytes without control characters");
            return Err(FieldError::new("id", msg));
        }
        if self.api_addr.is_empty() || self.api_addr.len() > MAX_ADDR_BYTES {
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

/// Whether a worker may receive work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// Stable id.
    pub id: String,
    /// Where the worker's own API listens.
    pub api_addr: String,
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
