//! Choosing a migration off an overloaded worker (see `scheduler::migrate` for the whole path).
//!
//! The leader feeds every heartbeat's load into [`LoadStreaks`] (leader memory, never
//! replicated) and asks [`choose_migration`] after dispatch rounds. Both are pure: a function of
//! the reports, the state and the clock, so the unit tests below pin every rule.
//!
//! **Hysteresis.** A worker's *level* is the larger of its CPU busy fraction and its memory
//! fraction. A report at or above `high_water` adds one to the worker's hot streak; any report
//! below it resets the streak to 0 (the "stays above for N heartbeats"). A worker is a
//! *source* once its streak reaches `heartbeats`; a worker is a *target* only while its latest
//! report (fresher than `fresh_ms`) is below `low_water`, strictly lower than `high_water`, so
//! a worker between the marks is neither: two workers near one mark never trade tasks back and
//! forth. After a migration both workers' streaks restart at 0 and neither is a source or a
//! target again for `interval_ms` (one migration per worker per interval).
//!
//! **Choice.** Sources by highest level, then worker id. On a source, only workers that obey
//! the `migrated` stop order are considered, and only when no migration of theirs is still in
//! flight. Its tasks that pass `migrate::refusal` (running, `resume`, min runtime, hourly cap,
//! not being cancelled, preempted or migrated) are taken in order: least work lost since the
//! last checkpoint, then newest start, then lowest id. The first task that fits (slots,
//! resources, labels) on some target goes to the least loaded such target, then lowest id.

use std::collections::{BTreeMap, BTreeSet};

use super::super::migrate::{MigrateRules, refusal};
use super::super::preempt::work_lost_ms;
use super::super::state::State;
use super::super::task::AttemptId;
use super::super::worker::WorkerState;
use super::seat::Seat;

/// Default of [`MigrationOptions::high_water`].
pub const DEFAULT_MIGRATION_HIGH_WATER: f64 = 0.9;
/// Default of [`MigrationOptions::low_water`].
pub const DEFAULT_MIGRATION_LOW_WATER: f64 = 0.5;
/// Default of [`MigrationOptions::heartbeats`].
pub const DEFAULT_MIGRATION_HEARTBEATS: u32 = 3;
/// Default of [`MigrationOptions::interval_ms`].
pub const DEFAULT_MIGRATION_INTERVAL_MS: u64 = 60_000;

/// The leader's migration settings (leader-local but for `rules`, which travel in the command).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationOptions {
    /// A report at or above this level counts towards a worker's hot streak.
    pub high_water: f64,
    /// A worker whose latest report is below this level may receive a task.
    pub low_water: f64,
    /// Consecutive reports at or above `high_water` that make a worker a source (N).
    pub heartbeats: u32,
    /// After a migration, neither worker takes part in another for this long.
    pub interval_ms: u64,
    /// A target's latest report must be at most this old.
    pub fresh_ms: u64,
    /// The rules apply re-checks.
    pub rules: MigrateRules,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            high_water: DEFAULT_MIGRATION_HIGH_WATER,
            low_water: DEFAULT_MIGRATION_LOW_WATER,
            heartbeats: DEFAULT_MIGRATION_HEARTBEATS,
            interval_ms: DEFAULT_MIGRATION_INTERVAL_MS,
            fresh_ms: 3_000,
            rules: MigrateRules::default(),
        }
    }
}

/// One load report, as fractions of the machine (0 to 1).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    /// CPU busy fraction.
    pub cpu: f64,
    /// Memory in use over memory total.
    pub mem: f64,
}

impl Load {
    /// The larger of the two fractions: what the water marks compare.
    pub fn level(&self) -> f64 {
        self.cpu.max(self.mem)
    }

    /// The resource at the level, for people: `cpu 0.97` or `mem 0.93`.
    fn describe(&self) -> String {
        if self.cpu >= self.mem { format!("cpu {:.2}", self.cpu) } else { format!("mem {:.2}", self.mem) }
    }
}

/// What the leader remembers of one worker's reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Streak {
    /// Consecutive reports at or above the high-water mark.
    pub hot: u32,
    /// The latest report.
    pub last: Load,
    /// When it arrived (leader clock).
    pub at_ms: u64,
    /// When this worker last took part in a migration, either side.
    pub migrated_ms: Option<u64>,
}

/// Every worker's streak. Leader memory: a new leader starts from nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStreaks {
    workers: BTreeMap<String, Streak>,
}

impl LoadStreaks {
    /// Records `worker`'s report `load` at `now_ms`.
    pub fn observe(&mut self, worker: &str, load: Load, now_ms: u64, options: &MigrationOptions) {
        let s = self.workers.entry(worker.to_string()).or_default();
        s.hot = if load.level() >= options.high_water { s.hot.saturating_add(1) } else { 0 };
        s.last = load;
        s.at_ms = now_ms;
    }

    /// A migration between `from` and `to` was committed at `now_ms`: both streaks restart.
    pub fn migrated(&mut self, from: &str, to: &str, now_ms: u64) {
        for w in [from, to] {
            let s = self.workers.entry(w.to_string()).or_default();
            s.hot = 0;
            s.migrated_ms = Some(now_ms);
        }
    }

    /// Forgets a worker (lost or removed).
    pub fn forget(&mut self, worker: &str) {
        self.workers.remove(worker);
    }

    /// Forgets everything (a new term).
    pub fn clear(&mut self) {
        self.workers.clear();
    }

    /// `worker`'s streak, if it reported.
    pub fn get(&self, worker: &str) -> Option<&Streak> {
        self.workers.get(worker)
    }

    fn resting(s: &Streak, now_ms: u64, options: &MigrationOptions) -> bool {
        s.migrated_ms.is_some_and(|t| now_ms < t.saturating_add(options.interval_ms))
    }
}

/// The leader's choice: stop `attempt` on `from` so that it resumes on `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The attempt to stop.
    pub attempt: AttemptId,
    /// The overloaded worker.
    pub from: String,
    /// The under-loaded target.
    pub to: String,
    /// Why, for people: `cpu 0.97 for 3 heartbeats; w2 at cpu 0.10 mem 0.20`.
    pub why: String,
}

/// The migration to commit now, if any (see the module docs). `live` holds the workers whose
/// lease the leader holds as alive; `capable` those that obey the `migrated` stop order.
pub fn choose_migration(
    state: &State,
    live: &BTreeSet<String>,
    capable: &BTreeSet<String>,
    streaks: &LoadStreaks,
    now_ms: u64,
    options: &MigrationOptions,
) -> Option<Migration> {
    let active = |id: &str| live.contains(id) && state.worker(id).is_some_and(|w| w.state == WorkerState::Active);
    let mut sources: Vec<(&String, &Streak)> = streaks
        .workers
        .iter()
        .filter(|(id, s)| {
            s.hot >= options.heartbeats.max(1)
                && capable.contains(*id)
                && active(id)
                && !LoadStreaks::resting(s, now_ms, options)
        })
        .collect();
    sources.sort_by(|a, b| b.1.last.level().total_cmp(&a.1.last.level()).then_with(|| a.0.cmp(b.0)));
    let mut targets: Vec<(&String, &Streak)> = streaks
        .workers
        .iter()
        .filter(|(id, s)| {
            s.last.level() < options.low_water
                && s.last.level() < options.high_water
                && now_ms.saturating_sub(s.at_ms) <= options.fresh_ms
                && active(id)
                && !LoadStreaks::resting(s, now_ms, options)
        })
        .collect();
    targets.sort_by(|a, b| a.1.last.level().total_cmp(&b.1.last.level()).then_with(|| a.0.cmp(b.0)));
    if targets.is_empty() {
        return None;
    }
    for (from, streak) in sources {
        // One at a time per worker: wait for the one in flight to stop.
        let in_flight =
            state.live_tasks_on(from).filter_map(|id| state.task(id)).any(|t| state.migrate_requested(t).is_some());
        if in_flight {
            continue;
        }
        let mut tasks: Vec<_> = state
            .live_tasks_on(from)
            .filter_map(|id| state.task(id))
            .filter_map(|t| {
                let token = t.live_attempt()?.fencing_token;
                refusal(t, token, from, state.migration_of(t.id), now_ms, &options.rules)
                    .is_none()
                    .then_some((t, token))
            })
            .collect();
        tasks.sort_by_key(|(t, _)| {
            let started = t.live_attempt().and_then(|a| a.started_ms).unwrap_or(0);
            (work_lost_ms(t, now_ms), std::cmp::Reverse(started), t.id)
        });
        for (task, token) in tasks {
            let fits =
                |to: &str| to != from.as_str() && state.worker(to).is_some_and(|w| Seat::of(state, w).fits(&task.spec));
            if let Some((to, target)) = targets.iter().find(|(to, _)| fits(to)) {
                let why = format!(
                    "{} for {} heartbeats; {to} at cpu {:.2} mem {:.2}",
                    streak.last.describe(),
                    streak.hot,
                    target.last.cpu,
                    target.last.mem
                );
                let attempt = AttemptId::new(task.id, token);
                return Some(Migration { attempt, from: from.clone(), to: (*to).clone(), why });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::task::{FailoverPolicy, TaskSpec};
    use crate::scheduler::{Command, Response, WorkerRegistration};

    const HOT: Load = Load { cpu: 0.97, mem: 0.2 };
    const COLD: Load = Load { cpu: 0.1, mem: 0.2 };
    const BAND: Load = Load { cpu: 0.7, mem: 0.2 };

    fn options() -> MigrationOptions {
        MigrationOptions {
            rules: MigrateRules { min_runtime_ms: 1000, max_per_hour: 2 },
            ..MigrationOptions::default()
        }
    }

    /// Workers a and b (2 slots each); tasks 1 and 2 run on a since t=1000 (task 2 restarts
    /// from scratch); `now` is 20 000.
    fn cluster() -> (State, BTreeSet<String>) {
        let mut s = State::default();
        let mut i = 0;
        let mut apply = |s: &mut State, c: Command| {
            i += 1;
            s.apply(i, c)
        };
        for id in ["a", "b"] {
            let r = WorkerRegistration { id: id.into(), slots: 2, ..WorkerRegistration::default() };
            apply(&mut s, Command::RegisterWorker { now_ms: 0, worker: r });
        }
        for (name, failover) in [("one", FailoverPolicy::Resume), ("two", FailoverPolicy::Restart)] {
            let command = vec!["sleep".into(), "60".into()];
            let spec = TaskSpec { name: name.into(), failover, command, ..TaskSpec::default() };
            let reuse = crate::scheduler::Reuse::SameBody;
            let r = apply(&mut s, Command::Submit { request_id: None, now_ms: 0, spec, reuse });
            assert!(matches!(r, Response::Submitted { .. }), "{r:?}");
        }
        let r = apply(&mut s, Command::Assign { now_ms: 500, assignments: vec![(1, "a".into()), (2, "a".into())] });
        assert!(matches!(r, Response::Assigned { .. }), "{r:?}");
        let token = s.task(1).unwrap().live_attempt().unwrap().fencing_token;
        for id in [1, 2] {
            apply(&mut s, Command::AttemptStarted { now_ms: 1000, task_id: id, token });
        }
        (s, BTreeSet::from(["a".to_string(), "b".to_string()]))
    }

    fn feed(streaks: &mut LoadStreaks, worker: &str, loads: &[Load], from_ms: u64) {
        for (i, l) in loads.iter().enumerate() {
            streaks.observe(worker, *l, from_ms + i as u64 * 1000, &options());
        }
    }

    #[test]
    fn n_minus_one_hot_reports_migrate_nothing_and_the_nth_migrates_one_resumable_task() {
        let (state, live) = cluster();
        let mut st = LoadStreaks::default();
        feed(&mut st, "a", &[HOT, HOT], 18_000);
        feed(&mut st, "b", &[COLD], 19_500);
        assert_eq!(choose_migration(&state, &live, &live, &st, 20_000, &options()), None);
        feed(&mut st, "a", &[HOT], 20_000);
        let m = choose_migration(&state, &live, &live, &st, 20_000, &options()).expect("a migration");
        // Task 2 restarts from scratch: only task 1 may move.
        assert_eq!(m.attempt.task_id, 1);
        assert_eq!((m.from.as_str(), m.to.as_str()), ("a", "b"));
        assert_eq!(m.why, "cpu 0.97 for 3 heartbeats; b at cpu 0.10 mem 0.20");
    }

    #[test]
    fn a_report_below_high_water_resets_the_streak_and_the_band_is_no_target() {
        let (state, live) = cluster();
        let mut st = LoadStreaks::default();
        feed(&mut st, "a", &[HOT, HOT, BAND, HOT, HOT], 15_000);
        feed(&mut st, "b", &[COLD], 19_500);
        assert_eq!(st.get("a").unwrap().hot, 2);
        assert_eq!(choose_migration(&state, &live, &live, &st, 20_000, &options()), None);
        feed(&mut st, "a", &[HOT], 20_000);
        // Three in a row now, but b sits between the marks: not a target.
        feed(&mut st, "b", &[BAND], 20_000);
        assert_eq!(choose_migration(&state, &live, &live, &st, 20_000, &options()), None);
        feed(&mut st, "b", &[COLD], 20_500);
        assert!(choose_migration(&state, &live, &live, &st, 20_500, &options()).is_some());
        // A stale target report does not count.
        assert_eq!(choose_migration(&state, &live, &live, &st, 30_000, &options()), None);
    }

    #[test]
    fn one_migration_per_worker_per_interval_and_the_streak_restarts() {
        let (mut state, live) = cluster();
        let mut st = LoadStreaks::default();
        feed(&mut st, "a", &[HOT, HOT, HOT], 18_000);
        feed(&mut st, "b", &[COLD], 20_000);
        let m = choose_migration(&state, &live, &live, &st, 20_000, &options()).unwrap();
        let cmd = Command::Migrate {
            now_ms: 20_000,
            attempt: m.attempt,
            from: m.from.clone(),
            to: m.to.clone(),
            why: m.why.clone(),
            rules: options().rules,
        };
        assert!(matches!(state.apply(10, cmd), Response::Migrating { .. }));
        st.migrated(&m.from, &m.to, 20_000);
        assert_eq!(st.get("a").unwrap().hot, 0);
        feed(&mut st, "a", &[HOT, HOT, HOT], 21_000);
        feed(&mut st, "b", &[COLD], 23_000);
        assert_eq!(choose_migration(&state, &live, &live, &st, 23_000, &options()), None, "within the interval");
        let later = 20_000 + options().interval_ms;
        feed(&mut st, "a", &[HOT], later);
        feed(&mut st, "b", &[COLD], later);
        // Past the interval, but the first migration is still in flight on a.
        assert_eq!(choose_migration(&state, &live, &live, &st, later, &options()), None);
    }

    #[test]
    fn a_low_water_target_that_fits_is_required_and_old_workers_are_never_sources() {
        let (state, live) = cluster();
        let mut st = LoadStreaks::default();
        feed(&mut st, "a", &[HOT, HOT, HOT], 18_000);
        assert_eq!(choose_migration(&state, &live, &live, &st, 20_000, &options()), None, "no target at all");
        feed(&mut st, "b", &[COLD], 20_000);
        let only_b = BTreeSet::from(["b".to_string()]);
        assert_eq!(choose_migration(&state, &live, &only_b, &st, 20_000, &options()), None, "a cannot obey");
        let only_a = BTreeSet::from(["a".to_string()]);
        assert_eq!(choose_migration(&state, &only_a, &live, &st, 20_000, &options()), None, "b's lease ran out");
        // Too soon after the start: min runtime.
        let early = MigrationOptions { rules: MigrateRules { min_runtime_ms: 60_000, max_per_hour: 2 }, ..options() };
        assert_eq!(choose_migration(&state, &live, &live, &st, 20_000, &early), None);
    }

    #[test]
    fn memory_counts_like_cpu() {
        let (state, live) = cluster();
        let mut st = LoadStreaks::default();
        feed(&mut st, "a", &[Load { cpu: 0.1, mem: 0.95 }; 3], 18_000);
        feed(&mut st, "b", &[COLD], 20_000);
        let m = choose_migration(&state, &live, &live, &st, 20_000, &options()).unwrap();
        assert_eq!(m.why, "mem 0.95 for 3 heartbeats; b at cpu 0.10 mem 0.20");
    }
}
