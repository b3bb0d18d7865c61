//! LogStore behaviour beyond openraft's suite: strict decoding, hole detection, recovery of an
//! interrupted purge, `committed` persistence, bounded reads, legacy entries.

mod common;

use common::TestConfig;
use common::log_id;
use common::normal_entry;
use openraft::RaftLogReader;
use openraft::entry::RaftEntry;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use taskraft_storage::Engine;
use taskraft_storage::LogStore;
use taskraft_storage::LogStoreOptions;
use taskraft_storage::MemEngine;
use taskraft_storage::Order;
use taskraft_storage::SledEngine;
use taskraft_storage::Tree;
use taskraft_storage::codec::ENTRY_FORMAT;
use taskraft_storage::codec::LEGACY_ENTRY_FORMAT;
use taskraft_storage::codec::encode_as;
use taskraft_storage::log_store::LOG_TREE;
use taskraft_storage::log_store::META_TREE;

type MemStore = LogStore<TestConfig, MemEngine>;

async fn store_with(engine: &MemEngine, indexes: std::ops::RangeInclusive<u64>) -> MemStore {
    let mut store = MemStore::new(engine.clone()).unwrap();
    store.blocking_append(indexes.map(|i| normal_entry(1, i))).await.unwrap();
    store
}

#[tokio::test]
async fn undecodable_entry_is_an_error_not_a_skip() {
    let engine = MemEngine::new();
    let mut store = store_with(&engine, 1..=5).await;
    let log = engine.open_tree(LOG_TREE).unwrap();

    log.insert(&3u64.to_be_bytes(), vec![ENTRY_FORMAT, 0xff, 0xff]).unwrap();
    let err = store.try_get_log_entries(1..=5).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("raft log entry"), "{err}");

    log.insert(&3u64.to_be_bytes(), vec![9, 0]).unwrap();
    let err = store.try_get_log_entries(2..4).await.unwrap_err();
    assert!(err.to_string().contains("format version 9"), "{err}");

    // A valid entry filed under the wrong index is corruption too.
    let misplaced = encode_as(ENTRY_FORMAT, "test", &normal_entry(1, 9)).unwrap();
    log.insert(&3u64.to_be_bytes(), misplaced).unwrap();
    let err = store.try_get_log_entries(3..4).await.unwrap_err();
    assert!(err.to_string().contains("stored under index 3"), "{err}");
}

#[tokio::test]
async fn hole_inside_a_range_is_an_error() {
    let engine = MemEngine::new();
    let mut store = store_with(&engine, 1..=5).await;
    engine.open_tree(LOG_TREE).unwrap().remove(&3u64.to_be_bytes()).unwrap();

    let err = store.try_get_log_entries(1..=5).await.unwrap_err();
    assert!(err.to_string().contains("hole between index 2 and 4"), "{err}");
    // Missing entries at the ends of a range are allowed (purged / not yet appended).
    assert_eq!(store.try_get_log_entries(4..100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn undecodable_vote_is_an_error() {
    let engine = MemEngine::new();
    let mut store = MemStore::new(engine.clone()).unwrap();
    engine.open_tree(META_TREE).unwrap().insert(b"vote", vec![1]).unwrap();
    assert!(store.read_vote().await.is_err());
}

#[tokio::test]
async fn reopen_finishes_an_interrupted_purge() {
    let engine = MemEngine::new();
    let mut store = store_with(&engine, 1..=10).await;
    store.purge(log_id(1, 4)).await.unwrap();
    store.wait_for_purge();

    // Simulate a crash between recording `last_purged` and deleting the entries.
    let log = engine.open_tree(LOG_TREE).unwrap();
    for i in 1..=4 {
        let value = encode_as(ENTRY_FORMAT, "test", &normal_entry(1, i)).unwrap();
        log.insert(&i.to_be_bytes(), value).unwrap();
    }
    let mut reopened = MemStore::new(engine.clone()).unwrap();
    let entries = reopened.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(entries.first().map(|e| e.index()), Some(5));
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(1, 10)));
}

#[tokio::test]
async fn committed_survives_reopen_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::<TestConfig, _>::new(SledEngine::open(dir.path()).unwrap()).unwrap();
        store.blocking_append((1..=3).map(|i| normal_entry(2, i))).await.unwrap();
        store.save_committed(Some(log_id(2, 3))).await.unwrap();
        // `committed` rides on the next flush, here the one of truncate_after.
        store.truncate_after(Some(log_id(2, 3))).await.unwrap();
    }
    let mut store = LogStore::<TestConfig, _>::new(SledEngine::open(dir.path()).unwrap()).unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 3)));
    assert_eq!(store.last_log_index().unwrap(), Some(3));

    store.save_committed(None).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), None);
}

#[tokio::test]
async fn a_dropped_store_releases_its_database_even_during_a_background_purge() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = LogStore::<TestConfig, _>::new(SledEngine::open(dir.path()).unwrap()).unwrap();
        // Appends start the flusher thread; the purge starts the background deletion of 19 000
        // entries, still running when the store is dropped.
        store.blocking_append((1..=20_000).map(|i| normal_entry(1, i))).await.unwrap();
        store.purge(log_id(1, 19_000)).await.unwrap();
    }
    // sled locks its directory: this open fails while any thread still holds the engine.
    let mut store = LogStore::<TestConfig, _>::new(SledEngine::open(dir.path()).unwrap()).unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 19_000)));
    assert_eq!(state.last_log_id, Some(log_id(1, 20_000)));
}

#[tokio::test]
async fn limited_reads_stop_at_the_byte_budget_but_return_at_least_one_entry() {
    let engine = MemEngine::new();
    let mut store = LogStore::<TestConfig, _>::with_options(engine, LogStoreOptions { max_read_bytes: 1 }).unwrap();
    store.blocking_append((1..=10).map(|i| normal_entry(1, i))).await.unwrap();

    let limited = store.limited_get_log_entries(3, 10).await.unwrap();
    assert_eq!(limited.iter().map(|e| e.index()).collect::<Vec<_>>(), vec![3]);
    // The unlimited read is not affected by the budget.
    assert_eq!(store.try_get_log_entries(3..10).await.unwrap().len(), 7);
}

#[tokio::test]
async fn empty_append_still_fires_the_callback() {
    let mut store = MemStore::new(MemEngine::new()).unwrap();
    store.blocking_append(Vec::new()).await.unwrap();
    assert_eq!(store.last_log_index().unwrap(), None);
}

/// The entry as a release before entry format 2 wrote it: same layout, version byte 1.
fn legacy_value(index: u64) -> Vec<u8> {
    encode_as(LEGACY_ENTRY_FORMAT, "test", &normal_entry(1, index)).unwrap()
}

#[tokio::test]
async fn legacy_entries_are_refused_without_an_upgrade_function() {
    let engine = MemEngine::new();
    let mut store = store_with(&engine, 1..=3).await;
    engine.open_tree(LOG_TREE).unwrap().insert(&2u64.to_be_bytes(), legacy_value(2)).unwrap();
    let err = store.try_get_log_entries(1..=3).await.unwrap_err();
    assert!(err.to_string().contains("format version 1"), "{err}");
}

#[tokio::test]
async fn legacy_entries_are_read_through_the_upgrade_function() {
    fn upgrade(version: u8, body: &[u8]) -> Result<<TestConfig as openraft::RaftTypeConfig>::Entry, String> {
        assert_eq!(version, LEGACY_ENTRY_FORMAT);
        let mut entry: <TestConfig as openraft::RaftTypeConfig>::Entry =
            postcard::from_bytes(body).map_err(|e| e.to_string())?;
        if let openraft::EntryPayload::Normal(req) = &mut entry.payload {
            req.value = format!("upgraded {}", req.value);
        }
        Ok(entry)
    }
    let engine = MemEngine::new();
    let store = store_with(&engine, 1..=3).await;
    drop(store);
    engine.open_tree(LOG_TREE).unwrap().insert(&2u64.to_be_bytes(), legacy_value(2)).unwrap();
    let mut store = MemStore::new(engine.clone()).unwrap().with_upgrade(upgrade);
    let entries = store.try_get_log_entries(1..=3).await.unwrap();
    let values: Vec<String> = entries
        .iter()
        .map(|e| match &e.payload {
            openraft::EntryPayload::Normal(r) => r.value.clone(),
            _ => String::new(),
        })
        .collect();
    assert!(values[1].starts_with("upgraded "), "{values:?}");
    assert!(!values[0].starts_with("upgraded ") && !values[2].starts_with("upgraded "), "{values:?}");
}

#[tokio::test]
async fn purged_entries_are_never_read_and_are_deleted_in_the_background() {
    let engine = MemEngine::new();
    let mut store = store_with(&engine, 1..=5000).await;
    store.purge(log_id(1, 3000)).await.unwrap();
    // Whether or not the background deletion has run yet, reads start above the purge point.
    let entries = store.try_get_log_entries(0..10_000).await.unwrap();
    assert_eq!(entries.first().map(|e| e.index()), Some(3001));
    assert_eq!(entries.len(), 2000);
    let mut reader = store.get_log_reader().await;
    assert_eq!(reader.limited_get_log_entries(2990, 3010).await.unwrap().first().map(|e| e.index()), Some(3001));
    store.wait_for_purge();
    let log = engine.open_tree(LOG_TREE).unwrap();
    let mut stored = 0;
    log.scan(.., Order::Forward, |_, _| {
        stored += 1;
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    assert_eq!(stored, 2000);

    // A follower installing a snapshot far ahead purges past everything it holds.
    store.purge(log_id(2, 1_000_000)).await.unwrap();
    store.wait_for_purge();
    assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 1_000_000)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1_000_000)));
    // The next append lands above it and is read back.
    store.blocking_append([normal_entry(2, 1_000_001)]).await.unwrap();
    assert_eq!(store.try_get_log_entries(..).await.unwrap().len(), 1);
}

#[tokio::test]
async fn committed_is_never_saved_past_the_flushed_log() {
    let engine = MemEngine::new();
    let mut store = MemStore::new(engine.clone()).unwrap();
    // openraft may commit an entry before this replica's own flush of it: not saved then.
    store.save_committed(Some(log_id(1, 5))).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), None);
    store.blocking_append((1..=5).map(|i| normal_entry(1, i))).await.unwrap();
    store.save_committed(Some(log_id(1, 5))).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 5)));
    // Entries replaced after a truncation must be flushed again before `committed` covers them.
    store.truncate_after(Some(log_id(1, 3))).await.unwrap();
    store.save_committed(Some(log_id(1, 3))).await.unwrap();
    store.save_committed(Some(log_id(2, 4))).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 3)));
    store.blocking_append([normal_entry(2, 4)]).await.unwrap();
    store.save_committed(Some(log_id(2, 4))).await.unwrap();
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 4)));
    // What a reopened store finds on disk counts as flushed.
    drop(store);
    let mut reopened = MemStore::new(engine).unwrap();
    reopened.save_committed(Some(log_id(2, 4))).await.unwrap();
    assert_eq!(reopened.read_committed().await.unwrap(), Some(log_id(2, 4)));
}
