//! Golden scripts for the calendar planner (`testdata/*.script` → `.expected`, regenerate with
//! `UPDATE_GOLDEN=1`), and a proptest that planning restarted from the saved mark after every
//! fire yields exactly the fires of one continuous walk.

use std::fmt::Write as _;
use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/scheduler/calendar/testdata")
}

fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Runner {
    cal: Option<Calendar>,
    zone: String,
    out: String,
}

fn opt<'a>(args: &'a [String], key: &str) -> Option<&'a str> {
    args.iter().rev().find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn instant(args: &[String], key: &str) -> Option<u64> {
    opt(args, key).map(|t| parse_instant(key, t).unwrap_or_else(|e| panic!("{e}")))
}

fn time(ms: u64, zone: &str) -> String {
    format!("{} ({})", rfc3339_utc(ms), rfc3339_in(ms, zone))
}

impl Runner {
    fn line(&mut self, line: &str) {
        let args = split(line);
        let (verb, args) = args.split_first().expect("a verb");
        match verb.as_str() {
            "calendar" => {
                let trigger = match (opt(args, "cron"), opt(args, "every"), instant(args, "at")) {
                    (Some(expr), None, None) => Trigger::Cron { expr: expr.to_string() },
                    (None, Some(ms), None) => Trigger::Every { every_ms: ms.parse().expect("every=MS") },
                    (None, None, Some(at_ms)) => Trigger::At { at_ms },
                    _ => panic!("give one of cron=, every=, at="),
                };
                self.zone = opt(args, "tz").unwrap_or("UTC").to_string();
                let anchor = instant(args, "anchor").or(instant(args, "start")).unwrap_or(0);
                match Calendar::new(&trigger, &self.zone, instant(args, "start"), instant(args, "end"), anchor) {
                    Ok(cal) => {
                        self.cal = Some(cal);
                        writeln!(self.out, "ok").unwrap();
                    }
                    Err(e) => {
                        self.cal = None;
                        writeln!(self.out, "error {e}").unwrap();
                    }
                }
            }
            "next" => {
                let cal = self.cal.as_ref().expect("a calendar");
                let after = instant(args, "after").expect("after=");
                let count = opt(args, "count").map_or(1, |c| c.parse().unwrap());
                let fires = cal.next_n(after, count);
                if fires.is_empty() {
                    writeln!(self.out, "never").unwrap();
                }
                for t in fires {
                    writeln!(self.out, "{}", time(t, &self.zone)).unwrap();
                }
            }
            // Plans from the saved mark after every fire, as the leader does.
            "walk" => {
                let cal = self.cal.as_ref().expect("a calendar");
                let (mut mark, to) = (instant(args, "from").expect("from="), instant(args, "to").expect("to="));
                let mut n = 0;
                while let Some(t) = cal.next_after(mark).filter(|&t| t <= to) {
                    writeln!(self.out, "{}", time(t, &self.zone)).unwrap();
                    mark = t;
                    n += 1;
                    assert!(n < 1000, "walk too long");
                }
                writeln!(self.out, "{n} fires").unwrap();
            }
            "plan" => {
                let cal = self.cal.as_ref().expect("a calendar");
                let after = instant(args, "after").expect("after=");
                let now = instant(args, "now").expect("now=");
                let policy = match opt(args, "policy").unwrap_or("skip") {
                    "skip" => CatchUp::Skip,
                    "fire_once" => CatchUp::FireOnce,
                    "all" => CatchUp::All,
                    other => panic!("policy {other}"),
                };
                let window = opt(args, "window").map_or(DEFAULT_CATCH_UP_WINDOW_MS, |w| w.parse().unwrap());
                let cap = opt(args, "cap").map_or(MAX_FIRES_PER_PLAN, |c| c.parse().unwrap());
                let jitter = opt(args, "jitter").map_or(0, |j| j.parse().unwrap());
                match plan(cal, after, now, policy, window, jitter, cap) {
                    None => writeln!(self.out, "nothing due").unwrap(),
                    Some(p) => {
                        let fires: Vec<String> = p.nominal.iter().map(|&t| rfc3339_utc(t)).collect();
                        writeln!(
                            self.out,
                            "fire [{}] advance_to={} missed={}",
                            fires.join(" "),
                            rfc3339_utc(p.advance_to),
                            p.missed
                        )
                        .unwrap();
                    }
                }
            }
            other => panic!("unknown verb {other}"),
        }
    }
}

fn run(script: &str) -> String {
    let mut r = Runner { cal: None, zone: "UTC".into(), out: String::new() };
    for line in script.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            r.out.push_str(line);
            r.out.push('\n');
            continue;
        }
        writeln!(r.out, "> {t}").unwrap();
        r.line(t);
    }
    r.out
}

#[test]
fn golden_calendar_scripts() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "script"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no calendar scripts found in {}", testdata().display());
    let mut failures = Vec::new();
    for script in names {
        let expected_path = script.with_extension("expected");
        let got = run(&std::fs::read_to_string(&script).unwrap());
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if want != got {
            failures.push(format!("{}:\n{}", script.display(), first_difference(&want, &got)));
        }
    }
    assert!(
        failures.is_empty(),
        "golden calendar scripts differ (UPDATE_GOLDEN=1 to accept):\n{}",
        failures.join("\n")
    );
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}: expected {w:?}\n         got {g:?}", i + 1);
        }
    }
    format!("lengths differ: {} vs {} lines", want.lines().count(), got.lines().count())
}

#[test]
fn jitter_is_deterministic_and_bounded() {
    for id in 1..50 {
        for n in (0..100_000u64).step_by(997) {
            let j = jitter(id, n, 250);
            assert!(j <= 250);
            assert_eq!(j, jitter(id, n, 250));
        }
    }
    assert_eq!(jitter(3, 1000, 0), 0);
    // Not constant: it spreads.
    let distinct: std::collections::BTreeSet<u64> = (0..100).map(|n| jitter(1, n * 1000, 1000)).collect();
    assert!(distinct.len() > 50, "{distinct:?}");
}

#[test]
fn instants_parse_as_users_write_them() {
    assert_eq!(parse_instant("at", "1767225600000"), Ok(1_767_225_600_000));
    assert_eq!(parse_instant("at", "2026-01-01T00:00:00Z"), Ok(1_767_225_600_000));
    assert_eq!(parse_instant("at", "2026-01-01T01:00:00+01:00"), Ok(1_767_225_600_000));
    let err = parse_instant("start", "tomorrow").unwrap_err();
    assert_eq!(err.field, "start");
    assert_eq!(rfc3339_utc(1_767_225_600_000), "2026-01-01T00:00:00Z");
    assert_eq!(rfc3339_in(1_767_225_600_000, "Europe/Berlin"), "2026-01-01T01:00:00+01:00");
}

fn cron_strategy() -> impl Strategy<Value = (String, String)> {
    let exprs = prop::sample::select(vec![
        "0 0 * * * *",
        "0 30 2 * * *",
        "0 */15 * * * *",
        "40 59 1 * * *",
        "0 0 2 * * *",
        "0 0 0 L * *",
        "0 0 12 * * MON#2",
        "*/20 * 2 * * *",
        "0 30 1 * * *",
        "@daily",
    ]);
    let zones = prop::sample::select(vec![
        "UTC",
        "Europe/Stockholm",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ]);
    (exprs, zones).prop_map(|(e, z)| (e.to_string(), z.to_string()))
}

/// An independent oracle: walk real time in 20 s steps (every expression in
/// [`cron_strategy`] fires on a multiple of 20 s) and decide each instant from its wall-clock
/// time with the documented DST rules, without `next_after`.
fn oracle(expr: &str, zone: &str, from: u64, to: u64) -> Vec<u64> {
    const STEP: u64 = 20_000;
    let cron = Cron::new(expr).with_seconds_optional().parse().unwrap();
    let tz = super::zone(zone).unwrap();
    let fixed = super::fixed_hour(expr);
    let wall = |t: u64| naive_utc(t).unwrap() + chrono::Duration::seconds(offset_at(&tz, t).unwrap());
    let matches = |n: NaiveDateTime| cron.is_time_matching(&Utc.from_utc_datetime(&n)).unwrap();
    let mut out = Vec::new();
    let mut t = (from / STEP + 1) * STEP;
    while t <= to {
        let (o_prev, o) = (offset_at(&tz, t - STEP).unwrap(), offset_at(&tz, t).unwrap());
        let n = wall(t);
        let second_pass = match tz.from_local_datetime(&n) {
            LocalResult::Ambiguous(first, _) => ms_of(first.naive_utc()).unwrap() < t,
            _ => false,
        };
        let mut fire = matches(n) && !(fixed && second_pass);
        // A spring-forward transition at `t`: a fixed-time job due in the skipped wall-clock
        // times runs now.
        if fixed && o > o_prev {
            let mut g = naive_utc(t).unwrap() + chrono::Duration::seconds(o_prev);
            while g < n {
                fire |= matches(g);
                g += chrono::Duration::seconds(20);
            }
        }
        if fire {
            out.push(t);
        }
        t += STEP;
    }
    out
}

/// The fires of a leader that plans at each of `ticks` from the saved mark (policy `all`, a
/// window and cap larger than any gap).
fn planned(cal: &Calendar, from: u64, ticks: &[u64]) -> Vec<u64> {
    let mut mark = from;
    let mut fires = Vec::new();
    for &now in ticks {
        // A capped plan continues at once, as the leader's loop does.
        while let Some(p) = plan(cal, mark, now, CatchUp::All, u64::MAX / 4, 0, 7) {
            assert!(p.advance_to >= mark && p.advance_to <= now, "{p:?} mark {mark} now {now}");
            assert_eq!(p.missed, 0);
            fires.extend(&p.nominal);
            mark = p.advance_to;
            if p.nominal.is_empty() {
                break;
            }
        }
    }
    fires
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_cron_planner_restarted_from_its_mark_fires_what_a_continuous_walk_does(
        (expr, zone) in cron_strategy(),
        // Around the 2025 and 2026 DST changes of both hemispheres.
        start in prop::sample::select(vec![1_743_120_000_000u64, 1_761_350_000_000, 1_775_000_000_000, 1_793_000_000_000, 1_759_000_000_000]),
        steps in prop::collection::vec(1u64..8_000_000, 1..30),
    ) {
        let cal = Calendar::new(&Trigger::Cron { expr: expr.clone() }, &zone, None, None, start).unwrap();
        let mut ticks = Vec::new();
        let mut now = start;
        for s in steps {
            now += s;
            ticks.push(now);
        }
        let continuous = oracle(&expr, &zone, start, now);
        let restarted = planned(&cal, start, &ticks);
        prop_assert_eq!(&restarted, &continuous);
    }

    #[test]
    fn an_interval_planner_restarted_from_its_mark_fires_every_step_once(
        every in 100u64..100_000,
        anchor in 1_700_000_000_000u64..1_800_000_000_000,
        steps in prop::collection::vec(1u64..500_000, 1..40),
    ) {
        let cal = Calendar::new(&Trigger::Every { every_ms: every }, "UTC", None, None, anchor).unwrap();
        let mut ticks = Vec::new();
        let mut now = anchor;
        for s in steps {
            now += s;
            ticks.push(now);
        }
        let restarted = planned(&cal, anchor - 1, &ticks);
        let expected: Vec<u64> = (0..).map(|k| anchor + k * every).take_while(|&t| t <= now).collect();
        prop_assert_eq!(restarted, expected);
    }
}
