//! Certificates for a local cluster (`taskraft tls init`, `taskraft tls issue`), made with rcgen.
//!
//! `init` writes into one directory:
//!
//! | file                                  | what                                                        |
//! |---------------------------------------|-------------------------------------------------------------|
//! | `ca.pem`, `ca-key.pem`                | the cluster CA (`tls_ca` of every replica, `--ca-file`)     |
//! | `replica-N.pem`, `replica-N-key.pem`  | replica N: serverAuth + clientAuth (`tls_cert`, `tls_key`)  |
//! | `worker.pem`, `worker-key.pem`        | clientAuth only, for worker hosts                            |
//! | `client.pem`, `client-key.pem`        | clientAuth only, for operators' tools                        |
//!
//! Replica certificates name `localhost`, `127.0.0.1` and `::1` plus any `--san`. Key files are
//! created mode 0600. An existing CA is never overwritten without `force`: every certificate
//! issued from it would stop being trusted.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;

use rcgen::BasicConstraints;
use rcgen::Certificate;
use rcgen::CertificateParams;
use rcgen::DistinguishedName;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;

use super::TlsError;

/// Validity of the CA, from yesterday (so a slightly slow clock accepts it).
const CA_DAYS: i64 = 3650;
/// Validity of replica, worker and client certificates (the longest browsers still accept).
const LEAF_DAYS: i64 = 825;
/// Names every replica certificate carries.
const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// What `tls init` writes.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Replica certificates `replica-1` … `replica-N`.
    pub replicas: u64,
    /// Extra subject alternative names (DNS names or IPs) of every replica certificate.
    pub sans: Vec<String>,
    /// Overwrite an existing CA (and everything else).
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self { replicas: 3, sans: Vec::new(), force: false }
    }
}

/// The files `tls init` wrote: `(certificate, key)` pairs.
#[derive(Debug, Clone)]
pub struct CertSet {
    /// The CA.
    pub ca: (PathBuf, PathBuf),
    /// Replica 1..=N.
    pub replicas: Vec<(PathBuf, PathBuf)>,
    /// The worker certificate.
    pub worker: (PathBuf, PathBuf),
    /// The client certificate.
    pub client: (PathBuf, PathBuf),
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A replica: serves TLS and is a client of its peers.
    Replica,
    /// A client only (worker, CLI, curl).
    Client,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), message: e.to_string() }
}

/// The civil date `days` after yesterday (so a slightly slow clock still accepts the
/// certificate), as rcgen wants it.
fn date(days_from_yesterday: i64) -> (i32, u8, u8) {
    use chrono::Datelike;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let day = chrono::DateTime::from_timestamp(now + (days_from_yesterday - 1) * 86_400, 0)
        .expect("a date within range")
        .date_naive();
    (day.year(), day.month() as u8, day.day() as u8)
}

fn validity(params: &mut CertificateParams, days: i64) {
    let (y, m, d) = date(0);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = date(days);
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "taskraft");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Writes `text` to `path`; `secret` files are created mode 0600. Refuses to replace an
/// existing file unless `overwrite`.
fn write_file(path: &Path, text: &str, secret: bool, overwrite: bool) -> Result<(), TlsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    if secret {
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io_err(path, e))?;
    if secret {
        // An overwritten file keeps its old mode: tighten it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| io_err(path, e))?;
    }
    file.write_all(text.as_bytes()).map_err(|e| io_err(path, e))
}

fn new_ca() -> Result<(Certificate, KeyPair), TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name("taskraft cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, CA_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert, key))
}

fn leaf(
    cn: &str,
    sans: Vec<String>,
    usage: Usage,
    ca: &Certificate,
    ca_key: &KeyPair,
) -> Result<(String, String), TlsError> {
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name = name(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match usage {
        Usage::Replica => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca, ca_key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn replica_sans(extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
    for s in extra {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    sans
}

fn pair_paths(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}-key.pem")))
}

/// Writes a new CA and the certificates of a local cluster into `dir` (created if missing).
pub fn write_cluster(dir: &Path, options: &InitOptions) -> Result<CertSet, TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let ca_paths = pair_paths(dir, "ca");
    if !options.force && (ca_paths.0.exists() || ca_paths.1.exists()) {
        return Err(io_err(
            &ca_paths.0,
            "a CA already exists here; certificates issued from it would stop being trusted. \
             Use `taskraft tls issue` to add certificates, or --force to start over",
        ));
    }
    let (ca, ca_key) = new_ca()?;
    write_file(&ca_paths.0, &ca.pem(), false, options.force)?;
    write_file(&ca_paths.1, &ca_key.serialize_pem(), true, options.force)?;
    let write_leaf = |stem: &str, cn: &str, sans: Vec<String>, usage| -> Result<(PathBuf, PathBuf), TlsError> {
        let (cert, key) = leaf(cn, sans, usage, &ca, &ca_key)?;
        let paths = pair_paths(dir, stem);
        write_file(&paths.0, &cert, false, options.force)?;
        write_file(&paths.1, &key, true, options.force)?;
        Ok(paths)
    };
    let sans = replica_sans(&options.sans);
    let replicas = (1..=options.replicas)
        .map(|i| write_leaf(&format!("replica-{i}"), &format!("taskraft replica {i}"), sans.clone(), Usage::Replica))
        .collect::<Result<Vec<_>, _>>()?;
    let worker = write_leaf("worker", "taskraft worker", Vec::new(), Usage::Client)?;
    let client = write_leaf("client", "taskraft client", Vec::new(), Usage::Client)?;
    Ok(CertSet { ca: ca_paths, replicas, worker, client })
}

/// Signs one more certificate `dir/<stem>.pem` (+ key) with the CA in `dir`.
pub fn issue(
    dir: &Path,
    stem: &str,
    cn: &str,
    extra_sans: &[String],
    usage: Usage,
    overwrite: bool,
) -> Result<(PathBuf, PathBuf), TlsError> {
    let (ca_path, ca_key_path) = pair_paths(dir, "ca");
    let ca_pem = std::fs::read_to_string(&ca_path).map_err(|e| io_err(&ca_path, e))?;
    let ca_key_pem = std::fs::read_to_string(&ca_key_path).map_err(|e| io_err(&ca_key_path, e))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    // rcgen signs with a Certificate value: rebuild one from the CA's own fields and key.
    let ca = CertificateParams::from_ca_cert_pem(&ca_pem)?.self_signed(&ca_key)?;
    let sans = match usage {
        Usage::Replica => replica_sans(extra_sans),
        Usage::Client => extra_sans.to_vec(),
    };
    let (cert, key) = leaf(cn, sans, usage, &ca, &ca_key)?;
    let paths = pair_paths(dir, stem);
    write_file(&paths.0, &cert, false, overwrite)?;
    write_file(&paths.1, &key, true, overwrite)?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use rustls::client::danger::ServerCertVerifier;

    use super::*;

    #[test]
    fn init_writes_private_keys_0600_and_refuses_to_replace_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let set = write_cluster(dir.path(), &InitOptions::default()).unwrap();
        assert_eq!(set.replicas.len(), 3);
        for (_, key) in set.replicas.iter().chain([&set.ca, &set.worker, &set.client]) {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let err = write_cluster(dir.path(), &InitOptions::default()).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        let ca_before = std::fs::read(&set.ca.0).unwrap();
        write_cluster(dir.path(), &InitOptions { force: true, ..Default::default() }).unwrap();
        assert_ne!(std::fs::read(&set.ca.0).unwrap(), ca_before);
    }

    #[test]
    fn certificates_chain_to_the_ca_and_name_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let set =
            write_cluster(dir.path(), &InitOptions { sans: vec!["10.0.0.7".into()], ..Default::default() }).unwrap();
        let issued = issue(dir.path(), "replica-4", "taskraft replica 4", &[], Usage::Replica, false).unwrap();
        let roots = std::sync::Arc::new(crate::tls::load_ca(&set.ca.0).unwrap());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, crate::tls::provider()).build().unwrap();
        let now = rustls::pki_types::UnixTime::now();
        for (cert, _) in [&set.replicas[0], &issued] {
            let chain = crate::tls::load_certs(cert).unwrap();
            for name in ["localhost", "127.0.0.1"] {
                let name = rustls::pki_types::ServerName::try_from(name).unwrap();
                verifier.verify_server_cert(&chain[0], &[], &name, &[], now).unwrap();
            }
        }
        let chain = crate::tls::load_certs(&set.replicas[2].0).unwrap();
        let extra = rustls::pki_types::ServerName::try_from("10.0.0.7").unwrap();
        verifier.verify_server_cert(&chain[0], &[], &extra, &[], now).unwrap();
    }
}
