//! `rdask::progress` on what is not a list of futures: a persisted bag, a
//! `Delayed` built on persisted parts, and a lazy result with nothing on
//! the cluster (a clear error, not a wait). A `LocalCluster` (real TCP)
//! runs them; stdout is not a terminal under the test harness, so progress
//! prints plain lines and returns the final counts.

use rdask::bag;
use rdask::builtins::{add, inc};
use rdask::delayed::delayed;
use rdask::{progress, Error, FuturesOf, LocalCluster};

fn cluster() -> LocalCluster {
    LocalCluster::builder()
        .dashboard_address(None)
        .build()
        .expect("cluster")
}

#[test]
fn progress_follows_a_persisted_bag_to_the_end() {
    let cluster = cluster();
    let client = cluster.client().expect("client");
    let kept = bag::from_sequence(0..200i64, 8)
        .expect("bag")
        .map(inc)
        .persist(&client)
        .expect("persist");
    let counts = progress(&kept).expect("progress");
    let total: u64 = counts.values().map(|c| c.total).sum();
    let finished: u64 = counts.values().map(|c| c.finished).sum();
    assert_eq!((total, finished), (8, 8), "one future per partition: {counts:?}");
    // The bag built from the persisted one follows the same futures.
    let again = kept.map(inc);
    assert_eq!(again.futures_of().expect("futures").len(), 8);
}

#[test]
fn progress_follows_the_persisted_parts_a_delayed_is_built_on() {
    let cluster = cluster();
    let client = cluster.client().expect("client");
    let a = delayed(inc, (1i64,)).persist(&client).expect("persist");
    let b = delayed(inc, (2i64,)).persist(&client).expect("persist");
    let total = delayed(add, (&a, &b));
    let counts = progress(&total).expect("progress");
    let c = counts["inc"];
    assert_eq!((c.total, c.finished, c.erred), (2, 2, 0), "{counts:?}");
    assert!(!counts.contains_key("add"), "not submitted: {counts:?}");
    // A persisted lazy result is a future: progress takes it as it is.
    let fut = total.persist(&client).expect("persist");
    let counts = progress(&fut).expect("progress");
    assert_eq!(counts["add"].finished, 1, "{counts:?}");
    assert_eq!(fut.result().expect("result"), 5);
}

#[test]
fn progress_on_a_lazy_result_with_nothing_on_the_cluster_says_to_persist_it() {
    let lazy = delayed(inc, (1i64,));
    match progress(&lazy) {
        Err(Error::Input(message)) => assert!(message.contains("persist it first"), "{message}"),
        other => panic!("expected an input error, got {other:?}"),
    }
    let b = bag::from_sequence(0..10i64, 2).expect("bag");
    assert!(matches!(progress(&b), Err(Error::Input(_))));
}
