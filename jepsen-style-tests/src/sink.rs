//! The side-effect sink, and the task program that reports to it.
//!
//! Checkers cannot judge fencing from taskraft's own state alone: a stale attempt that kept
//! running is invisible there. So every workload task runs [`counter`] (this same binary, as
//! `taskraft-jepsen counter`), which counts up from its checkpoint and tells the sink what it
//! physically does:
//!
//! 1. `start {from}` with the counter read from `TASKRAFT_CHECKPOINT_IN` (0 when absent);
//! 2. for each step, `checkpoint {n}` is reported *before* `n` is written to
//!    `TASKRAFT_CHECKPOINT_OUT` (by rename), so every checkpoint taskraft can ever commit has a
//!    sink record, even if the process dies between the two;
//! 3. `done {n}` before exiting 0.
//!
//! The sink ([`Sink`]) is a TCP server on 127.0.0.1 inside the namespace (never partitioned):
//! one JSON line per event, answered `ok` once recorded, so events are recorded in causal order.

use std::io::BufRead;
use std::io::BufReader;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use serde::Serialize;
use tokio::io::AsyncBufReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::history::SinkEvent;
use crate::history::SinkKind;

/// What a task process sends (the sink adds the time).
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    task_id: u64,
    attempt: u32,
    token: u64,
    event: SinkKind,
}

/// The running sink server; clones share the recorded events.
#[derive(Clone)]
pub struct Sink {
    /// `127.0.0.1:port` for task processes.
    pub addr: String,
    events: Arc<Mutex<Vec<SinkEvent>>>,
}

impl Sink {
    /// Binds an ephemeral port on 127.0.0.1 and serves until the runtime stops.
    pub async fn start(epoch: Instant) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Self { addr, events: events.clone() };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let events = events.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = tokio::io::BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Ok(r) = serde_json::from_str::<Report>(&line) else { break };
                        let time_ns = epoch.elapsed().as_nanos() as u64;
                        events.lock().unwrap().push(SinkEvent {
                            time_ns,
                            task_id: r.task_id,
                            attempt: r.attempt,
                            token: r.token,
                            event: r.event,
                        });
                        if write.write_all(b"ok\n").await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(sink)
    }

    /// Every event recorded so far, in arrival order.
    pub fn events(&self) -> Vec<SinkEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// `taskraft-jepsen counter`: the workload's task program (see the module docs).
pub fn counter(steps: u64, step_ms: u64, sink: &str) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set: run me as a taskraft task"));
    let task_id: u64 = env("TASKRAFT_TASK_ID")?.parse()?;
    let attempt: u32 = env("TASKRAFT_ATTEMPT")?.parse()?;
    let token: u64 = env("TASKRAFT_FENCING_TOKEN")?.parse()?;
    let out = env("TASKRAFT_CHECKPOINT_OUT")?;
    let from = match std::env::var("TASKRAFT_CHECKPOINT_IN") {
        Ok(path) => std::fs::read_to_string(&path)?.trim().parse::<u64>().context("checkpoint is not a number")?,
        Err(_) => 0,
    };
    let stream = TcpStream::connect(sink).context("connecting to the sink")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut report = |event: SinkKind| -> anyhow::Result<()> {
        let mut line = serde_json::to_string(&Report { task_id, attempt, token, event })?;
        line.push('\n');
        writer.write_all(line.as_bytes())?;
        let mut ack = String::new();
        reader.read_line(&mut ack)?;
        anyhow::ensure!(ack == "ok\n", "sink did not acknowledge");
        Ok(())
    };
    report(SinkKind::Start { from })?;
    println!("task {task_id} attempt {attempt} token {token}: resuming from {from}");
    for n in from + 1..=steps {
        std::thread::sleep(Duration::from_millis(step_ms));
        report(SinkKind::Checkpoint { n })?;
        write_atomically(Path::new(&out), &n.to_string())?;
    }
    report(SinkKind::Done { n: steps.max(from) })?;
    println!("done at {}", steps.max(from));
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
