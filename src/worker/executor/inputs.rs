//! Writes the results of a workflow task's parents where its process finds them:
//! `$TASKRAFT_INPUTS_DIR`, the directory `inputs/` of the attempt directory.
//!
//! The leader sends the inputs with the assignment ([`crate::proto::workers::Assignment`]):
//! every parent task that succeeded and left a result. A plain parent's result is the file
//! `inputs/<node>`; a sharded parent's results are `inputs/<node>/<index>`, one file per shard
//! that succeeded with a result, named by its shard index (so a `{min: k}` parent may leave
//! gaps). A parent that left no result has no entry. The directory is rebuilt before every
//! attempt, so it holds this attempt's inputs and nothing else.
//!
//! Node ids are checked by the API and by apply to be plain names; a worker does not rely on
//! that alone and refuses any id that is not one path component.

use std::io;
use std::path::Path;

use tokio::io::AsyncWriteExt;

use crate::scheduler::workflow::TaskInput;

/// Empties `dir` (a leftover of an earlier run is not this attempt's input) and writes
/// `inputs` into it. An error fails the attempt before its process starts.
pub(super) async fn write(dir: &Path, inputs: &[TaskInput]) -> Result<(), String> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("could not remove the stale inputs {}: {e}", dir.display())),
    }
    tokio::fs::create_dir(dir).await.map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    for input in inputs {
        let node = component(&input.node)?;
        let path = match input.shard {
            None => dir.join(node),
            Some(index) => {
                let parent = dir.join(node);
                match tokio::fs::create_dir(&parent).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && parent.is_dir() => {}
                    Err(e) => return Err(format!("could not create {}: {e}", parent.display())),
                }
                parent.join(index.to_string())
            }
        };
        write_new(&path, &input.data.0).await?;
    }
    Ok(())
}

/// `node` when it is a single, plain path component.
fn component(node: &str) -> Result<&str, String> {
    if node.is_empty() || node == "." || node == ".." || node.contains(['/', '\0']) {
        return Err(format!("refused the input of parent node {node:?}: a node id must be a plain file name"));
    }
    Ok(node)
}

/// Writes a file that must not exist yet: two inputs for one path are a mistake to report,
/// not one to let the second silently win.
async fn write_new(path: &Path, data: &[u8]) -> Result<(), String> {
    let failed = |e: io::Error| format!("could not write the input {}: {e}", path.display());
    let mut file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(path).await.map_err(failed)?;
    file.write_all(data).await.map_err(failed)?;
    file.flush().await.map_err(failed)
}
