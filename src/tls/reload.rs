//! The replica's certificate, swappable while connections keep arriving.
//!
//! rustls asks a resolver for the certificate on every handshake, so holding it behind a lock
//! and swapping it is all a reload takes. A reload re-reads both files and swaps only if they
//! parse and the key fits the certificate: a half-written or mismatched pair is logged and
//! the old certificate stays in service.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::SystemTime;

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::ClientHello;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use super::TlsError;
use super::certs::certified_key;

/// This replica's certificate and key, served to clients and presented to peers.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of (cert, key) when last loaded, to notice changed files.
    loaded_mtimes: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

fn mtimes(cert: &std::path::Path, key: &std::path::Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(cert), m(key))
}

impl ReloadableCert {
    /// Loads the pair; an error here stops the replica from starting.
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsError> {
        let stamps = mtimes(&cert_path, &key_path);
        let current = certified_key(&cert_path, &key_path)?;
        Ok(Self { cert_path, key_path, current: RwLock::new(current), loaded_mtimes: RwLock::new(stamps) })
    }

    /// The certificate in service.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().expect("cert lock").clone()
    }

    /// Re-reads the files and swaps the certificate in if they are usable; otherwise keeps
    /// the old one. Both outcomes are logged.
    pub fn reload(&self, why: &str) -> Result<(), TlsError> {
        let stamps = mtimes(&self.cert_path, &self.key_path);
        *self.loaded_mtimes.write().expect("mtime lock") = stamps;
        match certified_key(&self.cert_path, &self.key_path) {
            Ok(fresh) => {
                let same = fresh.cert == self.current().cert;
                *self.current.write().expect("cert lock") = fresh;
                tracing::info!(cert = %self.cert_path.display(), why, unchanged = same, "reloaded the TLS certificate");
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    cert = %self.cert_path.display(), why, error = %e,
                    "TLS certificate reload failed; still serving the previous certificate"
                );
                Err(e)
            }
        }
    }

    /// True when either file's modification time differs from when it was last read.
    fn files_changed(&self) -> bool {
        mtimes(&self.cert_path, &self.key_path) != *self.loaded_mtimes.read().expect("mtime lock")
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadableCert {
    fn resolve(&self, _root_hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Reloads `cert` on SIGHUP and when its files change (checked every `poll`), until
/// `shutdown`.
pub async fn run_reloader(cert: Arc<ReloadableCert>, poll: std::time::Duration, shutdown: CancellationToken) {
    {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGHUP; certificates reload by file polling only");
                None
            }
        };
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hup => { let _ = cert.reload("SIGHUP"); }
                _ = tick.tick() => {
                    if cert.files_changed() {
                        let _ = cert.reload("file changed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::init;

    #[test]
    fn a_bad_new_pair_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let set = init::write_cluster(dir.path(), &init::InitOptions::default()).unwrap();
        let (cert, key) = set.replicas[0].clone();
        let store = ReloadableCert::load(cert.clone(), key.clone()).unwrap();
        let before = store.current();
        // A key that belongs to another certificate: refused, the old pair stays.
        std::fs::copy(&set.replicas[1].1, &key).unwrap();
        assert!(store.reload("test").is_err());
        assert_eq!(store.current().cert, before.cert);
        // Garbage: refused too.
        std::fs::write(&cert, "not a pem").unwrap();
        assert!(store.reload("test").is_err());
        assert_eq!(store.current().cert, before.cert);
        // The other replica's full pair: swapped in.
        std::fs::copy(&set.replicas[1].0, &cert).unwrap();
        store.reload("test").unwrap();
        assert_ne!(store.current().cert, before.cert);
    }
}
