//! A value too large for sled's log buffer is synced, with its directory entry, before the insert
//! that wrote it returns.
//!
//! sled writes any log message above a quarter of a segment (about 128 KiB) to a file of its own
//! under `blobs/` and logs only a pointer to it. Upstream sled 0.34.7 never syncs that file, and on
//! recovery it skips a pointer whose blob is missing: a power loss after the next flush would drop
//! the value silently. taskraft builds sled from `vendor/sled`, patched to sync the blob and its
//! directory in `write_blob` (see `vendor/sled/TASKRAFT-PATCH.md`).
//!
//! A power loss cannot be staged in a test, so this one watches the syncs instead: the test binary
//! defines `fsync` and `fdatasync` itself. The linker binds the standard library's calls (and so
//! sled's) to these definitions, which note the path behind the descriptor and then make the real
//! system call. With upstream sled the blob is never synced and the test fails.

use std::collections::BTreeSet;
use std::ffi::c_int;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;

use taskraft_storage::Engine;
use taskraft_storage::SledEngine;
use taskraft_storage::Tree;

/// Paths synced while recording is on; `None` while it is off.
static SYNCED: Mutex<Option<BTreeSet<PathBuf>>> = Mutex::new(None);

fn note_sync(fd: c_int) {
    let mut synced = SYNCED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(paths) = synced.as_mut()
        && let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}"))
    {
        paths.insert(path);
    }
}

/// Records the synced path, then makes the real system call.
#[unsafe(no_mangle)]
pub extern "C" fn fsync(fd: c_int) -> c_int {
    note_sync(fd);
    // SAFETY: the fsync system call with the caller's descriptor, exactly as libc's fsync makes it.
    unsafe { libc::syscall(libc::SYS_fsync, fd) as c_int }
}

/// Records the synced path, then makes the real system call.
#[unsafe(no_mangle)]
pub extern "C" fn fdatasync(fd: c_int) -> c_int {
    note_sync(fd);
    // SAFETY: the fdatasync system call with the caller's descriptor, as libc's fdatasync makes it.
    unsafe { libc::syscall(libc::SYS_fdatasync, fd) as c_int }
}

fn record<T>(f: impl FnOnce() -> T) -> (T, BTreeSet<PathBuf>) {
    *SYNCED.lock().unwrap() = Some(BTreeSet::new());
    let result = f();
    let synced = SYNCED.lock().unwrap().take().unwrap_or_default();
    (result, synced)
}

fn blob_files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir.join("blobs"))
        .expect("sled keeps a blobs directory")
        .map(|entry| entry.expect("a readable directory entry").path())
        .collect()
}

#[test]
fn a_large_value_is_synced_with_its_directory_before_the_insert_returns() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    // 300 KiB of incompressible-looking bytes: well above sled's blob threshold.
    let value: Vec<u8> = (0..300 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    {
        let engine = SledEngine::open(&dir_path).unwrap();
        let tree = engine.open_tree("log").unwrap();
        tree.insert(b"small", vec![1; 16]).unwrap();
        assert!(blob_files(&dir_path).is_empty(), "a 16-byte value went to a blob file");

        let before = blob_files(&dir_path);
        let (inserted, synced) = record(|| tree.insert(b"large", value.clone()));
        inserted.unwrap();
        let new_blobs: BTreeSet<PathBuf> = blob_files(&dir_path).difference(&before).cloned().collect();
        assert!(!new_blobs.is_empty(), "a 300 KiB value did not go to a blob file: the test no longer tests anything");
        for blob in &new_blobs {
            assert!(
                synced.contains(blob),
                "blob {} was not synced before the insert returned; synced: {synced:?}",
                blob.display()
            );
        }
        assert!(
            synced.contains(&dir_path.join("blobs")),
            "the blobs directory was not synced before the insert returned; synced: {synced:?}"
        );

        futures::executor::block_on(engine.flush()).unwrap();
    }
    let engine = SledEngine::open(&dir_path).unwrap();
    let tree = engine.open_tree("log").unwrap();
    assert_eq!(tree.get(b"large").unwrap().as_deref(), Some(&value[..]));
}
