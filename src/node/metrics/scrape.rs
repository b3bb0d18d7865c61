//! Scrape-time metrics: read from openraft's metrics and the replicated state when
//! `/metrics` is asked, so that nothing on the write path keeps them up to date.
//!
//! The cost of a scrape is bounded by what the cluster *has*, never by its history: per-state
//! task counts are the state's own O(1) counters, the queue depth walks the ready index's
//! priority levels (at most 1001), and workers and schedules are walked once each (a
//! deployment has far fewer of those than tasks). Everything is copied into plain structs
//! under the read lock and encoded after it is released, so apply waits for the walk only.

use std::fmt;
use std::sync::Arc;

use openraft::ServerState;
use openraft::rt::watch::WatchReceiver;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::EncodeLabelValue;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::applied::AppliedCounters;
use super::applied::add_counters;
use super::bands::BANDS;
use super::bands::by_band;
use crate::node::StateView;
use crate::node::TypeConfig;
use crate::scheduler::ScheduleCounters;
use crate::scheduler::State;
use crate::scheduler::TaskState;
use crate::scheduler::WorkerState;

/// openraft's metrics watch of this replica.
pub type RaftMetricsRx = openraft::type_config::alias::WatchReceiverOf<TypeConfig, openraft::RaftMetrics<TypeConfig>>;

const WORKER_STATES: [WorkerState; 4] =
    [WorkerState::Active, WorkerState::Draining, WorkerState::Lost, WorkerState::Removed];

/// The collector registered with the registry: one per replica.
pub struct Scrape {
    pub(super) view: StateView,
    pub(super) raft: RaftMetricsRx,
    pub(super) applied: Arc<AppliedCounters>,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let raft = RaftGauges::of(&self.raft.borrow_watched());
        // The deleted schedules' counters are read under the same lock as the live ones:
        // apply moves a schedule from one to the other under the write lock, so the sum never
        // dips (a dip would look like a counter reset).
        let state = self.view.read(|a| StateGauges::of(&a.state, self.applied.retired_schedules()));
        raft.encode(&mut encoder)?;
        state.encode(&mut encoder)
    }
}

/// This replica's Raft position, copied out of openraft's metrics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RaftGauges {
    pub term: u64,
    pub is_leader: bool,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    /// Leader only: per follower (and learner), entries it has not acknowledged yet.
    pub lag: Vec<(u64, u64)>,
}

impl RaftGauges {
    /// Reads `m`; the lag is computed against this leader's last log index.
    pub fn of(m: &openraft::RaftMetrics<TypeConfig>) -> Self {
        let last_log_index = m.last_log_index.unwrap_or(0);
        let is_leader = m.state == ServerState::Leader;
        let lag = match (&m.replication, is_leader) {
            (Some(replication), true) => replication
                .iter()
                .filter(|(id, _)| **id != m.id)
                .map(|(id, matched)| (*id, last_log_index.saturating_sub(matched.map_or(0, |l| l.index))))
                .collect(),
            _ => Vec::new(),
        };
        RaftGauges {
            term: m.current_term,
            is_leader,
            last_log_index,
            committed_index: m.local_committed.map_or(0, |l| l.index),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            lag,
        }
    }

    fn encode(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        gauge(e, "taskraft_raft_term", "Current Raft term of this replica.", self.term)?;
        gauge(e, "taskraft_raft_is_leader", "1 on the replica that is leader, else 0.", u64::from(self.is_leader))?;
        gauge(
            e,
            "taskraft_raft_last_log_index",
            "Index of the last entry in this replica's log.",
            self.last_log_index,
        )?;
        gauge(e, "taskraft_raft_committed_index", "Last index this replica knows committed.", self.committed_index)?;
        gauge(e, "taskraft_raft_applied_index", "Last index applied to this replica's state.", self.applied_index)?;
        gauge(
            e,
            "taskraft_raft_snapshot_index",
            "Last index covered by this replica's snapshot.",
            self.snapshot_index,
        )?;
        gauges(
            e,
            "taskraft_raft_replication_lag_entries",
            "Leader only: entries a follower has not acknowledged (leader's last log index minus its match).",
            "follower",
            self.lag.iter().copied(),
        )
    }
}

/// What the scrape reads from the replicated state (identical on replicas at the same
/// applied index).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StateGauges {
    /// Tasks per state, in `TaskState::ALL` order.
    pub tasks: [u64; TaskState::ALL.len()],
    /// Tasks ever created (submitted or started by a schedule).
    pub created: u64,
    /// Tasks waiting for a worker (`pending`, `retry_wait`) per priority band.
    pub queued: [u64; BANDS.len()],
    /// Workers per state, in [`WORKER_STATES`] order.
    pub workers: [u64; WORKER_STATES.len()],
    /// Slots taken by live attempts, on any worker.
    pub slots_used: u64,
    /// Free slots on active workers (what the dispatcher can fill).
    pub slots_free: u64,
    /// Schedules that are not paused, and paused ones.
    pub schedules: [u64; 2],
    /// Every schedule's counters, deleted ones included.
    pub fires: ScheduleCounters,
}

impl StateGauges {
    /// Reads `state`; `retired` holds the counters of deleted schedules.
    pub fn of(state: &State, retired: ScheduleCounters) -> Self {
        let counts = state.counts();
        let mut g = StateGauges {
            tasks: TaskState::ALL.map(|s| counts.get(s)),
            created: state.next_task_id().saturating_sub(1),
            queued: by_band(state.queued_by_priority()),
            fires: retired,
            ..Default::default()
        };
        for w in state.workers() {
            let i = WORKER_STATES.iter().position(|&s| s == w.state).expect("WORKER_STATES lists every state");
            g.workers[i] += 1;
            let used = state.live_tasks_on(&w.id).count() as u64;
            g.slots_used += used;
            if w.state == WorkerState::Active {
                g.slots_free += u64::from(w.slots).saturating_sub(used);
            }
        }
        for s in state.schedules() {
            g.schedules[usize::from(s.paused.is_some())] += 1;
            add_counters(&mut g.fires, &s.counters);
        }
        g
    }

    fn encode(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let states = TaskState::ALL.iter().zip(self.tasks).map(|(s, n)| (s.as_str(), n));
        gauges(e, "taskraft_tasks", "Tasks per state.", "state", states)?;
        counter(e, "taskraft_tasks_created", "Tasks ever created (submits and schedule runs).", self.created)?;
        gauges(
            e,
            "taskraft_queue_depth",
            "Tasks waiting for a worker (pending or retry_wait) per priority band.",
            "priority",
            BANDS.iter().zip(self.queued).map(|(&(band, _), n)| (band, n)),
        )?;
        let workers = WORKER_STATES.iter().zip(self.workers).map(|(s, n)| (s.as_str(), n));
        gauges(e, "taskraft_workers", "Workers per state (active = live lease).", "state", workers)?;
        gauges(
            e,
            "taskraft_worker_slots",
            "Slots used by live attempts, and free on active workers.",
            "slots",
            [("used", self.slots_used), ("free", self.slots_free)],
        )?;
        gauges(
            e,
            "taskraft_schedules",
            "Schedules, running or paused.",
            "state",
            [("active", self.schedules[0]), ("paused", self.schedules[1])],
        )?;
        let f = &self.fires;
        let fires = [
            ("fired", f.fired),
            ("missed", f.missed),
            ("skipped", f.skipped),
            ("dropped", f.dropped),
            ("triggered", f.triggered),
            ("backfilled", f.backfilled),
        ];
        counters(
            e,
            "taskraft_schedule_fires",
            "Schedule fires by outcome (deleted schedules included).",
            "outcome",
            fires,
        )
    }
}

pub(super) fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

pub(super) fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

pub(super) fn gauges<V: EncodeLabelValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (V, u64)>,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, n) in series {
        ConstGauge::new(n).encode(metric.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

pub(super) fn counters<V: EncodeLabelValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    series: impl IntoIterator<Item = (V, u64)>,
) -> fmt::Result {
    let mut metric = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in series {
        ConstCounter::new(n).encode(metric.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}
