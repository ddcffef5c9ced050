//! Actors end to end. With real processes: a scheduler (`rdask`) and
//! workers of the `actor_counter` example (which links the `Counter` actor
//! and the `bump` task), driven from here through the untyped door
//! (`submit_actor_raw`, `ActorRef::call_encoded`) since this test does not
//! link the example's type; and the typed API on a `LocalCluster` with an
//! actor defined here.

use std::process::Command;
use std::time::{Duration, Instant};

use rdask::task::encode_value;
use rdask::wire::messages::{Arg, ErrorKind};
use rdask::{Actor, ActorRef, Client, Error, LocalCluster, SubmitOptions};

mod common;
use common::*;

/// The example's actor type and task, as registered in its binary.
const COUNTER: &str = "actor_counter::Counter";
const BUMP: &str = "actor_counter::bump";

/// Longest a caller may wait for `ActorLost` once the actor's worker is
/// SIGKILLed: the connection's end is seen at once; this leaves room for a
/// loaded machine.
const LOST_WITHIN: Duration = Duration::from_secs(10);

fn example() -> Option<String> {
    example_bin("actor_counter")
}

fn value(v: impl serde::Serialize) -> Arg {
    Arg::Value(encode_value(&v).expect("encodes"))
}

fn enc(v: impl serde::Serialize) -> Vec<u8> {
    encode_value(&v).expect("encodes")
}

fn on(worker: &str) -> SubmitOptions {
    SubmitOptions {
        workers: vec![worker.into()],
        pure: false,
        ..Default::default()
    }
}

/// A scheduler and two example workers; the client, the workers (the
/// processes, by name w1 and w2) and the scheduler process.
fn cluster(bin: &str, nthreads: u32) -> (Client, Proc, Proc, Proc) {
    let (sched, addr) = scheduler();
    let (w1, _) = example_worker(bin, &addr, "w1", nthreads);
    let (w2, _) = example_worker(bin, &addr, "w2", nthreads);
    let client = Client::connect(&addr).expect("connects");
    wait_for_workers(&client, 2);
    (client, sched, w1, w2)
}

#[test]
fn counter_bumped_by_100_tasks_on_2_worker_processes_ends_at_100() -> Result<(), Error> {
    let Some(bin) = example() else { return Ok(()) };
    let (client, _s, _w1, _w2) = cluster(&bin, 4);
    let counter = client.submit_actor_raw(COUNTER, vec![value(0i64)], &on("w1"))?;
    let w1_address = client
        .scheduler_info()?
        .workers
        .iter()
        .find(|w| w.name == "w1")
        .map(|w| w.address.clone());
    assert_eq!(
        Some(counter.worker().to_string()),
        w1_address,
        "the actor lives where it was asked to"
    );
    // Half the tasks on each worker: the actor's own and the other one.
    let tasks: Vec<rdask::Future<i64>> = (0..100)
        .map(|i| client.submit_raw(BUMP, vec![value(&counter)], &on(if i % 2 == 0 { "w1" } else { "w2" })))
        .collect::<Result<_, _>>()?;
    let mut seen = client.gather(&tasks)?;
    seen.sort();
    assert_eq!(
        seen,
        (1..=100).collect::<Vec<i64>>(),
        "every call saw the calls before it"
    );
    assert_eq!(counter.call_encoded::<i64>("value", vec![]).result()?, 100);
    // The client's own calls, many at once, are serialized too.
    let calls: Vec<_> = (0..20)
        .map(|_| counter.call_encoded::<i64>("increment", vec![enc(1i64)]))
        .collect();
    for c in calls {
        c.result()?;
    }
    assert_eq!(counter.call_encoded::<i64>("value", vec![]).result()?, 120);
    Ok(())
}

#[test]
fn sigkilled_actor_worker_gives_actor_lost_to_a_waiting_caller() -> Result<(), Error> {
    let Some(bin) = example() else { return Ok(()) };
    let (client, _s, w1, _w2) = cluster(&bin, 1);
    let counter = client.submit_actor_raw(COUNTER, vec![value(7i64)], &on("w1"))?;
    let worker = counter.worker().to_string();
    // A call that runs for a minute; the worker dies under it.
    let waiting = counter.call_encoded::<i64>("slow_value", vec![enc(60_000u64)]);
    std::thread::sleep(Duration::from_millis(300));
    w1.signal("KILL");
    let killed = Instant::now();
    let err = waiting.result().expect_err("the actor is gone");
    let took = killed.elapsed();
    match &err {
        Error::ActorLost { actor, worker: w, .. } => {
            assert!(actor.contains(counter.key()) && actor.contains(COUNTER), "{err}");
            assert_eq!(w, &worker, "{err}");
        }
        other => panic!("expected ActorLost, got {other:?}"),
    }
    assert!(took < LOST_WITHIN, "ActorLost after {took:?}");
    eprintln!("ActorLost {took:?} after SIGKILL: {err}");
    // Later calls fail the same way, at once.
    let again = counter.call_encoded::<i64>("value", vec![]).result();
    assert!(matches!(again, Err(Error::ActorLost { .. })), "{again:?}");
    // And the scheduler does not recreate it: its key erred ActorLost.
    wait_until("the scheduler lists the actor nowhere", || {
        client.who_has(&[counter.key()]).expect("who_has")[0].workers.is_empty()
    });
    Ok(())
}

/// Thousands of calls made at once all succeed: the client keeps at most
/// `MAX_CONCURRENT_REQUESTS_PER_PEER` connections to the worker and queues
/// the rest (before, the worker's accept queue reset some connections and
/// the calls failed as if the actor were lost).
#[test]
fn five_thousand_calls_at_once_all_succeed() -> Result<(), Error> {
    let Some(bin) = example() else { return Ok(()) };
    let (client, _s, _w1, _w2) = cluster(&bin, 1);
    let counter = client.submit_actor_raw(COUNTER, vec![value(0i64)], &SubmitOptions::default())?;
    let calls: Vec<_> = (0..5000)
        .map(|_| counter.call_encoded::<i64>("increment", vec![enc(1i64)]))
        .collect();
    let mut seen = calls.into_iter().map(|c| c.result()).collect::<Result<Vec<i64>, _>>()?;
    seen.sort();
    assert_eq!(seen, (1..=5000).collect::<Vec<i64>>());
    Ok(())
}

/// A worker that freezes (SIGSTOP) keeps its connections open: the caller
/// learns from the scheduler, once it removed the silent worker, that the
/// actor is gone (the liveness check), instead of waiting on the call.
#[test]
fn a_frozen_actor_worker_gives_actor_lost_once_the_scheduler_removes_it() -> Result<(), Error> {
    let Some(bin) = example() else { return Ok(()) };
    let dir = TempDir::new("frozen");
    let cfg = dir.0.join("rdask.toml");
    std::fs::write(&cfg, "[scheduler]\nheartbeat_ms = 100\nworker_timeout_s = 1\n").expect("config written");
    let (_s, addr) = start(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        "rdask scheduler listening on",
    );
    let (frozen, _) = example_worker(&bin, &addr, "w1", 1);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let counter = client.submit_actor_raw(COUNTER, vec![value(0i64)], &SubmitOptions::default())?;
    let waiting = counter.call_encoded::<i64>("slow_value", vec![enc(600_000u64)]);
    std::thread::sleep(Duration::from_millis(200));
    frozen.signal("STOP");
    let stopped = Instant::now();
    let err = waiting.result().expect_err("the actor is gone");
    let took = stopped.elapsed();
    assert!(
        matches!(&err, Error::ActorLost { reason, .. } if reason.contains("no longer lists it")),
        "{err:?}"
    );
    // The worker timeout (1 s), then at most one liveness check (1 s).
    assert!(took < LOST_WITHIN, "ActorLost after {took:?}");
    eprintln!("ActorLost {took:?} after SIGSTOP: {err}");
    frozen.signal("CONT");
    Ok(())
}

#[test]
fn unknown_actor_type_method_and_bad_arguments_give_clear_errors() -> Result<(), Error> {
    let Some(bin) = example() else { return Ok(()) };
    let (client, _s, _w1, _w2) = cluster(&bin, 1);
    let err = client
        .submit_actor_raw("actor_counter::Nope", vec![], &SubmitOptions::default())
        .expect_err("no worker has it");
    let msg = err.to_string();
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert!(
        msg.contains("unknown actor type actor_counter::Nope") && msg.contains("2 connected workers"),
        "{msg}"
    );

    let counter = client.submit_actor_raw(COUNTER, vec![value(1i64)], &SubmitOptions::default())?;
    let err = counter
        .call_encoded::<i64>("decrement", vec![])
        .result()
        .expect_err("unknown");
    match &err {
        Error::ActorCall { method, failure, .. } => {
            assert_eq!(
                (method.as_str(), failure.kind),
                ("decrement", ErrorKind::UnknownFunction)
            );
            assert!(failure.message.contains("increment, value"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    let err = counter
        .call_encoded::<i64>("increment", vec![enc("one")])
        .result()
        .expect_err("bad argument");
    assert!(
        matches!(&err, Error::ActorCall { failure, .. } if failure.kind == ErrorKind::BadArguments && failure.message.contains("`by`")),
        "{err:?}"
    );
    let err = counter
        .call_encoded::<i64>("fail", vec![enc("nope")])
        .result()
        .expect_err("Err");
    assert!(
        matches!(&err, Error::ActorCall { failure, .. } if failure.kind == ErrorKind::Failed && failure.message == "nope"),
        "{err:?}"
    );
    // A bad constructor argument fails the creation with the decoder's words.
    let err = client
        .submit_actor_raw(COUNTER, vec![value("zero")], &SubmitOptions::default())
        .expect_err("bad constructor argument");
    assert!(err.to_string().contains("`start`"), "{err}");
    // The actor lives on through all that.
    assert_eq!(counter.call_encoded::<i64>("increment", vec![enc(1i64)]).result()?, 2);
    Ok(())
}

#[test]
fn an_actor_no_handle_holds_is_dropped_on_its_worker() -> Result<(), Error> {
    let Some(bin) = example() else { return Ok(()) };
    let (client, _s, _w1, _w2) = cluster(&bin, 1);
    let counter = client.submit_actor_raw(COUNTER, vec![value(0i64)], &on("w2"))?;
    let worker = counter.worker().to_string();
    let copy: ActorRef = counter.clone();
    assert_eq!(client.worker_info(&worker)?.actors, 1);
    drop(counter);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(client.worker_info(&worker)?.actors, 1, "a clone still holds it");
    drop(copy);
    wait_until("the worker dropped the actor", || {
        client.worker_info(&worker).expect("worker info").actors == 0
    });
    Ok(())
}

/// The Python `actor_call` of `docs/protocol.md` §7.8, with the helpers of
/// §11, creates and calls an actor on an example worker.
#[test]
fn the_python_actor_call_of_the_protocol_doc_works() -> anyhow::Result<()> {
    let Some(bin) = example() else { return Ok(()) };
    let has_msgpack = Command::new("python3")
        .args(["-c", "import msgpack"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_msgpack {
        cannot_run("python3 with msgpack is not installed");
        return Ok(());
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md"))?;
    let python_block = |section: &str| -> String {
        let at = doc.split(section).nth(1).expect("docs/protocol.md has the section");
        let block = at.split("```python\n").nth(1).and_then(|b| b.split("```").next());
        block.expect("the section has a python block").to_string()
    };
    let helpers = python_block("## 11. Worked example in Python");
    let helpers = helpers.split("def main(").next().expect("helpers before main");
    let actor_call = python_block("### 7.8 Actors and `run`");
    let driver = r#"
sock = connect(sys.argv[1], "Client", "py-actor")
recv_frame(sock)  # Welcome
key = "Counter-py1"
task = {"key": key, "function": "actor:actor_counter::Counter", "args": [{"Value": msgpack.packb(5)}],
        "priority": 0, "workers": [], "allow_other_workers": False, "retries": 0}
send_frame(sock, [{"UpdateGraph": {"tasks": [task], "wanted": [key]}}])
worker = None
while worker is None:
    batch, _ = recv_frame(sock)
    for m in batch:
        name, body = variant(m)
        if name == "KeyInMemory" and body["key"] == key:
            worker = body["who_has"][0]
print(actor_call(worker, key, "increment", 2))
print(actor_call(worker, key, "value"))
try:
    actor_call(worker, key, "nope")
except RuntimeError as e:
    print(str(e).split(":")[0])
"#;
    let dir = TempDir::new("python");
    let path = dir.0.join("actor.py");
    std::fs::write(&path, format!("{helpers}\n{actor_call}\n{driver}"))?;
    let (_s, addr) = scheduler();
    let (_w, _) = example_worker(&bin, &addr, "w1", 1);
    let out = Command::new("python3").arg(&path).arg(&addr).output()?;
    assert!(
        out.status.success(),
        "the doc's Python actor call failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "7\n7\nUnknownFunction\n");
    Ok(())
}

#[test]
fn the_example_demo_counts_to_100() {
    let Some(bin) = example() else { return };
    let out = Command::new(&bin).output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("counter: 100"), "{stdout}");
}

/// A typed actor defined here, on an in-process cluster (real TCP).
#[derive(Default)]
pub struct Log {
    lines: Vec<String>,
}

#[rdask::actor]
impl Log {
    pub fn new() -> Log {
        Log { lines: Vec::new() }
    }
    pub fn push(&mut self, line: String) -> usize {
        self.lines.push(line);
        self.lines.len()
    }
    pub fn lines(&self) -> Vec<String> {
        self.lines.clone()
    }
}

#[rdask::task]
fn log_line(log: Actor<Log>, i: u32) -> Result<usize, Error> {
    log.push(format!("line {i}")).result()
}

#[test]
fn typed_actor_passed_to_tasks_and_awaited() -> Result<(), Error> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    client.wait_for_workers(2, STARTUP)?;
    let log = client.submit_actor::<Log>(())?;
    let tasks = client.starmap(log_line, (0..40u32).map(|i| (&log, i)), &SubmitOptions::default())?;
    let mut lens = client.gather(&tasks)?;
    lens.sort();
    assert_eq!(lens, (1..=40).collect::<Vec<usize>>());
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let lines = rt.block_on(async { log.lines().await })?;
    assert_eq!(lines.len(), 40);
    // A handle of another type does not decode as this one.
    #[derive(serde::Serialize)]
    struct Handle {
        key: String,
        worker: String,
        type_name: String,
    }
    let other = Handle {
        key: "k".into(),
        worker: "tcp://127.0.0.1:1".into(),
        type_name: "x::Y".into(),
    };
    let err = rdask::task::decode_value::<Actor<Log>>(&enc(other)).expect_err("another type");
    assert!(
        err.to_string().contains("of type x::Y where one of type actors::Log"),
        "{err}"
    );
    Ok(())
}
