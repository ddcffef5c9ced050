//! A background actix system on its own thread, so that neither the blocking
//! nor the async API asks the user to set up actix, and a [`block_on`] that
//! waits for a future from any thread — inside someone else's runtime too.
//!
//! Work is handed to the system's arbiter as `Send` futures; they may create
//! actors and further arbiters there. Dropping the [`Runtime`] stops the
//! system and joins its thread.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, Thread, ThreadId};
use std::time::Duration;

use actix_rt::{ArbiterHandle, System};

/// Drives `fut` to completion on the calling thread, parking the thread
/// between wake-ups.
///
/// Unlike tokio's `block_on` (and `blocking_recv`) this does not panic when
/// the caller is itself inside a runtime (`#[tokio::main]`, an actix
/// `System`): the futures it waits for are driven by rdask's own runtime
/// threads, so all this thread has to do is sleep until they are done. It
/// does block that runtime's thread meanwhile, which is why async code
/// should prefer the `async` API.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    // Unconstrained: when called from inside a tokio task, that task's
    // cooperative budget would otherwise run out and make tokio's channels
    // return Pending forever (we never yield back to reset it).
    let mut fut = std::pin::pin!(tokio::task::unconstrained(fut));
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// A running actix system on a dedicated thread.
pub struct Runtime {
    system: System,
    arbiter: ArbiterHandle,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
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
            thread_id: thread.thread().id(),
            thread: Some(thread),
        })
    }

    /// Runs a future on the system's thread without waiting for it.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        self.arbiter.spawn(fut);
    }

    /// Runs a future on the system's thread and blocks until it finishes;
    /// works from any thread but that one (there it would wait for itself,
    /// so it returns None at once, as when the runtime has stopped).
    pub fn block_on<T: Send + 'static, F: Future<Output = T> + Send + 'static>(&self, fut: F) -> Option<T> {
        if self.is_current() {
            return None;
        }
        block_on(self.run(fut))
    }

    /// Whether the caller runs on this runtime's thread.
    pub fn is_current(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Runs a future on the system's thread; the returned future completes
    /// with its output (None if the runtime stopped first). The returned
    /// future needs no executor of its own kind: any executor can await it.
    pub fn run<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
        &self,
        fut: F,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.arbiter.spawn(async move {
            let _ = tx.send(fut.await);
        });
        async move { rx.await.ok() }
    }

    /// A future that completes after `duration`, timed on the system's
    /// thread so that the caller's executor needs no tokio timer.
    pub fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        // Built there too: a tokio `Sleep` binds to the timer of the thread
        // that creates it.
        let done = self.run(async move { tokio::time::sleep(duration).await });
        async move {
            // A stopped runtime ends the sleep early; callers then find the
            // connection gone.
            let _ = done.await;
        }
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
