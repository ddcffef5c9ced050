//! Tests of the wait spin's window and of reading the runnable count.

use super::*;

const MAX: Duration = Duration::from_micros(250);

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

#[test]
fn the_window_grows_while_waits_end_within_the_maximum_and_shrinks_to_nothing_when_they_outlast_it() {
    // A wait caught by the window keeps it.
    assert_eq!(next_window(us(100), us(80), MAX), us(100));
    // One a longer spin would have caught doubles it, up to the maximum.
    assert_eq!(next_window(us(50), us(180), MAX), us(100));
    assert_eq!(next_window(us(200), us(240), MAX), MAX);
    // From nothing it grows back to the start.
    assert_eq!(next_window(Duration::ZERO, us(100), MAX), WAIT_SPIN_START);
    // Waits longer than the maximum halve it, then turn it off.
    let mut w = MAX;
    let mut steps = 0;
    while !w.is_zero() {
        w = next_window(w, Duration::from_millis(5), MAX);
        steps += 1;
        assert!(steps < 10, "the window never reached zero: {w:?}");
    }
    // With spinning off (maximum 0) it stays off.
    assert_eq!(next_window(Duration::ZERO, us(10), Duration::ZERO), Duration::ZERO);
}

#[test]
fn the_runnable_count_is_read_from_loadavg_and_a_malformed_line_gives_none() {
    assert_eq!(runnable_from_loadavg("0.33 1.07 1.54 3/456 18354\n"), Some(3));
    assert_eq!(runnable_from_loadavg("0.33 1.07 1.54"), None);
    assert_eq!(runnable_from_loadavg("0.33 1.07 1.54 x/456 1"), None);
}

#[test]
fn a_wake_up_during_the_spin_ends_it_and_a_wait_without_one_parks_after_the_window() {
    let woken = AtomicBool::new(true);
    let spin = WaitSpin {
        started: Instant::now(),
        window: Duration::from_secs(30),
    };
    assert!(spin.spin_until(&woken), "a set flag ends the spin at once");
    woken.store(false, Ordering::Release);
    let spin = WaitSpin {
        started: Instant::now(),
        window: us(200),
    };
    let t = Instant::now();
    assert!(!spin.spin_until(&woken));
    assert!(t.elapsed() < Duration::from_secs(5), "the spin outlived its window");
}

#[test]
fn a_spin_bound_that_is_not_a_number_of_microseconds_is_refused_with_the_variable_named() {
    assert_eq!(parse_wait_spin("0"), Ok(Duration::ZERO));
    assert_eq!(parse_wait_spin(" 120 "), Ok(us(120)));
    for bad in ["", "fast", "-5", "1.5"] {
        let err = parse_wait_spin(bad).expect_err(bad);
        assert!(err.contains(WAIT_SPIN_ENV) && err.contains("250"), "{err}");
    }
}
