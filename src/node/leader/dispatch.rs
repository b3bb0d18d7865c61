//! The dispatch loop: plan, commit one `Assign` batch, repeat. Each committed round is timed
//! (planning plus commit) into `taskraft_dispatch_*`. A round that places nothing may instead
//! commit one `Preempt` (see `scheduler::preempt`): the victims' workers stop them, and the
//! room they leave is placed by a later round. At most every [`MIGRATION_CHECK_INTERVAL`] a
//! round may also commit one `Migrate` off an overloaded worker (see `scheduler::migrate`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
use crate::scheduler::AssignOutcome;
use crate::scheduler::Command;
use crate::scheduler::PreemptRules;
use crate::scheduler::Response;
use crate::scheduler::WorkerState;
use crate::scheduler::placement::MigrationOptions;
use crate::scheduler::placement::PlacementOptions;
use crate::scheduler::placement::Planner;
use crate::scheduler::placement::choose_migration;
use crate::util::now_ms;

/// Shortest time between two preemption checks.
const PREEMPTION_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// Shortest time between two migration checks (loads change once per heartbeat).
const MIGRATION_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Runs until `token` is cancelled (leadership lost or shutdown).
pub async fn run(node: Arc<Node>, token: CancellationToken) {
    let seed = now_ms() ^ (node.id << 32);
    // Nobody reads a round's waiting reasons (`task get` explains a pending task on demand),
    // and gathering them walks up to a thousand queued tasks per round: skip it.
    let options = PlacementOptions {
        max_waiting_reasons: 0,
        max_per_round: node.leader.options.dispatch_batch,
        ..PlacementOptions::default()
    };
    let mut planner = Planner::new(options, seed);
    // A full cluster wakes the dispatcher on every submit and completion; a preemption check
    // (a walk of the running tasks) is done at most this often.
    let mut next_preemption_check = Instant::now();
    let mut next_migration_check = Instant::now();
    loop {
        // Woken by new work or freed capacity (submits, completions, registrations, lost
        // workers), or by the interval (retry backoffs falling due). No extra spacing: under
        // load, work piles up while the previous round commits, so batches fill by themselves.
        tokio::select! {
            _ = token.cancelled() => return,
            _ = node.leader.wake.notified() => {}
            _ = tokio::time::sleep(node.leader.options.dispatch_interval) => {}
        }
        for task in std::mem::take(&mut *node.leader.completed.lock().expect("completed lock")) {
            planner.observe_completed(&task);
        }
        let now = now_ms();
        let started = Instant::now();
        let live = node.leader.leases.live();
        if let Some(options) = node.leader.options.migration
            && Instant::now() >= next_migration_check
        {
            next_migration_check = Instant::now() + MIGRATION_CHECK_INTERVAL;
            migrate(&node, &live, now, &options).await;
        }
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
        let Some(plan) = plan.filter(|p| !p.assignments.is_empty()) else {
            // Nothing placed: maybe a waiting task can make room by preemption.
            if let Some(rules) = node.leader.options.preemption
                && Instant::now() >= next_preemption_check
            {
                next_preemption_check = Instant::now() + PREEMPTION_CHECK_INTERVAL;
                preempt(&node, &planner, &live, now, rules).await;
            }
            continue;
        };
        let n = plan.assignments.len();
        let proposed = Instant::now();
        let deadline = proposed + node.config.request_timeout;
        match node.write(Command::Assign { now_ms: now, assignments: plan.assignments }, deadline).await {
            Ok(Response::Assigned { results }) => {
                let rejected: Vec<String> = results
                    .iter()
                    .filter_map(|r| match &r.outcome {
                        AssignOutcome::Rejected(rej) => Some(format!("{}->{}: {rej}", r.task_id, r.worker_id)),
                        AssignOutcome::Assigned { .. } => None,
                    })
                    .collect();
                node.telemetry.dispatch.round(started.elapsed(), n - rejected.len());
                tracing::debug!(
                    assigned = n - rejected.len(),
                    rejected = rejected.len(),
                    commit_us = proposed.elapsed().as_micros() as u64,
                    "dispatch round committed"
                );
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

/// One preemption check: if a waiting task fits nowhere but would fit on one worker once some
/// lower-priority attempts stopped, commits `Command::Preempt` for them (see
/// `scheduler::preempt`). The victims' workers learn it from their next heartbeat.
async fn preempt(node: &Node, planner: &Planner, live: &BTreeSet<String>, now: u64, rules: PreemptRules) {
    let capable = node.leader.leases.knows_preempted();
    let chosen = node.view.read(|a| planner.preemption(&a.state, live, &capable, now, &rules));
    let Some(p) = chosen else { return };
    let cmd = Command::Preempt { now_ms: now, for_task: p.for_task, victims: p.victims.clone(), rules };
    let deadline = Instant::now() + node.config.request_timeout;
    match node.write(cmd, deadline).await {
        Ok(Response::Preempted { marked, skipped }) => {
            for v in &marked {
                tracing::info!(
                    victim = %v,
                    for_task = p.for_task,
                    worker = %p.worker,
                    "preempting: task {} waits and fits no worker; stopping lower-priority attempt {v} on {}",
                    p.for_task,
                    p.worker
                );
            }
            for (v, why) in &skipped {
                tracing::info!(victim = %v, for_task = p.for_task, %why, "preemption victim skipped by apply");
            }
        }
        Ok(Response::Rejected(r)) => tracing::debug!(for_task = p.for_task, %r, "preemption refused by apply"),
        Ok(other) => tracing::warn!(?other, "unexpected answer to Preempt"),
        Err(e) => tracing::warn!(error = %e, "preemption not committed; the next round retries"),
    }
}

/// One migration check: if a worker stayed overloaded and another is under the low-water mark,
/// commits `Command::Migrate` for one of its tasks (see `scheduler::migrate`). The worker learns
/// it from its next heartbeat; the task is then placed on the target by a later round.
async fn migrate(node: &Node, live: &BTreeSet<String>, now: u64, options: &MigrationOptions) {
    let capable = node.leader.leases.knows_migrated();
    let streaks = node.leader.streaks.lock().expect("streaks lock").clone();
    let chosen = node.view.read(|a| choose_migration(&a.state, live, &capable, &streaks, now, options));
    let Some(m) = chosen else { return };
    let cmd = Command::Migrate {
        now_ms: now,
        attempt: m.attempt,
        from: m.from.clone(),
        to: m.to.clone(),
        why: m.why.clone(),
        rules: options.rules,
    };
    let deadline = Instant::now() + node.config.request_timeout;
    match node.write(cmd, deadline).await {
        Ok(Response::Migrating { attempt, .. }) => {
            node.leader.streaks.lock().expect("streaks lock").migrated(&m.from, &m.to, now);
            tracing::info!(
                attempt = %attempt,
                from = %m.from,
                to = %m.to,
                why = %m.why,
                "migrating: worker {} stayed overloaded ({}); stopping attempt {attempt} to resume it on {}",
                m.from,
                m.why,
                m.to
            );
        }
        Ok(Response::Rejected(r)) => {
            tracing::info!(attempt = %m.attempt, from = %m.from, to = %m.to, %r, "migration refused by apply");
        }
        Ok(other) => tracing::warn!(?other, "unexpected answer to Migrate"),
        Err(e) => tracing::warn!(error = %e, "migration not committed; a later check retries"),
    }
}
