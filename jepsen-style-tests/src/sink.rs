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
//! The workflow workload's tasks run [`wf_task`] (`taskraft-jepsen wf-task`): the same lines,
//! each tagged with the workflow, node, shard index and worker, an `exit` line before a failure
//! on purpose, the result on the `done` line, and on a reduce's `start` line every file it found
//! in `$TASKRAFT_INPUTS_DIR`.
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

use crate::history::InputFile;
use crate::history::InputsSeen;
use crate::history::SinkEvent;
use crate::history::SinkKind;
use crate::history::WfTag;

/// What a task process sends (the sink adds the time).
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    task_id: u64,
    attempt: u32,
    token: u64,
    event: SinkKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wf: Option<WfTag>,
}

/// Longest input file content a reduce records (the workload's results are far shorter).
pub const MAX_INPUT_BYTES: usize = 1024;
/// Most input files a reduce records.
pub const MAX_INPUT_FILES: usize = 256;
/// The environment variable naming the worker process a task runs under (set by
/// [`crate::cluster`] on each worker; a worker passes its environment on, except `TASKRAFT_*`).
pub const WORKER_ENV: &str = "JEPSEN_WORKER";

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
                            wf: r.wf,
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
    let mut conn = SinkConn::connect(sink)?;
    let mut report = |event: SinkKind| conn.report(&Report { task_id, attempt, token, event, wf: None });
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

/// One task process's connection to the sink: a line out, `ok` back, before going on.
struct SinkConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl SinkConn {
    fn connect(sink: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(sink).context("connecting to the sink")?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self { reader: BufReader::new(stream.try_clone()?), writer: stream })
    }

    fn report(&mut self, r: &Report) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(r)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        let mut ack = String::new();
        self.reader.read_line(&mut ack)?;
        anyhow::ensure!(ack == "ok\n", "sink did not acknowledge");
        Ok(())
    }
}

/// What `taskraft-jepsen wf-task` is told on its command line (see [`wf_task`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WfTaskArgs {
    /// The workflow's name (its idempotency key).
    pub workflow: String,
    /// The node.
    pub node: String,
    /// Steps (one checkpoint each).
    pub steps: u64,
    /// Milliseconds per step.
    pub step_ms: u64,
    /// Exit 1 after the steps instead of succeeding.
    pub fail: bool,
    /// A reduce: record every file of `$TASKRAFT_INPUTS_DIR` at the start, and write them as
    /// the result.
    pub reduce: bool,
}

/// `taskraft-jepsen wf-task`: the workflow workload's task program. Like [`counter`] it
/// resumes from its checkpoint and reports `start {from}`, then `checkpoint {n}` before each
/// checkpoint it writes; every line carries a [`WfTag`] (workflow, node, shard index, worker).
/// A reduce's `start` also carries what it found in `$TASKRAFT_INPUTS_DIR` (every file, by
/// relative path, with its content). At the end it either reports `exit {1}` and exits 1
/// (`--fail`), or writes its result to `$TASKRAFT_RESULT_OUT` and reports `done {n}` with that
/// result, then exits 0. The result names the attempt that wrote it: a shard writes
/// `shard=<i> task=<id> token=<token>`, a plain node `node=<id> task=<id> token=<token>`, a
/// reduce [`reduce_result`] of its inputs. Returns the exit code.
pub fn wf_task(args: &WfTaskArgs, sink: &str) -> anyhow::Result<u8> {
    let env = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set: run me as a taskraft task"));
    let task_id: u64 = env("TASKRAFT_TASK_ID")?.parse()?;
    let attempt: u32 = env("TASKRAFT_ATTEMPT")?.parse()?;
    let token: u64 = env("TASKRAFT_FENCING_TOKEN")?.parse()?;
    let out = env("TASKRAFT_CHECKPOINT_OUT")?;
    let result_out = env("TASKRAFT_RESULT_OUT")?;
    let shard = match std::env::var("TASKRAFT_SHARD_INDEX") {
        Ok(s) => Some(s.parse::<u32>().context("TASKRAFT_SHARD_INDEX is not a number")?),
        Err(_) => None,
    };
    let from = match std::env::var("TASKRAFT_CHECKPOINT_IN") {
        Ok(path) => std::fs::read_to_string(&path)?.trim().parse::<u64>().context("checkpoint is not a number")?,
        Err(_) => 0,
    };
    let tag = WfTag {
        workflow: args.workflow.clone(),
        node: args.node.clone(),
        shard,
        worker: std::env::var(WORKER_ENV).ok(),
        inputs: None,
        result: None,
    };
    let inputs =
        if args.reduce { Some(read_inputs(std::env::var_os("TASKRAFT_INPUTS_DIR").as_deref())?) } else { None };
    let mut conn = SinkConn::connect(sink)?;
    let mut report = |event: SinkKind, wf: WfTag| conn.report(&Report { task_id, attempt, token, event, wf: Some(wf) });
    report(SinkKind::Start { from }, WfTag { inputs: inputs.clone(), ..tag.clone() })?;
    println!("workflow {} node {} shard {shard:?} task {task_id} token {token}: from {from}", args.workflow, args.node);
    for n in from + 1..=args.steps {
        std::thread::sleep(Duration::from_millis(args.step_ms));
        report(SinkKind::Checkpoint { n }, tag.clone())?;
        write_atomically(Path::new(&out), &n.to_string())?;
    }
    if args.fail {
        report(SinkKind::Exit { code: 1 }, tag)?;
        println!("failing on purpose");
        return Ok(1);
    }
    let result = match (&inputs, shard) {
        (Some(inputs), _) => reduce_result(inputs),
        (None, Some(i)) => format!("shard={i} task={task_id} token={token}"),
        (None, None) => format!("node={} task={task_id} token={token}", args.node),
    };
    std::fs::write(&result_out, &result)?;
    report(SinkKind::Done { n: args.steps.max(from) }, WfTag { result: Some(result), ..tag })?;
    Ok(0)
}

/// The result a reduce writes: `inputs=<n>`, then one `<path> <text>` line per input file.
pub fn reduce_result(inputs: &InputsSeen) -> String {
    let mut s = format!("inputs={}", inputs.files.len());
    for f in &inputs.files {
        s.push('\n');
        s.push_str(&f.path);
        s.push(' ');
        s.push_str(&f.text);
    }
    s
}

/// Every file below `dir` (two levels: `node` or `node/index`), by relative path in name order,
/// at most [`MAX_INPUT_FILES`]. `dir: false` when the variable is not set.
pub fn read_inputs(dir: Option<&std::ffi::OsStr>) -> anyhow::Result<InputsSeen> {
    let Some(dir) = dir else { return Ok(InputsSeen::default()) };
    let mut seen = InputsSeen { dir: true, ..InputsSeen::default() };
    let mut stack = vec![(Path::new(dir).to_path_buf(), String::new(), 0u32)];
    while let Some((path, rel, depth)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let is_dir = e.file_type()?.is_dir();
            if is_dir && depth < 2 {
                stack.push((e.path(), rel, depth + 1));
            } else if seen.files.len() >= MAX_INPUT_FILES {
                seen.truncated = true;
            } else if is_dir {
                // Deeper than any input the worker writes: listed, not read.
                seen.files.push(InputFile { path: rel, text: "(directory)".into() });
            } else {
                let bytes = std::fs::read(e.path()).with_context(|| format!("reading {}", e.path().display()))?;
                let cut = &bytes[..bytes.len().min(MAX_INPUT_BYTES)];
                seen.files.push(InputFile { path: rel, text: String::from_utf8_lossy(cut).into_owned() });
            }
        }
    }
    seen.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(seen)
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reduce_lists_every_input_file_by_relative_path() {
        let dir = std::env::temp_dir().join(format!("jepsen-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("map")).unwrap();
        for i in [2, 0, 1] {
            std::fs::write(dir.join("map").join(i.to_string()), format!("shard={i} task=9 token=4")).unwrap();
        }
        std::fs::write(dir.join("plain"), "node=plain").unwrap();
        let seen = read_inputs(Some(dir.as_os_str())).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let paths: Vec<&str> = seen.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["map/0", "map/1", "map/2", "plain"]);
        assert!(seen.dir && !seen.truncated);
        assert_eq!(seen.files[1].text, "shard=1 task=9 token=4");
        assert_eq!(reduce_result(&seen).lines().next(), Some("inputs=4"));
        assert_eq!(read_inputs(None).unwrap(), InputsSeen::default());
    }
}
