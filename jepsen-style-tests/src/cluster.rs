//! The system under test: real `taskraft` replica and worker processes.
//!
//! Addresses inside the run's network namespace:
//! - replica `n` (ids 1, 2, … never reused) is `127.0.0.(10+n)`, API on port 7000, Raft on 7001;
//! - worker `j` is `w{j}` and binds its outgoing sockets to `127.0.0.(50+j)`.
//!
//! Each replica gets a generated TOML config under `config/`, a sled data dir under `data/`,
//! and a log under `logs/` that survives restarts (appended). Every process runs in its own
//! process group so a kill or pause reaches all of it. With the clock nemesis, replicas run
//! under libfaketime reading their offset from a per-node file (`clock/n{id}`), so the skew can
//! change while they run; the monotonic clock is left alone (faking it hangs tokio).
//!
//! With `--tls` every replica serves its own certificate from `tls/` and workers verify them
//! against `tls/ca.pem` ([`crate::tls`]).
//!
//! Workers are given the API addresses of every replica id the run may ever use, so they keep
//! finding the leader after membership changes (unused addresses just refuse connections).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use anyhow::bail;
use serde_json::Value;
use tokio::time::Instant;

/// Highest replica id a run may use (membership changes allocate fresh ids up to this).
pub const MAX_REPLICA_ID: u64 = 20;
/// API port of every replica (on its own address).
pub const API_PORT: u16 = 7000;
/// Raft port of every replica.
pub const RAFT_PORT: u16 = 7001;
/// Shared secret for Raft RPCs.
const SECRET: &str = "jepsen-secret";
/// libfaketime, from Debian's `libfaketime` package.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// Slots per worker (lease and heartbeat stay at the product defaults, so the suite measures what
/// users get).
const WORKER_SLOTS: u32 = 8;
/// `preempt_min_runtime_ms` of every replica.
pub const PREEMPT_MIN_RUNTIME_MS: u64 = 300;
/// `preemption_gap` of every replica (the servers' default).
pub const PREEMPTION_GAP: u32 = 10;
/// Migration settings of every replica: on, after 2 overloaded heartbeats, at most one per
/// worker per 2 s, for tasks that ran 300 ms. The run makes one worker at a time report itself
/// overloaded through its load file ([`Cluster::set_worker_load`], `crate::run`).
pub const MIGRATION_CONFIG: &str =
    "migration = true\nmigration_heartbeats = 2\nmigration_interval_ms = 2000\nmigrate_min_runtime_ms = 300\n";
/// A worker's load file: "CPU MEM" fractions it reports instead of its machine's.
pub const LOAD_HOT: &str = "0.97 0.20";
/// See [`LOAD_HOT`].
pub const LOAD_COLD: &str = "0.10 0.20";

/// The address of replica `id`.
pub fn replica_ip(id: u64) -> Ipv4Addr {
    assert!((1..=MAX_REPLICA_ID).contains(&id), "replica id {id} out of range");
    Ipv4Addr::new(127, 0, 0, 10 + id as u8)
}

/// The address worker `j` binds its outgoing sockets to.
pub fn worker_ip(j: u32) -> Ipv4Addr {
    assert!((1..=40).contains(&j), "worker number {j} out of range");
    Ipv4Addr::new(127, 0, 0, 50 + j as u8)
}

/// `http(s)://ip:7000{path}` of replica `id` (https during a TLS run, see [`crate::tls`]).
pub fn api_url(id: u64, path: &str) -> String {
    crate::tls::url(&api_addr(id), path)
}

/// `ip:7000` of replica `id`.
pub fn api_addr(id: u64) -> String {
    format!("{}:{API_PORT}", replica_ip(id))
}

/// One process the harness started.
#[derive(Debug)]
struct Proc {
    child: Option<Child>,
    paused: bool,
}

impl Proc {
    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Signals the whole process group.
    fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain syscall on a process group this harness created.
            unsafe { libc::kill(-pid, sig) };
        }
    }

    fn kill(&mut self) {
        if self.paused {
            self.signal(libc::SIGCONT);
            self.paused = false;
        }
        self.signal(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// A replica's lifecycle as the harness knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaStatus {
    /// A member (as far as the harness asked for), maybe killed or paused right now.
    Member,
    /// Removed from the cluster; its process is stopped for good.
    Removed,
}

#[derive(Debug)]
struct Replica {
    proc: Proc,
    status: ReplicaStatus,
    config: PathBuf,
    log: PathBuf,
}

/// Where the run keeps its files and which binary it runs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The run's directory.
    pub dir: PathBuf,
    /// The `taskraft` release binary.
    pub bin: PathBuf,
    /// Run replicas under libfaketime.
    pub clock: bool,
    /// With TLS: the certificates written by `tls init` (see [`crate::tls`]).
    pub tls: Option<PathBuf>,
    /// With auth: the file holding the run's admin token (see [`crate::tls::activate_auth`]).
    pub admin_token: Option<PathBuf>,
    /// Every replica's `retention_ms`: finished tasks, settled workflows and their schedule
    /// runs are forgotten this long after they finished (a few seconds in the suite, so that
    /// retention fires during a run; see [`crate::run::default_retention`]).
    pub retention_ms: u64,
}

/// Every process of the system under test.
pub struct Cluster {
    layout: Layout,
    replicas: BTreeMap<u64, Replica>,
    workers: BTreeMap<u32, Proc>,
    next_id: u64,
    http: reqwest::Client,
    /// Members whose removal was asked and not confirmed (a timeout or a 5xx, e.g. asked through
    /// a node cut off from the others): the change may still commit once the network heals.
    removals_unknown: BTreeSet<u64>,
}

impl Cluster {
    /// An empty cluster; nothing runs yet.
    pub fn new(layout: Layout) -> anyhow::Result<Self> {
        for sub in ["config", "data", "logs", "work", "clock"] {
            std::fs::create_dir_all(layout.dir.join(sub))?;
        }
        let http = crate::tls::client_builder()
            .timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Self {
            layout,
            replicas: BTreeMap::new(),
            workers: BTreeMap::new(),
            next_id: 1,
            http,
            removals_unknown: BTreeSet::new(),
        })
    }

    /// The HTTP client used for control requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Starts `n` replicas (the first bootstraps, the others join) and waits until all are voters
    /// and a leader is known.
    pub async fn form(&mut self, n: usize) -> anyhow::Result<()> {
        let ids: Vec<u64> = (1..=n as u64).collect();
        self.next_id = n as u64 + 1;
        for &id in &ids {
            let join: Vec<u64> = ids.iter().copied().filter(|&o| o != id).collect();
            self.write_config(id, id == 1, &join)?;
            self.spawn_replica(id)?;
        }
        self.wait_members(&ids, Duration::from_secs(60)).await
    }

    fn write_config(&self, id: u64, bootstrap: bool, join: &[u64]) -> anyhow::Result<()> {
        let dir = &self.layout.dir;
        let mut text = format!(
            "# generated by taskraft-jepsen\nnode_id = {id}\napi_addr = \"{}\"\nraft_addr = \"{}:{RAFT_PORT}\"\n\
             data_dir = \"{}\"\ncluster_secret = \"{SECRET}\"\n",
            api_addr(id),
            replica_ip(id),
            dir.join("data").join(format!("n{id}")).display(),
        );
        // Preemption (the counters are batch work at priority 100, one in five is urgent at
        // 900): victims may go after a short run, so preemptions happen during short runs.
        text.push_str(&format!("preempt_min_runtime_ms = {PREEMPT_MIN_RUNTIME_MS}\n"));
        text.push_str(MIGRATION_CONFIG);
        text.push_str(&format!("retention_ms = {}\n", self.layout.retention_ms));
        match &self.layout.admin_token {
            Some(file) => text.push_str(&format!("auth = true\nadmin_token_file = \"{}\"\n", file.display())),
            None => text.push_str("auth = false\n"),
        }
        if let Some(tls) = &self.layout.tls {
            let file = |name: String| tls.join(name).display().to_string();
            text.push_str(&format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\n",
                file(format!("replica-{id}.pem")),
                file(format!("replica-{id}-key.pem")),
                file("ca.pem".into()),
            ));
        }
        if bootstrap {
            text.push_str("bootstrap = true\n");
        } else {
            let list: Vec<String> = join.iter().map(|&j| format!("\"{}\"", api_addr(j))).collect();
            text.push_str(&format!("join = [{}]\n", list.join(", ")));
        }
        std::fs::write(self.config_path(id), text)?;
        std::fs::write(self.clock_path(id), "+0\n")?;
        Ok(())
    }

    fn config_path(&self, id: u64) -> PathBuf {
        self.layout.dir.join("config").join(format!("n{id}.toml"))
    }

    fn clock_path(&self, id: u64) -> PathBuf {
        self.layout.dir.join("clock").join(format!("n{id}"))
    }

    fn spawn_replica(&mut self, id: u64) -> anyhow::Result<()> {
        let config = self.config_path(id);
        let log = self.layout.dir.join("logs").join(format!("n{id}.log"));
        let mut cmd = Command::new(&self.layout.bin);
        cmd.arg("server").arg("--config").arg(&config);
        if self.layout.clock {
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", self.clock_path(id))
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let child = spawn_logged(cmd, &log)?;
        let proc = Proc { child: Some(child), paused: false };
        match self.replicas.get_mut(&id) {
            Some(r) => r.proc = proc,
            None => {
                self.replicas.insert(id, Replica { proc, status: ReplicaStatus::Member, config, log });
            }
        }
        Ok(())
    }

    /// Replica ids that are members (running or not).
    pub fn members(&self) -> Vec<u64> {
        self.replicas.iter().filter(|(_, r)| r.status == ReplicaStatus::Member).map(|(&id, _)| id).collect()
    }

    /// Members whose process runs and is not paused.
    pub fn live(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        for (&id, r) in self.replicas.iter_mut() {
            if r.status == ReplicaStatus::Member && !r.proc.paused && r.proc.is_running() {
                out.push(id);
            }
        }
        out
    }

    /// Members whose process is down (killed, or exited on its own).
    pub fn down(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        for (&id, r) in self.replicas.iter_mut() {
            if r.status == ReplicaStatus::Member && !r.proc.is_running() {
                out.push(id);
            }
        }
        out
    }

    /// Members currently paused.
    pub fn paused(&self) -> Vec<u64> {
        self.replicas.iter().filter(|(_, r)| r.proc.paused).map(|(&id, _)| id).collect()
    }

    /// SIGKILLs replica `id`'s process group.
    pub fn kill(&mut self, id: u64) {
        if let Some(r) = self.replicas.get_mut(&id) {
            r.proc.kill();
        }
    }

    /// Restarts a killed member on its data dir with its config.
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let Some(r) = self.replicas.get_mut(&id) else { bail!("no replica n{id}") };
        if r.status != ReplicaStatus::Member || r.proc.is_running() {
            return Ok(());
        }
        self.spawn_replica(id)
    }

    /// SIGSTOP or SIGCONT replica `id`.
    pub fn pause(&mut self, id: u64, stop: bool) {
        if let Some(r) = self.replicas.get_mut(&id)
            && r.proc.paused != stop
            && r.proc.pid().is_some()
        {
            r.proc.signal(if stop { libc::SIGSTOP } else { libc::SIGCONT });
            r.proc.paused = stop;
        }
    }

    /// Sets replica `id`'s wall-clock offset in seconds (clock nemesis; needs `Layout::clock`).
    pub fn set_clock_offset(&self, id: u64, secs: i64) -> anyhow::Result<()> {
        std::fs::write(self.clock_path(id), format!("{secs:+}\n"))?;
        Ok(())
    }

    /// Every replica's offset back to zero.
    pub fn reset_clocks(&self) -> anyhow::Result<()> {
        for &id in self.replicas.keys() {
            self.set_clock_offset(id, 0)?;
        }
        Ok(())
    }

    /// `GET /v1/cluster` of one replica.
    pub async fn status(&self, id: u64) -> anyhow::Result<Value> {
        let url = api_url(id, "/v1/cluster");
        let resp = self.http.get(url).timeout(Duration::from_millis(500)).send().await?;
        Ok(resp.error_for_status()?.json().await?)
    }

    /// The leader, if some live replica that calls itself leader is found.
    pub async fn leader(&mut self) -> Option<u64> {
        for id in self.live() {
            if let Ok(s) = self.status(id).await
                && s["role"] == "leader"
            {
                return Some(id);
            }
        }
        None
    }

    /// Waits until the leader's membership has exactly `ids` as voters and every one of them
    /// answers with a known leader.
    pub async fn wait_members(&mut self, ids: &[u64], limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match self.voters_seen_by_all(ids).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("cluster did not converge on voters {ids:?} within {limit:?}: {last}")
    }

    async fn voters_seen_by_all(&self, ids: &[u64]) -> anyhow::Result<()> {
        for &id in ids {
            let s = self.status(id).await.with_context(|| format!("n{id}"))?;
            if s["leader_id"].is_null() {
                bail!("n{id} knows no leader");
            }
            let voters = voters_in(&s);
            if voters != ids {
                bail!("n{id} sees voters {voters:?}");
            }
        }
        Ok(())
    }

    /// Adds a fresh replica (new id, empty data dir) that joins through the running members.
    /// Returns its id once the process is started; it becomes a voter when the join completes.
    pub fn add_replica(&mut self) -> anyhow::Result<u64> {
        let id = self.next_id;
        if id > MAX_REPLICA_ID {
            bail!("out of replica ids (max {MAX_REPLICA_ID})");
        }
        self.next_id += 1;
        let join = self.members();
        self.write_config(id, false, &join)?;
        self.spawn_replica(id)?;
        Ok(id)
    }

    /// Asks the cluster (through `via`) to remove member `id`. Returns the HTTP status and body.
    pub async fn remove_member(&self, via: u64, id: u64) -> anyhow::Result<(u16, String)> {
        let url = api_url(via, &format!("/v1/cluster/members/{id}"));
        let resp = self.http.delete(url).timeout(Duration::from_secs(15)).send().await?;
        Ok((resp.status().as_u16(), resp.text().await.unwrap_or_default()))
    }

    /// Notes that the removal of member `id` was asked and its outcome is unknown.
    pub fn removal_unknown(&mut self, id: u64) {
        self.removals_unknown.insert(id);
    }

    /// Settles the removals whose outcome was unknown by asking for each again, through a live
    /// member: a removal that committed after all answers 404 (not a member), one that did not
    /// (or left the cluster in a joint configuration, which the timed-out request would have
    /// finished) is done now. Either way the member is retired. One still refused with a 5xx or
    /// no answer within `limit` stays unknown, for the next membership step or the heal to
    /// settle. Returns the ids retired.
    pub async fn settle_removals(&mut self, limit: Duration) -> Vec<u64> {
        let deadline = Instant::now() + limit;
        let mut retired = Vec::new();
        while !self.removals_unknown.is_empty() {
            for id in self.removals_unknown.clone() {
                let Some(via) = self.live().into_iter().find(|&x| x != id) else { continue };
                if let Ok((status, _)) = self.remove_member(via, id).await
                    && ((200..300).contains(&status) || status == 404)
                {
                    self.removals_unknown.remove(&id);
                    self.retire(id);
                    retired.push(id);
                }
            }
            if self.removals_unknown.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        retired
    }

    /// Marks `id` removed and stops its process (a removed id never comes back).
    pub fn retire(&mut self, id: u64) {
        if let Some(r) = self.replicas.get_mut(&id) {
            r.proc.kill();
            r.status = ReplicaStatus::Removed;
        }
    }

    /// Starts worker `j` with `WORKER_SLOTS` slots.
    pub fn start_worker(&mut self, j: u32) -> anyhow::Result<()> {
        let cluster: Vec<String> = (1..=MAX_REPLICA_ID).map(api_addr).collect();
        let work = self.layout.dir.join("work").join(format!("w{j}"));
        std::fs::create_dir_all(&work)?;
        let mut cmd = Command::new(&self.layout.bin);
        cmd.arg("worker")
            .arg("--cluster")
            .arg(cluster.join(","))
            .arg("--id")
            .arg(format!("w{j}"))
            .arg("--slots")
            .arg(WORKER_SLOTS.to_string())
            .arg("--work-dir")
            .arg(&work)
            .arg("--local-ip")
            .arg(worker_ip(j).to_string())
            .arg("--load-file")
            .arg(self.load_path(j))
            // Passed on to its task processes, which tell the sink where they ran.
            .env(crate::sink::WORKER_ENV, format!("w{j}"));
        if let Some(tls) = &self.layout.tls {
            cmd.arg("--ca-file").arg(tls.join("ca.pem"));
        }
        if let Some(token) = &self.layout.admin_token {
            cmd.arg("--token-file").arg(token);
        }
        let log = self.layout.dir.join("logs").join(format!("w{j}.log"));
        let child = spawn_logged(cmd, &log)?;
        self.workers.insert(j, Proc { child: Some(child), paused: false });
        Ok(())
    }

    fn load_path(&self, j: u32) -> PathBuf {
        self.layout.dir.join("work").join(format!("w{j}.load"))
    }

    /// What worker `j` reports as its load from its next heartbeat on ([`LOAD_HOT`] or
    /// [`LOAD_COLD`]); a worker whose file was never written reports its machine's.
    pub fn set_worker_load(&self, j: u32, load: &str) -> anyhow::Result<()> {
        let path = self.load_path(j);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, load)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Worker numbers.
    pub fn workers(&self) -> Vec<u32> {
        self.workers.keys().copied().collect()
    }

    /// SIGKILLs worker `j`'s process group (its task processes die with it: its reaper, in a
    /// group of its own, kills their groups; see `taskraft::worker::executor::reaper`).
    pub fn kill_worker(&mut self, j: u32) {
        if let Some(w) = self.workers.get_mut(&j) {
            w.kill();
        }
    }

    /// Restarts a killed worker under the same id.
    pub fn restart_worker(&mut self, j: u32) -> anyhow::Result<()> {
        let running = self.workers.get_mut(&j).is_some_and(|w| w.is_running());
        if running { Ok(()) } else { self.start_worker(j) }
    }

    /// SIGSTOP or SIGCONT worker `j` (its task processes keep running: they are in their own
    /// process groups, which is what makes a paused worker's attempt physically overlap a new one).
    pub fn pause_worker(&mut self, j: u32, stop: bool) {
        if let Some(w) = self.workers.get_mut(&j)
            && w.paused != stop
            && w.pid().is_some()
        {
            w.signal(if stop { libc::SIGSTOP } else { libc::SIGCONT });
            w.paused = stop;
        }
    }

    /// Restarts every member replica and worker that is down and resumes every paused one.
    pub fn revive_all(&mut self) -> anyhow::Result<()> {
        for id in self.paused() {
            self.pause(id, false);
        }
        for id in self.down() {
            self.restart(id)?;
        }
        for j in self.workers() {
            self.pause_worker(j, false);
            self.restart_worker(j)?;
        }
        Ok(())
    }

    /// The log file of replica `id`.
    pub fn log_of(&self, id: u64) -> Option<&Path> {
        self.replicas.get(&id).map(|r| r.log.as_path())
    }

    /// The config file of replica `id`.
    pub fn config_of(&self, id: u64) -> Option<&Path> {
        self.replicas.get(&id).map(|r| r.config.as_path())
    }

    /// Stops everything: CONT then KILL every process the harness started.
    pub fn shutdown(&mut self) {
        for r in self.replicas.values_mut() {
            r.proc.kill();
        }
        for w in self.workers.values_mut() {
            w.kill();
        }
    }
}

/// The voters a `GET /v1/cluster` answer lists, in its order (by id).
fn voters_in(status: &Value) -> Vec<u64> {
    status["members"]
        .as_array()
        .map(|m| m.iter().filter(|x| x["voter"] == true).filter_map(|x| x["id"].as_u64()).collect())
        .unwrap_or_default()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Spawns `cmd` in its own process group with stdout and stderr appended to `log`.
fn spawn_logged(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let file = OpenOptions::new().create(true).append(true).open(log)?;
    cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).process_group(0);
    cmd.spawn().with_context(|| format!("starting {:?}", cmd.get_program()))
}
