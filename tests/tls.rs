//! End-to-end tests of TLS: a cluster whose replicas, workers and clients speak only TLS,
//! mutual TLS between replicas, and certificate reload without a restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestCluster;
use common::eventually;
use taskraft::scheduler::TaskState;

/// A reqwest client trusting `ca` and presenting `identity` (cert, key) if given.
fn tls_http(ca: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let roots = std::sync::Arc::new(taskraft::tls::load_ca(ca).unwrap());
    let builder = rustls::ClientConfig::builder_with_provider(taskraft::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let chain = taskraft::tls::load_certs(cert).unwrap();
            let key = rustls::pki_types::pem::PemObject::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .tls_info(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Runs the `taskraft` CLI with the cluster's CA; its stdout, parsed as JSON.
fn cli(cluster: &TestCluster, args: &[&str]) -> serde_json::Value {
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.api_addr.clone()).collect();
    let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(&args[..split])
        .args(["--addr", &addrs.join(","), "--output", "json"])
        .env("TASKRAFT_CA_FILE", cluster.ca_file().unwrap())
        .args(&args[split..])
        .output()
        .unwrap();
    assert!(out.status.success(), "taskraft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_forms_runs_work_and_refuses_plaintext_and_uncertified_peers() {
    // Forming needs joins (API), votes and appends (Raft, mutual TLS) to work over TLS.
    // A short worker lease: a worker whose heartbeats fail loses its attempt within a second.
    let mut cluster = TestCluster::start_tls(3, &["--worker-ttl-ms", "900"]).await;
    let tls = cluster.tls_dir.clone().unwrap();
    cluster.add_worker("w1", 2, &[]);
    cluster.wait_workers(1).await;

    // Submitted through the CLI at every replica (followers forward to the leader over TLS),
    // run by a worker that talks TLS, read back through the typed client.
    let client = cluster.client();
    // It outlives the lease, so it succeeds in one attempt only if the worker's heartbeats
    // reach the cluster over TLS too.
    let t = cli(&cluster, &["task", "submit", "--", "sh", "-c", "sleep 1.5; echo over-tls"]);
    let done = client.wait(t["id"].as_u64().unwrap(), Duration::from_secs(30)).await.unwrap();
    assert_eq!((done.state, done.attempts.len()), (TaskState::Succeeded, 1), "{done:?}");
    let listed = cli(&cluster, &["task", "list"]);
    assert!(listed.to_string().contains(&format!("\"id\":{}", done.id)), "{listed}");
    // Linearizable reads on a follower ask the leader for a read index over TLS.
    for n in &cluster.nodes {
        let got = n.client().get_task(done.id, false).await.unwrap();
        assert_eq!(got.state, TaskState::Succeeded);
    }

    let api = &cluster.nodes[0].api_addr;
    let raft = &cluster.nodes[0].raft_addr;
    // Plaintext is refused on both listeners: the handshake fails, no HTTP answer comes back.
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for addr in [api, raft] {
        let res = plain.get(format!("http://{addr}/health")).send().await;
        assert!(res.is_err(), "plaintext to {addr} got an answer: {res:?}");
    }
    // The API over TLS with only the CA: fine (clients authenticate by token, not certificate).
    let ca = tls.join("ca.pem");
    let resp = tls_http(&ca, None).get(format!("https://{api}/health")).send().await.unwrap();
    assert!(resp.status().is_success());

    // A would-be peer without a client certificate, or with one from another CA, is refused
    // by the Raft listener during the handshake.
    let body = taskraft_raft::wire::encode(&()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let foreign = taskraft::tls::init::write_cluster(other.path(), &Default::default()).unwrap();
    let strangers = [tls_http(&ca, None), tls_http(&ca, Some((&foreign.replicas[0].0, &foreign.replicas[0].1)))];
    for stranger in &strangers {
        let res = stranger
            .post(format!("https://{raft}/raft/clock"))
            .header(taskraft_raft::SECRET_HEADER, "test-secret")
            .body(body.clone())
            .send()
            .await;
        assert!(res.is_err(), "an uncertified peer reached the raft listener: {res:?}");
    }
    // A replica certificate of the cluster CA gets through to the application (control case).
    let peer = tls_http(&ca, Some((&tls.join("replica-2.pem"), &tls.join("replica-2-key.pem"))));
    let resp = peer
        .post(format!("https://{raft}/raft/clock"))
        .header(taskraft_raft::SECRET_HEADER, "test-secret")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// The DER of the certificate the API at `addr` serves on a fresh connection.
async fn served_cert(ca: &Path, addr: &str) -> Option<Vec<u8>> {
    let resp = tls_http(ca, None).get(format!("https://{addr}/health")).send().await.ok()?;
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>()?;
    info.peer_certificate().map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_a_bad_one_keeps_the_old() {
    let cluster = TestCluster::start_tls(1, &[]).await;
    let tls = cluster.tls_dir.clone().unwrap();
    let ca = tls.join("ca.pem");
    let node = &cluster.nodes[0];
    let first = taskraft::tls::load_certs(&tls.join("replica-1.pem")).unwrap()[0].to_vec();
    assert_eq!(served_cert(&ca, &node.api_addr).await, Some(first.clone()));

    // A new certificate from the same CA (another key, so another serial) replaces the files.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskraft"))
        .args(["tls", "issue"])
        .arg(&tls)
        .arg("replica-1-next")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::copy(tls.join("replica-1-next-key.pem"), tls.join("replica-1-key.pem")).unwrap();
    std::fs::copy(tls.join("replica-1-next.pem"), tls.join("replica-1.pem")).unwrap();
    let next = taskraft::tls::load_certs(&tls.join("replica-1.pem")).unwrap()[0].to_vec();
    assert_ne!(next, first);
    unsafe { libc::kill(node.pid(), libc::SIGHUP) };
    eventually("the new certificate served", Duration::from_secs(10), || async {
        (served_cert(&ca, &node.api_addr).await? == next).then_some(())
    })
    .await;
    // The replica lives on and still answers through the typed client.
    node.client().cluster_status().await.unwrap();

    // A broken certificate file: logged, and the previous certificate stays in service.
    std::fs::write(tls.join("replica-1.pem"), "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    unsafe { libc::kill(node.pid(), libc::SIGHUP) };
    eventually("the failed reload logged", Duration::from_secs(10), || async {
        let log = std::fs::read_to_string(&node.log).ok()?;
        log.contains("TLS certificate reload failed").then_some(())
    })
    .await;
    assert_eq!(served_cert(&ca, &node.api_addr).await, Some(next));
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(log.contains("reloaded the TLS certificate"), "{log}");
}
