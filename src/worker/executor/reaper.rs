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
//! Where the helper cannot be started (a test binary is not `taskraft`), tasks are spawned with
//! the parent-death hook as before.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::io::Write;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::OnceLock;

use super::group::Pgid;

/// The first argument that makes the `taskraft` binary run as the reaper.
pub const REAPER_ARG: &str = "__reap-task-groups";

/// What the reaper writes once it listens.
const READY: &str = "reaper ready";

/// This worker process's reaper, started on first use; `None` when it could not be started.
pub(super) fn get() -> Option<&'static Reaper> {
    static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();
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
            .spawn()?;
        let (Some(pipe), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the reaper has no pipes"));
        };
        // Only a `taskraft` binary answers; anything else (a test harness) says something else
        // or nothing and exits, which ends the read.
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        if line.trim_end() != READY {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(format!("{REAPER_ARG} answered {line:?}")));
        }
        Ok(Reaper { child, pipe: Mutex::new(pipe) })
    }

    /// Lists a task's group: killed if the worker dies before [`Reaper::release`].
    pub(super) fn watch(&self, pgid: Pgid) -> std::io::Result<()> {
        self.send('+', pgid)
    }

    /// The group ended: nothing to kill any more.
    pub(super) fn release(&self, pgid: Pgid) {
        if let Err(e) = self.send('-', pgid) {
            tracing::warn!(error = %e, ?pgid, "could not tell the reaper a task group ended");
        }
    }

    fn send(&self, op: char, pgid: Pgid) -> std::io::Result<()> {
        let mut pipe = self.pipe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // One short write of a few bytes: atomic on a pipe, and the reaper drains it at once.
        pipe.write_all(format!("{op}{}\n", pgid.id()).as_bytes())
    }
}

/// The reaper's process (see the module docs): lists groups until its input ends, then kills
/// every group still listed. Never returns.
pub fn run() -> ! {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE] {
        // SAFETY: setting a signal's disposition to ignore has no memory-safety preconditions.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    println!("{READY}");
    let _ = std::io::stdout().flush();
    let mut groups = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (op, id) = line.split_at(line.len().min(1));
        match (op, id.parse::<i32>()) {
            ("+", Ok(id)) if id > 1 => {
                groups.insert(id);
            }
            ("-", Ok(id)) => {
                groups.remove(&id);
            }
            _ => {}
        }
    }
    for id in groups {
        // SAFETY: kill has no memory-safety preconditions; the negative id (> 1) names one group.
        unsafe { libc::kill(-id, libc::SIGKILL) };
    }
    std::process::exit(0)
}
