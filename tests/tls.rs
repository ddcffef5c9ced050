//! TLS and token authentication, with real processes: certificates from
//! `rdask certs new`, a scheduler and two workers of the `rdask` binary on
//! `tls://127.0.0.1`, clients in this process; plus refusals (plaintext
//! client, certificate from another CA, wrong token) after which the cluster
//! carries on, and `openssl s_client` as an independent TLS client.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rdask::builtins::{blob_len, inc, make_blob};
use rdask::{Client, ClientOptions, Security, SubmitOptions, TlsFiles};

mod common;
use common::*;

/// `rdask certs new DIR/name`, through the binary as an operator would.
fn certs_new(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new(rdask_bin())
        .args(["certs", "new"])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .expect("rdask certs new runs");
    assert!(status.success(), "rdask certs new failed");
    out
}

fn tls_args(certs: &Path, role: &str) -> Vec<String> {
    let p = |f: String| certs.join(f).to_string_lossy().into_owned();
    vec![
        "--tls-ca-file".into(),
        p("ca.pem".into()),
        "--tls-cert".into(),
        p(format!("{role}.pem")),
        "--tls-key".into(),
        p(format!("{role}-key.pem")),
    ]
}

fn files(ca_dir: &Path, cert_dir: &Path, role: &str) -> TlsFiles {
    TlsFiles {
        ca_file: ca_dir.join("ca.pem"),
        cert: cert_dir.join(format!("{role}.pem")),
        key: cert_dir.join(format!("{role}-key.pem")),
    }
}

/// A scheduler and workers w1, w2 as processes, all given `extra` flags
/// (per role).
struct Cluster {
    _procs: Vec<Proc>,
    address: String,
    workers: Vec<String>,
}

fn cluster(extra: impl Fn(&str) -> Vec<String>) -> Cluster {
    let (s, address) = start(
        Command::new(rdask_bin())
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"])
            .args(extra("scheduler")),
        "rdask scheduler listening on",
    );
    let mut procs = vec![s];
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let (w, addr) = start(
            Command::new(rdask_bin())
                .args(["worker", &address, "--nthreads", "1", "--name", name])
                .args(extra("worker")),
            "rdask worker",
        );
        procs.push(w);
        workers.push(addr);
    }
    Cluster {
        _procs: procs,
        address,
        workers,
    }
}

/// Computes a small map, and a dependency that must move from w1 to w2
/// over the workers' peer ports; the client gathers the large result from a
/// worker directly too.
fn computes_with_peer_to_peer(client: &Client, cluster: &Cluster) {
    wait_for_workers(client, 2);
    let xs = client.map(inc, 0..100i64).expect("map");
    let total: i64 = client.gather(&xs).expect("gather").iter().sum();
    assert_eq!(total, (1..=100).sum::<i64>());

    const N: u64 = 1_000_000;
    let blob = client
        .submit_with(
            make_blob,
            (N, 7u64),
            &SubmitOptions::default().workers(["w1"]).pure(false),
        )
        .expect("submit blob");
    let len = client
        .submit_with(
            blob_len,
            (&blob,),
            &SubmitOptions::default().workers(["w2"]).pure(false),
        )
        .expect("submit len");
    assert_eq!(len.result().expect("blob_len"), N);
    let w2 = client.worker_info(&cluster.workers[1]).expect("w2 info");
    assert!(
        w2.bytes_fetched_from_peers >= N,
        "w2 fetched {} bytes from peers",
        w2.bytes_fetched_from_peers
    );
    let data: rdask::Blob = blob.result().expect("gather blob from the worker");
    assert_eq!(data.len() as u64, N);
}

fn tls_cluster(dir: &TempDir) -> (Cluster, PathBuf) {
    let certs = certs_new(&dir.0, "cluster");
    let c = cluster(|role| tls_args(&certs, role));
    (c, certs)
}

fn tls_client(address: &str, certs: &Path) -> Client {
    let security = Security::tls(&files(certs, certs, "client")).expect("client certificate loads");
    Client::connect_with(address, ClientOptions::with_security(security)).expect("TLS client connects")
}

#[test]
fn tls_cluster_of_processes_computes_with_peer_to_peer_data() {
    let dir = TempDir::new("ok");
    let (cluster, certs) = tls_cluster(&dir);
    assert!(cluster.address.starts_with("tls://"), "{}", cluster.address);
    assert!(
        cluster.workers.iter().all(|w| w.starts_with("tls://")),
        "{:?}",
        cluster.workers
    );
    let client = tls_client(&cluster.address, &certs);
    computes_with_peer_to_peer(&client, &cluster);
}

#[test]
fn plaintext_client_is_refused_by_a_tls_scheduler_and_the_cluster_carries_on() {
    let dir = TempDir::new("plain");
    let (cluster, certs) = tls_cluster(&dir);
    let port_addr = cluster.address.trim_start_matches("tls://");

    let err = Client::connect(&format!("tcp://{port_addr}"))
        .err()
        .expect("a plaintext client must be refused")
        .to_string();
    eprintln!("refused as expected: {err}");
    assert!(err.contains("requires TLS"), "unclear error: {err}");

    // A tls:// address without a certificate fails before connecting.
    let err = Client::connect(&cluster.address)
        .err()
        .expect("TLS without a certificate must fail")
        .to_string();
    eprintln!("refused as expected: {err}");
    assert!(err.contains("no TLS certificate is configured"), "unclear error: {err}");

    let client = tls_client(&cluster.address, &certs);
    computes_with_peer_to_peer(&client, &cluster);
}

#[test]
fn client_with_a_certificate_from_another_ca_is_refused_and_the_cluster_carries_on() {
    let dir = TempDir::new("otherca");
    let (cluster, certs) = tls_cluster(&dir);
    let other = certs_new(&dir.0, "other");

    // Trusts the cluster's CA (so the server is accepted) but presents a
    // certificate of another CA: the scheduler must refuse it.
    let foreign = Security::tls(&files(&certs, &other, "client")).expect("loads");
    let err = Client::connect_with(&cluster.address, ClientOptions::with_security(foreign))
        .err()
        .expect("a foreign certificate must be refused")
        .to_string();
    eprintln!("refused as expected: {err}");
    assert!(
        err.contains("refused the TLS connection") || err.contains("TLS handshake"),
        "unclear error: {err}"
    );

    // Entirely of another CA: this client refuses the scheduler too.
    let stranger = Security::tls(&files(&other, &other, "client")).expect("loads");
    let err = Client::connect_with(&cluster.address, ClientOptions::with_security(stranger))
        .err()
        .expect("a stranger must not connect")
        .to_string();
    eprintln!("refused as expected: {err}");
    assert!(err.contains("TLS handshake"), "unclear error: {err}");

    // A worker with a foreign certificate cannot join either.
    let status = Command::new(rdask_bin())
        .args(["worker", &cluster.address, "--name", "intruder"])
        .args([
            "--tls-ca-file",
            &certs.join("ca.pem").to_string_lossy(),
            "--tls-cert",
            &other.join("worker.pem").to_string_lossy(),
            "--tls-key",
            &other.join("worker-key.pem").to_string_lossy(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("worker runs");
    assert!(
        !status.success(),
        "a worker with a foreign certificate must fail to start"
    );

    let client = tls_client(&cluster.address, &certs);
    computes_with_peer_to_peer(&client, &cluster);
    let info = client.scheduler_info().expect("info");
    assert!(info.workers.iter().all(|w| w.name != "intruder"), "{:?}", info.workers);
}

#[test]
fn wrong_token_is_refused_by_a_token_protected_plain_cluster_and_the_cluster_carries_on() {
    const TOKEN: &str = "s3cret-token-for-the-test";
    let cluster = cluster(|_| vec!["--token".into(), TOKEN.into()]);
    assert!(cluster.address.starts_with("tcp://"), "{}", cluster.address);

    for wrong in [Some("not-the-token"), None] {
        let security = match wrong {
            Some(t) => Security::default().with_token(t),
            None => Security::default(),
        };
        let err = Client::connect_with(&cluster.address, ClientOptions::with_security(security))
            .err()
            .expect("a wrong or missing token must be refused")
            .to_string();
        eprintln!("refused as expected: {err}");
        assert!(err.contains("authentication failed"), "unclear error: {err}");
        assert!(!err.contains(TOKEN), "the refusal must not echo the token: {err}");
        if let Some(t) = wrong {
            assert!(!err.contains(t), "the refusal must not echo the offered token: {err}");
        }
    }
    // Workers' peer ports are protected too.
    let peer = rdask::actors::peer::PeerPool::new("nosy", rdask::wire::FrameLimits::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(peer.info(&cluster.workers[0]))
        .expect_err("a peer without the token must be refused")
        .to_string();
    eprintln!("refused as expected: {err}");
    assert!(err.contains("authentication failed"), "unclear error: {err}");

    let good = Client::connect_with(
        &cluster.address,
        ClientOptions::with_security(Security::default().with_token(TOKEN)),
    )
    .expect("the right token connects");
    computes_with_peer_to_peer(&good, &cluster);
}

#[test]
fn local_cluster_builder_with_tls_and_token_computes() {
    let dir = TempDir::new("local");
    let files_made = rdask::certs::new_certs(&dir.0.join("certs"), &[]).expect("certs");
    let (cert, key) = files_made.role("worker").expect("worker cert");
    let security = Security::tls(&TlsFiles {
        ca_file: files_made.ca.clone(),
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })
    .expect("loads")
    .with_token("local-token");
    let cluster = rdask::LocalCluster::builder()
        .workers(2)
        .security(security)
        .build()
        .expect("cluster starts");
    assert!(cluster.scheduler_address().starts_with("tls://"));
    let client = cluster.client().expect("client");
    let w: Vec<String> = cluster.workers().into_iter().map(|(n, _)| n).collect();
    let blob = client
        .submit_with(
            make_blob,
            (1000u64, 3u64),
            &SubmitOptions::default().workers([w[0].clone()]),
        )
        .expect("submit");
    let len = client
        .submit_with(blob_len, (&blob,), &SubmitOptions::default().workers([w[1].clone()]))
        .expect("submit");
    assert_eq!(len.result().expect("result"), 1000);
    // Without the cluster's certificate and token, a client is refused.
    assert!(Client::connect(cluster.scheduler_address()).is_err());
}

#[test]
fn openssl_s_client_completes_a_handshake_with_the_scheduler() {
    if Command::new("openssl").arg("version").output().is_err() {
        cannot_run("the `openssl` binary is not installed (Debian package `openssl`; .ci/run installs it)");
        return;
    }
    let dir = TempDir::new("openssl");
    let certs = certs_new(&dir.0, "cluster");
    let (_s, address) = start(
        Command::new(rdask_bin())
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"])
            .args(tls_args(&certs, "scheduler")),
        "rdask scheduler listening on",
    );
    let target = address.trim_start_matches("tls://").to_string();
    let run = || {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-connect", &target, "-verify_return_error", "-brief"])
            .arg("-CAfile")
            .arg(certs.join("ca.pem"));
        cmd.arg("-cert")
            .arg(certs.join("client.pem"))
            .arg("-key")
            .arg(certs.join("client-key.pem"));
        // stdin closed: s_client ends the session right after the handshake.
        let out = cmd.stdin(Stdio::null()).output().expect("openssl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run();
    assert!(ok, "openssl s_client failed:\n{text}");
    assert!(text.contains("CONNECTION ESTABLISHED"), "no handshake:\n{text}");
    assert!(
        text.contains("Verification: OK"),
        "server certificate not verified:\n{text}"
    );
}

#[test]
fn config_show_does_not_print_the_token_and_partial_tls_settings_are_refused() {
    let inputs = rdask::config::Inputs {
        env: vec![("RDASK_SECURITY__TOKEN".into(), "very-secret-value".into())],
        cwd: std::env::temp_dir().join("rdask-tls-no-such-dir"),
        ..Default::default()
    };
    let loaded = rdask::config::load(&inputs).expect("loads");
    assert_eq!(loaded.config.security.token.as_deref(), Some("very-secret-value"));
    let shown = loaded.show();
    assert!(shown.contains("token = \"<redacted>\""), "{shown}");
    assert!(!shown.contains("very-secret-value"), "{shown}");
    assert_eq!(
        loaded.config.scheduler_security().expect("plain").token(),
        Some("very-secret-value")
    );

    let mut config = loaded.config;
    config.security.tls_ca_file = Some("ca.pem".into());
    let err = config.worker_security().expect_err("partial TLS settings").to_string();
    assert!(
        err.contains("tls_worker_cert") && err.contains("tls_worker_key"),
        "{err}"
    );
}
