//! The cluster's clock, as the calendar loop uses it: never ahead of the voters' median.
//!
//! A schedule's fire is due when the leader's clock passes its nominal time, and `apply` refuses
//! only nominal times later than the proposer's own clock. A leader whose wall clock runs ahead
//! would therefore fire early, and with `catch_up: all` fire a burst of future runs at once. So
//! the leader does not trust its own clock alone:
//!
//! 1. When it takes office, and every [`PROBE_EVERY`], it asks every voter for its wall clock
//!    (`POST /raft/clock` on the Raft port, with the cluster secret). From the answers of a
//!    majority it takes the clock that a majority *of the voters* is at or ahead of: the lower
//!    median when all answered, lower still when only some did.
//! 2. It anchors that estimate to its **monotonic** clock, so a step of its own wall clock
//!    between two probes does not move it.
//! 3. It fires by its own wall clock unless that is more than [`MAX_DEVIATION`] ahead of the
//!    estimate; then by the estimate (logging when that starts and ends).
//!
//! A probe without a majority keeps the last estimate for up to [`MAX_ESTIMATE_AGE`]. Without
//! any (no majority answered since the replica took office, or for a minute),
//! [`super::fires::FireClock`] guards the wall clock with the monotonic clock instead: a forward
//! step is not believed. It is re-seeded with every fire time taken while an estimate exists, so
//! a leader that was ahead of the median does not jump ahead when it falls back.
//!
//! What remains: an early fire needs this leader's clock *and* a majority of the voters' clocks
//! ahead, and is then early by the smaller skew. A leader whose clock runs behind fires late by
//! its lag (late is the safe side: a job never runs before its time). Nothing fires twice
//! whatever the clocks do: the high-water mark holds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::node::Node;
use crate::node::NodeId;
use crate::util::now_ms;

/// How often the leader compares its clock with the voters'.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// The leader fires by its own wall clock unless it is more than this ahead of the voters' median.
pub const MAX_DEVIATION: Duration = Duration::from_millis(1000);
/// How long an estimate stays in use when later probes get no majority.
const MAX_ESTIMATE_AGE: Duration = Duration::from_secs(60);
/// How long one probe waits for the voters' answers.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// An answer whose round trip took longer than this says too little about the peer's clock.
const MAX_ROUND_TRIP_MS: u64 = 250;

/// The voters' median clock, measured at one monotonic instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The median clock (ms since the epoch) at `at`.
    pub median_ms: u64,
    /// When it was measured.
    pub at: std::time::Instant,
    /// Voters whose answer counted, this replica included.
    pub answered: usize,
    /// Voters in the membership.
    pub voters: usize,
}

impl Estimate {
    /// From `offsets` (ms; the voters' clocks minus this replica's wall clock `wall_ms` at `at`,
    /// its own 0 among them), if they are a majority of `voters`.
    pub fn from_offsets(mut offsets: Vec<i64>, voters: usize, wall_ms: u64, at: std::time::Instant) -> Option<Self> {
        if offsets.len() < voters / 2 + 1 {
            return None;
        }
        offsets.sort_unstable();
        // The clock that a majority *of the voters* is at or ahead of, among those that
        // answered: the lower median when all answered, lower still when only some did.
        let median = offsets[offsets.len() - (voters / 2 + 1)];
        Some(Estimate { median_ms: wall_ms.saturating_add_signed(median), at, answered: offsets.len(), voters })
    }

    /// The median clock at monotonic instant `now`.
    pub fn median_at(&self, now: std::time::Instant) -> u64 {
        self.median_ms + now.saturating_duration_since(self.at).as_millis() as u64
    }

    /// The time to fire by at `now`, given this replica's wall clock `wall_ms`: its own, unless
    /// that is more than [`MAX_DEVIATION`] ahead of the median; then the median.
    pub fn fire_time(&self, wall_ms: u64, now: std::time::Instant) -> u64 {
        let median = self.median_at(now);
        if wall_ms > median + MAX_DEVIATION.as_millis() as u64 { median } else { wall_ms }
    }
}

/// Shared between the probe task and the calendar loop.
#[derive(Default)]
pub struct ClusterClock {
    latest: Mutex<Option<Estimate>>,
    /// Set once the first probe has finished, answered or not.
    probed: tokio::sync::Notify,
    first_done: std::sync::atomic::AtomicBool,
    /// Whether the last fire time came from the median (for the log).
    deviating: std::sync::atomic::AtomicBool,
}

impl ClusterClock {
    /// The latest estimate from a majority (None: none yet, or no majority answered last time).
    pub fn latest(&self) -> Option<Estimate> {
        *self.latest.lock().unwrap()
    }

    /// The time to fire by at monotonic instant `now`, given this replica's wall clock
    /// `wall_ms`, and the wall clock minus the median; None without an estimate.
    pub fn fire_time(&self, wall_ms: u64, now: std::time::Instant) -> Option<(u64, i64)> {
        let estimate = self.latest()?;
        let median = estimate.median_at(now);
        let t = estimate.fire_time(wall_ms, now);
        let deviating = t != wall_ms;
        if deviating != self.deviating.swap(deviating, std::sync::atomic::Ordering::Relaxed) {
            if deviating {
                tracing::warn!(
                    wall_minus_median_ms = wall_ms as i64 - median as i64,
                    answered = estimate.answered,
                    voters = estimate.voters,
                    "this leader's wall clock is ahead of the median of the voters' clocks; firing schedules by the \
                     median (nothing fires early)"
                );
            } else {
                tracing::info!("this leader's wall clock is no longer ahead of the voters'; firing schedules by it");
            }
        }
        Some((t, wall_ms as i64 - median as i64))
    }

    /// Waits (at most `limit`) until the first probe has finished.
    pub async fn first_probe(&self, limit: Duration) {
        let wait = async {
            loop {
                let notified = self.probed.notified();
                if self.first_done.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }

    fn record(&self, estimate: Option<Estimate>) {
        {
            let mut latest = self.latest.lock().unwrap();
            match (estimate, *latest) {
                (Some(e), _) => *latest = Some(e),
                // A failed probe keeps the last estimate while it is fresh: it is anchored to the
                // monotonic clock and barely drifts.
                (None, Some(old)) if old.at.elapsed() <= MAX_ESTIMATE_AGE => {}
                (None, Some(_)) => {
                    tracing::warn!(
                        "no majority of voters answered the clock probes for a minute; firing by the guarded wall clock"
                    );
                    *latest = None;
                }
                (None, None) => {}
            }
        }
        if !self.first_done.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.probed.notify_waiters();
        }
    }
}

/// Probes the voters now and every [`PROBE_EVERY`] until `token` is cancelled.
pub async fn run(node: Arc<Node>, clock: Arc<ClusterClock>, token: tokio_util::sync::CancellationToken) {
    loop {
        let estimate = probe(&node).await;
        clock.record(estimate);
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}

/// One comparison with every voter (in parallel).
async fn probe(node: &Node) -> Option<Estimate> {
    let peers: BTreeMap<NodeId, String> = {
        let m = node.metrics();
        let membership = m.membership_config.membership();
        membership
            .voter_ids()
            .filter(|&id| id != node.id)
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.raft_addr.clone())))
            .collect()
    };
    let voters = peers.len() + 1;
    let asks = peers.into_iter().map(|(id, addr): (NodeId, String)| async move {
        let sent_wall = now_ms();
        let sent = Instant::now();
        let answer = ask(node, &addr).await;
        let rtt = sent.elapsed().as_millis() as u64;
        match answer {
            Ok(peer_ms) if rtt <= MAX_ROUND_TRIP_MS => Some(peer_ms as i64 - (sent_wall + rtt / 2) as i64),
            Ok(_) => {
                tracing::debug!(peer = id, rtt_ms = rtt, "clock probe answered too slowly to count");
                None
            }
            Err(e) => {
                tracing::debug!(peer = id, error = %e, "clock probe got no answer");
                None
            }
        }
    });
    let mut offsets: Vec<i64> = futures::future::join_all(asks).await.into_iter().flatten().collect();
    offsets.push(0);
    Estimate::from_offsets(offsets, voters, now_ms(), std::time::Instant::now())
}

async fn ask(node: &Node, raft_addr: &str) -> anyhow::Result<u64> {
    let body = taskraft_raft::wire::encode(&())?;
    let resp = node
        .http
        .post(node.url(raft_addr, "/raft/clock"))
        .header(taskraft_raft::SECRET_HEADER, &node.config.cluster_secret)
        .body(body)
        .timeout(PROBE_TIMEOUT)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
    Ok(taskraft_raft::wire::decode(&resp.bytes().await?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    fn est(offsets: Vec<i64>, voters: usize) -> Option<Estimate> {
        Estimate::from_offsets(offsets, voters, T, std::time::Instant::now())
    }

    #[test]
    fn the_lower_median_of_a_majority_decides() {
        let at = |e: &Estimate, ms: u64| e.at + Duration::from_millis(ms);
        // Leader 60 s ahead of both followers: it fires by theirs.
        let e = est(vec![0, -60_000, -60_000], 3).unwrap();
        assert_eq!(e.fire_time(T, at(&e, 0)), T - 60_000);
        // One follower ahead, one behind: the leader is the median and fires by its own clock.
        let e = est(vec![0, 40_000, -30_000], 3).unwrap();
        assert_eq!(e.fire_time(T + 500, at(&e, 500)), T + 500);
        // Leader 30 s behind both: it fires by its own (late, never early).
        let e = est(vec![0, 30_000, 30_000], 3).unwrap();
        assert_eq!(e.fire_time(T, at(&e, 0)), T);
        // Within MAX_DEVIATION: measurement noise; the leader's own clock is used.
        let e = est(vec![0, -800, -900], 3).unwrap();
        assert_eq!(e.fire_time(T, at(&e, 0)), T);
        // A minority of answers decides nothing.
        assert_eq!(est(vec![0, -60_000], 5), None);
        assert_eq!(est(vec![0], 3), None);
        // Two of three (one follower down): the lower median errs late, never early.
        assert_eq!(est(vec![0, -5_000], 3).unwrap().median_ms, T - 5_000);
        assert_eq!(est(vec![0, 5_000], 3).unwrap().median_ms, T);
        // Three of five: the leader and one follower 60 s ahead, one on time. Only two of five
        // clocks are ahead, so the leader fires by the on-time one.
        assert_eq!(est(vec![0, 0, -60_000], 5).unwrap().median_ms, T - 60_000);
        // All five answer: the plain median.
        assert_eq!(est(vec![0, 0, -60_000, -60_000, -60_000], 5).unwrap().median_ms, T - 60_000);
        assert_eq!(est(vec![0, 0, 0, -60_000, -60_000], 5).unwrap().median_ms, T);
    }

    #[test]
    fn a_step_of_the_leaders_own_clock_does_not_move_the_estimate() {
        // Measured in agreement; 2 s later the leader's wall clock steps back 21 s: it fires by
        // its own (late) while it is behind.
        let e = est(vec![0, 10, -10], 3).unwrap();
        let later = e.at + Duration::from_millis(2000);
        assert_eq!(e.fire_time(T + 2000 - 21_000, later), T + 2000 - 21_000);
        // The step is undone (a 21 s jump forward): the estimate did not move with the wall
        // clock, so the two agree and it fires on time again, not stuck 21 s behind.
        assert_eq!(e.fire_time(T + 2000, later), T + 2000);
        // A step forward of 30 s: the median, nothing early.
        assert_eq!(e.fire_time(T + 32_000, later), T + 2000);
    }
}
