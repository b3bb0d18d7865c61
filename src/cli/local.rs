//! A local cluster of `taskraft server` child processes on 127.0.0.1, used by `taskraft dev`
//! and `taskraft bench failover`.
//!
//! Each replica is a real process in its own process group with its log in the data dir, so
//! `kill -9` on one behaves exactly like a crashed server.

use std::path::Path;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Child;
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Client;

/// The secrets of a local cluster, kept in files of its data dir (mode 0600) so that a reused
/// data dir keeps them, and passed to the processes by file: never on a command line.
pub struct LocalSecrets {
    /// The cluster secret (random, per cluster).
    pub cluster_secret_file: PathBuf,
    /// The bootstrap admin token.
    pub admin_token_file: PathBuf,
    /// Its value.
    pub admin_token: String,
}

impl LocalSecrets {
    /// Reads the secrets under `dir`, creating the missing ones.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let cluster_secret_file = dir.join("cluster-secret");
        if !cluster_secret_file.exists() {
            // A token string is 256 random bits in a shape that needs no escaping.
            let secret = crate::proto::tokens::generate_token();
            crate::node::admin_token::write_secret(&cluster_secret_file, &secret)
                .with_context(|| format!("writing {}", cluster_secret_file.display()))?;
        }
        let admin_token_file = dir.join("admin-token");
        if !admin_token_file.exists() {
            crate::node::admin_token::write_secret(&admin_token_file, &crate::proto::tokens::generate_token())
                .with_context(|| format!("writing {}", admin_token_file.display()))?;
        }
        let admin_token = std::fs::read_to_string(&admin_token_file)
            .with_context(|| format!("reading {}", admin_token_file.display()))?
            .trim()
            .to_string();
        Ok(Self { cluster_secret_file, admin_token_file, admin_token })
    }

    /// `taskraft server` arguments that use these secrets (auth on).
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--cluster-secret-file".into(),
            self.cluster_secret_file.display().to_string(),
            "--admin-token-file".into(),
            self.admin_token_file.display().to_string(),
            "--auth=true".into(),
        ]
    }
}

/// Grace period between SIGTERM and SIGKILL at shutdown.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One replica process.
pub struct Replica {
    /// Node id (1-based).
    pub id: u64,
    /// The running process, if any.
    pub child: Option<Child>,
    /// Its `taskraft server …` arguments (restart uses the same).
    pub args: Vec<String>,
    /// Its log file.
    pub log: PathBuf,
}

/// Replicas `1..=n` with API ports `api_base + id` and Raft ports `raft_base + id`, plus
/// worker agents.
pub struct LocalCluster {
    /// Data and logs.
    pub dir: PathBuf,
    /// The replicas, by id order.
    pub replicas: Vec<Replica>,
    /// The workers (`id` = 1-based worker number), in start order.
    pub workers: Vec<Replica>,
    /// With TLS: the directory written by `tls init` (replica-N certificates, `ca.pem`).
    pub tls_dir: Option<PathBuf>,
    exe: PathBuf,
    api_base: u16,
}

impl LocalCluster {
    /// Spawns `n` replicas: node 1 bootstraps, the others join through the API.
    pub fn spawn(dir: &Path, n: u64, api_base: u16, raft_base: u16, extra: &[String]) -> anyhow::Result<Self> {
        Self::spawn_with_tls(dir, n, api_base, raft_base, extra, None)
    }

    /// Like [`LocalCluster::spawn`]; with `tls_dir` (written by `tls init` with at least `n`
    /// replica certificates) replica N serves `replica-N.pem` and everyone trusts `ca.pem`.
    pub fn spawn_with_tls(
        dir: &Path,
        n: u64,
        api_base: u16,
        raft_base: u16,
        extra: &[String],
        tls_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let exe = std::env::current_exe().context("locating the taskraft binary")?;
        let api = |id: u64| format!("127.0.0.1:{}", api_base as u64 + id);
        let mut replicas = Vec::new();
        for id in 1..=n {
            let mut args: Vec<String> = vec![
                "server".into(),
                "--node-id".into(),
                id.to_string(),
                "--api-addr".into(),
                api(id),
                "--raft-addr".into(),
                format!("127.0.0.1:{}", raft_base as u64 + id),
                "--data-dir".into(),
                dir.join(format!("node-{id}")).display().to_string(),
            ];
            args.extend(extra.iter().cloned());
            if let Some(tls) = tls_dir {
                let file = |name: String| tls.join(name).display().to_string();
                args.extend([
                    "--tls-cert".into(),
                    file(format!("replica-{id}.pem")),
                    "--tls-key".into(),
                    file(format!("replica-{id}-key.pem")),
                    "--tls-ca".into(),
                    file("ca.pem".into()),
                ]);
            }
            if id == 1 {
                args.push("--bootstrap".into());
            } else {
                args.push("--join".into());
                args.push((1..=n).map(api).collect::<Vec<_>>().join(","));
            }
            let log = dir.join(format!("node-{id}.log"));
            replicas.push(Replica { id, child: None, args, log });
        }
        let tls_dir = tls_dir.map(Path::to_path_buf);
        let mut cluster = Self { dir: dir.to_path_buf(), replicas, workers: Vec::new(), tls_dir, exe, api_base };
        for id in 1..=n {
            cluster.start(id)?;
        }
        Ok(cluster)
    }

    /// Starts worker agent `worker-<n>` with `slots` slots, talking to every replica.
    pub fn spawn_worker(&mut self, slots: u32, extra: &[String]) -> anyhow::Result<()> {
        let n = self.workers.len() as u64 + 1;
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--cluster".into(),
            self.addrs().join(","),
            "--id".into(),
            format!("worker-{n}"),
            "--slots".into(),
            slots.to_string(),
            "--work-dir".into(),
            self.dir.join(format!("worker-{n}")).display().to_string(),
        ];
        if let Some(ca) = self.ca_file() {
            args.extend(["--ca-file".into(), ca.display().to_string()]);
        }
        args.extend(extra.iter().cloned());
        let log = self.dir.join(format!("worker-{n}.log"));
        let child = spawn_process(&self.exe, &args, &log)?;
        self.workers.push(Replica { id: n, child: Some(child), args, log });
        Ok(())
    }

    /// The cluster CA, with TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls_dir.as_ref().map(|d| d.join("ca.pem"))
    }

    /// A client of every replica (trusting the CA with TLS).
    pub fn client(&self) -> anyhow::Result<Client> {
        let options = crate::client::ClientOptions { ca_file: self.ca_file(), ..Default::default() };
        Ok(Client::with_options(self.addrs(), &options)?)
    }

    /// Starts the next worker like [`LocalCluster::spawn_worker`], with its own worker token
    /// (created through `admin`, written to `DIR/worker-<n>.token`). A token of that name left
    /// by an earlier run of the same data dir is revoked first.
    pub async fn spawn_worker_with_token(
        &mut self,
        admin: &Client,
        slots: u32,
        extra: &[String],
    ) -> anyhow::Result<()> {
        let name = format!("worker-{}", self.workers.len() + 1);
        if let Err(e) = admin.revoke_token(&name).await
            && e.code() != Some(crate::proto::ErrorCode::NotFound)
        {
            return Err(e).context("revoking the previous worker token");
        }
        let req = crate::proto::tokens::CreateToken {
            name: name.clone(),
            role: crate::scheduler::Role::Worker,
            worker_id: Some(name.clone()),
        };
        let created = admin.create_token(&req).await.context("creating a worker token")?;
        let file = self.dir.join(format!("{name}.token"));
        let _ = std::fs::remove_file(&file);
        crate::node::admin_token::write_secret(&file, &created.token)
            .with_context(|| format!("writing {}", file.display()))?;
        let mut args = vec!["--token-file".to_string(), file.display().to_string()];
        args.extend(extra.iter().cloned());
        self.spawn_worker(slots, &args)
    }

    /// API address of replica `id`.
    pub fn api_addr(&self, id: u64) -> String {
        format!("127.0.0.1:{}", self.api_base as u64 + id)
    }

    /// API addresses of every replica.
    pub fn addrs(&self) -> Vec<String> {
        self.replicas.iter().map(|r| self.api_addr(r.id)).collect()
    }

    fn replica(&mut self, id: u64) -> anyhow::Result<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.id == id).with_context(|| format!("no replica {id}"))
    }

    /// Starts (or restarts, with the same arguments) replica `id`.
    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let exe = self.exe.clone();
        let r = self.replica(id)?;
        r.child = Some(spawn_process(&exe, &r.args, &r.log)?);
        Ok(())
    }

    /// SIGKILL replica `id` and reap it.
    pub async fn kill9(&mut self, id: u64) -> anyhow::Result<()> {
        if let Some(mut child) = self.replica(id)?.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Polls until a leader is known and `voters` replicas are voters.
    pub async fn wait_formed(
        &self,
        client: &Client,
        voters: usize,
        timeout: Duration,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(status) = client.cluster_status().await {
                let n = status.members.iter().filter(|m| m.voter).count();
                if status.leader_id.is_some() && n == voters {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                anyhow::bail!("the cluster did not form within {timeout:?}; logs are in {}", self.dir.display());
            }
            tokio::select! {
                _ = stop.cancelled() => anyhow::bail!("interrupted"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// SIGTERM every worker and replica, wait for them, SIGKILL stragglers. Workers go first
    /// so that they can still report to the cluster on their way out.
    pub async fn shutdown(&mut self) {
        stop_all(&mut self.workers).await;
        stop_all(&mut self.replicas).await;
    }
}

/// Spawns `exe args` in its own process group with stdout/stderr appended to `log`.
fn spawn_process(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        // Own process group: Ctrl-C reaches only the parent, which stops its children in order.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

async fn stop_all(processes: &mut [Replica]) {
    for r in processes.iter() {
        if let Some(pid) = r.child.as_ref().and_then(Child::id) {
            // SAFETY: kill(2) on a child we spawned and have not reaped yet.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
    for r in processes.iter_mut() {
        if let Some(child) = r.child.as_mut()
            && tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err()
        {
            eprintln!("replica {} did not stop within {STOP_GRACE:?}; killing it", r.id);
            let _ = child.kill().await;
        }
        r.child = None;
    }
}
