//! The attempt path: inbox → start → executor → checkpoints → completion, keyed by the
//! attempt's id (task id and fencing token).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::agent::Running;
use super::agent::StopReason;
use super::agent::Worker;
use super::agent::halt_with_file;
use super::executor;
use super::executor::ExecRequest;
use super::executor::LiveOutput;
use super::reporter::Verdict;
use crate::client::ClientError;
use crate::proto::ErrorCode;
use crate::proto::workers::Assignment;
use crate::proto::workers::AttemptEvent;
use crate::proto::workers::AttemptId;
use crate::proto::workers::AttemptReport;
use crate::proto::workers::ReportResult;
use crate::proto::workers::ResultData;
use crate::scheduler::AttemptOutcome;

/// How long one inbox long-poll waits for an assignment.
const INBOX_WAIT: Duration = Duration::from_secs(5);

/// An assignment taken into `running`, not yet spawned.
struct Admitted {
    a: Assignment,
    stop: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

/// How an attempt ended, as reported.
struct Ending {
    outcome: AttemptOutcome,
    exit_code: Option<i32>,
    output_tail: String,
    error: Option<String>,
    /// What the task wrote to `$TASKRAFT_RESULT_OUT`.
    result: Option<Vec<u8>>,
}

impl Ending {
    /// An attempt that failed before anything ran.
    fn failed(error: String) -> Self {
        Ending {
            outcome: AttemptOutcome::Failed,
            exit_code: None,
            output_tail: String::new(),
            error: Some(error),
            result: None,
        }
    }
}

impl Worker {
    pub(super) async fn inbox_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let slots = self.config.slots as usize;
            let free = slots - self.running.lock().expect("running lock").len().min(slots);
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake_inbox.notified() => continue,
                }
            }
            // Only assignments newer than the newest this worker has seen.
            let after = self.seen_token.load(Ordering::Relaxed);
            let polled = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.client.inbox(&self.config.id, after, INBOX_WAIT) => r,
            };
            match polled {
                Ok(inbox) => {
                    // Every attempt into `running` first, then `seen_token`: a heartbeat must
                    // never report a token as seen while omitting one of its attempts (the
                    // leader would end it as abandoned). One log entry assigns many attempts
                    // under the same token, so the token is raised only once all are in.
                    let newest = inbox.assignments.iter().map(|a| a.token).max();
                    self.start_all(inbox.assignments, &shutdown).await;
                    if let Some(newest) = newest {
                        self.seen_token.fetch_max(newest, Ordering::Release);
                    }
                }
                Err(ClientError::Api { code: ErrorCode::NotRegistered | ErrorCode::WorkerRemoved, .. }) => {
                    // The lease loop re-registers (or stops); wait for it.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.lease().heartbeat()) => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inbox poll failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
    }

    /// Starts the assignments of one inbox answer (those not running here already). Their
    /// start reports are queued first, all at once, before any process starts: they normally
    /// leave in one request, so each reaches the leader a single round trip after the answer,
    /// rather than behind the requests already in flight (an attempt's start time is when its
    /// report reaches the leader). Queuing waits for room if the reporter's queue is full; a
    /// shutdown meanwhile ends the wait, and the attempts then run nothing and go straight to
    /// their stop, with no start to confirm. An attempt stopped during the wait (cancel, lease
    /// lost, preemption) still has its start reported, and its executor runs nothing.
    async fn start_all(self: &Arc<Self>, assignments: Vec<Assignment>, shutdown: &CancellationToken) {
        let admitted: Vec<Admitted> = assignments.into_iter().filter_map(|a| self.admit(a, shutdown)).collect();
        // A task cancelled before its attempt started sends no start report (see `attempt`).
        let starts: Vec<AttemptReport> = admitted
            .iter()
            .filter(|x| !x.a.task.cancel_requested)
            .map(|x| AttemptReport { attempt: x.a.id(), event: AttemptEvent::Started })
            .collect();
        let queued = tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            queued = self.reporter.enqueue_many(starts) => Some(queued),
        };
        let mut verdicts = match queued {
            Some(Ok(verdicts)) => verdicts.into_iter().map(Ok).collect(),
            Some(Err(e)) => Vec::from_iter(std::iter::repeat_n(e, admitted.len()).map(Err)),
            None => Vec::new(),
        }
        .into_iter();
        for x in admitted {
            let queued = if x.a.task.cancel_requested { None } else { verdicts.next() };
            self.clone().spawn(x, queued);
        }
    }

    /// Takes an assignment into `running` unless it already runs here.
    fn admit(&self, a: Assignment, shutdown: &CancellationToken) -> Option<Admitted> {
        let id = a.id();
        let stop = shutdown.child_token();
        let reason = Arc::new(Mutex::new(None));
        {
            let mut running = self.running.lock().expect("running lock");
            if running.contains_key(&id) {
                return None;
            }
            // A newer attempt of a task supersedes any older one still running here.
            for (old, r) in running.iter() {
                if old.task_id == id.task_id && old.token < id.token {
                    tracing::warn!(attempt = %old, newer = %id, "superseded by a newer attempt; stopping it");
                    r.stop(StopReason::Stale);
                }
            }
            // No local slot check: the leader only assigns within the slots it has seen free,
            // and an attempt that just finished here may still be in `running` while its report
            // is in flight. Refusing would strand the assignment.
            let reason_file = executor::needs_attempt_dir(&a.task.spec)
                .then(|| self.attempt_dir(id, a.attempt).join(executor::STOP_REASON_FILE));
            running.insert(id, Running { stop: stop.clone(), reason: reason.clone(), reason_file });
        }
        Some(Admitted { a, stop, reason })
    }

    /// Runs an admitted attempt in its own task; `queued` is its start report's first try
    /// (`None`: none was queued).
    fn spawn(self: Arc<Self>, x: Admitted, queued: Option<Result<Verdict, String>>) {
        let Admitted { a, stop, reason } = x;
        let id = a.id();
        let span = tracing::info_span!("attempt", task_id = id.task_id, attempt = a.attempt, token = id.token);
        let tracker = self.attempts.clone();
        tracker.spawn(
            async move {
                self.attempt(a, stop, reason, queued).await;
                self.running.lock().expect("running lock").remove(&id);
                self.wake_inbox.notify_one();
            }
            .instrument(span),
        );
    }

    async fn attempt(
        &self,
        a: Assignment,
        stop: CancellationToken,
        reason: Arc<Mutex<Option<StopReason>>>,
        queued: Option<Result<Verdict, String>>,
    ) {
        let id = a.id();
        if a.task.cancel_requested {
            let error = Some("cancelled before it started".to_string());
            let ending = Ending {
                outcome: AttemptOutcome::Cancelled,
                exit_code: None,
                output_tail: String::new(),
                error,
                result: None,
            };
            self.complete(id, ending).await;
            return;
        }
        // The assignment is committed, so the attempt is this worker's until the cluster says
        // otherwise: start at once and report the start meanwhile. The report was queued
        // before the process starts (`start_all`), so it reaches the leader no later than the
        // completion's batch. Its verdict can still stop the attempt: cancelled meanwhile, or
        // fenced off. With none queued (shutdown), the attempt runs nothing.
        let mut confirmed = queued.is_none();
        let confirm = self.confirm_started(id, queued.unwrap_or_else(|| Err("stopped before it started".into())));
        tokio::pin!(confirm);
        // The leader refused to send inputs this large: running the task without them would
        // pass for a success it is not.
        if let Some(error) = a.inputs_error {
            tracing::warn!(%error, "attempt failed: its inputs were not delivered");
            self.complete(id, Ending::failed(error)).await;
            return;
        }
        let dir = executor::needs_attempt_dir(&a.task.spec).then(|| self.attempt_dir(id, a.attempt));
        if let Some(dir) = &dir
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            self.complete(id, Ending::failed(format!("cannot create {}: {e}", dir.display()))).await;
            return;
        }
        // Every stop from here on tells the task why, in `$TASKRAFT_STOP_REASON_FILE`.
        let reason_file = dir.as_ref().map(|d| d.join(executor::STOP_REASON_FILE));
        let reason_file = reason_file.as_deref();
        let live = a.task.spec.executor.runs_a_process().then(|| LiveOutput::new(self.config.limits.output_tail_bytes));
        if let Some(live) = &live {
            self.output.register(id, live.clone());
        }
        let resumed = a.task.checkpoint.as_ref().map(|c| c.data.len());
        tracing::info!(resumed_from_checkpoint_bytes = resumed, "attempt starting");
        let req = ExecRequest {
            task_id: id.task_id,
            attempt: a.attempt,
            token: id.token,
            timeout: a.task.spec.timeout_ms.map(Duration::from_millis),
            checkpoint_in: a.task.checkpoint.map(|c| c.data),
            inputs: a.inputs,
            spec: a.task.spec,
            attempt_dir: dir.clone().unwrap_or_default(),
            limits: self.config.limits,
            live: live.clone(),
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1);
        let exec = executor::run(req, stop.clone(), tx);
        tokio::pin!(exec);
        let result = loop {
            tokio::select! {
                result = &mut exec => break result,
                verdict = &mut confirm, if !confirmed => {
                    confirmed = true;
                    if let Some(why) = verdict {
                        halt_with_file(&stop, &reason, why, reason_file);
                    }
                }
                Some(data) = rx.recv() => self.ship_checkpoint(id, data, &stop, &reason, reason_file).await,
            }
        };
        // A checkpoint written just before exit is delivered after the process ends.
        while let Ok(data) = rx.try_recv() {
            self.ship_checkpoint(id, data, &stop, &reason, reason_file).await;
        }
        if let Some(dir) = &dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        // The last output reaches the leader before the completion does.
        if live.is_some() {
            self.output.finish(id).await;
        }
        // Every stop names its reason before it fires, except the worker's own shutdown: the
        // attempt's token is a child of it, and `stop_all` names it only later. Without this,
        // an attempt stopped in that gap would report `cancelled`, which ends its task for good
        // instead of resuming it elsewhere.
        let stopped_by = reason.lock().expect("reason lock").or(stop.is_cancelled().then_some(StopReason::Shutdown));
        tracing::info!(outcome = %result.outcome.as_str(), exit_code = result.exit_code, ?stopped_by, "attempt ended");
        let ending = Ending {
            outcome: result.outcome,
            exit_code: result.exit_code,
            output_tail: result.output_tail,
            error: result.error,
            result: result.result,
        };
        match stopped_by {
            None | Some(StopReason::Cancelled) => self.complete(id, ending).await,
            // An exit that raced the stop order is what really happened.
            Some(StopReason::Preempted | StopReason::Migrated) if ending.outcome == AttemptOutcome::Succeeded => {
                self.complete(id, ending).await
            }
            // Moved off this overloaded worker (the cluster writes where and why on the
            // attempt); the task resumes from its last checkpoint on the target.
            Some(StopReason::Migrated) => {
                let ending = Ending { outcome: AttemptOutcome::Migrated, error: None, result: None, ..ending };
                self.complete(id, ending).await
            }
            // Stopped for a task of higher priority (the cluster writes which one on the
            // attempt); the task resumes from its last checkpoint. A result of a process we
            // stopped is not an answer.
            Some(StopReason::Preempted) => {
                let ending = Ending { outcome: AttemptOutcome::Preempted, error: None, result: None, ..ending };
                self.complete(id, ending).await
            }
            // Fenced off: a newer attempt owns the task; nothing to report.
            Some(StopReason::Stale) => {}
            // We killed it ourselves: tell the cluster the attempt is lost so the task follows
            // its failover policy now (if the leader already declared it lost, this is stale).
            Some(why @ (StopReason::LeaseLost | StopReason::Shutdown)) => {
                let error =
                    Some(format!("attempt stopped by its worker ({why:?}); it resumes elsewhere per failover policy"));
                // A result of a process we killed is not an answer.
                self.complete(id, Ending { outcome: AttemptOutcome::Lost, error, result: None, ..ending }).await
            }
        }
    }

    /// The directory of an attempt that runs a process (`$TASKRAFT_CHECKPOINT_OUT`, the stop
    /// reason, the default working directory).
    fn attempt_dir(&self, id: AttemptId, attempt: u32) -> std::path::PathBuf {
        self.config.work_dir.join(format!("task-{}-attempt-{}-{}", id.task_id, attempt, id.token))
    }

    /// Reports that an attempt started and returns why it must stop, if the cluster's verdict
    /// says so: cancelled meanwhile, or refused (fenced off, ended). Transient failures are
    /// retried for one lease; after that the attempt runs on unconfirmed: heartbeats keep
    /// listing it and its completion is still reported (the attempt then has no start time).
    /// `queued` is the first try, already queued.
    async fn confirm_started<V>(&self, attempt: AttemptId, queued: Result<V, String>) -> Option<StopReason>
    where
        V: Future<Output = Result<ReportResult, String>>,
    {
        let report = AttemptReport { attempt, event: AttemptEvent::Started };
        let deadline = Instant::now() + self.lease().ttl();
        let mut first = Some(queued);
        loop {
            let verdict = match first.take() {
                Some(queued) => verdict_of(queued).await,
                None => verdict_of(self.reporter.enqueue(report.clone()).await).await,
            };
            match verdict {
                Ok(ReportResult { code: None, status, .. }) => {
                    return status.is_some_and(|s| s.cancel_requested).then_some(StopReason::Cancelled);
                }
                // An earlier try was applied after all.
                Ok(ReportResult { code: Some(ErrorCode::Duplicate), .. }) => return None,
                Ok(ReportResult { code: Some(code), message, .. }) => {
                    tracing::warn!(%code, ?message, "the cluster refused the attempt; stopping it");
                    return Some(StopReason::Stale);
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "could not report the attempt started; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not report the attempt started; running it unconfirmed");
                    return None;
                }
            }
        }
    }

    async fn ship_checkpoint(
        &self,
        attempt: AttemptId,
        data: Vec<u8>,
        stop: &CancellationToken,
        reason: &Mutex<Option<StopReason>>,
        reason_file: Option<&std::path::Path>,
    ) {
        match self.client.checkpoint(attempt, data).await {
            Ok(status) if status.cancel_requested => halt_with_file(stop, reason, StopReason::Cancelled, reason_file),
            Ok(_) => {}
            Err(ClientError::Api { code: ErrorCode::StaleToken, message, .. }) => {
                tracing::warn!(%message, "checkpoint refused: this attempt was fenced off; killing it");
                halt_with_file(stop, reason, StopReason::Stale, reason_file);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint not saved"),
        }
    }

    /// Reports the outcome, retrying until the cluster gives a definite answer.
    async fn complete(&self, attempt: AttemptId, ending: Ending) {
        let Ending { outcome, exit_code, output_tail, error, result } = ending;
        let result = result.map(ResultData);
        let event = AttemptEvent::Ended { outcome, exit_code, output_tail, error, result };
        let report = AttemptReport { attempt, event };
        let deadline = Instant::now() + self.lease().ttl() * 10;
        loop {
            match self.reporter.send(report.clone()).await {
                Ok(ReportResult { code: None, status, .. }) => {
                    tracing::debug!(state = ?status.map(|s| s.state), "completion recorded");
                    return;
                }
                Ok(ReportResult { code: Some(code), message, .. }) => {
                    // Definite: duplicate (already recorded) or stale (fenced off).
                    tracing::warn!(%code, ?message, "completion not accepted");
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "could not report completion; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "giving up reporting completion");
                    return;
                }
            }
        }
    }
}

/// The verdict of a queued report (or why it could not be queued).
async fn verdict_of<V>(queued: Result<V, String>) -> Result<ReportResult, String>
where
    V: Future<Output = Result<ReportResult, String>>,
{
    queued?.await
}
