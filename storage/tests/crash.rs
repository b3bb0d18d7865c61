//! Crash test: every append acknowledged through the `IOFlushed` callback survives SIGKILL.
//!
//! The test binary re-executes itself as the child. With `TASKRAFT_CRASH_CHILD_DIR` set, the
//! `crash_child` test opens a sled [`LogStore`] in that directory, saves a vote, then appends
//! entries in small batches forever, printing `#vote` once the vote is saved and `#acked <index>`
//! for each entry only after the append's callback fired. The parent reads a few hundred acks,
//! SIGKILLs the child mid-stream, reopens the store and checks that the vote and every
//! acknowledged entry are there.
//!
//! SIGKILL keeps the kernel page cache but loses sled's in-process write buffers, which is exactly
//! what an unflushed append would lose: without `flush_async` before the callback this test fails.

mod common;

use std::io::BufRead;
use std::io::BufReader;
use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use std::time::Instant;

use common::Request;
use common::TestConfig;
use common::log_id;
use common::normal_entry;
use openraft::RaftLogReader;
use openraft::entry::RaftEntry;
use openraft::impls::Vote;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftLogStorageExt;
use openraft::type_config::alias::VoteOf;
use taskraft_storage::LogStore;
use taskraft_storage::SledEngine;

const CHILD_ENV: &str = "TASKRAFT_CRASH_CHILD_DIR";
/// Acks to collect before the kill: enough to span many sled flushes and batches.
const ACKS_BEFORE_KILL: usize = 300;
/// Upper bound for the whole exchange; a healthy run needs well under a second.
const DEADLINE: Duration = Duration::from_secs(120);
const TERM: u64 = 3;
/// Child output: the vote is durable.
const VOTE_MARKER: &str = "#vote";
/// Child output prefix: the entry with the following index is durable.
const ACK_MARKER: &str = "#acked ";

fn crash_vote() -> VoteOf<TestConfig> {
    Vote::new_committed(TERM, 1)
}

/// The child half; a no-op unless started by the parent below.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(append_until_killed(Path::new(&dir)));
}

async fn append_until_killed(dir: &Path) {
    let engine = SledEngine::open(dir).expect("open sled");
    let mut store = LogStore::<TestConfig, _>::new(engine).expect("open log store");
    let mut out = std::io::stdout().lock();

    store.save_vote(&crash_vote()).await.expect("save vote");
    writeln!(out, "{VOTE_MARKER}").and_then(|()| out.flush()).expect("parent went away");

    let mut next = 1u64;
    // Bounded so that an orphaned child cannot run forever; the parent kills it long before.
    while next < 10_000_000 {
        let batch_len = 1 + next % 4;
        let entries: Vec<_> = (next..next + batch_len).map(|i| normal_entry(TERM, i)).collect();
        // Returns only after the IOFlushed callback reported success.
        store.blocking_append(entries).await.expect("append");
        for index in next..next + batch_len {
            writeln!(out, "{ACK_MARKER}{index}").expect("parent went away");
        }
        out.flush().expect("parent went away");
        next += batch_len;
    }
}

/// Kills the child if the parent panics before doing so.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // We are the child; only `crash_child` runs there.
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);

    // A reader thread turns the pipe into a channel so the parent can wait with a deadline.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + DEADLINE;
    let mut acks = Acks::default();
    while acks.indexes.len() < ACKS_BEFORE_KILL {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("child gave only {} acks before {e:?}", acks.indexes.len()));
        acks.record(&line.expect("read child stdout"));
    }
    child.0.kill().expect("SIGKILL child");
    child.0.wait().expect("reap child");

    // Lines already in the pipe were acknowledged before the kill too: check them as well.
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        acks.record(&line.expect("read child stdout"));
    }
    assert!(acks.vote, "the vote was acknowledged before any append");
    let last = *acks.indexes.last().unwrap();
    assert_eq!(acks.indexes, (1..=last).collect::<Vec<_>>(), "acks are consecutive from 1");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = SledEngine::open(dir.path()).expect("reopen sled after SIGKILL");
        let mut store = LogStore::<TestConfig, _>::new(engine).unwrap();

        assert_eq!(store.read_vote().await.unwrap(), Some(crash_vote()), "vote survives");
        let entries = store.try_get_log_entries(1..=last).await.unwrap();
        assert_eq!(entries.len() as u64, last, "every acknowledged entry survives");
        for (entry, index) in entries.iter().zip(1..) {
            assert_eq!(entry.log_id(), log_id(TERM, index));
            let openraft::EntryPayload::Normal(Request { key, .. }) = &entry.payload else {
                panic!("entry {index} lost its payload: {entry:?}");
            };
            assert_eq!(key, &format!("key{index}"));
        }
        let state = store.get_log_state().await.unwrap();
        assert!(state.last_log_id.unwrap().index >= last, "log state covers every ack");
        eprintln!("{last} acknowledged entries survived SIGKILL; log ends at {:?}", store.last_log_index());
    });
}

#[derive(Default)]
struct Acks {
    vote: bool,
    indexes: Vec<u64>,
}

impl Acks {
    /// Record one line of child output. libtest's own output is ignored; it may share a line
    /// with ours (`test crash_child ... #vote`), so markers are searched, not matched whole.
    fn record(&mut self, line: &str) {
        if line.ends_with(VOTE_MARKER) {
            self.vote = true;
        } else if let Some((_, index)) = line.split_once(ACK_MARKER) {
            assert!(self.vote, "appends are acknowledged only after the vote");
            self.indexes.push(index.parse().expect("ack index"));
        }
    }
}
