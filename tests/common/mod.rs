//! A cluster of real `taskraft server` processes for end-to-end tests.
//!
//! Each test gets fresh ports (bound once to port 0 to find free ones), a temp dir for data
//! and logs, and kills every process it started when dropped. Waits poll a condition with a
//! deadline; nothing sleeps a fixed time. If the test panics, the tail of every replica log is
//! printed so that failures explain themselves.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use serde_json::Value;
use taskraft::client::Client;
use taskraft::client::ClientOptions;

/// A free loopback port (the listener is closed before the server binds it). Never the same
/// port twice in one test process: the kernel may hand out a port again while the server it was
/// picked for has not bound it yet, and two replicas then race for it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh loopback port in 1000 tries");
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One replica process and how to (re)start it.
pub struct TestNode {
    pub id: u64,
    pub api_addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub extra: Vec<String>,
    /// Extra environment of the process (e.g. libfaketime), kept across restarts.
    pub env: Vec<(String, String)>,
    /// API token its [`TestNode::client`] sends (clusters with auth on).
    pub token: Option<String>,
    /// With TLS: the cluster CA that clients of this node trust.
    pub ca: Option<PathBuf>,
    child: Option<Child>,
}

impl TestNode {
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "server".into(),
            "--node-id".into(),
            self.id.to_string(),
            "--api-addr".into(),
            self.api_addr.clone(),
            "--raft-addr".into(),
            self.raft_addr.clone(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--cluster-secret".into(),
            "test-secret".into(),
        ];
        // Auth is on by default; tests of other things run without it unless they ask.
        if !self.extra.iter().any(|e| e.starts_with("--auth")) {
            a.push("--auth=false".into());
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Starts (or restarts, with the same flags) the process.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_taskraft"))
            .args(self.args())
            .env("RUST_LOG", "info,openraft=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn taskraft server");
        self.child = Some(child);
    }

    /// SIGKILL, like a crash.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("node {} did not stop within 15 s of SIGTERM", self.id);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits for the process to exit on its own; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("node not running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "node {} did not exit within {timeout:?}", self.id);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGSTOP / SIGCONT: a hung process that still accepts connections.
    pub fn pause(&self) {
        unsafe { libc::kill(self.child.as_ref().expect("node not running").id() as i32, libc::SIGSTOP) };
    }
    pub fn resume(&self) {
        unsafe { libc::kill(self.child.as_ref().expect("node not running").id() as i32, libc::SIGCONT) };
    }

    /// A client talking to this replica only.
    pub fn client(&self) -> Client {
        let options = ClientOptions { ca_file: self.ca.clone(), token: self.token.clone(), ..Default::default() };
        Client::with_options(vec![self.api_addr.clone()], &options).unwrap().with_timeout(Duration::from_secs(10))
    }

    /// The process id (the node must be running).
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("node not running").id() as i32
    }
}

/// Cluster tests of one test binary run one at a time: several 3-replica clusters fsyncing
/// at once on a 2-core machine would turn failover timings into noise.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A worker agent process.
pub struct TestWorker {
    pub name: String,
    pub log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl TestWorker {
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "worker {} already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_taskraft"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn taskraft worker");
        self.child = Some(child);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("worker not running").id() as i32
    }

    /// SIGKILL, like a crashed machine.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, like `systemctl stop`, and wait for it to exit (at most 30 s: its shutdown gives
    /// stopped attempts 10 s to report).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("worker not running");
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("worker {} did not stop within 30 s of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP / SIGCONT.
    pub fn pause(&self) {
        unsafe { libc::kill(self.pid(), libc::SIGSTOP) };
    }
    pub fn resume(&self) {
        unsafe { libc::kill(self.pid(), libc::SIGCONT) };
    }
}

/// True while a process with this pid exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// A shell task that counts to `steps`, one step per `step_secs` seconds, checkpointing each
/// step and resuming from its checkpoint. It appends its story to `$LOG`: where each attempt
/// starts, and on TERM the stop reason from `$TASKRAFT_STOP_REASON_FILE` and the step it saves
/// in its grace before exiting 143 (the preemption and migration tests read the resume point
/// from it).
pub fn counter_script(steps: u32, step_secs: &str) -> String {
    format!(
        r#"
i=0
[ -n "$TASKRAFT_CHECKPOINT_IN" ] && i=$(cat "$TASKRAFT_CHECKPOINT_IN")
echo "attempt $TASKRAFT_ATTEMPT starts at $i" >> "$LOG"
save() {{ echo "$i" > "$TASKRAFT_CHECKPOINT_OUT.tmp" && mv "$TASKRAFT_CHECKPOINT_OUT.tmp" "$TASKRAFT_CHECKPOINT_OUT"; }}
trap 'echo "stop $(cat "$TASKRAFT_STOP_REASON_FILE") at $i" >> "$LOG"; save; exit 143' TERM
while [ "$i" -lt {steps} ]; do
  i=$((i + 1))
  save
  sleep {step_secs}
done
echo "done at $i" >> "$LOG"
"#
    )
}

/// A cluster of replicas in one temp dir.
pub struct TestCluster {
    pub nodes: Vec<TestNode>,
    pub workers: Vec<TestWorker>,
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
    /// The admin token of a cluster started with [`TestCluster::start_with_auth`].
    pub token: Option<String>,
    /// With TLS: the directory written by `tls init` (see [`TestCluster::start_tls`]).
    pub tls_dir: Option<PathBuf>,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl TestCluster {
    /// Starts `n` replicas (node 1 bootstraps, the others join) and waits until all are voters.
    pub async fn start(n: u64, extra: &[&str]) -> TestCluster {
        Self::start_with(n, extra, false, None).await
    }

    /// Like [`TestCluster::start`] with auth on: every replica is given `admin_token`
    /// (TASKRAFT_ADMIN_TOKEN), the leader commits it, and the cluster's clients send it.
    pub async fn start_with_auth(n: u64, extra: &[&str], admin_token: &str) -> TestCluster {
        Self::start_with(n, extra, false, Some(admin_token.to_string())).await
    }

    /// Like [`TestCluster::start`] with TLS: certificates from `tls init` in `<dir>/tls`,
    /// replica N serving `replica-N.pem`, every client and worker trusting `ca.pem`.
    pub async fn start_tls(n: u64, extra: &[&str]) -> TestCluster {
        Self::start_with(n, extra, true, None).await
    }

    async fn start_with(n: u64, extra: &[&str], tls: bool, token: Option<String>) -> TestCluster {
        let serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::Builder::new().prefix("taskraft-test-").tempdir().unwrap();
        let tls_dir = tls.then(|| {
            let tls_dir = dir.path().join("tls");
            let options = taskraft::tls::init::InitOptions { replicas: n + 2, ..Default::default() };
            taskraft::tls::init::write_cluster(&tls_dir, &options).expect("tls init");
            tls_dir
        });
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if token.is_some() {
            extra.push("--auth=true".into());
        }
        let mut cluster =
            TestCluster { nodes: Vec::new(), workers: Vec::new(), dir, extra, tls_dir, token, _serial: serial };
        for id in 1..=n {
            cluster.add_node_process(id, id == 1);
        }
        cluster.wait_voters(n as usize).await;
        cluster
    }

    /// A cluster with no process yet (its temp dir exists): start replicas with
    /// [`TestCluster::add_node_process`], e.g. on a data dir prepared first.
    pub fn empty(extra: &[&str]) -> TestCluster {
        let serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = tempfile::Builder::new().prefix("taskraft-test-").tempdir().unwrap();
        TestCluster {
            nodes: Vec::new(),
            workers: Vec::new(),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls_dir: None,
            token: None,
            _serial: serial,
        }
    }

    /// Creates and starts the process of a replica `id` that bootstraps or joins the others.
    pub fn add_node_process(&mut self, id: u64, bootstrap: bool) -> usize {
        let mut extra = self.extra.clone();
        if bootstrap {
            extra.push("--bootstrap".into());
        } else {
            let peers: Vec<String> = self.nodes.iter().map(|n| n.api_addr.clone()).collect();
            extra.push("--join".into());
            extra.push(peers.join(","));
        }
        if let Some(tls) = &self.tls_dir {
            let file = |name: String| tls.join(name).display().to_string();
            extra.extend([
                "--tls-cert".into(),
                file(format!("replica-{id}.pem")),
                "--tls-key".into(),
                file(format!("replica-{id}-key.pem")),
                "--tls-ca".into(),
                file("ca.pem".into()),
            ]);
        }
        let mut node = TestNode {
            id,
            api_addr: format!("127.0.0.1:{}", free_port()),
            raft_addr: format!("127.0.0.1:{}", free_port()),
            data_dir: self.dir.path().join(format!("node-{id}")),
            log: self.dir.path().join(format!("node-{id}.log")),
            extra,
            env: self.token.iter().map(|t| ("TASKRAFT_ADMIN_TOKEN".to_string(), t.clone())).collect(),
            token: self.token.clone(),
            ca: self.ca_file(),
            child: None,
        };
        node.start();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Starts worker `name` with `slots` slots talking to every replica; returns its index.
    pub fn add_worker(&mut self, name: &str, slots: u32, extra: &[&str]) -> usize {
        let addrs: Vec<String> = self.nodes.iter().map(|n| n.api_addr.clone()).collect();
        let mut args: Vec<String> = vec![
            "worker".into(),
            "--cluster".into(),
            addrs.join(","),
            "--id".into(),
            name.into(),
            "--slots".into(),
            slots.to_string(),
            "--work-dir".into(),
            self.dir.path().join(name).display().to_string(),
        ];
        if let Some(ca) = self.ca_file() {
            args.extend(["--ca-file".into(), ca.display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut w =
            TestWorker { name: name.into(), log: self.dir.path().join(format!("{name}.log")), args, child: None };
        w.start();
        self.workers.push(w);
        self.workers.len() - 1
    }

    pub fn worker(&mut self, name: &str) -> &mut TestWorker {
        self.workers.iter_mut().find(|w| w.name == name).expect("no such worker")
    }

    /// Waits until `n` workers are registered and active.
    pub async fn wait_workers(&self, n: usize) {
        let client = self.client();
        eventually(&format!("{n} active workers"), Duration::from_secs(30), || async {
            let v: Value = client.request(reqwest::Method::GET, "/v1/workers", None).await.ok()?;
            let active = v["workers"].as_array()?.iter().filter(|w| w["worker"]["state"] == "active").count();
            (active >= n).then_some(())
        })
        .await
    }

    /// With TLS: the cluster CA.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls_dir.as_ref().map(|d| d.join("ca.pem"))
    }

    /// A client that knows every replica (running or not).
    pub fn client(&self) -> Client {
        let options = ClientOptions { ca_file: self.ca_file(), ..Default::default() };
        Client::with_options(self.nodes.iter().map(|n| n.api_addr.clone()).collect(), &options)
            .unwrap()
            .with_token(self.token.as_deref())
            .unwrap()
            .with_timeout(Duration::from_secs(10))
    }

    pub fn node(&self, id: u64) -> &TestNode {
        self.nodes.iter().find(|n| n.id == id).expect("no such node")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes.iter_mut().find(|n| n.id == id).expect("no such node")
    }

    /// `/v1/cluster` of one running replica.
    pub async fn status_of(&self, id: u64) -> Option<Value> {
        let status = self.node(id).client().with_timeout(Duration::from_secs(1)).cluster_status().await.ok()?;
        serde_json::to_value(status).ok()
    }

    /// Waits until some running replica reports a leader that every running replica agrees on.
    pub async fn wait_leader(&self) -> u64 {
        eventually("an agreed leader", Duration::from_secs(30), || async {
            let mut leader = None;
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                let s = self.status_of(n.id).await?;
                let l = s["leader_id"].as_u64()?;
                if leader.is_some_and(|x| x != l) {
                    return None;
                }
                leader = Some(l);
            }
            let l = leader?;
            self.nodes.iter().any(|n| n.id == l && n.is_running()).then_some(l)
        })
        .await
    }

    /// Waits until the leader reports `count` voters.
    pub async fn wait_voters(&self, count: usize) {
        eventually(&format!("{count} voters"), Duration::from_secs(60), || async {
            let leader = self.wait_leader().await;
            let s = self.status_of(leader).await?;
            let voters = s["members"].as_array()?.iter().filter(|m| m["voter"] == true).count();
            (voters == count).then_some(())
        })
        .await
    }

    /// Waits until replica `id` has applied at least `index`.
    pub async fn wait_applied(&self, id: u64, index: u64) {
        eventually(&format!("node {id} applied {index}"), Duration::from_secs(30), || async {
            let s = self.status_of(id).await?;
            (s["last_applied"].as_u64()? >= index).then_some(())
        })
        .await
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(c) = w.child.as_ref() {
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            }
            w.kill9();
        }
        for n in &mut self.nodes {
            n.kill9();
        }
        if std::thread::panicking() {
            let logs = self
                .nodes
                .iter()
                .map(|n| (format!("node {}", n.id), &n.log))
                .chain(self.workers.iter().map(|w| (w.name.clone(), &w.log)));
            // `TASKRAFT_TEST_KEEP_LOGS=DIR` keeps every whole log of a failed test in DIR/<test>
            // (libtest names each test's thread after the test).
            let test = std::thread::current().name().unwrap_or("test").replace("::", "-");
            let keep = std::env::var_os("TASKRAFT_TEST_KEEP_LOGS").map(|d| PathBuf::from(d).join(test));
            for (name, log) in logs {
                if let Some(keep) = &keep {
                    let _ = std::fs::create_dir_all(keep);
                    let _ = std::fs::copy(log, keep.join(format!("{}.log", name.replace(' ', "-"))));
                }
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("----- last lines of {name} log ({}) -----", log.display());
                for l in &lines[lines.len().saturating_sub(40)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}
