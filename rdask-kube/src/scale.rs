//! [`KubeWorkers`]: rdask's [`ScaleBackend`] on Kubernetes. It scales the
//! workers Deployment (`rdask-kube manifest`'s `<name>-workers`) through
//! the `kube` crate: up by raising `spec.replicas`; down by marking the
//! chosen pods with the lowest `controller.kubernetes.io/pod-deletion-cost`
//! (so their ReplicaSet removes those, not others) and then lowering
//! `spec.replicas`. Tested against an in-process fake API only: no API
//! server runs where this crate is built (`docs/deploy.md`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Config};
use rdask::launch::{LaunchError, ScaleBackend};
use serde_json::json;

use crate::{COMPONENT_LABEL, INSTANCE_LABEL};

/// The annotation that tells a ReplicaSet which pods to remove first.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The cost given to pods chosen to leave (lower goes first).
pub const LEAVING_COST: &str = "-1000";
/// Name prefix of workers asked for whose pods do not exist yet.
pub const PENDING_PREFIX: &str = "pending-";

/// The workers Deployment of one cluster, as a [`ScaleBackend`].
pub struct KubeWorkers {
    runtime: tokio::runtime::Runtime,
    deployments: Api<Deployment>,
    pods: Api<Pod>,
    deployment: String,
    selector: String,
    replicas: usize,
    pod_names: Vec<String>,
}

fn api_error(what: String) -> impl FnOnce(kube::Error) -> LaunchError {
    move |e| LaunchError::Command {
        what,
        message: e.to_string(),
    }
}

impl KubeWorkers {
    /// The workers of cluster `name` in `namespace`, through the API server
    /// at `url` (e.g. `https://10.0.0.1:6443`, or `kubectl proxy`'s
    /// `http://127.0.0.1:8001`).
    pub fn with_url(url: &str, namespace: &str, name: &str) -> Result<Self, LaunchError> {
        let uri = url.parse().map_err(|e| LaunchError::Command {
            what: format!("parsing the API server URL {url:?}"),
            message: format!("{e}"),
        })?;
        let mut config = Config::new(uri);
        config.default_namespace = namespace.to_string();
        Self::with_config(config, namespace, name)
    }

    /// The same, configured as `kubectl` is (kubeconfig, or the pod's
    /// service account inside a cluster).
    pub fn infer(namespace: &str, name: &str) -> Result<Self, LaunchError> {
        let runtime = runtime()?;
        let config = runtime.block_on(Config::infer()).map_err(|e| LaunchError::Command {
            what: "finding the Kubernetes configuration".into(),
            message: e.to_string(),
        })?;
        Self::with_config(config, namespace, name)
    }

    fn with_config(config: Config, namespace: &str, name: &str) -> Result<Self, LaunchError> {
        let runtime = runtime()?;
        // The client's connection pool is bound to the runtime it is made on.
        let client = runtime
            .block_on(async { Client::try_from(config) })
            .map_err(api_error("making the Kubernetes client".into()))?;
        let mut w = KubeWorkers {
            runtime,
            deployments: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            deployment: format!("{name}-workers"),
            selector: format!("{INSTANCE_LABEL}={name},{COMPONENT_LABEL}=worker"),
            replicas: 0,
            pod_names: Vec::new(),
        };
        w.refresh()?;
        Ok(w)
    }

    fn set_replicas(&mut self, n: usize) -> Result<(), LaunchError> {
        let patch = Patch::Merge(json!({ "spec": { "replicas": n } }));
        let (api, name) = (&self.deployments, &self.deployment);
        self.runtime
            .block_on(api.patch(name, &PatchParams::default(), &patch))
            .map_err(api_error(format!("scaling deployment {name} to {n}")))?;
        self.replicas = n;
        Ok(())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, LaunchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| LaunchError::Io {
            what: "starting a runtime for the Kubernetes client".into(),
            source,
        })
}

impl ScaleBackend for KubeWorkers {
    fn describe(&self) -> String {
        format!("kubernetes deployment {}", self.deployment)
    }

    fn refresh(&mut self) -> Result<(), LaunchError> {
        let d = self
            .runtime
            .block_on(self.deployments.get(&self.deployment))
            .map_err(api_error(format!("reading deployment {}", self.deployment)))?;
        self.replicas = d.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as usize;
        let list = self
            .runtime
            .block_on(self.pods.list(&ListParams::default().labels(&self.selector)))
            .map_err(api_error(format!("listing pods {}", self.selector)))?;
        // Pods on their way out are not workers any more.
        self.pod_names = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect();
        Ok(())
    }

    fn requested(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pod_names.iter().take(self.replicas).cloned().collect();
        let pending = self.replicas.saturating_sub(names.len());
        names.extend((0..pending).map(|i| format!("{PENDING_PREFIX}{i}")));
        names
    }

    fn start_workers(&mut self, n: usize) -> Result<Vec<String>, LaunchError> {
        let before = self.replicas;
        self.set_replicas(before + n)?;
        // Their pods get names from their ReplicaSet: known at the next refresh.
        Ok((0..n).map(|i| format!("{PENDING_PREFIX}{}", before + i)).collect())
    }

    fn stop_workers(&mut self, names: &[String]) -> Result<(), LaunchError> {
        let patch = Patch::Merge(json!({ "metadata": { "annotations": { POD_DELETION_COST: LEAVING_COST } } }));
        for pod in names.iter().filter(|n| self.pod_names.contains(n)) {
            self.runtime
                .block_on(self.pods.patch(pod, &PatchParams::default(), &patch))
                .map_err(api_error(format!("marking pod {pod} to leave")))?;
        }
        let n = self.replicas.saturating_sub(names.len());
        self.set_replicas(n)?;
        self.pod_names.retain(|p| !names.contains(p));
        Ok(())
    }
}
