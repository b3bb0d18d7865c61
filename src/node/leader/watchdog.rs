//! Lease expiry and attempt timeouts: the leader ends what stopped answering or ran too long.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use crate::scheduler::AttemptId;
use crate::scheduler::verdict;
use crate::scheduler::verdict::Expiry;
use crate::util::now_ms;

/// Commits `WorkerLostIncarnation` for every active or draining worker whose lease ran out
/// (the verdict is [`verdict::expired_lease`]).
pub async fn expire_leases(node: Arc<Node>, token: CancellationToken) {
    let period = (node.leader.leases.ttl() / 10).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        for (worker, silent) in node.leader.leases.expired() {
            let lost = match node.view.read(|a| verdict::expired_lease(&a.state, &worker, now_ms())) {
                Expiry::Forget => {
                    node.leader.leases.forget(&worker);
                    node.leader.streaks.lock().expect("streaks lock").forget(&worker);
                    continue;
                }
                Expiry::Declare(cmd) => cmd,
            };
            tracing::warn!(worker = %worker, silent_ms = silent.as_millis() as u64, "worker lease expired; declaring it lost");
            let deadline = Instant::now() + node.config.request_timeout;
            match node.write(lost, deadline).await {
                Ok(resp) => {
                    node.leader.leases.forget(&worker);
                    node.leader.streaks.lock().expect("streaks lock").forget(&worker);
                    tracing::info!(worker = %worker, ?resp, "worker declared lost; its attempts follow their failover policy");
                }
                Err(e) => {
                    tracing::warn!(worker = %worker, error = %e, "could not commit WorkerLostIncarnation; will retry")
                }
            }
        }
    }
}

/// Ends attempts that ran past their task's `timeout_ms` (the verdict is [`verdict::overdue`]:
/// an attempt must also have been watched by this leader, on its monotonic clock, for
/// `min(timeout, worker_ttl)`, so a skewed wall clock after a failover cannot end it early).
pub async fn enforce_timeouts(node: Arc<Node>, token: CancellationToken) {
    let mut first_seen: HashMap<AttemptId, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let now = now_ms();
        let mono = Instant::now();
        let min_watch = node.leader.leases.ttl().as_millis() as u64;
        let mut watched = HashSet::new();
        let overdue = node.view.read(|a| {
            verdict::overdue(&a.state, now, min_watch, &mut |attempt| {
                watched.insert(attempt);
                mono.duration_since(*first_seen.entry(attempt).or_insert(mono)).as_millis() as u64
            })
        });
        first_seen.retain(|k, _| watched.contains(k));
        for o in overdue {
            tracing::info!(attempt = %o.attempt, limit_ms = o.limit_ms, "attempt timed out; fencing it");
            if let Err(e) = node.write(o.command(now), Instant::now() + node.config.request_timeout).await {
                tracing::warn!(attempt = %o.attempt, error = %e, "could not commit the timeout; will retry");
            }
        }
    }
}
