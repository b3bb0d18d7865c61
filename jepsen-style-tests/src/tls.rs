//! TLS runs (`--tls`): the cluster under test speaks only TLS, with mutual TLS between replicas.
//!
//! 1. [`generate`] runs `taskraft tls init <run>/tls` with one certificate per possible replica
//!    id, each naming every replica address (so a membership change can start any id).
//! 2. [`crate::cluster`] writes `tls_cert`/`tls_key`/`tls_ca` into each replica's config and
//!    gives workers `--ca-file`.
//! 3. Every HTTP client of the harness is built by [`client_builder`], which trusts the run's CA
//!    while a TLS run is active, and every URL comes from [`url`], which says `https`.
//!
//! With `--auth` the same goes for the run's admin token ([`activate_auth`]): replicas run with
//! `auth = true`, workers and every harness client send the token.
//!
//! The active CA is process-wide because runs are sequential and dozens of call sites build
//! URLs and clients; [`activate`] swaps it at the start of each run (and clears it for a
//! plaintext run).

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::sync::RwLock;

use anyhow::Context;

use crate::cluster::MAX_REPLICA_ID;
use crate::cluster::replica_ip;

/// PEM of the active run's CA; `None`: plaintext.
static ACTIVE_CA: RwLock<Option<Vec<u8>>> = RwLock::new(None);
/// The active run's admin token (`--auth`); `None`: the cluster runs without auth.
static ACTIVE_TOKEN: RwLock<Option<String>> = RwLock::new(None);

/// With `--auth`: a fresh admin token for the run, written to `dir/admin-token`; every replica's
/// config names that file (whichever replica leads first commits it), the workers use it, and
/// every client of the harness sends it from now on. `None` clears it (a run without auth).
pub fn activate_auth(dir: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = dir else {
        *ACTIVE_TOKEN.write().expect("token lock") = None;
        return Ok(None);
    };
    let mut bytes = [0u8; 40];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let token = format!("trk_{}_{}", hex(&bytes[..8]), hex(&bytes[8..]));
    let file = dir.join("admin-token");
    std::fs::write(&file, format!("{token}\n")).context("writing the run's admin token")?;
    *ACTIVE_TOKEN.write().expect("token lock") = Some(token);
    Ok(Some(file))
}

/// Writes the run's certificates into `dir/tls` with `bin tls init`; returns that directory.
pub fn generate(bin: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let tls = dir.join("tls");
    let sans: Vec<String> = (1..=MAX_REPLICA_ID).map(|id| replica_ip(id).to_string()).collect();
    let out = Command::new(bin)
        .args(["tls", "init"])
        .arg(&tls)
        .args(["--replicas", &MAX_REPLICA_ID.to_string(), "--san", &sans.join(",")])
        .output()
        .with_context(|| format!("running {} tls init", bin.display()))?;
    anyhow::ensure!(out.status.success(), "tls init failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(tls)
}

/// Makes the CA in `tls_dir` the one every client trusts from now on (`None`: plaintext).
pub fn activate(tls_dir: Option<&Path>) -> anyhow::Result<()> {
    let pem = match tls_dir {
        Some(d) => Some(std::fs::read(d.join("ca.pem")).context("reading the run's CA")?),
        None => None,
    };
    *ACTIVE_CA.write().expect("ca lock") = pem;
    Ok(())
}

/// `https` during a TLS run, else `http`.
pub fn scheme() -> &'static str {
    if ACTIVE_CA.read().expect("ca lock").is_some() { "https" } else { "http" }
}

/// `scheme://addr{path}`.
pub fn url(addr: &str, path: &str) -> String {
    format!("{}://{addr}{path}", scheme())
}

/// A reqwest builder that trusts only the active CA during a TLS run, and sends the run's
/// admin token during an `--auth` run.
pub fn client_builder() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder();
    if let Some(token) = ACTIVE_TOKEN.read().expect("token lock").as_deref() {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii token");
        value.set_sensitive(true);
        let headers = reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
        builder = builder.default_headers(headers);
    }
    match ACTIVE_CA.read().expect("ca lock").as_deref() {
        Some(pem) => {
            let ca = reqwest::Certificate::from_pem(pem).expect("tls init writes a valid CA");
            builder.tls_built_in_root_certs(false).add_root_certificate(ca)
        }
        None => builder,
    }
}
