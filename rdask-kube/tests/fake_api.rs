//! `KubeWorkers` against a small in-process fake of the Kubernetes API
//! (plain HTTP/1.1 on 127.0.0.1: the deployment's `spec.replicas`, the
//! worker pods, and a ReplicaSet's rule of removing the pods of lowest
//! deletion cost first). No real API server can run here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use rdask::launch::ScaleBackend;
use rdask_kube::{KubeWorkers, POD_DELETION_COST};
use serde_json::{json, Value};

#[derive(Default)]
struct Fake {
    replicas: usize,
    /// Pods by name, with their deletion cost.
    pods: Vec<(String, i64)>,
    next_pod: usize,
    /// Method and path of every request, in order.
    log: Vec<String>,
}

impl Fake {
    /// The ReplicaSet: pods follow `replicas`, lowest cost removed first,
    /// then the newest.
    fn reconcile(&mut self) {
        while self.pods.len() < self.replicas {
            self.pods.push((format!("demo-workers-{}", self.next_pod), 0));
            self.next_pod += 1;
        }
        while self.pods.len() > self.replicas {
            let victim = (0..self.pods.len())
                .min_by_key(|&i| (self.pods[i].1, std::cmp::Reverse(i)))
                .expect("a pod");
            self.pods.remove(victim);
        }
    }

    fn deployment(&self) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "demo-workers", "namespace": "science"},
            "spec": {"replicas": self.replicas, "selector": {"matchLabels": {"app": "x"}},
                     "template": {"spec": {"containers": []}}}
        })
    }

    fn answer(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        self.log.push(format!("{method} {path}"));
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (method, route) {
            ("GET", "/apis/apps/v1/namespaces/science/deployments/demo-workers") => (200, self.deployment()),
            ("PATCH", "/apis/apps/v1/namespaces/science/deployments/demo-workers") => {
                self.replicas = patch["spec"]["replicas"].as_u64().expect("replicas") as usize;
                self.reconcile();
                (200, self.deployment())
            }
            ("GET", "/api/v1/namespaces/science/pods") => {
                assert!(query.contains("labelSelector="), "{query}");
                let items: Vec<Value> = self
                    .pods
                    .iter()
                    .map(|(n, _)| json!({"metadata": {"name": n, "namespace": "science"}}))
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
                )
            }
            ("PATCH", p) if p.starts_with("/api/v1/namespaces/science/pods/") => {
                let name = &p["/api/v1/namespaces/science/pods/".len()..];
                let cost = patch["metadata"]["annotations"][POD_DELETION_COST]
                    .as_str()
                    .and_then(|c| c.parse().ok())
                    .expect("a deletion cost");
                match self.pods.iter_mut().find(|(n, _)| n == name) {
                    Some(pod) => {
                        pod.1 = cost;
                        (
                            200,
                            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}),
                        )
                    }
                    None => (404, not_found(name)),
                }
            }
            _ => (404, not_found(route)),
        }
    }
}

fn not_found(what: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
           "message": format!("{what} not found"), "reason": "NotFound", "code": 404})
}

fn serve(stream: TcpStream, fake: &Mutex<Fake>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, value) = fake.lock().expect("lock").answer(&method, &path, &body);
        let text = value.to_string();
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            text.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(text.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// A fake API with `pods` worker pods; its URL.
fn start(pods: usize) -> (Arc<Mutex<Fake>>, String) {
    let fake = Arc::new(Mutex::new(Fake {
        replicas: pods,
        ..Fake::default()
    }));
    fake.lock().expect("lock").reconcile();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let f = fake.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let f = f.clone();
            std::thread::spawn(move || serve(stream, &f));
        }
    });
    (fake, url)
}

#[test]
fn scaling_up_raises_replicas_and_pods_arrive_as_workers() {
    let (fake, url) = start(2);
    let mut w = KubeWorkers::with_url(&url, "science", "demo").expect("backend");
    assert_eq!(w.requested(), ["demo-workers-0", "demo-workers-1"]);
    let started = w.start_workers(2).expect("scale up");
    assert_eq!(started, ["pending-2", "pending-3"]);
    // Asked for, before the next refresh: two pending names, never asked twice.
    assert_eq!(w.requested().len(), 4);
    assert_eq!(fake.lock().expect("lock").replicas, 4);
    w.refresh().expect("refresh");
    assert_eq!(
        w.requested(),
        ["demo-workers-0", "demo-workers-1", "demo-workers-2", "demo-workers-3"]
    );
}

#[test]
fn scaling_down_removes_exactly_the_chosen_pods() {
    let (fake, url) = start(4);
    let mut w = KubeWorkers::with_url(&url, "science", "demo").expect("backend");
    // The adaptive loop retires the idle ones it names: here 1 and 2.
    w.stop_workers(&["demo-workers-1".into(), "demo-workers-2".into()])
        .expect("scale down");
    let f = fake.lock().expect("lock");
    assert_eq!(f.replicas, 2);
    let left: Vec<&str> = f.pods.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        left,
        ["demo-workers-0", "demo-workers-3"],
        "not the newest: the chosen ones"
    );
    // Marked first, then scaled: the ReplicaSet sees the costs in time.
    let last = f
        .log
        .iter()
        .rposition(|l| l.starts_with("PATCH /api/v1/"))
        .expect("pods marked");
    let scaled = f
        .log
        .iter()
        .rposition(|l| l.starts_with("PATCH /apis/apps/"))
        .expect("scaled");
    assert!(last < scaled, "{:?}", f.log);
}

#[test]
fn scale_n_counts_pending_workers() {
    let (fake, url) = start(1);
    let mut w = KubeWorkers::with_url(&url, "science", "demo").expect("backend");
    w.scale(3).expect("scale(3)");
    assert_eq!(fake.lock().expect("lock").replicas, 3);
    w.scale(3).expect("scale(3) again");
    assert_eq!(fake.lock().expect("lock").replicas, 3, "nothing asked twice");
    w.scale(1).expect("scale(1)");
    assert_eq!(fake.lock().expect("lock").replicas, 1);
}

#[test]
fn a_missing_deployment_is_a_clear_error() {
    let (_fake, url) = start(1);
    let e = KubeWorkers::with_url(&url, "science", "other")
        .err()
        .expect("no such deployment");
    assert!(e.to_string().contains("reading deployment other-workers"), "{e}");
    let e = KubeWorkers::with_url("not a url", "science", "demo")
        .err()
        .expect("bad url");
    assert!(e.to_string().contains("not a url"), "{e}");
}
