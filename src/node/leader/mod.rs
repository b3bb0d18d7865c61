//! The leader's duties beyond Raft: worker leases, dispatch, lease expiry and timeouts.
//!
//! They run only on the leader, started and stopped by openraft's `on_leader_change`:
//! 1. On election the new leader waits until its state machine has applied everything
//!    committed (ReadIndex), then grants every known worker a full TTL of grace: the old
//!    leader's lease table died with it, and a worker must not be declared lost only because
//!    its heartbeats were going to a dead node.
//! 2. Heartbeats renew leases in memory, on the monotonic clock; they are never written to
//!    the log. A worker whose lease expires is declared lost by committing `WorkerLostIncarnation`.
//! 3. The dispatcher plans with the pure [`crate::scheduler::placement::Planner`] and commits
//!    one `Assign` batch per round; a worker sees an assignment only once it is committed.
//! 4. Attempts past their timeout are ended `timed_out` by committing a `Complete` with the
//!    attempt's own fencing token; the worker's late report is then refused as stale.
//! 5. The calendar loop ([`fires`]) fires schedules that are due, as `FireSchedule`
//!    commands that apply de-duplicates by each schedule's high-water mark, by a clock that is
//!    never ahead of a majority of the voters' ([`clock`]).
//!
//! 6. Workers ship their attempts' output here ([`output`]): kept in memory, bounded, never
//!    in the log, for readers that follow a running attempt.
//!
//! Losing leadership cancels all of it; the next leader rebuilds from the replicated state
//! (live output is not rebuilt: see [`output`]).

pub mod clock;
mod dispatch;
pub mod fires;
mod leases;
pub mod output;
mod retention;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use self::leases::Leases;
use super::Node;

/// Settings of the leader loops (the server config's `worker_*` and `dispatch_*` keys).
#[derive(Debug, Clone)]
pub struct LeaderOptions {
    /// A worker silent this long is declared lost and its attempts follow their failover policy.
    pub worker_ttl: Duration,
    /// How often workers heartbeat (told to them with the lease).
    pub worker_heartbeat: Duration,
    /// Longest pause between two dispatch rounds when nothing wakes the dispatcher.
    pub dispatch_interval: Duration,
    /// Most assignments per dispatch round.
    pub dispatch_batch: usize,
    /// Finished records older than this are forgotten.
    pub retention: Duration,
    /// Most finished tasks kept.
    pub retention_keep: u64,
    /// Preemption rules; `None`: preemption is off.
    pub preemption: Option<crate::scheduler::PreemptRules>,
    /// Migration off overloaded workers; `None`: migration is off.
    pub migration: Option<crate::scheduler::placement::MigrationOptions>,
}

impl LeaderOptions {
    /// The options a server config sets.
    pub fn from_config(config: &crate::config::ServerConfig) -> Self {
        Self {
            worker_ttl: config.worker_ttl,
            worker_heartbeat: config.worker_heartbeat,
            dispatch_interval: config.dispatch_interval,
            dispatch_batch: config.dispatch_batch,
            retention: config.retention,
            retention_keep: config.retention_keep,
            preemption: config.preemption,
            migration: config.migration,
        }
    }

    /// The lease workers are held to, as the protocol tells them.
    pub fn lease(&self) -> crate::proto::workers::Lease {
        crate::proto::workers::Lease {
            ttl_ms: self.worker_ttl.as_millis() as u64,
            heartbeat_ms: self.worker_heartbeat.as_millis() as u64,
            accepts_load: true,
            accepts_preempted: true,
            accepts_migrated: true,
        }
    }
}

/// What the leader keeps in memory, shared with the API handlers.
pub struct LeaderState {
    /// Worker leases (meaningful only while this replica leads).
    pub leases: Leases,
    /// Pokes the dispatcher (new work, new capacity).
    pub wake: Notify,
    /// Settings.
    pub options: LeaderOptions,
    /// Tasks that just completed here, for the dispatcher's runtime estimates (bounded).
    pub completed: std::sync::Mutex<Vec<crate::scheduler::Task>>,
    /// Pokes the calendar loop: a committed command touched the schedules in `changed`.
    pub schedules_changed: Notify,
    changed: std::sync::Mutex<Vec<crate::scheduler::ScheduleId>>,
    running: std::sync::Mutex<Option<CancellationToken>>,
    /// True once this leader has applied everything committed before its term (and granted
    /// leases); worker-facing judgements wait for it.
    ready: std::sync::atomic::AtomicBool,
    /// What the calendar loop measured this term (`GET /v1/cluster` shows it).
    calendar: std::sync::Mutex<CalendarStats>,
    /// Live output of attempts, shipped by workers (meaningful only while this replica leads).
    pub output: output::OutputStore,
    /// Each worker's load streak, for migration (meaningful only while this replica leads).
    pub streaks: std::sync::Mutex<crate::scheduler::placement::LoadStreaks>,
}

/// See [`crate::proto::cluster::CalendarStatus`].
#[derive(Default)]
pub(crate) struct CalendarStats {
    pub(crate) fires_committed: u64,
    pub(crate) lateness: std::collections::VecDeque<u64>,
    pub(crate) wall_minus_median_ms: Option<i64>,
}

impl CalendarStats {
    pub(crate) fn record_fire(&mut self, lateness_ms: u64) {
        self.fires_committed += 1;
        if self.lateness.len() == crate::proto::cluster::LATENESS_WINDOW {
            self.lateness.pop_front();
        }
        self.lateness.push_back(lateness_ms);
    }
}

/// Most completed tasks kept for the dispatcher between two rounds.
const MAX_COMPLETED_BACKLOG: usize = 10_000;

impl LeaderState {
    /// Fresh state; nothing runs until [`watch_leadership`] sees this replica lead.
    pub fn new(options: LeaderOptions) -> Self {
        Self {
            leases: Leases::new(options.worker_ttl),
            wake: Notify::new(),
            options,
            completed: Default::default(),
            schedules_changed: Notify::new(),
            changed: Default::default(),
            running: Default::default(),
            ready: Default::default(),
            calendar: Default::default(),
            output: Default::default(),
            streaks: Default::default(),
        }
    }

    /// Feeds a heartbeat's load into the migration streaks (when migration is on).
    pub fn observe_load(&self, worker: &str, load: crate::proto::workers::WorkerLoad) {
        let Some(options) = &self.options.migration else { return };
        let mem =
            if load.mem_total_bytes == 0 { 0.0 } else { load.mem_used_bytes as f64 / load.mem_total_bytes as f64 };
        let cpu = if load.cpu_busy.is_finite() { load.cpu_busy.clamp(0.0, 1.0) } else { 0.0 };
        let load = crate::scheduler::placement::Load { cpu, mem: mem.clamp(0.0, 1.0) };
        let now = crate::util::now_ms();
        self.streaks.lock().expect("streaks lock").observe(worker, load, now, options);
    }

    /// The calendar loop's figures this term.
    pub fn calendar_status(&self) -> crate::proto::cluster::CalendarStatus {
        let (fires_committed, lateness, wall_minus_median_ms) = {
            let c = self.calendar.lock().expect("calendar lock");
            (c.fires_committed, c.lateness.iter().copied().collect(), c.wall_minus_median_ms)
        };
        crate::proto::cluster::CalendarStatus {
            fires_committed,
            commit_lateness_ms: crate::proto::cluster::Percentiles::of(lateness),
            wall_minus_median_ms,
        }
    }

    /// Runs `f` on the calendar loop's figures.
    pub(crate) fn with_calendar<T>(&self, f: impl FnOnce(&mut CalendarStats) -> T) -> T {
        f(&mut self.calendar.lock().expect("calendar lock"))
    }

    /// The schedules touched by commands committed since the last call.
    pub fn take_changed_schedules(&self) -> Vec<crate::scheduler::ScheduleId> {
        std::mem::take(&mut *self.changed.lock().expect("changed lock"))
    }

    /// See the `ready` field.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Called by [`Node::write`] with every committed answer on this replica: wakes the
    /// dispatcher when the write may have brought work or capacity (anything but its own
    /// `Assign`, a refusal or a no-op), and keeps the tasks that just ended for its runtime
    /// estimates (shortest-job-first). No handler has to remember either.
    pub(crate) fn after_write(&self, resp: &crate::scheduler::Response) {
        use crate::scheduler::Response as R;
        let mut ended = Vec::new();
        let mut touched = Vec::new();
        let mut stack = vec![resp];
        let mut wake = false;
        while let Some(r) = stack.pop() {
            match r {
                R::Assigned { .. } | R::Rejected(_) | R::Noop => {}
                R::Completed { task } => {
                    wake = true;
                    ended.push(task.clone());
                }
                R::Many { responses } => stack.extend(responses),
                R::Schedule { schedule, started, .. } => {
                    touched.push(schedule.id);
                    wake |= !started.is_empty();
                }
                R::ScheduleDeleted { schedule, .. } => {
                    touched.push(schedule.id);
                    wake = true;
                }
                R::Reports { results } => stack.extend(results),
                _ => wake = true,
            }
        }
        if !ended.is_empty() {
            let mut done = self.completed.lock().expect("completed lock");
            let room = MAX_COMPLETED_BACKLOG.saturating_sub(done.len());
            done.extend(ended.into_iter().take(room));
        }
        if wake {
            self.wake.notify_one();
        }
        if !touched.is_empty() {
            self.changed.lock().expect("changed lock").extend(touched);
            self.schedules_changed.notify_one();
        }
    }
}

/// Starts the leader loops whenever this replica becomes leader and stops them when it stops
/// leading. Keep the returned handle alive for as long as the replica runs.
pub fn watch_leadership(node: &Arc<Node>) -> openraft::WatchChangeHandle<super::TypeConfig> {
    let up = node.clone();
    let down = node.clone();
    node.raft.on_leader_change(
        move |leader_id| {
            let node = up.clone();
            async move {
                // openraft also reports leadership for a vote restored from disk on restart,
                // before any quorum confirmed it: say so only once `run` has confirmed it.
                tracing::debug!(%leader_id, "openraft reports this replica leads; confirming with a quorum");
                node.leader.ready.store(false, std::sync::atomic::Ordering::Release);
                let token = node.shutdown.child_token();
                if let Some(old) = node.leader.running.lock().expect("leader lock").replace(token.clone()) {
                    old.cancel();
                }
                tokio::spawn(run(node, token));
            }
        },
        move |leader_id| {
            let node = down.clone();
            async move {
                tracing::info!(%leader_id, "not leading: dispatch, leases and timeouts stopped");
                node.leader.ready.store(false, std::sync::atomic::Ordering::Release);
                if let Some(token) = node.leader.running.lock().expect("leader lock").take() {
                    token.cancel();
                }
                node.leader.output.clear();
            }
        },
    )
}

async fn run(node: Arc<Node>, token: CancellationToken) {
    // Serve decisions from a state that has everything committed before this term applied.
    loop {
        let deadline = tokio::time::Instant::now() + node.config.request_timeout;
        let ready = async {
            let index = node.leader_read_index(deadline).await.ok()?;
            node.view.wait_applied(index, deadline).await.then_some(())
        };
        tokio::select! {
            _ = token.cancelled() => return,
            r = ready => if r.is_some() { break },
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workers: Vec<String> = node.view.read(|a| a.state.workers().map(|w| w.id.clone()).collect());
    node.leader.leases.grant_all(workers);
    // Streaks heard by an earlier term of this node are stale, like its loads.
    node.leader.streaks.lock().expect("streaks lock").clear();
    node.leader.ready.store(true, std::sync::atomic::Ordering::Release);
    tracing::info!(
        term = node.metrics().current_term,
        "became leader (confirmed by a quorum): dispatch, leases and timeouts running; every known worker got a \
         full lease of grace"
    );
    tokio::join!(
        dispatch::run(node.clone(), token.clone()),
        watchdog::expire_leases(node.clone(), token.clone()),
        watchdog::enforce_timeouts(node.clone(), token.clone()),
        fires::run(node.clone(), token.clone()),
    );
}
