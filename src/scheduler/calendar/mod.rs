//! Calendars: when a schedule is due. Pure: no clock, no I/O; every function answers the same
//! for the same input, on every replica and across restarts.
//!
//! A schedule's calendar is a [`Trigger`] (cron, a fixed interval, or one instant) read in an
//! IANA time zone, bounded by an optional `start` and `end`. Its fire times are **nominal
//! times**: instants (ms since the epoch) at which it is due, whatever happens to the cluster.
//! The replicated state keeps per schedule a high-water mark, the last nominal time decided;
//! the leader plans from it with [`plan`], and everything here is phrased as "the next time
//! strictly after an instant", so planning that restarts from the saved mark after every fire
//! gives exactly the fires of planning continuously (a proptest below checks it).
//!
//! **Cron** uses [croner](https://docs.rs/croner/2.2.0) to match fields (6 fields with
//! seconds, or 5 with seconds = 0; `L`, `W`, `#`, `@hourly`-style aliases), with the zone database
//! of chrono-tz compiled in. Croner searches local wall-clock time; the walk across daylight
//! saving changes is done here, in real time, segment by segment of constant UTC offset, with
//! the rules of Vixie cron and croner's documentation (OCPS):
//!
//! - a **fixed-time** job (an hour field without `*`, e.g. `0 30 2 * * *`) whose time falls in
//!   a spring-forward gap runs at the first instant after the gap;
//! - a fixed-time job in a fall-back overlap runs once, in the first pass;
//! - **wildcard and step** jobs (an hour field with `*`: `0 0 * * * *`, `0 */15 * * * *`) follow
//!   real time: a time in the gap does not exist and is not run; the repeated hour runs twice.
//!
//! Example, Europe/Stockholm: `0 30 2 * * *` runs on 2025-03-30 at 01:00Z (03:00 CEST, the
//! end of the gap) and on 2025-10-26 once at 00:30Z; `0 0 * * * *` runs on 2025-10-26 at 00:00Z
//! and at 01:00Z (02:00 CEST, then 02:00 CET). Croner alone (2.2.0) would skip the second pass
//! of the hourly job when asked for the next time after the first: it steps in wall-clock time
//! from 02:00 to 03:00.
//!
//! **Intervals** (`every_ms`) are `anchor + k × every_ms` for k ≥ 0, where the anchor is the
//! schedule's `start`, else its creation time: zones play no part. **One-shot** (`at`) is one
//! instant.
//!
//! **Catch-up** ([`CatchUp`], [`plan`]) decides what to do with the times that fell due while
//! nobody fired them (no leader, a paused cluster, a schedule created with a past `start`).

#[cfg(test)]
mod tests;

use std::str::FromStr;

use chrono::DateTime;
use chrono::LocalResult;
use chrono::NaiveDateTime;
use chrono::Offset;
use chrono::SecondsFormat;
use chrono::TimeZone;
use chrono::Timelike as _;
use chrono::Utc;
use chrono_tz::Tz;
use croner::Cron;
use serde::Deserialize;
use serde::Serialize;

use super::FieldError;

/// Shortest interval of an `every_ms` schedule.
pub const MIN_EVERY_MS: u64 = 100;
/// `skip`: the newest due time still fires when it is at most this late.
pub const SKIP_GRACE_MS: u64 = 5_000;
/// Default `catch_up_window_ms` of `fire_once` and `all`.
pub const DEFAULT_CATCH_UP_WINDOW_MS: u64 = 3_600_000;
/// Longest `catch_up_window_ms` (7 days).
pub const MAX_CATCH_UP_WINDOW_MS: u64 = 7 * 86_400_000;
/// Most fires one plan proposes; an `all` catch-up past it continues in the next plan.
pub const MAX_FIRES_PER_PLAN: usize = 100;
/// Longest `jitter_ms` (1 hour).
pub const MAX_JITTER_MS: u64 = 3_600_000;
/// Longest cron expression.
pub const MAX_CRON_BYTES: usize = 256;
/// Due times counted one by one (cron) before a count saturates: a per-second cron that was
/// down for a year reports "at least this many" missed, not the exact number.
pub const MAX_COUNTED: u64 = 100_000;

/// What makes a schedule fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A cron expression: 6 fields with seconds, or 5 (seconds = 0); `L`, `W`, `#`, aliases.
    Cron {
        /// The expression as the user wrote it (trimmed).
        expr: String,
    },
    /// Every `every_ms`, aligned to the anchor (`start`, else the creation time).
    Every {
        /// The interval.
        every_ms: u64,
    },
    /// Once, at this instant.
    At {
        /// Ms since the epoch.
        at_ms: u64,
    },
}

/// What happens to due times nobody fired (see [`plan`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Fire only the newest due time, and only if it is at most [`SKIP_GRACE_MS`] late (the
    /// default: what cron does after a downtime, plus a little slack for a leader change).
    #[default]
    Skip,
    /// Fire the newest due time if it is within the catch-up window.
    FireOnce,
    /// Fire every due time within the window, oldest first.
    All,
}

impl CatchUp {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::FireOnce => "fire_once",
            CatchUp::All => "all",
        }
    }
}

/// A parsed calendar, ready to answer "when next".
#[derive(Debug, Clone)]
pub struct Calendar {
    kind: Kind,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron { cron: Box<Cron>, tz: Tz, fixed_hour: bool },
    Every { anchor_ms: u64, every_ms: u64 },
    At { at_ms: u64 },
}

/// The zone named `name`, or an error naming the `time_zone` field.
pub fn zone(name: &str) -> Result<Tz, FieldError> {
    Tz::from_str(name).map_err(|_| {
        FieldError::new(
            "time_zone",
            format!("`{name}` is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)"),
        )
    })
}

/// Whether a cron expression's hour field is fixed (no `*`): such a job follows wall-clock
/// rules at DST changes, a wildcard one follows real time (see the module doc).
fn fixed_hour(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.as_slice() {
        [alias] => !alias.eq_ignore_ascii_case("@hourly"),
        [_, hour, _, _, _] | [_, _, hour, _, _, _] => !hour.contains('*'),
        _ => true,
    }
}

impl Calendar {
    /// Parses and checks a calendar; errors name the field (`cron`, `every_ms`, `time_zone`,
    /// `end`). `anchor_ms` aligns an interval: the schedule's `start`, else its creation time.
    pub fn new(
        trigger: &Trigger,
        time_zone: &str,
        start_ms: Option<u64>,
        end_ms: Option<u64>,
        anchor_ms: u64,
    ) -> Result<Calendar, FieldError> {
        let tz = zone(time_zone)?;
        if let (Some(s), Some(e)) = (start_ms, end_ms)
            && e < s
        {
            return Err(FieldError::new("end", "is before start"));
        }
        let kind = match trigger {
            Trigger::Cron { expr } => {
                if expr.len() > MAX_CRON_BYTES {
                    return Err(FieldError::new("cron", format!("is longer than {MAX_CRON_BYTES} bytes")));
                }
                let cron = Cron::new(expr).with_seconds_optional().parse().map_err(|e| {
                    FieldError::new(
                        "cron",
                        format!("`{expr}` is not a cron expression ({e}); use 6 fields `sec min hour day month weekday`, 5 fields, or @hourly/@daily/@weekly/@monthly/@yearly"),
                    )
                })?;
                Kind::Cron { cron: Box::new(cron), tz, fixed_hour: fixed_hour(expr) }
            }
            Trigger::Every { every_ms } => {
                if *every_ms < MIN_EVERY_MS {
                    let msg = format!("is {every_ms}; it must be at least {MIN_EVERY_MS} ms");
                    return Err(FieldError::new("every_ms", msg));
                }
                Kind::Every { anchor_ms, every_ms: *every_ms }
            }
            Trigger::At { at_ms } => Kind::At { at_ms: *at_ms },
        };
        let cal = Calendar { kind, start_ms, end_ms };
        if let Kind::Cron { .. } = cal.kind
            && cal.next_after(start_ms.unwrap_or(anchor_ms).saturating_sub(1)).is_none()
            && end_ms.is_none()
        {
            return Err(FieldError::new("cron", "never matches a date (e.g. 30 February)"));
        }
        Ok(cal)
    }

    /// The first nominal time strictly after `after_ms`, within `start..=end`; `None` when the
    /// calendar never fires again.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let after = match self.start_ms {
            Some(s) if s > 0 => after_ms.max(s - 1),
            _ => after_ms,
        };
        let next = match &self.kind {
            Kind::Every { anchor_ms, every_ms } => {
                if after < *anchor_ms {
                    *anchor_ms
                } else {
                    let k = (after - anchor_ms) / every_ms + 1;
                    anchor_ms.checked_add(k.checked_mul(*every_ms)?)?
                }
            }
            Kind::At { at_ms } => (*at_ms > after).then_some(*at_ms)?,
            Kind::Cron { cron, tz, fixed_hour } => cron_next(cron, tz, *fixed_hour, after)?,
        };
        match self.end_ms {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The next `n` nominal times strictly after `after_ms`.
    pub fn next_n(&self, after_ms: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut at = after_ms;
        while out.len() < n {
            match self.next_after(at) {
                Some(t) => {
                    out.push(t);
                    at = t;
                }
                None => break,
            }
        }
        out
    }

    /// Calendar times in `(after_ms, upto_ms]`: exact for intervals and one-shots, counted one by
    /// one up to [`MAX_COUNTED`] for cron.
    pub fn count_between(&self, after_ms: u64, upto_ms: u64) -> u64 {
        if upto_ms <= after_ms {
            return 0;
        }
        if let Kind::Every { .. } = self.kind {
            let (Some(first), Some(last)) = (self.next_after(after_ms), self.last_at_or_before(upto_ms)) else {
                return 0;
            };
            let Kind::Every { every_ms, .. } = self.kind else { unreachable!() };
            return if last < first { 0 } else { (last - first) / every_ms + 1 };
        }
        let mut n = 0;
        let mut at = after_ms;
        while n < MAX_COUNTED {
            match self.next_after(at) {
                Some(t) if t <= upto_ms => {
                    n += 1;
                    at = t;
                }
                _ => break,
            }
        }
        n
    }

    /// The latest interval time at or before `at` (intervals only).
    fn last_at_or_before(&self, at: u64) -> Option<u64> {
        let Kind::Every { anchor_ms, every_ms } = self.kind else { return None };
        let lo = self.start_ms.unwrap_or(0).max(anchor_ms);
        let hi = self.end_ms.map_or(at, |e| e.min(at));
        if hi < anchor_ms || hi < lo {
            return None;
        }
        let t = anchor_ms + (hi - anchor_ms) / every_ms * every_ms;
        (t >= lo).then_some(t)
    }
}

fn naive_utc(ms: u64) -> Option<NaiveDateTime> {
    DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).ok()?).map(|d| d.naive_utc())
}

fn ms_of(naive: NaiveDateTime) -> Option<u64> {
    u64::try_from(naive.and_utc().timestamp_millis()).ok()
}

/// The UTC offset of `tz` at instant `ms`, in seconds.
fn offset_at(tz: &Tz, ms: u64) -> Option<i64> {
    let utc = naive_utc(ms)?;
    Some(i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()))
}

/// The first instant in `(from + 1, to]` whose offset differs from the offset at `from + 1`
/// (the segment that starts just after `from`), if any. Offsets change on whole seconds and
/// months apart: probed every 6 hours, then narrowed by bisection.
fn next_transition(tz: &Tz, from: u64, to: u64) -> Option<u64> {
    const STEP: u64 = 6 * 3_600_000;
    let start = from.saturating_add(1);
    let o = offset_at(tz, start)?;
    let mut lo = start;
    while lo < to {
        let hi = lo.saturating_add(STEP).min(to);
        if offset_at(tz, hi)? != o {
            let (mut a, mut b) = (lo, hi);
            while b - a > 1 {
                let mid = a + (b - a) / 2;
                if offset_at(tz, mid)? == o { a = mid } else { b = mid }
            }
            return Some(b);
        }
        lo = hi;
    }
    None
}

/// The first wall-clock time strictly after `naive` (whole seconds) that `cron` matches,
/// searched in wall-clock time without a zone.
fn cron_next_naive(cron: &Cron, naive: NaiveDateTime) -> Option<NaiveDateTime> {
    let whole = naive.with_nanosecond(0)?;
    let at = Utc.from_utc_datetime(&whole);
    cron.find_next_occurrence(&at, false).ok().map(|d| d.naive_utc())
}

/// The next cron time strictly after `after` (ms), walking real time through segments of
/// constant UTC offset (see the module doc for the DST rules).
fn cron_next(cron: &Cron, tz: &Tz, fixed_hour: bool, after: u64) -> Option<u64> {
    let mut seg_start = after;
    // Each round either answers or moves to the next segment (or past a skipped second
    // pass); DST changes are months apart, so a handful of rounds is plenty.
    for _ in 0..64 {
        let o = offset_at(tz, seg_start.saturating_add(1))?;
        let local_from = naive_utc(seg_start)? + chrono::Duration::seconds(o);
        let n = cron_next_naive(cron, local_from)?;
        let candidate = u64::try_from(ms_of(n)? as i64 - o * 1000).ok()?;
        let transition = next_transition(tz, seg_start, candidate);
        match transition {
            // The candidate lies in this segment.
            None => {
                if fixed_hour && is_second_pass(tz, n, candidate) {
                    // A fixed-time job ran in the first pass of this wall-clock time.
                    seg_start = candidate;
                    continue;
                }
                return Some(candidate);
            }
            Some(t) => {
                let o2 = offset_at(tz, t)?;
                // Spring forward: the wall-clock times [t + o, t + o2) never happen. A fixed-time
                // job due in them runs at the first instant after the gap.
                if o2 > o && fixed_hour {
                    let gap_end_local = naive_utc(t)? + chrono::Duration::seconds(o2);
                    if n < gap_end_local {
                        return Some(t);
                    }
                }
                // Continue from the start of the next segment (for a fall-back, its wall-clock
                // times restart below where this segment ended: the repeated hour).
                seg_start = t - 1;
            }
        }
    }
    None
}

/// Whether wall-clock time `n` happens twice (fall-back) and `at` is its second instant.
fn is_second_pass(tz: &Tz, n: NaiveDateTime, at: u64) -> bool {
    match tz.from_local_datetime(&n) {
        LocalResult::Ambiguous(first, _) => ms_of(first.naive_utc()).is_some_and(|f| f < at),
        _ => false,
    }
}

/// What the leader should fire now (see [`plan`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Nominal times to fire, oldest first.
    pub nominal: Vec<u64>,
    /// The new high-water mark: at least every nominal time, at most now. The next plan
    /// starts strictly after it.
    pub advance_to: u64,
    /// Due times that will never be fired.
    pub missed: u64,
}

/// Plans the fires due in `(after_ms, now_ms]` under `policy`. `after_ms` is the schedule's
/// mark, or for a schedule that never fired, its creation time minus one (it catches up from
/// its creation, never from the epoch). `None` when nothing is due.
///
/// - `skip`: the newest due time fires if it is at most [`SKIP_GRACE_MS`] late;
/// - `fire_once`: the newest due time fires if it is within `window_ms`;
/// - `all`: every due time within `window_ms` fires, oldest first, at most `cap` per plan; when
///   capped, `advance_to` is the last one fired and the next plan continues.
///
/// `slack_ms` widens both the grace and the window: a schedule's jitter delays its fires on
/// purpose (up to `jitter_ms` after the nominal time), and that delay is not lateness.
///
/// Every due time not fired (and not left for the next plan) counts in `missed`.
pub fn plan(
    cal: &Calendar,
    after_ms: u64,
    now_ms: u64,
    policy: CatchUp,
    window_ms: u64,
    slack_ms: u64,
    cap: usize,
) -> Option<Plan> {
    let first = cal.next_after(after_ms).filter(|&t| t <= now_ms)?;
    let floor = now_ms.saturating_sub(window_ms.saturating_add(slack_ms));
    match policy {
        CatchUp::Skip | CatchUp::FireOnce => {
            let newest = newest_at_or_before(cal, first, now_ms);
            let limit = if policy == CatchUp::Skip { now_ms.saturating_sub(SKIP_GRACE_MS + slack_ms) } else { floor };
            let count = 1 + cal.count_between(first, newest);
            if newest >= limit {
                Some(Plan { nominal: vec![newest], advance_to: newest, missed: count - 1 })
            } else {
                Some(Plan { nominal: Vec::new(), advance_to: newest, missed: count })
            }
        }
        CatchUp::All => {
            // Times older than the window are missed; the rest fire, up to `cap`.
            let (missed, from) = if first < floor {
                let missed = 1 + cal.count_between(first, floor.saturating_sub(1));
                (missed, floor.saturating_sub(1))
            } else {
                (0, after_ms.max(first.saturating_sub(1)))
            };
            let mut nominal = Vec::new();
            let mut at = from;
            while nominal.len() < cap.max(1) {
                match cal.next_after(at) {
                    Some(t) if t <= now_ms => {
                        nominal.push(t);
                        at = t;
                    }
                    _ => break,
                }
            }
            let advance_to = match nominal.last() {
                Some(&last) => last,
                // Everything due was older than the window.
                None => newest_at_or_before(cal, first, floor.saturating_sub(1).max(first)),
            };
            Some(Plan { nominal, advance_to, missed })
        }
    }
}

/// The newest calendar time in `[first, upto]`, given that `first` is one (bounded walk for cron).
fn newest_at_or_before(cal: &Calendar, first: u64, upto: u64) -> u64 {
    if let Some(t) = cal.last_at_or_before(upto) {
        return t.max(first);
    }
    let mut newest = first;
    for _ in 0..MAX_COUNTED {
        match cal.next_after(newest) {
            Some(t) if t <= upto => newest = t,
            _ => break,
        }
    }
    newest
}

/// Deterministic jitter of one fire: a stable hash of (schedule, nominal time) in
/// `0..=jitter_ms` (splitmix64: the same on every replica and in every version).
pub fn jitter(schedule_id: u64, nominal_ms: u64, jitter_ms: u64) -> u64 {
    if jitter_ms == 0 {
        return 0;
    }
    let mut z = schedule_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nominal_ms;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % (jitter_ms + 1)
}

/// Parses a user's instant: RFC 3339 (`2026-12-24T18:00:00+01:00`, `…Z`) or epoch ms.
pub fn parse_instant(field: &str, text: &str) -> Result<u64, FieldError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| FieldError::new(field, format!("`{text}` is too large for epoch ms")));
    }
    let t = DateTime::parse_from_rfc3339(text).map_err(|e| {
        FieldError::new(field, format!("`{text}` is not RFC 3339 (e.g. 2026-12-24T18:00:00+01:00) or epoch ms: {e}"))
    })?;
    u64::try_from(t.timestamp_millis()).map_err(|_| FieldError::new(field, format!("`{text}` is before 1970")))
}

/// `ms` as RFC 3339 in UTC (`2026-12-05T10:00:00Z`, with milliseconds only when there are some).
pub fn rfc3339_utc(ms: u64) -> String {
    match i64::try_from(ms).ok().and_then(DateTime::<Utc>::from_timestamp_millis) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

/// `ms` as RFC 3339 in `time_zone` (UTC when the zone is unknown).
pub fn rfc3339_in(ms: u64, time_zone: &str) -> String {
    let (Ok(tz), Some(t)) =
        (Tz::from_str(time_zone), i64::try_from(ms).ok().and_then(DateTime::<Utc>::from_timestamp_millis))
    else {
        return rfc3339_utc(ms);
    };
    t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}
