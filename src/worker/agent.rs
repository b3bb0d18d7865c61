//! The worker's shared state and its top-level loop: register, then run the lease loop
//! ([`super::lease`]) beside the attempt path ([`super::attempt`]) until shutdown.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::executor::ExecLimits;
use crate::client::Client;
use crate::client::ClientOptions;
use crate::proto::workers::AttemptId;
use crate::proto::workers::Lease;
use crate::proto::workers::WorkerRegistration;

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
    /// PEM CA of a TLS cluster: replicas are verified against it (addresses default to https).
    pub ca_file: Option<PathBuf>,
    /// Executor bounds.
    pub limits: ExecLimits,
    /// API token (role `worker`, bound to `id`) sent with every request; none when the
    /// cluster runs without auth.
    pub token: Option<String>,
    /// Reports the load written in this file ("CPU MEM" fractions) instead of sampling /proc
    /// (`worker --load-file`, for tests and operations).
    pub load_file: Option<PathBuf>,
}

impl WorkerConfig {
    /// How the worker's clients connect (source IP, CA).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions { local_ip: self.local_ip, ca_file: self.ca_file.clone(), token: self.token.clone() }
    }

    /// What the worker tells the cluster about itself.
    pub fn registration(&self) -> WorkerRegistration {
        WorkerRegistration {
            id: self.id.clone(),
            host: hostname(),
            pid: Some(std::process::id()),
            api_addr: None,
            slots: self.slots,
            cpu_millis: self.cpu_millis,
            memory_mib: self.memory_mib,
            labels: self.labels.clone(),
        }
    }
}

/// This machine's host name (empty if unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Why a running attempt is being stopped. Only an operator's cancel is reported back as the
/// attempt's outcome; the others leave the outcome to the cluster (the attempt was fenced off,
/// or the leader will declare it lost and reassign it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopReason {
    Cancelled,
    Stale,
    LeaseLost,
    Shutdown,
    /// A task of higher priority needs the room: reported `preempted`.
    Preempted,
    /// The task moves off this overloaded worker: reported `migrated`.
    Migrated,
}

impl StopReason {
    /// What `$TASKRAFT_STOP_REASON_FILE` says before the task gets TERM.
    fn as_str(self) -> &'static str {
        match self {
            StopReason::Cancelled => "cancelled",
            StopReason::Stale => "stale",
            StopReason::LeaseLost => "lease_lost",
            StopReason::Shutdown => "shutdown",
            StopReason::Preempted => "preempted",
            StopReason::Migrated => "migrated",
        }
    }
}

/// One attempt this worker runs.
pub(super) struct Running {
    pub(super) stop: CancellationToken,
    pub(super) reason: Arc<Mutex<Option<StopReason>>>,
    /// `$TASKRAFT_STOP_REASON_FILE` of a process attempt.
    pub(super) reason_file: Option<std::path::PathBuf>,
}

impl Running {
    /// Stops it for `reason` (written to its stop-reason file first).
    pub(super) fn stop(&self, reason: StopReason) {
        halt_with_file(&self.stop, &self.reason, reason, self.reason_file.as_deref());
    }
}

/// Stops an attempt, keeping the first reason given, and writes that reason to `file` (the
/// task's `$TASKRAFT_STOP_REASON_FILE`) *before* the stop, so the task reads it when TERM
/// arrives. Atomically (write and rename): a reader sees the whole word or no file.
pub(super) fn halt_with_file(
    stop: &CancellationToken,
    reason: &Mutex<Option<StopReason>>,
    why: StopReason,
    file: Option<&std::path::Path>,
) {
    let first = *reason.lock().expect("reason lock").get_or_insert(why);
    if let Some(file) = file
        && !stop.is_cancelled()
        && let Some(dir) = file.parent()
        && dir.is_dir()
    {
        let tmp = file.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, first.as_str()).and_then(|()| std::fs::rename(&tmp, file)) {
            tracing::warn!(error = %e, file = %file.display(), "cannot write the stop reason");
        }
    }
    stop.cancel();
}

/// How long shutdown waits for stopped attempts to report before the process exits.
const SHUTDOWN_REPORT_GRACE: Duration = Duration::from_secs(10);

/// The worker's state, shared by its loops.
pub(super) struct Worker {
    pub(super) config: WorkerConfig,
    pub(super) reporter: super::reporter::Reporter,
    /// Ships running attempts' output to the leader.
    pub(super) output: Arc<super::output::Shipper>,
    pub(super) attempts: tokio_util::task::TaskTracker,
    pub(super) client: Client,
    /// Attempts running here.
    pub(super) running: Mutex<HashMap<AttemptId, Running>>,
    pub(super) wake_inbox: tokio::sync::Notify,
    /// Highest fencing token received from the inbox (tokens are log indices: they grow).
    pub(super) seen_token: AtomicU64,
    /// The lease the cluster last told us (TTL, heartbeat interval), in ms.
    ttl_ms: AtomicU64,
    heartbeat_ms: AtomicU64,
    /// The cluster takes the machine's load in heartbeats (see `Lease::accepts_load`).
    accepts_load: AtomicBool,
    /// The cluster takes `knows_preempted` in heartbeats (see `Lease::accepts_preempted`).
    accepts_preempted: AtomicBool,
    /// The cluster takes `knows_migrated` in heartbeats (see `Lease::accepts_migrated`).
    accepts_migrated: AtomicBool,
}

impl Worker {
    /// The lease the cluster holds this worker to, as last told.
    pub(super) fn lease(&self) -> Lease {
        Lease {
            ttl_ms: self.ttl_ms.load(Ordering::Relaxed),
            heartbeat_ms: self.heartbeat_ms.load(Ordering::Relaxed),
            accepts_load: self.accepts_load.load(Ordering::Relaxed),
            accepts_preempted: self.accepts_preempted.load(Ordering::Relaxed),
            accepts_migrated: self.accepts_migrated.load(Ordering::Relaxed),
        }
    }

    /// Records the lease from a registration or heartbeat answer.
    pub(super) fn learn_lease(&self, lease: Lease) {
        let old = self.lease();
        if old != lease {
            tracing::info!(ttl_ms = lease.ttl_ms, heartbeat_ms = lease.heartbeat_ms, "lease set by the cluster");
        }
        self.ttl_ms.store(lease.ttl_ms.max(1), Ordering::Relaxed);
        self.heartbeat_ms.store(lease.heartbeat_ms.max(1), Ordering::Relaxed);
        self.accepts_load.store(lease.accepts_load, Ordering::Relaxed);
        self.accepts_preempted.store(lease.accepts_preempted, Ordering::Relaxed);
        self.accepts_migrated.store(lease.accepts_migrated, Ordering::Relaxed);
    }

    /// The attempts running here now.
    pub(super) fn running_list(&self) -> Vec<AttemptId> {
        self.running.lock().expect("running lock").keys().copied().collect()
    }

    /// Stops one attempt if it still runs.
    pub(super) fn stop(&self, attempt: AttemptId, reason: StopReason) {
        let running = self.running.lock().expect("running lock");
        if let Some(r) = running.get(&attempt) {
            tracing::warn!(%attempt, ?reason, "stopping attempt");
            r.stop(reason);
        }
    }

    /// Stops every attempt; returns how many.
    pub(super) fn stop_all(&self, reason: StopReason) -> usize {
        let running = self.running.lock().expect("running lock");
        for (attempt, r) in running.iter() {
            tracing::warn!(%attempt, ?reason, "stopping attempt");
            r.stop(reason);
        }
        running.len()
    }
}

/// Runs the worker until `shutdown`.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.work_dir)?;
    // The helper that kills this worker's tasks if it dies (`executor::reaper`): started now, off
    // the async threads, rather than by the first task.
    let reaper = tokio::task::spawn_blocking(super::executor::reaper::start).await.unwrap_or(false);
    tracing::info!(reaper, "tasks die with this worker ({})", if reaper { "reaper" } else { "parent-death signal" });
    let options = config.client_options();
    let client = Client::with_options(config.cluster.clone(), &options)?.with_timeout(Duration::from_secs(10));
    // Reports are short writes: a replica that has not answered one in 2 s is paused or cut off,
    // so move on (the retry is idempotent) instead of waiting out the whole deadline there.
    let report_client = Client::with_options(config.cluster.clone(), &options)?
        .with_timeout(Duration::from_secs(10))
        .with_attempt_timeout(Duration::from_secs(2));
    let reporter = super::reporter::Reporter::start(Arc::new(report_client), &config.id);
    // Live output is best effort: a slow replica is skipped quickly, the next tick retries.
    let output_client = Client::with_options(config.cluster.clone(), &options)?
        .with_timeout(Duration::from_secs(2))
        .with_attempt_timeout(Duration::from_secs(1));
    let output = Arc::new(super::output::Shipper::new(&config.id, output_client));
    let worker = Arc::new(Worker {
        config,
        reporter,
        output: output.clone(),
        attempts: tokio_util::task::TaskTracker::new(),
        client,
        running: Mutex::new(HashMap::new()),
        wake_inbox: Default::default(),
        seen_token: Default::default(),
        ttl_ms: AtomicU64::new(0),
        heartbeat_ms: AtomicU64::new(0),
        accepts_load: AtomicBool::new(false),
        accepts_preempted: AtomicBool::new(false),
        accepts_migrated: AtomicBool::new(false),
    });
    if !worker.register(&shutdown).await {
        return Ok(());
    }
    let heartbeat = tokio::spawn(worker.clone().heartbeat_loop(shutdown.clone()));
    tokio::spawn(output.run(shutdown.clone()));
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
