//! `taskraft cluster …`.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::ClientArgs;
use super::Output;
use super::output::print_json;
use super::output::print_table;
use crate::client::Client;
use crate::node::membership::ADD_MEMBER_TIMEOUT;

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

fn print_members(status: &Value, output: Output) {
    if output == Output::Json {
        return print_json(status);
    }
    let leader = status["leader_id"].as_u64();
    let rows: Vec<Vec<String>> = status["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    let id = m["id"].as_u64().unwrap_or(0);
                    let role = if Some(id) == leader {
                        "leader"
                    } else if m["voter"].as_bool() == Some(true) {
                        "voter"
                    } else {
                        "learner"
                    };
                    vec![
                        id.to_string(),
                        role.into(),
                        m["api_addr"].as_str().unwrap_or("").into(),
                        m["raft_addr"].as_str().unwrap_or("").into(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    print_table(&["ID", "ROLE", "API", "RAFT"], &rows);
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
                let all = Client::new(client.addr.clone())?.cluster_status_all().await;
                if client.output == Output::Json {
                    let v: Vec<Value> = all
                        .iter()
                        .map(|(a, r)| match r {
                            Ok(s) => s.clone(),
                            Err(e) => serde_json::json!({"addr": a, "error": e.to_string()}),
                        })
                        .collect();
                    print_json(&v);
                } else {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|(a, r)| match r {
                            Ok(s) => vec![
                                a.trim_start_matches("http://").into(),
                                s["node_id"].to_string(),
                                s["role"].as_str().unwrap_or("?").into(),
                                s["leader_id"].to_string(),
                                s["term"].to_string(),
                                s["committed"].to_string(),
                                s["last_applied"].to_string(),
                            ],
                            Err(e) => {
                                let why = match e {
                                    crate::client::ClientError::Unavailable(_) => "unreachable".to_string(),
                                    other => other.to_string(),
                                };
                                vec![
                                    a.trim_start_matches("http://").into(),
                                    "-".into(),
                                    why,
                                    "".into(),
                                    "".into(),
                                    "".into(),
                                    "".into(),
                                ]
                            }
                        })
                        .collect();
                    print_table(&["ADDR", "NODE", "ROLE", "LEADER", "TERM", "COMMITTED", "APPLIED"], &rows);
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
