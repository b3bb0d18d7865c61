//! Replica-local instruments: how long this replica's own work took.
//!
//! Unlike the cluster counters these differ between replicas by design: only the leader
//! dispatches, and each replica builds its own snapshots.

use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

/// Latency buckets shared by the HTTP and dispatch histograms: 100 µs to 10 s in 1-2.5-5
/// steps, fine where a commit lives (a few ms) and still bounded for slow outliers.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The leader's dispatch loop.
#[derive(Debug, Clone)]
pub struct DispatchMetrics {
    round: Histogram,
    assigned: Histogram,
}

impl DispatchMetrics {
    /// Creates and registers the dispatch histograms.
    pub fn register(registry: &mut Registry) -> Self {
        let round = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "taskraft_dispatch_round_duration_seconds",
            "Dispatch rounds that proposed assignments: planning plus the commit of the Assign batch",
            round.clone(),
        );
        // 1 to 4096: a round holds at most `dispatch_batch` assignments.
        let assigned = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        registry.register(
            "taskraft_dispatch_assignments_per_round",
            "Assignments apply accepted per committed dispatch round",
            assigned.clone(),
        );
        DispatchMetrics { round, assigned }
    }

    /// One committed round: how long it took and how many assignments apply accepted.
    pub fn round(&self, took: Duration, assigned: usize) {
        self.round.observe(took.as_secs_f64());
        self.assigned.observe(assigned as f64);
    }
}

/// Snapshots built by this replica (and installed from the leader).
#[derive(Debug, Clone)]
pub struct SnapshotMetrics {
    build: Histogram,
    size: Gauge,
}

impl SnapshotMetrics {
    /// Creates and registers the snapshot instruments.
    pub fn register(registry: &mut Registry) -> Self {
        // 1 ms to about a minute.
        let build = Histogram::new(exponential_buckets(0.001, 4.0, 9));
        registry.register(
            "taskraft_snapshot_build_duration_seconds",
            "Time to encode the state and write the snapshot file (off the apply path)",
            build.clone(),
        );
        let size = Gauge::default();
        registry.register(
            "taskraft_snapshot_size_bytes",
            "Size of the last snapshot this replica built or installed",
            size.clone(),
        );
        SnapshotMetrics { build, size }
    }

    /// A snapshot of `bytes` was built in `took`.
    pub fn built(&self, took: Duration, bytes: usize) {
        self.build.observe(took.as_secs_f64());
        self.installed(bytes);
    }

    /// A snapshot of `bytes` was installed.
    pub fn installed(&self, bytes: usize) {
        self.size.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
