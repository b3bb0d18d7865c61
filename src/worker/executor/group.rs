//! Process groups: every `exec` attempt runs as the leader of its own group, so one signal to
//! `-pgid` reaches the task and everything it started (shell pipelines, background jobs).
//!
//! "Alive" means a member that is not a zombie. Orphaned members are reparented to PID 1, and
//! when PID 1 does not reap (common in containers) their zombies keep the group id in use
//! forever; waiting for `kill(-pgid, 0)` to fail would then always wait the full grace.

use std::time::Duration;

use tokio::process::Child;
use tokio::time::{Instant, sleep, timeout_at};

/// Interval at which a group is checked for live members while it is being stopped.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// A process group id. Never 0 or 1: `kill(0, …)` would signal the worker's own group and
/// `kill(-1, …)` every process the worker may signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pgid(i32);

impl Pgid {
    /// The group led by a child spawned with `process_group(0)` (its pgid is its pid).
    pub(super) fn of_leader(pid: u32) -> Pgid {
        let pgid = i32::try_from(pid).unwrap_or(0);
        assert!(pgid > 1, "refusing to manage process group {pid}: it would signal unrelated processes");
        Pgid(pgid)
    }

    /// The group's id.
    pub(super) fn id(self) -> i32 {
        self.0
    }

    /// Sends `signal` to every member. Returns false when the group has no member at all.
    pub(super) fn signal(self, signal: libc::c_int) -> bool {
        // SAFETY: kill has no memory-safety preconditions; the negative id (> 1) names one group.
        let rc = unsafe { libc::kill(-self.0, signal) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }

    /// True while some member of the group is alive (not a zombie).
    pub(super) fn has_live_members(self) -> bool {
        if !self.signal(0) {
            return false;
        }
        // Without /proc, trust kill(…, 0), zombies included.
        live_members_from_proc(self.0).unwrap_or(true)
    }

    /// Stops the group: TERM to every member, up to `grace` for the leader to exit and the
    /// group to empty, then KILL to whatever is left. Reaps the leader; returns its status.
    pub(super) async fn stop(self, leader: &mut Child, grace: Duration) -> std::io::Result<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        let _ = timeout_at(deadline, leader.wait()).await;
        while self.has_live_members() && Instant::now() < deadline {
            sleep(GROUP_POLL).await;
        }
        self.signal(libc::SIGKILL);
        leader.wait().await
    }
}

/// Whether `/proc` lists a non-zombie process in group `pgid`; `None` if `/proc` is unreadable.
fn live_members_from_proc(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        // A process may vanish between listing and reading: then it is not alive.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some((state, pgrp)) = parse_stat(&stat)
            && pgrp == pgid
            && state != 'Z'
            && state != 'X'
        {
            return Some(true);
        }
    }
    Some(false)
}

/// State and process group from a `/proc/<pid>/stat` line. The command name is in parentheses
/// and may itself contain spaces or parentheses, so fields are counted after the last ')'.
pub(super) fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Kills the group with SIGKILL when dropped, unless disarmed: if the executor's future is
/// dropped mid-attempt (worker shutdown, aborted task), no process of the attempt survives.
pub(super) struct KillOnDrop(Option<Pgid>);

impl KillOnDrop {
    /// Arms the guard for `pgid`.
    pub(super) fn new(pgid: Pgid) -> Self {
        KillOnDrop(Some(pgid))
    }

    /// The group was stopped properly; dropping no longer kills.
    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            pgid.signal(libc::SIGKILL);
        }
    }
}

/// A readable name for the signals a task is commonly ended by.
pub(super) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "an unnamed signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_command_name() {
        let line = "4242 (a) b (c) S 1 777 777 0 -1 4194560 0 0";
        assert_eq!(parse_stat(line), Some(('S', 777)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    #[should_panic(expected = "refusing to manage process group")]
    fn never_targets_init_or_own_group() {
        Pgid::of_leader(1);
    }
}
