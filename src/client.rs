//! Typed HTTP client of the public API, used by the CLI, the benchmark and the tests.
//!
//! It knows several replica addresses and fails over between them:
//! - connection refused / 503 → the next replica (nothing was written);
//! - 504 `outcome_unknown`, or a connection lost after sending → the same write is retried.
//!   That is safe because every write carries a `request_id` (client id + serial) that the
//!   state machine de-duplicates, so a retry never doubles a task;
//! - any other 4xx is final and returned as [`ClientError::Api`].
//!
//! Every call has an overall deadline ([`Client::with_timeout`]); nothing waits forever.
//!
//! With a CA file ([`ClientOptions::ca_file`]) addresses default to `https://` and the
//! replicas' certificates are verified against that CA only; `https://host:port` without a
//! CA file is refused up front rather than failing every handshake.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use crate::proto::ErrorBody;
use crate::proto::ErrorCode;
use crate::proto::LEADER_HEADER;
use crate::proto::MAX_INBOX_WAIT;
use crate::proto::MAX_WAIT;
use crate::proto::REQUEST_ID_HEADER;
use crate::proto::backup::BackupMeta;
use crate::proto::cluster::AddMember;
use crate::proto::cluster::ClusterStatus;
use crate::proto::output::MAX_OUTPUT_WAIT;
use crate::proto::output::OutputAcks;
use crate::proto::output::OutputBatch;
use crate::proto::output::TaskOutput;
use crate::proto::schedules::BackfillRequest;
use crate::proto::schedules::Deleted;
use crate::proto::schedules::InstantInput;
use crate::proto::schedules::PauseRequest;
use crate::proto::schedules::RunPage;
use crate::proto::schedules::RunsStarted;
use crate::proto::schedules::ScheduleList;
use crate::proto::schedules::ScheduleView;
use crate::proto::schedules::TriggerRequest;
use crate::proto::tasks::CancelRequest;
use crate::proto::tasks::TaskView;
use crate::proto::workers::AttemptId;
use crate::proto::workers::Heartbeat;
use crate::proto::workers::HeartbeatAnswer;
use crate::proto::workers::Inbox;
use crate::proto::workers::Registered;
use crate::proto::workers::RemovedWorker;
use crate::proto::workers::ReportResults;
use crate::proto::workers::Reports;
use crate::proto::workers::WorkerList;
use crate::proto::workflows::CancelWorkflowRequest;
use crate::proto::workflows::WorkflowList;
use crate::proto::workflows::WorkflowView;
use crate::scheduler::Stats;
use crate::scheduler::Task;
use crate::scheduler::TaskStatus;
use crate::scheduler::WorkerInfo;
use crate::scheduler::WorkerRegistration;

/// Default overall deadline of one client call, retries included.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an unused pooled connection is kept. Below the time a server keeps an idle
/// connection (the shorter of [`crate::listener::DEFAULT_HEADER_READ_TIMEOUT`] and
/// [`crate::listener::DEFAULT_IDLE_TIMEOUT`]: hyper runs its head timer on idle kept-alive
/// connections), so the client drops a connection before the server closes it and never sends
/// a request into one being closed.
pub const POOL_IDLE: Duration = Duration::from_secs(5);
/// Pause before retrying after every replica answered "unavailable".
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What a client call can end with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered a definite error.
    #[error("{code} (HTTP {status}): {message}")]
    Api { status: u16, code: ErrorCode, message: String },
    /// A write may or may not have happened and the deadline passed before a retry settled it.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// No replica could serve the request before the deadline; nothing was written.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The answer was not what the API promises.
    #[error("bad answer: {0}")]
    Decode(String),
    /// A local file could not be written (e.g. a backup).
    #[error("{0}")]
    Local(String),
}

/// Result alias of the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

pub use crate::proto::tasks::TaskPage;

impl ClientError {
    /// The API's error code, for a definite error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A client of the taskraft API.
pub struct Client {
    addrs: Vec<String>,
    /// Scheme of addresses the cluster names (leader hints, member lists).
    scheme: &'static str,
    http: reqwest::Client,
    preferred: AtomicUsize,
    /// 1 + index of the leader named by the last forwarded answer (0: none).
    leader_hint: AtomicUsize,
    client_id: String,
    serial: AtomicU64,
    timeout: Duration,
    /// Cap on one replica's share of a call (none: it may use the whole deadline).
    attempt_timeout: Option<Duration>,
    /// `Bearer <token>`, marked sensitive so that no debug output shows it.
    authorization: Option<reqwest::header::HeaderValue>,
}

/// A request body.
pub enum Payload {
    /// JSON.
    Json(Value),
    /// Raw bytes (`application/octet-stream`), e.g. a checkpoint.
    Bytes(bytes::Bytes),
}

enum Attempt {
    Done(StatusCode, bytes::Bytes),
    /// Try another replica; nothing was written.
    NextReplica(String),
    /// The write may have happened; retry it (idempotently).
    Unknown(String),
}

/// How a [`Client`] connects.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Source IP of outgoing connections.
    pub local_ip: Option<std::net::IpAddr>,
    /// PEM CA certificate to verify replicas against; its presence makes `https` the default
    /// scheme of addresses given without one.
    pub ca_file: Option<std::path::PathBuf>,
    /// API token sent with every request (`Authorization: Bearer`).
    pub token: Option<String>,
}

/// `addr` as a base URL: an explicit `http://` or `https://` is kept, otherwise `scheme`.
fn base_url(addr: &str, scheme: &str) -> String {
    let a = addr.trim().trim_end_matches('/');
    if a.starts_with("http://") || a.starts_with("https://") { a.to_string() } else { format!("{scheme}://{a}") }
}

impl Client {
    /// A client of the replicas at `addrs` (`host:port`, with or without `http://`).
    pub fn new(addrs: Vec<String>) -> Result<Self> {
        Self::with_options(addrs, &ClientOptions::default())
    }

    /// Like [`Client::new`], with outgoing connections bound to `local_ip`.
    pub fn with_local_ip(addrs: Vec<String>, local_ip: Option<std::net::IpAddr>) -> Result<Self> {
        Self::with_options(addrs, &ClientOptions { local_ip, ..Default::default() })
    }

    /// A client of the replicas at `addrs` (`host:port`, `http://host:port` or
    /// `https://host:port`) connecting as `options` say.
    pub fn with_options(addrs: Vec<String>, options: &ClientOptions) -> Result<Self> {
        let scheme = if options.ca_file.is_some() { "https" } else { "http" };
        let addrs: Vec<String> = addrs.iter().filter(|a| !a.trim().is_empty()).map(|a| base_url(a, scheme)).collect();
        if addrs.is_empty() {
            return Err(ClientError::Unavailable("no replica address given".into()));
        }
        let mut builder = reqwest::Client::builder()
            .local_address(options.local_ip)
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(POOL_IDLE)
            .no_proxy();
        match &options.ca_file {
            Some(ca) => {
                let tls = crate::tls::client_config(ca).map_err(|e| ClientError::Unavailable(e.to_string()))?;
                builder = builder.use_preconfigured_tls(tls);
            }
            None => {
                if let Some(a) = addrs.iter().find(|a| a.starts_with("https://")) {
                    return Err(ClientError::Unavailable(format!(
                        "{a}: https needs the cluster CA (--ca-file or TASKRAFT_CA_FILE)"
                    )));
                }
            }
        }
        let http = builder.build().map_err(|e| ClientError::Unavailable(e.to_string()))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let client_id = format!("c{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff);
        Self {
            addrs,
            scheme,
            http,
            preferred: AtomicUsize::new(0),
            leader_hint: AtomicUsize::new(0),
            client_id,
            serial: AtomicU64::new(0),
            timeout: DEFAULT_CLIENT_TIMEOUT,
            attempt_timeout: None,
            authorization: None,
        }
        .with_token(options.token.as_deref())
    }

    /// Sends `token` (an API token, `trk_…`) with every request; `None` sends none.
    pub fn with_token(mut self, token: Option<&str>) -> Result<Self> {
        self.authorization = match token {
            None => None,
            Some(t) => {
                let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                    .map_err(|_| ClientError::Unavailable("the token has characters a header cannot carry".into()))?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(self)
    }

    /// Sets the overall deadline of each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Caps how long one replica may take before the call moves on to the next. A paused
    /// (SIGSTOPped) replica still accepts connections and then never answers; without a cap it
    /// would eat the whole deadline. Not for long-polls, which legitimately wait longer.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// A fresh request id for one logical write (reused across its retries).
    pub fn next_request_id(&self) -> String {
        format!("{}:{}", self.client_id, self.serial.fetch_add(1, Ordering::Relaxed))
    }

    /// Makes the current leader the first replica tried (saves a forwarding hop).
    pub async fn prefer_leader(&self) -> Result<()> {
        let status = self.cluster_status().await?;
        let addr = status.leader().map(|m| base_url(&m.api_addr, self.scheme));
        if let Some(i) = addr.and_then(|a| self.addrs.iter().position(|x| *x == a)) {
            self.preferred.store(i, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn attempt(
        &self,
        addr: &str,
        method: &Method,
        path: &str,
        body: Option<&Payload>,
        left: Duration,
    ) -> Attempt {
        self.attempt_with(addr, method, path, body, None, left).await
    }

    async fn attempt_with(
        &self,
        addr: &str,
        method: &Method,
        path: &str,
        body: Option<&Payload>,
        request_id: Option<&str>,
        left: Duration,
    ) -> Attempt {
        let mut req = self.http.request(method.clone(), format!("{addr}{path}")).timeout(left);
        if let Some(rid) = request_id {
            req = req.header(REQUEST_ID_HEADER, rid);
        }
        if let Some(auth) = &self.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        match body {
            Some(Payload::Json(v)) => req = req.json(v),
            Some(Payload::Bytes(b)) => req = req.header("content-type", "application/octet-stream").body(b.clone()),
            None => {}
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Attempt::NextReplica(format!("{addr}: {e}")),
            Err(e) if *method == Method::GET => return Attempt::NextReplica(format!("{addr}: {e}")),
            Err(e) => return Attempt::Unknown(format!("{addr}: {e}")),
        };
        let status = resp.status();
        if let Some(leader) = resp.headers().get(LEADER_HEADER).and_then(|v| v.to_str().ok()) {
            let leader = base_url(leader, self.scheme);
            if let Some(i) = self.addrs.iter().position(|a| *a == leader) {
                self.leader_hint.store(i + 1, Ordering::Relaxed);
            }
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if *method == Method::GET => return Attempt::NextReplica(format!("{addr}: {e}")),
            Err(e) => return Attempt::Unknown(format!("{addr}: {e}")),
        };
        match status {
            StatusCode::SERVICE_UNAVAILABLE => Attempt::NextReplica(format!("{addr}: {}", error_text(&body))),
            StatusCode::GATEWAY_TIMEOUT => Attempt::Unknown(format!("{addr}: {}", error_text(&body))),
            _ => Attempt::Done(status, body),
        }
    }

    /// Sends one request with failover and retries until `self.timeout`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<(StatusCode, bytes::Bytes)> {
        self.call_with(method, path, body.map(Payload::Json), None).await
    }

    /// Like [`Client::call`]; writes pass their request id so that retries are de-duplicated.
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Payload>,
        request_id: Option<&str>,
    ) -> Result<(StatusCode, bytes::Bytes)> {
        let deadline = Instant::now() + self.timeout;
        let mut unknown: Option<String> = None;
        let start = self.preferred.load(Ordering::Relaxed);
        let mut round = 0usize;
        loop {
            let mut last = String::new();
            for k in 0..self.addrs.len() {
                let i = (start + round + k) % self.addrs.len();
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let left = self.attempt_timeout.map_or(left, |cap| left.min(cap));
                let outcome = self.attempt_with(&self.addrs[i], &method, path, body.as_ref(), request_id, left).await;
                if !matches!(outcome, Attempt::Done(..)) {
                    // Start the next call elsewhere: a replica that just failed or hung (paused,
                    // cut off) would otherwise be tried first again, every time.
                    let next = (i + 1) % self.addrs.len();
                    let _ = self.preferred.compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
                }
                match outcome {
                    Attempt::Done(status, body) => {
                        // Prefer the leader a forwarded answer named; else the replica that answered.
                        let hint = self.leader_hint.swap(0, Ordering::Relaxed);
                        self.preferred.store(if hint > 0 { hint - 1 } else { i }, Ordering::Relaxed);
                        if status.is_success() {
                            return Ok((status, body));
                        }
                        return Err(api_error(status, &body));
                    }
                    Attempt::NextReplica(why) => last = why,
                    Attempt::Unknown(why) => {
                        last = why.clone();
                        unknown = Some(why);
                    }
                }
            }
            round += 1;
            if Instant::now() + RETRY_PAUSE >= deadline {
                return Err(match unknown {
                    Some(why) => ClientError::OutcomeUnknown(why),
                    None => ClientError::Unavailable(last),
                });
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn call_as<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<Value>) -> Result<T> {
        let (_, bytes) = self.call(method, path, body).await?;
        decode(&bytes)
    }

    /// Any request with failover, decoding the JSON answer as `T`.
    pub async fn request<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<Payload>) -> Result<T> {
        let (_, bytes) = self.call_with(method, path, body, None).await?;
        decode(&bytes)
    }

    /// Submits one task (a JSON object as accepted by `POST /v1/tasks`). Returns the task and
    /// whether it was created (false: its idempotency key was known).
    pub async fn submit(&self, task: Value) -> Result<(Task, bool)> {
        let rid = self.next_request_id();
        let (status, bytes) = self.call_with(Method::POST, "/v1/tasks", Some(Payload::Json(task)), Some(&rid)).await?;
        let task = decode(&bytes)?;
        Ok((task, status == StatusCode::CREATED))
    }

    /// Submits many tasks in one command; returns them in order.
    pub async fn submit_batch(&self, tasks: Vec<Value>) -> Result<Vec<Task>> {
        self.post_batch(tasks).await
    }

    /// [`Client::submit_batch`] for callers that need only the ids, in order: the answer is
    /// checked and walked but no task is built from it (a load generator's answer of 1 000
    /// tasks is half a megabyte of JSON).
    pub async fn submit_batch_ids(&self, tasks: Vec<Value>) -> Result<Vec<u64>> {
        #[derive(serde::Deserialize)]
        struct Id {
            id: u64,
        }
        let ids: Vec<Id> = self.post_batch(tasks).await?;
        Ok(ids.into_iter().map(|t| t.id).collect())
    }

    /// `POST /v1/tasks/batch`, each task of the answer decoded as a `T`.
    async fn post_batch<T: serde::de::DeserializeOwned>(&self, tasks: Vec<Value>) -> Result<Vec<T>> {
        #[derive(serde::Deserialize)]
        struct Batch<T> {
            tasks: Vec<T>,
        }
        let rid = self.next_request_id();
        let body = Value::Object(serde_json::Map::from_iter([("tasks".to_string(), Value::Array(tasks))]));
        let (_, bytes) = self.call_with(Method::POST, "/v1/tasks/batch", Some(Payload::Json(body)), Some(&rid)).await?;
        let batch: Batch<T> = decode(&bytes)?;
        Ok(batch.tasks)
    }

    /// Reads a task (linearizable unless `stale`).
    pub async fn get_task(&self, id: u64, stale: bool) -> Result<Task> {
        let q = if stale { "?consistency=stale" } else { "" };
        self.call_as(Method::GET, &format!("/v1/tasks/{id}{q}"), None).await
    }

    /// Reads a task with why it still waits, if it does (linearizable unless `stale`).
    pub async fn get_task_view(&self, id: u64, stale: bool) -> Result<TaskView> {
        let q = if stale { "?consistency=stale" } else { "" };
        self.call_as(Method::GET, &format!("/v1/tasks/{id}{q}"), None).await
    }

    /// Reads task `id` from the replica at index `replica` only (no failover), for tests that
    /// compare replicas.
    pub async fn get_task_from(&self, replica: usize, id: u64, stale: bool) -> Result<Task> {
        let q = if stale { "?consistency=stale" } else { "" };
        let addr = self.addrs.get(replica).ok_or_else(|| ClientError::Unavailable(format!("no replica #{replica}")))?;
        match self.attempt(addr, &Method::GET, &format!("/v1/tasks/{id}{q}"), None, self.timeout).await {
            Attempt::Done(status, body) if status.is_success() => decode(&body),
            Attempt::Done(status, body) => Err(api_error(status, &body)),
            Attempt::NextReplica(w) | Attempt::Unknown(w) => Err(ClientError::Unavailable(w)),
        }
    }

    /// One page of tasks.
    pub async fn list_tasks(&self, state: Option<&str>, limit: u32, cursor: Option<u64>) -> Result<TaskPage> {
        let mut q = format!("/v1/tasks?limit={limit}");
        if let Some(s) = state {
            q.push_str(&format!("&state={s}"));
        }
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        self.call_as(Method::GET, &q, None).await
    }

    /// Submits a workflow (a JSON object as accepted by `POST /v1/workflows`). Returns it and
    /// whether it was created (false: its idempotency key or request id was known).
    pub async fn submit_workflow(&self, workflow: Value) -> Result<(WorkflowView, bool)> {
        let rid = self.next_request_id();
        let (status, bytes) =
            self.call_with(Method::POST, "/v1/workflows", Some(Payload::Json(workflow)), Some(&rid)).await?;
        Ok((decode(&bytes)?, status == StatusCode::CREATED))
    }

    /// Reads a workflow with every node's tasks and results (linearizable).
    pub async fn get_workflow(&self, id: u64) -> Result<WorkflowView> {
        self.call_as(Method::GET, &format!("/v1/workflows/{id}"), None).await
    }

    /// One page of workflows in id order.
    pub async fn list_workflows(&self, limit: u32, cursor: Option<u64>) -> Result<WorkflowList> {
        let mut q = format!("/v1/workflows?limit={limit}");
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        self.call_as(Method::GET, &q, None).await
    }

    /// Cancels a workflow: waiting nodes are cancelled, live tasks asked to stop.
    pub async fn cancel_workflow(&self, id: u64, reason: Option<&str>) -> Result<WorkflowView> {
        let body = CancelWorkflowRequest { reason: reason.map(String::from) };
        self.call_as(Method::POST, &format!("/v1/workflows/{id}/cancel"), Some(to_json(&body)?)).await
    }

    /// One page of a schedule's runs, in nominal order (`cursor`: a nominal time).
    pub async fn list_schedule_runs(&self, schedule: u64, limit: u32, cursor: Option<u64>) -> Result<TaskPage> {
        let mut q = format!("/v1/tasks?schedule={schedule}&limit={limit}");
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        self.call_as(Method::GET, &q, None).await
    }

    /// Every run of a schedule, in nominal order (follows the cursor).
    pub async fn all_schedule_runs(&self, schedule: u64) -> Result<Vec<Task>> {
        let mut runs = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_schedule_runs(schedule, 1000, cursor).await?;
            runs.extend(page.tasks);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(runs),
            }
        }
    }

    /// One page of a schedule's runs, tasks or workflows, in nominal order (`cursor`: a
    /// nominal time): `GET /v1/schedules/{id}/runs`.
    pub async fn schedule_runs(&self, schedule: u64, limit: u32, cursor: Option<u64>) -> Result<RunPage> {
        let mut q = format!("/v1/schedules/{schedule}/runs?limit={limit}");
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        self.call_as(Method::GET, &q, None).await
    }

    /// Creates a schedule (a JSON object as accepted by `POST /v1/schedules`). Returns it and
    /// whether it was created (false: its idempotency key or request id was known).
    pub async fn create_schedule(&self, schedule: Value) -> Result<(ScheduleView, bool)> {
        let rid = self.next_request_id();
        let (status, bytes) =
            self.call_with(Method::POST, "/v1/schedules", Some(Payload::Json(schedule)), Some(&rid)).await?;
        Ok((decode(&bytes)?, status == StatusCode::CREATED))
    }

    /// Every schedule.
    pub async fn list_schedules(&self) -> Result<ScheduleList> {
        self.call_as(Method::GET, "/v1/schedules", None).await
    }

    /// One schedule.
    pub async fn get_schedule(&self, id: u64) -> Result<ScheduleView> {
        self.call_as(Method::GET, &format!("/v1/schedules/{id}"), None).await
    }

    /// Replaces a schedule's spec (same body as create).
    pub async fn update_schedule(&self, id: u64, schedule: Value) -> Result<ScheduleView> {
        self.call_as(Method::PUT, &format!("/v1/schedules/{id}"), Some(schedule)).await
    }

    /// Pauses a schedule.
    pub async fn pause_schedule(&self, id: u64, note: Option<&str>) -> Result<ScheduleView> {
        let body = PauseRequest { note: note.map(str::to_string) };
        self.call_as(Method::POST, &format!("/v1/schedules/{id}/pause"), Some(to_json(&body)?)).await
    }

    /// Resumes a schedule.
    pub async fn resume_schedule(&self, id: u64) -> Result<ScheduleView> {
        self.call_as(Method::POST, &format!("/v1/schedules/{id}/resume"), None).await
    }

    /// Starts one manual run now.
    pub async fn trigger_schedule(&self, id: u64) -> Result<RunsStarted> {
        let body = TriggerRequest { request_id: Some(self.next_request_id()) };
        self.call_as(Method::POST, &format!("/v1/schedules/{id}/trigger"), Some(to_json(&body)?)).await
    }

    /// Starts runs for every calendar time in `[from, to]` (RFC 3339 or epoch ms).
    pub async fn backfill_schedule(&self, id: u64, from: &str, to: &str) -> Result<RunsStarted> {
        let body = BackfillRequest { from: InstantInput::Text(from.into()), to: InstantInput::Text(to.into()) };
        self.call_as(Method::POST, &format!("/v1/schedules/{id}/backfill"), Some(to_json(&body)?)).await
    }

    /// Deletes a schedule; its live runs are cancelled only with `cancel_runs`.
    pub async fn delete_schedule(&self, id: u64, cancel_runs: bool) -> Result<Deleted> {
        self.call_as(Method::DELETE, &format!("/v1/schedules/{id}?cancel_runs={cancel_runs}"), None).await
    }

    /// Cancels a task.
    pub async fn cancel(&self, id: u64, reason: Option<&str>) -> Result<Task> {
        let body = CancelRequest { reason: reason.map(str::to_string), request_id: Some(self.next_request_id()) };
        self.call_as(Method::POST, &format!("/v1/tasks/{id}/cancel"), Some(to_json(&body)?)).await
    }

    /// Long-polls until the task is terminal or `timeout` passes; returns it as it is then.
    pub async fn wait(&self, id: u64, timeout: Duration) -> Result<Task> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let poll = left.min(MAX_WAIT);
            let saved = Duration::from_millis(poll.as_millis() as u64);
            let task: Task = self
                .call_as(Method::GET, &format!("/v1/tasks/{id}/wait?timeout_ms={}", saved.as_millis()), None)
                .await?;
            if task.is_terminal() || Instant::now() >= deadline {
                return Ok(task);
            }
        }
    }

    /// `GET /v1/stats`.
    pub async fn stats(&self) -> Result<Stats> {
        self.call_as(Method::GET, "/v1/stats", None).await
    }

    /// `GET /v1/cluster` from the first replica that answers.
    pub async fn cluster_status(&self) -> Result<ClusterStatus> {
        self.call_as(Method::GET, "/v1/cluster", None).await
    }

    /// `GET /v1/cluster` from every replica (errors included), in address order, each with
    /// `per_replica` to answer.
    pub async fn cluster_status_all(&self, per_replica: Duration) -> Vec<(String, Result<ClusterStatus>)> {
        let asks = self.addrs.iter().map(|addr| async move {
            let r = match self.attempt(addr, &Method::GET, "/v1/cluster", None, per_replica).await {
                Attempt::Done(s, body) if s.is_success() => decode(&body),
                Attempt::Done(s, body) => Err(api_error(s, &body)),
                Attempt::NextReplica(w) | Attempt::Unknown(w) => Err(ClientError::Unavailable(w)),
            };
            (addr.clone(), r)
        });
        futures::future::join_all(asks).await
    }

    /// `POST /v1/cluster/init` on the first given replica.
    pub async fn init(&self) -> Result<ClusterStatus> {
        self.call_as(Method::POST, "/v1/cluster/init", None).await
    }

    /// Adds a replica (waits until it caught up and became a voter).
    pub async fn add_member(&self, id: u64, api_addr: &str, raft_addr: &str) -> Result<ClusterStatus> {
        let body = AddMember { id, api_addr: api_addr.into(), raft_addr: raft_addr.into() };
        self.call_as(Method::POST, "/v1/cluster/members", Some(to_json(&body)?)).await
    }

    /// Removes a replica for good.
    pub async fn remove_member(&self, id: u64) -> Result<ClusterStatus> {
        self.call_as(Method::DELETE, &format!("/v1/cluster/members/{id}"), None).await
    }

    /// `GET /v1/workers`.
    pub async fn list_workers(&self) -> Result<WorkerList> {
        self.call_as(Method::GET, "/v1/workers", None).await
    }

    /// Drains a worker: no new work; it finishes what it runs.
    pub async fn drain_worker(&self, id: &str) -> Result<WorkerInfo> {
        self.call_as(Method::POST, &format!("/v1/workers/{id}/drain"), None).await
    }

    /// Removes a worker; its attempts end lost and follow their failover policy.
    pub async fn remove_worker(&self, id: &str) -> Result<RemovedWorker> {
        self.call_as(Method::DELETE, &format!("/v1/workers/{id}"), None).await
    }

    // -- API tokens (see `crate::proto::tokens`). ------------------------------------------

    /// `POST /v1/tokens`: a new token; its secret is in the answer only.
    pub async fn create_token(
        &self,
        req: &crate::proto::tokens::CreateToken,
    ) -> Result<crate::proto::tokens::CreatedToken> {
        self.call_as(Method::POST, "/v1/tokens", Some(to_json(req)?)).await
    }

    /// `GET /v1/tokens`: every token, without secrets.
    pub async fn list_tokens(&self) -> Result<crate::proto::tokens::TokenList> {
        self.call_as(Method::GET, "/v1/tokens", None).await
    }

    /// `DELETE /v1/tokens/{key}` by key or name.
    pub async fn revoke_token(&self, key_or_name: &str) -> Result<crate::proto::tokens::TokenInfo> {
        self.call_as(Method::DELETE, &format!("/v1/tokens/{key_or_name}"), None).await
    }

    // -- Concurrency limits (see `crate::proto::limits`). ------------------------------------

    /// `PUT /v1/limits/{key}`: sets the limit of `key` (idempotent, so safe to retry).
    pub async fn set_limit(&self, key: &str, max_running: u32) -> Result<crate::proto::limits::LimitView> {
        let body = to_json(&crate::proto::limits::SetLimit { max_running })?;
        self.call_as(Method::PUT, &crate::proto::limits::limit_path(key), Some(body)).await
    }

    /// `DELETE /v1/limits/{key}`: removes the limit; answers the key as it is after.
    pub async fn delete_limit(&self, key: &str) -> Result<crate::proto::limits::LimitView> {
        self.call_as(Method::DELETE, &crate::proto::limits::limit_path(key), None).await
    }

    /// `GET /v1/limits`: every limit and every key in use.
    pub async fn list_limits(&self) -> Result<crate::proto::limits::LimitList> {
        self.call_as(Method::GET, "/v1/limits", None).await
    }

    /// `GET /v1/limits/{key}`.
    pub async fn get_limit(&self, key: &str) -> Result<crate::proto::limits::LimitView> {
        self.call_as(Method::GET, &crate::proto::limits::limit_path(key), None).await
    }

    // -- The worker protocol (see `crate::proto::workers`). --------------------------------

    /// Registers (or re-registers) a worker; the answer carries its lease.
    pub async fn register_worker(&self, registration: &WorkerRegistration) -> Result<Registered> {
        self.call_as(Method::POST, "/v1/workers", Some(to_json(registration)?)).await
    }

    /// Heartbeats: renews the lease; the answer lists the attempts to stop.
    pub async fn heartbeat(&self, worker_id: &str, heartbeat: &Heartbeat) -> Result<HeartbeatAnswer> {
        self.call_as(Method::POST, &format!("/v1/workers/{worker_id}/heartbeat"), Some(to_json(heartbeat)?)).await
    }

    /// Long-polls the inbox for assignments with a token above `after`, up to `wait` (cut to
    /// the server's maximum).
    pub async fn inbox(&self, worker_id: &str, after: u64, wait: Duration) -> Result<Inbox> {
        let wait_ms = wait.min(MAX_INBOX_WAIT).as_millis();
        self.call_as(Method::GET, &format!("/v1/workers/{worker_id}/inbox?wait_ms={wait_ms}&after={after}"), None).await
    }

    /// Sends a batch of attempt reports; one verdict per report, in order.
    pub async fn reports(&self, worker_id: &str, reports: &Reports) -> Result<ReportResults> {
        self.call_as(Method::POST, &format!("/v1/workers/{worker_id}/reports"), Some(to_json(reports)?)).await
    }

    /// Ships new output of this worker's attempts; one ack per chunk, in order.
    pub async fn ship_output(&self, worker_id: &str, batch: &OutputBatch) -> Result<OutputAcks> {
        self.call_as(Method::POST, &format!("/v1/workers/{worker_id}/output"), Some(to_json(batch)?)).await
    }

    /// The output of a task's attempt (`None`: its latest) after byte offset `after`, waiting up
    /// to `wait` (cut to the server's maximum) for some to appear. The client's own timeout must
    /// be longer than `wait`.
    pub async fn task_output(&self, id: u64, attempt: Option<u32>, after: u64, wait: Duration) -> Result<TaskOutput> {
        let wait_ms = wait.min(MAX_OUTPUT_WAIT).as_millis();
        let mut path = format!("/v1/tasks/{id}/output?after={after}&wait_ms={wait_ms}");
        if let Some(n) = attempt {
            path.push_str(&format!("&attempt={n}"));
        }
        self.call_as(Method::GET, &path, None).await
    }

    /// `GET /v1/snapshot`: streams a backup of the cluster's state from the leader into `file`
    /// (a temp file beside it, checked, fsynced, then renamed over `file`), and returns its
    /// header. Replicas are tried in turn until one answers; a cut transfer starts over.
    pub async fn save_snapshot(&self, file: &std::path::Path) -> Result<BackupMeta> {
        let local = |what: &str, e: &dyn std::fmt::Display| ClientError::Local(format!("{what}: {e}"));
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = file.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let deadline = Instant::now() + self.timeout;
        let start = self.preferred.load(Ordering::Relaxed);
        let mut last = String::from("no replica tried");
        'rounds: for round in 0.. {
            for k in 0..self.addrs.len() {
                let addr = &self.addrs[(start + round + k) % self.addrs.len()];
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break 'rounds;
                }
                let mut req = self.http.get(format!("{addr}/v1/snapshot")).timeout(left);
                if let Some(auth) = &self.authorization {
                    req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
                }
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => {
                        last = format!("{addr}: {e}");
                        continue;
                    }
                };
                let status = resp.status();
                if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT {
                    last = format!("{addr}: {}", error_text(&resp.bytes().await.unwrap_or_default()));
                    continue;
                }
                if !status.is_success() {
                    return Err(api_error(status, &resp.bytes().await.unwrap_or_default()));
                }
                match stream_to_file(resp, &temp).await {
                    Ok(()) => break 'rounds,
                    Err(e) => last = format!("{addr}: transfer cut: {e}"),
                }
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let Ok(bytes) = tokio::fs::read(&temp).await else {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(ClientError::Unavailable(last));
        };
        let checked = tokio::task::spawn_blocking({
            let temp = temp.clone();
            move || taskraft_storage::snapshot::decode_file::<BackupMeta>(&temp, bytes).map(|(meta, _)| meta)
        })
        .await
        .map_err(|e| local("checking the backup", &e))?;
        let meta = match checked {
            Ok(meta) => meta,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(ClientError::Decode(format!("the backup failed its check: {e}")));
            }
        };
        tokio::fs::rename(&temp, file).await.map_err(|e| local(&format!("renaming into {}", file.display()), &e))?;
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let synced = tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all())).await;
        synced.map_err(|e| local("fsync", &e))?.map_err(|e| local("fsync of the directory", &e))?;
        Ok(meta)
    }

    /// Saves a checkpoint of an attempt; the answer is the task's status after it.
    pub async fn checkpoint(&self, attempt: AttemptId, data: Vec<u8>) -> Result<TaskStatus> {
        let path = format!("/v1/tasks/{}/attempts/{}/checkpoint", attempt.task_id, attempt.token);
        self.request(Method::POST, &path, Some(Payload::Bytes(data.into()))).await
    }
}

/// Writes a response body to `path` as it arrives, then fsyncs it.
async fn stream_to_file(mut resp: reqwest::Response, path: &std::path::Path) -> std::result::Result<(), String> {
    use tokio::io::AsyncWriteExt as _;
    let mut out = tokio::fs::File::create(path).await.map_err(|e| format!("create {}: {e}", path.display()))?;
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        out.write_all(&chunk).await.map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    out.sync_all().await.map_err(|e| format!("fsync {}: {e}", path.display()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| ClientError::Decode(format!("cannot encode the request: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ClientError::Decode(format!("{e}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)]))))
}

/// `(code, message)` of an error body `{"error": {"code", "message"}}`, or of a body that is
/// not one (a proxy's page, an empty 5xx).
fn error_parts(body: &[u8]) -> (ErrorCode, String) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (ErrorCode::Unknown, String::from_utf8_lossy(body).into_owned()),
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let (code, message) = error_parts(body);
    ClientError::Api { status: status.as_u16(), code, message }
}

fn error_text(body: &[u8]) -> String {
    let (code, message) = error_parts(body);
    format!("{code}: {message}")
}
