//! Live attempt output: workers ship what their processes print while they run, and readers
//! follow it. None of it goes through the Raft log: it lives in the leader's memory, bounded
//! (see `crate::node::leader::output`); the committed `output_tail` of an attempt's completion
//! stays the durable record.
//!
//! 1. A worker tails each `exec` attempt's stdout and stderr (one combined stream, in the order
//!    the bytes arrive) and, every [`SHIP_INTERVAL`], sends the new bytes of all its attempts in
//!    one `POST /v1/workers/{id}/output` with an [`OutputBatch`]: per attempt one
//!    [`OutputChunk`] of at most [`MAX_OUTPUT_CHUNK_BYTES`], placed by its byte `offset` in the
//!    attempt's stream. The answer, [`OutputAcks`], says per chunk where the leader's copy ends
//!    (`next`), so after a leader change the worker sends again what it still holds.
//! 2. `GET /v1/tasks/{id}/output?attempt=&after=&wait_ms=` answers a [`TaskOutput`]: the bytes
//!    after offset `after` (long-polling up to `wait_ms` for new ones), and where to continue.
//!    `taskraft task logs ID --follow` loops on it until `complete`.
//!
//! Both are served by the leader; a follower forwards them, like every worker-protocol write.

use std::time::Duration;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;

use crate::scheduler::AttemptOutcome;
use crate::scheduler::TaskState;

/// How often a worker ships new output (coalesced: everything new since the last shipment).
pub const SHIP_INTERVAL: Duration = Duration::from_millis(250);
/// Most bytes of one chunk; an attempt with more new output sends the rest next time.
pub const MAX_OUTPUT_CHUNK_BYTES: usize = 64 * 1024;
/// Most chunks in one `POST /v1/workers/{id}/output`.
pub const MAX_OUTPUT_CHUNKS: usize = 64;
/// Longest `GET /v1/tasks/{id}/output` long-poll; a longer `wait_ms` is cut to this.
pub const MAX_OUTPUT_WAIT: Duration = Duration::from_secs(30);

/// New output of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputChunk {
    /// The task.
    pub task_id: u64,
    /// The attempt's fencing token.
    pub token: u64,
    /// Offset of `data`'s first byte in the attempt's output stream (0 = its first byte).
    pub offset: u64,
    /// The worker no longer holds the bytes before `offset` either (it keeps only a bounded
    /// tail): the leader accepts the hole instead of asking for them.
    #[serde(default)]
    pub gap: bool,
    /// The bytes, base64 in JSON.
    #[serde(with = "base64_bytes")]
    #[schema(value_type = String, format = Byte)]
    pub data: Vec<u8>,
}

/// Body of `POST /v1/workers/{id}/output`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputBatch {
    /// At most [`MAX_OUTPUT_CHUNKS`], at most one per attempt.
    pub chunks: Vec<OutputChunk>,
}

/// The leader's answer to one chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChunkAck {
    /// The task.
    pub task_id: u64,
    /// The attempt's fencing token.
    pub token: u64,
    /// Offset just after the last byte the leader holds for the attempt: send from here next.
    pub next: u64,
    /// The attempt is not a live attempt of this worker (ended, fenced off, unknown): stop
    /// shipping its output.
    #[serde(default)]
    pub stop: bool,
}

/// Answer of `POST /v1/workers/{id}/output`, one ack per chunk, in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputAcks {
    /// The acks.
    pub acks: Vec<ChunkAck>,
}

/// Query of `GET /v1/tasks/{id}/output`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutputQuery {
    /// Attempt number (1-based); default: the task's latest attempt.
    pub attempt: Option<u32>,
    /// Answer only the bytes after this offset (the `next` of the previous answer); default 0.
    pub after: Option<u64>,
    /// Wait up to this long for bytes after `after` (or the attempt's end); default 0, cut to
    /// [`MAX_OUTPUT_WAIT`].
    pub wait_ms: Option<u64>,
}

/// Where the text of a [`TaskOutput`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputSource {
    /// The leader's in-memory copy of what the worker shipped (offsets are meaningful).
    Live,
    /// The attempt's committed `output_tail` (the leader holds no live copy: it changed, or
    /// evicted it); the whole tail is in the first answer.
    Committed,
    /// Nothing yet: no attempt, or nothing shipped so far.
    None,
}

/// Answer of `GET /v1/tasks/{id}/output`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskOutput {
    /// The task.
    pub task_id: u64,
    /// The task's state.
    pub task_state: TaskState,
    /// The attempt shown; `None` while the task has had no attempt.
    pub attempt: Option<u32>,
    /// Its fencing token.
    pub token: Option<u64>,
    /// How the attempt ended; `None` while it runs.
    pub outcome: Option<AttemptOutcome>,
    /// Where `text` comes from.
    pub source: OutputSource,
    /// First offset the leader still holds (bytes before it were dropped: bounded memory).
    pub start: u64,
    /// Give as `after` to continue.
    pub next: u64,
    /// The bytes after `after`, as text (invalid UTF-8 shown as U+FFFD; a character split
    /// between two answers is kept whole for the next one).
    pub text: String,
    /// The attempt has ended and `text` reaches the end of its output: nothing more will come.
    pub complete: bool,
}

/// `Vec<u8>` as a base64 string in JSON.
mod base64_bytes {
    use base64::Engine as _;

    use super::*;

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_bytes_as_base64() {
        let chunk = OutputChunk { task_id: 1, token: 9, offset: 3, gap: false, data: vec![0xff, b'a'] };
        let json = serde_json::to_value(&chunk).unwrap();
        assert_eq!(json, serde_json::json!({"task_id": 1, "token": 9, "offset": 3, "gap": false, "data": "/2E="}));
        assert_eq!(serde_json::from_value::<OutputChunk>(json).unwrap(), chunk);
    }
}
