//! Pairing each invoke with its completion.
//!
//! A history is a flat list of lines; checkers reason about operations, each an interval in real
//! time from its invoke to its completion. Every process has at most one operation in flight, so
//! the pairing is a walk in history order that remembers, per process, the invoke still open:
//! 1. an `invoke` opens an operation for its process;
//! 2. the next `ok` / `fail` / `info` of that process closes it;
//! 3. an invoke that is never closed (the run ended, the client was torn down) stays open: it is
//!    indeterminate, exactly like `info`;
//! 4. a completion with nothing open is kept apart as an orphan (a recording bug worth reporting,
//!    not a reason to drop what it says).
//!
//! Pairing does not check that the completion's `f` matches the invoke's: a process never has two
//! operations in flight, so a mismatch is a recorder bug that the checkers would misread anyway.

use std::collections::BTreeMap;

use crate::history::Body;
use crate::history::Op;
use crate::history::OpType;
use crate::history::Process;

/// One operation: its invoke and, if it ever came, its completion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedOp<'a> {
    /// The `invoke` line.
    pub invoke: &'a Op,
    /// The `ok` / `fail` / `info` line, or `None` if the history ends first.
    pub completion: Option<&'a Op>,
}

impl<'a> PairedOp<'a> {
    /// How it ended; an operation that never completed is `Info` (it may have taken effect).
    pub fn outcome(&self) -> OpType {
        self.completion.map_or(OpType::Info, |c| c.kind)
    }

    /// True if it completed `ok`.
    pub fn is_ok(&self) -> bool {
        self.outcome() == OpType::Ok
    }

    /// True if it completed `fail` (definitely no effect).
    pub fn is_fail(&self) -> bool {
        self.outcome() == OpType::Fail
    }

    /// When it was sent.
    pub fn invoke_ns(&self) -> u64 {
        self.invoke.time_ns
    }

    /// When it completed, if it did.
    pub fn complete_ns(&self) -> Option<u64> {
        self.completion.map(|c| c.time_ns)
    }

    /// The most informative body: the completion's (it carries results such as a task id or
    /// what a read saw) when there is one, otherwise the invoke's.
    pub fn body(&self) -> &'a Body {
        &self.completion.unwrap_or(self.invoke).body
    }
}

/// The result of [`pair_ops`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pairing<'a> {
    /// Every operation, in the order of its invoke.
    pub ops: Vec<PairedOp<'a>>,
    /// Completions that had no open invoke for their process.
    pub orphans: Vec<&'a Op>,
}

/// Pairs invokes with completions by process, walking `history` in the order given (the order the
/// lines were written, which is what "next completion of this process" means).
pub fn pair_ops(history: &[Op]) -> Pairing<'_> {
    let mut open: BTreeMap<Process, usize> = BTreeMap::new();
    let mut pairing = Pairing::default();
    for op in history {
        if op.kind == OpType::Invoke {
            // A second invoke while one is open means the first never completed: it stays
            // indeterminate, which is the safe reading.
            open.insert(op.process, pairing.ops.len());
            pairing.ops.push(PairedOp { invoke: op, completion: None });
        } else if let Some(i) = open.remove(&op.process) {
            pairing.ops[i].completion = Some(op);
        } else {
            pairing.orphans.push(op);
        }
    }
    pairing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::Hist;
    use crate::checkers::testkit::Outcome;

    #[test]
    fn pairs_by_process_across_interleaving() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 10), Outcome::Ok(1)).submit(2, "b", (5, 7), Outcome::Fail).submit(
            3,
            "c",
            (6, 0),
            Outcome::Never,
        );
        let history = h.build();
        let p = pair_ops(&history);
        assert!(p.orphans.is_empty());
        let summary: Vec<_> = p.ops.iter().map(|o| (o.invoke_ns(), o.complete_ns(), o.outcome())).collect();
        assert_eq!(
            summary,
            vec![(0, Some(10), OpType::Ok), (5, Some(7), OpType::Fail), (6, None, OpType::Info)],
            "invoke-only operations read as info"
        );
        assert!(matches!(p.ops[0].body(), Body::Submit(v) if v.task_id == Some(1)), "the completion's body wins");
    }

    #[test]
    fn reinvoke_leaves_the_first_open_and_orphans_are_kept() {
        let mut h = Hist::new();
        h.submit(1, "a", (0, 0), Outcome::Never).submit(1, "a", (3, 4), Outcome::Info);
        let mut history = h.build();
        let mut orphan = history[2].clone();
        orphan.process = Process::Client(9);
        history.push(orphan);
        let p = pair_ops(&history);
        assert_eq!(p.ops.len(), 2);
        assert_eq!(p.ops[0].completion, None);
        assert_eq!(p.ops[1].complete_ns(), Some(4));
        assert_eq!(p.orphans.len(), 1);
    }
}
