//! The rustls configurations of a replica, built once from its [`TlsFiles`].

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;

use super::ReloadableCert;
use super::TlsError;
use super::TlsFiles;
use super::certs::load_ca;
use super::provider;

/// A replica's TLS material: its (reloadable) certificate and the cluster CA.
#[derive(Debug)]
pub struct TlsContext {
    /// The certificate served on both listeners and presented to peers.
    pub identity: Arc<ReloadableCert>,
    roots: Arc<RootCertStore>,
}

impl TlsContext {
    /// Reads the certificate, key and CA; any problem is reported before the replica starts.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let identity = Arc::new(ReloadableCert::load(files.cert.clone(), files.key.clone())?);
        let roots = Arc::new(load_ca(&files.ca)?);
        Ok(Self { identity, roots })
    }

    /// The public API's server side: no client certificate asked for.
    pub fn api_server(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.identity.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The Raft listener's server side: the peer must present a certificate of the cluster CA.
    pub fn peer_server(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.identity.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client side of replica-to-replica calls: trusts the cluster CA only and presents
    /// this replica's certificate (reloaded with it).
    pub fn peer_client(&self) -> Result<ClientConfig, TlsError> {
        Ok(ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots.clone())
            .with_client_cert_resolver(self.identity.clone()))
    }
}

/// The client side for API clients (CLI, worker, bench, tests): trusts exactly the CA in
/// `ca_file`, presents no certificate.
pub fn client_config(ca_file: &Path) -> Result<ClientConfig, TlsError> {
    let roots = load_ca(ca_file)?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
