//! The manifests: every object reads back into its `k8s-openapi` type
//! unchanged, the Service selects the scheduler's pods, the workers point
//! at the Service, and `rdask-kube manifest` prints them or a clear error.

use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::Resource;
use rdask_kube::{ClusterManifest, HTTP_PORT, SCHEDULER_PORT};

fn manifest() -> ClusterManifest {
    ClusterManifest {
        name: "demo".into(),
        namespace: "science".into(),
        image: "registry.example/rdask:0.1".into(),
        worker_image: Some("registry.example/my-tasks:0.1".into()),
        workers: 3,
        nthreads: 2,
        memory_bytes: 4 << 30,
    }
}

#[test]
fn the_yaml_reads_back_into_the_kubernetes_types_unchanged() {
    let m = manifest();
    let yaml = m.to_yaml().expect("yaml");
    let docs: Vec<&str> = yaml.split("---\n").collect();
    assert_eq!(docs.len(), 3, "{yaml}");
    let scheduler: Deployment = serde_yaml::from_str(docs[0]).expect("a Deployment");
    let service: Service = serde_yaml::from_str(docs[1]).expect("a Service");
    let workers: Deployment = serde_yaml::from_str(docs[2]).expect("a Deployment");
    assert_eq!(scheduler, m.scheduler_deployment());
    assert_eq!(service, m.scheduler_service());
    assert_eq!(workers, m.workers_deployment());
    // apiVersion and kind are written, as kubectl needs them.
    for (doc, kind, api) in [
        (docs[0], Deployment::KIND, Deployment::API_VERSION),
        (docs[1], Service::KIND, Service::API_VERSION),
        (docs[2], Deployment::KIND, Deployment::API_VERSION),
    ] {
        let v: serde_json::Value = serde_yaml::from_str(doc).expect("yaml");
        assert_eq!(v["kind"], kind);
        assert_eq!(v["apiVersion"], api);
    }
}

#[test]
fn the_service_selects_the_scheduler_and_the_workers_reach_it() {
    let m = manifest();
    let scheduler = m.scheduler_deployment();
    let service = m.scheduler_service();
    let workers = m.workers_deployment();
    let pod_labels = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .expect("pod labels")
    };
    let selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .expect("selector");
    assert!(selector.iter().all(|(k, v)| pod_labels(&scheduler).get(k) == Some(v)));
    assert!(
        !selector.iter().all(|(k, v)| pod_labels(&workers).get(k) == Some(v)),
        "the Service must not select workers"
    );
    // Each Deployment selects its own pods.
    for d in [&scheduler, &workers] {
        let spec = d.spec.as_ref().expect("spec");
        let sel = spec.selector.match_labels.clone().expect("match labels");
        assert!(sel.iter().all(|(k, v)| pod_labels(d).get(k) == Some(v)));
    }
    let ports: Vec<i32> = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .expect("ports")
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [SCHEDULER_PORT, HTTP_PORT]);
    // The workers' scheduler address is the Service's DNS name.
    let spec = workers.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("registry.example/my-tasks:0.1"));
    let args = c.args.clone().expect("args");
    let svc_name = service.metadata.name.clone().expect("service name");
    assert_eq!(args[1], format!("tcp://{svc_name}.science.svc:{SCHEDULER_PORT}"));
    assert!(args.windows(2).any(|w| w == ["--name", "$(POD_NAME)"]), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["--nthreads", "2"]), "{args:?}");
    let limits = c.resources.as_ref().and_then(|r| r.limits.clone()).expect("limits");
    assert_eq!(limits["cpu"].0, "2");
    assert_eq!(limits["memory"].0, (4u64 << 30).to_string());
}

#[test]
fn bad_settings_are_refused_clearly() {
    let e = ClusterManifest {
        name: "Bad_Name".into(),
        ..manifest()
    }
    .to_yaml()
    .expect_err("bad name");
    assert!(e.to_string().contains("name \"Bad_Name\""), "{e}");
    let e = ClusterManifest {
        nthreads: 0,
        ..manifest()
    }
    .to_yaml()
    .expect_err("no threads");
    assert!(e.to_string().contains("nthreads"), "{e}");
}

#[test]
fn the_command_prints_the_manifest_or_an_error() {
    let bin = env!("CARGO_BIN_EXE_rdask-kube");
    let out = Command::new(bin)
        .args(["manifest", "--workers", "5", "--memory", "2GiB"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8_lossy(&out.stdout);
    let workers: Deployment =
        serde_yaml::from_str(yaml.split("---\n").nth(2).expect("three documents")).expect("workers");
    assert_eq!(workers.spec.and_then(|s| s.replicas), Some(5));
    let out = Command::new(bin)
        .args(["manifest", "--memory", "lots"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory \"lots\""));
}
