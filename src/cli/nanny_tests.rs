//! Unit tests of the nanny's restart policy (no processes).

use super::*;

#[test]
fn the_workers_own_exit_codes_are_passed_on() {
    let mut p = RestartPolicy::default();
    let now = Instant::now();
    for code in [0, 1, 2] {
        assert_eq!(p.decide(&WorkerEnd::Exited(code), now), Decision::Exit(code));
    }
}

#[test]
fn crashes_and_memory_kills_restart_with_a_reason() {
    let mut p = RestartPolicy::default();
    let now = Instant::now();
    let Decision::Restart(why) = p.decide(&WorkerEnd::Killed(9), now) else {
        panic!("a killed worker restarts")
    };
    assert!(why.contains("signal 9"), "{why}");
    let Decision::Restart(why) = p.decide(&WorkerEnd::Exited(101), now) else {
        panic!("a panicked worker restarts")
    };
    assert!(why.contains("code 101"), "{why}");
    let end = WorkerEnd::OverMemory {
        rss: 2_000_000_000,
        threshold: 1_900_000_000,
    };
    let Decision::Restart(why) = p.decide(&end, now) else {
        panic!("a worker over its memory restarts")
    };
    assert!(why.contains("terminate threshold"), "{why}");
}

#[test]
fn too_many_restarts_in_the_window_give_up_and_old_ones_expire() {
    let mut p = RestartPolicy::default();
    let start = Instant::now();
    for _ in 0..MAX_RESTARTS_IN_WINDOW {
        assert!(matches!(p.decide(&WorkerEnd::Killed(9), start), Decision::Restart(_)));
    }
    assert!(matches!(p.decide(&WorkerEnd::Killed(9), start), Decision::GiveUp(_)));
    // Once the window has passed, the count starts again.
    let later = start + RESTART_WINDOW + Duration::from_secs(1);
    assert!(matches!(p.decide(&WorkerEnd::Killed(9), later), Decision::Restart(_)));
}

#[test]
fn the_threshold_needs_a_limit_and_a_fraction() {
    assert_eq!(terminate_threshold(1000, 0.95), Some(950));
    assert_eq!(terminate_threshold(0, 0.95), None);
    assert_eq!(terminate_threshold(1000, 0.0), None);
}

#[test]
fn a_requested_restart_restarts_at_once_and_never_counts_toward_the_limit() {
    let mut p = RestartPolicy::default();
    let now = Instant::now();
    for _ in 0..MAX_RESTARTS_IN_WINDOW * 3 {
        assert_eq!(
            p.decide(&WorkerEnd::Exited(RESTART_EXIT_CODE), now),
            Decision::Restart("restart requested by a client".into())
        );
    }
    // The crash budget is untouched.
    for _ in 0..MAX_RESTARTS_IN_WINDOW {
        assert!(matches!(p.decide(&WorkerEnd::Killed(9), now), Decision::Restart(_)));
    }
    assert!(matches!(p.decide(&WorkerEnd::Killed(9), now), Decision::GiveUp(_)));
}
