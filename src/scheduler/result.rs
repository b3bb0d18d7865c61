//! Task results: the few bytes a task leaves for whoever comes after it (format 5).
//!
//! 1. The worker gives the process `$TASKRAFT_RESULT_OUT`, a path in the attempt directory.
//! 2. When the attempt ends, the worker reads the file (at most [`MAX_RESULT_BYTES`]) and sends
//!    it inside the `ended` report ([`super::AttemptEvent::Ended`]), as [`ResultData`].
//! 3. Apply commits it with the completion, *behind the attempt's fence*: a completion with a
//!    stale token is refused whole, so a zombie attempt's result can never land on the task.
//! 4. The task keeps the result of the attempt that ended last ([`Task::result`]); once the
//!    task has succeeded that is the successful attempt's, which is what children read.
//! 5. A workflow child receives its parents' results with its assignment
//!    ([`super::verdict::assignment_inputs`]), and its worker writes them to
//!    `$TASKRAFT_INPUTS_DIR` (`crate::worker::executor`, `inputs.rs`).
//!
//! In postcard (log, snapshots) the bytes are plain bytes. In JSON they show like checkpoints:
//! `text` when they are UTF-8, `base64` otherwise, next to their `size`.
//!
//! [`Task::result`]: super::Task::result

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Largest result a task may commit (64 KiB): results travel through the Raft log and stay in
/// every snapshot for as long as the task does, so they are for answers, not for data sets.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Result bytes on their way from a worker to the log.
///
/// JSON: `{"size": n, "text": "…"}` for UTF-8, else `{"size": n, "base64": "…"}`; postcard:
/// the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultData(pub Vec<u8>);

/// The committed result of a task: the bytes and the attempt that wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResult {
    /// What the task wrote to `$TASKRAFT_RESULT_OUT` (at most [`MAX_RESULT_BYTES`]).
    pub data: Vec<u8>,
    /// Attempt that wrote it.
    pub attempt: u32,
    /// That attempt's fencing token.
    pub token: u64,
    /// Commit time of the completion (leader clock).
    pub at_ms: u64,
}

/// The binary layout of [`TaskResult`].
#[derive(Serialize, Deserialize)]
#[serde(rename = "TaskResult")]
struct TaskResultRecord<D> {
    data: D,
    attempt: u32,
    token: u64,
    at_ms: u64,
}

/// The JSON form of [`TaskResult`] (also its OpenAPI schema).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename = "TaskResult", deny_unknown_fields)]
struct TaskResultJson {
    /// Attempt that wrote it.
    attempt: u32,
    /// That attempt's fencing token.
    token: u64,
    /// Commit time of the completion (leader clock), ms since the epoch.
    at_ms: u64,
    /// Size of the result in bytes.
    #[serde(default)]
    size: usize,
    /// The result, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The result in standard base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

/// The JSON form of [`ResultData`] (also its OpenAPI schema).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename = "ResultData", deny_unknown_fields)]
struct ResultDataJson {
    /// Size in bytes (informative; ignored on input).
    #[serde(default)]
    size: usize,
    /// The bytes, when they are UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The bytes in standard base64, when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

/// `(text, base64)` of `data`: exactly one is set, unless `data` is empty.
pub fn text_or_base64(data: &[u8]) -> (Option<String>, Option<String>) {
    if data.is_empty() {
        return (None, None);
    }
    match std::str::from_utf8(data) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(data))),
    }
}

/// The bytes of a JSON `text` / `base64` pair (neither: empty).
pub(crate) fn bytes_of(what: &str, text: Option<String>, b64: Option<String>) -> Result<Vec<u8>, String> {
    match (text, b64) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(b64)) => {
            base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("{what} base64: {e}"))
        }
        (None, None) => Ok(Vec::new()),
        (Some(_), Some(_)) => Err(format!("a {what} has either text or base64")),
    }
}

impl Serialize for TaskResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            let r = TaskResultRecord { data: &self.data, attempt: self.attempt, token: self.token, at_ms: self.at_ms };
            return r.serialize(s);
        }
        let (text, base64) = text_or_base64(&self.data);
        let size = self.data.len();
        TaskResultJson { attempt: self.attempt, token: self.token, at_ms: self.at_ms, size, text, base64 }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for TaskResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            let r = TaskResultRecord::<Vec<u8>>::deserialize(d)?;
            return Ok(TaskResult { data: r.data, attempt: r.attempt, token: r.token, at_ms: r.at_ms });
        }
        let j = TaskResultJson::deserialize(d)?;
        let data = bytes_of("result", j.text, j.base64).map_err(serde::de::Error::custom)?;
        Ok(TaskResult { data, attempt: j.attempt, token: j.token, at_ms: j.at_ms })
    }
}

impl utoipa::PartialSchema for TaskResult {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <TaskResultJson as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for TaskResult {}

impl Serialize for ResultData {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return self.0.serialize(s);
        }
        let (text, base64) = text_or_base64(&self.0);
        ResultDataJson { size: self.0.len(), text, base64 }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ResultData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            return Vec::<u8>::deserialize(d).map(ResultData);
        }
        let j = ResultDataJson::deserialize(d)?;
        bytes_of("result", j.text, j.base64).map(ResultData).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for ResultData {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ResultDataJson as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for ResultData {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_show_as_text_or_base64_in_json_and_as_bytes_in_postcard() {
        let text = TaskResult { data: b"42\n".to_vec(), attempt: 1, token: 7, at_ms: 9 };
        let json = serde_json::to_value(&text).unwrap();
        assert_eq!(json, serde_json::json!({"attempt": 1, "token": 7, "at_ms": 9, "size": 3, "text": "42\n"}));
        assert_eq!(serde_json::from_value::<TaskResult>(json).unwrap(), text);
        let binary = TaskResult { data: vec![0xff, 0], ..text.clone() };
        let json = serde_json::to_value(&binary).unwrap();
        assert_eq!(json["base64"], "/wA=");
        assert_eq!(serde_json::from_value::<TaskResult>(json).unwrap(), binary);
        assert_eq!(postcard::from_bytes::<TaskResult>(&postcard::to_stdvec(&binary).unwrap()).unwrap(), binary);

        let data = ResultData(vec![0xff]);
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json, serde_json::json!({"size": 1, "base64": "/w=="}));
        assert_eq!(serde_json::from_value::<ResultData>(json).unwrap(), data);
        let bytes = postcard::to_stdvec(&data).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&vec![0xffu8]).unwrap(), "postcard writes the plain bytes");
        assert!(serde_json::from_value::<ResultData>(serde_json::json!({"text": "a", "base64": "YQ=="})).is_err());
    }
}
