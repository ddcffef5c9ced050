//! The HTTP port with TLS: a scheduler process given the cluster's
//! certificates (`rdask certs new`) and a token serves its dashboard and
//! endpoints over HTTPS with the same certificate. `curl` with the cluster's
//! CA is the client (no client certificate, as a browser): `/health`
//! answers, the dashboard needs the token, and plain HTTP to the port is
//! not served.

use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::*;

/// `curl -s` with the cluster's CA; returns (HTTP status, body), or None
/// if no HTTP exchange happened (a TLS or connection failure).
fn curl(ca: &Path, url: &str, extra: &[&str]) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    let code: u16 = code.trim().parse().ok()?;
    (out.status.success() && code != 0).then(|| (code, body.to_string()))
}

#[test]
fn with_tls_the_dashboard_is_served_over_https_with_the_cluster_certificate() {
    if Command::new("curl").arg("--version").output().is_err() {
        cannot_run("the `curl` binary is not installed (Debian package `curl`)");
        return;
    }
    let dir = TempDir::new("https");
    let certs = dir.0.join("certs");
    let made = Command::new(rdask_bin())
        .args(["certs", "new"])
        .arg(&certs)
        .stdout(Stdio::null())
        .status()
        .expect("rdask certs new runs");
    assert!(made.success());
    let p = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let (_s, addrs) = start_logged(
        Command::new(rdask_bin())
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"])
            .args(["--token", "s3cret"])
            .args(["--tls-ca-file", &p("ca.pem")])
            .args(["--tls-cert", &p("scheduler.pem")])
            .args(["--tls-key", &p("scheduler-key.pem")]),
        &["rdask scheduler listening on", "rdask dashboard at"],
        &dir.0.join("scheduler.log"),
    );
    let status = &addrs[1];
    assert!(status.starts_with("https://127.0.0.1:"), "printed: {status}");
    let base = status.trim_end_matches("/status").to_string();
    let ca = certs.join("ca.pem");

    // The certificate verifies against the cluster's CA (and its name).
    let (code, body) = curl(&ca, &format!("{base}/health"), &[]).expect("an HTTPS answer");
    assert_eq!(code, 200, "{body}");
    // The dashboard needs the token, over HTTPS too.
    let (code, body) = curl(&ca, status, &[]).expect("an HTTPS answer");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("token"), "{body}");
    let (code, body) = curl(&ca, &format!("{status}?token=s3cret"), &[]).expect("an HTTPS answer");
    assert_eq!(code, 200);
    assert!(body.contains("rdask dashboard"), "{body}");
    let (code, body) = curl(
        &ca,
        &format!("{base}/api/v1/dashboard"),
        &["-H", "Authorization: Bearer s3cret"],
    )
    .expect("an HTTPS answer");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"workers\""), "{body}");

    // Without the CA, curl refuses the certificate; plain HTTP gets no
    // HTTP answer from the TLS port.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", &format!("{base}/health")])
        .output()
        .expect("curl runs");
    assert!(!out.status.success(), "an unknown CA must be refused");
    let plain = base.replacen("https://", "http://", 1);
    let plain_answer = curl(&ca, &format!("{plain}/health"), &[]);
    assert!(
        !matches!(plain_answer, Some((200, _))),
        "plain HTTP must not be served: {plain_answer:?}"
    );
    // And the port still serves HTTPS after those.
    assert_eq!(curl(&ca, &format!("{base}/health"), &[]).map(|a| a.0), Some(200));
}
