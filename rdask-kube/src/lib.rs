//! Kubernetes manifests for an rdask cluster, built from the
//! `k8s-openapi` types: the scheduler as a Deployment of one replica plus a
//! Service, the workers as a Deployment whose replicas are the worker
//! count. `rdask-kube manifest` prints them as YAML for GitOps users
//! (`kubectl apply -f -`). [`KubeWorkers`] scales the workers Deployment
//! for rdask's adaptive loop. See `docs/deploy.md`: no API server runs
//! where this crate is built, so the objects are tested against the
//! `k8s-openapi` types and the backend against a fake API only.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The scheduler's port (Dask's 8786).
pub const SCHEDULER_PORT: i32 = 8786;
/// The scheduler's HTTP endpoint (`/health`, `/metrics`, the dashboard).
pub const HTTP_PORT: i32 = 8787;
/// The label every object carries (`app.kubernetes.io/name`).
pub const APP_LABEL: &str = "app.kubernetes.io/name";
/// The label telling scheduler from workers (`app.kubernetes.io/component`).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// The label naming the cluster (`app.kubernetes.io/instance`).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// YAML could not be written.
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// What the manifests describe.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterManifest {
    /// Name of the cluster: objects are `<name>-scheduler`, `<name>-workers`.
    pub name: String,
    /// Namespace of every object.
    pub namespace: String,
    /// Image of the scheduler (the `rdask` image, `docker/Dockerfile`).
    pub image: String,
    /// Image of the workers: a binary serving the user's `#[task]`
    /// functions (`docker/Dockerfile.worker`); default: `image`.
    pub worker_image: Option<String>,
    /// Worker replicas.
    pub workers: u32,
    /// Task threads per worker, and its CPU request and limit.
    pub nthreads: u32,
    /// Memory per worker: its `--memory-limit` and the container's memory
    /// request and limit (bytes).
    pub memory_bytes: u64,
}

impl Default for ClusterManifest {
    fn default() -> Self {
        ClusterManifest {
            name: "rdask".into(),
            namespace: "default".into(),
            image: "rdask:latest".into(),
            worker_image: None,
            workers: 2,
            nthreads: 1,
            memory_bytes: 1 << 30,
        }
    }
}

fn labels(name: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_LABEL.to_string(), "rdask".to_string()),
        (INSTANCE_LABEL.to_string(), name.to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
    ])
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

impl ClusterManifest {
    /// Checks the settings Kubernetes would refuse later.
    pub fn check(&self) -> Result<(), KubeError> {
        // DNS-1035 labels: the Service name becomes a host name.
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 40
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.ends_with('-')
        };
        if !ok(&self.name) {
            return Err(KubeError::Invalid(format!(
                "name {:?}: lower-case letters, digits and '-', starting with a letter, at most 40 characters",
                self.name
            )));
        }
        if !ok(&self.namespace) {
            return Err(KubeError::Invalid(format!(
                "namespace {:?}: not a DNS label",
                self.namespace
            )));
        }
        if self.nthreads == 0 {
            return Err(KubeError::Invalid("nthreads must be at least 1".into()));
        }
        Ok(())
    }

    /// The scheduler's address inside the cluster (the Service's DNS name).
    pub fn scheduler_address(&self) -> String {
        format!("tcp://{}-scheduler.{}.svc:{SCHEDULER_PORT}", self.name, self.namespace)
    }

    fn meta(&self, suffix: &str, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(format!("{}-{suffix}", self.name)),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(&self.name, component)),
            ..Default::default()
        }
    }

    fn deployment(&self, suffix: &str, component: &str, replicas: i32, container: Container) -> Deployment {
        let l = labels(&self.name, component);
        Deployment {
            metadata: self.meta(suffix, component),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(l.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(l),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The scheduler: one replica of `rdask scheduler` on every interface.
    pub fn scheduler_deployment(&self) -> Deployment {
        let container = Container {
            name: "scheduler".into(),
            image: Some(self.image.clone()),
            args: Some(
                [
                    "scheduler",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    &SCHEDULER_PORT.to_string(),
                    "--http-port",
                    &HTTP_PORT.to_string(),
                ]
                .map(String::from)
                .to_vec(),
            ),
            ports: Some(vec![port("tcp-comm", SCHEDULER_PORT), port("http", HTTP_PORT)]),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/health".into()),
                    port: IntOrString::Int(HTTP_PORT),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.deployment("scheduler", "scheduler", 1, container)
    }

    /// The Service workers and clients reach the scheduler by.
    pub fn scheduler_service(&self) -> Service {
        let service_port = |name: &str, number: i32| ServicePort {
            name: Some(name.into()),
            port: number,
            target_port: Some(IntOrString::Int(number)),
            protocol: Some("TCP".into()),
            ..Default::default()
        };
        Service {
            metadata: self.meta("scheduler", "scheduler"),
            spec: Some(ServiceSpec {
                selector: Some(labels(&self.name, "scheduler")),
                ports: Some(vec![
                    service_port("tcp-comm", SCHEDULER_PORT),
                    service_port("http", HTTP_PORT),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The workers: each pod a worker named after itself, announcing its
    /// pod IP (Kubernetes expands `$(POD_NAME)` in `args`).
    pub fn workers_deployment(&self) -> Deployment {
        let quantity = |cpu: bool| {
            let v = if cpu {
                self.nthreads.to_string()
            } else {
                self.memory_bytes.to_string()
            };
            Quantity(v)
        };
        let limits = BTreeMap::from([
            ("cpu".to_string(), quantity(true)),
            ("memory".to_string(), quantity(false)),
        ]);
        let container = Container {
            name: "worker".into(),
            image: Some(self.worker_image.clone().unwrap_or_else(|| self.image.clone())),
            args: Some(vec![
                "worker".into(),
                self.scheduler_address(),
                "--name".into(),
                "$(POD_NAME)".into(),
                "--nthreads".into(),
                self.nthreads.to_string(),
                "--memory-limit".into(),
                self.memory_bytes.to_string(),
                "--listen-host".into(),
                "$(POD_IP)".into(),
            ]),
            env: Some(vec![
                field_env("POD_NAME", "metadata.name"),
                field_env("POD_IP", "status.podIP"),
            ]),
            resources: Some(ResourceRequirements {
                requests: Some(limits.clone()),
                limits: Some(limits),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.deployment("workers", "worker", self.workers as i32, container)
    }

    /// The three objects as one YAML stream (`---` between documents).
    pub fn to_yaml(&self) -> Result<String, KubeError> {
        self.check()?;
        let docs = [
            serde_yaml::to_string(&self.scheduler_deployment())?,
            serde_yaml::to_string(&self.scheduler_service())?,
            serde_yaml::to_string(&self.workers_deployment())?,
        ];
        Ok(docs.join("---\n"))
    }
}

/// Parses a memory size such as "4GB" or "512MiB" (or bytes).
pub fn parse_bytes(s: &str) -> Result<u64, KubeError> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| KubeError::Invalid(format!("memory {s:?}: {e}")))
}

mod scale;
pub use scale::{KubeWorkers, LEAVING_COST, PENDING_PREFIX, POD_DELETION_COST};
