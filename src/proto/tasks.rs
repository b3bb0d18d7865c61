//! `/v1/tasks…` and `/v1/stats`.
//!
//! A submitted task is a [`TaskSpec`] in JSON, plus the shortcuts the API accepts on input:
//! `max_attempts` (for `retry.max_attempts`), `labels` (for `constraints`), `request_id`, the
//! `taskraft:` executor shorthand (`["taskraft:sleep", "50"]` for `"executor": "sleep"` with
//! `["50"]`) and format 1's `"placement": {"prefer": {"labels", "then"}}` (for `prefer` beside
//! `placement`). Answers always use the canonical fields.

use serde::Deserialize;
use serde::Serialize;
use utoipa::openapi::ObjectBuilder;
use utoipa::openapi::RefOr;
use utoipa::openapi::Schema;
use utoipa::openapi::Type;

use crate::scheduler::Task;
use crate::scheduler::TaskSpec;

/// Body of `POST /v1/tasks` as documented: a [`TaskSpec`] plus the shortcuts above. Only a
/// schema (the handler parses the JSON itself, see `api::tasks::parse_task`).
pub struct TaskSubmission;

impl utoipa::PartialSchema for TaskSubmission {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut submission)) = <TaskSpec as utoipa::PartialSchema>::schema() else {
            unreachable!("TaskSpec is an object schema");
        };
        submission.description = Some(
            "A task to submit: the fields of `TaskSpec`, plus input shortcuts: `request_id` (or the \
             `x-taskraft-request-id` header), `max_attempts` (for `retry.max_attempts`), `labels` (for \
             `constraints`), the `taskraft:` executor shorthand in `command` (`[\"taskraft:sleep\", \"50\"]`) \
             and format 1's `\"placement\": {\"prefer\": {\"labels\", \"then\"}}`. Answers always use \
             the canonical fields."
                .into(),
        );
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let request_id = string()
            .min_length(Some(1))
            .max_length(Some(super::MAX_REQUEST_ID_BYTES))
            .description(Some("Makes a retried submit answer like the first (not inside a batch)."));
        let max_attempts = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .description(Some("For `retry.max_attempts`."));
        let labels = ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(string()))
            .description(Some("For `constraints` (give one of the two)."));
        submission.properties.insert("request_id".into(), request_id.into());
        submission.properties.insert("max_attempts".into(), max_attempts.into());
        submission.properties.insert("labels".into(), labels.into());
        submission.into()
    }
}

impl utoipa::ToSchema for TaskSubmission {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <TaskSpec as utoipa::ToSchema>::schemas(schemas);
    }
}

/// Body of `POST /v1/tasks/batch` in its canonical form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The tasks, 1 to [`super::MAX_BATCH`]; all are created, or none.
    #[schema(value_type = Vec<TaskSubmission>)]
    pub tasks: Vec<TaskSpec>,
    /// Request id (or give the [`super::REQUEST_ID_HEADER`] header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One task of a batch answer: the task, and whether this request created it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchItem {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// False: an idempotency key (or a retried request) mapped it to an existing task.
    pub created: bool,
}

/// Answer of `POST /v1/tasks/batch`: 201 if any task was created, else 200.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    /// The tasks, in request order.
    pub tasks: Vec<BatchItem>,
}

/// Body of `POST /v1/tasks/{id}/cancel` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Kept on the task.
    #[serde(default)]
    pub reason: Option<String>,
    /// Makes a retried cancel answer like the first.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// Answer of `GET /v1/tasks/{id}`: the task and, while it waits, why it is not running yet.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskView {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// Why a pending task is not placed yet (no fitting worker, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// The task's committed migration off an overloaded worker, until its next assignment:
    /// while `migrating` the worker is stopping the attempt `token`; after it ended `migrated`,
    /// `to` is where the task is placed next if it fits (see README "Migration off overloaded
    /// workers"). Each migrated attempt also says where it went in its `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<crate::scheduler::MigrateMark>,
    /// True while the migrated attempt is still live (its worker is stopping it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub migrating: bool,
}

/// Answer of `GET /v1/tasks`: one page in id order.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskPage {
    /// The tasks.
    pub tasks: Vec<Task>,
    /// Give as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<u64>,
}

/// `?consistency=` of reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// ReadIndex through the leader: the read sees every write acknowledged before it (default).
    #[default]
    Linearizable,
    /// This replica's local state, possibly behind; no leader needed.
    Stale,
}

/// Query of `GET /v1/tasks/{id}` and `GET /v1/stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// See [`Consistency`].
    #[serde(default)]
    pub consistency: Consistency,
}

/// Query of `GET /v1/tasks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only tasks in this state.
    #[param(value_type = Option<crate::scheduler::TaskState>)]
    pub state: Option<String>,
    /// Page size: absent or 0 means [`super::DEFAULT_LIST_LIMIT`]; cut to [`super::MAX_LIST_LIMIT`].
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<u64>,
    /// Only the runs of this task schedule, in nominal order (the cursor is then a nominal
    /// time); a workflow schedule's runs are at `GET /v1/schedules/{id}/runs`.
    pub schedule: Option<u64>,
    /// See [`Consistency`].
    #[serde(default)]
    pub consistency: Consistency,
}

/// Query of `GET /v1/tasks/{id}/wait`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// How long to wait for the task to finish: default [`super::DEFAULT_WAIT`], cut to
    /// [`super::MAX_WAIT`].
    pub timeout_ms: Option<u64>,
    /// See [`Consistency`].
    #[serde(default)]
    pub consistency: Consistency,
}
