//! `taskraft cluster …`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use serde_json::json;

use super::ClientArgs;
use super::Output;
use super::output::print_json;
use super::output::print_table;
use crate::client::Client;
use crate::client::ClientError;
use crate::client::ClientOptions;
use crate::node::membership::ADD_MEMBER_TIMEOUT;
use crate::proto::cluster::ClusterStatus;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCmd {
    /// Start a new cluster on a fresh replica (the one at the first --addr).
    Init {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show leader, term, pid and log position as seen by each replica: the given --addr ones
    /// and every other member they name (each asked directly, 1 s at most).
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

/// How long `cluster status` waits for one replica's answer.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

const STATUS_HEADER: [&str; 8] = ["ADDR", "NODE", "PID", "ROLE", "LEADER", "TERM", "COMMITTED", "APPLIED"];

/// One replica's `GET /v1/cluster`, or why there is none.
struct ReplicaStatus {
    /// Its API address, without `http://`.
    addr: String,
    /// Its id when a member list named it (the answer itself has `node_id`).
    known_id: Option<u64>,
    status: Result<ClusterStatus, ClientError>,
}

fn bare(addr: &str) -> String {
    addr.trim().trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_string()
}

/// Asks the replica at `addr` alone (no failover to another one: its own pid is wanted).
async fn status_of(addr: String, known_id: Option<u64>, options: &ClientOptions) -> ReplicaStatus {
    let status = match Client::with_options(vec![addr.clone()], options) {
        Ok(c) => c.with_timeout(STATUS_TIMEOUT).cluster_status().await,
        Err(e) => Err(e),
    };
    ReplicaStatus { addr: bare(&addr), known_id, status }
}

/// The status of every replica given with `--addr`, then of every other member their answers
/// name (by its `api_addr`); each group is asked concurrently. A replica answers with its own
/// `pid` only, so each one is asked directly.
async fn gather_status(addrs: &[String], options: &ClientOptions) -> Vec<ReplicaStatus> {
    let mut all = futures::future::join_all(addrs.iter().map(|a| status_of(a.clone(), None, options))).await;
    let answered: BTreeSet<u64> = all.iter().filter_map(|r| r.status.as_ref().ok().map(|s| s.node_id)).collect();
    let asked: BTreeSet<String> = all.iter().map(|r| r.addr.clone()).collect();
    let mut others: BTreeMap<u64, String> = BTreeMap::new();
    for s in all.iter().filter_map(|r| r.status.as_ref().ok()) {
        for m in &s.members {
            if !answered.contains(&m.id) && !asked.contains(&bare(&m.api_addr)) {
                others.entry(m.id).or_insert_with(|| m.api_addr.clone());
            }
        }
    }
    all.extend(futures::future::join_all(others.into_iter().map(|(id, api)| status_of(api, Some(id), options))).await);
    all
}

/// An optional number of a status answer, `-` when absent.
fn field(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The `cluster status` table rows ([`STATUS_HEADER`]).
fn status_rows(all: &[ReplicaStatus]) -> Vec<Vec<String>> {
    all.iter()
        .map(|r| match &r.status {
            Ok(s) => vec![
                r.addr.clone(),
                s.node_id.to_string(),
                s.pid.to_string(),
                s.role.as_str().into(),
                field(s.leader_id),
                s.term.to_string(),
                field(s.committed),
                field(s.last_applied),
            ],
            Err(e) => {
                let why = match e {
                    ClientError::Unavailable(_) => "unreachable".to_string(),
                    other => other.to_string(),
                };
                let node = r.known_id.map_or("-".to_string(), |id| id.to_string());
                let mut row = vec![r.addr.clone(), node, "-".into(), why];
                row.resize(STATUS_HEADER.len(), "-".into());
                row
            }
        })
        .collect()
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

impl ClusterCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            ClusterCmd::Init { client } => {
                let first = client.addr.first().cloned().unwrap_or_default();
                let status = Client::with_options(vec![first.clone()], &client.options()?)?.init().await?;
                if client.output == Output::Json {
                    print_json(&status);
                } else {
                    println!(
                        "initialized a new cluster on {first}; add replicas with `taskraft cluster add` or start them with join = [\"{first}\"]"
                    );
                }
            }
            ClusterCmd::Status { client } => {
                let all = gather_status(&client.addr, &client.options()?).await;
                if client.output == Output::Json {
                    let v: Vec<Value> = all
                        .iter()
                        .map(|r| match &r.status {
                            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                            Err(e) => json!({"addr": r.addr, "node_id": r.known_id, "error": e.to_string()}),
                        })
                        .collect();
                    print_json(&v);
                } else {
                    print_table(&STATUS_HEADER, &status_rows(&all));
                }
            }
            ClusterCmd::Members { client } => {
                let status = client.connect()?.cluster_status().await?;
                print_members(&status, client.output);
            }
            ClusterCmd::Add { id, api_addr, raft_addr, client } => {
                let c = client.connect()?.with_timeout(ADD_MEMBER_TIMEOUT + Duration::from_secs(10));
                let status = c.add_member(id, &api_addr, &raft_addr).await?;
                print_members(&status, client.output);
            }
            ClusterCmd::Remove { id, client } => {
                let status = client.connect()?.remove_member(id).await?;
                print_members(&status, client.output);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use axum::Json;
    use axum::Router;
    use axum::routing::get;

    use super::*;

    /// A fake replica answering `GET /v1/cluster` with `answer(its own address)`.
    async fn replica(answer: impl Fn(&str) -> Value + Send + Sync + 'static) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let body = answer(&addr);
        let app = Router::new().route("/v1/cluster", get(move || std::future::ready(Json(body.clone()))));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    /// An address nothing listens on.
    async fn dead_addr() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    }

    fn answer(node_id: u64, pid: u32, members: &[(u64, &str)]) -> Value {
        let members: Vec<Value> = members
            .iter()
            .map(|(id, api)| json!({"id": id, "api_addr": api, "raft_addr": "127.0.0.1:1", "voter": true}))
            .collect();
        json!({
            "node_id": node_id, "pid": pid, "role": if node_id == 1 { "leader" } else { "follower" },
            "leader_id": 1, "term": 4, "committed": 17, "last_applied": 17, "members": members,
        })
    }

    #[tokio::test]
    async fn status_shows_the_pid_of_every_member_asked_directly() {
        let dead = dead_addr().await;
        let second = replica(|_| answer(2, 2222, &[])).await;
        let (second2, dead2) = (second.clone(), dead.clone());
        let first = replica(move |me| answer(1, 1111, &[(1, me), (2, &second2), (3, &dead2)])).await;
        // Only the first replica is given: the others are found in its member list.
        let all = gather_status(&[format!("http://{first}")], &ClientOptions::default()).await;
        let rows = status_rows(&all);
        assert_eq!(
            rows,
            vec![
                vec![
                    first.clone(),
                    "1".into(),
                    "1111".into(),
                    "leader".into(),
                    "1".into(),
                    "4".into(),
                    "17".into(),
                    "17".into()
                ],
                vec![
                    second.clone(),
                    "2".into(),
                    "2222".into(),
                    "follower".into(),
                    "1".into(),
                    "4".into(),
                    "17".into(),
                    "17".into()
                ],
                vec![
                    dead.clone(),
                    "3".into(),
                    "-".into(),
                    "unreachable".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into()
                ],
            ]
        );
    }

    #[tokio::test]
    async fn status_asks_each_replica_once_and_concurrently() {
        let (dead_a, dead_b) = (dead_addr().await, dead_addr().await);
        let second = replica(|_| answer(2, 2222, &[])).await;
        let (second2, dead2) = (second.clone(), dead_a.clone());
        let first = replica(move |me| answer(1, 1111, &[(1, me), (2, &second2), (3, &dead2)])).await;
        let started = std::time::Instant::now();
        let all =
            gather_status(&[first.clone(), second.clone(), dead_a.clone(), dead_b.clone()], &ClientOptions::default())
                .await;
        // Two unreachable replicas, each given STATUS_TIMEOUT: asked one after the other they
        // would take twice as long.
        assert!(started.elapsed() < STATUS_TIMEOUT * 2, "took {:?}", started.elapsed());
        let addrs: Vec<&str> = all.iter().map(|r| r.addr.as_str()).collect();
        assert_eq!(addrs, [first.as_str(), second.as_str(), dead_a.as_str(), dead_b.as_str()], "no replica twice");
        let rows = status_rows(&all);
        for row in &rows[2..] {
            assert_eq!(row[1..], ["-", "-", "unreachable", "-", "-", "-", "-"]);
        }
    }
}
