//! The engine test suite: every [`Engine`] implementation must pass [`run`].

use std::ops::Bound;
use std::ops::ControlFlow;

use super::Batch;
use super::Engine;
use super::KeyRange;
use super::MemEngine;
use super::Order;
use super::SledEngine;
use super::Tree;
use crate::error::Error;

/// Run every engine check against `engine`, which must have no trees yet.
pub(crate) async fn run<E: Engine>(engine: E) {
    point_ops(&engine);
    trees_are_isolated_and_shared_by_name(&engine);
    scans(&engine);
    scan_stops_on_break_and_error(&engine);
    batches(&engine);
    remove_range(&engine);
    engine.flush().await.expect("flush");
}

fn tree<E: Engine>(engine: &E, name: &str) -> E::Tree {
    engine.open_tree(name).expect("open tree")
}

/// Keys in `range`, in `order`.
fn keys<'k, T: Tree>(tree: &T, range: impl Into<KeyRange<'k>>, order: Order) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    tree.scan(range, order, |k, _| {
        out.push(k.to_vec());
        Ok(ControlFlow::Continue(()))
    })
    .expect("scan");
    out
}

fn k(i: u8) -> Vec<u8> {
    vec![i]
}

fn point_ops<E: Engine>(engine: &E) {
    let t = tree(engine, "point");
    assert_eq!(t.get(b"a").unwrap(), None);
    assert_eq!(t.first().unwrap(), None);
    assert_eq!(t.last().unwrap(), None);

    t.insert(b"a", b"1".to_vec()).unwrap();
    t.insert(b"a", b"2".to_vec()).unwrap();
    t.insert(b"", b"empty key".to_vec()).unwrap();
    t.insert(b"b", Vec::new()).unwrap();
    assert_eq!(t.get(b"a").unwrap(), Some(b"2".to_vec()), "insert overwrites");
    assert_eq!(t.get(b"").unwrap(), Some(b"empty key".to_vec()));
    assert_eq!(t.get(b"b").unwrap(), Some(Vec::new()), "empty values are values");

    t.remove(b"a").unwrap();
    t.remove(b"never there").unwrap();
    assert_eq!(t.get(b"a").unwrap(), None);
    assert_eq!(t.first().unwrap(), Some((b"".to_vec(), b"empty key".to_vec())));
    assert_eq!(t.last().unwrap(), Some((b"b".to_vec(), Vec::new())));
}

fn trees_are_isolated_and_shared_by_name<E: Engine>(engine: &E) {
    let a = tree(engine, "iso-a");
    let b = tree(engine, "iso-b");
    a.insert(b"k", b"a".to_vec()).unwrap();
    b.insert(b"k", b"b".to_vec()).unwrap();
    assert_eq!(a.get(b"k").unwrap(), Some(b"a".to_vec()));
    assert_eq!(b.get(b"k").unwrap(), Some(b"b".to_vec()));

    let a_again = tree(engine, "iso-a");
    assert_eq!(a_again.get(b"k").unwrap(), Some(b"a".to_vec()), "same name, same data");
    a_again.insert(b"k2", b"x".to_vec()).unwrap();
    assert_eq!(a.get(b"k2").unwrap(), Some(b"x".to_vec()), "writes visible to every handle");
    assert_eq!(engine.clone().open_tree("iso-a").unwrap().get(b"k2").unwrap(), Some(b"x".to_vec()));
}

fn scans<E: Engine>(engine: &E) {
    let t = tree(engine, "scan");
    for i in [5u8, 1, 3, 2, 4] {
        t.insert(&k(i), vec![i * 10]).unwrap();
    }
    // Multi-byte keys order lexicographically, which for big-endian integers is numeric order.
    let big = tree(engine, "scan-be");
    for i in [256u64, 1, 65_536, 255] {
        big.insert(&i.to_be_bytes(), Vec::new()).unwrap();
    }
    let order: Vec<u64> =
        keys(&big, .., Order::Forward).iter().map(|k| u64::from_be_bytes(k.as_slice().try_into().unwrap())).collect();
    assert_eq!(order, vec![1, 255, 256, 65_536]);

    let all: Vec<Vec<u8>> = (1..=5).map(k).collect();
    assert_eq!(keys(&t, .., Order::Forward), all);
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(keys(&t, .., Order::Reverse), rev);

    let (k2, k4) = (k(2), k(4));
    assert_eq!(keys(&t, k2.as_slice()..k4.as_slice(), Order::Forward), vec![k(2), k(3)]);
    assert_eq!(keys(&t, k2.as_slice()..=k4.as_slice(), Order::Reverse), vec![k(4), k(3), k(2)]);
    assert_eq!(keys(&t, k4.as_slice().., Order::Forward), vec![k(4), k(5)]);
    assert_eq!(keys(&t, ..k2.as_slice(), Order::Forward), vec![k(1)]);
    let excluded = (Bound::Excluded(k2.as_slice()), Bound::Excluded(k4.as_slice()));
    assert_eq!(keys(&t, excluded, Order::Forward), vec![k(3)]);

    // Empty and inverted ranges visit nothing instead of panicking.
    assert!(keys(&t, k4.as_slice()..k2.as_slice(), Order::Forward).is_empty());
    assert!(keys(&t, k2.as_slice()..k2.as_slice(), Order::Reverse).is_empty());
    let both_excluded = (Bound::Excluded(k2.as_slice()), Bound::Excluded(k2.as_slice()));
    assert!(keys(&t, both_excluded, Order::Forward).is_empty());
    assert_eq!(keys(&t, k2.as_slice()..=k2.as_slice(), Order::Forward), vec![k(2)]);

    let mut values = Vec::new();
    t.scan(.., Order::Forward, |_, v| {
        values.push(v.to_vec());
        Ok(ControlFlow::Continue(()))
    })
    .unwrap();
    assert_eq!(values, (1..=5).map(|i| vec![i * 10]).collect::<Vec<_>>());
}

fn scan_stops_on_break_and_error<E: Engine>(engine: &E) {
    let t = tree(engine, "scan-stop");
    for i in 1..=5 {
        t.insert(&k(i), Vec::new()).unwrap();
    }
    let mut seen = 0;
    t.scan(.., Order::Reverse, |_, _| {
        seen += 1;
        Ok(if seen == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })
    .unwrap();
    assert_eq!(seen, 2, "scan stops at the first Break");

    let mut seen = 0;
    let err = t
        .scan(.., Order::Forward, |_, _| {
            seen += 1;
            Err(Error::corrupt("test", "visitor failed"))
        })
        .unwrap_err();
    assert_eq!(seen, 1, "scan stops at the first error");
    assert!(matches!(err, Error::Corrupt { what: "test", .. }), "visitor error returned as is: {err}");
}

fn batches<E: Engine>(engine: &E) {
    let t = tree(engine, "batch");
    t.insert(b"gone", b"x".to_vec()).unwrap();
    t.insert(b"kept", b"x".to_vec()).unwrap();

    let mut batch = Batch::with_capacity(4, 4);
    assert!(batch.is_empty());
    batch.insert(b"new1", b"1".to_vec());
    batch.remove(b"gone");
    batch.insert(b"twice", b"first".to_vec());
    batch.insert(b"twice", b"second".to_vec());
    batch.insert(b"undone", b"x".to_vec());
    batch.remove(b"undone");
    assert_eq!(batch.len(), 6);
    t.apply_batch(batch).unwrap();

    assert_eq!(t.get(b"new1").unwrap(), Some(b"1".to_vec()));
    assert_eq!(t.get(b"gone").unwrap(), None);
    assert_eq!(t.get(b"kept").unwrap(), Some(b"x".to_vec()));
    assert_eq!(t.get(b"twice").unwrap(), Some(b"second".to_vec()), "later op on a key wins");
    assert_eq!(t.get(b"undone").unwrap(), None, "later remove wins over earlier insert");

    t.apply_batch(Batch::new()).unwrap();
    assert_eq!(keys(&t, .., Order::Forward).len(), 3, "empty batch changes nothing");
}

fn remove_range<E: Engine>(engine: &E) {
    let t = tree(engine, "remove-range");
    for i in 1..=9 {
        t.insert(&k(i), Vec::new()).unwrap();
    }
    let (k3, k5, k8) = (k(3), k(5), k(8));
    assert_eq!(t.remove_range(k3.as_slice()..k5.as_slice()).unwrap(), 2);
    assert_eq!(t.remove_range(k8.as_slice()..).unwrap(), 2);
    assert_eq!(t.remove_range(..=k(1).as_slice()).unwrap(), 1);
    assert_eq!(t.remove_range(k5.as_slice()..k3.as_slice()).unwrap(), 0, "inverted range");
    assert_eq!(keys(&t, .., Order::Forward), vec![k(2), k(5), k(6), k(7)]);
    assert_eq!(t.remove_range(..).unwrap(), 4);
    assert_eq!(t.first().unwrap(), None);
}

#[tokio::test]
async fn mem_engine_passes_the_suite() {
    run(MemEngine::new()).await;
}

#[tokio::test]
async fn sled_engine_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    run(SledEngine::open(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn sled_engine_keeps_flushed_writes_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = SledEngine::open(dir.path()).unwrap();
        let t = engine.open_tree("durable").unwrap();
        t.insert(b"k", b"v".to_vec()).unwrap();
        // Two operations take sled's batch path; one takes the plain insert (see `apply_batch`).
        let mut batch = Batch::new();
        batch.insert(b"b", b"1".to_vec());
        batch.insert(b"c", b"2".to_vec());
        t.apply_batch(batch).unwrap();
        let mut single = Batch::new();
        single.insert(b"d", b"3".to_vec());
        t.apply_batch(single).unwrap();
        engine.flush().await.unwrap();
    }
    let engine = SledEngine::open(dir.path()).unwrap();
    let t = engine.open_tree("durable").unwrap();
    assert_eq!(t.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(t.get(b"b").unwrap(), Some(b"1".to_vec()));
    assert_eq!(t.get(b"c").unwrap(), Some(b"2".to_vec()));
    assert_eq!(t.get(b"d").unwrap(), Some(b"3".to_vec()));
}
