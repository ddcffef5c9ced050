//! A client for tasks: [`worker_client`] (and its alias [`get_client`])
//! connects a task to its own worker's scheduler, so a task can submit
//! tasks and wait for them, as Dask's `worker_client` / `get_client`.
//!
//! Waiting does not hold up the worker: the client's blocking waits secede
//! the task's thread from the pool (`crate::worker::pool::seceded`), so
//! another task (a child, say) runs meanwhile, even on a one-thread worker.
//! The client is connected once per scheduler and process, then shared by
//! every task (a `Client` is cheap to clone); its futures are released when
//! the task drops them, as anywhere else.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::client::{Client, ClientOptions, Error};
use crate::worker::pool::task_scheduler;

/// A client connected to the scheduler of the worker running the calling
/// task. Fails outside a task (on a thread that is not a worker's task
/// thread) or if the scheduler cannot be reached.
///
/// ```no_run
/// #[rdask::task]
/// fn fib(n: u64) -> Result<u64, rdask::Error> {
///     if n < 2 {
///         return Ok(n);
///     }
///     let client = rdask::worker_client()?;
///     let a = client.submit(fib, (n - 1,))?;
///     let b = client.submit(fib, (n - 2,))?;
///     Ok(a.result()? + b.result()?) // seceded while waiting
/// }
/// ```
pub fn worker_client() -> Result<Client, Error> {
    let Some(contact) = task_scheduler() else {
        return Err(Error::Wire(
            "worker_client() called outside a task: only a task running on a worker knows its scheduler".into(),
        ));
    };
    static CLIENTS: OnceLock<Mutex<HashMap<String, Client>>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Mutex::default);
    if let Some(c) = clients.lock().unwrap_or_else(|e| e.into_inner()).get(&contact.address) {
        return Ok(c.clone());
    }
    // Connected outside the lock: another task may connect at the same
    // time, and the first one stored is kept.
    let client = Client::connect_with(
        &contact.address,
        ClientOptions {
            name: Some(format!("{}-worker-client", contact.worker)),
            security: contact.security,
            ..Default::default()
        },
    )?;
    Ok(clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(contact.address)
        .or_insert(client)
        .clone())
}

/// The same as [`worker_client`] (Dask's `get_client` inside a task).
pub fn get_client() -> Result<Client, Error> {
    worker_client()
}
