//! Every public method of `Client`, `AsyncClient`, `Future` and
//! `LocalCluster`, called from plain threads, from inside tokio runtimes
//! (current-thread and multi-thread, as `#[tokio::main]` builds them) and
//! from inside an actix `System` and actor: each works there, none panics.
//! Includes a result over the 64 KiB inline limit read with the blocking
//! client inside a runtime (it is fetched from the worker).

use std::time::Duration;

use rdask::builtins::{add, fail, inc, sleep_ms};
use rdask::wire::messages::Arg;
use rdask::{AsyncClient, Client, Error, LocalCluster, ReturnWhen, SubmitOptions};

/// Bytes of the large result: over the workers' 64 KiB inline limit, so the
/// client fetches it from the worker instead of receiving it inline.
const LARGE: usize = 200 * 1024;

#[rdask::task]
fn large(n: u64) -> Vec<u8> {
    vec![7u8; n as usize]
}

const WAIT: Duration = Duration::from_secs(20);

/// Every `AsyncClient` and `Future` method, awaited.
async fn exercise_async(cluster: &mut LocalCluster) -> anyhow::Result<()> {
    let client = cluster.async_client().await?;
    client.wait_for_workers(2, WAIT).await?;
    let other = AsyncClient::connect(cluster.scheduler_address()).await?;
    let third = AsyncClient::connect_with(cluster.scheduler_address(), cluster.client_options()).await?;
    assert_eq!(other.scheduler_address(), client.scheduler_address());
    assert_ne!(other.id(), third.id());

    let f = client.submit(inc, (1i64,))?;
    assert_eq!((&f).await?, 2);
    assert_eq!(f.clone().await?, 2);
    assert_eq!(f.result_async().await?, 2);
    assert_eq!(f.result_timeout_async(Some(WAIT)).await?, 2);
    assert_eq!(f.status(), "finished");
    assert!(f.done() && f.exception().is_none() && f.key().starts_with("inc-"));
    let g = client.submit_with(add, (&f, 10i64), &SubmitOptions::impure().priority(1))?;
    assert_eq!(g.await?, 12);
    let raw = client.submit_raw::<i64>(
        "rdask::builtins::inc",
        vec![Arg::Value(rdask::task::encode_value(&5i64)?)],
        &SubmitOptions::default(),
    )?;
    assert_eq!(raw.await?, 6);

    let big = client.submit(large, (LARGE as u64,))?;
    assert_eq!(big.result_async().await?.len(), LARGE);

    let m = client.map(inc, 0..10i64)?;
    assert_eq!(client.gather(&m).await?, (1..=10).collect::<Vec<_>>());
    let m2 = client.map_with(inc, 0..3i64, &SubmitOptions::impure())?;
    assert_eq!(client.gather_timeout(&m2, Some(WAIT)).await?, vec![1, 2, 3]);
    let s = client.starmap(add, vec![(1i64, 2i64), (3, 4)], &SubmitOptions::default())?;
    assert_eq!(client.gather(&s).await?, vec![3, 7]);

    let data = client.scatter(vec![101i64, 201]).await?;
    let names: Vec<String> = cluster.workers().into_iter().map(|(n, _)| n).collect();
    let placed = client.scatter_to(vec![301i64], &names[..1]).await?;
    assert_eq!(client.gather(&placed).await?, vec![301]);
    let who = client.who_has(&[data[0].key()]).await?;
    assert_eq!(who.len(), 1);
    client.replicate(&data, 2).await?;
    client.rebalance(&data).await?;

    let w = client.wait(&m, ReturnWhen::AllCompleted, Some(WAIT)).await?;
    assert_eq!(w.done.len(), 10);
    let slow = client.submit_with(sleep_ms, (2_000u64,), &SubmitOptions::impure())?;
    let err = client
        .wait(
            std::slice::from_ref(&slow),
            ReturnWhen::AllCompleted,
            Some(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    client.cancel(std::slice::from_ref(&slow));
    assert_eq!(slow.status(), "cancelled");

    let bad = client.submit(fail, ("no".to_string(),))?;
    assert!(matches!((&bad).await, Err(Error::Task { .. })));
    client.retry(std::slice::from_ref(&bad));
    bad.retry();
    bad.cancel();

    let mut pending = client.map(inc, 20..23i64)?;
    let mut seen = Vec::new();
    while let Some(done) = client.next_completed(&mut pending).await {
        seen.push(done.await?);
    }
    seen.sort();
    assert_eq!(seen, vec![21, 22, 23]);
    let mut ac = client.as_completed(client.map(inc, 30..32i64)?);
    let mut n = 0;
    while let Some(done) = ac.next_async().await {
        done.await?;
        n += 1;
    }
    assert_eq!(n, 2);

    let info = client.scheduler_info().await?;
    let address = info.workers[0].address.clone();
    client.worker_info(&address).await?;
    let extra = cluster.add_worker_async().await?;
    client.wait_for_workers(3, WAIT).await?;
    assert_eq!(client.retire_workers(&[&extra]).await?, vec![extra]);
    assert!(client.as_blocking().id() == client.id());
    Ok(())
}

/// Every `Client` and `Future` method, blocking.
fn exercise_blocking(cluster: &mut LocalCluster) -> anyhow::Result<()> {
    let client = cluster.client()?;
    client.wait_for_workers(2, WAIT)?;
    let other = Client::connect(cluster.scheduler_address())?;
    let third = Client::connect_with(cluster.scheduler_address(), cluster.client_options())?;
    assert_eq!(other.scheduler_address(), client.scheduler_address());
    assert_ne!(other.id(), third.id());

    let f = client.submit(inc, (1i64,))?;
    assert_eq!(f.result()?, 2);
    assert_eq!(f.result_timeout(Some(WAIT))?, 2);
    assert_eq!(f.status(), "finished");
    let g = client.submit_with(add, (&f, 10i64), &SubmitOptions::impure())?;
    assert_eq!(g.result()?, 12);
    let raw = client.submit_raw::<i64>(
        "rdask::builtins::inc",
        vec![Arg::Value(rdask::task::encode_value(&5i64)?)],
        &SubmitOptions::default(),
    )?;
    assert_eq!(raw.result()?, 6);

    // Over the inline limit: fetched from the worker, blocking.
    let big = client.submit(large, (LARGE as u64,))?;
    assert_eq!(big.result()?.len(), LARGE);
    assert_eq!(client.gather(std::slice::from_ref(&big))?[0].len(), LARGE);

    let m = client.map(inc, 0..10i64)?;
    assert_eq!(client.gather(&m)?, (1..=10).collect::<Vec<_>>());
    let m2 = client.map_with(inc, 0..3i64, &SubmitOptions::impure())?;
    assert_eq!(client.gather_timeout(&m2, Some(WAIT))?, vec![1, 2, 3]);
    let s = client.starmap(add, vec![(1i64, 2i64), (3, 4)], &SubmitOptions::default())?;
    assert_eq!(client.gather(&s)?, vec![3, 7]);

    let data = client.scatter(vec![100i64, 200])?;
    let names: Vec<String> = cluster.workers().into_iter().map(|(n, _)| n).collect();
    let placed = client.scatter_to(vec![300i64], &names[..1])?;
    assert_eq!(client.gather(&placed)?, vec![300]);
    assert_eq!(client.who_has(&[data[0].key()])?.len(), 1);
    client.replicate(&data, 2)?;
    client.rebalance(&data)?;

    let w = client.wait(&m, ReturnWhen::FirstCompleted, Some(WAIT))?;
    assert!(!w.done.is_empty());
    let slow = client.submit_with(sleep_ms, (2_000u64,), &SubmitOptions::impure())?;
    let err = slow.result_timeout(Some(Duration::from_millis(50))).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    client.cancel(std::slice::from_ref(&slow));
    assert!(matches!(slow.result(), Err(Error::Cancelled(_))));

    let bad = client.submit(fail, ("no".to_string(),))?;
    assert!(matches!(bad.result(), Err(Error::Task { .. })));
    assert!(bad.exception().is_some());
    client.retry(std::slice::from_ref(&bad));

    let done: Vec<i64> = client
        .as_completed(client.map(inc, 20..23i64)?)
        .map(|f| f.result())
        .collect::<Result<_, _>>()?;
    assert_eq!(done.len(), 3);

    let info = client.scheduler_info()?;
    client.worker_info(&info.workers[0].address)?;
    assert!(cluster.scheduler_info().is_some());
    let extra = cluster.add_worker()?;
    client.wait_for_workers(3, WAIT)?;
    assert_eq!(client.retire_workers(&[&extra])?, vec![extra]);
    assert_eq!(client.as_async().id(), client.id());
    Ok(())
}

#[test]
fn from_a_plain_thread() -> anyhow::Result<()> {
    let mut cluster = LocalCluster::new(2)?;
    exercise_blocking(&mut cluster)?;
    // The async API needs no executor of its own kind either.
    rdask::runtime::block_on(exercise_async(&mut cluster))
}

fn in_tokio(rt: tokio::runtime::Runtime) -> anyhow::Result<()> {
    rt.block_on(async {
        let mut cluster = LocalCluster::start(2).await?;
        exercise_async(&mut cluster).await?;
        // Blocking calls inside the runtime work too (they hold up its
        // thread meanwhile), including the blocking constructor.
        exercise_blocking(&mut cluster)?;
        let mut blocking_built = LocalCluster::new(2)?;
        exercise_blocking(&mut blocking_built)
    })
}

#[test]
fn inside_a_current_thread_tokio_runtime() -> anyhow::Result<()> {
    in_tokio(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

#[test]
fn inside_a_multi_thread_tokio_runtime() -> anyhow::Result<()> {
    in_tokio(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
    )
}

#[test]
fn inside_an_actix_system() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(async {
        let mut cluster = LocalCluster::start(2).await?;
        exercise_async(&mut cluster).await?;
        exercise_blocking(&mut cluster)?;
        let mut blocking_built = LocalCluster::builder().workers(2).build()?;
        exercise_blocking(&mut blocking_built)
    })
}

/// An actor that runs the client on its own thread, in its handlers.
struct User;

impl actix::Actor for User {
    type Context = actix::Context<Self>;
}

#[derive(actix::Message)]
#[rtype(result = "Result<(), String>")]
struct Blocking;

impl actix::Handler<Blocking> for User {
    type Result = Result<(), String>;
    fn handle(&mut self, _: Blocking, _: &mut Self::Context) -> Self::Result {
        let mut cluster = LocalCluster::new(2).map_err(|e| e.to_string())?;
        exercise_blocking(&mut cluster).map_err(|e| e.to_string())
    }
}

#[derive(actix::Message)]
#[rtype(result = "Result<(), String>")]
struct Async;

impl actix::Handler<Async> for User {
    type Result = actix::ResponseFuture<Result<(), String>>;
    fn handle(&mut self, _: Async, _: &mut Self::Context) -> Self::Result {
        Box::pin(async {
            let mut cluster = LocalCluster::start(2).await.map_err(|e| e.to_string())?;
            exercise_async(&mut cluster).await.map_err(|e| e.to_string())
        })
    }
}

#[test]
fn inside_an_actix_actor() -> anyhow::Result<()> {
    actix_rt::System::new().block_on(async {
        let user = actix::Actor::start(User);
        user.send(Blocking).await?.map_err(anyhow::Error::msg)?;
        user.send(Async).await?.map_err(anyhow::Error::msg)?;
        Ok(())
    })
}

#[test]
fn timeouts_and_no_worker_status_say_what_waits_and_why() -> anyhow::Result<()> {
    let cluster = LocalCluster::new(1)?;
    let client = cluster.client()?;
    let ghost = client.submit_raw::<i64>("no::such::function", vec![], &SubmitOptions::default())?;
    let err = ghost.result_timeout(Some(Duration::from_millis(500))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(ghost.key()), "{msg}");
    assert!(msg.contains("`no::such::function`"), "{msg}");
    assert!(msg.contains("no-worker"), "{msg}");
    assert!(msg.contains("start a worker from a binary that links"), "{msg}");
    assert_eq!(ghost.status(), "no-worker");
    assert!(ghost
        .no_worker_reason()
        .is_some_and(|r| r.contains("no::such::function")));
    // Gather and wait name it too.
    let err = client
        .gather_timeout(std::slice::from_ref(&ghost), Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(err.to_string().contains(ghost.key()), "{err}");
    let err = client
        .wait(
            std::slice::from_ref(&ghost),
            ReturnWhen::AllCompleted,
            Some(Duration::from_millis(50)),
        )
        .unwrap_err();
    assert!(err.to_string().contains("no::such::function"), "{err}");
    // A pending task's timeout names its function and state.
    let slow = client.submit(sleep_ms, (30_000u64,))?;
    let err = slow.result_timeout(Some(Duration::from_millis(50))).unwrap_err();
    assert!(err.to_string().contains("rdask::builtins::sleep_ms"), "{err}");
    assert!(err.to_string().contains("pending"), "{err}");
    Ok(())
}

#[test]
fn wait_for_workers_errs_clearly_on_timeout() -> anyhow::Result<()> {
    let cluster = LocalCluster::new(1)?;
    let client = cluster.client()?;
    client.wait_for_workers(1, WAIT)?;
    let err = client.wait_for_workers(3, Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(err.to_string().contains("1 connected"), "{err}");
    Ok(())
}

#[rdask::task]
fn byte_len(b: Vec<u8>) -> u64 {
    b.len() as u64
}

/// Issue 16 §6: an argument over the scheduler's frame limit used to make it
/// drop the client's connection, failing every later call. The limits here
/// are small (1 MiB) so the test stays light; the default path checks the
/// real 256 MiB limit (unit test in src/client/submit.rs).
#[test]
fn an_oversized_argument_is_refused_and_the_session_lives_on() -> anyhow::Result<()> {
    let limits = rdask::wire::FrameLimits {
        max_header_bytes: 1024 * 1024,
        ..Default::default()
    };
    let scheduler = rdask::actors::scheduler::SchedulerOptions {
        limits,
        ..Default::default()
    };
    let cluster = LocalCluster::builder()
        .workers(1)
        .scheduler_options(scheduler)
        .build()?;
    let options = rdask::ClientOptions {
        limits,
        ..cluster.client_options()
    };
    let client = Client::connect_with(cluster.scheduler_address(), options)?;
    let err = client.submit(byte_len, (vec![1u8; 2 * 1024 * 1024],)).unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("max_header_bytes") && msg.contains("1.0 MiB"), "{msg}");
    assert!(msg.contains("rdask::builtins") || msg.contains("byte_len"), "{msg}");
    let err = client
        .map(byte_len, vec![vec![0u8; 10], vec![1u8; 2 * 1024 * 1024]])
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
    // The session lives on.
    assert_eq!(client.submit(inc, (1i64,))?.result()?, 2);
    // Many arguments that fit one by one but not in one message: the map is
    // split into several graph updates instead of one the scheduler refuses.
    let items: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 300 * 1024]).collect();
    let lens = client.map(byte_len, items)?;
    assert_eq!(client.gather(&lens)?, vec![300 * 1024; 8]);
    assert_eq!(client.submit(inc, (2i64,))?.result()?, 3);
    Ok(())
}
