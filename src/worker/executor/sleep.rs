//! `sleep` (`command: [ms]`): waits, then succeeds. Stands in for a long task without a process, so
//! timeouts, cancellation and failover can be exercised cheaply.

use std::time::Duration;

use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::{ExecRequest, ExecResult, deadline, stop_signal};
use crate::scheduler::AttemptOutcome;

/// Sleeps `command[0]` milliseconds unless cancelled or timed out first.
pub(super) async fn run(req: &ExecRequest, cancel: &CancellationToken) -> ExecResult {
    let ms = match req.spec.command.as_slice() {
        [ms] => ms.trim().parse::<u64>().map_err(|_| format!("{ms:?}")),
        [] => Err("nothing".to_string()),
        more => Err(format!("{} arguments", more.len())),
    };
    let ms = match ms {
        Ok(ms) => ms,
        Err(got) => {
            let msg = format!("the sleep executor takes one argument, a duration in milliseconds; got {got}");
            return ExecResult::failed(msg);
        }
    };
    let deadline = deadline(req.timeout);
    tokio::select! {
        () = sleep(Duration::from_millis(ms)) => ExecResult::new(AttemptOutcome::Succeeded),
        stop = stop_signal(cancel, deadline) => ExecResult::stopped(stop, req.timeout),
    }
}
