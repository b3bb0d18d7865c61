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
            match client.reports(&worker_id, &Reports { reports }).await {
                Ok(ReportResults { results }) if results.len() == replies.len() => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Ok(other) => {
                    let e =
                        format!("the cluster answered {} results for {} reports", other.results.len(), replies.len());
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
                // A definite refusal of the whole batch (this worker is not registered any more,
                // or was removed) is every report's verdict: retrying cannot change it.
                Err(ClientError::Api { status: 400..=499, code, message }) => {
                    for reply in replies {
                        let refused = ReportResult { status: None, code: Some(code), message: Some(message.clone()) };
                        let _ = reply.send(Ok(refused));
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}
