//! Test-only openraft type config, a minimal in-memory state machine, and store builders, so that
//! `openraft::testing::log::Suite` can exercise [`LogStore`] on both engines.
//!
//! The state machine is deliberately trivial: the product's real state machine lives in the
//! `taskraft` package and runs the same suite there. Each integration-test binary uses a different
//! subset of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::Mutex;

use futures::Stream;
use futures::StreamExt;
use openraft::EntryPayload;
use openraft::ErrorSubject;
use openraft::ErrorVerb;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::StorageError;
use openraft::StoredMembership;
use openraft::entry::RaftEntry;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::storage::Snapshot;
use openraft::storage::SnapshotMeta;
use openraft::testing::log::StoreBuilder;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::StoredMembershipOf;
use openraft::vote::RaftLeaderIdExt;
use serde::Deserialize;
use serde::Serialize;
use taskraft_storage::LogStore;
use taskraft_storage::MemEngine;
use taskraft_storage::SledEngine;
use tempfile::TempDir;

openraft::declare_raft_types!(
    /// Type config for storage tests: standard (one leader per term) leader ids, like the product.
    pub TestConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// A write: set `key` to `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub key: String,
    pub value: String,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "set {}={}", self.key, self.value)
    }
}

/// The previous value of the written key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Option<String>);

pub type TestLogId = LogIdOf<TestConfig>;
pub type TestEntry = <TestConfig as openraft::RaftTypeConfig>::Entry;

/// A log id of term `term` (leader node 1) at `index`.
pub fn log_id(term: u64, index: u64) -> TestLogId {
    let leader = openraft::impls::leader_id_std::LeaderId::<u64, u64>::new_committed(term, 1);
    TestLogId::new(leader, index)
}

/// A normal entry carrying `key{index} = value{index}`.
pub fn normal_entry(term: u64, index: u64) -> TestEntry {
    TestEntry::new_normal(log_id(term, index), Request { key: format!("key{index}"), value: format!("value{index}") })
}

/// Map a storage-crate error into openraft's `StorageError` for the builders.
pub fn to_storage_error(err: impl Into<io::Error>) -> StorageError<TestConfig> {
    StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, err.into())
}

/// Everything the state machine holds; also its snapshot format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    last_applied: Option<TestLogId>,
    last_membership: StoredMembershipOf<TestConfig>,
    data: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Inner {
    state: State,
    current_snapshot: Option<(SnapshotMetaOf<TestConfig>, Vec<u8>)>,
}

/// A minimal in-memory state machine; clones share state so the snapshot builder can record the
/// snapshot it built as the current one.
#[derive(Debug, Clone, Default)]
pub struct TestStateMachine {
    inner: Arc<Mutex<Inner>>,
}

impl TestStateMachine {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("test state machine lock poisoned")
    }
}

impl RaftStateMachine<TestConfig> for TestStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<TestLogId>, StoredMembershipOf<TestConfig>), io::Error> {
        let inner = self.lock();
        Ok((inner.state.last_applied, inner.state.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TestConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = {
                let mut inner = self.lock();
                let state = &mut inner.state;
                state.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response(None),
                    EntryPayload::Normal(req) => Response(state.data.insert(req.key, req.value)),
                    EntryPayload::Membership(membership) => {
                        state.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                        Response(None)
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TestConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let state: State =
            postcard::from_bytes(&snapshot).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut inner = self.lock();
        inner.state = state;
        inner.current_snapshot = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<TestConfig, Vec<u8>>>, io::Error> {
        let inner = self.lock();
        Ok(inner.current_snapshot.as_ref().map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: data.clone() }))
    }
}

impl RaftSnapshotBuilder<TestConfig> for TestStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TestConfig, Vec<u8>>, io::Error> {
        let mut inner = self.lock();
        let data = postcard::to_stdvec(&inner.state).map_err(io::Error::other)?;
        let meta = SnapshotMeta {
            last_log_id: inner.state.last_applied,
            last_membership: inner.state.last_membership.clone(),
        };
        inner.current_snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: data })
    }
}

/// Builds a sled-backed log store in a fresh temp dir (the guard deletes it).
pub struct SledBuilder;

impl StoreBuilder<TestConfig, LogStore<TestConfig, SledEngine>, TestStateMachine, TempDir> for SledBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TestConfig, SledEngine>, TestStateMachine), StorageError<TestConfig>> {
        let dir = tempfile::tempdir().map_err(to_storage_error)?;
        let engine = SledEngine::open(dir.path()).map_err(to_storage_error)?;
        let store = LogStore::new(engine).map_err(to_storage_error)?;
        Ok((dir, store, TestStateMachine::default()))
    }
}

/// Builds a memory-backed log store.
pub struct MemBuilder;

impl StoreBuilder<TestConfig, LogStore<TestConfig, MemEngine>, TestStateMachine> for MemBuilder {
    async fn build(&self) -> Result<((), LogStore<TestConfig, MemEngine>, TestStateMachine), StorageError<TestConfig>> {
        let store = LogStore::new(MemEngine::new()).map_err(to_storage_error)?;
        Ok(((), store, TestStateMachine::default()))
    }
}
