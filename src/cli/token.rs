//! `taskraft token …`: create, list and revoke API tokens (admin).

use std::process::ExitCode;

use super::ClientArgs;
use super::Output;
use super::output::print_json;
use super::output::print_table;
use crate::proto::tokens::CreateToken;
use crate::scheduler::Role;

/// API tokens: `create` shows a token's secret once; the cluster keeps only its hash.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (the only time its secret is shown).
    Create {
        /// Role: admin, operator, submitter, reader, or worker (with --worker-id).
        #[arg(long)]
        role: Role,
        /// Unique name of the holder (letters, digits, `. _ @ -`), e.g. `ci` or `worker-1`.
        #[arg(long)]
        name: String,
        /// For a worker token: the one worker id it may speak for.
        #[arg(long)]
        worker_id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens: key, name, role, bound worker, creation time. Never secrets.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token by key or name; requests carrying it are refused from then on.
    Revoke {
        /// The token's key (16 hex digits) or name.
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl TokenCmd {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            TokenCmd::Create { role, name, worker_id, client } => {
                let created = client.connect()?.create_token(&CreateToken { name, role, worker_id }).await?;
                if client.output == Output::Json {
                    print_json(&created);
                } else {
                    println!("{}", created.token);
                    eprintln!(
                        "created token {} ({}, {}); store it now: the cluster keeps only its hash",
                        created.info.key, created.info.name, created.info.role
                    );
                }
            }
            TokenCmd::List { client } => {
                let list = client.connect()?.list_tokens().await?;
                if client.output == Output::Json {
                    print_json(&list);
                } else {
                    let rows: Vec<Vec<String>> = list
                        .tokens
                        .iter()
                        .map(|t| {
                            vec![
                                t.key.clone(),
                                t.name.clone(),
                                t.role.to_string(),
                                t.worker_id.clone().unwrap_or_else(|| "-".into()),
                                crate::scheduler::calendar::rfc3339_utc(t.created_ms),
                            ]
                        })
                        .collect();
                    print_table(&["KEY", "NAME", "ROLE", "WORKER", "CREATED"], &rows);
                }
            }
            TokenCmd::Revoke { key, client } => {
                let gone = client.connect()?.revoke_token(&key).await?;
                if client.output == Output::Json {
                    print_json(&gone);
                } else {
                    println!("revoked token {} ({}, {})", gone.key, gone.name, gone.role);
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
