//! `LocalCluster`: a scheduler and workers inside this process, over real
//! TCP on 127.0.0.1 — the embedded default, for first use and tests.
//!
//! The scheduler and each worker run on their own actix arbiter (thread),
//! so the cluster behaves like separate processes except for sharing an
//! address space; task functions run on each worker's own thread pool.

use std::time::Duration;

use actix_rt::Arbiter;

use crate::actors::scheduler::{start_scheduler, GetInfo, SchedulerHandle, SchedulerOptions};
use crate::actors::worker::{start_worker, Shutdown, WorkerHandle, WorkerOptions};
use crate::client::{AsyncClient, Client, ClientOptions, Error};
use crate::dashboard::DashboardAccess;
use crate::runtime::{block_on, Runtime};
use crate::wire::messages::SchedulerInfo;
use crate::wire::Security;

/// Builder of a [`LocalCluster`].
#[derive(Clone, Debug)]
pub struct LocalClusterBuilder {
    workers: usize,
    threads_per_worker: u32,
    scheduler: SchedulerOptions,
    worker: WorkerOptions,
    client_security: Security,
    dashboard_address: Option<String>,
}

/// Where a [`LocalCluster`] serves its dashboard unless told otherwise
/// (Dask's port); a port in use falls back to any free one, as Dask does.
pub const DEFAULT_DASHBOARD_ADDRESS: &str = "127.0.0.1:8787";

impl LocalClusterBuilder {
    /// Serves the dashboard (and `/health`, `/metrics`) on `address`,
    /// `host:port` (port 0: any free port); `None`: no dashboard. Default
    /// [`DEFAULT_DASHBOARD_ADDRESS`], or any free port when that is taken.
    pub fn dashboard_address(mut self, address: Option<&str>) -> Self {
        self.dashboard_address = address.map(str::to_string);
        self
    }
    /// Secures the whole cluster with `security` (TLS, token): the
    /// scheduler, every worker, and the clients from [`LocalCluster::client`]
    /// all use it. Set it after `scheduler_options`/`worker_options`, which
    /// replace the options it is stored in.
    pub fn security(mut self, security: Security) -> Self {
        self.scheduler.security = security.clone();
        self.worker.security = security.clone();
        self.client_security = security;
        self
    }
    /// Number of workers (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// Task threads per worker (default 1).
    pub fn threads_per_worker(mut self, n: u32) -> Self {
        self.threads_per_worker = n;
        self
    }
    /// Scheduler options.
    pub fn scheduler_options(mut self, options: SchedulerOptions) -> Self {
        self.scheduler = options;
        self
    }
    /// Template for every worker's options (scheduler, name and threads are
    /// filled in by the cluster).
    pub fn worker_options(mut self, options: WorkerOptions) -> Self {
        self.worker = options;
        self
    }
    /// Starts the cluster, blocking until it is up. Works from any thread,
    /// inside an async runtime too; there, [`start`](Self::start) does not
    /// hold up the runtime's thread.
    pub fn build(self) -> Result<LocalCluster, Error> {
        block_on(self.start())
    }

    /// Starts the cluster; awaitable from any executor.
    pub async fn start(self) -> Result<LocalCluster, Error> {
        LocalCluster::launch(self).await
    }
}

/// A scheduler and workers in this process.
///
/// ```
/// let mut cluster = rdask::LocalCluster::new(1)?;
/// let name = cluster.add_worker()?;
/// let client = cluster.client()?;
/// client.wait_for_workers(2, std::time::Duration::from_secs(10))?;
/// assert!(cluster.workers().iter().any(|(n, _)| *n == name));
/// # Ok::<(), rdask::Error>(())
/// ```
///
/// In async code, [`LocalCluster::start`] and [`LocalCluster::async_client`]:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rdask::Error> {
/// let cluster = rdask::LocalCluster::start(2).await?;
/// let client = cluster.async_client().await?;
/// assert_eq!(client.scheduler_info().await?.workers.len(), 2);
/// # Ok(())
/// # }
/// ```
pub struct LocalCluster {
    scheduler: SchedulerHandle,
    dashboard_link: Option<String>,
    workers: Vec<WorkerHandle>,
    arbiters: Vec<Arbiter>,
    worker_template: WorkerOptions,
    threads_per_worker: u32,
    next_worker: usize,
    client_security: Security,
    // Last: stops the arbiters' system after the handles above are gone.
    runtime: Runtime,
}

impl LocalCluster {
    /// A cluster of `workers` workers with one thread each, started
    /// blocking (see [`LocalClusterBuilder::build`]).
    pub fn new(workers: usize) -> Result<LocalCluster, Error> {
        Self::builder().workers(workers).build()
    }

    /// A cluster of `workers` workers with one thread each, awaitable from
    /// any executor.
    pub async fn start(workers: usize) -> Result<LocalCluster, Error> {
        Self::builder().workers(workers).start().await
    }

    /// A builder with the defaults (2 workers, 1 thread each).
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder {
            workers: 2,
            threads_per_worker: 1,
            scheduler: SchedulerOptions::default(),
            worker: WorkerOptions::default(),
            client_security: Security::default(),
            dashboard_address: Some(DEFAULT_DASHBOARD_ADDRESS.to_string()),
        }
    }

    async fn launch(b: LocalClusterBuilder) -> Result<LocalCluster, Error> {
        let runtime = Runtime::new("rdask-cluster").map_err(|e| Error::Wire(e.to_string()))?;
        let mut options = b.scheduler.clone();
        // Its workers live in this process without a nanny: a restart is
        // refused rather than closing them (`docs/coordination.md`).
        options.state.in_process_workers = true;
        let dashboard = b.dashboard_address.clone();
        let (scheduler, arbiter) = runtime
            .run(async move {
                let arbiter = Arbiter::new();
                let (tx, rx) = tokio::sync::oneshot::channel();
                arbiter.spawn(async move {
                    let r = async {
                        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                        let access = DashboardAccess::new(options.security.token());
                        let http_tls = options.security.http_server_config();
                        let handle = start_scheduler(listener, options)?;
                        let link = match dashboard {
                            Some(address) => Some(start_dashboard(&address, handle.clone(), access, http_tls).await?),
                            None => None,
                        };
                        Ok::<_, std::io::Error>((handle, link))
                    }
                    .await;
                    let _ = tx.send(r);
                });
                let r = rx.await.map_err(|_| std::io::Error::other("scheduler arbiter died"));
                (r, arbiter)
            })
            .await
            .ok_or_else(|| Error::Wire("cluster runtime stopped".into()))?;
        let (scheduler, dashboard_link) = scheduler
            .and_then(|r| r)
            .map_err(|e| Error::Wire(format!("cannot start the scheduler: {e}")))?;
        let mut cluster = LocalCluster {
            scheduler,
            dashboard_link,
            workers: Vec::new(),
            arbiters: vec![arbiter],
            worker_template: b.worker,
            threads_per_worker: b.threads_per_worker,
            next_worker: 0,
            client_security: b.client_security,
            runtime,
        };
        for _ in 0..b.workers {
            cluster.add_worker_async().await?;
        }
        Ok(cluster)
    }

    /// Starts one more worker; returns its name.
    pub fn add_worker(&mut self) -> Result<String, Error> {
        block_on(self.add_worker_async())
    }

    /// [`add_worker`](Self::add_worker), awaitable from any executor.
    pub async fn add_worker_async(&mut self) -> Result<String, Error> {
        let mut options = self.worker_template.clone();
        options.scheduler = self.scheduler.address.clone();
        options.nthreads = self.threads_per_worker;
        if options.name.is_none() {
            options.name = Some(format!("local-worker-{}", self.next_worker));
        }
        self.next_worker += 1;
        let (handle, arbiter) = self
            .runtime
            .run(async move {
                let arbiter = Arbiter::new();
                let (tx, rx) = tokio::sync::oneshot::channel();
                arbiter.spawn(async move {
                    let _ = tx.send(start_worker(options).await);
                });
                (rx.await, arbiter)
            })
            .await
            .ok_or_else(|| Error::Wire("cluster runtime stopped".into()))?;
        let handle = handle
            .map_err(|_| Error::Wire("worker arbiter died".into()))?
            .map_err(|e| Error::Wire(format!("cannot start a worker: {e}")))?;
        let name = handle.name.clone();
        self.workers.push(handle);
        self.arbiters.push(arbiter);
        Ok(name)
    }

    /// Stops the worker named `name` abruptly (its connections close), as if
    /// its process died.
    pub fn kill_worker(&mut self, name: &str) -> bool {
        let Some(i) = self.workers.iter().position(|w| w.name == name) else {
            return false;
        };
        let w = self.workers.remove(i);
        w.actor.do_send(Shutdown);
        let arbiter = self.arbiters.remove(i + 1);
        arbiter.stop();
        let _ = arbiter.join();
        true
    }

    /// The scheduler's address, for [`Client::connect`] or workers elsewhere.
    pub fn scheduler_address(&self) -> &str {
        &self.scheduler.address
    }

    /// The dashboard's address, `http://127.0.0.1:PORT/status` (Dask's
    /// `dashboard_link`); None if built without one. With a cluster token,
    /// add `?token=TOKEN` to open it.
    pub fn dashboard_link(&self) -> Option<&str> {
        self.dashboard_link.as_deref()
    }

    /// The workers' names and peer addresses.
    pub fn workers(&self) -> Vec<(String, String)> {
        self.workers
            .iter()
            .map(|w| (w.name.clone(), w.address.clone()))
            .collect()
    }

    /// A blocking client connected to this cluster.
    pub fn client(&self) -> Result<Client, Error> {
        Client::connect_with(&self.scheduler.address, self.client_options())
    }

    /// The options [`Self::client`] connects with (the cluster's security).
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions::with_security(self.client_security.clone())
    }

    /// An async client connected to this cluster.
    pub async fn async_client(&self) -> Result<AsyncClient, Error> {
        AsyncClient::connect_with(&self.scheduler.address, self.client_options()).await
    }

    /// The scheduler's figures, read in-process.
    pub fn scheduler_info(&self) -> Option<SchedulerInfo> {
        let actor = self.scheduler.actor.clone();
        self.runtime
            .block_on(async move { actor.send(GetInfo).await.ok() })
            .flatten()
    }

    /// Waits until `n` workers are registered, or the timeout.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.scheduler_info().is_some_and(|i| i.workers.len() >= n) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// Starts the scheduler's HTTP endpoint and dashboard on `address`, or on
/// any free port of its host if that port is taken; returns the status
/// page's address.
async fn start_dashboard(
    address: &str,
    handle: SchedulerHandle,
    access: DashboardAccess,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<String> {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            tokio::net::TcpListener::bind((host, 0)).await?
        }
        Err(e) => {
            return Err(std::io::Error::new(
                e.kind(),
                format!("dashboard address {address}: {e}"),
            ))
        }
    };
    let base = crate::http::start_scheduler_http(listener, handle, access, tls)?;
    Ok(format!("{base}/status"))
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for w in self.workers.drain(..) {
            w.actor.do_send(Shutdown);
        }
        for a in self.arbiters.drain(..) {
            a.stop();
            let _ = a.join();
        }
    }
}
