//! The retention loop: the leader proposes `Forget` so that finished records leave the state
//! once they are older than the horizon (or beyond the `retention_keep` bound).
//!
//! apply decides what goes from the state alone (see [`crate::scheduler::retention`]); this loop
//! only decides *when* and stamps the horizon from the same guarded clock the calendar loop
//! fires by, so a leader whose wall clock runs ahead forgets nothing early. One command
//! forgets at most [`MAX_FORGET_PER_COMMAND`] tasks; when apply says it left due records behind
//! the loop proposes the next at once, otherwise it looks again every [`INTERVAL`]. (Proposing
//! again after every forget that removed anything made a busy loop of small `Forget` entries
//! at a steady 5 000 tasks/s, starving submits.)

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clock::ClusterClock;
use super::fires::{FireClock, fire_now};
use crate::node::Node;
use crate::scheduler::Command;
use crate::scheduler::Response;
use crate::scheduler::retention::MAX_FORGET_PER_COMMAND;

/// How often the loop checks for something to forget when nothing is due.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How often the loop logs what it forgot (it logs each command at debug level), and at most
/// how often it warns that a `Forget` could not be committed.
const REPORT_EVERY: Duration = Duration::from_secs(60);

pub(super) async fn run(node: Arc<Node>, cluster: Arc<ClusterClock>, token: CancellationToken) {
    let retention_ms = node.leader.options.retention.as_millis() as u64;
    let keep = node.leader.options.retention_keep;
    let mut clock = FireClock::new();
    let (mut tasks_total, mut workflows_total) = (0u64, 0u64);
    let mut last_report = Instant::now();
    let mut last_warning: Option<Instant> = None;
    tracing::info!(retention_ms, keep, "retention loop running");
    loop {
        let (now, _) = fire_now(&mut clock, &cluster);
        let before_ms = now.saturating_sub(retention_ms);
        let due = node.view.read(|a| a.state.retention_due(before_ms, keep));
        let mut more = false;
        if due {
            let cmd = Command::Forget { now_ms: now, before_ms, keep, max: MAX_FORGET_PER_COMMAND };
            let deadline = Instant::now() + node.config.request_timeout;
            match node.write(cmd, deadline).await {
                Ok(Response::Forgot { tasks, workflows, more: left }) => {
                    tracing::debug!(tasks, workflows, before_ms, left, "retention forgot finished records");
                    tasks_total += tasks;
                    workflows_total += workflows;
                    // Only a command that left due records behind (its budget ran out) is
                    // followed at once; otherwise the next look is a second away. Proposing
                    // again after every small forget would keep the log busy with them.
                    more = left;
                }
                Ok(other) => tracing::warn!(?other, "unexpected answer to Forget"),
                Err(e) => {
                    if last_warning.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
                        tracing::warn!(error = %e, "could not commit a Forget; retrying every {INTERVAL:?}");
                        last_warning = Some(Instant::now());
                    }
                }
            }
        }
        if last_report.elapsed() >= REPORT_EVERY && (tasks_total > 0 || workflows_total > 0) {
            tracing::info!(
                tasks = tasks_total,
                workflows = workflows_total,
                retention_ms,
                keep,
                "retention forgot finished tasks and workflows in the last minute"
            );
            (tasks_total, workflows_total) = (0, 0);
            last_report = Instant::now();
        }
        if more {
            // Let other writes through between two large forgets.
            tokio::task::yield_now().await;
            if token.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
