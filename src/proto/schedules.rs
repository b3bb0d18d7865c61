//! `/v1/schedules…`: timed triggers.
//!
//! A schedule is created with one of `cron`, `every_ms` or `at`, plus a template: a task (the
//! same object `POST /v1/tasks` takes) or a workflow (nodes whose tasks are that same object).
//! Answers are [`ScheduleView`]s: the schedule, its counters, its live runs and its next fire
//! times in UTC and in its own zone. A run is a task, or a workflow for a workflow schedule:
//! run ids (`live_runs`, `started`, `cancelled`) are task ids or workflow ids accordingly, and
//! `GET /v1/schedules/{id}/runs` lists either kind as [`ScheduleRun`]s.

use serde::Deserialize;
use serde::Serialize;

use crate::scheduler::Overlap;
use crate::scheduler::ScheduleCounters;
use crate::scheduler::TaskId;
use crate::scheduler::TaskSpec;
use crate::scheduler::WorkflowSpec;
use crate::scheduler::calendar::CatchUp;
use crate::scheduler::schedule::RunKind;

/// Fire times shown in an answer.
pub const NEXT_FIRES_SHOWN: usize = 5;
/// Most nominal times one backfill may start.
pub const MAX_BACKFILL: usize = crate::scheduler::schedule::MAX_FIRES_PER_COMMAND;
/// Most fire times `preview` computes.
pub const MAX_PREVIEW: usize = 1000;

/// An instant as a user writes it: RFC 3339 text or epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum InstantInput {
    /// Milliseconds since the epoch.
    Ms(u64),
    /// RFC 3339 (`2026-12-24T18:00:00+01:00`), or epoch ms as text.
    Text(String),
}

/// Body of `POST /v1/schedules` and `PUT /v1/schedules/{id}`. Exactly one of `cron`,
/// `every_ms`, `at`, and exactly one of `task`, `workflow`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Shown in lists; also the runs' name when the task has none.
    #[serde(default)]
    pub name: String,
    /// Cron expression: 6 fields with seconds, or 5 (seconds = 0); `L`, `W`, `#`, `@daily`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Fixed interval, aligned to `start` (or to the creation time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// One-shot instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<InstantInput>,
    /// IANA zone for `cron` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// No fire before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<InstantInput>,
    /// No fire after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<InstantInput>,
    /// `skip` (default), `fire_once` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    /// How far back `fire_once` and `all` reach (default 1 hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_window_ms: Option<u64>,
    /// `forbid` (default), `allow`, `replace` or `buffer_one`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// Each fire waits a deterministic 0..=jitter_ms after its nominal time (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// Create it paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// A second create with the same key returns the first schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Makes a retried create answer like the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The task each run starts as (the body `POST /v1/tasks` takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::tasks::TaskSubmission>)]
    pub task: Option<serde_json::Value>,
    /// The workflow each run starts as, instead of a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowTemplate>,
}

/// The workflow of a workflow schedule: what `POST /v1/workflows` takes, without the keys (a
/// run is identified by its schedule and nominal time).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowTemplate {
    /// The runs' name (default: the schedule's); node tasks without a name are `<name>/<node>`.
    #[serde(default)]
    pub name: String,
    /// The nodes, 1 to 1000.
    pub nodes: Vec<crate::proto::workflows::NodeRequest>,
}

/// One fire time, three ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FireTime {
    /// Milliseconds since the epoch.
    pub ms: u64,
    /// RFC 3339 in UTC.
    pub utc: String,
    /// RFC 3339 in the schedule's zone.
    pub local: String,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// The cron expression, for a cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The interval, for an interval schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u64>,
    /// The instant, for a one-shot schedule (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// IANA zone.
    pub time_zone: String,
    /// No fire before (ms).
    pub start_ms: Option<u64>,
    /// No fire after (ms).
    pub end_ms: Option<u64>,
    /// Catch-up policy.
    pub catch_up: CatchUp,
    /// Catch-up window.
    pub catch_up_window_ms: u64,
    /// Overlap policy.
    pub overlap: Overlap,
    /// Jitter bound.
    pub jitter_ms: u64,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// The task template (absent for a workflow schedule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskSpec>,
    /// The workflow template, for a workflow schedule: its runs are workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowSpec>,
    /// Bumped by every update.
    pub version: u64,
    /// Creation time (ms).
    pub created_ms: u64,
    /// Last change (ms).
    pub updated_ms: u64,
    /// Paused?
    pub paused: bool,
    /// The pause note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_note: Option<String>,
    /// Paused since (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_since_ms: Option<u64>,
    /// The high-water mark: the calendar is decided up to here (ms).
    pub last_nominal_ms: Option<u64>,
    /// The same, RFC 3339 UTC.
    pub last_nominal: Option<String>,
    /// fired / missed / skipped / dropped / triggered / backfilled / replaced.
    pub counters: ScheduleCounters,
    /// Runs not yet finished: task ids, or workflow ids for a workflow schedule.
    #[schema(value_type = Vec<u64>)]
    pub live_runs: Vec<TaskId>,
    /// `buffer_one`: the nominal time waiting for the live run to end.
    pub buffered_nominal_ms: Option<u64>,
    /// Number of runs ever started.
    pub runs: u64,
    /// The next fire times (empty when paused, ended, or one-shot done).
    pub next_fires: Vec<FireTime>,
}

/// Answer of `GET /v1/schedules`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleList {
    /// In id order.
    pub schedules: Vec<ScheduleView>,
}

/// Body of `POST /v1/schedules/{id}/pause` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Why; shown by `get`.
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST /v1/schedules/{id}/trigger` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// Makes a retried trigger answer like the first instead of starting a second run.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// Body of `POST /v1/schedules/{id}/backfill`: runs for every calendar time in `[from, to]`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// First instant (inclusive).
    pub from: InstantInput,
    /// Last instant (inclusive); not in the future.
    pub to: InstantInput,
}

/// Answer of trigger and backfill: the schedule and the runs started.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunsStarted {
    /// The schedule after the command.
    pub schedule: ScheduleView,
    /// The runs started, in nominal order: task ids, or workflow ids for a workflow schedule.
    #[schema(value_type = Vec<u64>)]
    pub started: Vec<TaskId>,
}

/// Query of `DELETE /v1/schedules/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also cancel the live runs (default: leave them running).
    #[serde(default)]
    pub cancel_runs: bool,
}

/// Answer of `DELETE /v1/schedules/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deleted {
    /// The schedule as it was.
    pub schedule: ScheduleView,
    /// Runs cancelled with it: task ids, or workflow ids for a workflow schedule.
    #[schema(value_type = Vec<u64>)]
    pub cancelled: Vec<TaskId>,
}

/// Query of `GET /v1/schedules/{id}/runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Page size: absent or 0 means 100; at most 1000.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (a nominal time).
    pub cursor: Option<u64>,
    /// See [`super::tasks::Consistency`].
    #[serde(default)]
    #[param(value_type = Option<super::tasks::Consistency>)]
    pub consistency: super::tasks::Consistency,
}

/// One run of a schedule: a task, or a workflow for a workflow schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleRun {
    /// Its identity: the nominal fire time (for a manual run, the time of the trigger), ms.
    pub nominal_ms: u64,
    /// Started by `trigger`.
    pub manual: bool,
    /// `task` or `workflow`: what `id` names.
    pub kind: RunKind,
    /// The task id, or the workflow id.
    pub id: u64,
    /// The task's state (`pending` … `cancelled`), or the workflow's (`running`, `succeeded`,
    /// `failed`, `cancelled`).
    pub state: String,
    /// When the run started (ms).
    pub created_ms: u64,
    /// When it ended (ms).
    pub finished_ms: Option<u64>,
}

/// Answer of `GET /v1/schedules/{id}/runs`: one page in nominal order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<ScheduleRun>,
    /// Give as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<u64>,
}

/// Query of `GET /v1/schedules/preview`: fire times of a calendar, nothing created.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Cron expression.
    pub cron: Option<String>,
    /// Interval.
    pub every_ms: Option<u64>,
    /// Zone (default UTC).
    pub time_zone: Option<String>,
    /// From this instant (default now): RFC 3339 or epoch ms.
    pub after: Option<String>,
    /// How many (default 10, at most [`MAX_PREVIEW`]).
    pub count: Option<usize>,
}

/// Answer of the preview.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    /// The fire times.
    pub fires: Vec<FireTime>,
}
