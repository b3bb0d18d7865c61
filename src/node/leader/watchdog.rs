//! Lease expiry and attempt timeouts: the leader ends what stopped answering or ran too long.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use crate::scheduler::AttemptOutcome;
use crate::scheduler::Command;
use crate::scheduler::TaskState;
use crate::scheduler::WorkerState;
use crate::util::now_ms;

/// Commits `WorkerLost` for every active or draining worker whose lease ran out.
pub async fn expire_leases(node: Arc<Node>, token: CancellationToken) {
    let period = (node.leader.leases.ttl() / 10).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        for (worker, silent) in node.leader.leases.expired() {
            let incarnation = node.view.read(|a| {
                a.state
                    .worker(&worker)
                    .filter(|w| matches!(w.state, WorkerState::Active | WorkerState::Draining))
                    .map(|w| w.registered_ms)
            });
            let Some(registered_ms) = incarnation else {
                node.leader.leases.forget(&worker);
                continue;
            };
            tracing::warn!(worker = %worker, silent_ms = silent.as_millis() as u64, "worker lease expired; declaring it lost");
            let deadline = Instant::now() + node.config.request_timeout;
            let lost = Command::WorkerLostIncarnation { now_ms: now_ms(), worker_id: worker.clone(), registered_ms };
            match node.write(lost, deadline).await {
                Ok(resp) => {
                    node.leader.leases.forget(&worker);
                    tracing::info!(worker = %worker, ?resp, "worker declared lost; its attempts follow their failover policy");
                    node.leader.wake.notify_one();
                }
                Err(e) => tracing::warn!(worker = %worker, error = %e, "could not commit WorkerLost; will retry"),
            }
        }
    }
}

/// Ends attempts that ran past their task's `timeout_ms`, counted from the attempt's start
/// (or assignment). Start times were stamped by whichever leader applied them, so after a
/// failover a skewed wall clock could time attempts out early: an attempt is also required to
/// have been watched by *this* leader, on its monotonic clock, for `min(timeout, worker_ttl)`.
pub async fn enforce_timeouts(node: Arc<Node>, token: CancellationToken) {
    let mut first_seen: std::collections::HashMap<(u64, u64), Instant> = std::collections::HashMap::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let now = now_ms();
        let mono = Instant::now();
        let ttl = node.leader.leases.ttl();
        let mut watched = std::collections::HashSet::new();
        let overdue: Vec<(u64, u64, u64)> = node.view.read(|a| {
            [TaskState::Assigned, TaskState::Running]
                .into_iter()
                .flat_map(|s| a.state.tasks_in(s))
                .filter_map(|t| {
                    let limit = t.spec.timeout_ms?;
                    let attempt = t.live_attempt()?;
                    let key = (t.id, attempt.fencing_token);
                    watched.insert(key);
                    let seen = *first_seen.entry(key).or_insert(mono);
                    let wall_overdue = now.saturating_sub(attempt.started_ms.unwrap_or(attempt.assigned_ms)) > limit;
                    let watched_long_enough = mono.duration_since(seen) >= Duration::from_millis(limit).min(ttl);
                    (wall_overdue && watched_long_enough).then_some((t.id, attempt.fencing_token, limit))
                })
                .collect()
        });
        first_seen.retain(|k, _| watched.contains(k));
        for (task_id, token_of_attempt, limit) in overdue {
            tracing::info!(task_id, token = token_of_attempt, limit_ms = limit, "attempt timed out; fencing it");
            let cmd = Command::Complete {
                now_ms: now,
                task_id,
                token: token_of_attempt,
                outcome: AttemptOutcome::TimedOut,
                exit_code: None,
                output_tail: String::new(),
                error: Some(format!("timed out after {limit} ms (enforced by the leader)")),
            };
            if let Err(e) = node.write(cmd, Instant::now() + node.config.request_timeout).await {
                tracing::warn!(task_id, error = %e, "could not commit the timeout; will retry");
            }
        }
    }
}
