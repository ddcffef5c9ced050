//! `rdask scheduler` and `rdask worker`: run the role in this process until
//! a signal (SIGINT, SIGTERM) or, for a worker, the loss of its scheduler.

use std::io::Write as _;

use tracing::{error, info, warn};

use crate::actors::scheduler::start_scheduler;
use crate::actors::worker::start_worker;
use crate::config::RdaskConfig;

/// The process's SIGINT (^C) and SIGTERM (what `rdask cluster down` and
/// service managers send) listeners. They are installed before the process
/// prints its address: a signal sent as soon as the address is known would
/// otherwise meet the default action and kill the process without its
/// clean shutdown.
pub(super) struct ShutdownSignals {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignals {
    /// Installs the listeners; must run inside the tokio runtime.
    pub(super) fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
            if let Err(e) = &signals {
                warn!("cannot listen for SIGINT/SIGTERM ({e}); only ^C is handled");
            }
            ShutdownSignals { signals: signals.ok() }
        }
        #[cfg(not(unix))]
        ShutdownSignals {}
    }

    /// Waits for the next signal; returns which, for the log.
    pub(super) async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = &mut self.signals {
            return tokio::select! {
                _ = interrupt.recv() => "interrupted",
                _ = terminate.recv() => "terminated",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
    }
}

/// Binds and starts an HTTP endpoint on `host:port`, printing its address.
async fn bind_http(host: &str, port: u16) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind((host, port)).await {
        Ok(l) => Some(l),
        Err(e) => {
            error!("cannot listen for HTTP on {host}:{port}: {e}");
            None
        }
    }
}

/// Runs a scheduler as `config` says until a signal; returns the exit code.
pub(super) fn run_scheduler(config: &RdaskConfig) -> i32 {
    let mut options = config.scheduler_options();
    options.security = match config.scheduler_security() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let access = crate::dashboard::DashboardAccess::new(options.security.token());
    let http_tls = options.security.http_server_config();
    let host = config.scheduler.host.clone();
    let port = config.scheduler.port;
    let http_port = config.scheduler.http_port;
    actix_rt::System::new().block_on(async move {
        let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {host}:{port}: {e}");
                return 1;
            }
        };
        let handle = match start_scheduler(listener, options) {
            Ok(h) => h,
            Err(e) => {
                error!("cannot start the scheduler: {e}");
                return 1;
            }
        };
        let mut signals = ShutdownSignals::install();
        println!("rdask scheduler listening on {}", handle.address);
        crate::util::allocator::log_choice();
        if let Some(p) = http_port {
            let Some(listener) = bind_http(&host, p).await else {
                return 1;
            };
            match crate::http::start_scheduler_http(listener, handle.clone(), access, http_tls) {
                Ok(address) => {
                    println!("rdask http endpoint on {address}");
                    println!("rdask dashboard at {address}/status");
                }
                Err(e) => {
                    error!("cannot start the HTTP endpoint: {e}");
                    return 1;
                }
            }
        }
        let _ = std::io::stdout().flush();
        let why = signals.recv().await;
        info!("{why}; scheduler exiting");
        0
    })
}

/// Runs a worker connected to `scheduler` (default: the config's scheduler
/// address) until a signal retires it or its scheduler is lost; returns the
/// exit code.
pub(super) fn run_worker(config: &RdaskConfig, scheduler: Option<String>, name: Option<String>) -> i32 {
    let scheduler = scheduler.unwrap_or_else(|| config.scheduler_address());
    let mut options = config.worker_options(&scheduler, name);
    options.restarted = std::env::var(super::nanny::RESTART_REASON_ENV).ok();
    options.nanny = std::env::var_os(super::nanny::CHILD_ENV).is_some();
    options.security = match config.worker_security() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Some(dir) = &options.local_directory {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("local directory {}: {e}", dir.display());
            return 2;
        }
    }
    let http_port = config.worker.http_port;
    let http_tls = options.security.http_server_config();
    actix_rt::System::new().block_on(async move {
        let host = options.listen_host.clone();
        let handle = match start_worker(options).await {
            Ok(h) => h,
            Err(e) => {
                error!("worker failed to start: {e}");
                return 1;
            }
        };
        let mut signals = ShutdownSignals::install();
        println!("rdask worker {} listening on {}", handle.name, handle.address);
        crate::util::allocator::log_choice();
        if let Some(p) = http_port {
            let Some(listener) = bind_http(&host, p).await else {
                return 1;
            };
            match crate::http::start_worker_http(listener, handle.clone(), http_tls) {
                Ok(address) => println!("rdask http endpoint on {address}"),
                Err(e) => {
                    error!("cannot start the HTTP endpoint: {e}");
                    return 1;
                }
            }
        }
        let _ = std::io::stdout().flush();
        tokio::select! {
            _ = handle.closed() => {
                error!("worker {} stopped: lost the scheduler", handle.name);
                1
            }
            why = signals.recv() => {
                // Graceful: the scheduler moves this worker's unique results
                // to other workers, then closes it. A second signal, or the
                // timeout, exits at once.
                info!("{why}; retiring the worker (signal again to exit at once)");
                handle.actor.do_send(crate::actors::worker::Retire);
                tokio::select! {
                    _ = handle.closed() => info!("worker {} retired", handle.name),
                    _ = tokio::time::sleep(crate::actors::worker::RETIRE_TIMEOUT) => {
                        error!("worker {} was not retired within {:?}; exiting", handle.name, crate::actors::worker::RETIRE_TIMEOUT);
                    }
                    why = signals.recv() => info!("{why} again; worker exiting"),
                }
                0
            }
        }
    })
}
