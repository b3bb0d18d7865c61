//! The worker's loops: register, heartbeat, inbox, attempts.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::executor;
use super::executor::ExecLimits;
use super::executor::ExecRequest;
use crate::api::workers::Assignment;
use crate::api::workers::HeartbeatAnswer;
use crate::api::workers::Inbox;
use crate::api::workers::Report;
use crate::api::workers::ReportKind;
use crate::api::workers::ReportResult;
use crate::api::workers::RunningAttempt;
use crate::client::Client;
use crate::client::ClientError;
use crate::client::Payload;
use crate::scheduler::AttemptOutcome;
use crate::scheduler::TaskStatus;
use crate::scheduler::WorkerInfo;

/// Settings of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// API addresses of cluster replicas.
    pub cluster: Vec<String>,
    /// Stable worker id.
    pub id: String,
    /// Concurrent attempts.
    pub slots: u32,
    /// CPU offered, millicores.
    pub cpu_millis: u32,
    /// Memory offered, MiB.
    pub memory_mib: u32,
    /// Labels matched against task constraints and preferences.
    pub labels: BTreeMap<String, String>,
    /// Where per-attempt directories are created.
    pub work_dir: PathBuf,
    /// Source IP of outgoing connections.
    pub local_ip: Option<std::net::IpAddr>,
    /// Interval between heartbeats.
    pub heartbeat_interval: Duration,
    /// Lease length: without a renewal for this long, the worker stops its processes.
    pub worker_ttl: Duration,
    /// Executor bounds.
    pub limits: ExecLimits,
}

/// Why a running attempt is being stopped. Only an operator's cancel is reported back as the
/// attempt's outcome; the others leave the outcome to the cluster (the attempt was fenced off,
/// or the leader will declare it lost and reassign it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancelled,
    Stale,
    LeaseLost,
    Shutdown,
}

/// One attempt this worker runs.
struct Running {
    stop: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Running {
    fn stop(&self, reason: StopReason) {
        halt(&self.stop, &self.reason, reason);
    }
}

/// Stops an attempt, keeping the first reason given.
fn halt(stop: &CancellationToken, reason: &Mutex<Option<StopReason>>, why: StopReason) {
    reason.lock().expect("reason lock").get_or_insert(why);
    stop.cancel();
}

/// How long shutdown waits for stopped attempts to report before the process exits.
const SHUTDOWN_REPORT_GRACE: Duration = Duration::from_secs(10);

struct Worker {
    config: WorkerConfig,
    reporter: super::reporter::Reporter,
    attempts: tokio_util::task::TaskTracker,
    client: Client,
    /// Attempts running here, by (task id, fencing token).
    running: Mutex<HashMap<(u64, u64), Running>>,
    wake_inbox: tokio::sync::Notify,
    /// Highest fencing token received from the inbox (tokens are log indices: they grow).
    seen_token: std::sync::atomic::AtomicU64,
}

/// Runs the worker until `shutdown`.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.work_dir)?;
    let client = Client::with_local_ip(config.cluster.clone(), config.local_ip)?.with_timeout(Duration::from_secs(10));
    // Reports are short writes: a replica that has not answered one in 2 s is paused or cut off,
    // so move on (the retry is idempotent) instead of waiting out the whole deadline there.
    let report_client = Client::with_local_ip(config.cluster.clone(), config.local_ip)?
        .with_timeout(Duration::from_secs(10))
        .with_attempt_timeout(Duration::from_secs(2));
    let reporter = super::reporter::Reporter::start(Arc::new(report_client), &config.id);
    let worker = Arc::new(Worker {
        config,
        reporter,
        attempts: tokio_util::task::TaskTracker::new(),
        client,
        running: Mutex::new(HashMap::new()),
        wake_inbox: Default::default(),
        seen_token: Default::default(),
    });
    worker.register(&shutdown).await;
    let heartbeat = tokio::spawn(worker.clone().heartbeat_loop(shutdown.clone()));
    worker.clone().inbox_loop(shutdown.clone()).await;
    let _ = heartbeat.await;
    let n = worker.stop_all(StopReason::Shutdown);
    if n > 0 {
        tracing::warn!(
            attempts = n,
            "stopped running attempts at shutdown; reporting them lost so they resume elsewhere"
        );
    }
    worker.attempts.close();
    if tokio::time::timeout(SHUTDOWN_REPORT_GRACE, worker.attempts.wait()).await.is_err() {
        tracing::warn!("some attempts did not report in time; the leader will reassign them when the lease expires");
    }
    Ok(())
}

impl Worker {
    async fn register(&self, shutdown: &CancellationToken) {
        let c = &self.config;
        let body = json!({
            "id": c.id, "api_addr": format!("{}:0", c.local_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string())),
            "slots": c.slots, "cpu_millis": c.cpu_millis, "memory_mib": c.memory_mib, "labels": c.labels,
        });
        let mut backoff = Duration::from_millis(100);
        loop {
            match self
                .client
                .request::<WorkerInfo>(Method::POST, "/v1/workers", Some(Payload::Json(body.clone())))
                .await
            {
                Ok(info) => {
                    tracing::info!(worker = %info.id, slots = info.slots, "registered with the cluster");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "registration failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// The next inbox path: only assignments newer than the newest this worker has seen.
    fn inbox_path(&self) -> String {
        let after = self.seen_token.load(std::sync::atomic::Ordering::Relaxed);
        format!("/v1/workers/{}/inbox?wait_ms=5000&after={after}", self.config.id)
    }

    fn running_list(&self) -> Vec<RunningAttempt> {
        let running = self.running.lock().expect("running lock");
        running.keys().map(|&(task_id, token)| RunningAttempt { task_id, token }).collect()
    }

    /// Stops one attempt if it is still the one with `token`.
    fn stop(&self, task_id: u64, token: u64, reason: StopReason) {
        let running = self.running.lock().expect("running lock");
        if let Some(r) = running.get(&(task_id, token)) {
            tracing::warn!(task_id, token, ?reason, "stopping attempt");
            r.stop(reason);
        }
    }

    fn stop_all(&self, reason: StopReason) -> usize {
        let running = self.running.lock().expect("running lock");
        for (&(task_id, token), r) in running.iter() {
            tracing::warn!(task_id, token, ?reason, "stopping attempt");
            r.stop(reason);
        }
        running.len()
    }

    async fn heartbeat_loop(self: Arc<Self>, shutdown: CancellationToken) {
        // Self-fence a little before the leader can declare us lost (it waits a full TTL from
        // the last renewal it saw; we count from when we sent it, which is earlier).
        let margin = self.config.heartbeat_interval / 2;
        let fence_after = self.config.worker_ttl.saturating_sub(margin);
        // One heartbeat may not outlast the interval: a hung call must not hide a lost lease.
        // Each replica gets a third of it, so a paused leader (which accepts the connection and
        // never answers) costs one third and the same heartbeat still reaches another replica,
        // which forwards it to the new leader; the new leader's grace is one TTL.
        let budget = self.config.heartbeat_interval.max(Duration::from_millis(200));
        let client = match Client::with_local_ip(self.config.cluster.clone(), self.config.local_ip) {
            Ok(c) => c.with_timeout(budget).with_attempt_timeout(budget / 3),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the heartbeat client");
                shutdown.cancel();
                return;
            }
        };
        let path = format!("/v1/workers/{}/heartbeat", self.config.id);
        let mut last_renewal = Instant::now();
        let mut fenced = false;
        let mut pause = self.config.heartbeat_interval;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            // After a failure, try again soon rather than a whole interval later.
            pause = self.config.heartbeat_interval / 4;
            let sent = Instant::now();
            let seen_token = self.seen_token.load(std::sync::atomic::Ordering::Acquire);
            let body = json!({ "running": self.running_list(), "seen_token": seen_token });
            match client.request::<HeartbeatAnswer>(Method::POST, &path, Some(Payload::Json(body))).await {
                Ok(answer) => {
                    last_renewal = sent;
                    fenced = false;
                    pause = self.config.heartbeat_interval;
                    for order in answer.stop {
                        let reason =
                            if order.reason == "cancelled" { StopReason::Cancelled } else { StopReason::Stale };
                        self.stop(order.task_id, order.token, reason);
                    }
                }
                Err(ClientError::Api { code, .. }) if code == "not_registered" => {
                    tracing::warn!(
                        "the cluster no longer knows this worker (declared lost?); stopping attempts and registering again"
                    );
                    self.stop_all(StopReason::LeaseLost);
                    self.register(&shutdown).await;
                    last_renewal = Instant::now();
                }
                Err(ClientError::Api { code, message, .. }) if code == "worker_removed" => {
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

    async fn inbox_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let free = self.config.slots as usize
                - self.running.lock().expect("running lock").len().min(self.config.slots as usize);
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.wake_inbox.notified() => continue,
                }
            }
            let path = self.inbox_path();
            let polled = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.client.request::<Inbox>(Method::GET, &path, None) => r,
            };
            match polled {
                Ok(inbox) => {
                    for a in inbox.assignments {
                        // Into `running` first, then `seen_token`: a heartbeat must never
                        // report a token as seen while omitting its attempt (the leader would
                        // end it as abandoned).
                        let token = a.token;
                        self.clone().start(a, &shutdown);
                        self.seen_token.fetch_max(token, std::sync::atomic::Ordering::Release);
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

    /// Starts an assignment unless it already runs.
    fn start(self: Arc<Self>, a: Assignment, shutdown: &CancellationToken) {
        let task_id = a.task.id;
        let stop = shutdown.child_token();
        let reason = Arc::new(Mutex::new(None));
        {
            let mut running = self.running.lock().expect("running lock");
            if running.contains_key(&(task_id, a.token)) {
                return;
            }
            // A newer attempt of a task supersedes any older one still running here.
            for (&(t, old), r) in running.iter() {
                if t == task_id && old < a.token {
                    tracing::warn!(task_id, token = old, newer = a.token, "superseded by a newer attempt; stopping it");
                    r.stop(StopReason::Stale);
                }
            }
            // No local slot check: the leader only assigns within the slots it has seen free,
            // and an attempt that just finished here may still be in `running` while its report
            // is in flight. Refusing would strand the assignment.
            running.insert((task_id, a.token), Running { stop: stop.clone(), reason: reason.clone() });
        }
        let token = a.token;
        let span = tracing::info_span!("attempt", task_id, attempt = a.attempt, token);
        let tracker = self.attempts.clone();
        tracker.spawn(
            async move {
                self.attempt(a, stop, reason).await;
                self.running.lock().expect("running lock").remove(&(task_id, token));
                self.wake_inbox.notify_one();
            }
            .instrument(span),
        );
    }

    async fn attempt(&self, a: Assignment, stop: CancellationToken, reason: Arc<Mutex<Option<StopReason>>>) {
        let (task_id, token) = (a.task.id, a.token);
        let base = format!("/v1/tasks/{task_id}/attempts/{token}");
        if a.task.cancel_requested {
            let error = Some("cancelled before it started".to_string());
            self.complete(&base, AttemptOutcome::Cancelled, None, String::new(), error).await;
            return;
        }
        // The assignment is committed, so the attempt is this worker's until the cluster says
        // otherwise: start at once and report the start meanwhile. The report is queued before
        // the process starts, so it reaches the leader no later than the completion's batch
        // (a short task's start and end usually share one request and one log entry). Its
        // verdict can still stop the attempt: cancelled meanwhile, or fenced off.
        let confirm = self.confirm_started(task_id, token);
        tokio::pin!(confirm);
        // One poll queues the report (it cannot be answered yet).
        let mut confirmed = false;
        if let Poll::Ready(verdict) = futures::poll!(&mut confirm) {
            confirmed = true;
            if let Some(why) = verdict {
                halt(&stop, &reason, why);
            }
        }
        let dir = executor::needs_attempt_dir(&a.task.spec)
            .then(|| self.config.work_dir.join(format!("task-{task_id}-attempt-{}-{token}", a.attempt)));
        if let Some(dir) = &dir
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            let error = Some(format!("cannot create {}: {e}", dir.display()));
            self.complete(&base, AttemptOutcome::Failed, None, String::new(), error).await;
            return;
        }
        let resumed = a.task.checkpoint.as_ref().map(|c| c.data.len());
        tracing::info!(resumed_from_checkpoint_bytes = resumed, "attempt starting");
        let req = ExecRequest {
            task_id,
            attempt: a.attempt,
            token,
            timeout: a.task.spec.timeout_ms.map(Duration::from_millis),
            checkpoint_in: a.task.checkpoint.map(|c| c.data),
            spec: a.task.spec,
            attempt_dir: dir.clone().unwrap_or_default(),
            limits: self.config.limits,
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
                        halt(&stop, &reason, why);
                    }
                }
                Some(data) = rx.recv() => self.ship_checkpoint(&base, data, &stop, &reason).await,
            }
        };
        // A checkpoint written just before exit is delivered after the process ends.
        while let Ok(data) = rx.try_recv() {
            self.ship_checkpoint(&base, data, &stop, &reason).await;
        }
        if let Some(dir) = &dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        let stopped_by = *reason.lock().expect("reason lock");
        tracing::info!(outcome = %result.outcome.as_str(), exit_code = result.exit_code, ?stopped_by, "attempt ended");
        match stopped_by {
            None | Some(StopReason::Cancelled) => {
                self.complete(&base, result.outcome, result.exit_code, result.output_tail, result.error).await
            }
            // Fenced off: a newer attempt owns the task; nothing to report.
            Some(StopReason::Stale) => {}
            // We killed it ourselves: tell the cluster the attempt is lost so the task follows
            // its failover policy now (if the leader already declared it lost, this is stale).
            Some(why @ (StopReason::LeaseLost | StopReason::Shutdown)) => {
                let error =
                    Some(format!("attempt stopped by its worker ({why:?}); it resumes elsewhere per failover policy"));
                self.complete(&base, AttemptOutcome::Lost, result.exit_code, result.output_tail, error).await
            }
        }
    }

    /// Reports that an attempt started and returns why it must stop, if the cluster's verdict
    /// says so: cancelled meanwhile, or refused (fenced off, ended). Transient failures are
    /// retried for one lease; after that the attempt runs on unconfirmed: heartbeats keep
    /// listing it and its completion is still reported (the attempt then has no start time).
    async fn confirm_started(&self, task_id: u64, token: u64) -> Option<StopReason> {
        let report = Report {
            task_id,
            token,
            kind: ReportKind::Started,
            outcome: None,
            exit_code: None,
            output_tail: String::new(),
            error: None,
        };
        let deadline = Instant::now() + self.config.worker_ttl;
        loop {
            let verdict = match self.reporter.enqueue(report.clone()).await {
                Ok(verdict) => verdict.await,
                Err(e) => Err(e),
            };
            match verdict {
                Ok(ReportResult { code: None, status, .. }) => {
                    return status.is_some_and(|s| s.cancel_requested).then_some(StopReason::Cancelled);
                }
                // An earlier try was applied after all.
                Ok(ReportResult { code: Some(code), .. }) if code == "duplicate" => return None,
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
        base: &str,
        data: Vec<u8>,
        stop: &CancellationToken,
        reason: &Mutex<Option<StopReason>>,
    ) {
        let path = format!("{base}/checkpoint");
        match self.client.request::<TaskStatus>(Method::POST, &path, Some(Payload::Bytes(data.into()))).await {
            Ok(status) if status.cancel_requested => halt(stop, reason, StopReason::Cancelled),
            Ok(_) => {}
            Err(ClientError::Api { code, message, .. }) if code == "stale_token" => {
                tracing::warn!(%message, "checkpoint refused: this attempt was fenced off; killing it");
                halt(stop, reason, StopReason::Stale);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint not saved"),
        }
    }

    /// Reports the outcome, retrying until the cluster gives a definite answer.
    async fn complete(
        &self,
        base: &str,
        outcome: AttemptOutcome,
        exit_code: Option<i32>,
        output_tail: String,
        error: Option<String>,
    ) {
        let (task_id, token) = parse_base(base);
        let report = Report {
            task_id,
            token,
            kind: ReportKind::Complete,
            outcome: Some(outcome),
            exit_code,
            output_tail,
            error,
        };
        let deadline = Instant::now() + self.config.worker_ttl * 10;
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

/// `(task_id, token)` of an attempt's report path `/v1/tasks/{id}/attempts/{token}`.
fn parse_base(base: &str) -> (u64, u64) {
    let mut parts = base.trim_start_matches("/v1/tasks/").split("/attempts/");
    let task_id = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let token = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (task_id, token)
}
