//! openraft's storage conformance suite, run against [`LogStore`] on both engines.

mod common;

use common::MemBuilder;
use common::SledBuilder;
use common::TestConfig;
use openraft::StorageError;
use openraft::testing::log::Suite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_store_on_sled_passes_openraft_suite() -> Result<(), StorageError<TestConfig>> {
    Suite::test_all(SledBuilder).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_store_on_memory_passes_openraft_suite() -> Result<(), StorageError<TestConfig>> {
    Suite::test_all(MemBuilder).await
}
