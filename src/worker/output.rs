//! Ships the live output of this worker's attempts to the leader (protocol in
//! [`crate::proto::output`]).
//!
//! 1. The attempt path registers each `exec` attempt's [`LiveOutput`] (stdout and stderr as one
//!    bounded stream) before the process starts.
//! 2. Every [`SHIP_INTERVAL`] the loop sends, in one request, the bytes each attempt wrote since
//!    the leader's copy ends (at most [`MAX_OUTPUT_CHUNK_BYTES`] per attempt and
//!    [`MAX_OUTPUT_BATCH_BYTES`] per request; the rest goes next time). Quiet attempts cost
//!    nothing; a chatty one costs one request per interval, whatever it prints.
//! 3. Each ack says where the leader's copy ends; after a leader change that is 0, and the
//!    worker sends again what it still holds (marking a `gap` when it dropped the start). An ack
//!    with `stop` (the attempt ended or was fenced off) ends shipping for that attempt.
//! 4. When the process ends, the attempt path calls [`Shipper::finish`] before it reports the
//!    completion, so a reader that sees the attempt ended has seen all of its output.
//!
//! Shipping is best effort and never holds up an attempt: a failed request is retried on the
//! next tick, and `finish` gives up after [`FINISH_TIMEOUT`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::executor::LiveOutput;
use crate::client::Client;
use crate::proto::output::MAX_OUTPUT_CHUNK_BYTES;
use crate::proto::output::MAX_OUTPUT_CHUNKS;
use crate::proto::output::OutputBatch;
use crate::proto::output::OutputChunk;
use crate::proto::output::SHIP_INTERVAL;
use crate::proto::workers::AttemptId;

/// Most output bytes in one request (base64 makes it a third bigger on the wire; the servers'
/// default body limit is 1 MiB).
pub const MAX_OUTPUT_BATCH_BYTES: usize = 512 * 1024;
/// How long [`Shipper::finish`] tries to deliver an ended attempt's last output.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// One attempt's stream and how far the leader has it.
struct Stream {
    live: LiveOutput,
    /// Offset the leader's copy ends at (as far as we know).
    sent: u64,
}

/// The shipping loop's state, shared with the attempt path.
pub struct Shipper {
    worker_id: String,
    client: Client,
    streams: Mutex<BTreeMap<AttemptId, Stream>>,
    /// One request at a time: the loop and `finish` never race each other's offsets.
    sending: tokio::sync::Mutex<()>,
}

impl Shipper {
    /// A shipper for worker `worker_id` sending with `client` (short timeouts: best effort).
    pub fn new(worker_id: &str, client: Client) -> Self {
        Self {
            worker_id: worker_id.to_string(),
            client,
            streams: Mutex::new(BTreeMap::new()),
            sending: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts shipping `live` as the output of `attempt`.
    pub fn register(&self, attempt: AttemptId, live: LiveOutput) {
        self.streams.lock().expect("streams lock").insert(attempt, Stream { live, sent: 0 });
    }

    /// Ships until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(SHIP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let _turn = self.sending.lock().await;
            if let Err(e) = self.ship(None).await {
                tracing::debug!(error = %e, "shipping live output failed; retrying next tick");
            }
        }
    }

    /// Delivers what is left of an ended attempt's output (bounded by [`FINISH_TIMEOUT`]) and
    /// stops shipping it.
    pub async fn finish(&self, attempt: AttemptId) {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        while Instant::now() < deadline {
            let turn = self.sending.lock().await;
            match self.ship(Some(attempt)).await {
                Ok(true) => tracing::debug!(%attempt, "shipped the last output"),
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "shipping the last output failed; retrying");
                    drop(turn);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.streams.lock().expect("streams lock").remove(&attempt);
    }

    /// The chunks due now (of `only`, or of every attempt).
    fn due(&self, only: Option<AttemptId>) -> Vec<OutputChunk> {
        let streams = self.streams.lock().expect("streams lock");
        let mut chunks = Vec::new();
        let mut bytes = 0;
        for (id, s) in streams.iter().filter(|(id, _)| only.is_none_or(|o| o == **id)) {
            if chunks.len() == MAX_OUTPUT_CHUNKS || bytes >= MAX_OUTPUT_BATCH_BYTES {
                break;
            }
            let max = MAX_OUTPUT_CHUNK_BYTES.min(MAX_OUTPUT_BATCH_BYTES - bytes);
            let slice = s.live.read_from(s.sent, max);
            if slice.data.is_empty() && !slice.gap {
                continue;
            }
            bytes += slice.data.len();
            chunks.push(OutputChunk {
                task_id: id.task_id,
                token: id.token,
                offset: slice.offset,
                gap: slice.gap,
                data: slice.data,
            });
        }
        chunks
    }

    /// Sends one batch; returns whether there was anything to send.
    async fn ship(&self, only: Option<AttemptId>) -> Result<bool, crate::client::ClientError> {
        let chunks = self.due(only);
        if chunks.is_empty() {
            return Ok(false);
        }
        let sent: Vec<(AttemptId, u64)> =
            chunks.iter().map(|c| (AttemptId::new(c.task_id, c.token), c.offset + c.data.len() as u64)).collect();
        let acks = self.client.ship_output(&self.worker_id, &OutputBatch { chunks }).await?;
        let mut streams = self.streams.lock().expect("streams lock");
        for ((id, end), ack) in sent.into_iter().zip(acks.acks) {
            if ack.stop {
                // Ended or fenced off: the leader keeps what it has; nothing more is wanted.
                streams.remove(&id);
                continue;
            }
            if let Some(s) = streams.get_mut(&id) {
                // The leader's copy ends at `next`: usually `end`; lower after a leader change.
                s.sent = ack.next.min(end);
            }
        }
        Ok(true)
    }
}
