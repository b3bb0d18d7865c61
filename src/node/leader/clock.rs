//! The cluster's clock, as the calendar loop uses it: the median of the voters' clocks.
//!
//! A schedule's fire is due when the leader's clock passes its nominal time, and `apply` refuses
//! only nominal times later than the proposer's own clock. A leader whose wall clock runs ahead
//! would therefore fire early, and with `catch_up: all` fire a burst of future runs at once; one
//! whose clock runs behind fires late. So the leader does not trust its own clock alone:
//!
//! 1. When it takes office, and every [`PROBE_EVERY`], it asks every voter for its wall clock
//!    (`POST /raft/clock` on the Raft port, with the cluster secret) and takes the *lower
//!    median* of the offsets of those that answered, its own (0) included. With answers from a
//!    majority, that is the time of a clock that a majority of clocks is at or ahead of.
//! 2. It anchors that estimate to its **monotonic** clock, so a step of its own wall clock
//!    between two probes does not move it.
//! 3. It fires by its own wall clock while that is within [`MAX_DEVIATION`] of the estimate, and
//!    by the estimate otherwise (logging when that starts and ends).
//!
//! A probe without a majority keeps the last estimate for up to [`MAX_ESTIMATE_AGE`]. Without
//! any (no majority answered since the replica took office, or for a minute),
//! [`super::fires::FireClock`] guards the wall clock with the monotonic clock instead: a forward
//! step is not believed. It is re-seeded with every fire time taken from an estimate, so a
//! leader that was ahead of the median does not jump ahead when it falls back.
//!
//! What remains: the cluster fires by the median clock, so an early fire needs a majority of
//! clocks ahead, and is early by the median skew; a lower median over only a bare majority (a
//! voter down) errs late. Nothing fires twice whatever the clocks do: the high-water mark holds.

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
/// The leader fires by its own wall clock while it is within this of the voters' median.
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

    /// The time to fire by at `now`, given this replica's wall clock `wall_ms`: its own while
    /// within [`MAX_DEVIATION`] of the median, else the median.
    pub fn fire_time(&self, wall_ms: u64, now: std::time::Instant) -> u64 {
        let median = self.median_at(now);
        if wall_ms.abs_diff(median) > MAX_DEVIATION.as_millis() as u64 { median } else { wall_ms }
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

    /// The time to fire by now: from the latest estimate, or `fallback` (the monotonic guard's
    /// reading) without one.
    pub fn fire_time(&self, wall_ms: u64, fallback: u64) -> u64 {
        let Some(estimate) = self.latest() else { return fallback };
        let now = std::time::Instant::now();
        let t = estimate.fire_time(wall_ms, now);
        let deviating = t != wall_ms;
        if deviating != self.deviating.swap(deviating, std::sync::atomic::Ordering::Relaxed) {
            if deviating {
                tracing::warn!(
                    wall_minus_median_ms = wall_ms as i64 - estimate.median_at(now) as i64,
                    answered = estimate.answered,
                    voters = estimate.voters,
                    "this leader's wall clock disagrees with the median of the voters' clocks; firing schedules by \
                     the median"
                );
            } else {
                tracing::info!("this leader's wall clock agrees with the voters' again; firing schedules by it");
            }
        }
        t
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
        .post(format!("http://{raft_addr}/raft/clock"))
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
        // Leader 30 s behind both: it fires by theirs (on time, not 30 s late).
        let e = est(vec![0, 30_000, 30_000], 3).unwrap();
        assert_eq!(e.fire_time(T, at(&e, 0)), T + 30_000);
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
        // the median (2 s after the measurement), not 21 s late.
        let e = est(vec![0, 10, -10], 3).unwrap();
        let later = e.at + Duration::from_millis(2000);
        assert_eq!(e.fire_time(T + 2000 - 21_000, later), T + 2000);
        // The step is undone: it agrees again and fires by its own clock.
        assert_eq!(e.fire_time(T + 2000, later), T + 2000);
        // A step forward of 30 s: still the median, nothing early.
        assert_eq!(e.fire_time(T + 32_000, later), T + 2000);
    }
}
