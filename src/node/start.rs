//! Opening storage, starting Raft and its listener, and shutting down cleanly. The public API
//! is served on top of this by [`crate::server`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use taskraft_raft::HttpNetworkFactory;
use taskraft_raft::NetworkOptions;
use taskraft_storage::LogStore;
use taskraft_storage::MemEngine;
use taskraft_storage::SledEngine;
use taskraft_storage::SnapshotStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Member;
use super::Node;
use super::Raft;
use super::StateMachine;
use super::types::upgrade_entry;
use crate::config::ServerConfig;
use crate::config::StorageKind;
use crate::listener::Listener;
use crate::tls::TlsContext;

/// Why a replica could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory under `data_dir` could not be used.
    #[error("storage at {path}: {message}")]
    Storage { path: PathBuf, message: String },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    /// openraft refused the configuration or stopped.
    #[error("raft: {0}")]
    Raft(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// The replica cannot take part in the cluster (e.g. its join was refused).
    #[error("{0}")]
    Fatal(String),
    /// A TLS file is missing or unusable.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// A started replica: the shared [`Node`] plus the tasks serving it.
pub struct RunningNode {
    /// Shared state used by the API.
    pub node: Arc<Node>,
    /// Keeps the leader loops following leadership changes.
    _leadership: openraft::WatchChangeHandle<super::TypeConfig>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

fn storage_err(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Storage { path: path.to_path_buf(), message: e.to_string() }
}

/// How long connections to peers are kept unused: half the shorter of the peer's idle and
/// head-read timeouts (every replica is assumed to run with the same ones), so this side lets
/// go before the peer closes them. hyper runs its head-read timer while it waits for the next
/// request on a kept-alive connection, so an idle connection lasts only that long there.
fn pool_idle(config: &ServerConfig) -> std::time::Duration {
    (config.limits.idle_timeout.min(config.limits.header_read_timeout) / 2).min(taskraft_raft::DEFAULT_POOL_IDLE)
}

fn raft_config(config: &ServerConfig) -> Result<Arc<openraft::Config>, Error> {
    let raft_config = openraft::Config {
        cluster_name: "taskraft".into(),
        heartbeat_interval: config.heartbeat.as_millis() as u64,
        election_timeout_min: config.election_timeout_min.as_millis() as u64,
        election_timeout_max: config.election_timeout_max.as_millis() as u64,
        // Snapshots are asked for by `snapshot_schedule`, at an offset that differs per replica.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        // A follower further behind than this gets a snapshot instead of entries.
        replication_lag_threshold: config.snapshot_logs * 2,
        // Keep some log behind a snapshot so that a briefly lagging follower catches up from the
        // log; anything further behind receives the snapshot.
        max_in_snapshot_log_to_keep: (config.snapshot_logs / 2).min(1000),
        // Pre-vote keeps a node that was cut off from disrupting a healthy leader on return.
        enable_pre_vote: Some(true),
        // A restarted leader must win a new election, in a new term; openraft's default lets it
        // resume its old term. The log store's `append` returns before its flush, so the
        // leader replicates entries it may lose in a crash; resuming the same term it would
        // then write different entries at those (term, index) positions, which followers that
        // hold the old ones accept as matching: a committed entry lost on a replica and its
        // state diverged (chaos suite, kill nemesis: 141 tasks differed on one replica). In a
        // new term the new entries differ in term, and Raft's log matching holds.
        enable_leader_restore: Some(false),
        install_snapshot_timeout: 60_000,
        ..Default::default()
    };
    Ok(Arc::new(raft_config.validate().map_err(|e| Error::Raft(e.to_string()))?))
}

impl RunningNode {
    /// Opens storage, starts Raft and its listener; returns once it is serving.
    pub async fn start(config: ServerConfig, shutdown: CancellationToken) -> Result<Self, Error> {
        let config = Arc::new(config);
        let id = config.node_id;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| storage_err(&config.data_dir, e))?;
        let snap_dir = config.data_dir.join("snapshots");
        let snapshots = SnapshotStore::open(&snap_dir).map_err(|e| storage_err(&snap_dir, e))?;
        super::backup::install_restore_seed(&config, &snapshots).map_err(|e| storage_err(&config.data_dir, e))?;
        let telemetry = super::metrics::Telemetry::new();
        let (state_machine, view) =
            StateMachine::open_counted(snapshots, telemetry.clone()).map_err(|e| storage_err(&snap_dir, e))?;

        let tls = config.tls.as_ref().map(TlsContext::load).transpose()?.map(Arc::new);
        let peer_tls = tls.as_ref().map(|t| t.peer_client()).transpose()?;
        let network = HttpNetworkFactory::new(NetworkOptions {
            secret: config.cluster_secret.clone(),
            local_ip: config.local_ip(),
            tls: peer_tls.clone(),
            pool_idle_timeout: pool_idle(&config),
            ..Default::default()
        })
        .map_err(|e| Error::Raft(e.to_string()))?;
        let raft_config = raft_config(&config)?;
        let raft: Raft = match config.storage {
            StorageKind::Sled => {
                let path = config.data_dir.join("raft-log");
                let engine = SledEngine::open(&path).map_err(|e| storage_err(&path, e))?;
                let log = LogStore::new(engine).map_err(|e| storage_err(&path, e))?.with_upgrade(upgrade_entry);
                Raft::new(id, raft_config, network, log, state_machine).await
            }
            StorageKind::Memory => {
                let log = LogStore::new(MemEngine::new())
                    .map_err(|e| storage_err(&config.data_dir, e))?
                    .with_upgrade(upgrade_entry);
                Raft::new(id, raft_config, network, log, state_machine).await
            }
        }
        .map_err(|e| Error::Raft(e.to_string()))?;

        let mut http = reqwest::Client::builder()
            .local_address(config.local_ip())
            .connect_timeout(std::time::Duration::from_millis(500))
            .pool_idle_timeout(pool_idle(&config).min(crate::client::POOL_IDLE))
            .tcp_nodelay(true)
            .no_proxy();
        if let Some(peer_tls) = peer_tls {
            http = http.use_preconfigured_tls(peer_tls);
        }
        let http = http.build()?;
        telemetry.watch(view.clone(), raft.metrics());
        let node = Arc::new(Node {
            id,
            metrics: raft.metrics(),
            raft: raft.clone(),
            view,
            telemetry: telemetry.clone(),
            config: config.clone(),
            http,
            tls: tls.clone(),
            batcher: super::batcher::Batcher::start(raft.clone(), config.request_timeout * 2, shutdown.clone()),
            leader: super::leader::LeaderState::new(super::leader::LeaderOptions::from_config(&config)),
            shutdown: shutdown.clone(),
            fatal: std::sync::Mutex::new(None),
            membership_lock: tokio::sync::Mutex::new(()),
        });

        let tracker = TaskTracker::new();
        tracker.spawn(super::snapshot_schedule::run(raft.clone(), config.snapshot_logs, id, shutdown.clone()));
        tracker.spawn(telemetry.elections.clone().follow(raft.server_metrics(), shutdown.clone()));
        let raft_listener = TcpListener::bind(config.raft_addr)
            .await
            .map_err(|source| Error::Bind { addr: config.raft_addr, source })?;
        let raft_routes = taskraft_raft::raft_router(raft.clone(), config.cluster_secret.clone());
        // Peers must present a certificate of the cluster CA (mutual TLS).
        let raft_tls = tls.as_ref().map(|t| t.peer_server()).transpose()?;
        let raft_serve = Listener {
            name: "raft",
            listener: raft_listener,
            router: raft_routes,
            tls: raft_tls,
            limits: config.limits,
        };
        tracker.spawn(crate::listener::serve(raft_serve, shutdown.clone(), tracker.clone()));
        if let Some(tls) = &tls {
            tracker.spawn(crate::tls::run_reloader(tls.identity.clone(), crate::tls::RELOAD_POLL, shutdown.clone()));
        }
        tracing::info!(
            node_id = id, raft = %config.raft_addr, data_dir = %config.data_dir.display(), tls = tls.is_some(),
            "replica started"
        );

        let admin_token = super::admin_token::source(&node.config)
            .map_err(|e| Error::Fatal(format!("the bootstrap admin token: {e}")))?;
        let starter = node.clone();
        let token = shutdown.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = async {
                    super::membership::first_start(&starter).await;
                    if let Some(admin) = admin_token {
                        super::admin_token::ensure(&starter, admin).await;
                    }
                } => {}
            }
        });
        let leadership = super::leader::watch_leadership(&node);
        Ok(Self { node, _leadership: leadership, tracker, shutdown })
    }

    /// Waits for the shutdown token, drains the listeners and stops Raft.
    pub async fn run_until_shutdown(self) -> Result<(), Error> {
        self.shutdown.cancelled().await;
        tracing::info!(node_id = self.node.id, "shutting down");
        self.tracker.close();
        self.tracker.wait().await;
        self.node.raft.shutdown().await.map_err(|e| Error::Raft(e.to_string()))?;
        tracing::info!(node_id = self.node.id, "stopped");
        match self.node.fatal.lock().expect("fatal lock").take() {
            Some(reason) => Err(Error::Fatal(reason)),
            None => Ok(()),
        }
    }
}

/// The member record of this replica.
pub fn self_member(config: &ServerConfig) -> Member {
    Member { api_addr: config.api_addr.to_string(), raft_addr: config.raft_addr.to_string() }
}

/// The one-member initial membership used by bootstrap and `cluster init`.
pub fn initial_members(config: &ServerConfig) -> BTreeMap<u64, Member> {
    BTreeMap::from([(config.node_id, self_member(config))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerArgs;

    /// The log store acknowledges appends before their flush (see its module docs); that is
    /// safe only if a restarted leader never resumes its term. Found by the chaos suite: with
    /// openraft's default, a leader SIGKILLed with unflushed entries came back in its old term
    /// and one replica's state diverged.
    #[test]
    fn a_restarted_leader_must_win_a_new_term() {
        let args = ServerArgs { node_id: Some(1), cluster_secret: Some("s3cret".into()), ..Default::default() };
        let config = ServerConfig::resolve(args, None).unwrap();
        let raft = raft_config(&config).unwrap();
        assert_eq!(raft.enable_leader_restore, Some(false), "openraft must not restore a restarted leader");
    }
}
