//! The worker's actor table and the macro's expansion, without sockets:
//! construction outside a worker, dispatch, unknown methods and keys,
//! serialized calls, removal.

use super::*;
use crate::task::{decode_value, encode_value};
use crate::wire::messages::ErrorKind;

pub struct Tally {
    n: i64,
}

#[rdask_macros::actor(crate = "crate")]
impl Tally {
    pub fn new(start: i64) -> Tally {
        Tally { n: start }
    }
    /// Adds `by`.
    pub fn add(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }
    pub fn get(&self) -> i64 {
        self.n
    }
    pub fn fail(&self, why: String) -> Result<i64, String> {
        Err(why)
    }
    fn _private(&self) {}
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn names_and_registration() {
    assert_eq!(Tally::NAME, "rdask::actor_api::tests::Tally");
    assert_eq!(Tally::CONSTRUCTOR, constructor_name(Tally::NAME));
    assert!(crate::registry::Registry::global().contains(Tally::CONSTRUCTOR));
}

#[test]
fn constructing_outside_a_worker_is_a_clear_error() {
    let arg = encode_value(&1i64).expect("encodes");
    let err = construct::<Tally>(&[&arg]).expect_err("no worker here");
    assert!(err.message.contains("only be created on a worker"), "{}", err.message);
}

#[test]
fn dispatch_runs_methods_and_names_unknown_ones() {
    let arg = encode_value(&5i64).expect("encodes");
    let mut t = Tally::construct(&[&arg]).expect("constructs");
    let out = t.dispatch("add", &[&arg]).expect("adds");
    assert_eq!(decode_value::<i64>(&out).expect("decodes"), 10);
    let err = t.dispatch("nope", &[]).expect_err("unknown");
    assert_eq!(err.kind, ErrorKind::UnknownFunction);
    assert!(
        err.message.contains("no method \"nope\"") && err.message.contains("add, get, fail"),
        "{}",
        err.message
    );
    let err = t
        .dispatch("_private", &[])
        .expect_err("private methods are not actor methods");
    assert_eq!(err.kind, ErrorKind::UnknownFunction);
    let err = t.dispatch("add", &[]).expect_err("arity");
    assert_eq!(err.kind, ErrorKind::BadArguments);
    let bad = encode_value(&"x").expect("encodes");
    let err = t.dispatch("add", &[&bad]).expect_err("type");
    assert!(
        err.message.contains("`by`") && err.message.contains("i64"),
        "{}",
        err.message
    );
    let why = encode_value(&"no").expect("encodes");
    let err = t.dispatch("fail", &[&why]).expect_err("Err fails the call");
    assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Failed, "no"));
}

#[test]
fn table_serializes_calls_and_forgets_removed_actors() {
    let table = ActorTable::default();
    table.insert("a".into(), Box::new(Tally { n: 0 }));
    assert_eq!(table.len(), 1);
    let one = encode_value(&1i64).expect("encodes");
    let results = rt().block_on(async {
        let calls = (0..50).map(|_| table.call("w", "a", "add".into(), vec![one.clone()]));
        futures_util::future::join_all(calls).await
    });
    let seen: Vec<i64> = results
        .into_iter()
        .map(|r| decode_value(&r.expect("call")).expect("decodes"))
        .collect();
    // One at a time (each saw the one before it), first come first served.
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    assert_eq!(table.remove(&["b".into(), "a".into()]), 1);
    assert!(table.is_empty());
    let err = rt()
        .block_on(table.call("w", "a", "get".into(), vec![]))
        .expect_err("gone");
    assert_eq!(err.kind, ErrorKind::ActorLost);
    assert!(err.message.contains("worker w holds no actor \"a\""), "{}", err.message);
}

#[test]
fn a_panicking_method_fails_the_call_and_the_actor_lives_on() {
    #[derive(Default)]
    pub struct Fragile;
    #[rdask_macros::actor(crate = "crate")]
    impl Fragile {
        pub fn new() -> Fragile {
            Fragile
        }
        pub fn boom(&mut self) -> u8 {
            panic!("kaboom")
        }
        pub fn ok(&self) -> u8 {
            7
        }
    }
    let table = ActorTable::default();
    table.insert("f".into(), Box::new(Fragile));
    let err = rt()
        .block_on(table.call("w", "f", "boom".into(), vec![]))
        .expect_err("panics");
    assert_eq!(err.kind, ErrorKind::Panicked);
    assert!(err.message.contains("kaboom"), "{}", err.message);
    let ok = rt()
        .block_on(table.call("w", "f", "ok".into(), vec![]))
        .expect("lives on");
    assert_eq!(decode_value::<u8>(&ok).expect("decodes"), 7);
}
