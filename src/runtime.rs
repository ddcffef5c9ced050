//! A background actix system on its own thread, so that neither the blocking
//! nor the async API asks the user to set up actix.
//!
//! Work is handed to the system's arbiter as `Send` futures; they may create
//! actors and further arbiters there. Dropping the [`Runtime`] stops the
//! system and joins its thread.

use std::future::Future;
use std::thread::JoinHandle;

use actix_rt::{ArbiterHandle, System};

/// A running actix system on a dedicated thread.
pub struct Runtime {
    system: System,
    arbiter: ArbiterHandle,
    thread: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Starts the system thread, named `name`.
    pub fn new(name: &str) -> std::io::Result<Runtime> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name(name.to_string()).spawn(move || {
            let system = System::new();
            let _ = tx.send((System::current(), actix_rt::Arbiter::current()));
            system.run().ok();
        })?;
        let (system, arbiter) = rx
            .recv()
            .map_err(|_| std::io::Error::other("the runtime thread did not start"))?;
        Ok(Runtime {
            system,
            arbiter,
            thread: Some(thread),
        })
    }

    /// Runs a future on the system's thread without waiting for it.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        self.arbiter.spawn(fut);
    }

    /// Runs a future on the system's thread and blocks until it finishes.
    /// Must not be called from that thread.
    pub fn block_on<T: Send + 'static, F: Future<Output = T> + Send + 'static>(&self, fut: F) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.arbiter.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.blocking_recv().ok()
    }

    /// Runs a future on the system's thread; the returned future completes
    /// with its output (None if the runtime stopped first).
    pub fn run<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
        &self,
        fut: F,
    ) -> impl Future<Output = Option<T>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.arbiter.spawn(async move {
            let _ = tx.send(fut.await);
        });
        async move { rx.await.ok() }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}
