//! The exporter's output for a known history: a state built by applying commands through the
//! same probe → apply → tally steps the state machine takes, and openraft metrics of a leader
//! with one follower behind.

use std::collections::BTreeMap;

use openraft::ServerState;
use openraft::type_config::TypeConfigExt;

use super::Probe;
use super::Tally;
use super::Telemetry;
use crate::node::LogId;
use crate::node::StateView;
use crate::node::TypeConfig;
use crate::scheduler::AttemptOutcome;
use crate::scheduler::Command;
use crate::scheduler::Reuse;
use crate::scheduler::State;
use crate::scheduler::TaskSpec;
use crate::scheduler::WorkerRegistration;

fn spec(priority: u32) -> TaskSpec {
    TaskSpec { command: vec!["true".into()], priority, ..TaskSpec::default() }
}

fn submit(request_id: &str, priority: u32) -> Command {
    Command::Submit { request_id: Some(request_id.into()), now_ms: 1, spec: spec(priority), reuse: Reuse::SameBody }
}

/// Applies `commands` as consecutive entries, counting them like the state machine does.
fn apply_all(telemetry: &Telemetry, commands: Vec<Command>) -> State {
    let mut state = State::default();
    let mut tally = Tally::default();
    for (i, cmd) in commands.into_iter().enumerate() {
        let probe = Probe::of(&state, &cmd);
        let response = state.apply(i as u64 + 1, cmd);
        tally.record(&probe, state.counts(), &response, &telemetry.applied);
    }
    telemetry.applied.add(&tally);
    state
}

/// The lines of an OpenMetrics text exposition that are not comments, checked for shape:
/// `name{label="value",...} number`, and the whole text ends with `# EOF`.
fn samples(text: &str) -> Vec<&str> {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end:\n{text}");
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap_or_default();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "bad comment line: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "bad value in: {line}");
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.starts_with("taskraft_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name in: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in: {line}");
            for label in series[name_end + 1..series.len() - 1].split(',') {
                let (k, v) = label.split_once('=').unwrap_or_else(|| panic!("bad label in: {line}"));
                assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name in: {line}");
                assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "unquoted label in: {line}");
            }
        }
        out.push(line);
    }
    out
}

#[test]
fn the_exporter_reports_what_apply_did_what_the_state_holds_and_where_raft_is() {
    let telemetry = Telemetry::new();
    let worker = WorkerRegistration {
        id: "w1".into(),
        api_addr: Some("w1:1".into()),
        slots: 2,
        ..WorkerRegistration::default()
    };
    let complete = |task_id, token, outcome| Command::Complete {
        now_ms: 5,
        task_id,
        token,
        outcome,
        exit_code: Some(0),
        output_tail: String::new(),
        error: None,
        result: None,
    };
    let state = apply_all(
        &telemetry,
        vec![
            Command::RegisterWorker { now_ms: 1, worker }, // 1
            submit("a", 100),                              // 2: task 1
            submit("b", 500),                              // 3: task 2
            submit("c", 900),                              // 4: task 3
            submit("a", 100),                              // 5: a retry: nothing new
            Command::Assign { now_ms: 2, assignments: vec![(1, "w1".into()), (2, "w1".into())] }, // 6
            Command::AttemptStarted { now_ms: 3, task_id: 1, token: 6 }, // 7
            complete(1, 6, AttemptOutcome::Succeeded),     // 8
            // The lease runs out: task 2's attempt is lost and it goes back to pending.
            Command::WorkerLost { now_ms: 6, worker_id: "w1".into() }, // 9
            Command::WorkerLost { now_ms: 7, worker_id: "w1".into() }, // 10: already lost
            Command::Cancel { request_id: None, now_ms: 8, task_id: 3, reason: None }, // 11
        ],
    );
    let view = StateView::detached(state);

    let mut m = openraft::RaftMetrics::<TypeConfig>::new_initial(1);
    m.state = ServerState::Leader;
    m.current_term = 4;
    m.last_log_index = Some(11);
    m.local_committed = Some(LogId::new_term_index(4, 11));
    m.last_applied = Some(LogId::new_term_index(4, 11));
    m.replication = Some(BTreeMap::from([
        (1, Some(LogId::new_term_index(4, 11))),
        (2, Some(LogId::new_term_index(4, 8))),
        (3, None),
    ]));
    let (_tx, rx) = TypeConfig::watch_channel(m);
    telemetry.watch(view, rx);

    let text = telemetry.encode().unwrap();
    let lines = samples(&text);
    let expected = [
        // Cluster counters, from apply.
        "taskraft_tasks_submitted_total 3",
        r#"taskraft_task_transitions_total{to="assigned"} 2"#,
        r#"taskraft_task_transitions_total{to="running"} 1"#,
        r#"taskraft_task_transitions_total{to="succeeded"} 1"#,
        r#"taskraft_task_transitions_total{to="pending"} 1"#,
        r#"taskraft_task_transitions_total{to="cancelled"} 1"#,
        r#"taskraft_task_transitions_total{to="failed"} 0"#,
        r#"taskraft_attempts_ended_total{outcome="succeeded"} 1"#,
        r#"taskraft_attempts_ended_total{outcome="lost"} 1"#,
        "taskraft_worker_lease_expiries_total 1",
        // Read from the state.
        r#"taskraft_tasks{state="pending"} 1"#,
        r#"taskraft_tasks{state="succeeded"} 1"#,
        r#"taskraft_tasks{state="cancelled"} 1"#,
        "taskraft_tasks_created_total 3",
        r#"taskraft_queue_depth{priority="400-599"} 1"#,
        r#"taskraft_queue_depth{priority="0-199"} 0"#,
        r#"taskraft_workers{state="lost"} 1"#,
        r#"taskraft_workers{state="active"} 0"#,
        r#"taskraft_worker_slots{slots="used"} 0"#,
        r#"taskraft_schedule_fires_total{outcome="fired"} 0"#,
        // Read from openraft: the leader is not its own follower.
        "taskraft_raft_term 4",
        "taskraft_raft_is_leader 1",
        "taskraft_raft_committed_index 11",
        "taskraft_raft_applied_index 11",
        r#"taskraft_raft_replication_lag_entries{follower="2"} 3"#,
        r#"taskraft_raft_replication_lag_entries{follower="3"} 11"#,
        // Replica-local instruments start at zero.
        "taskraft_dispatch_round_duration_seconds_count 0",
        "taskraft_apply_lock_wait_seconds_count 0",
        "taskraft_apply_seconds_count 0",
        "taskraft_snapshot_size_bytes 0",
    ];
    for want in expected {
        assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains(r#"follower="1""#), "the leader reported lag to itself:\n{text}");
    // Every family once: a second registration of a name would break the exposition.
    let mut families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    let all = families.len();
    families.sort_unstable();
    families.dedup();
    assert_eq!(families.len(), all, "a metric family appears twice:\n{text}");
}
