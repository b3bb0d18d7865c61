//! [`MemEngine`]: the in-memory twin of the sled engine.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::RwLock;

use super::Batch;
use super::Engine;
use super::KeyRange;
use super::Order;
use super::Tree;
use super::visit_each;
use crate::error::Result;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An engine that keeps every tree in a `BTreeMap` in memory.
///
/// Clones share the same trees. Nothing survives the process, so [`Engine::flush`] has nothing to
/// do. Semantics otherwise match [`SledEngine`](super::SledEngine), which the shared engine suite
/// checks.
#[derive(Debug, Clone, Default)]
pub struct MemEngine {
    trees: Arc<Mutex<BTreeMap<String, MemTree>>>,
}

impl MemEngine {
    /// A new engine with no trees.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Engine for MemEngine {
    type Tree = MemTree;

    fn open_tree(&self, name: &str) -> Result<MemTree> {
        // A panic elsewhere cannot leave the name map half-updated, so poisoning is harmless.
        let mut trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(trees.entry(name.to_owned()).or_default().clone())
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn flush_blocking(&self) -> Result<()> {
        Ok(())
    }
}

/// One in-memory tree; clones share the same map.
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    map: Arc<RwLock<Map>>,
}

impl MemTree {
    // Every mutation below is a single BTreeMap call or a loop of them that cannot panic halfway
    // through a logical write, so a poisoned lock still guards a consistent map.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tree for MemTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read().get(key).cloned())
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.write().insert(key.to_vec(), value);
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<()> {
        self.write().remove(key);
        Ok(())
    }

    fn scan<'k, F>(&self, range: impl Into<KeyRange<'k>>, order: Order, mut visit: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>>,
    {
        let range = range.into();
        if range.is_empty() {
            return Ok(());
        }
        let bounds = range.bounds();
        let map = self.read();
        let iter = map.range::<[u8], _>(bounds);
        match order {
            Order::Forward => visit_each(iter.map(Ok), &mut visit),
            Order::Reverse => visit_each(iter.rev().map(Ok), &mut visit),
        }
    }

    fn apply_batch(&self, batch: Batch) -> Result<()> {
        // One write lock for the whole batch: readers see all of it or none of it.
        let mut map = self.write();
        batch.for_each_op(|key, value| match value {
            Some(value) => {
                map.insert(key.to_vec(), value);
            }
            None => {
                map.remove(key);
            }
        });
        Ok(())
    }

    fn remove_range<'k>(&self, range: impl Into<KeyRange<'k>>) -> Result<usize> {
        let range = range.into();
        if range.is_empty() {
            return Ok(0);
        }
        let bounds = range.bounds();
        let mut map = self.write();
        let doomed: Vec<Vec<u8>> = map.range::<[u8], _>(bounds).map(|(k, _)| k.clone()).collect();
        for key in &doomed {
            map.remove(key);
        }
        Ok(doomed.len())
    }
}
