//! # Metrics of a replica, exported as OpenMetrics text on `GET /metrics`
//!
//! Three kinds of numbers, kept apart because they mean different things when compared
//! across replicas:
//! 1. **Cluster counters** ([`applied`]): bumped by the state-machine adapter from each applied
//!    command and its response, so every replica that applied the same entries reports the
//!    same totals. The pure scheduler core knows nothing about them.
//! 2. **Scrape-time readings** ([`scrape`]): per-state task counts, queue depth per priority
//!    band ([`bands`]), workers and slots, schedule counters (from the replicated state, so
//!    also identical at the same applied index) and this replica's Raft position and, on the
//!    leader, each follower's replication lag (from openraft's metrics).
//! 3. **Replica-local instruments** ([`timings`], [`elections`]): dispatch rounds (leader
//!    only), apply batches (their waits for the state lock), snapshot builds, elections this
//!    replica saw; and, registered by the API, HTTP
//!    requests by route template and status.
//!
//! The path of a scrape: the handler locks the [`Registry`] (only scrapes and start-up touch
//! it), the registered instruments encode their atomics, the [`scrape::Scrape`] collector
//! reads openraft's metrics and the state under the read lock, and the text ends with `# EOF`.
//!
//! Deliberately not here: per-task or per-worker series (unbounded label values), and
//! anything on the write path beyond a few integer additions per applied entry.

pub mod applied;
pub mod bands;
pub mod elections;
pub mod scrape;
pub mod timings;

use std::sync::Arc;
use std::sync::Mutex;

use prometheus_client::registry::Registry;

pub use self::applied::AppliedCounters;
pub use self::applied::Probe;
pub use self::applied::Tally;
pub use self::elections::Elections;
pub use self::timings::ApplyMetrics;
pub use self::timings::DispatchMetrics;
pub use self::timings::LATENCY_BUCKETS;
pub use self::timings::SnapshotMetrics;
use super::StateView;

/// The media type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry of one replica and the instruments the node's own code bumps.
#[derive(Debug)]
pub struct Telemetry {
    registry: Mutex<Registry>,
    /// Cluster counters, bumped by the state machine.
    pub applied: Arc<AppliedCounters>,
    /// Apply batches: their waits for the state lock.
    pub apply: ApplyMetrics,
    /// The leader's dispatch rounds.
    pub dispatch: DispatchMetrics,
    /// Snapshot builds and installs.
    pub snapshots: SnapshotMetrics,
    /// Elections seen.
    pub elections: Elections,
}

impl Telemetry {
    /// A registry with every instrument of the node registered. The scrape-time readings join
    /// once the state and Raft exist ([`Telemetry::watch`]).
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let applied = Arc::new(AppliedCounters::default());
        registry.register_collector(Box::new(applied.clone()));
        let apply = ApplyMetrics::register(&mut registry);
        let dispatch = DispatchMetrics::register(&mut registry);
        let snapshots = SnapshotMetrics::register(&mut registry);
        let elections = Elections::register(&mut registry);
        Arc::new(Telemetry { registry: Mutex::new(registry), applied, apply, dispatch, snapshots, elections })
    }

    /// Adds the scrape-time readings of `view` and `raft`.
    pub fn watch(&self, view: StateView, raft: scrape::RaftMetricsRx) {
        let collector = scrape::Scrape { view, raft, applied: self.applied.clone() };
        self.register(|r| r.register_collector(Box::new(collector)));
    }

    /// Registers more metrics (the API's HTTP instruments). Call once per metric name.
    pub fn register<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.registry.lock().expect("registry lock"))
    }

    /// Everything, in the OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        let registry = self.registry.lock().expect("registry lock");
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
