//! The calendar loop: the leader fires schedules.
//!
//! Only the leader evaluates calendars. It keeps, in memory, a queue of each schedule's next
//! fire time (nominal time + jitter), sleeps until the earliest, asks the pure planner
//! ([`schedule::plan_fire`]) what is due, and commits the `FireSchedule` commands of one wake
//! as one log entry. apply de-duplicates by the schedule's high-water mark, so a retry, a
//! second leader or a stale one cannot fire a nominal time twice; this loop only decides *when*.
//!
//! The queue is rebuilt from the state on election and every [`RESYNC`], and refreshed at
//! once for every schedule a committed command touched ([`super::LeaderState::after_write`]).
//!
//! **Clock safety.** The loop never fires by a clock ahead of the voters' median: when its own
//! wall clock is more than a second ahead of the median it fires by the median
//! ([`super::clock`]), and it fires nothing before the first comparison has finished. Without a
//! majority's answer it falls back to [`FireClock`]: each wall-clock reading is checked against
//! the monotonic clock since the last one, and a wall clock that jumped ahead by more than
//! [`MAX_CLOCK_JUMP`] is not believed. A leader whose clock runs behind fires late; nothing
//! fires twice whatever the clocks do (the mark holds).

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clock::ClusterClock;
use crate::node::Node;
use crate::scheduler::Command;
use crate::scheduler::Response;
use crate::scheduler::Schedule;
use crate::scheduler::ScheduleId;
use crate::scheduler::calendar::Calendar;
use crate::scheduler::schedule;
use crate::util::now_ms;

/// Full rebuild of the queue from the state, as a safety net behind the targeted refreshes.
pub const RESYNC: Duration = Duration::from_secs(5);
/// Longest sleep of the loop.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// A wall-clock step forward larger than this, against the monotonic clock, is not believed.
pub const MAX_CLOCK_JUMP: Duration = Duration::from_millis(1000);
/// Most `FireSchedule` commands in one log entry.
const MAX_FIRES_PER_ENTRY: usize = 512;

/// The leader's wall clock, guarded by its monotonic clock (see the module doc).
pub struct FireClock {
    last_ms: u64,
    last_mono: std::time::Instant,
    /// How far ahead of the trusted time the wall clock was at the last reading (0: agreed).
    pub ahead_ms: u64,
}

impl FireClock {
    /// Trusts the wall clock as it is now.
    pub fn new() -> Self {
        FireClock { last_ms: now_ms(), last_mono: std::time::Instant::now(), ahead_ms: 0 }
    }

    /// The trusted time now, from a wall-clock reading `wall_ms` at monotonic instant `mono`.
    pub fn read_at(&mut self, wall_ms: u64, mono: std::time::Instant) -> u64 {
        let expected = self.last_ms + mono.saturating_duration_since(self.last_mono).as_millis() as u64;
        let trusted = if wall_ms > expected + MAX_CLOCK_JUMP.as_millis() as u64 {
            let ahead = wall_ms - expected;
            if self.ahead_ms == 0 {
                tracing::warn!(
                    ahead_ms = ahead,
                    "the wall clock jumped ahead of the monotonic clock; firing schedules by the monotonic clock until \
                     they agree again (nothing fires early)"
                );
            }
            self.ahead_ms = ahead;
            expected
        } else {
            if self.ahead_ms != 0 {
                tracing::info!("the wall clock agrees with the monotonic clock again; firing by it");
                self.ahead_ms = 0;
            }
            wall_ms
        };
        self.last_ms = trusted;
        self.last_mono = mono;
        trusted
    }

    /// Trusts `trusted_ms` as the time at `mono` (a fire time taken from the voters' median).
    pub fn reseed(&mut self, trusted_ms: u64, mono: std::time::Instant) {
        self.last_ms = trusted_ms;
        self.last_mono = mono;
    }
}

impl Default for FireClock {
    fn default() -> Self {
        Self::new()
    }
}

/// What the loop remembers about one schedule.
struct Entry {
    /// (version, mark, paused, resumed) it was planned from.
    key: (u64, u64, bool, Option<u64>),
    /// The calendar of `version` (None: it does not parse any more, e.g. a zone this build lacks).
    calendar: Option<Arc<Calendar>>,
    /// When to look at it next (nominal + jitter).
    fire_at: Option<u64>,
}

fn key_of(s: &Schedule) -> (u64, u64, bool, Option<u64>) {
    (s.version, s.plan_after(), s.paused.is_some(), s.resumed_ms)
}

#[derive(Default)]
struct Queue {
    entries: HashMap<ScheduleId, Entry>,
    by_time: BTreeSet<(u64, ScheduleId)>,
}

impl Queue {
    /// Brings `id`'s entry in line with `s` (None: deleted).
    fn refresh(&mut self, id: ScheduleId, s: Option<&Schedule>) {
        let Some(s) = s else {
            if let Some(old) = self.entries.remove(&id)
                && let Some(at) = old.fire_at
            {
                self.by_time.remove(&(at, id));
            }
            return;
        };
        let key = key_of(s);
        if self.entries.get(&id).is_some_and(|e| e.key == key) {
            return;
        }
        let calendar = match self.entries.get(&id) {
            Some(e) if e.key.0 == s.version => e.calendar.clone(),
            _ => match s.calendar() {
                Ok(cal) => Some(Arc::new(cal)),
                Err(e) => {
                    tracing::error!(schedule = id, error = %e, "schedule's calendar does not parse; it will not fire");
                    None
                }
            },
        };
        let fire_at = calendar.as_deref().and_then(|cal| schedule::next_fire_at(s, cal)).map(|(_, at)| at);
        if let Some(old) = self.entries.remove(&id)
            && let Some(at) = old.fire_at
        {
            self.by_time.remove(&(at, id));
        }
        if let Some(at) = fire_at {
            self.by_time.insert((at, id));
        }
        self.entries.insert(id, Entry { key, calendar, fire_at });
    }

    /// Recomputes `id`'s next fire even if its key did not change; a fire still due is put
    /// off to `not_before`.
    fn replan(&mut self, id: ScheduleId, s: Option<&Schedule>, not_before: u64) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.key.1 = u64::MAX;
        }
        self.refresh(id, s);
        if let Some(e) = self.entries.get_mut(&id)
            && let Some(at) = e.fire_at
            && at < not_before
        {
            self.by_time.remove(&(at, id));
            self.by_time.insert((not_before, id));
            e.fire_at = Some(not_before);
        }
    }

    fn resync(&mut self, node: &Node) {
        let (present, schedules): (BTreeSet<ScheduleId>, Vec<Schedule>) = node.view.read(|a| {
            let mut present = BTreeSet::new();
            let mut changed = Vec::new();
            for s in a.state.schedules() {
                present.insert(s.id);
                if self.entries.get(&s.id).is_none_or(|e| e.key != key_of(s)) {
                    changed.push(s.clone());
                }
            }
            (present, changed)
        });
        let gone: Vec<ScheduleId> = self.entries.keys().filter(|id| !present.contains(id)).copied().collect();
        for id in gone {
            self.refresh(id, None);
        }
        for s in &schedules {
            self.refresh(s.id, Some(s));
        }
    }
}

/// The time to fire by: the voters' median clock when this leader's own is ahead of it (see
/// [`super::clock`]), else its own; without a majority's answer, the monotonic guard's reading.
/// Also this leader's wall clock minus the median, when known.
pub(super) fn fire_now(clock: &mut FireClock, cluster: &ClusterClock) -> (u64, Option<i64>) {
    let wall = now_ms();
    let mono = std::time::Instant::now();
    let guarded = clock.read_at(wall, mono);
    match cluster.fire_time(wall, mono) {
        None => (guarded, None),
        Some((t, wall_minus_median)) => {
            // Should the estimate be lost, the guard starts from the median's time.
            clock.reseed(t, mono);
            (t, Some(wall_minus_median))
        }
    }
}

/// Records the commit lateness of the fires in `chunk` that apply accepted (`resp` answers it).
fn record_committed(node: &Node, chunk: &[Command], resp: &Response, committed_ms: u64) {
    let answers: Vec<&Response> = match resp {
        Response::Many { responses } if chunk.len() > 1 => responses.iter().collect(),
        one => vec![one],
    };
    node.leader.with_calendar(|c| {
        for (cmd, answer) in chunk.iter().zip(answers) {
            if let (Command::FireSchedule { nominal, .. }, Response::Schedule { .. }) = (cmd, answer) {
                nominal.iter().for_each(|&n| c.record_fire(committed_ms.saturating_sub(n)));
            }
        }
    });
}

/// Runs until `token` is cancelled (leadership lost or shutdown).
pub async fn run(node: Arc<Node>, token: CancellationToken) {
    node.leader.with_calendar(|c| *c = Default::default());
    let cluster = Arc::new(ClusterClock::default());
    let probe = tokio::spawn(super::clock::run(node.clone(), cluster.clone(), token.clone()));
    let _stop_probe = AbortOnDrop(probe);
    // Nothing fires before this leader has compared its clock with the voters' (a fraction of
    // a millisecond on a LAN; bounded when some voters do not answer).
    cluster.first_probe(Duration::from_secs(1)).await;
    // Retention stamps its horizon by the same guarded clock.
    let retention = tokio::spawn(super::retention::run(node.clone(), cluster.clone(), token.clone()));
    let _stop_retention = AbortOnDrop(retention);
    let mut clock = FireClock::new();
    let mut queue = Queue::default();
    queue.resync(&node);
    let mut last_resync = Instant::now();
    tracing::info!(schedules = queue.entries.len(), "calendar loop running");
    loop {
        let (now, _) = fire_now(&mut clock, &cluster);
        let sleep = match queue.by_time.first() {
            Some(&(at, _)) if at <= now => Duration::ZERO,
            Some(&(at, _)) => Duration::from_millis(at - now).min(MAX_SLEEP),
            None => MAX_SLEEP,
        };
        if !sleep.is_zero() {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = node.leader.schedules_changed.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
        if token.is_cancelled() {
            return;
        }
        for id in node.leader.take_changed_schedules() {
            let s = node.view.read(|a| a.state.schedule(id).cloned());
            queue.refresh(id, s.as_ref());
        }
        if last_resync.elapsed() >= RESYNC {
            queue.resync(&node);
            last_resync = Instant::now();
        }
        let (now, skew) = fire_now(&mut clock, &cluster);
        node.leader.with_calendar(|c| c.wall_minus_median_ms = skew);
        let due: Vec<ScheduleId> = queue.by_time.iter().take_while(|(at, _)| *at <= now).map(|&(_, id)| id).collect();
        if due.is_empty() {
            continue;
        }
        let commands: Vec<Command> = node.view.read(|a| {
            due.iter()
                .filter_map(|id| {
                    let s = a.state.schedule(*id)?;
                    let cal = queue.entries.get(id)?.calendar.clone()?;
                    schedule::plan_fire(s, &cal, now)
                })
                .collect()
        });
        for chunk in commands.chunks(MAX_FIRES_PER_ENTRY) {
            let cmd = if chunk.len() == 1 { chunk[0].clone() } else { Command::Many { commands: chunk.to_vec() } };
            let deadline = Instant::now() + node.config.request_timeout;
            match node.write(cmd, deadline).await {
                Ok(resp) => {
                    log_refusals(&resp);
                    let (committed, _) = fire_now(&mut clock, &cluster);
                    record_committed(&node, chunk, &resp, committed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, fires = chunk.len(), "could not commit schedule fires; will retry");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // Replan the due ones from the state now, so the next wake does not pick them again;
        // one whose fire is still due (its write failed, or it was planned from a stale view)
        // is looked at again shortly, not in a busy loop.
        let retry_at = now + 100;
        for id in due {
            let s = node.view.read(|a| a.state.schedule(id).cloned());
            queue.replan(id, s.as_ref(), retry_at);
        }
    }
}

/// Aborts the probe task when the loop ends (leadership lost, or the loop's future dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn log_refusals(resp: &Response) {
    match resp {
        Response::Many { responses } => responses.iter().for_each(log_refusals),
        Response::Rejected(r) => tracing::info!(reason = %r, "a fire was refused by apply"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_jump_ahead_is_not_believed_but_a_small_drift_is() {
        let mono = std::time::Instant::now();
        let mut c = FireClock { last_ms: 1_000_000, last_mono: mono, ahead_ms: 0 };
        // 500 ms later on both clocks, plus 20 ms of drift: believed.
        assert_eq!(c.read_at(1_000_520, mono + Duration::from_millis(500)), 1_000_520);
        // The wall clock jumps 30 s ahead while 100 ms pass: the monotonic time is used.
        assert_eq!(c.read_at(1_030_620, mono + Duration::from_millis(600)), 1_000_620);
        assert!(c.ahead_ms >= 29_000);
        // Still ahead later: still not believed.
        assert_eq!(c.read_at(1_031_620, mono + Duration::from_millis(1600)), 1_001_620);
        // The wall clock comes back: believed again.
        assert_eq!(c.read_at(1_001_700, mono + Duration::from_millis(1680)), 1_001_700);
        assert_eq!(c.ahead_ms, 0);
        // A step back is believed (fires late, never twice).
        assert_eq!(c.read_at(990_000, mono + Duration::from_millis(1700)), 990_000);
    }
}
