//! `taskraft server`: run one replica until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::ServerArgs;
use crate::config::ServerConfig;
use crate::config::load_file;
use crate::server::Server;

/// Run one replica. Settings come from flags, `TASKRAFT_*` variables and the TOML file, in
/// that order of precedence.
#[derive(Debug, clap::Args)]
pub struct ServerCmd {
    /// TOML config file; its keys are the long flag names with `_` (e.g. `node_id = 1`).
    #[arg(long, env = "TASKRAFT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    args: ServerArgs,
}

impl ServerCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        super::init_logging();
        let file = self.config.as_deref().map(load_file).transpose()?;
        let config = ServerConfig::resolve(self.args, file)?;
        if config.cluster_secret == crate::config::INSECURE_DEFAULT_SECRET {
            tracing::warn!("cluster_secret is not set: using the built-in default, fine for local testing only");
        }
        let span = tracing::info_span!("node", id = config.node_id);
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        async move {
            let server = Server::start(config, shutdown).await.context("starting the replica")?;
            server.run_until_shutdown().await.context("stopping the replica")?;
            Ok(ExitCode::SUCCESS)
        }
        .instrument(span)
        .await
    }
}

/// Cancels `token` on the first SIGINT or SIGTERM.
pub fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
        token.cancel();
    });
}
