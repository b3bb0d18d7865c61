//! [`SnapshotStore`]: checksummed snapshot files in one directory, replaced atomically.
//!
//! A snapshot is written as `snapshot-<seq>.bin`, where `<seq>` is a zero-padded, ever-increasing
//! number, so the newest file sorts last. Saving goes:
//!
//! 1. write header, metadata and data to `snapshot-<seq>.bin.tmp`;
//! 2. fsync the temp file;
//! 3. rename it to `snapshot-<seq>.bin` (atomic on POSIX file systems);
//! 4. fsync the directory, so the rename itself survives a crash;
//! 5. delete every older `snapshot-*.bin`.
//!
//! A crash before step 3 leaves only a temp file, deleted on the next [`SnapshotStore::open`]; a
//! crash after it leaves the new snapshot (and maybe an old one, ignored because it sorts first).
//!
//! File format (little-endian):
//!
//! ```text
//! magic "TRSN" | version u8 = 1 | crc32 u32 | meta_len u32 | data_len u64 | meta | data
//! ```
//!
//! The CRC-32 covers everything after itself (both lengths, metadata, data), so a flipped bit
//! anywhere past the magic, a truncated file or a torn length is detected. `meta` is the caller's
//! metadata in postcard; `data` is opaque bytes. A snapshot that fails any check is an error —
//! never silently skipped in favour of an older one or an empty state.
//!
//! The same file format carries a backup (`taskraft snapshot save`): [`encode_file`] builds the
//! bytes, [`decode_file`] checks and splits them, and [`write_atomic`] stores them with the same
//! temp + fsync + rename steps as a snapshot.

use std::fs;
use std::fs::File;
use std::io::BufWriter;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::error::Result;

const MAGIC: [u8; 4] = *b"TRSN";
/// Format version of snapshot files written by this build.
pub const SNAPSHOT_FORMAT_VERSION: u8 = 1;
/// magic + version + crc32 + meta_len + data_len.
const HEADER_LEN: usize = 4 + 1 + 4 + 4 + 8;
/// Offset of the first byte covered by the checksum (just after the crc field).
const CRC_START: usize = 4 + 1 + 4;

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".bin";
const TEMP_SUFFIX: &str = ".bin.tmp";

/// Snapshot files in one directory; only the newest is kept.
///
/// Cheap to clone (clones share state). Methods do blocking file I/O: call them from
/// `tokio::task::spawn_blocking` in async code. Saves are serialised internally. One directory
/// must be used by one `SnapshotStore` (one process) at a time.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Sequence number of the next snapshot file; held for the whole save.
    next_seq: Mutex<u64>,
}

impl SnapshotStore {
    /// Open (creating if needed) the snapshot directory `dir` and delete temp files left by an
    /// interrupted save.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create snapshot directory", &dir, e))?;

        let mut newest = 0;
        for name in file_names(&dir)? {
            if name.starts_with(PREFIX) && name.ends_with(TEMP_SUFFIX) {
                let path = dir.join(&name);
                fs::remove_file(&path).map_err(|e| Error::io("remove stray snapshot temp file", &path, e))?;
                tracing::info!(path = %path.display(), "removed snapshot temp file of an interrupted save");
            } else if let Some(seq) = parse_seq(&name) {
                newest = newest.max(seq);
            }
        }
        Ok(SnapshotStore { inner: Arc::new(Inner { dir, next_seq: Mutex::new(newest + 1) }) })
    }

    /// The directory holding the snapshot files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Durably store a new snapshot and delete older ones.
    ///
    /// When this returns `Ok`, the snapshot survives a crash and [`Self::load_latest`] returns it.
    pub fn save<M: Serialize>(&self, meta: &M, data: &[u8]) -> Result<()> {
        let meta = postcard::to_stdvec(meta).map_err(|source| Error::Encode { what: "snapshot metadata", source })?;
        let meta_len = u32::try_from(meta.len()).map_err(|_| {
            Error::corrupt("snapshot metadata", format!("{} bytes exceed the u32 length field", meta.len()))
        })?;

        // A poisoned lock only means an earlier save panicked; the counter is still valid.
        let mut next_seq = self.inner.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = *next_seq;
        let dir = &self.inner.dir;
        let temp = dir.join(format!("{PREFIX}{seq:020}{TEMP_SUFFIX}"));
        let path = dir.join(file_name(seq));

        write_file(&temp, meta_len, &meta, data)?;
        fs::rename(&temp, &path).map_err(|e| Error::io("rename snapshot into place", &path, e))?;
        sync_dir(dir)?;
        *next_seq = seq + 1;
        tracing::info!(path = %path.display(), bytes = data.len(), "snapshot saved");

        self.remove_older_than(seq);
        Ok(())
    }

    /// The newest snapshot's metadata and data, or `None` if no snapshot was ever saved.
    ///
    /// Fails if the newest file is damaged (bad magic, unknown version, checksum mismatch, wrong
    /// length, undecodable metadata).
    pub fn load_latest<M: DeserializeOwned>(&self) -> Result<Option<(M, Vec<u8>)>> {
        let newest = file_names(&self.inner.dir)?.iter().filter_map(|name| parse_seq(name)).max();
        let Some(seq) = newest else {
            return Ok(None);
        };
        let path = self.inner.dir.join(file_name(seq));
        let bytes = fs::read(&path).map_err(|e| Error::io("read snapshot", &path, e))?;
        decode_file(&path, bytes).map(Some)
    }

    /// Delete snapshot files older than `seq`. The new snapshot is already durable, so a failure
    /// here is only logged: a leftover old file is ignored by `load_latest` and retried next time.
    fn remove_older_than(&self, seq: u64) {
        let names = match file_names(&self.inner.dir) {
            Ok(names) => names,
            Err(err) => {
                tracing::warn!(error = %err, "cannot list old snapshots for deletion");
                return;
            }
        };
        for name in names {
            if parse_seq(&name).is_some_and(|old| old < seq) {
                let path = self.inner.dir.join(&name);
                if let Err(err) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %err, "cannot delete old snapshot");
                }
            }
        }
    }
}

fn file_name(seq: u64) -> String {
    format!("{PREFIX}{seq:020}{SUFFIX}")
}

/// The sequence number of a finished snapshot file name, or `None` for any other file.
fn parse_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Names of the entries in `dir` (non-UTF-8 names are skipped: we never write them).
fn file_names(dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list snapshot directory", dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list snapshot directory", dir, e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

fn header(meta_len: u32, meta: &[u8], data: &[u8]) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4] = SNAPSHOT_FORMAT_VERSION;
    header[CRC_START..CRC_START + 4].copy_from_slice(&meta_len.to_le_bytes());
    header[CRC_START + 4..].copy_from_slice(&(data.len() as u64).to_le_bytes());

    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[CRC_START..]);
    crc.update(meta);
    crc.update(data);
    header[5..CRC_START].copy_from_slice(&crc.finalize().to_le_bytes());
    header
}

/// Write and fsync one complete snapshot file at `path`.
fn write_file(path: &Path, meta_len: u32, meta: &[u8], data: &[u8]) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io("create snapshot temp file", path, e))?;
    let mut out = BufWriter::new(file);
    let write = |out: &mut BufWriter<File>| -> std::io::Result<()> {
        out.write_all(&header(meta_len, meta, data))?;
        out.write_all(meta)?;
        out.write_all(data)?;
        out.flush()
    };
    write(&mut out).map_err(|e| Error::io("write snapshot temp file", path, e))?;
    let file = out.into_inner().map_err(|e| Error::io("write snapshot temp file", path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io("fsync snapshot temp file", path, e))
}

/// fsync a directory so that a rename or creation inside it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync snapshot directory", dir, e))
}

/// The bytes of one complete snapshot file: header, `meta` in postcard, `data`.
pub fn encode_file<M: Serialize>(meta: &M, data: &[u8]) -> Result<Vec<u8>> {
    let meta = postcard::to_stdvec(meta).map_err(|source| Error::Encode { what: "snapshot metadata", source })?;
    let meta_len = u32::try_from(meta.len()).map_err(|_| {
        Error::corrupt("snapshot metadata", format!("{} bytes exceed the u32 length field", meta.len()))
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + meta.len() + data.len());
    out.extend_from_slice(&header(meta_len, &meta, data));
    out.extend_from_slice(&meta);
    out.extend_from_slice(data);
    Ok(out)
}

/// Durably writes `bytes` to `path`: a temp file beside it, fsync, rename over `path`, fsync of
/// the directory. A crash leaves either the old file (or none) or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write temp file", &temp, e));
    }
    fs::rename(&temp, path).map_err(|e| Error::io("rename into place", path, e))?;
    sync_dir(&dir)
}

/// Validates and splits the bytes of a snapshot file read from `path` (named in errors): the
/// magic, the version, the checksum over everything after it, the lengths and the metadata.
pub fn decode_file<M: DeserializeOwned>(path: &Path, mut bytes: Vec<u8>) -> Result<(M, Vec<u8>)> {
    let corrupt = |detail: String| Error::CorruptSnapshot { path: path.to_path_buf(), detail };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(format!("{} bytes is shorter than the header", bytes.len())));
    }
    if bytes[..4] != MAGIC {
        return Err(corrupt("bad magic, not a taskraft snapshot".into()));
    }
    if bytes[4] != SNAPSHOT_FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "snapshot file",
            found: bytes[4],
            expected: SNAPSHOT_FORMAT_VERSION,
        });
    }
    let stored_crc = u32::from_le_bytes(bytes[5..CRC_START].try_into().expect("4-byte slice"));
    let actual_crc = crc32fast::hash(&bytes[CRC_START..]);
    if stored_crc != actual_crc {
        return Err(corrupt(format!(
            "checksum mismatch: header says {stored_crc:#010x}, content hashes to {actual_crc:#010x}"
        )));
    }
    let meta_len = u32::from_le_bytes(bytes[CRC_START..CRC_START + 4].try_into().expect("4-byte slice")) as usize;
    let data_len = u64::from_le_bytes(bytes[CRC_START + 4..HEADER_LEN].try_into().expect("8-byte slice"));
    let expected_len = (HEADER_LEN as u64).checked_add(meta_len as u64).and_then(|n| n.checked_add(data_len));
    if expected_len != Some(bytes.len() as u64) {
        return Err(corrupt(format!(
            "length mismatch: header says {meta_len} + {data_len} payload bytes, file has {}",
            bytes.len() - HEADER_LEN
        )));
    }

    let data_start = HEADER_LEN + meta_len;
    let (meta, rest) = postcard::take_from_bytes::<M>(&bytes[HEADER_LEN..data_start])
        .map_err(|source| Error::Decode { what: "snapshot metadata", source })?;
    if !rest.is_empty() {
        return Err(corrupt(format!("{} trailing bytes after the metadata", rest.len())));
    }
    // Reuse the file buffer for the data: shift it down instead of copying into a new allocation.
    bytes.drain(..data_start);
    Ok((meta, bytes))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Meta {
        last_index: u64,
        note: String,
    }

    fn meta(last_index: u64) -> Meta {
        Meta { last_index, note: format!("up to {last_index}") }
    }

    fn snapshot_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = file_names(dir).unwrap().into_iter().filter(|n| n.starts_with(PREFIX)).collect();
        names.sort();
        names
    }

    fn only_file(dir: &Path) -> PathBuf {
        let names = snapshot_files(dir);
        assert_eq!(names.len(), 1, "exactly one snapshot file: {names:?}");
        dir.join(&names[0])
    }

    #[test]
    fn empty_directory_has_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path().join("snaps")).unwrap();
        assert!(store.load_latest::<Meta>().unwrap().is_none());
    }

    #[test]
    fn save_load_round_trip_keeps_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        store.save(&meta(10), b"first state").unwrap();
        store.save(&meta(20), b"second state").unwrap();
        store.save(&meta(30), b"").unwrap();
        assert_eq!(store.load_latest::<Meta>().unwrap(), Some((meta(30), Vec::new())));
        only_file(dir.path());

        // Sequence numbers continue after a reopen, so the next save still sorts last.
        let reopened = SnapshotStore::open(dir.path()).unwrap();
        assert_eq!(reopened.load_latest::<Meta>().unwrap(), Some((meta(30), Vec::new())));
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        reopened.save(&meta(40), &big).unwrap();
        assert_eq!(reopened.load_latest::<Meta>().unwrap(), Some((meta(40), big)));
        assert!(only_file(dir.path()).ends_with(file_name(4)));
    }

    #[test]
    fn flipped_byte_anywhere_after_the_magic_is_a_checksum_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        store.save(&meta(7), b"precious state").unwrap();
        let path = only_file(dir.path());
        let good = fs::read(&path).unwrap();

        // A byte of the data, of the metadata, of a length field and of the crc itself.
        for at in [good.len() - 3, HEADER_LEN + 1, CRC_START + 1, 6] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            let err = store.load_latest::<Meta>().unwrap_err();
            assert!(
                matches!(&err, Error::CorruptSnapshot { detail, .. } if detail.contains("checksum")),
                "flip at {at}: {err}"
            );
        }
        fs::write(&path, &good).unwrap();
        assert_eq!(store.load_latest::<Meta>().unwrap().unwrap().1, b"precious state");
    }

    #[test]
    fn truncated_bad_magic_and_unknown_version_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path()).unwrap();
        store.save(&meta(7), b"state").unwrap();
        let path = only_file(dir.path());
        let good = fs::read(&path).unwrap();

        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(matches!(store.load_latest::<Meta>(), Err(Error::CorruptSnapshot { .. })));
        fs::write(&path, &good[..10]).unwrap();
        assert!(matches!(store.load_latest::<Meta>(), Err(Error::CorruptSnapshot { .. })));

        let mut bad = good.clone();
        bad[0] = b'X';
        fs::write(&path, &bad).unwrap();
        assert!(matches!(store.load_latest::<Meta>(), Err(Error::CorruptSnapshot { .. })));

        let mut bad = good.clone();
        bad[4] = 9;
        fs::write(&path, &bad).unwrap();
        assert!(matches!(store.load_latest::<Meta>(), Err(Error::UnsupportedVersion { found: 9, .. })));
    }

    #[test]
    fn open_removes_stray_temp_files_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        SnapshotStore::open(dir.path()).unwrap().save(&meta(1), b"one").unwrap();
        let stray = dir.path().join(format!("{PREFIX}{:020}{TEMP_SUFFIX}", 2));
        fs::write(&stray, b"half-written").unwrap();
        let unrelated = dir.path().join("README");
        fs::write(&unrelated, b"keep me").unwrap();

        let store = SnapshotStore::open(dir.path()).unwrap();
        assert!(!stray.exists(), "temp file of an interrupted save is deleted");
        assert!(unrelated.exists(), "unrelated files are not touched");
        assert_eq!(store.load_latest::<Meta>().unwrap(), Some((meta(1), b"one".to_vec())));
    }

    #[test]
    fn file_names_parse_only_our_pattern() {
        assert_eq!(parse_seq(&file_name(42)), Some(42));
        assert_eq!(parse_seq(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_seq("snapshot-42.bin"), None);
        assert_eq!(parse_seq(&format!("{PREFIX}{:020}{TEMP_SUFFIX}", 3)), None);
        assert_eq!(parse_seq("other-00000000000000000001.bin"), None);
    }
}
