//! taskraft-jepsen: the black-box chaos harness (README.md; `../shared/TESTING.md`).
//!
//! The path of a run:
//! 1. [`ns`] re-executes the harness inside a private network namespace (iptables rules there
//!    are private and vanish with it).
//! 2. [`cluster`] starts real `taskraft` replicas and workers on their own loopback addresses.
//! 3. [`workload`] clients submit, read and cancel tasks; every operation goes into the history
//!    ([`history`]). The tasks themselves run [`sink::counter`], which reports its physical side
//!    effects to the [`sink`].
//!    [`schedules`] creates a few schedules first and polls their runs; the cluster fires them.
//!    [`workflows`] sets a concurrency limit first, then submits DAG and map-reduce workflows in
//!    waves spread over the load; their tasks run `taskraft-jepsen wf-task` ([`sink::wf_task`]).
//! 4. [`nemesis`] injects faults on a seeded schedule, then heals.
//! 5. [`checkers`] judge the history, the sink events, the leader observations and the final
//!    state; [`report`] measures failovers and error rates and draws the plot; [`judge`] writes
//!    `results.json` and prints the verdict.
//!
//! [`run`] is one run; [`suite`] many runs per fault family; [`aggregate`] pools the failover
//! distributions and error rates of every stored run.
pub mod aggregate;
pub mod checkers;
pub mod cluster;
pub mod history;
pub mod judge;
pub mod nemesis;
pub mod ns;
pub mod report;
pub mod run;
pub mod schedules;
pub mod sink;
pub mod suite;
pub mod tls;
pub mod workflows;
pub mod workload;
