//! The first admin token of a cluster with auth on.
//!
//! A cluster with auth on refuses every request without a token, so its first token cannot be
//! made through the API. It comes from the replica that bootstraps the cluster:
//! 1. At start, [`source`] finds the token: `admin_token` (flag or environment), else the
//!    file `admin_token_file` (default `DATA_DIR/admin-token`), else a fresh one written to
//!    that file (mode 0600) and printed once on stderr. Never logged.
//! 2. [`ensure`] waits until this replica leads a cluster whose state holds no token at all,
//!    then commits `CreateToken` for it (name `bootstrap-admin`). Once any token exists it
//!    stops: a restart with the same file changes nothing, and a revoked bootstrap token is
//!    not brought back while other tokens exist.
//!
//! Because the token is on disk before the cluster exists, a crash between bootstrap and the
//! commit loses nothing: the next start finds the file and commits it then.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use openraft::rt::watch::WatchReceiver;
use tokio::time::Instant;

use super::Node;
use crate::proto::tokens::CreateToken;
use crate::proto::tokens::generate_token;
use crate::proto::tokens::token_key;
use crate::proto::tokens::token_record;
use crate::scheduler::Command;
use crate::scheduler::Response;
use crate::scheduler::Role;

/// Name of the bootstrap admin token in `token list`.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

/// The admin token this replica commits if it bootstraps a cluster with auth on, or `None`
/// when it has none to commit (auth off, or not a bootstrapping replica).
pub fn source(config: &crate::config::ServerConfig) -> std::io::Result<Option<String>> {
    if !config.auth {
        return Ok(None);
    }
    if let Some(t) = &config.admin_token {
        return Ok(Some(t.clone()));
    }
    let path = &config.admin_token_file;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim().to_string();
            if token_key(&token).is_none() {
                return Err(std::io::Error::other(format!(
                    "{} does not hold a taskraft token (trk_<16 hex>_<secret>)",
                    path.display()
                )));
            }
            Ok(Some(token))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && config.bootstrap => {
            let token = generate_token();
            write_secret(path, &token)?;
            // The one place the secret is shown: the operator's terminal, not the log.
            eprintln!(
                "\ntaskraft: the cluster's first admin token (shown once; also in {}):\n\n    {token}\n\n\
                 Use it with `export TASKRAFT_TOKEN=…` or `--token-file {}`; create narrower tokens with \
                 `taskraft token create`.\n",
                path.display(),
                path.display()
            );
            tracing::info!(file = %path.display(), "wrote the bootstrap admin token");
            Ok(Some(token))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(std::io::Error::other(format!("reading {}: {e}", path.display()))),
    }
}

/// Writes a secret to a new file readable by its owner only.
pub fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(f, "{secret}")?;
    f.sync_all()
}

/// Commits `token` as the bootstrap admin token once this replica leads a cluster without any
/// token. Returns when a token exists (or on shutdown, via the caller's select).
pub async fn ensure(node: &Node, token: String) {
    let mut changes = node.view.subscribe();
    let mut metrics = node.metrics.clone();
    loop {
        if node.view.read(|a| a.state.tokens().next().is_some()) {
            return;
        }
        if node.is_leader() && node.leader.is_ready() {
            let req = CreateToken { name: BOOTSTRAP_TOKEN_NAME.into(), role: Role::Admin, worker_id: None };
            let record = token_record(&token, &req, crate::util::now_ms()).expect("checked at start");
            let cmd = Command::CreateToken { now_ms: record.created_ms, token: record };
            match node.write(cmd, Instant::now() + node.config.request_timeout).await {
                Ok(Response::Token { token, .. }) => {
                    tracing::info!(key = %token.key, "committed the bootstrap admin token");
                    return;
                }
                Ok(other) => {
                    tracing::error!(answer = ?other, "the cluster refused the bootstrap admin token");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "committing the bootstrap admin token failed; will retry"),
            }
        }
        // Wait for something to change: an applied entry, or a leadership change.
        tokio::select! {
            _ = changes.changed() => {}
            _ = metrics.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
