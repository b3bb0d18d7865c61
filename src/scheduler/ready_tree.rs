//! `ReadyTree`: a set of `(ready_ms, task id)` pairs, ordered by ready time, that can also hand
//! out the tasks of any ready-time range in task-id order without visiting the rest of the set.
//!
//! The dispatch queue needs both orders at once. Within one priority level, effective priority
//! falls as `ready_ms` grows, so "oldest first" is a walk by ready time; but tasks whose
//! effective priorities are equal (a whole level when aging is off, or every task that became
//! ready within the same aging step) go by lower id. A plain ordered set answers the first and
//! not the second without scanning the whole range.
//!
//! It is a treap (a binary search tree whose shape follows a heap on a per-node priority) in
//! an arena. Every node also knows the size of its subtree and the smallest id in it. Sizes
//! count a prefix (`count_ready_at_most`); the smallest ids let [`ByIdInRange`] run a
//! best-first search: the range splits into O(log n) whole subtrees plus the nodes on the two
//! boundary paths, and the next id in order is always at the top of a small heap of those.
//! Each id handed out costs O(log² n) at worst, however large the range.
//!
//! Node priorities come from a hash of the task id, so the shape depends only on the contents
//! and the order of updates: no randomness, nothing to seed. The tree is derived data (rebuilt
//! from the tasks, never serialized), so its shape is never compared between replicas.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::task::TaskId;

/// The null link.
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    ready: u64,
    id: TaskId,
    /// Smallest id in the subtree rooted here.
    min_id: TaskId,
    /// Nodes in the subtree rooted here.
    size: u32,
    left: u32,
    right: u32,
}

impl Node {
    fn key(&self) -> (u64, TaskId) {
        (self.ready, self.id)
    }
}

/// Heap priority of a node: a fixed mix of its id (SplitMix64's finalizer), so that sequential
/// ids give a balanced tree in expectation.
fn heap_priority(id: TaskId) -> u64 {
    let mut z = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct ReadyTree {
    nodes: Vec<Node>,
    /// Arena slots freed by removals, reused first.
    free: Vec<u32>,
    root: u32,
}

impl Default for ReadyTree {
    fn default() -> Self {
        ReadyTree { nodes: Vec::new(), free: Vec::new(), root: NIL }
    }
}

impl ReadyTree {
    /// The tree of `pairs`, which must be sorted and have unique ids: O(n), for rebuilding an
    /// index after decoding a snapshot. A treap's shape is fixed by its keys and priorities, so
    /// this is the very tree inserting the pairs one by one would give.
    pub(crate) fn from_sorted(pairs: &[(u64, TaskId)]) -> Self {
        assert!(pairs.windows(2).all(|w| w[0] < w[1]), "ready tree built from unsorted pairs");
        let nodes = pairs
            .iter()
            .map(|&(ready, id)| Node { ready, id, min_id: id, size: 1, left: NIL, right: NIL })
            .collect::<Vec<_>>();
        let mut tree = ReadyTree { nodes, free: Vec::new(), root: NIL };
        assert!(u32::try_from(pairs.len()).is_ok_and(|n| n != NIL), "a ready tree holds fewer than 2^32 - 1 tasks");
        // The right spine of the tree built so far, root first: a new, largest key hangs below
        // the last spine node whose priority is higher and adopts the rest of the spine.
        let mut spine: Vec<u32> = Vec::new();
        for i in 0..pairs.len() as u32 {
            let priority = heap_priority(tree.nodes[i as usize].id);
            let mut adopted = NIL;
            while let Some(&top) = spine.last() {
                if heap_priority(tree.nodes[top as usize].id) >= priority {
                    break;
                }
                adopted = spine.pop().expect("just looked at it");
            }
            tree.nodes[i as usize].left = adopted;
            if let Some(&parent) = spine.last() {
                tree.nodes[parent as usize].right = i;
            }
            spine.push(i);
        }
        tree.root = spine.first().copied().unwrap_or(NIL);
        tree.pull_all(tree.root);
        tree
    }

    /// Recomputes the cached sizes and smallest ids of the subtree at `t`, children first.
    fn pull_all(&mut self, t: u32) {
        if t != NIL {
            self.pull_all(self.nodes[t as usize].left);
            self.pull_all(self.nodes[t as usize].right);
            self.pull(t);
        }
    }

    /// Pairs in the tree.
    pub(crate) fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.root == NIL
    }

    /// Adds `(ready, id)`. Ids are unique within a tree.
    pub(crate) fn insert(&mut self, ready: u64, id: TaskId) {
        let node = Node { ready, id, min_id: id, size: 1, left: NIL, right: NIL };
        let n = match self.free.pop() {
            Some(slot) => {
                self.nodes[slot as usize] = node;
                slot
            }
            None => {
                let slot = u32::try_from(self.nodes.len()).ok().filter(|&s| s != NIL);
                self.nodes.push(node);
                slot.expect("a ready tree holds fewer than 2^32 - 1 tasks")
            }
        };
        let (l, r) = self.split(self.root, (ready, id));
        assert!(r == NIL || self.min_key(r) != (ready, id), "task {id} inserted twice into a ready tree");
        let l = self.merge(l, n);
        self.root = self.merge(l, r);
    }

    /// Removes `(ready, id)`; false if it was not there.
    pub(crate) fn remove(&mut self, ready: u64, id: TaskId) -> bool {
        let (root, removed) = self.remove_at(self.root, (ready, id));
        self.root = root;
        removed
    }

    /// Pairs whose ready time is at most `ready`.
    pub(crate) fn count_ready_at_most(&self, ready: u64) -> usize {
        let (mut t, mut count) = (self.root, 0usize);
        while t != NIL {
            let n = &self.nodes[t as usize];
            if n.ready <= ready {
                count += self.size(n.left) as usize + 1;
                t = n.right;
            } else {
                t = n.left;
            }
        }
        count
    }

    /// The smallest ready time that is at least `ready`.
    pub(crate) fn first_ready_from(&self, ready: u64) -> Option<u64> {
        let (mut t, mut best) = (self.root, None);
        while t != NIL {
            let n = &self.nodes[t as usize];
            if n.ready >= ready {
                best = Some(n.ready);
                t = n.left;
            } else {
                t = n.right;
            }
        }
        best
    }

    /// The ids of the pairs whose ready time lies in `lo..=hi`, lowest id first, lazily.
    pub(crate) fn by_id_in(&self, lo: u64, hi: u64) -> ByIdInRange<'_> {
        let mut it = ByIdInRange { tree: self, heap: BinaryHeap::new() };
        if lo <= hi {
            it.seed(lo, hi);
        }
        it
    }

    /// Every pair, in `(ready, id)` order (O(n): for consistency checks).
    pub(crate) fn pairs(&self) -> Vec<(u64, TaskId)> {
        let mut out = Vec::with_capacity(self.len());
        let mut stack = Vec::new();
        let mut t = self.root;
        while t != NIL || !stack.is_empty() {
            while t != NIL {
                stack.push(t);
                t = self.nodes[t as usize].left;
            }
            let n = &self.nodes[stack.pop().expect("the loop condition holds a node") as usize];
            out.push(n.key());
            t = n.right;
        }
        out
    }

    /// Checks the search order, the heap order and every subtree's size and smallest id.
    pub(crate) fn check(&self) -> Result<(), String> {
        let pairs = self.pairs();
        if pairs.windows(2).any(|w| w[0] >= w[1]) {
            return Err("ready tree out of order".into());
        }
        if pairs.len() + self.free.len() != self.nodes.len() {
            return Err(format!(
                "ready tree holds {} pairs and {} free slots in an arena of {}",
                pairs.len(),
                self.free.len(),
                self.nodes.len()
            ));
        }
        self.check_node(self.root).map(|_| ())
    }

    /// `(size, min_id)` of the subtree at `t`, verified.
    fn check_node(&self, t: u32) -> Result<(u32, TaskId), String> {
        if t == NIL {
            return Ok((0, TaskId::MAX));
        }
        let n = &self.nodes[t as usize];
        let (ls, lm) = self.check_node(n.left)?;
        let (rs, rm) = self.check_node(n.right)?;
        let (size, min_id) = (ls + rs + 1, n.id.min(lm).min(rm));
        if (n.size, n.min_id) != (size, min_id) {
            return Err(format!(
                "ready tree node {} caches size {} min {}, not {size} {min_id}",
                n.id, n.size, n.min_id
            ));
        }
        for child in [n.left, n.right] {
            if child != NIL && heap_priority(self.nodes[child as usize].id) > heap_priority(n.id) {
                return Err(format!("ready tree node {} breaks the heap order", n.id));
            }
        }
        Ok((size, min_id))
    }

    fn size(&self, t: u32) -> u32 {
        if t == NIL { 0 } else { self.nodes[t as usize].size }
    }

    fn min_id(&self, t: u32) -> TaskId {
        if t == NIL { TaskId::MAX } else { self.nodes[t as usize].min_id }
    }

    fn min_key(&self, mut t: u32) -> (u64, TaskId) {
        while self.nodes[t as usize].left != NIL {
            t = self.nodes[t as usize].left;
        }
        self.nodes[t as usize].key()
    }

    /// Recomputes the cached size and smallest id of `t` from its children.
    fn pull(&mut self, t: u32) {
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        let size = self.size(l) + self.size(r) + 1;
        let min_id = self.min_id(l).min(self.min_id(r));
        let n = &mut self.nodes[t as usize];
        n.size = size;
        n.min_id = n.id.min(min_id);
    }

    /// Splits `t` into the keys below `key` and the keys from `key` on.
    fn split(&mut self, t: u32, key: (u64, TaskId)) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t as usize].key() < key {
            let (l, r) = self.split(self.nodes[t as usize].right, key);
            self.nodes[t as usize].right = l;
            self.pull(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.nodes[t as usize].left, key);
            self.nodes[t as usize].left = r;
            self.pull(t);
            (l, t)
        }
    }

    /// Joins two trees where every key of `a` is below every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if heap_priority(self.nodes[a as usize].id) > heap_priority(self.nodes[b as usize].id) {
            let right = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = right;
            self.pull(a);
            a
        } else {
            let left = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = left;
            self.pull(b);
            b
        }
    }

    fn remove_at(&mut self, t: u32, key: (u64, TaskId)) -> (u32, bool) {
        if t == NIL {
            return (NIL, false);
        }
        let n = &self.nodes[t as usize];
        let (left, right) = (n.left, n.right);
        let (t, removed) = match key.cmp(&n.key()) {
            std::cmp::Ordering::Equal => {
                self.free.push(t);
                return (self.merge(left, right), true);
            }
            std::cmp::Ordering::Less => {
                let (l, removed) = self.remove_at(left, key);
                self.nodes[t as usize].left = l;
                (t, removed)
            }
            std::cmp::Ordering::Greater => {
                let (r, removed) = self.remove_at(right, key);
                self.nodes[t as usize].right = r;
                (t, removed)
            }
        };
        if removed {
            self.pull(t);
        }
        (t, removed)
    }
}

/// What the best-first search holds: a whole subtree (keyed by its smallest id) or one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Whole(u32),
    One(u32),
}

/// Ids of one ready-time range of a [`ReadyTree`], lowest first (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct ByIdInRange<'a> {
    tree: &'a ReadyTree,
    heap: BinaryHeap<Reverse<(TaskId, Item)>>,
}

impl<'a> ByIdInRange<'a> {
    /// Covers `lo..=hi` with the nodes of the two boundary paths and the whole subtrees between
    /// them.
    fn seed(&mut self, lo: u64, hi: u64) {
        let tree: &'a ReadyTree = self.tree;
        let nodes = &tree.nodes;
        // Down to the first node inside the range: there the two boundary paths part.
        let mut t = self.tree.root;
        while t != NIL {
            let n = &nodes[t as usize];
            if n.ready < lo {
                t = n.right;
            } else if n.ready > hi {
                t = n.left;
            } else {
                break;
            }
        }
        if t == NIL {
            return;
        }
        self.push_one(t);
        // Left of the split node everything is ≤ hi: follow the lower bound.
        let mut l = nodes[t as usize].left;
        while l != NIL {
            let n = &nodes[l as usize];
            if n.ready >= lo {
                self.push_one(l);
                self.push_whole(n.right);
                l = n.left;
            } else {
                l = n.right;
            }
        }
        // Right of it everything is ≥ lo: follow the upper bound.
        let mut r = nodes[t as usize].right;
        while r != NIL {
            let n = &nodes[r as usize];
            if n.ready <= hi {
                self.push_one(r);
                self.push_whole(n.left);
                r = n.right;
            } else {
                r = n.left;
            }
        }
    }

    fn push_one(&mut self, t: u32) {
        self.heap.push(Reverse((self.tree.nodes[t as usize].id, Item::One(t))));
    }

    fn push_whole(&mut self, t: u32) {
        if t != NIL {
            self.heap.push(Reverse((self.tree.nodes[t as usize].min_id, Item::Whole(t))));
        }
    }

    /// The next id without taking it.
    pub(crate) fn peek(&mut self) -> Option<TaskId> {
        loop {
            match self.heap.peek()?.0 {
                (id, Item::One(_)) => return Some(id),
                (_, Item::Whole(t)) => {
                    self.heap.pop();
                    let n = &self.tree.nodes[t as usize];
                    let (left, right) = (n.left, n.right);
                    self.push_one(t);
                    self.push_whole(left);
                    self.push_whole(right);
                }
            }
        }
    }
}

impl Iterator for ByIdInRange<'_> {
    type Item = TaskId;

    fn next(&mut self) -> Option<TaskId> {
        let id = self.peek()?;
        self.heap.pop();
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Against a `BTreeSet` model: inserts and removes keep the same contents, prefix
        /// counts and successors agree, and a range comes out as its ids sorted.
        #[test]
        fn matches_a_sorted_set(
            ops in proptest::collection::vec((any::<bool>(), 0..40u64, 0..60u64), 0..300),
            queries in proptest::collection::vec((0..45u64, 0..45u64), 1..20),
        ) {
            let mut tree = ReadyTree::default();
            let mut model: BTreeSet<(u64, TaskId)> = BTreeSet::new();
            for (insert, ready, id) in ops {
                // Ids are unique in a tree: an insert first takes the id out wherever it is.
                if let Some(&old) = model.iter().find(|&&(_, i)| i == id) {
                    model.remove(&old);
                    prop_assert!(tree.remove(old.0, old.1));
                }
                if insert {
                    model.insert((ready, id));
                    tree.insert(ready, id);
                } else {
                    prop_assert!(!tree.remove(ready, id));
                }
                prop_assert_eq!(tree.check(), Ok(()));
            }
            prop_assert_eq!(tree.pairs(), model.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(tree.len(), model.len());
            for (a, b) in queries {
                let count = model.iter().filter(|(r, _)| *r <= a).count();
                prop_assert_eq!(tree.count_ready_at_most(a), count);
                prop_assert_eq!(tree.first_ready_from(a), model.iter().map(|(r, _)| *r).find(|&r| r >= a));
                let mut want: Vec<TaskId> = model.iter().filter(|(r, _)| (a..=b).contains(r)).map(|(_, i)| *i).collect();
                want.sort_unstable();
                prop_assert_eq!(tree.by_id_in(a, b).collect::<Vec<_>>(), want);
            }
        }
    }

    #[test]
    fn building_from_sorted_pairs_gives_the_same_tree() {
        let pairs: Vec<(u64, TaskId)> = (0..5000u64).map(|i| (i * 7919 % 1000, i)).collect();
        let mut incremental = ReadyTree::default();
        for &(ready, id) in &pairs {
            incremental.insert(ready, id);
        }
        let mut sorted = pairs.clone();
        sorted.sort_unstable();
        let built = ReadyTree::from_sorted(&sorted);
        assert_eq!(built.check(), Ok(()));
        assert_eq!(built.pairs(), sorted);
        fn shape(t: &ReadyTree, n: u32, out: &mut Vec<(TaskId, u32)>) {
            if n != NIL {
                let node = &t.nodes[n as usize];
                out.push((node.id, node.size));
                shape(t, node.left, out);
                shape(t, node.right, out);
            }
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        shape(&incremental, incremental.root, &mut a);
        shape(&built, built.root, &mut b);
        assert_eq!(a, b, "a treap's shape depends only on its keys");
        assert!(ReadyTree::from_sorted(&[]).is_empty());
    }

    #[test]
    fn a_large_tree_stays_shallow() {
        let mut tree = ReadyTree::default();
        for id in 0..100_000u64 {
            tree.insert(id / 7, id);
        }
        fn depth(t: &ReadyTree, n: u32) -> usize {
            if n == NIL {
                return 0;
            }
            let node = &t.nodes[n as usize];
            1 + depth(t, node.left).max(depth(t, node.right))
        }
        let d = depth(&tree, tree.root);
        assert!(d < 60, "depth {d} for 100k sequential ids");
        assert_eq!(tree.by_id_in(10, 12).collect::<Vec<_>>(), (70..91).collect::<Vec<_>>());
        assert_eq!(tree.check(), Ok(()));
    }
}
