//! `noop`: succeeds at once without starting anything. Useful to measure the
//! scheduler's own overhead and in tests of everything around the executor.

use super::ExecResult;
use crate::scheduler::AttemptOutcome;

/// Succeeds immediately.
pub(super) fn run() -> ExecResult {
    ExecResult::new(AttemptOutcome::Succeeded)
}
