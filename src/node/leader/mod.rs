//! The leader's duties beyond Raft: worker leases, dispatch, lease expiry and timeouts.
//!
//! They run only on the leader, started and stopped by openraft's `on_leader_change`:
//! 1. On election the new leader waits until its state machine has applied everything
//!    committed (ReadIndex), then grants every known worker a full TTL of grace: the old
//!    leader's lease table died with it, and a worker must not be declared lost only because
//!    its heartbeats were going to a dead node.
//! 2. Heartbeats renew leases in memory, on the monotonic clock; they are never written to
//!    the log. A worker whose lease expires is declared lost by committing `WorkerLost`.
//! 3. The dispatcher plans with the pure [`crate::scheduler::placement::Planner`] and commits
//!    one `Assign` batch per round; a worker sees an assignment only once it is committed.
//! 4. Attempts past their timeout are ended `timed_out` by committing a `Complete` with the
//!    attempt's own fencing token; the worker's late report is then refused as stale.
//!
//! Losing leadership cancels all of it; the next leader rebuilds from the replicated state.

mod dispatch;
mod leases;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use self::leases::Leases;
use super::Node;

/// Default interval between a worker's heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// Default lease: a worker silent this long is declared lost and its tasks are reassigned.
pub const DEFAULT_WORKER_TTL: Duration = Duration::from_secs(3);

/// Settings of the leader loops.
#[derive(Debug, Clone)]
pub struct LeaderOptions {
    /// See [`DEFAULT_WORKER_TTL`].
    pub worker_ttl: Duration,
    /// Longest pause between two dispatch rounds when nothing wakes the dispatcher.
    pub dispatch_interval: Duration,
}

impl Default for LeaderOptions {
    fn default() -> Self {
        Self { worker_ttl: DEFAULT_WORKER_TTL, dispatch_interval: Duration::from_millis(100) }
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
    running: std::sync::Mutex<Option<CancellationToken>>,
    /// True once this leader has applied everything committed before its term (and granted
    /// leases); worker-facing judgements wait for it.
    ready: std::sync::atomic::AtomicBool,
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
            running: Default::default(),
            ready: Default::default(),
        }
    }

    /// See the `ready` field.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records a task a `Complete` just ended (its runtime teaches shortest-job-first).
    pub fn note_completed(&self, task: crate::scheduler::Task) {
        let mut done = self.completed.lock().expect("completed lock");
        if done.len() < MAX_COMPLETED_BACKLOG {
            done.push(task);
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
                tracing::info!(%leader_id, "became leader: starting dispatch, leases and timeouts");
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
                tracing::info!(%leader_id, "stopped leading: stopping dispatch, leases and timeouts");
                node.leader.ready.store(false, std::sync::atomic::Ordering::Release);
                if let Some(token) = node.leader.running.lock().expect("leader lock").take() {
                    token.cancel();
                }
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
    node.leader.ready.store(true, std::sync::atomic::Ordering::Release);
    tracing::info!("leader loops running; every known worker got a full lease of grace");
    tokio::join!(
        dispatch::run(node.clone(), token.clone()),
        watchdog::expire_leases(node.clone(), token.clone()),
        watchdog::enforce_timeouts(node.clone(), token.clone()),
    );
}
