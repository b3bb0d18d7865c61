//! The lease loop: register, heartbeat with the attempts this worker runs, obey stop orders,
//! and fence itself when it cannot renew its lease.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::agent::StopReason;
use super::agent::Worker;
use crate::client::Client;
use crate::client::ClientError;
use crate::proto::ErrorCode;
use crate::proto::workers::Heartbeat;
use crate::proto::workers::StopReason as Order;

impl Worker {
    /// Registers with the cluster, retrying until it answers (or shutdown: then false). The
    /// answer sets the lease.
    pub(super) async fn register(&self, shutdown: &CancellationToken) -> bool {
        let registration = self.config.registration();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.client.register_worker(&registration).await {
                Ok(r) => {
                    self.learn_lease(r.lease);
                    tracing::info!(
                        worker = %r.worker.id,
                        slots = r.worker.slots,
                        ttl_ms = r.lease.ttl_ms,
                        heartbeat_ms = r.lease.heartbeat_ms,
                        "registered with the cluster"
                    );
                    return true;
                }
                Err(e @ ClientError::Api { code: ErrorCode::InvalidField, .. }) => {
                    tracing::error!(error = %e, "the cluster refuses this worker's registration; fix the settings");
                    shutdown.cancel();
                    return false;
                }
                Err(e) => tracing::warn!(error = %e, "registration failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    pub(super) async fn heartbeat_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_renewal = Instant::now();
        let mut fenced = false;
        let mut pause = self.lease().heartbeat();
        let mut client: Option<(Duration, Client)> = None;
        let mut sampler = super::load::LoadSampler::with_override(self.config.load_file.clone());
        sampler.sample();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            let lease = self.lease();
            let interval = lease.heartbeat();
            // Self-fence a little before the leader can declare us lost (it waits a full TTL
            // from the last renewal it saw; we count from when we sent it, which is earlier).
            let fence_after = lease.ttl().saturating_sub(interval / 2);
            // One heartbeat may not outlast the interval: a hung call must not hide a lost
            // lease. Each replica gets a third of it, so a paused leader (which accepts the
            // connection and never answers) costs one third and the same heartbeat still
            // reaches another replica, which forwards it to the new leader.
            let budget = interval.max(Duration::from_millis(200));
            if client.as_ref().is_none_or(|(b, _)| *b != budget) {
                match Client::with_options(self.config.cluster.clone(), &self.config.client_options()) {
                    Ok(c) => client = Some((budget, c.with_timeout(budget).with_attempt_timeout(budget / 3))),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot build the heartbeat client");
                        shutdown.cancel();
                        return;
                    }
                }
            }
            let Some((_, client)) = &client else { return };
            // After a failure, try again soon rather than a whole interval later.
            pause = interval / 4;
            let sent = Instant::now();
            let seen_token = self.seen_token.load(Ordering::Acquire);
            // Sampled every time (the busy fraction is per interval), sent where it is taken.
            let load = sampler.sample().filter(|_| self.lease().accepts_load);
            let knows_preempted = self.lease().accepts_preempted;
            let knows_migrated = self.lease().accepts_migrated;
            let beat = Heartbeat { running: self.running_list(), seen_token, load, knows_preempted, knows_migrated };
            match client.heartbeat(&self.config.id, &beat).await {
                Ok(answer) => {
                    last_renewal = sent;
                    fenced = false;
                    self.learn_lease(answer.lease);
                    pause = answer.lease.heartbeat();
                    for order in answer.stop {
                        let reason = match order.reason {
                            Order::Cancelled => StopReason::Cancelled,
                            Order::StaleToken => StopReason::Stale,
                            Order::Preempted => StopReason::Preempted,
                            Order::Migrated => StopReason::Migrated,
                        };
                        self.stop(order.attempt, reason);
                    }
                }
                Err(ClientError::Api { code: ErrorCode::NotRegistered, .. }) => {
                    tracing::warn!(
                        "the cluster no longer knows this worker (declared lost?); stopping attempts and registering again"
                    );
                    self.stop_all(StopReason::LeaseLost);
                    if !self.register(&shutdown).await {
                        return;
                    }
                    last_renewal = Instant::now();
                }
                Err(ClientError::Api { code: ErrorCode::WorkerRemoved, message, .. }) => {
                    tracing::error!(%message, "this worker was removed by an operator; stopping");
                    self.stop_all(StopReason::LeaseLost);
                    shutdown.cancel();
                    return;
                }
                Err(e) => {
                    let silent = last_renewal.elapsed();
                    tracing::warn!(error = %e, silent_ms = silent.as_millis() as u64, "heartbeat failed");
                    if silent >= fence_after && !fenced {
                        let n = self.stop_all(StopReason::LeaseLost);
                        tracing::error!(attempts = n, "lease lost: stopped every running attempt");
                        fenced = true;
                    }
                }
            }
        }
    }
}
