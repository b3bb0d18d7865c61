//! openraft's storage conformance suite on the real product stores: the taskraft state
//! machine adapter with the sled and the in-memory log store.

use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use taskraft::node::StateMachine;
use taskraft::node::TypeConfig;
use taskraft_storage::LogStore;
use taskraft_storage::MemEngine;
use taskraft_storage::SledEngine;
use taskraft_storage::SnapshotStore;

struct SledBuilder;
struct MemBuilder;

fn state_machine(dir: &std::path::Path) -> StateMachine {
    StateMachine::open(SnapshotStore::open(dir.join("snapshots")).unwrap()).unwrap().0
}

impl StoreBuilder<TypeConfig, LogStore<TypeConfig, SledEngine>, StateMachine, tempfile::TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TypeConfig, SledEngine>, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::new(SledEngine::open(dir.path().join("raft-log")).unwrap()).unwrap();
        let sm = state_machine(dir.path());
        Ok((dir, log, sm))
    }
}

impl StoreBuilder<TypeConfig, LogStore<TypeConfig, MemEngine>, StateMachine, tempfile::TempDir> for MemBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TypeConfig, MemEngine>, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let sm = state_machine(dir.path());
        Ok((dir, LogStore::new(MemEngine::new()).unwrap(), sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_log_store_with_the_product_state_machine_passes_the_openraft_suite() {
    Suite::test_all(SledBuilder).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_log_store_with_the_product_state_machine_passes_the_openraft_suite() {
    Suite::test_all(MemBuilder).await.unwrap();
}
