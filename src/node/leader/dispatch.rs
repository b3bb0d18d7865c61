//! The dispatch loop: plan, commit one `Assign` batch, repeat.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use crate::scheduler::AssignOutcome;
use crate::scheduler::Command;
use crate::scheduler::Response;
use crate::scheduler::WorkerState;
use crate::scheduler::placement::PlacementOptions;
use crate::scheduler::placement::Planner;
use crate::util::now_ms;

/// Least time between two dispatch rounds.
const MIN_ROUND_SPACING: Duration = Duration::from_millis(2);

/// Runs until `token` is cancelled (leadership lost or shutdown).
pub async fn run(node: Arc<Node>, token: CancellationToken) {
    let seed = now_ms() ^ (node.id << 32);
    let mut planner = Planner::new(PlacementOptions::default(), seed);
    loop {
        // Woken by new work or freed capacity (submits, completions, registrations, lost
        // workers), or by the interval (retry backoffs falling due). Rounds are spaced a little
        // so that each one commits a fuller batch (more slots free up in between).
        tokio::select! {
            _ = token.cancelled() => return,
            _ = node.leader.wake.notified() => {}
            _ = tokio::time::sleep(node.leader.options.dispatch_interval) => {}
        }
        tokio::time::sleep(MIN_ROUND_SPACING).await;
        for task in std::mem::take(&mut *node.leader.completed.lock().expect("completed lock")) {
            planner.observe_completed(&task);
        }
        let now = now_ms();
        let live = node.leader.leases.live();
        // Nothing can be placed without a free slot: skip planning (and its waiting reasons).
        let plan = node.view.read(|a| {
            let free: usize = live
                .iter()
                .filter_map(|id| a.state.worker(id))
                .filter(|w| w.state == WorkerState::Active)
                .map(|w| (w.slots as usize).saturating_sub(a.state.live_tasks_on(&w.id).count()))
                .sum();
            (free > 0).then(|| planner.plan(&a.state, &live, now))
        });
        let Some(plan) = plan else { continue };
        if plan.assignments.is_empty() {
            continue;
        }
        let n = plan.assignments.len();
        let deadline = Instant::now() + node.config.request_timeout;
        match node.write(Command::Assign { now_ms: now, assignments: plan.assignments }, deadline).await {
            Ok(Response::Assigned { results }) => {
                let rejected: Vec<String> = results
                    .iter()
                    .filter_map(|r| match &r.outcome {
                        AssignOutcome::Rejected(rej) => Some(format!("{}->{}: {rej}", r.task_id, r.worker_id)),
                        AssignOutcome::Assigned { .. } => None,
                    })
                    .collect();
                tracing::debug!(assigned = n - rejected.len(), rejected = rejected.len(), "dispatch round committed");
                if !rejected.is_empty() {
                    tracing::debug!(?rejected, "assignments refused by apply");
                }
            }
            Ok(other) => tracing::warn!(?other, "unexpected answer to Assign"),
            Err(e) => {
                tracing::warn!(error = %e, "dispatch round failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
