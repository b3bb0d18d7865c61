//! `CowMap`: the ordered map of the state's big records (tasks, workflows), shared with frozen
//! copies of the state and copied on write.
//!
//! A snapshot encodes a [`super::Frozen`] copy of the state while apply goes on changing the
//! live one. Both hold the same persistent B-tree (`imbl::OrdMap`, O(1) to clone) whose values
//! are `Arc`s: a write to the live state copies only the tree nodes on its path and, through
//! [`CowMap::get_mut`] (`Arc::make_mut`), the one record it changes, and only while a frozen
//! copy still shares it. Without a frozen copy nothing is shared and every write happens in
//! place.
//!
//! The bytes are those of a `BTreeMap<K, Box<V>>`: serde writes a map of its length and its
//! entries in key order, and an `Arc<V>` as the `V` it holds (serde's `rc` feature).
//!
//! Deliberately not here: a general persistent-collection API. Only what the scheduler calls.

use std::borrow::Borrow;
use std::ops::RangeBounds;
use std::sync::Arc;

use imbl::OrdMap;
use serde::{Deserialize, Serialize};

/// An ordered map of `K` to shared `V`, cloned in O(1), each record copied on its first write
/// after a clone.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
#[serde(bound(serialize = "K: Serialize + Ord, V: Serialize"))]
#[serde(bound(deserialize = "K: Deserialize<'de> + Ord + Clone, V: Deserialize<'de>"))]
pub(crate) struct CowMap<K, V>(OrdMap<K, Arc<V>>);

impl<K: Ord + std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for CowMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (k, &**v))).finish()
    }
}

impl<K: Ord, V: PartialEq> PartialEq for CowMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Ord, V: Eq> Eq for CowMap<K, V> {}

impl<K: Ord + Clone, V: Clone> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap(OrdMap::new())
    }
}

impl<K: Ord + Clone, V: Clone> CowMap<K, V> {
    /// An empty map.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The record under `key`.
    pub(crate) fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.0.get(key).map(|v| &**v)
    }

    /// The record under `key`, shared (a later [`CowMap::get_mut`] copies it while the
    /// returned handle lives).
    pub(crate) fn get_shared<Q: Ord + ?Sized>(&self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
    {
        self.0.get(key).cloned()
    }

    /// Whether `key` has a record.
    pub(crate) fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.0.contains_key(key)
    }

    /// The record under `key`, to change: copied first if a frozen state still shares it.
    pub(crate) fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.0.get_mut(key).map(Arc::make_mut)
    }

    /// The record under `key`, to change, inserting `V::default()` first if there is none.
    pub(crate) fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        Arc::make_mut(self.0.entry(key).or_default())
    }

    /// Puts `value` under `key`, replacing what was there.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.0.insert(key, Arc::new(value));
    }

    /// Takes the record under `key` out (a copy if a frozen state still shares it).
    pub(crate) fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.0.remove(key).map(Arc::unwrap_or_clone)
    }

    /// Drops the record under `key` without copying it (a frozen state may still share it);
    /// hands back the shared record so the caller can read it.
    pub(crate) fn discard<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<Arc<V>>
    where
        K: Borrow<Q>,
    {
        self.0.remove(key)
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.0.iter().map(|(k, v)| (k, &**v))
    }

    /// Records in key order.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> + '_ {
        self.0.values().map(|v| &**v)
    }

    /// Entries whose key is in `range`, in key order.
    pub(crate) fn range<R: RangeBounds<K>>(&self, range: R) -> impl DoubleEndedIterator<Item = (&K, &V)> + '_ {
        self.0.range(range).map(|(k, v)| (k, &**v))
    }

    /// The greatest key.
    pub(crate) fn last_key(&self) -> Option<&K> {
        self.0.get_max().map(|(k, _)| k)
    }
}

impl<'a, K: Ord + Clone, V: Clone> IntoIterator for &'a CowMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn DoubleEndedIterator<Item = (&'a K, &'a V)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<K: Ord + Clone, V: Clone> FromIterator<(K, V)> for CowMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        CowMap(entries.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn writes_the_bytes_of_a_btreemap_of_boxes() {
        let entries = [(3u64, "c".to_string()), (1, "a".into()), (2, "b".into()), (500, "x".repeat(300))];
        let cow: CowMap<u64, String> = entries.iter().cloned().collect();
        let plain: BTreeMap<u64, Box<String>> = entries.iter().map(|(k, v)| (*k, Box::new(v.clone()))).collect();
        let bytes = postcard::to_stdvec(&cow).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&plain).unwrap());
        assert_eq!(serde_json::to_string(&cow).unwrap(), serde_json::to_string(&plain).unwrap());
        assert_eq!(postcard::from_bytes::<CowMap<u64, String>>(&bytes).unwrap(), cow);
    }

    #[test]
    fn a_clone_keeps_its_records_while_the_original_changes() {
        let mut live: CowMap<u64, Vec<u32>> = (0..1000u64).map(|k| (k, vec![k as u32])).collect();
        let frozen = live.clone();
        live.get_mut(&7).unwrap().push(70);
        live.get_or_default(5000).push(1);
        assert_eq!(live.remove(&8), Some(vec![8]));
        live.insert(9, vec![]);
        assert_eq!(frozen.get(&7), Some(&vec![7]));
        assert_eq!(frozen.get(&8), Some(&vec![8]));
        assert_eq!(frozen.get(&9), Some(&vec![9]));
        assert_eq!(frozen.get(&5000), None);
        assert_eq!(frozen.len(), 1000);
        assert_eq!(live.get(&7), Some(&vec![7, 70]));
        assert_eq!(live.last_key(), Some(&5000));
    }
}
