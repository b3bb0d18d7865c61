//! # TLS: the cluster CA, replica certificates, and reloading them without a restart
//!
//! TLS is opt-in: a replica with `tls_cert`, `tls_key` and `tls_ca` set speaks only TLS, on
//! both of its listeners, and every client of it must trust the cluster CA. rustls with the
//! **ring** provider only (aws-lc-rs is kept out of the tree; `.ci/run` checks it).
//!
//! The path of a connection to a replica with TLS on:
//! 1. The accept loop ([`crate::listener`]) hands the TCP stream to a rustls acceptor, within
//!    the header read timeout (a client that never finishes its handshake holds a connection
//!    slot no longer than a client that never finishes its request head).
//! 2. The certificate presented is whatever [`ReloadableCert`] holds *right now*: it is read
//!    per handshake, so a reload (SIGHUP, or a changed file noticed by polling) takes effect on
//!    the next connection while open ones keep their session.
//! 3. On the public API no client certificate is asked for (clients authenticate by token).
//!    On the Raft listener the peer **must** present a certificate signed by the cluster CA
//!    (mutual TLS): a process without one cannot even reach the cluster-secret check.
//! 4. Outbound, every replica-to-replica call (Raft RPCs, forwarding to the leader, joins,
//!    read-index and clock probes) trusts only the cluster CA and presents the replica's own
//!    certificate, which therefore carries both the serverAuth and clientAuth usages.
//!
//! `taskraft tls init DIR` ([`init`]) writes a CA and certificates for a local cluster;
//! `taskraft tls issue` signs more from the same CA (a new replica, a rotation).
//!
//! What it deliberately does not do: reload the CA (trust changes need a restart), revocation
//! lists or OCSP, client certificates on the public API, and any built-in root store (a TLS
//! client of taskraft trusts exactly the CA file it is given).

mod certs;
mod context;
pub mod init;
mod reload;

pub use self::certs::load_ca;
pub use self::certs::load_certs;
pub use self::context::TlsContext;
pub use self::context::client_config;
pub use self::reload::ReloadableCert;
pub use self::reload::run_reloader;

use std::path::PathBuf;
use std::sync::Arc;

/// How often the certificate and key files are checked for a change (besides SIGHUP).
pub const RELOAD_POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a replica's TLS material lives (all three or none are configured).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain of this replica, leaf first (serverAuth + clientAuth).
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA certificate(s) trusted for peers and presented to clients as the cluster CA.
    pub ca: PathBuf,
}

/// A TLS file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read or holds no usable PEM.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// rustls refused the material (key does not match the certificate, bad CA, …).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from the CA.
    #[error("tls: client verifier: {0}")]
    Verifier(String),
    /// Generating a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The one crypto provider of the process: ring.
// rustls 0.23.48 deprecates ring's provider because it lacks post-quantum key exchange; the
// design fixes ring (aws-lc-rs, which has it, is kept out of the build).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
