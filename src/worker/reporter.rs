//! Batches the worker's attempt reports: many `started` / `complete` reports per request.
//!
//! Under load a worker finishes attempts faster than one HTTP round trip each would allow;
//! reports queue here and go out together ([`Client::reports`]; the leader commits each
//! request as one log entry), at most
//! [`MAX_IN_FLIGHT`] requests at a time, and each caller gets its own verdict back.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::client::Client;
use crate::client::ClientError;
use crate::proto::workers::AttemptReport as Report;
use crate::proto::workers::ReportResult;
use crate::proto::workers::ReportResults;
use crate::proto::workers::Reports;

/// Report requests outstanding at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Most reports this worker sends per request (the server takes up to
/// [`crate::proto::MAX_REPORTS`]).
pub const REPORTS_PER_REQUEST: usize = 512;
const _: () = assert!(REPORTS_PER_REQUEST <= crate::proto::MAX_REPORTS);

type Reply = oneshot::Sender<Result<ReportResult, String>>;

/// Handle to the batching loop.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<(Report, Reply)>,
}

impl Reporter {
    /// Starts the loop for worker `id`; it ends when every handle is dropped.
    pub fn start(client: Arc<Client>, id: &str) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(client, id.to_string(), rx));
        Self { tx }
    }

    /// Sends one report; `Ok` carries the cluster's verdict (accepted, or refused with a code),
    /// `Err` a transient failure (the report may be retried).
    pub async fn send(&self, report: Report) -> Result<ReportResult, String> {
        self.enqueue(report).await?.await
    }

    /// Queues one report and returns its verdict as a future, without waiting for it. Reports
    /// leave in the order they were queued (requests may still overlap, see [`MAX_IN_FLIGHT`]).
    pub async fn enqueue(
        &self,
        report: Report,
    ) -> Result<impl Future<Output = Result<ReportResult, String>> + use<>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((report, reply)).await.map_err(|_| "reporter stopped".to_string())?;
        Ok(async move { rx.await.unwrap_or_else(|_| Err("reporter dropped the report".into())) })
    }
}

async fn run(client: Arc<Client>, worker_id: String, mut rx: mpsc::Receiver<(Report, Reply)>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < REPORTS_PER_REQUEST {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let client = client.clone();
        let worker_id = worker_id.clone();
        tokio::spawn(async move {
            let (reports, replies): (Vec<Report>, Vec<Reply>) = batch.into_iter().unzip();
            match send_split(&client, &worker_id, reports).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Sends `reports`, one verdict per report in order. A batch over the server's body limit (413:
/// chatty completions carry up to 128 KiB of output each) is split in halves until it fits; a
/// single report that cannot fit is refused for good. Any other failure is transient (`Err`):
/// the callers retry, and apply answers a retried report `duplicate`, never a second effect.
async fn send_split(client: &Client, worker_id: &str, reports: Vec<Report>) -> Result<Vec<ReportResult>, String> {
    let mut pending = vec![reports];
    let mut done: Vec<Vec<ReportResult>> = Vec::new();
    // Depth-first, left to right, so the verdicts come back in the reports' order.
    while let Some(batch) = pending.pop() {
        let n = batch.len();
        match client.reports(worker_id, &Reports { reports: batch.clone() }).await {
            Ok(ReportResults { results }) if results.len() == n => done.push(results),
            Ok(other) => return Err(format!("the cluster answered {} results for {n} reports", other.results.len())),
            Err(ClientError::Api { status: 413, code, message }) if n == 1 => {
                done.push(vec![ReportResult { status: None, code: Some(code), message: Some(message) }]);
            }
            Err(ClientError::Api { status: 413, .. }) => {
                let mut left = batch;
                let right = left.split_off(n / 2);
                pending.push(right);
                pending.push(left);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(done.into_iter().flatten().collect())
}
