//! Restarting from the journal, without sockets: the records a scheduler
//! emits fold into an image, a new scheduler loads it once the workers
//! that held results register again with them (they are not recomputed),
//! and reconnecting clients take over their journaled sessions. Also the
//! answers of a scheduler without a journal to peers that come back.

use std::time::{Duration, Instant};

use super::helpers::*;
use crate::scheduler::{JournalImage, LOST_WITHOUT_JOURNAL};

fn keys_of(image: &JournalImage) -> Vec<String> {
    let mut k: Vec<String> = image.tasks.keys().cloned().collect();
    k.sort();
    k
}

/// A journaled scheduler ran `a1`, `a2` (on workers 1 and 2) and was
/// computing `s = f(a1, a2)` for client 1 when it died.
fn journaled_run() -> (JournalImage, Vec<crate::scheduler::JournalRecord>, H) {
    let mut h = H::new();
    h.s.enable_journal();
    h.worker(1, "w1", &["inc"]);
    h.worker(2, "w2", &["inc"]);
    h.submit(
        C1,
        vec![
            spec("a1", "inc", &[]),
            spec("a2", "inc", &[]),
            spec("s", "inc", &["a1", "a2"]),
        ],
        &["s"],
    );
    let on = |h: &H, key: &str| -> u64 {
        h.out
            .iter()
            .find_map(|m| match m {
                Outgoing::Worker(id, ToWorker::ComputeTask { key: k, .. }) if k == key => Some(id.0),
                _ => None,
            })
            .expect("assigned")
    };
    let (w_a1, w_a2) = (on(&h, "a1"), on(&h, "a2"));
    h.finish(w_a1, "a1");
    h.finish(w_a2, "a2");
    let records = h.s.take_journal_records();
    (JournalImage::from_records(records.clone()), records, h)
}

fn holder(image: &JournalImage, key: &str) -> String {
    image.memory.get(key).expect("journaled in memory").0.clone()
}

fn register_with(s: &mut SchedulerState, id: u64, name: &str, keys: &[&str]) -> Vec<Outgoing> {
    let mut o = Outbox::default();
    let r = WorkerRegistration {
        keys: keys.iter().map(|k| (k.to_string(), 8)).collect(),
        ..reg(name, &["inc"])
    };
    s.add_worker(WorkerId(id), r, &mut o).expect("registers");
    o.messages
}

fn computes(msgs: &[Outgoing]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            Outgoing::Worker(_, ToWorker::ComputeTask { key, .. }) => Some(key.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_journal_folds_into_the_live_tasks_results_and_wants() {
    let (image, _, _) = journaled_run();
    assert_eq!(keys_of(&image), ["a1", "a2", "s"]);
    let mut mem: Vec<&String> = image.memory.keys().collect();
    mem.sort();
    assert_eq!(mem, ["a1", "a2"]);
    assert_eq!(image.wants.get(&C1.0).cloned(), Some(vec!["s".to_string()]));
}

#[test]
fn released_and_forgotten_tasks_leave_the_image() {
    let (_, mut records, mut h) = journaled_run();
    h.finish(1, "s");
    h.finish(2, "s");
    h.release(C1, &["s"]);
    records.extend(h.s.take_journal_records());
    let image = JournalImage::from_records(records);
    assert!(image.tasks.is_empty(), "{:?}", keys_of(&image));
    assert!(image.memory.is_empty());
    assert!(image.wants.is_empty());
}

#[test]
fn a_snapshot_rebuilds_the_same_image_as_the_history() {
    let (image, _, h) = journaled_run();
    let again = JournalImage::from_records(h.s.journal_snapshot());
    assert_eq!(keys_of(&again), keys_of(&image));
    assert_eq!(again.memory, image.memory);
    assert_eq!(again.wants, image.wants);
}

#[test]
fn a_restarted_scheduler_keeps_the_results_its_workers_still_hold() {
    let (image, _, _) = journaled_run();
    let (h1, h2) = (holder(&image, "a1"), holder(&image, "a2"));
    let mut s = SchedulerState::new(SchedulerConfig::default());
    s.enable_journal();
    let now = Instant::now();
    s.begin_recovery(image, now);
    let mut o = Outbox::default();
    s.add_client(ClientId(100), &mut o);
    // The client reconnects before the workers: held back until loaded.
    s.handle_client_message(
        ClientId(100),
        FromClient::ReconnectClient {
            previous_client_id: C1.0,
            keys: vec!["s".into()],
        },
        &mut o,
    )
    .expect("reconnect");
    let mut msgs = register_with(&mut s, 11, &h1, &["a1"]);
    assert!(s.check_recovery(now, &mut o).is_none(), "waits for the other holder");
    let other = if h1 == h2 { "w-other" } else { h2.as_str() };
    let held: &[&str] = if h1 == h2 { &[] } else { &["a2"] };
    msgs.extend(register_with(&mut s, 12, other, held));
    let report = s.check_recovery(now, &mut o).expect("loaded once both are back");
    msgs.append(&mut o.messages);
    assert_eq!(report.tasks, 3);
    assert_eq!(report.kept, if h1 == h2 { 1 } else { 2 });
    s.check_invariants().expect("invariants");
    assert_eq!(s.task_state("a1"), Some(TaskState::Memory));
    // Only the sum runs: the inputs are not recomputed.
    if h1 != h2 {
        assert_eq!(computes(&msgs), ["s"]);
    }
    // The new session now wants `s`: it hears of its result.
    let (worker, run) = msgs
        .iter()
        .find_map(|m| match m {
            Outgoing::Worker(id, ToWorker::ComputeTask { key, run_id, .. }) if key == "s" => Some((*id, *run_id)),
            _ => None,
        })
        .expect("s assigned");
    let mut done = finished("s", 8, 10);
    if let FromWorker::TaskFinished { run_id, .. } = &mut done {
        *run_id = run;
    }
    s.handle_worker_message(worker, done, &mut o).expect("finished");
    assert!(o.messages.iter().any(|m| matches!(
        m,
        Outgoing::Client(ClientId(100), ToClient::KeyInMemory { key, .. }) if key == "s"
    )));
    // The old session is gone, so releasing `s` forgets everything.
    s.handle_client_message(
        ClientId(100),
        FromClient::ReleaseKeys { keys: vec!["s".into()] },
        &mut o,
    )
    .expect("release");
    assert_eq!(s.ntasks(), 0);
}

#[test]
fn results_of_a_worker_that_does_not_come_back_are_recomputed_after_the_wait() {
    let (image, _, _) = journaled_run();
    let (h1, h2) = (holder(&image, "a1"), holder(&image, "a2"));
    if h1 == h2 {
        return; // placement put both on one worker: nothing to tell apart
    }
    let mut s = SchedulerState::new(SchedulerConfig::default());
    let now = Instant::now();
    s.begin_recovery(image, now);
    let mut msgs = register_with(&mut s, 11, &h1, &["a1"]);
    let mut o = Outbox::default();
    assert!(s.check_recovery(now + Duration::from_secs(1), &mut o).is_none());
    let late = now + Duration::from_secs_f64(SchedulerConfig::default().journal_worker_wait_s + 1.0);
    let report = s.check_recovery(late, &mut o).expect("loaded after the wait");
    msgs.extend(o.messages);
    assert_eq!((report.kept, report.missing), (1, 1));
    assert_eq!(report.absent_workers, [h2]);
    assert_eq!(computes(&msgs), ["a2"], "only the lost result is recomputed");
    s.check_invariants().expect("invariants");
    // The journaled session, never resumed, is dropped after its wait.
    let later = late + Duration::from_secs_f64(SchedulerConfig::default().journal_client_wait_s + 1.0);
    let mut o = Outbox::default();
    s.check_recovery(later, &mut o);
    assert_eq!(s.ntasks(), 0, "nothing is wanted any more");
}

#[test]
fn keys_a_worker_holds_that_the_journal_does_not_know_are_freed() {
    let (image, _, _) = journaled_run();
    let h1 = holder(&image, "a1");
    let mut s = SchedulerState::new(SchedulerConfig {
        journal_worker_wait_s: 0.0,
        ..SchedulerConfig::default()
    });
    let now = Instant::now();
    s.begin_recovery(image, now);
    register_with(&mut s, 11, &h1, &["a1", "stranger"]);
    let mut o = Outbox::default();
    let report = s.check_recovery(now, &mut o).expect("loaded");
    assert_eq!(report.unknown_claims, 1);
    assert!(o.messages.iter().any(|m| matches!(
        m,
        Outgoing::Worker(WorkerId(11), ToWorker::FreeKeys { keys }) if keys.contains(&"stranger".to_string())
    )));
}

#[test]
fn without_a_journal_a_worker_registering_again_is_told_to_drop_what_is_unknown() {
    let mut h = H::new();
    let msgs = register_with(&mut h.s, 5, "back", &["ghost"]);
    assert!(msgs.iter().any(|m| matches!(
        m,
        Outgoing::Worker(WorkerId(5), ToWorker::FreeKeys { keys }) if keys == &["ghost".to_string()]
    )));
}

#[test]
fn without_a_journal_a_reconnecting_clients_keys_err_saying_work_was_lost() {
    let mut h = H::new();
    h.client(
        C2,
        FromClient::ReconnectClient {
            previous_client_id: 77,
            keys: vec!["lost".into()],
        },
    );
    let errs: Vec<&ToClient> = h.to_client(C2);
    match errs.as_slice() {
        [ToClient::TaskErred { key, failure }] => {
            assert_eq!(key, "lost");
            assert_eq!(failure.kind, ErrorKind::DataLost);
            assert!(failure.message.contains(LOST_WITHOUT_JOURNAL), "{}", failure.message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_reconnecting_to_the_same_scheduler_takes_over_its_sessions_keys() {
    let mut h = H::new();
    h.worker(1, "w1", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    let c3 = ClientId(3);
    let mut o = Outbox::default();
    h.s.add_client(c3, &mut o);
    h.client(
        c3,
        FromClient::ReconnectClient {
            previous_client_id: C1.0,
            keys: vec!["x".into()],
        },
    );
    // The old session's grace period ends: `x` stays, wanted by c3.
    let mut o = Outbox::default();
    h.s.remove_client(C1, &mut o);
    h.absorb(o);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    h.finish(1, "x");
    assert!(h
        .to_client(c3)
        .iter()
        .any(|m| matches!(m, ToClient::KeyInMemory { key, .. } if key == "x")));
}
