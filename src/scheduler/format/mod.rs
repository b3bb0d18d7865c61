//! Persisted formats: how commands and the state are written to disk, and how every earlier
//! format is read back.
//!
//! Two things outlive a process: log entries (a [`Command`] each) and snapshots (the whole
//! [`State`]). Both are postcard behind a format version byte:
//!
//! | record      | bytes                                   | written by              |
//! |-------------|-----------------------------------------|-------------------------|
//! | log payload | `[COMMAND_FORMAT] ++ postcard(Command)` | [`LogCommand`]'s serde  |
//! | snapshot    | `[STATE_FORMAT] ++ postcard(State)`     | [`encode_state`]        |
//!
//! postcard writes fields by position with no names, so a struct that gains a field cannot read
//! its old bytes. Instead of contortions (optional wrappers, magic strings in old fields), each
//! change is a new format version:
//!
//! 1. copy the shapes that change, as they are today, into a frozen module `vN.rs` (types the
//!    old format shares with today's code are used directly until they change);
//! 2. change today's types and bump the version constant;
//! 3. write `From<vN::X> for X` for each frozen shape, and a decode arm for version N;
//! 4. add `tests/fixtures/v{N+1}/` with `TASKRAFT_WRITE_FIXTURES=1 cargo test --test fixtures`.
//!
//! An upgraded entry must apply exactly as it did when it was first applied: a replica that
//! replays it after an upgrade must reach the state its peers reached before. So a new *rule*
//! is gated by a new field that the upgrade fills with the old behaviour (see
//! [`super::Reuse`]), and the checks apply repeats (`validate_replicated`) only ever loosen.
//!
//! Formats:
//! - **1** (`v1.rs`): the first release. Log payloads carry no version of their own (the log
//!   store's entry format 1 marks them); the executor is chosen by a `taskraft:` argv prefix;
//!   preferences wrap the placement strategy; workers register an `api_addr` string.
//! - **2** (`v2.rs`): `executor` and `prefer` are fields of `TaskSpec`; workers register `host`,
//!   `pid` and an optional `api_addr`; submits carry [`super::Reuse`]; `Command::Reports`.
//! - **3** (current): schedules. The state gains `schedules`, `next_schedule_id` and
//!   `schedule_keys`; `Command` gains the schedule commands and `TaskOrigin` its `Schedule`
//!   variant, both appended, so format-2 log payloads decode as format 3 unchanged.
//! - **4** (`v3.rs` freezes format 3): API tokens. The state gains `tokens`;
//!   `Command` gains `CreateToken`, `RevokeToken` and `WorkerCheckpoint`, appended, so
//!   format-2 and -3 log payloads decode as format 4 unchanged.
//! - **5** (`v4.rs` freezes format 4): task results. `Command::Complete` and
//!   `AttemptEvent::Ended` gain `result`, `Task` gains `result`. These are fields, not
//!   appended variants, so format-2 to -4 log payloads decode as `v4::Command` and upgrade
//!   (with no result), and format-2 to -4 snapshots hold `v4::Task`s.
//! - **6** (`v5.rs` freezes format 5): workflows and concurrency limits. `TaskSpec`
//!   gains `concurrency_key` and `ScheduleSpec` `workflow` (fields: every shape holding a task
//!   spec is frozen in `v5.rs`, and the older modules read their specs as `v5` shapes);
//!   `Command` gains `SubmitWorkflow`, `CancelWorkflow` and `SetLimit`, `TaskOrigin` its
//!   `Workflow` variant and the state `workflows`, `next_workflow_id`, `workflow_keys`,
//!   `limits` and `permits`.
//! - **7** (`v7.rs` freezes format 7; `v6.rs` format 6): retention. `Command` gains `Forget`,
//!   appended (format-6 log payloads are format-7 bytes); the state gains `forgotten_runs`.
//!   Three rules of applying `Forget` were settled after the first format-7 data was written,
//!   by development builds only (fb5ee0a, before 0924935): a blocked task counts a forgotten
//!   parent as succeeded, a calendar fire at or before a schedule's newest forgotten run is
//!   skipped, and `max` is honoured exactly as the command gives it. Replaying such a log under
//!   today's rules is deterministic on every replica; no released build applied the old ones.
//! - **8** (`v8.rs` freezes its state): preemption. `TaskSpec` gains `preemptible` and `Task` `preempted_by`
//!   and `preempted` (fields: every shape holding a task spec or a task is frozen in `v6.rs`
//!   and `v7.rs`, and the older modules upgrade straight to today's shapes); `Command` gains
//!   `Preempt` and `AttemptOutcome` its `Preempted` variant, appended.
//! - **9** (current; `v8.rs` freezes format 8's state): migration off overloaded workers.
//!   `Command` gains `Migrate` and `AttemptOutcome` its `Migrated` variant, appended (format-8
//!   log payloads and records are format-9 bytes); the state gains `migrations`.

pub mod v1;
pub mod v2;
pub mod v3;
pub mod v4;
pub mod v5;
pub mod v6;
pub mod v7;
pub mod v8;

use std::fmt;

use serde::Deserialize;
use serde::Deserializer;
use serde::Serialize;
use serde::Serializer;
use serde::de::SeqAccess;
use serde::de::Visitor;

use super::command::Command;
use super::state::State;

/// Format of the log payloads this build writes; it reads this one and every earlier one.
pub const COMMAND_FORMAT: u8 = 9;
/// Format of the snapshots this build writes; it reads this one and every earlier one.
pub const STATE_FORMAT: u8 = 9;

/// Why persisted bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The bytes carry a version this build does not know (written by a newer release).
    #[error("{what} has format version {found}; this build reads versions 1 to {newest}")]
    UnknownVersion {
        /// What was being read.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The newest version this build knows.
        newest: u8,
    },
    /// The bytes do not decode as their version's shape.
    #[error("cannot decode {what} of format {version}: {message}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Its version byte.
        version: u8,
        /// The decoder's complaint.
        message: String,
    },
}

/// The payload of a log entry: a [`Command`] behind its format version. This is the `D` of the
/// openraft type config, so the version travels with the command wherever openraft moves it
/// (the log on disk, `AppendEntries` between replicas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCommand(pub Command);

impl fmt::Display for LogCommand {
    /// openraft logs entries with `Display`: a short summary, never the whole payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:?}", self.0);
        let head: String = text.chars().take(80).collect();
        if head.len() < text.len() { write!(f, "{head}…") } else { f.write_str(&head) }
    }
}

impl Serialize for LogCommand {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (COMMAND_FORMAT, &self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for LogCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Versioned;
        impl<'de> Visitor<'de> for Versioned {
            type Value = LogCommand;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a format version followed by a command")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LogCommand, A::Error> {
                use serde::de::Error;
                let version: u8 = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let command = match version {
                    // Formats 3 and 4 only appended variants: format-2 bytes are format-4 bytes.
                    2..=4 => seq.next_element::<v4::Command>()?.map(Command::from),
                    5 => seq.next_element::<v5::Command>()?.map(Command::from),
                    6 => seq.next_element::<v6::Command>()?.map(Command::from),
                    // Format 7 only appended `Forget` to format 6's commands.
                    7 => seq.next_element::<v7::Command>()?.map(Command::from),
                    // Format 9 only appended `Migrate` (and `AttemptOutcome::Migrated`).
                    8 | COMMAND_FORMAT => seq.next_element::<Command>()?,
                    // Format 1 payloads have no version byte: the log store recognises them by
                    // their entry format and decodes them with `v1::Command` (see `node`).
                    found => {
                        let e = FormatError::UnknownVersion { what: "log command", found, newest: COMMAND_FORMAT };
                        return Err(A::Error::custom(e));
                    }
                };
                command.map(LogCommand).ok_or_else(|| A::Error::invalid_length(1, &self))
            }
        }
        d.deserialize_tuple(2, Versioned)
    }
}

/// The snapshot payload of `state`: `[STATE_FORMAT] ++ postcard(state)`.
pub fn encode_state(state: &State) -> Result<Vec<u8>, postcard::Error> {
    // Reserve roughly what the state will take so the buffer is not regrown (and copied) often.
    let mut out = Vec::with_capacity(64 + state.task_count() * 128);
    out.push(STATE_FORMAT);
    postcard::to_extend(state, out)
}

/// Reads a snapshot payload of any known format, upgrading it to today's [`State`].
pub fn decode_state(data: &[u8]) -> Result<State, FormatError> {
    const WHAT: &str = "snapshot";
    let Some((&version, body)) = data.split_first() else {
        return Err(FormatError::Corrupt { what: WHAT, version: 0, message: "empty snapshot".into() });
    };
    let corrupt = |e: postcard::Error| FormatError::Corrupt { what: WHAT, version, message: e.to_string() };
    match version {
        1 => postcard::from_bytes::<v1::State>(body).map(State::from).map_err(corrupt),
        2 => postcard::from_bytes::<v2::State>(body).map(State::from).map_err(corrupt),
        3 => postcard::from_bytes::<v3::State>(body).map(State::from).map_err(corrupt),
        4 => postcard::from_bytes::<v4::State>(body).map(State::from).map_err(corrupt),
        5 => postcard::from_bytes::<v5::State>(body).map(State::from).map_err(corrupt),
        6 => postcard::from_bytes::<v6::State>(body).map(State::from).map_err(corrupt),
        7 => postcard::from_bytes::<v7::State>(body).map(State::from).map_err(corrupt),
        8 => postcard::from_bytes::<v8::State>(body).map(State::from).map_err(corrupt),
        STATE_FORMAT => postcard::from_bytes::<State>(body).map_err(corrupt),
        found => Err(FormatError::UnknownVersion { what: WHAT, found, newest: STATE_FORMAT }),
    }
}

/// An index of older formats' shape (worker or key → task ids) as today's persistent maps.
pub(crate) fn persistent_sets(
    m: std::collections::BTreeMap<String, std::collections::BTreeSet<super::TaskId>>,
) -> imbl::OrdMap<String, imbl::OrdSet<super::TaskId>> {
    m.into_iter().map(|(k, ids)| (k, ids.into_iter().collect::<imbl::OrdSet<_>>())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_commands_carry_their_version_and_refuse_unknown_ones() {
        let cmd = LogCommand(Command::Noop);
        let bytes = postcard::to_stdvec(&cmd).unwrap();
        assert_eq!(bytes[0], COMMAND_FORMAT);
        assert_eq!(postcard::from_bytes::<LogCommand>(&bytes).unwrap(), cmd);
        let mut newer = bytes.clone();
        newer[0] = COMMAND_FORMAT + 1;
        let err = postcard::from_bytes::<LogCommand>(&newer).unwrap_err().to_string();
        assert!(!err.is_empty());
        assert!(postcard::from_bytes::<LogCommand>(&[]).is_err());
    }

    #[test]
    fn snapshots_carry_their_version_and_refuse_unknown_ones() {
        let state = State::default();
        let bytes = encode_state(&state).unwrap();
        assert_eq!(bytes[0], STATE_FORMAT);
        assert_eq!(decode_state(&bytes).unwrap(), state);
        let mut newer = bytes.clone();
        newer[0] = STATE_FORMAT + 1;
        assert!(matches!(decode_state(&newer), Err(FormatError::UnknownVersion { found: 10, .. })));
        assert!(matches!(decode_state(&[]), Err(FormatError::Corrupt { .. })));
    }
}
