//! The scheduler's run bookkeeping: deterministic owners, one run per
//! shuffle, restarts with new run ids when an owner leaves.

use super::*;

fn workers(n: u32) -> Vec<(u32, String)> {
    // Given out of address order on purpose.
    (0..n).rev().map(|i| (i, format!("tcp://10.0.0.{i}:1"))).collect()
}

#[test]
fn owners_are_contiguous_ranges_over_sorted_addresses() {
    let mut r = ShuffleRuns::default();
    let (spec, created) = r.get_or_create("s", 3, 5, &workers(2)).unwrap();
    assert!(created);
    assert_eq!(spec.run_id, 1);
    assert_eq!(
        spec.owners,
        [
            "tcp://10.0.0.0:1",
            "tcp://10.0.0.0:1",
            "tcp://10.0.0.0:1",
            "tcp://10.0.0.1:1",
            "tcp://10.0.0.1:1"
        ]
    );
    assert_eq!(r.owners("s").unwrap(), &[0, 0, 0, 1, 1]);
    // Asked again (another transfer task): the same run.
    let (again, created) = r.get_or_create("s", 3, 5, &workers(3)).unwrap();
    assert!(!created);
    assert_eq!(again.run_id, 1);
}

#[test]
fn more_workers_than_outputs_use_the_first_ones_spread() {
    assert_eq!((0..2).map(|j| owner_index(j, 2, 4)).collect::<Vec<_>>(), [0, 2]);
    assert_eq!((0..4).map(|j| owner_index(j, 4, 1)).collect::<Vec<_>>(), [0, 0, 0, 0]);
}

#[test]
fn an_owner_leaving_ends_the_run_and_the_next_ask_restarts() {
    let mut r = ShuffleRuns::default();
    r.get_or_create("a", 2, 2, &workers(2)).unwrap();
    r.get_or_create("b", 2, 1, &workers(2)).unwrap(); // owned by worker 0 only
    let ended = r.worker_removed(&1);
    assert_eq!(ended.iter().map(|s| s.shuffle_id.as_str()).collect::<Vec<_>>(), ["a"]);
    assert_eq!(r.len(), 1);
    let (spec, created) = r.get_or_create("a", 2, 2, &[(0, "tcp://10.0.0.0:1".into())]).unwrap();
    assert!(created);
    assert_eq!(spec.run_id, 3, "run ids only grow");
    assert_eq!(spec.owners, ["tcp://10.0.0.0:1", "tcp://10.0.0.0:1"]);
    assert!(r.worker_removed(&7).is_empty());
}

#[test]
fn bad_asks_are_refused() {
    let mut r: ShuffleRuns<u32> = ShuffleRuns::default();
    assert_eq!(
        r.get_or_create("s", 1, 1, &[]).unwrap_err(),
        RunError::NoWorkers("s".into())
    );
    assert_eq!(
        r.get_or_create("s", 0, 1, &workers(1)).unwrap_err(),
        RunError::Empty("s".into())
    );
    r.get_or_create("s", 2, 2, &workers(1)).unwrap();
    assert!(matches!(
        r.get_or_create("s", 3, 2, &workers(1)),
        Err(RunError::Mismatch { .. })
    ));
}
