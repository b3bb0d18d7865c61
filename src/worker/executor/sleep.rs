//! `taskraft:sleep <ms>`: waits, then succeeds. Stands in for a long task without a process, so
//! timeouts, cancellation and failover can be exercised cheaply.

use std::time::Duration;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::{ExecRequest, ExecResult, deadline, stop_signal};
use crate::scheduler::AttemptOutcome;

/// Sleeps `command[1]` milliseconds unless cancelled or timed out first.
pub(super) async fn run(req: &ExecRequest, cancel: &CancellationToken) -> ExecResult {
    let ms = match req.spec.command.get(1).map(|s| s.trim().parse::<u64>()) {
        Some(Ok(ms)) => ms,
        Some(Err(_)) | None => {
            let got = req.spec.command.get(1).map_or("nothing".to_string(), |s| format!("{s:?}"));
            return ExecResult::failed(format!("taskraft:sleep needs a duration in milliseconds; got {got}"));
        }
    };
    let deadline = deadline(req.timeout);
    tokio::select! {
        () = sleep(Duration::from_millis(ms)) => ExecResult::new(AttemptOutcome::Succeeded),
        stop = stop_signal(cancel, deadline) => ExecResult::stopped(stop, req.timeout),
    }
}
