//! Schedules: timed triggers whose every fire is a replicated, de-duplicated fact.
//!
//! A schedule pairs a calendar ([`Trigger`] + time zone + `start`/`end`, evaluated by
//! [`super::calendar`]) with a template: a task, or a workflow (see [`runs`]). Only the leader
//! reads a clock and evaluates calendars; what it decides reaches this module as a
//! [`Command::FireSchedule`] carrying the nominal times to fire, the new high-water mark
//! (`advance_to`) and the number of fires it gave up (`missed`). Applying it is integer-only:
//!
//! - a nominal time at or below the schedule's mark (`last_nominal_ms`) is ignored, so a
//!   retried proposal, a second leader or a stale leader that wakes up cannot fire it twice;
//! - a fire for an older `version` (the schedule was updated since it was planned) or for a
//!   paused schedule is refused;
//! - a nominal time later than the command's `now_ms` is refused: no leader can fire the future;
//! - each run is a task (or a workflow) whose identity is `(schedule, nominal time)`, kept in
//!   `runs`;
//! - the overlap policy is judged here, against the schedule's live runs, so it holds across
//!   leader changes.
//!
//! [`Command::FireSchedule`]: super::Command::FireSchedule

mod runs;

pub use runs::RunKind;

use std::collections::BTreeSet;

use serde::Deserialize;
use serde::Serialize;

use super::calendar::CatchUp;
use super::calendar::Trigger;
use super::command::RejectCode;
use super::command::Rejection;
use super::command::Response;
use super::dedup::Recorded;
use super::state::State;
use super::task::FieldError;
use super::task::TaskId;
use super::task::TaskOrigin;
use super::task::TaskSpec;
use super::workflow::WorkflowSpec;

/// Schedule ids are allocated by apply from a counter, like task ids; never reused.
pub type ScheduleId = u64;

/// Most schedules in the cluster.
pub const MAX_SCHEDULES: usize = 100_000;
/// Most nominal times in one `FireSchedule` or `BackfillSchedule`.
pub const MAX_FIRES_PER_COMMAND: usize = 1000;
/// Most characters of a pause note kept.
pub const MAX_NOTE_BYTES: usize = 1024;
/// Longest schedule name.
pub const MAX_SCHEDULE_NAME_BYTES: usize = 256;

/// What a fire does while the previous run of the same schedule is still live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Start the new run anyway.
    Allow,
    /// Do not start it; count it `skipped`. The default, a deliberate choice: like Temporal's
    /// schedule overlap policy `Skip` and XXL-JOB's serial execution (Kubernetes' CronJob
    /// defaults to `Allow`); a cron user rarely wants two copies of one job at once.
    #[default]
    Forbid,
    /// Cancel the live runs, then start the new one.
    Replace,
    /// Keep one pending fire, started when the live run ends; later ones count `dropped`.
    BufferOne,
}

impl Overlap {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Forbid => "forbid",
            Overlap::Replace => "replace",
            Overlap::BufferOne => "buffer_one",
        }
    }
}

/// Everything a user says about a schedule. Validated by the API (calendar included) and
/// again, without the calendar, by apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Free text shown in lists.
    pub name: String,
    /// When it fires.
    pub trigger: Trigger,
    /// IANA zone the calendar is read in.
    pub time_zone: String,
    /// No fire before this instant (ms since the epoch).
    pub start_ms: Option<u64>,
    /// No fire after this instant.
    pub end_ms: Option<u64>,
    /// What happens to fires that were due while nobody could fire them.
    pub catch_up: CatchUp,
    /// How far back catch-up reaches.
    pub catch_up_window_ms: u64,
    /// What a fire does while an earlier run is live.
    pub overlap: Overlap,
    /// Each fire waits a deterministic 0..=jitter_ms after its nominal time.
    pub jitter_ms: u64,
    /// Client-chosen key: a second create with the same key returns the first schedule.
    pub idempotency_key: Option<String>,
    /// The task each run starts as. A workflow schedule leaves it at `TaskSpec::default()`.
    pub task: TaskSpec,
    /// The workflow each run starts as, instead of a task (format 6). Its `idempotency_key`
    /// stays empty: a run is identified by (schedule, nominal time).
    pub workflow: Option<Box<WorkflowSpec>>,
}

impl ScheduleSpec {
    /// The rules apply re-checks (the calendar itself is checked by the API, which can parse
    /// it). Like [`TaskSpec::validate_replicated`], these may be loosened, never tightened.
    pub fn validate_replicated(&self) -> Result<(), FieldError> {
        if self.name.len() > MAX_SCHEDULE_NAME_BYTES {
            let msg = format!("is {} bytes; the limit is {MAX_SCHEDULE_NAME_BYTES}", self.name.len());
            return Err(FieldError::new("name", msg));
        }
        if let (Some(start), Some(end)) = (self.start_ms, self.end_ms)
            && end < start
        {
            return Err(FieldError::new("end", "is before start"));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > super::MAX_KEY_BYTES)
        {
            let msg = format!("must be 1 to {} bytes", super::MAX_KEY_BYTES);
            return Err(FieldError::new("idempotency_key", msg));
        }
        if let Some(workflow) = &self.workflow {
            // Format 6: no older entry holds a workflow, so these rules bind no replayed entry.
            if self.task != TaskSpec::default() {
                return Err(FieldError::new("task", "give either a task or a workflow, not both"));
            }
            workflow.validate_replicated().map_err(|e| e.within("workflow"))?;
            if workflow.idempotency_key.is_some() {
                let msg =
                    "a run is identified by (schedule, nominal time); set idempotency_key on the schedule instead";
                return Err(FieldError::new("workflow.idempotency_key", msg));
            }
            return Ok(());
        }
        self.task.validate_replicated().map_err(|e| e.within("task"))?;
        if self.task.idempotency_key.is_some() {
            let msg = "a run is identified by (schedule, nominal time); set idempotency_key on the schedule instead";
            return Err(FieldError::new("task.idempotency_key", msg));
        }
        if !self.task.depends_on.is_empty() {
            return Err(FieldError::new("task.depends_on", "a schedule's runs cannot depend on tasks"));
        }
        if self.task.origin != TaskOrigin::Api {
            return Err(FieldError::new("task.origin", "is set by the cluster"));
        }
        Ok(())
    }
}

/// Why and since when a schedule is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// The operator's note.
    pub note: Option<String>,
    /// When it was paused.
    pub since_ms: u64,
}

/// What a schedule did, counted in apply (so every replica reports the same numbers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleCounters {
    /// Calendar fires that started a run (directly, or later from the buffer).
    pub fired: u64,
    /// Due fires given up by the catch-up policy (or while paused).
    pub missed: u64,
    /// Fires not started because a run was live (`forbid`).
    pub skipped: u64,
    /// Fires dropped because the one-slot buffer was full (`buffer_one`).
    pub dropped: u64,
    /// Runs started by `trigger`.
    pub triggered: u64,
    /// Runs started by `backfill`.
    pub backfilled: u64,
    /// Live runs cancelled by `replace`.
    pub replaced: u64,
}

/// A schedule as the cluster keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Its id.
    pub id: ScheduleId,
    /// What the user asked for.
    pub spec: ScheduleSpec,
    /// Bumped by every update; a fire planned for an older version is refused.
    pub version: u64,
    /// When it was created (a never-fired schedule catches up from here, not from the epoch).
    pub created_ms: u64,
    /// Last change.
    pub updated_ms: u64,
    /// Set while paused.
    pub paused: Option<Pause>,
    /// When it was last resumed: fires due while it was paused are missed, not caught up.
    pub resumed_ms: Option<u64>,
    /// The high-water mark: every calendar time at or below it is decided (fired, skipped or
    /// missed). Never decreases.
    pub last_nominal_ms: Option<u64>,
    /// Counters.
    pub counters: ScheduleCounters,
    /// Runs ever started (the runs themselves are indexed in the state, see [`Runs`]).
    pub runs: u64,
    /// Runs not yet terminal: task ids, or workflow ids for a workflow schedule ([`RunKind`]).
    pub live: BTreeSet<TaskId>,
    /// `buffer_one`: the nominal time waiting for the live run to end.
    pub buffered: Option<u64>,
}

/// A schedule's runs by identity, kept in the state beside the schedule (a schedule stays
/// small, whatever its age, so answers can carry it). The ids are task ids, or workflow ids
/// for a workflow schedule ([`RunKind`]). Persistent maps: they grow with every fire, and a
/// frozen copy of the state shares them (their bytes are those of `BTreeMap`s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runs {
    /// Calendar and backfill runs, by nominal time: a run's identity.
    pub calendar: imbl::OrdMap<u64, TaskId>,
    /// Manual runs (`trigger`), by the time of the trigger; apart, so that a trigger at the same
    /// millisecond as a calendar time cannot hide that fire.
    pub manual: imbl::OrdMap<u64, TaskId>,
}

impl Schedule {
    /// Its calendar (anchored at `start`, else at its creation time).
    pub fn calendar(&self) -> Result<super::calendar::Calendar, FieldError> {
        let spec = &self.spec;
        super::calendar::Calendar::new(
            &spec.trigger,
            &spec.time_zone,
            spec.start_ms,
            spec.end_ms,
            spec.start_ms.unwrap_or(self.created_ms),
        )
    }

    /// The instant after which the calendar is still undecided: the mark, the resume time, or
    /// (never fired) just before creation.
    pub fn plan_after(&self) -> u64 {
        let never = self.created_ms.saturating_sub(1);
        let mark = self.last_nominal_ms.unwrap_or(never);
        mark.max(never)
    }
}

fn reject(code: RejectCode, message: impl Into<String>) -> Response {
    Response::Rejected(Rejection::new(code, message))
}

fn unknown(id: ScheduleId) -> Response {
    reject(RejectCode::NotFound, format!("schedule {id} does not exist"))
}

impl State {
    /// One schedule.
    pub fn schedule(&self, id: ScheduleId) -> Option<&Schedule> {
        self.schedules.get(&id)
    }

    /// Every schedule, in id order.
    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> + '_ {
        self.schedules.values()
    }

    pub(crate) fn create_schedule(
        &mut self,
        request_id: Option<String>,
        now_ms: u64,
        spec: ScheduleSpec,
        paused: bool,
    ) -> Response {
        if let Some(recorded) = request_id.as_deref().and_then(|rid| self.requests.get(rid)) {
            return match recorded {
                Recorded::Schedule(id) => self.schedule_answer(*id, false),
                _ => reject(RejectCode::IdempotencyMismatch, "request_id was used before for another request"),
            };
        }
        if let Err(e) = spec.validate_replicated() {
            return reject(RejectCode::Invalid, e.to_string());
        }
        if let Some(id) = spec.idempotency_key.as_ref().and_then(|k| self.schedule_keys.get(k)) {
            let id = *id;
            if self.schedules.get(&id).is_some_and(|s| s.spec != spec) {
                return reject(
                    RejectCode::IdempotencyMismatch,
                    format!("idempotency_key was used for schedule {id} with a different body"),
                );
            }
            return self.schedule_answer(id, false);
        }
        if self.schedules.len() >= MAX_SCHEDULES {
            return reject(RejectCode::Invalid, format!("the cluster holds {MAX_SCHEDULES} schedules, the limit"));
        }
        let id = self.next_schedule_id;
        self.next_schedule_id += 1;
        if let Some(key) = &spec.idempotency_key {
            self.schedule_keys.insert(key.clone(), id);
        }
        let schedule = Schedule {
            id,
            spec,
            version: 1,
            created_ms: now_ms,
            updated_ms: now_ms,
            paused: paused.then(|| Pause { note: Some("created paused".into()), since_ms: now_ms }),
            resumed_ms: None,
            last_nominal_ms: None,
            counters: ScheduleCounters::default(),
            runs: 0,
            live: BTreeSet::new(),
            buffered: None,
        };
        self.schedules.insert(id, schedule);
        self.schedule_runs.insert(id, Runs::default());
        if let Some(rid) = request_id {
            self.requests.record(rid, Recorded::Schedule(id));
        }
        self.schedule_answer(id, true)
    }

    fn schedule_answer(&self, id: ScheduleId, created: bool) -> Response {
        match self.schedules.get(&id) {
            Some(s) => Response::Schedule { schedule: Box::new(s.clone()), created, started: Vec::new() },
            None => unknown(id),
        }
    }

    pub(crate) fn update_schedule(&mut self, now_ms: u64, id: ScheduleId, spec: ScheduleSpec) -> Response {
        if let Err(e) = spec.validate_replicated() {
            return reject(RejectCode::Invalid, e.to_string());
        }
        let Some(s) = self.schedules.get_mut(&id) else { return unknown(id) };
        if s.spec.idempotency_key != spec.idempotency_key {
            return reject(RejectCode::Invalid, "idempotency_key: cannot change after creation");
        }
        let (was, will) = (s.spec.run_kind(), spec.run_kind());
        if was != will && s.runs > 0 {
            // Its runs index and recorded triggers hold ids of the old kind.
            let msg = format!(
                "schedule {id} has started {} run(s) as {}s; its runs stay {}s (create another schedule to fire {}s)",
                s.runs,
                was.as_str(),
                was.as_str(),
                will.as_str()
            );
            return reject(RejectCode::InvalidTransition, msg);
        }
        s.spec = spec;
        s.version += 1;
        s.updated_ms = now_ms;
        self.schedule_answer(id, false)
    }

    pub(crate) fn pause_schedule(&mut self, now_ms: u64, id: ScheduleId, note: Option<String>) -> Response {
        let Some(s) = self.schedules.get_mut(&id) else { return unknown(id) };
        let note = note.map(|n| super::task::truncate(n, MAX_NOTE_BYTES, false));
        match &mut s.paused {
            // Pausing again only changes the note.
            Some(p) => p.note = note,
            None => s.paused = Some(Pause { note, since_ms: now_ms }),
        }
        s.updated_ms = now_ms;
        self.schedule_answer(id, false)
    }

    pub(crate) fn resume_schedule(&mut self, now_ms: u64, id: ScheduleId) -> Response {
        let Some(s) = self.schedules.get_mut(&id) else { return unknown(id) };
        if s.paused.take().is_some() {
            s.resumed_ms = Some(now_ms);
            s.updated_ms = now_ms;
            // A fire buffered before the pause whose run ended meanwhile starts now.
            if s.live.is_empty()
                && let Some(nominal) = s.buffered.take()
            {
                s.counters.fired += 1;
                self.start_run(now_ms, id, nominal, false);
            }
        }
        self.schedule_answer(id, false)
    }

    pub(crate) fn delete_schedule(&mut self, now_ms: u64, id: ScheduleId, cancel_runs: bool) -> Response {
        let Some(s) = self.schedules.remove(&id) else { return unknown(id) };
        self.schedule_runs.remove(&id);
        self.forgotten_runs.remove(&id);
        if let Some(key) = &s.spec.idempotency_key {
            self.schedule_keys.remove(key);
        }
        let mut cancelled = Vec::new();
        if cancel_runs {
            let kind = s.spec.run_kind();
            for &run in &s.live {
                if self.cancel_run(now_ms, kind, run, format!("schedule {id} was deleted")) {
                    cancelled.push(run);
                }
            }
        }
        Response::ScheduleDeleted { schedule: Box::new(s), cancelled }
    }

    /// The leader's calendar decided that `nominal` are due (and everything up to `advance_to`
    /// is decided). See the module doc for the rules.
    #[allow(clippy::too_many_arguments, reason = "the fields of one command")]
    pub(crate) fn fire_schedule(
        &mut self,
        now_ms: u64,
        id: ScheduleId,
        version: u64,
        mut nominal: Vec<u64>,
        advance_to: u64,
        missed: u64,
    ) -> Response {
        let Some(s) = self.schedules.get(&id) else { return unknown(id) };
        if version != s.version {
            let msg = format!("schedule {id} is at version {}; this fire was planned for version {version}", s.version);
            return reject(RejectCode::StaleVersion, msg);
        }
        if s.paused.is_some() {
            return reject(RejectCode::InvalidTransition, format!("schedule {id} is paused"));
        }
        if nominal.len() > MAX_FIRES_PER_COMMAND {
            return reject(RejectCode::Invalid, format!("more than {MAX_FIRES_PER_COMMAND} fires in one command"));
        }
        nominal.sort_unstable();
        nominal.dedup();
        if let Some(&last) = nominal.last()
            && last > now_ms
        {
            let msg =
                format!("nominal time {last} is later than the proposer's clock ({now_ms}): the future cannot fire");
            return reject(RejectCode::Invalid, msg);
        }
        if advance_to > now_ms {
            let msg = format!("advance_to {advance_to} is later than the proposer's clock ({now_ms})");
            return reject(RejectCode::Invalid, msg);
        }
        let mark = s.last_nominal_ms;
        let new: Vec<u64> = nominal.into_iter().filter(|&n| mark.is_none_or(|m| n > m)).collect();
        let advances = mark.is_none_or(|m| advance_to > m) || !new.is_empty();
        if !advances {
            // Everything here was decided before: a retry, or a second leader's plan.
            return self.schedule_answer(id, false);
        }
        let mut started = Vec::new();
        for n in new {
            if let Some(task_id) = self.fire_one(now_ms, id, n) {
                started.push(task_id);
            }
        }
        let Some(s) = self.schedules.get_mut(&id) else { return unknown(id) };
        let top = s.last_nominal_ms.unwrap_or(0).max(advance_to);
        s.last_nominal_ms = Some(top);
        s.counters.missed += missed;
        match self.schedules.get(&id) {
            Some(s) => Response::Schedule { schedule: Box::new(s.clone()), created: false, started },
            None => unknown(id),
        }
    }

    /// One due nominal time above the mark: the overlap policy decides. Moves the mark.
    fn fire_one(&mut self, now_ms: u64, id: ScheduleId, nominal: u64) -> Option<TaskId> {
        let s = self.schedules.get_mut(&id)?;
        s.last_nominal_ms = Some(s.last_nominal_ms.unwrap_or(0).max(nominal));
        let forgotten_through = self.forgotten_runs.get(&id).and_then(|f| f.calendar_through_ms);
        if self.schedule_runs.get(&id).is_some_and(|r| r.calendar.contains_key(&nominal))
            || forgotten_through.is_some_and(|t| nominal <= t)
        {
            // Backfilled already (a backfill may run a time above the mark), or at or before
            // a run retention forgot, which may have been that backfill.
            return None;
        }
        if !s.live.is_empty() {
            match s.spec.overlap {
                Overlap::Allow => {}
                Overlap::Forbid => {
                    s.counters.skipped += 1;
                    return None;
                }
                Overlap::BufferOne => {
                    if s.buffered.is_none() {
                        s.buffered = Some(nominal);
                    } else {
                        s.counters.dropped += 1;
                    }
                    return None;
                }
                Overlap::Replace => {
                    let kind = s.spec.run_kind();
                    let live: Vec<TaskId> = s.live.iter().copied().collect();
                    for run in live {
                        // A run already asked to stop was counted when it was asked.
                        if self.run_stopping(kind, run) {
                            continue;
                        }
                        if let Some(s) = self.schedules.get_mut(&id) {
                            s.counters.replaced += 1;
                        }
                        let reason = format!("replaced by the run of schedule {id} for nominal time {nominal}");
                        self.cancel_run(now_ms, kind, run, reason);
                    }
                }
            }
        }
        let s = self.schedules.get_mut(&id)?;
        s.counters.fired += 1;
        Some(self.start_run(now_ms, id, nominal, false))
    }

    pub(crate) fn trigger_schedule(&mut self, request_id: Option<String>, now_ms: u64, id: ScheduleId) -> Response {
        if let Some(recorded) = request_id.as_deref().and_then(|rid| self.requests.get(rid)) {
            return match recorded {
                Recorded::Triggered(sid, task_id) if *sid == id => match self.schedules.get(&id) {
                    Some(s) => {
                        Response::Schedule { schedule: Box::new(s.clone()), created: false, started: vec![*task_id] }
                    }
                    None => unknown(id),
                },
                _ => reject(RejectCode::IdempotencyMismatch, "request_id was used before for another request"),
            };
        }
        let Some(s) = self.schedules.get_mut(&id) else { return unknown(id) };
        s.counters.triggered += 1;
        // Two triggers in the same millisecond get distinct identities.
        let mut at = now_ms;
        if let Some(runs) = self.schedule_runs.get(&id) {
            while runs.manual.contains_key(&at) {
                at += 1;
            }
        }
        let task_id = self.start_run(now_ms, id, at, true);
        if let Some(rid) = request_id {
            self.requests.record(rid, Recorded::Triggered(id, task_id));
        }
        match self.schedules.get(&id) {
            Some(s) => Response::Schedule { schedule: Box::new(s.clone()), created: false, started: vec![task_id] },
            None => unknown(id),
        }
    }

    /// Runs for past nominal times the leader computed from the calendar; times that already
    /// have a run are left alone. The mark does not move. Runs start whatever the overlap
    /// policy says (a backfill is an explicit request for all of them).
    pub(crate) fn backfill_schedule(
        &mut self,
        now_ms: u64,
        id: ScheduleId,
        version: u64,
        nominal: Vec<u64>,
    ) -> Response {
        let Some(s) = self.schedules.get(&id) else { return unknown(id) };
        if version != s.version {
            let msg =
                format!("schedule {id} is at version {}; this backfill was planned for version {version}", s.version);
            return reject(RejectCode::StaleVersion, msg);
        }
        if nominal.len() > MAX_FIRES_PER_COMMAND {
            return reject(RejectCode::Invalid, format!("more than {MAX_FIRES_PER_COMMAND} runs in one backfill"));
        }
        if let Some(&late) = nominal.iter().find(|&&n| n > now_ms) {
            return reject(
                RejectCode::Invalid,
                format!("nominal time {late} is in the future; backfill fills the past"),
            );
        }
        let through = self.forgotten_runs(id).calendar_through_ms;
        if let Some(&early) = nominal.iter().find(|&&n| through.is_some_and(|t| n <= t)) {
            let t = through.unwrap_or_default();
            return reject(
                RejectCode::Invalid,
                format!(
                    "nominal time {early} is at or before {t}, the newest run retention forgot, so whether it ran is no longer known; backfill only later times"
                ),
            );
        }
        let mut started = Vec::new();
        for n in nominal {
            if self.schedule_runs.get(&id).is_some_and(|r| r.calendar.contains_key(&n)) {
                continue;
            }
            let task_id = self.start_run(now_ms, id, n, false);
            self.schedules.get_mut(&id).expect("schedule exists").counters.backfilled += 1;
            started.push(task_id);
        }
        match self.schedules.get(&id) {
            Some(s) => Response::Schedule { schedule: Box::new(s.clone()), created: false, started },
            None => unknown(id),
        }
    }
}

/// The leader's decision for one schedule at `now_ms` (its trusted clock): the
/// `FireSchedule` to propose, or `None` when nothing is due. Pure: the same schedule,
/// calendar and instant always give the same command.
///
/// Times due while the schedule was paused (between the mark and its resume) are missed, not
/// caught up; the rest follows the catch-up policy ([`super::calendar::plan`]).
pub fn plan_fire(s: &Schedule, cal: &super::calendar::Calendar, now_ms: u64) -> Option<super::Command> {
    if s.paused.is_some() {
        return None;
    }
    let mut after = s.plan_after();
    let mut missed = 0;
    if let Some(resumed) = s.resumed_ms {
        let floor = resumed.saturating_sub(1).min(now_ms);
        if floor > after {
            missed = count_between(cal, after, floor);
            after = floor;
        }
    }
    let spec = &s.spec;
    let plan = super::calendar::plan(
        cal,
        after,
        now_ms,
        spec.catch_up,
        spec.catch_up_window_ms,
        spec.jitter_ms,
        super::calendar::MAX_FIRES_PER_PLAN,
    );
    let (nominal, advance_to, plan_missed) = match plan {
        Some(p) => (p.nominal, p.advance_to.max(after), p.missed),
        // Only the paused span to close: move the mark past it once.
        None if missed > 0 => (Vec::new(), after, 0),
        None => return None,
    };
    Some(super::Command::FireSchedule {
        now_ms,
        id: s.id,
        version: s.version,
        nominal,
        advance_to,
        missed: missed + plan_missed,
    })
}

/// When the leader should next look at `s`: its next nominal time plus its jitter, or
/// `None` when it will never fire again (or is paused).
pub fn next_fire_at(s: &Schedule, cal: &super::calendar::Calendar) -> Option<(u64, u64)> {
    if s.paused.is_some() {
        return None;
    }
    let after = s.plan_after().max(s.resumed_ms.map_or(0, |r| r.saturating_sub(1)));
    let nominal = cal.next_after(after)?;
    Some((nominal, nominal + super::calendar::jitter(s.id, nominal, s.spec.jitter_ms)))
}

/// Calendar times in `(after, upto]`, counted up to a bound (a long pause of a per-second
/// schedule does not make the leader count forever; the count saturates).
fn count_between(cal: &super::calendar::Calendar, after: u64, upto: u64) -> u64 {
    const MAX_COUNTED: u64 = 100_000;
    let mut n = 0;
    let mut at = after;
    while n < MAX_COUNTED {
        match cal.next_after(at) {
            Some(t) if t <= upto => {
                n += 1;
                at = t;
            }
            _ => break,
        }
    }
    n
}
