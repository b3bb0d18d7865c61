//! Two durability fixes in taskraft's copy of sled 0.34.7 (`vendor/sled`, see its
//! `TASKRAFT-PATCH.md`), each checked by watching the syncs it must make:
//!
//! - **Blobs.** sled writes any log message above a quarter of a segment (2 MiB with the 8 MiB
//!   segments `SledEngine` creates databases with) to a file of its own under `blobs/` and logs
//!   only a pointer to it. Upstream never syncs that file, and
//!   on recovery it skips a pointer whose blob is missing: a power loss after the next flush would
//!   drop the value silently. The patched `write_blob` syncs the blob and its directory before the
//!   insert returns.
//! - **The log file.** Upstream makes a flushed log buffer "durable" on Linux with
//!   `sync_file_range`, which writes the pages but neither the metadata of the growing file nor
//!   the device's write cache. The patched writer calls `fdatasync`.
//!
//! - **A failed blob sync.** It fails the insert, and it fails the database: a later flush returns
//!   an error instead of waiting forever for a log buffer whose writer slot was never released.
//!
//! A power loss cannot be staged in a test, so these watch the syncs instead: the test binary
//! defines `fsync` and `fdatasync` itself. The linker binds the standard library's calls (and so
//! sled's) to these definitions, which note the path behind the descriptor and then make the real
//! system call, or fail it on request. With upstream sled all three tests fail.

#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::ffi::c_int;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sled::Config;
use taskraft_storage::Engine;
use taskraft_storage::SledEngine;
use taskraft_storage::Tree;
use taskraft_storage::engine::SLED_SEGMENT_BYTES;

/// Paths synced while recording is on; `None` while it is off.
static SYNCED: Mutex<Option<BTreeSet<PathBuf>>> = Mutex::new(None);

/// Held by each test for its whole run: the recorder is one per process, and the test harness
/// runs tests on parallel threads.
static ONE_TEST_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_TEST_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// While set, a sync of a file under a `blobs` directory fails with EIO.
static FAIL_BLOB_SYNCS: AtomicBool = AtomicBool::new(false);

/// Whether the sync of `fd` is to fail (see [`FAIL_BLOB_SYNCS`]); sets errno if so.
fn fail_sync(fd: c_int) -> bool {
    let fail = FAIL_BLOB_SYNCS.load(Ordering::SeqCst)
        && std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|path| path.parent().and_then(Path::file_name).is_some_and(|dir| dir == "blobs"));
    if fail {
        // SAFETY: errno is thread-local; this thread's errno location is always valid.
        unsafe { *libc::__errno_location() = libc::EIO };
    }
    fail
}

fn note_sync(fd: c_int) {
    let mut synced = SYNCED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(paths) = synced.as_mut()
        && let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}"))
    {
        paths.insert(path);
    }
}

/// Records the synced path, then fails the call or makes the real system call `sysno`.
fn intercept_sync(fd: c_int, sysno: libc::c_long) -> c_int {
    note_sync(fd);
    if fail_sync(fd) {
        return -1;
    }
    // SAFETY: the fsync or fdatasync system call with the caller's descriptor, exactly as libc's
    // wrapper makes it.
    unsafe { libc::syscall(sysno, fd) as c_int }
}

/// Takes the place of libc's `fsync` in this test binary: see [`intercept_sync`].
#[unsafe(no_mangle)]
pub extern "C" fn fsync(fd: c_int) -> c_int {
    intercept_sync(fd, libc::SYS_fsync)
}

/// Takes the place of libc's `fdatasync` in this test binary: see [`intercept_sync`].
#[unsafe(no_mangle)]
pub extern "C" fn fdatasync(fd: c_int) -> c_int {
    intercept_sync(fd, libc::SYS_fdatasync)
}

fn record<T>(f: impl FnOnce() -> T) -> (T, BTreeSet<PathBuf>) {
    *SYNCED.lock().unwrap() = Some(BTreeSet::new());
    let result = f();
    let synced = SYNCED.lock().unwrap().take().unwrap_or_default();
    (result, synced)
}

/// A value sled keeps in a blob file: over a quarter of a segment.
const LARGE: usize = SLED_SEGMENT_BYTES / 4 + 64 * 1024;

fn blob_files(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir.join("blobs"))
        .expect("sled keeps a blobs directory")
        .map(|entry| entry.expect("a readable directory entry").path())
        .collect()
}

#[test]
fn a_large_value_is_synced_with_its_directory_before_the_insert_returns() {
    let _serial = one_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    // Incompressible-looking bytes above sled's blob threshold.
    let value: Vec<u8> = (0..LARGE as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    {
        let engine = SledEngine::open(&dir_path).unwrap();
        let tree = engine.open_tree("log").unwrap();
        tree.insert(b"small", vec![1; 16]).unwrap();
        assert!(blob_files(&dir_path).is_empty(), "a 16-byte value went to a blob file");

        let before = blob_files(&dir_path);
        let (inserted, synced) = record(|| tree.insert(b"large", value.clone()));
        inserted.unwrap();
        let new_blobs: BTreeSet<PathBuf> = blob_files(&dir_path).difference(&before).cloned().collect();
        assert!(
            !new_blobs.is_empty(),
            "a value of {LARGE} bytes did not go to a blob file: the test no longer tests anything"
        );
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

#[test]
fn a_flush_fdatasyncs_the_log_file() {
    let _serial = one_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    // No periodic flush thread: the only sync in the window is the one the flush makes.
    let db = Config::new().path(&dir_path).flush_every_ms(None).open().unwrap();
    let engine = SledEngine::from_db(db);
    let tree = engine.open_tree("log").unwrap();
    for i in 0..3u8 {
        tree.insert(&[i], vec![i; 64]).unwrap();
        let (flushed, synced) = record(|| futures::executor::block_on(engine.flush()));
        flushed.unwrap();
        assert!(
            synced.contains(&dir_path.join("db")),
            "flush {i} returned without syncing the log file; synced: {synced:?}"
        );
    }
}

#[test]
fn a_failed_blob_sync_fails_the_insert_and_the_database_instead_of_hanging_it() {
    let _serial = one_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let engine = SledEngine::open(dir.path()).unwrap();
    let tree = engine.open_tree("log").unwrap();
    tree.insert(b"small", vec![1; 16]).unwrap();

    FAIL_BLOB_SYNCS.store(true, Ordering::SeqCst);
    let inserted = tree.insert(b"large", vec![7; LARGE]);
    FAIL_BLOB_SYNCS.store(false, Ordering::SeqCst);
    let err = inserted.expect_err("an insert whose blob could not be synced succeeded");
    assert!(err.to_string().contains("Input/output error") || format!("{err:?}").contains("Io"), "{err:?}");

    // Upstream sled leaves the IO buffer's writer slot taken on this error: the buffer is never
    // written, and a flush waits for it forever. Here the flush reports the failure instead.
    let (tx, rx) = std::sync::mpsc::channel();
    let flushing = engine.clone();
    std::thread::spawn(move || {
        let _ = tx.send(futures::executor::block_on(flushing.flush()));
    });
    let flushed = rx.recv_timeout(Duration::from_secs(20)).expect("a flush after a failed blob sync hung");
    assert!(flushed.is_err(), "a flush after a failed blob sync reported success");
}

/// The segment size sled recorded in the database's `conf` file.
fn recorded_segment_size(dir: &Path) -> usize {
    let conf = std::fs::read(dir.join("conf")).expect("sled writes a conf file");
    let conf = String::from_utf8_lossy(&conf);
    let line = conf.lines().find_map(|l| l.strip_prefix("segment_size:")).expect("conf names the segment size");
    line.trim().parse().expect("a number")
}

#[test]
fn a_new_database_keeps_an_entry_of_a_mebibyte_in_its_log_not_in_a_blob_file() {
    let _serial = one_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // A coalesced entry of 4 096 submits is well under this; with sled's default 512 KiB
    // segments anything over 128 KiB went to a file of its own, created and synced per write.
    let value = vec![3u8; 1 << 20];
    {
        let engine = SledEngine::open(dir.path()).unwrap();
        assert_eq!(recorded_segment_size(dir.path()), SLED_SEGMENT_BYTES);
        let tree = engine.open_tree("log").unwrap();
        tree.insert(b"entry", value.clone()).unwrap();
        futures::executor::block_on(engine.flush()).unwrap();
        assert!(blob_files(dir.path()).is_empty(), "a 1 MiB entry went to a blob file");
    }
    let engine = SledEngine::open(dir.path()).unwrap();
    assert_eq!(engine.open_tree("log").unwrap().get(b"entry").unwrap(), Some(value));
}

#[test]
fn a_database_created_with_sleds_default_segments_still_opens_and_keeps_them() {
    let _serial = one_test_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    {
        // As every release before 8 MiB segments created it.
        let db = Config::new().path(dir.path()).open().unwrap();
        db.open_tree("log").unwrap().insert(b"old", vec![1; 64]).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(recorded_segment_size(dir.path()), 512 * 1024);
    let engine = SledEngine::open(dir.path()).expect("an existing database opens with the segment size it has");
    let tree = engine.open_tree("log").unwrap();
    assert_eq!(tree.get(b"old").unwrap(), Some(vec![1; 64]));
    tree.insert(b"new", vec![2; 64]).unwrap();
    futures::executor::block_on(engine.flush()).unwrap();
    drop((tree, engine));
    assert_eq!(recorded_segment_size(dir.path()), 512 * 1024);
    let engine = SledEngine::open(dir.path()).unwrap();
    assert_eq!(engine.open_tree("log").unwrap().get(b"new").unwrap(), Some(vec![2; 64]));
    drop(engine);

    // A `conf` that names no size (sled takes it as absent and writes its own): the existing log
    // is still read with the size it was written with.
    std::fs::write(dir.path().join("conf"), b"").unwrap();
    let engine = SledEngine::open(dir.path()).expect("opens with the old default");
    assert_eq!(engine.open_tree("log").unwrap().get(b"old").unwrap(), Some(vec![1; 64]));
    drop(engine);
    assert_eq!(recorded_segment_size(dir.path()), 512 * 1024);
}
