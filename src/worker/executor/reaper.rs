//! The reaper: keeps the promise that a task never outlives its worker, without a hook in every
//! spawn.
//!
//! A task's process must die when its worker dies (SIGKILL, OOM), or it would run on
//! unsupervised while the cluster runs it again elsewhere. The kernel's parent-death signal
//! (`PR_SET_PDEATHSIG`) gives that, but it can only be set in the child, by a `pre_exec` hook,
//! and a hook makes std spawn with `fork`: the child gets a copy of the worker's page tables,
//! which it throws away again at `exec`. In a profile of the `exec` executor at full load, that
//! copy and its teardown took about a fifth of the machine's CPU.
//!
//! So the worker starts one helper process, this binary run as `taskraft __reap-task-groups`,
//! and spawns tasks with `posix_spawn` (no hook). It tells the helper, over a pipe, each task's
//! process group as it starts (`+pgid`) and ends (`-pgid`). The helper does nothing else; when
//! the pipe reaches end of file, which the kernel guarantees once the worker is gone however it
//! died, it sends SIGKILL to every group still listed and exits. It ignores the terminal's
//! signals (Ctrl-C reaches the whole foreground group), so it outlives its worker.
//!
//! The helper leads a process group of its own, so a signal to the worker's group (a harness
//! or an operator killing the worker and what it started) does not take it along. Where it
//! cannot be started (a test binary is not `taskraft`), or stops taking messages, tasks are
//! spawned with the parent-death hook as before. One window remains, as it did with the hook
//! (between fork and its `prctl`): a worker killed in the microseconds between starting a task
//! and listing it leaves that task running.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::group::Pgid;

/// The first argument that makes the `taskraft` binary run as the reaper.
pub const REAPER_ARG: &str = "__reap-task-groups";

/// What the reaper writes once it listens.
const READY: &str = "reaper ready";

/// How long a starting reaper has to say it listens.
const READY_WITHIN: Duration = Duration::from_secs(5);

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();

/// Set once the reaper stopped taking messages: new tasks get the parent-death hook instead.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Starts this worker process's reaper (blocking: call it off the async threads, at worker
/// start). Returns whether there is one.
pub fn start() -> bool {
    get().is_some()
}

/// This worker process's reaper, started on first use; `None` when it could not be started or
/// has failed since.
pub(super) fn get() -> Option<&'static Reaper> {
    if FAILED.load(Ordering::Acquire) {
        return None;
    }
    REAPER
        .get_or_init(|| match Reaper::start() {
            Ok(reaper) => {
                tracing::debug!(pid = reaper.child.id(), "reaper started: tasks die with this worker");
                Some(reaper)
            }
            Err(e) => {
                tracing::debug!(error = %e, "no reaper; tasks are spawned with a parent-death hook");
                None
            }
        })
        .as_ref()
}

/// The worker's end of the reaper (see the module docs).
pub(super) struct Reaper {
    child: std::process::Child,
    pipe: Mutex<std::process::ChildStdin>,
}

impl Reaper {
    fn start() -> std::io::Result<Reaper> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .arg(REAPER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        match Self::ready(&mut child) {
            Ok(pipe) => Ok(Reaper { child, pipe: Mutex::new(pipe) }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Waits (bounded) for the ready line; only a `taskraft` binary says it (a test harness says
    /// something else, or nothing, and exits). Returns the pipe, made non-blocking: a reaper
    /// that stops reading must not stall the worker.
    fn ready(child: &mut std::process::Child) -> std::io::Result<std::process::ChildStdin> {
        let (Some(pipe), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the reaper has no pipes"));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = tx.send(std::io::BufReader::new(out).read_line(&mut line).map(|_| line));
        });
        let line = rx
            .recv_timeout(READY_WITHIN)
            .map_err(|_| std::io::Error::other(format!("{REAPER_ARG} did not answer within {READY_WITHIN:?}")))??;
        if line.trim_end() != READY {
            return Err(std::io::Error::other(format!("{REAPER_ARG} answered {line:?}")));
        }
        let fd = pipe.as_raw_fd();
        // SAFETY: fcntl on a descriptor this process owns; no memory is passed.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(pipe)
    }

    /// Lists a task's group: killed if the worker dies before [`Reaper::release`]. An error
    /// means the reaper no longer takes messages; from then on [`get`] answers `None`.
    pub(super) fn watch(&self, pgid: Pgid) -> std::io::Result<()> {
        self.send('+', pgid).inspect_err(|e| {
            FAILED.store(true, Ordering::Release);
            tracing::error!(error = %e, "the reaper stopped taking messages; new tasks get a parent-death hook instead");
        })
    }

    /// The group ended: nothing to kill any more.
    pub(super) fn release(&self, pgid: Pgid) {
        if let Err(e) = self.send('-', pgid) {
            tracing::warn!(error = %e, ?pgid, "could not tell the reaper a task group ended");
        }
    }

    fn send(&self, op: char, pgid: Pgid) -> std::io::Result<()> {
        let message = format!("{op}{}\n", pgid.id());
        let pipe = self.pipe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write of a few bytes: all or nothing on a pipe (below PIPE_BUF), and never a wait
        // (non-blocking); a full pipe means the reaper stopped reading.
        match (&*pipe).write(message.as_bytes())? {
            n if n == message.len() => Ok(()),
            n => Err(std::io::Error::other(format!("short write to the reaper: {n} of {} bytes", message.len()))),
        }
    }
}

/// The reaper's process (see the module docs): lists groups until its input ends, then kills
/// every group still listed. Never returns.
pub fn run() -> ! {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
        // SAFETY: setting a signal's disposition to ignore has no memory-safety preconditions.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    // Hold no directory of the worker's open.
    let _ = std::env::set_current_dir("/");
    println!("{READY}");
    let _ = std::io::stdout().flush();
    // Counted: a group id freed and reused by a new task may be listed again before the old
    // task's release arrives.
    let mut groups: BTreeMap<i32, u32> = BTreeMap::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix('+').and_then(|id| id.parse::<i32>().ok()).filter(|&id| id > 1) {
            *groups.entry(id).or_default() += 1;
        } else if let Some(id) = line.strip_prefix('-').and_then(|id| id.parse::<i32>().ok())
            && let Some(count) = groups.get_mut(&id)
        {
            *count -= 1;
            if *count == 0 {
                groups.remove(&id);
            }
        }
    }
    for id in groups.into_keys() {
        // SAFETY: kill has no memory-safety preconditions; the negative id (> 1) names one group.
        unsafe { libc::kill(-id, libc::SIGKILL) };
    }
    std::process::exit(0)
}
