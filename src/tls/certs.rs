//! Reading PEM files into what rustls wants: certificate chains, private keys, root stores.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;

use super::TlsError;

fn file_err(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), message: message.to_string() }
}

/// Every certificate of a PEM file, in file order (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, format!("no usable private key: {e}")))
}

/// The CA certificate(s) of a PEM file as a root store.
pub fn load_ca(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| file_err(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A certificate chain with its key, checked to belong together.
pub fn certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let certified = CertifiedKey::from_der(chain, key_der, &super::provider())
        .map_err(|e| file_err(key, format!("does not fit {}: {e}", cert.display())))?;
    Ok(Arc::new(certified))
}
