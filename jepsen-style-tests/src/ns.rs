//! The private network namespace every run lives in.
//!
//! Partitions are iptables rules, and iptables rules must never touch the machine's own
//! firewall. So the harness re-executes itself under `unshare` into a fresh network namespace
//! (and, when not root, a user namespace that maps the caller to root inside it):
//!
//! 1. [`enter_or_reexec`] runs first thing in `main`, while the process is still single-threaded
//!    (a user namespace cannot be entered by a multi-threaded process, hence the re-exec rather
//!    than an `unshare(2)` call).
//! 2. Inside, [`setup`] brings `lo` up (it starts down in a new namespace) and creates the
//!    harness's own chain `TR`, jumped to first from `INPUT`. Every fault rule goes into `TR`;
//!    healing is `iptables -F TR`.
//! 3. When the harness exits, the namespace, its loopback addresses and every rule vanish with
//!    it. Nothing is left behind on the host.
//!
//! Every replica binds its outgoing sockets to its own loopback address (127.0.0.11, .12, …),
//! so a rule "drop from .11 to .12" cuts exactly that directed link.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::Context;
use anyhow::bail;

/// Set in the re-executed child so it knows it is already inside.
const INSIDE_ENV: &str = "TASKRAFT_JEPSEN_NETNS";

/// The harness's iptables chain.
pub const CHAIN: &str = "TR";

/// Replaces this process with itself running inside a new network namespace, unless it already
/// is inside one. Returns only when inside. Must be called before any thread is started.
pub fn enter_or_reexec() -> anyhow::Result<()> {
    if std::env::var_os(INSIDE_ENV).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("finding the harness's own executable")?;
    // As root a network namespace alone is enough; otherwise a user namespace grants the
    // capabilities (CAP_NET_ADMIN) needed inside it.
    let mut flags = Vec::new();
    if unsafe { libc::geteuid() } != 0 {
        flags.extend(["--user", "--map-root-user"]);
    }
    flags.push("--net");
    // Try first: once exec'd, a failing `unshare` would exit 1, which reads as "invalid".
    let probe = Command::new("unshare").args(&flags).arg("true").output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => bail!(
            "cannot create a private network namespace (`unshare {} true` failed: {}). Enable unprivileged \
             user namespaces (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces) or run as root",
            flags.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => bail!("cannot run `unshare` ({e}); install util-linux"),
    }
    let err = Command::new("unshare")
        .args(&flags)
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE_ENV, "1")
        .exec();
    bail!("cannot re-execute under `unshare` ({err})")
}

/// Brings loopback up and installs the empty fault chain. Refuses with a clear message when the
/// namespace or iptables is unusable.
pub fn setup() -> anyhow::Result<()> {
    run("ip", &["link", "set", "lo", "up"]).context(
        "bringing up loopback in the private network namespace failed (is `unshare` allowed to create \
         namespaces here? `ip` from iproute2 is required)",
    )?;
    iptables(&["-N", CHAIN]).context("creating the fault chain failed: iptables (package `iptables`) is required")?;
    iptables(&["-I", "INPUT", "1", "-j", CHAIN])?;
    Ok(())
}

/// Runs `iptables -w ARGS…` in the namespace.
pub fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["-w"];
    all.extend_from_slice(args);
    run("iptables", &all)
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
