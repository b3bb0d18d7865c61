//! Reads the result a task left in `$TASKRAFT_RESULT_OUT`, once, after its process group ended.
//!
//! Unlike checkpoints, nothing is polled: a result is part of the completion, committed with it
//! under the attempt's fencing token (see `crate::scheduler` `result.rs`). A task writes the
//! file however it likes (`echo 42 > "$TASKRAFT_RESULT_OUT"`); the process has exited by the
//! time it is read, so there is no half-written file to fear.
//!
//! A result over the limit fails the attempt instead of being dropped quietly: the task
//! "succeeded" without the answer its children need, and a clear failure (with a retry per the
//! task's policy) is easier to act on than a child that runs on a missing input.

use std::io;
use std::path::Path;

use tokio::io::AsyncReadExt;

use super::ExecResult;
use crate::scheduler::AttemptOutcome;

/// What the task wrote: `Ok(None)` when it wrote no file, `Err` with the attempt's error when the
/// file is over `max_bytes` or cannot be read. Reads at most `max_bytes + 1` bytes, so a
/// runaway file costs the worker no more than that.
pub(super) async fn read(path: &Path, max_bytes: usize) -> Result<Option<Vec<u8>>, String> {
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("could not read the result {}: {e}", path.display())),
    };
    let mut data = Vec::new();
    let limit = u64::try_from(max_bytes).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut data)
        .await
        .map_err(|e| format!("could not read the result {}: {e}", path.display()))?;
    if data.len() > max_bytes {
        return Err(format!(
            "the result in $TASKRAFT_RESULT_OUT is over the limit of {max_bytes} bytes; it was dropped"
        ));
    }
    Ok(Some(data))
}

/// Reads the result into `result`; a result that cannot be kept fails a successful attempt.
pub(super) async fn collect(path: &Path, max_bytes: usize, result: &mut ExecResult) {
    match read(path, max_bytes).await {
        Ok(data) => result.result = data,
        Err(e) => {
            if result.outcome == AttemptOutcome::Succeeded {
                result.outcome = AttemptOutcome::Failed;
            }
            result.add_error(e);
        }
    }
}
