//! Shared-memory transfers between workers on one host (issue 15), with
//! real processes: `rdask scheduler` and two `rdask worker`s on this
//! machine. A task on worker B consumes a 64 MB result held by worker A;
//! the bytes must arrive exactly, through shared memory when both offer it
//! (counted in B's `bytes_fetched_shared_memory`, and logged), and by TCP
//! when either has `worker.shared_memory_transfers = false` or the shared
//! path fails.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdask::builtins::{blob_crc32, blob_len, make_blob};
use rdask::{Client, ScatterOptions, SubmitOptions};

mod common;
use common::*;

/// Size of the moved result.
const N: u64 = 64 * 1024 * 1024;

/// `rdask worker` named `name`, its log in `log`, with `env` set.
fn worker(scheduler: &str, name: &str, log: &Path, env: &[(&str, &str)]) -> (Proc, String) {
    let mut cmd = Command::new(rdask_bin());
    cmd.args(["worker", scheduler, "--nthreads", "1", "--name", name])
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    start_logging_to(&mut cmd, "rdask worker", log)
}

/// Makes a 64 MB blob on `a`, has `b` compute its length and CRC-32, and
/// checks both against `a`'s own CRC-32 of it (computed where it lives).
/// Returns the bytes `b` fetched through shared memory during the run, and
/// the blob's future: while it is held, the blob stays on both workers.
fn move_blob(client: &Client, a: &str, b: &str, seed: u64) -> (u64, rdask::Future<rdask::Blob>) {
    let on_a = SubmitOptions::impure().workers([a]);
    let on_b = SubmitOptions::impure().workers([b]);
    let before = client.worker_info(b).expect("b's info");
    let blob = client.submit_with(make_blob, (N, seed), &on_a).expect("submit");
    let crc_at_a: u32 = client
        .submit_with(blob_crc32, (&blob,), &on_a)
        .expect("submit")
        .result_timeout(Some(Duration::from_secs(120)))
        .expect("crc on a");
    let len_at_b: u64 = client
        .submit_with(blob_len, (&blob,), &on_b)
        .expect("submit")
        .result_timeout(Some(Duration::from_secs(120)))
        .expect("len on b");
    let crc_at_b: u32 = client
        .submit_with(blob_crc32, (&blob,), &on_b)
        .expect("submit")
        .result_timeout(Some(Duration::from_secs(120)))
        .expect("crc on b");
    assert_eq!(len_at_b, N);
    assert_eq!(crc_at_b, crc_at_a, "the blob changed on its way from A to B");
    let after = client.worker_info(b).expect("b's info");
    assert!(
        after.bytes_fetched_from_peers - before.bytes_fetched_from_peers >= N,
        "B fetched {} bytes",
        after.bytes_fetched_from_peers - before.bytes_fetched_from_peers
    );
    (
        after.bytes_fetched_shared_memory - before.bytes_fetched_shared_memory,
        blob,
    )
}

/// The addresses of two workers `a` and `b`, and a client, on a new
/// scheduler; each worker's log in `dir`.
struct Cluster {
    /// Scheduler, worker a, worker b.
    procs: Vec<Proc>,
    client: Client,
    a: String,
    b: String,
}

fn cluster(dir: &Path, env_a: &[(&str, &str)], env_b: &[(&str, &str)]) -> Cluster {
    let (s, addr) = scheduler();
    let (wa, a) = worker(&addr, "a", &dir.join("a.log"), env_a);
    let (wb, b) = worker(&addr, "b", &dir.join("b.log"), env_b);
    let client = Client::connect(&addr).expect("client");
    wait_for_workers(&client, 2);
    Cluster {
        procs: vec![s, wa, wb],
        client,
        a,
        b,
    }
}

#[test]
fn a_64_mb_result_moves_between_workers_on_one_host_through_shared_memory() {
    let dir = TempDir::new("shm-on");
    let c = cluster(&dir.0, &[], &[]);
    let (shared, _blob) = move_blob(&c.client, &c.a, &c.b, 7);
    assert!(shared >= N, "B fetched only {shared} bytes through shared memory");
    let served = c.client.worker_info(&c.a).expect("a's info").bytes_served_shared_memory;
    assert!(served >= N, "A served only {served} bytes through shared memory");
    let log = std::fs::read_to_string(dir.0.join("b.log")).unwrap_or_default();
    assert!(
        log.contains("reaching this peer through shared memory"),
        "B's log does not say it used shared memory:\n{log}"
    );
    // Again, over the connection kept from the first fetch.
    let (again, _) = move_blob(&c.client, &c.a, &c.b, 8);
    assert!(again >= N, "second fetch: {again} bytes through shared memory");
}

#[test]
fn with_shared_memory_off_on_either_side_results_move_by_tcp() {
    let off = [("RDASK_WORKER__SHARED_MEMORY_TRANSFERS", "false")];
    for (env_a, env_b, which) in [(&off[..], &[][..], "a"), (&[][..], &off[..], "b")] {
        let dir = TempDir::new(&format!("shm-off-{which}"));
        let c = cluster(&dir.0, env_a, env_b);
        let (shared, _) = move_blob(&c.client, &c.a, &c.b, 9);
        assert_eq!(shared, 0, "shared memory used although off on {which}");
        let log = std::fs::read_to_string(dir.0.join(format!("{which}.log"))).unwrap_or_default();
        assert!(
            log.contains("shared-memory transfers off: worker.shared_memory_transfers = false"),
            "{which}'s log does not say shared memory is off:\n{log}"
        );
    }
}

#[test]
fn when_the_shared_memory_socket_is_unreachable_the_fetch_falls_back_to_tcp_and_says_so() {
    let dir = TempDir::new("shm-gone");
    let local_a = dir.0.join("a-local");
    std::fs::create_dir_all(&local_a).expect("mkdir");
    let local = local_a.to_str().expect("utf-8").to_string();
    let c = cluster(&dir.0, &[("RDASK_WORKER__LOCAL_DIRECTORY", &local)], &[]);
    // As for a peer in another mount namespace: its socket's path does not
    // exist here.
    let mut removed = 0;
    for entry in std::fs::read_dir(&local_a).expect("read dir").flatten() {
        if entry.file_name().to_string_lossy().starts_with("rdask-shm-") {
            std::fs::remove_dir_all(entry.path()).expect("remove socket dir");
            removed += 1;
        }
    }
    assert_eq!(removed, 1, "A's shared-memory socket directory not found in {local}");
    let (shared, _) = move_blob(&c.client, &c.a, &c.b, 10);
    assert_eq!(shared, 0);
    let log = std::fs::read_to_string(dir.0.join("b.log")).unwrap_or_default();
    assert!(
        log.contains("shared-memory fetch through") && log.contains("reaching this peer by TCP"),
        "B's log does not say it fell back to TCP:\n{log}"
    );
}

#[test]
fn a_value_fetched_through_shared_memory_is_counted_and_spilled_like_any_other() {
    let dir = TempDir::new("shm-spill");
    // B may keep 40 MB of results in memory: the 64 MB blob it maps goes to
    // its spill directory, and tasks on B then read it from there.
    let env_b = [
        ("RDASK_WORKER__MEMORY_LIMIT", "400000000"),
        ("RDASK_WORKER__MEMORY_TARGET", "0.1"),
    ];
    let c = cluster(&dir.0, &[], &env_b);
    // The blob's future is held: released, the value would leave B's store
    // (and its spill directory) before the check below.
    let (shared, _blob) = move_blob(&c.client, &c.a, &c.b, 11);
    assert!(shared >= N, "B fetched only {shared} bytes through shared memory");
    // Spilling is the memory monitor's, every `memory_monitor_interval`:
    // polled for a bounded time rather than read once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut info = c.client.worker_info(&c.b).expect("b's info");
    while info.spilled_bytes < N && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        info = c.client.worker_info(&c.b).expect("b's info");
    }
    assert!(info.spilled_bytes >= N, "B spilled {} bytes", info.spilled_bytes);
    assert!(info.nbytes < N, "B still holds {} bytes in memory", info.nbytes);
}

#[test]
fn a_direct_scatter_pushes_through_shared_memory_where_offered_and_by_tcp_where_not() {
    let dir = TempDir::new("direct-scatter");
    let off = [("RDASK_WORKER__SHARED_MEMORY_TRANSFERS", "false")];
    let c = cluster(&dir.0, &[], &off);
    let bytes: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let blob = rdask::Blob(bytes.clone());
    let opts = ScatterOptions::default().direct(true).broadcast(true).hash(false);
    let f = c
        .client
        .scatter_with(vec![blob.clone()], &opts)
        .expect("direct scatter")
        .remove(0);
    // Both copies are confirmed when the scatter returns.
    let mut holders = c.client.who_has(&[f.key()]).expect("who_has").remove(0).workers;
    holders.sort();
    let mut both = vec![c.a.clone(), c.b.clone()];
    both.sort();
    assert_eq!(holders, both);
    // a offers shared memory: its copy came as a memory file; b does not:
    // its copy came by TCP from the client. Neither came through the
    // scheduler (which would have sent a StoreData, not a push).
    let (ia, ib) = (
        c.client.worker_info(&c.a).expect("a's info"),
        c.client.worker_info(&c.b).expect("b's info"),
    );
    assert!(ia.bytes_pushed >= 1 << 20, "a: {ia:?}");
    assert_eq!(ia.bytes_pushed_shared_memory, ia.bytes_pushed, "a: {ia:?}");
    assert!(ib.bytes_pushed >= 1 << 20, "b: {ib:?}");
    assert_eq!(ib.bytes_pushed_shared_memory, 0, "b: {ib:?}");
    // Each copy is exact, and read where it is: nothing moves.
    copies_are_exact(&c.client, &f, &bytes);
    for w in [&c.a, &c.b] {
        assert_eq!(c.client.worker_info(w).expect("info").bytes_fetched_from_peers, 0);
    }
    assert_eq!(f.result().expect("gather").0, bytes);
    // Without broadcast: one copy each, spread; small values ride inline.
    let values: Vec<u64> = (0..6).collect();
    let fs = c
        .client
        .scatter_with(values.clone(), &ScatterOptions::default().direct(true))
        .expect("direct scatter of six");
    assert_eq!(c.client.gather(&fs).expect("gather"), values);
    let placed: Vec<usize> = fs
        .iter()
        .map(|f| c.client.who_has(&[f.key()]).expect("who_has").remove(0).workers.len())
        .collect();
    assert_eq!(placed, vec![1; 6]);
    // Hashed keys: the same value again is the same key, not a new copy.
    let again = c
        .client
        .scatter_with(vec![3u64], &ScatterOptions::default().direct(true))
        .expect("again")
        .remove(0);
    assert_eq!(again.key(), fs[3].key());
    drop((f, fs, again));
}

/// Each worker's copy of scattered blob `f`, read where it is, is `bytes`.
fn copies_are_exact(client: &Client, f: &rdask::Future<rdask::Blob>, bytes: &[u8]) {
    for w in ["a", "b"] {
        let crc: u32 = client
            .submit_with(blob_crc32, (f,), &SubmitOptions::impure().workers([w]))
            .expect("submit")
            .result()
            .expect("crc");
        assert_eq!(crc, crc32fast::hash(bytes), "the copy on {w} differs");
    }
}

/// Inodes of the memory files holding values (`memfd:rdask-value`: pushed,
/// fetched or made by a task) process `pid` has mapped.
fn mapped_memory_files(pid: u32) -> std::collections::BTreeSet<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    maps.lines()
        .filter(|l| l.contains("memfd:rdask-value"))
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .collect()
}

/// Waits (at most 30 s) until none of `pids` maps a value's memory file.
fn wait_until_unmapped(pids: &[u32]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !pids.iter().all(|&p| mapped_memory_files(p).is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the workers still map the file after its release"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_broadcast_direct_scatter_hands_every_worker_on_the_host_the_same_memory_file() {
    let dir = TempDir::new("direct-scatter-shared");
    let c = cluster(&dir.0, &[], &[]);
    let bytes: Vec<u8> = (0..(4u32 << 20))
        .map(|i| (i.wrapping_mul(40_503) >> 13) as u8)
        .collect();
    let opts = ScatterOptions::default().direct(true).broadcast(true).hash(false);
    let f = c
        .client
        .scatter_with(vec![rdask::Blob(bytes.clone())], &opts)
        .expect("direct scatter")
        .remove(0);
    for w in [&c.a, &c.b] {
        let info = c.client.worker_info(w).expect("info");
        assert!(info.bytes_pushed_shared_memory >= 4 << 20, "{w}: {info:?}");
    }
    // One copy on the host: both workers map the very same file.
    let (on_a, on_b) = (
        mapped_memory_files(c.procs[1].pid()),
        mapped_memory_files(c.procs[2].pid()),
    );
    assert_eq!(on_a.len(), 1, "a maps {on_a:?}");
    assert_eq!(on_a, on_b, "a and b map different memory files");
    copies_are_exact(&c.client, &f, &bytes);
    // Released, the value leaves both workers, and with it the file.
    drop(f);
    wait_until_unmapped(&[c.procs[1].pid(), c.procs[2].pid()]);
}

/// A large task result is encoded straight into a memory file on the
/// worker that made it, and a peer on the host fetching it maps that very
/// file: no copy for the fetch (before, the serving worker copied the
/// value into a new file for each fetch).
#[test]
fn a_large_result_is_made_in_a_memory_file_that_a_fetching_peer_maps_as_is() {
    let dir = TempDir::new("shared-results");
    let c = cluster(&dir.0, &[], &[]);
    let n: u64 = 8 << 20;
    let on_a = SubmitOptions::impure().workers([c.a.as_str()]);
    let on_b = SubmitOptions::impure().workers([c.b.as_str()]);
    let blob = c.client.submit_with(make_blob, (n, 3u64), &on_a).expect("submit");
    let crc_at_a: u32 = c
        .client
        .submit_with(blob_crc32, (&blob,), &on_a)
        .expect("submit")
        .result_timeout(Some(Duration::from_secs(120)))
        .expect("crc on a");
    let made = mapped_memory_files(c.procs[1].pid());
    assert_eq!(made.len(), 1, "a maps {made:?}: its result is not one memory file");
    let crc_at_b: u32 = c
        .client
        .submit_with(blob_crc32, (&blob,), &on_b)
        .expect("submit")
        .result_timeout(Some(Duration::from_secs(120)))
        .expect("crc on b");
    assert_eq!(crc_at_b, crc_at_a, "the blob changed on its way from A to B");
    assert_eq!(
        mapped_memory_files(c.procs[2].pid()),
        made,
        "b maps another file than a's result"
    );
    let served = c.client.worker_info(&c.a).expect("a's info").bytes_served_shared_memory;
    assert!(served >= n, "A served only {served} bytes through shared memory");
    // A small result stays in memory.
    let small = c.client.submit_with(make_blob, (1000u64, 4u64), &on_a).expect("submit");
    let _: u64 = c
        .client
        .submit_with(blob_len, (&small,), &on_b)
        .expect("submit")
        .result_timeout(Some(Duration::from_secs(60)))
        .expect("len on b");
    assert_eq!(mapped_memory_files(c.procs[1].pid()), made);
    // Released, the result leaves both workers, and with it the file.
    drop(blob);
    wait_until_unmapped(&[c.procs[1].pid(), c.procs[2].pid()]);
}
