//! `taskraft cluster …`.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::ClientArgs;
use super::Output;
use super::output::print_json;
use super::output::print_table;
use crate::client::Client;
use crate::client::ClientError;
use crate::node::membership::ADD_MEMBER_TIMEOUT;
use crate::proto::cluster::ClusterStatus;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCmd {
    /// Start a new cluster on a fresh replica (the one at the first --addr).
    Init {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show leader, term and members as seen by each replica.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the members.
    Members {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Add a replica (started with an empty data dir): learner, catch up, voter.
    Add {
        /// New replica id, never used in this cluster before.
        id: u64,
        /// Its API address.
        #[arg(long)]
        api_addr: String,
        /// Its Raft address.
        #[arg(long)]
        raft_addr: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a replica for good (its id can never rejoin).
    Remove {
        /// Replica id.
        id: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn print_members(status: &ClusterStatus, output: Output) {
    if output == Output::Json {
        return print_json(status);
    }
    let rows: Vec<Vec<String>> = status
        .members
        .iter()
        .map(|m| {
            let role = if Some(m.id) == status.leader_id {
                "leader"
            } else if m.voter {
                "voter"
            } else {
                "learner"
            };
            vec![m.id.to_string(), role.into(), m.api_addr.clone(), m.raft_addr.clone()]
        })
        .collect();
    print_table(&["ID", "ROLE", "API", "RAFT"], &rows);
}

/// Every replica's own status: the given addresses, plus any member they name that was not
/// given (so each replica's pid is shown).
async fn status_of_all(addrs: Vec<String>) -> anyhow::Result<Vec<(String, Result<ClusterStatus, ClientError>)>> {
    let per_replica = Duration::from_secs(2);
    let mut all = Client::new(addrs)?.cluster_status_all(per_replica).await;
    let asked: Vec<String> = all.iter().map(|(a, _)| a.trim_start_matches("http://").to_string()).collect();
    let mut extra: Vec<String> = all
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .flat_map(|s| s.members.iter().map(|m| m.api_addr.clone()))
        .filter(|a| !asked.contains(a))
        .collect();
    extra.sort();
    extra.dedup();
    if !extra.is_empty() {
        all.extend(Client::new(extra)?.cluster_status_all(per_replica).await);
    }
    Ok(all)
}

impl ClusterCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ClusterCmd::Init { client } => {
                let first = client.addr.first().cloned().unwrap_or_default();
                let status = Client::new(vec![first.clone()])?.init().await?;
                if client.output == Output::Json {
                    print_json(&status);
                } else {
                    println!(
                        "initialized a new cluster on {first}; add replicas with `taskraft cluster add` or start them with join = [\"{first}\"]"
                    );
                }
            }
            ClusterCmd::Status { client } => {
                let all = status_of_all(client.addr.clone()).await?;
                if client.output == Output::Json {
                    let v: Vec<Value> = all
                        .iter()
                        .map(|(a, r)| match r {
                            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                            Err(e) => serde_json::json!({"addr": a, "error": e.to_string()}),
                        })
                        .collect();
                    print_json(&v);
                } else {
                    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|(a, r)| {
                            let addr = a.trim_start_matches("http://").to_string();
                            match r {
                                Ok(s) => vec![
                                    addr,
                                    s.node_id.to_string(),
                                    s.pid.to_string(),
                                    s.role.as_str().into(),
                                    opt(s.leader_id),
                                    s.term.to_string(),
                                    opt(s.committed),
                                    opt(s.last_applied),
                                ],
                                Err(e) => {
                                    let why = match e {
                                        ClientError::Unavailable(_) => "unreachable".to_string(),
                                        other => other.to_string(),
                                    };
                                    let mut row = vec![addr, "-".into(), "-".into(), why];
                                    row.resize(8, String::new());
                                    row
                                }
                            }
                        })
                        .collect();
                    print_table(&["ADDR", "NODE", "PID", "ROLE", "LEADER", "TERM", "COMMITTED", "APPLIED"], &rows);
                }
            }
            ClusterCmd::Members { client } => {
                let status = Client::new(client.addr.clone())?.cluster_status().await?;
                print_members(&status, client.output);
            }
            ClusterCmd::Add { id, api_addr, raft_addr, client } => {
                let c = Client::new(client.addr.clone())?.with_timeout(ADD_MEMBER_TIMEOUT + Duration::from_secs(10));
                let status = c.add_member(id, &api_addr, &raft_addr).await?;
                print_members(&status, client.output);
            }
            ClusterCmd::Remove { id, client } => {
                let status = Client::new(client.addr.clone())?.remove_member(id).await?;
                print_members(&status, client.output);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
