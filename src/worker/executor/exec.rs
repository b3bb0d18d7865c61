//! `exec`: runs `command` as a child process (no shell) in its own process group, with the
//! `TASKRAFT_*` environment of DESIGN §6, bounded output capture and checkpoint shipping. It runs
//! in the attempt directory, or in `working_dir` (relative: inside the attempt directory).

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval, timeout};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::checkpoint::CheckpointWatcher;
use super::group::{KillOnDrop, Pgid, signal_name};
use super::reaper::{self, Reaper};
use super::tail::{SharedTail, TailBuffer, capture, lock};
use super::{
    CHECKPOINT_IN_FILE, CHECKPOINT_OUT_FILE, ENV_ATTEMPT, ENV_CHECKPOINT_IN, ENV_CHECKPOINT_OUT, ENV_FENCING_TOKEN,
    ENV_INPUTS_DIR, ENV_NOMINAL_MS, ENV_RESULT_OUT, ENV_SCHEDULE_ID, ENV_SHARD_COUNT, ENV_SHARD_INDEX,
    ENV_STOP_REASON_FILE, ENV_TASK_ID, ExecRequest, ExecResult, INPUTS_DIR, OUTPUT_DRAIN, RESULT_OUT_FILE,
    STOP_REASON_FILE, Stop, deadline, stop_signal,
};
use crate::scheduler::{AttemptOutcome, Executor, RESERVED_ENV_PREFIX, working_dir_rule};

/// Runs the process to completion; see the module docs of `executor` for the steps.
pub(super) async fn run(
    req: ExecRequest,
    cancel: &CancellationToken,
    checkpoints: mpsc::Sender<Vec<u8>>,
) -> ExecResult {
    let (task_id, attempt, limits) = (req.task_id, req.attempt, req.limits);
    if let Err(e) = check_program(&req.spec.command) {
        return ExecResult::failed(e);
    }
    let attempt_dir = match std::path::absolute(&req.attempt_dir) {
        Ok(dir) => dir,
        Err(e) => return ExecResult::failed(format!("bad attempt directory {}: {e}", req.attempt_dir.display())),
    };
    let out_path = attempt_dir.join(CHECKPOINT_OUT_FILE);
    let result_path = attempt_dir.join(RESULT_OUT_FILE);
    let program = &req.spec.command[0];
    // `watched` is declared before the kill guard, so dropped after it on every early way out:
    // the reaper lets go of the group only once nothing of it is left to kill.
    let (mut child, pgid, watched) = match spawn_supervised(&req, &attempt_dir, &out_path, &result_path).await {
        Ok(spawned) => spawned,
        Err(e) => return ExecResult::failed(e),
    };
    let pid = pgid.id();
    let mut guard = KillOnDrop::new(pgid);
    debug!(task_id, attempt, pid, program = program.as_str(), "process started");

    let stdout: SharedTail = Arc::new(Mutex::new(TailBuffer::new(limits.output_tail_bytes)));
    let stderr: SharedTail = Arc::new(Mutex::new(TailBuffer::new(limits.output_tail_bytes)));
    let mut readers = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        readers.push(tokio::spawn(capture(pipe, stdout.clone(), req.live.clone())));
    }
    if let Some(pipe) = child.stderr.take() {
        readers.push(tokio::spawn(capture(pipe, stderr.clone(), req.live.clone())));
    }

    let mut watcher = CheckpointWatcher::new(out_path, limits.checkpoint_max_bytes, checkpoints);
    let (status, stop) = supervise(&mut child, pgid, &mut watcher, cancel, deadline(req.timeout), limits).await;
    guard.disarm();
    // The group is empty or killed: release it now, not after the output drain, so that a pid
    // reused meanwhile by a new task is not listed and released out of order.
    drop(watched);
    let refused = watcher.finish(cancel).await;
    let drained = drain(&mut readers).await;
    debug!(task_id, attempt, pid, ?status, ?stop, "process group ended");

    let mut result = match stop {
        Some(stop) => ExecResult::stopped(stop, req.timeout),
        None => exit_result(&status),
    };
    if stop.is_some() {
        result.add_error("the process group was killed".to_string());
    }
    result.exit_code = status.as_ref().ok().and_then(ExitStatus::code);
    result.output_tail = lock(&stdout).section("stdout") + &lock(&stderr).section("stderr");
    if !drained {
        result.add_error(format!(
            "output was still open {OUTPUT_DRAIN:?} after the process group ended (a process left the group?); \
             the output tail may be incomplete"
        ));
    }
    if let Some(refused) = refused {
        result.add_error(refused);
    }
    super::result::collect(&result_path, limits.result_max_bytes, &mut result).await;
    result
}

/// Waits for the leader to exit, the attempt to be stopped, polling checkpoints meanwhile; then
/// makes sure no member of the group is left. Returns the leader's status and why it was stopped.
async fn supervise(
    child: &mut Child,
    pgid: Pgid,
    watcher: &mut CheckpointWatcher,
    cancel: &CancellationToken,
    deadline: Option<tokio::time::Instant>,
    limits: super::ExecLimits,
) -> (io::Result<ExitStatus>, Option<Stop>) {
    // interval() panics on a zero period.
    let mut tick = interval(limits.checkpoint_poll.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ended = loop {
        tokio::select! {
            // An exit that races a stop is reported as the exit: it is what really happened.
            biased;
            status = child.wait() => break Ok(status),
            stop = stop_signal(cancel, deadline) => break Err(stop),
            _ = tick.tick() => watcher.poll().await,
        }
    };
    match ended {
        Ok(status) => {
            // The leader is gone; background processes it left behind must not outlive the attempt.
            if pgid.has_live_members() {
                debug!(?pgid, "stopping processes left behind by the task");
                let _ = pgid.stop(child, limits.kill_grace).await;
            }
            (status, None)
        }
        Err(stop) => (pgid.stop(child, limits.kill_grace).await, Some(stop)),
    }
}

/// Lets the output readers reach end-of-file, for at most [`OUTPUT_DRAIN`]; aborts them after
/// that. Returns whether they finished on their own.
async fn drain(readers: &mut [JoinHandle<()>]) -> bool {
    let all = async {
        for reader in readers.iter_mut() {
            let _ = reader.await;
        }
    };
    if timeout(OUTPUT_DRAIN, all).await.is_ok() {
        return true;
    }
    readers.iter().for_each(JoinHandle::abort);
    false
}

/// Builds the command: checkpoint files, working directory, environment, process group.
async fn prepare(
    req: &ExecRequest,
    attempt_dir: &Path,
    out_path: &Path,
    result_path: &Path,
    parent_death_hook: bool,
) -> Result<Command, String> {
    let checkpoint_in = match &req.checkpoint_in {
        Some(data) => {
            let path = attempt_dir.join(CHECKPOINT_IN_FILE);
            tokio::fs::write(&path, data)
                .await
                .map_err(|e| format!("could not write the input checkpoint to {}: {e}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    // A leftover from an earlier run in the same directory must not be shipped as new progress,
    // nor as this attempt's result.
    for (path, what) in [(out_path, "checkpoint"), (result_path, "result")] {
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("could not remove the stale {what} {}: {e}", path.display())),
        }
    }
    // A workflow task always gets the directory, empty when no parent left a result, so a
    // script can tell "no inputs" from "not in a workflow".
    let inputs_dir = if req.spec.origin.workflow_node().is_some() || !req.inputs.is_empty() {
        let dir = attempt_dir.join(INPUTS_DIR);
        super::inputs::write(&dir, &req.inputs).await?;
        Some(dir)
    } else {
        None
    };
    let workdir = working_dir(req.spec.working_dir.as_deref(), attempt_dir).await?;

    let argv = &req.spec.command;
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(&workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // If the worker itself dies (SIGKILL, OOM), the task must not live on unsupervised. The
    // reaper kills its group then (see `reaper`); without one, the kernel sends it SIGKILL when
    // its parent goes away, set by a hook that makes this spawn a fork (its own children are
    // covered by the group kill whenever the worker is alive to do it).
    if parent_death_hook {
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    // The worker may itself run under taskraft: its own TASKRAFT_* must not leak into the task
    // (an inherited TASKRAFT_CHECKPOINT_IN would make a first attempt look like a resume).
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(RESERVED_ENV_PREFIX.as_bytes()) {
            command.env_remove(name);
        }
    }
    command
        .envs(&req.spec.env)
        .env(ENV_TASK_ID, req.task_id.to_string())
        .env(ENV_ATTEMPT, req.attempt.to_string())
        .env(ENV_FENCING_TOKEN, req.token.to_string())
        .env(ENV_CHECKPOINT_OUT, out_path)
        .env(ENV_RESULT_OUT, result_path)
        .env(ENV_STOP_REASON_FILE, req.attempt_dir.join(STOP_REASON_FILE));
    if let Some(path) = checkpoint_in {
        command.env(ENV_CHECKPOINT_IN, path);
    }
    if let Some(dir) = inputs_dir {
        command.env(ENV_INPUTS_DIR, dir);
    }
    if let Some(shard) = req.spec.shard {
        command.env(ENV_SHARD_INDEX, shard.index.to_string()).env(ENV_SHARD_COUNT, shard.total.to_string());
    }
    if let Some((schedule, nominal_ms)) = req.spec.origin.schedule_run() {
        command.env(ENV_SCHEDULE_ID, schedule.to_string()).env(ENV_NOMINAL_MS, nominal_ms.to_string());
    }
    Ok(command)
}

/// A program to spawn: not empty, and not a built-in's input shorthand (`taskraft:sleep`), which
/// the API expands before a spec is stored; one that got through anyway is a mistake to report,
/// not a program to look up on `PATH`.
fn check_program(argv: &[String]) -> Result<(), String> {
    let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
        return Err("command is empty: nothing to run".to_string());
    };
    match Executor::from_shorthand(program) {
        None => Ok(()),
        Some(Ok(executor)) => Err(format!(
            "{program:?} is the shorthand of the {executor} executor, not a program; \
             submit it as \"executor\": \"{executor}\" instead"
        )),
        Some(Err(_)) => Err(format!("unknown built-in executor {program} (known: http, noop, sleep)")),
    }
}

/// Where the process runs: the attempt directory; a relative `working_dir` inside it (created if
/// missing); an absolute one as is (it must exist). A `working_dir` that breaks
/// [`working_dir_rule`] (a relative path with `..`) fails the attempt instead of escaping the
/// attempt directory: the API refuses it at submit, but a worker does not rely on that alone.
async fn working_dir(dir: Option<&str>, attempt_dir: &Path) -> Result<PathBuf, String> {
    let Some(dir) = dir else { return Ok(attempt_dir.to_path_buf()) };
    working_dir_rule(dir).map_err(|e| format!("working directory refused: {e}"))?;
    let path = Path::new(dir);
    if path.is_absolute() {
        if !tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) {
            return Err(format!("working directory {dir} does not exist or is not a directory"));
        }
        return Ok(path.to_path_buf());
    }
    let inside = attempt_dir.join(path);
    tokio::fs::create_dir_all(&inside)
        .await
        .map_err(|e| format!("could not create the working directory {}: {e}", inside.display()))?;
    Ok(inside)
}

/// The outcome of a process that ended on its own.
fn exit_result(status: &io::Result<ExitStatus>) -> ExecResult {
    match status {
        Ok(status) if status.success() => ExecResult::new(AttemptOutcome::Succeeded),
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => ExecResult::failed(format!("exited with code {code}")),
            (None, Some(sig)) => {
                let core = if status.core_dumped() { ", core dumped" } else { "" };
                ExecResult::failed(format!("killed by signal {sig} ({}{core})", signal_name(sig)))
            }
            (None, None) => ExecResult::failed(format!("ended with status {status}")),
        },
        Err(e) => ExecResult::failed(format!("could not wait for the process: {e}")),
    }
}

/// Spawns the task as the leader of its own process group and lists the group with the reaper,
/// or, without one, spawns it with the parent-death hook. If the reaper fails between the
/// spawn and the listing, that process is killed at once and the task spawned again with the
/// hook: a task is never left to outlive its worker.
async fn spawn_supervised(
    req: &ExecRequest,
    attempt_dir: &Path,
    out_path: &Path,
    result_path: &Path,
) -> Result<(Child, Pgid, Option<Watched>), String> {
    let program = &req.spec.command[0];
    loop {
        let reaper = reaper::get();
        let mut command = prepare(req, attempt_dir, out_path, result_path, reaper.is_none()).await?;
        let mut child = command.spawn().map_err(|e| spawn_error(program, &e))?;
        let Some(pid) = child.id() else {
            return Err(format!("{program:?} was started but has no process id"));
        };
        let pgid = Pgid::of_leader(pid);
        let Some(reaper) = reaper else { return Ok((child, pgid, None)) };
        if reaper.watch(pgid).is_ok() {
            return Ok((child, pgid, Some(Watched(reaper, pgid))));
        }
        // The reaper is now off (`reaper::get` answers `None`): the next round uses the hook.
        pgid.signal(libc::SIGKILL);
        let _ = child.wait().await;
    }
}

/// A task's process group listed with the reaper until this is dropped.
struct Watched(&'static Reaper, Pgid);

impl Drop for Watched {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

/// A spawn error a user can act on.
fn spawn_error(program: &str, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => {
            format!("could not start {program:?}: no such program (not on PATH, or the path does not exist): {e}")
        }
        io::ErrorKind::PermissionDenied => {
            format!("could not start {program:?}: permission denied (not executable?): {e}")
        }
        _ => format!("could not start {program:?}: {e}"),
    }
}
