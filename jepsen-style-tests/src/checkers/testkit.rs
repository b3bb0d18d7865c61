//! Builders for the checkers' unit tests, so that a hand-made history reads like the scenario it
//! describes: "client 1 submits key a from t=0 to t=10 and gets task 1".
//!
//! Operations are given as whole intervals and [`Hist::build`] sorts the lines by time, the way a
//! real recorder would have written them, and numbers them.

use crate::checkers::Inputs;
use crate::history::Body;
use crate::history::FinalAttempt;
use crate::history::FinalState;
use crate::history::FinalTask;
use crate::history::LeaderObs;
use crate::history::Op;
use crate::history::OpType;
use crate::history::Process;
use crate::history::ReadValue;
use crate::history::ReplicaViews;
use crate::history::ScheduleRecord;
use crate::history::SinkEvent;
use crate::history::SinkKind;
use crate::history::SubmitValue;
use crate::history::TaskRead;
use crate::history::WorkflowRecord;

/// How a submit ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Acknowledged with this task id.
    Ok(u64),
    /// Definitely not done.
    Fail,
    /// Indeterminate.
    Info,
    /// Never completed (the history ends with the invoke).
    Never,
}

/// A history under construction.
#[derive(Debug, Default)]
pub struct Hist {
    lines: Vec<(u64, Process, OpType, Body)>,
}

impl Hist {
    pub fn new() -> Self {
        Self::default()
    }

    fn pair(&mut self, client: u32, (t0, t1): (u64, u64), invoke: Body, end: Option<(OpType, Body)>) -> &mut Self {
        let p = Process::Client(client);
        self.lines.push((t0, p, OpType::Invoke, invoke));
        if let Some((kind, body)) = end {
            self.lines.push((t1, p, kind, body));
        }
        self
    }

    /// Client `client` submits `key` during `span`.
    pub fn submit(&mut self, client: u32, key: &str, span: (u64, u64), outcome: Outcome) -> &mut Self {
        let value = |task_id| Body::Submit(SubmitValue { key: key.into(), task_id });
        let end = match outcome {
            Outcome::Ok(id) => Some((OpType::Ok, value(Some(id)))),
            Outcome::Fail => Some((OpType::Fail, value(None))),
            Outcome::Info => Some((OpType::Info, value(None))),
            Outcome::Never => None,
        };
        self.pair(client, span, value(None), end)
    }

    /// Client `client` reads `task_id` during `span` and sees `seen` (`None` = 404).
    pub fn read(&mut self, client: u32, task_id: u64, span: (u64, u64), seen: Option<TaskRead>) -> &mut Self {
        let invoke = Body::Read(ReadValue::invoke(task_id));
        self.pair(client, span, invoke, Some((OpType::Ok, Body::Read(ReadValue { task_id, seen, forgotten: false }))))
    }

    /// Client `client` reads `task_id` during `span` and gets 404 `forgotten`.
    pub fn read_forgotten(&mut self, client: u32, task_id: u64, span: (u64, u64)) -> &mut Self {
        let end = Body::Read(ReadValue { task_id, seen: None, forgotten: true });
        self.pair(client, span, Body::Read(ReadValue::invoke(task_id)), Some((OpType::Ok, end)))
    }

    /// Client `client` cancels `task_id` during `span`; the answer never came (`info`).
    pub fn cancel_info(&mut self, client: u32, task_id: u64, span: (u64, u64)) -> &mut Self {
        let body = Body::Cancel(crate::history::CancelValue { task_id, state: None });
        self.pair(client, span, body.clone(), Some((OpType::Info, body)))
    }

    /// Client `client` reads `task_id` during `span` and gets no answer (`info`).
    pub fn read_info(&mut self, client: u32, task_id: u64, span: (u64, u64)) -> &mut Self {
        let body = Body::Read(ReadValue::invoke(task_id));
        self.pair(client, span, body.clone(), Some((OpType::Info, body)))
    }

    /// The lines in time order, numbered.
    pub fn build(&self) -> Vec<Op> {
        let mut lines = self.lines.clone();
        // Stable: an invoke and completion at the same instant keep their order.
        lines.sort_by_key(|l| l.0);
        let ops = lines.into_iter().enumerate();
        ops.map(|(i, (time_ns, process, kind, body))| Op {
            index: i as u64,
            time_ns,
            process,
            node: Some(1),
            kind,
            body,
            error: None,
        })
        .collect()
    }
}

/// What a read saw: `version` and `state`, no attempts, token or checkpoint (set them with struct
/// update syntax).
pub fn seen(version: u64, state: &str) -> TaskRead {
    TaskRead { version, state: state.into(), ..TaskRead::default() }
}

/// A final task without attempts or checkpoint.
pub fn task(task_id: u64, key: &str, state: &str, version: u64) -> FinalTask {
    FinalTask {
        task_id,
        key: Some(key.into()),
        state: state.into(),
        version,
        attempts: vec![],
        checkpoint: None,
        origin: None,
        workflow: None,
        priority: None,
        preemptible: None,
        preempted: vec![],
    }
}

/// A final attempt.
pub fn attempt(number: u32, token: u64, outcome: Option<&str>) -> FinalAttempt {
    FinalAttempt { number, worker: "w1".into(), token, outcome: outcome.map(Into::into) }
}

/// One sink line (of a counter task: no workflow tag).
pub fn sink(time_ns: u64, task_id: u64, attempt: u32, token: u64, event: SinkKind) -> SinkEvent {
    SinkEvent { time_ns, task_id, attempt, token, event, wf: None }
}

/// One leader observation.
pub fn obs(node: u64, term: u64, role: &str, leader_id: Option<u64>) -> LeaderObs {
    LeaderObs { time_ns: 0, node, term, role: role.into(), leader_id }
}

/// Everything a checker reads, owned.
#[derive(Debug)]
pub struct Fixture {
    pub history: Vec<Op>,
    pub sink: Vec<SinkEvent>,
    pub leaders: Vec<LeaderObs>,
    pub final_state: FinalState,
    pub replicas: ReplicaViews,
    pub schedules: Option<ScheduleRecord>,
    pub workflows: Option<WorkflowRecord>,
    pub retention_ms: Option<u64>,
    pub clock_faults: bool,
}

impl Fixture {
    /// A history with a complete final state of `tasks`.
    pub fn new(history: &Hist, tasks: Vec<FinalTask>) -> Self {
        let final_state = FinalState { complete: true, tasks, forgotten: vec![] };
        Fixture {
            history: history.build(),
            sink: vec![],
            leaders: vec![],
            final_state,
            replicas: ReplicaViews::default(),
            schedules: None,
            workflows: None,
            retention_ms: None,
            clock_faults: false,
        }
    }

    /// The same, but the final read did not complete.
    pub fn incomplete(mut self) -> Self {
        self.final_state.complete = false;
        self
    }

    /// The final read found these ids forgotten.
    pub fn with_forgotten(mut self, mut ids: Vec<u64>) -> Self {
        ids.sort_unstable();
        self.final_state.forgotten = ids;
        self
    }

    /// With these sink lines.
    pub fn with_sink(mut self, sink: Vec<SinkEvent>) -> Self {
        self.sink = sink;
        self
    }

    /// Borrowed, as checkers take it.
    pub fn inputs(&self) -> Inputs<'_> {
        Inputs {
            history: &self.history,
            sink: &self.sink,
            leaders: &self.leaders,
            final_state: &self.final_state,
            replicas: &self.replicas,
            schedules: self.schedules.as_ref(),
            workflows: self.workflows.as_ref(),
            retention_ms: self.retention_ms,
            clock_faults: self.clock_faults,
        }
    }
}
