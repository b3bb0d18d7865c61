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

/// Buckets of the apply histograms: 10 µs to 2.5 s, with a bound at 10 ms (the most an
/// apply may wait for a snapshot, issue 13).
pub const APPLY_BUCKETS: [f64; 16] =
    [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5];

/// The state machine's apply batches (every replica).
#[derive(Debug, Clone)]
pub struct ApplyMetrics {
    lock_wait: Histogram,
    apply: Histogram,
}

impl ApplyMetrics {
    /// Creates and registers the apply histograms.
    pub fn register(registry: &mut Registry) -> Self {
        let lock_wait = Histogram::new(APPLY_BUCKETS);
        registry.register(
            "taskraft_apply_lock_wait_seconds",
            "Per apply batch, the longest wait of one of its entries for the state's write lock",
            lock_wait.clone(),
        );
        let apply = Histogram::new(APPLY_BUCKETS);
        registry.register(
            "taskraft_apply_seconds",
            "Per apply batch, the time its entries spent waiting for the state's write lock and being applied",
            apply.clone(),
        );
        ApplyMetrics { lock_wait, apply }
    }

    /// One batch: the longest lock wait of its entries, and its waits plus apply times.
    pub fn batch(&self, longest_wait: Duration, total: Duration) {
        self.lock_wait.observe(longest_wait.as_secs_f64());
        self.apply.observe(total.as_secs_f64());
    }
}

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
