//! Watches the file a task writes its checkpoints to and ships each new one to the worker.
//!
//! Tasks write `TASKRAFT_CHECKPOINT_OUT` atomically by rename, so a read sees either the old or
//! the new content, never half of one. The watcher stats the file every poll and reads it only
//! when its identity (inode, size, mtime) changed; content equal to the last accepted checkpoint
//! is not shipped twice. Shipping is coalesced: when the channel is full the checkpoint waits as
//! `pending`, and a newer one replaces it — only the latest progress matters.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// What identifies one version of the checkpoint file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

/// Polls one checkpoint file and ships its new versions on a channel.
pub(super) struct CheckpointWatcher {
    path: PathBuf,
    max_bytes: usize,
    tx: mpsc::Sender<Vec<u8>>,
    /// Stamp of the file at the last look, so an unchanged file is not read again.
    seen: Option<Stamp>,
    /// The newest checkpoint accepted (sent or pending), to skip rewrites of the same bytes.
    last: Option<Vec<u8>>,
    /// Accepted but not yet in the channel because it was full.
    pending: Option<Vec<u8>>,
    /// The receiver is gone: stop shipping, keep the attempt running.
    closed: bool,
    /// Description of the last refused checkpoint, reported with the result.
    refused: Option<String>,
}

impl CheckpointWatcher {
    /// A watcher for `path`, refusing checkpoints over `max_bytes`.
    pub(super) fn new(path: PathBuf, max_bytes: usize, tx: mpsc::Sender<Vec<u8>>) -> Self {
        CheckpointWatcher { path, max_bytes, tx, seen: None, last: None, pending: None, closed: false, refused: None }
    }

    /// One look at the file: picks up a new version, then tries to ship what is pending.
    pub(super) async fn poll(&mut self) {
        if self.closed {
            return;
        }
        match self.look().await {
            Ok(()) => {}
            Err(e) => warn!(path = %self.path.display(), error = %e, "cannot read checkpoint file"),
        }
        self.try_flush();
    }

    /// The last look after the process is gone, then a blocking send of the pending checkpoint
    /// (abandoned if `cancel` fires). Returns why a checkpoint was refused, if one was.
    pub(super) async fn finish(mut self, cancel: &CancellationToken) -> Option<String> {
        self.poll().await;
        if let Some(data) = self.pending.take()
            && !self.closed
        {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {}
                _ = self.tx.send(data) => {}
            }
        }
        self.refused
    }

    async fn look(&mut self) -> io::Result<()> {
        let meta = match tokio::fs::metadata(&self.path).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let stamp = Stamp {
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        };
        if self.seen == Some(stamp) {
            return Ok(());
        }
        self.seen = Some(stamp);
        // Bounded read: the file may have been replaced by a bigger one since the stat.
        let mut data = Vec::new();
        let file = tokio::fs::File::open(&self.path).await?;
        file.take(self.max_bytes as u64 + 1).read_to_end(&mut data).await?;
        if data.len() > self.max_bytes {
            let size = meta.len().max(data.len() as u64);
            let msg =
                format!("checkpoint of {size} bytes refused: the limit is {} bytes; it was not saved", self.max_bytes);
            warn!(path = %self.path.display(), size, limit = self.max_bytes, "checkpoint too large");
            self.refused = Some(msg);
            return Ok(());
        }
        if self.last.as_ref() != Some(&data) {
            self.last = Some(data.clone());
            self.pending = Some(data);
        }
        Ok(())
    }

    fn try_flush(&mut self) {
        let Some(data) = self.pending.take() else { return };
        match self.tx.try_send(data) {
            Ok(()) => {}
            Err(TrySendError::Full(data)) => self.pending = Some(data),
            Err(TrySendError::Closed(_)) => self.closed = true,
        }
    }
}
