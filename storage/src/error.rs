//! The one error type of this crate.
//!
//! Everything that can go wrong below openraft lands here: engine failures, file-system failures,
//! encoding failures and, most importantly, data that does not decode. A decode failure is never
//! skipped or papered over — it means the disk holds something this build cannot trust, and the
//! node must stop rather than apply a guess.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout `taskraft-storage`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The sled engine failed (I/O error, on-disk corruption it detected, or an internal bug).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),

    /// A file-system operation on a path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `"rename"`.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// A value could not be encoded with postcard.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded, e.g. `"raft vote"`.
        what: &'static str,
        /// The postcard error.
        #[source]
        source: postcard::Error,
    },

    /// A stored value could not be decoded with postcard.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded, e.g. `"raft log entry"`.
        what: &'static str,
        /// The postcard error.
        #[source]
        source: postcard::Error,
    },

    /// A stored value carries a format version this build does not understand.
    #[error("{what} has format version {found}, this build reads version {expected}")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found on disk.
        found: u8,
        /// The version byte this build writes and reads.
        expected: u8,
    },

    /// Stored data violates an invariant (empty value, bad key, hole in the log, trailing bytes).
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// What exactly is wrong.
        detail: String,
    },

    /// A snapshot file failed validation (bad magic, checksum mismatch, truncated).
    #[error("corrupt snapshot file {}: {detail}", path.display())]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What exactly is wrong.
        detail: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Corrupt`].
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt { what, detail: detail.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// The [`io::ErrorKind`] this error maps to when handed to openraft.
    pub(crate) fn io_kind(&self) -> io::ErrorKind {
        match self {
            Error::Io { source, .. } => source.kind(),
            Error::Decode { .. }
            | Error::UnsupportedVersion { .. }
            | Error::Corrupt { .. }
            | Error::CorruptSnapshot { .. } => io::ErrorKind::InvalidData,
            Error::Encode { .. } => io::ErrorKind::InvalidInput,
            Error::Sled(_) => io::ErrorKind::Other,
        }
    }
}

/// openraft's storage traits speak `io::Error`; keep the full error as the source so the cause
/// survives into openraft's `StorageError` and the node's fatal log line.
impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.io_kind(), err)
    }
}
