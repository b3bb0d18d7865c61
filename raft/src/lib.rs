//! # taskraft-raft: openraft glue over HTTP
//!
//! This crate carries Raft messages between taskraft replicas. It is generic over the
//! openraft type config (`C`) and knows nothing about tasks: the scheduler lives in the
//! `taskraft` package, which plugs its state machine into openraft and uses this crate to
//! talk to peers.
//!
//! The path of one `AppendEntries` RPC:
//! 1. openraft's replication task asks [`HttpNetworkFactory`] for a client to a peer
//!    ([`Member::raft_addr`]). The client holds one HTTP/1.1 connection to that peer and the
//!    replication task itself writes each request and reads its answer (no pool, no
//!    connection task: see `conn.rs` for why and for the rules). Sockets are bound to this
//!    node's own IP so that chaos tests can cut links between nodes that live on distinct
//!    loopback addresses.
//! 2. The request is encoded as a version byte followed by postcard ([`wire`]), sent as
//!    `POST /raft/append` with the cluster secret in the `x-taskraft-secret` header and a
//!    timeout taken from openraft's [`openraft::network::RPCOption`].
//! 3. The peer's [`raft_router`] checks the secret (401 and a log line otherwise), decodes the
//!    body, hands it to its local `Raft` handle and encodes the `Result` back.
//! 4. Connection failures become [`openraft::errors::Unreachable`] (openraft backs off);
//!    timeouts and bad answers become network errors; a remote Raft error is passed through.
//!
//! With TLS ([`NetworkOptions::tls`]) the same requests go over `https` with mutual TLS: the
//! client presents its replica certificate, and the listener (served by the product, which
//! owns the sockets) admits only peers whose certificate the cluster CA signed — the secret
//! header is then a second check, not the only one.
//!
//! What it deliberately does not do: bind or serve sockets (the product does), chunked snapshots
//! (snapshots are sent whole with `full_snapshot`, which fits a scheduler's state), and retries
//! (openraft owns retries and backoff). The one exception: an RPC on a kept connection that the
//! peer had closed meanwhile is sent once more on a fresh one, as HTTP clients do.

mod client;
mod conn;
mod error;
mod member;
mod server;
pub mod wire;

pub use client::DEFAULT_POOL_IDLE;
pub use client::HttpNetwork;
pub use client::HttpNetworkFactory;
pub use client::NetworkOptions;
pub use error::Error;
pub use error::Result;
pub use member::Member;
pub use server::SECRET_HEADER;
pub use server::raft_router;
