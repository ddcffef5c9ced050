//! Typed tasks: the [`Task`] trait that `#[rdask::task]` implements, the
//! [`TaskEntry`] each one registers, and [`run_task`], which runs one and
//! turns a panic into a [`TaskFailure`].
//!
//! Rust cannot ship closures, so a task travels as a name plus msgpack-encoded
//! arguments; each binary registers its `#[task]` functions by name (through
//! `inventory`) and a worker looks the name up in the
//! [`Registry`](crate::registry::Registry). Arguments and results are
//! msgpack (`rmp_serde`, structs as maps) so other languages can speak the
//! protocol.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::wire::messages::{ErrorKind, TaskFailure};
/// Re-exported for the `#[task]` macro, so user crates need not depend on
/// `inventory` themselves.
pub use inventory;

/// A function that workers can run, implemented by `#[rdask::task]` on a
/// unit struct named after the function.
pub trait Task: Copy + Send + Sync + 'static {
    /// Registered name, unique per binary: module path + fn name.
    const NAME: &'static str;
    /// Parameter types as a tuple (`()` for none, `(A,)` for one), as a
    /// client passes them (a [`BorrowedArg`] parameter as its `Owned` type).
    type Args;
    /// Result type (the Ok type for functions returning `Result`).
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Decodes msgpack args, runs the function, encodes the result.
    /// Does not catch panics: see [`run_task`].
    fn call_encoded(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure>;

    /// As [`call_encoded`](Self::call_encoded), for a worker that serves
    /// peers on its host through shared memory: a result of at least
    /// [`SHARED_OUTPUT_MIN_BYTES`] is encoded straight into a sealed memory
    /// file (Linux), which peers on the host then map instead of a copy
    /// made for each fetch. `#[task]` implements it; the default encodes
    /// as `call_encoded` does.
    fn call_shared(args: &[&[u8]]) -> Result<bytes::Bytes, TaskFailure> {
        Self::call_encoded(args).map(bytes::Bytes::from)
    }
}

/// Results at least this large are encoded into a memory file by a worker
/// serving peers through shared memory ([`Task::call_shared`]): a memory
/// file costs a few system calls, which a large result's copy per fetch
/// outweighs many times.
pub const SHARED_OUTPUT_MIN_BYTES: usize = 1 << 20;

/// [`Task::call_shared`] as a function pointer.
pub type SharedTaskFn = fn(&[&[u8]]) -> Result<bytes::Bytes, TaskFailure>;

/// A task parameter type that borrows from its argument's bytes instead of
/// decoding into a value of its own (e.g. `rdask_array::ChunkView<'_>`, a
/// block's elements read where the worker holds them: no copy of a 40 MB
/// block per task). `Owned` is the type whose wire form it reads: what a
/// client passes (a `Future<Owned>`, a `Delayed<Owned>`, an `Owned`).
///
/// `#[task]` uses it for any parameter type with a lifetime, written `'_`:
/// `fn f(x: ChunkView<'_>)` takes a `Chunk` from clients. The view lives
/// for the call only, so it cannot be returned.
pub trait BorrowedArg {
    /// The owned type with the same wire form.
    type Owned;
}

/// The return type of a task function spelled `...::Result<T, E>`: the task's
/// output is `T`, and an `Err` fails the task with `E`'s `Display`.
///
/// Other return types need no impl: `#[task]` checks syntactically whether the
/// type's last path segment is `Result` and otherwise uses the type itself as
/// the output, so any serde type can be returned plainly.
pub trait TaskReturn {
    /// What a successful call produces.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// Splits into the output or the error message.
    fn into_task_result(self) -> Result<Self::Output, String>;
}

impl<T, E> TaskReturn for Result<T, E>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Display,
{
    type Output = T;
    fn into_task_result(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Type-erased entry point of a task: msgpack args in, msgpack result out.
pub type TaskFn = fn(&[&[u8]]) -> Result<Vec<u8>, TaskFailure>;

/// One registered function.
#[derive(Clone, Copy, Debug)]
pub struct TaskEntry {
    /// Its [`Task::NAME`].
    pub name: &'static str,
    /// Its [`Task::call_encoded`].
    pub call: TaskFn,
    /// Its [`Task::call_shared`], if it has one of its own (the built-in
    /// runners, whose results feed other runners, do not).
    pub shared: Option<SharedTaskFn>,
}

impl TaskEntry {
    /// The entry of a task type (usable in constants and statics).
    pub const fn of<T: Task>() -> TaskEntry {
        TaskEntry {
            name: T::NAME,
            call: T::call_encoded,
            shared: Some(T::call_shared),
        }
    }
}

inventory::collect!(TaskEntry);

thread_local! {
    /// Whether this thread is inside [`run_task`], so the hook knows the
    /// panic will be reported as a task error.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    /// The last task panic on this thread, formatted by the hook (which alone
    /// sees the location).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Where the last task panic on this thread happened, when backtraces
    /// are on (`RUST_BACKTRACE=1`): only the hook runs on the panicking
    /// stack.
    static LAST_BACKTRACE: RefCell<Option<Backtrace>> = const { RefCell::new(None) };
}

/// The backtrace of the last task panic on this thread, taken by the panic
/// hook while [`run_task`] ran it; `None` unless `RUST_BACKTRACE` (or
/// `RUST_LIB_BACKTRACE`) turned backtraces on. Taking it clears it.
pub fn take_panic_backtrace() -> Option<Backtrace> {
    LAST_BACKTRACE
        .with(|b| b.borrow_mut().take())
        .filter(|b| b.status() == BacktraceStatus::Captured)
}

/// Runs a task function, turning a panic into
/// `TaskFailure { kind: Panicked, message: "panicked at FILE:LINE:COL: MSG" }`.
///
/// Installs the panic hook on first use (see [`install_panic_hook`]).
pub fn run_task<R>(call: fn(&[&[u8]]) -> Result<R, TaskFailure>, args: &[&[u8]]) -> Result<R, TaskFailure> {
    install_panic_hook();
    let was_in_task = IN_TASK.with(|c| c.replace(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    LAST_BACKTRACE.with(|b| b.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(|| call(args)));
    IN_TASK.with(|c| c.set(was_in_task));
    match result {
        Ok(r) => r,
        Err(payload) => {
            // The hook's message has the location; without it (another hook
            // replaced ours) fall back to the payload alone.
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| format!("panicked at <unknown location>: {}", payload_message(&*payload)));
            Err(TaskFailure {
                kind: ErrorKind::Panicked,
                message,
            })
        }
    }
}

/// Installs (once) a panic hook that records the panic message and location
/// for [`run_task`] (thread-local) and chains to the previous hook only for
/// panics outside tasks: task panics are reported as task errors, not printed.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TASK.with(Cell::get) {
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_else(|| "<unknown location>".to_string());
                let message = format!("panicked at {location}: {}", payload_message(info.payload()));
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
                LAST_BACKTRACE.with(|b| *b.borrow_mut() = Some(Backtrace::capture()));
            } else {
                previous(info);
            }
        }));
    });
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
fn payload_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

/// Raw bytes as a task argument/result, serialized as msgpack bin (not an
/// array of ints): use for large binary data.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Blob(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl Blob {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(v)
    }
}

impl From<Blob> for Vec<u8> {
    fn from(b: Blob) -> Self {
        b.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A [`Blob`] argument read where the worker holds it: a task taking
/// `BlobView<'_>` borrows the bytes for the call instead of copying them
/// into a `Vec` (a 200 MB value costs no copy and no fresh pages).
/// Clients pass a `Blob` (or a future of one), the same wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobView<'a>(pub std::borrow::Cow<'a, [u8]>);

impl BorrowedArg for BlobView<'_> {
    type Owned = Blob;
}

impl std::ops::Deref for BlobView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for BlobView<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BlobView<'de>, D::Error> {
        /// Borrows the bytes when the deserializer lends them.
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = BlobView<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes (a msgpack bin)")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(self, b: &'de [u8]) -> Result<Self::Value, E> {
                Ok(BlobView(std::borrow::Cow::Borrowed(b)))
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
                Ok(BlobView(std::borrow::Cow::Owned(b.to_vec())))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, b: Vec<u8>) -> Result<Self::Value, E> {
                Ok(BlobView(std::borrow::Cow::Owned(b)))
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// Encodes one argument value (msgpack, structs as maps) — used by clients.
pub fn encode_value<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(v)
}

/// Decodes a msgpack value (a task result, or an argument).
/// `T` may borrow from `b` (strings, byte slices, a [`BorrowedArg`] type).
pub fn decode_value<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(b)
}

/// Helpers the `#[task]` expansion calls; not a public API. They keep the
/// generated code small and free of direct `rmp_serde` paths (user crates
/// need not depend on it), and format strings only on the error path.
#[doc(hidden)]
pub mod __private {
    use super::*;
    pub use bytes::Bytes;

    #[inline]
    pub fn check_arity(function: &str, expected: usize, args: &[&[u8]]) -> Result<(), TaskFailure> {
        if args.len() == expected {
            return Ok(());
        }
        Err(TaskFailure {
            kind: ErrorKind::BadArguments,
            message: format!(
                "function {function} takes {expected} argument{}, got {}",
                if expected == 1 { "" } else { "s" },
                args.len()
            ),
        })
    }

    /// `T` may borrow from `bytes` (a [`BorrowedArg`] parameter): they are
    /// the worker's stored value, alive for the whole call.
    #[inline]
    pub fn decode_arg<'a, T: Deserialize<'a>>(
        function: &str,
        index: usize,
        param: &str,
        type_name: &str,
        bytes: &'a [u8],
    ) -> Result<T, TaskFailure> {
        rmp_serde::from_slice(bytes).map_err(|e| TaskFailure {
            kind: ErrorKind::BadArguments,
            message: format!("function {function}: argument {index} (`{param}`) is not a valid `{type_name}`: {e}"),
        })
    }

    #[inline]
    pub fn into_output<R: TaskReturn>(r: R) -> Result<R::Output, TaskFailure> {
        r.into_task_result().map_err(|message| TaskFailure {
            kind: ErrorKind::Failed,
            message,
        })
    }

    #[inline]
    pub fn encode_output<T: Serialize + ?Sized>(function: &str, out: &T) -> Result<Vec<u8>, TaskFailure> {
        rmp_serde::to_vec_named(out).map_err(|e| encode_failure(function, e))
    }

    fn encode_failure(function: &str, e: rmp_serde::encode::Error) -> TaskFailure {
        TaskFailure {
            kind: ErrorKind::Failed,
            message: format!("function {function}: cannot encode its result: {e}"),
        }
    }

    /// [`encode_output`], into a sealed memory file once the encoding
    /// reaches [`super::SHARED_OUTPUT_MIN_BYTES`] (Linux; if no memory file
    /// can be made, into memory).
    pub fn encode_output_shared<T: Serialize + ?Sized>(function: &str, out: &T) -> Result<bytes::Bytes, TaskFailure> {
        #[cfg(target_os = "linux")]
        {
            match crate::shm::push_files::encode_shared_from(out, super::SHARED_OUTPUT_MIN_BYTES) {
                Ok(Some((bytes, _))) => Ok(bytes),
                Ok(None) => encode_output(function, out).map(bytes::Bytes::from),
                Err(e) => Err(encode_failure(function, e)),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            encode_output(function, out).map(bytes::Bytes::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdask_macros::task;
    use std::collections::BTreeMap;

    /// A user-defined output type, returned plainly (no `TaskReturn` impl).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Stats {
        count: u64,
        names: BTreeMap<String, u32>,
    }

    /// Counts words.
    #[task(crate = "crate")]
    fn word_stats(text: String, extra: Option<u32>) -> Stats {
        let mut names = BTreeMap::new();
        for w in text.split_whitespace() {
            *names.entry(w.to_string()).or_insert(0) += 1 + extra.unwrap_or(0);
        }
        Stats {
            count: names.len() as u64,
            names,
        }
    }

    #[task(crate = "crate")]
    fn checked_div(a: i64, b: i64) -> Result<i64, String> {
        if b == 0 {
            return Err(format!("cannot divide {a} by zero"));
        }
        Ok(a / b)
    }

    #[task(crate = "crate")]
    fn no_args() -> u8 {
        7
    }

    /// Recursion through the struct's `Deref` still works.
    #[task(crate = "crate")]
    fn fact(n: u64) -> u64 {
        if n == 0 {
            1
        } else {
            n * fact(n - 1)
        }
    }

    fn call<T: Task>(args: &[Vec<u8>]) -> Result<Vec<u8>, TaskFailure> {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        T::call_encoded(&refs)
    }

    #[test]
    fn encode_decode_roundtrip() {
        let v = (1i64, "x".to_string(), vec![1.5f64], Blob(vec![0, 255]));
        let b = encode_value(&v).unwrap();
        let back: (i64, String, Vec<f64>, Blob) = decode_value(&b).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn blob_is_msgpack_bin() {
        let b = encode_value(&Blob(vec![1, 2, 3])).unwrap();
        assert_eq!(b, [0xc4, 3, 1, 2, 3]); // bin8, length 3
    }

    #[test]
    fn a_blob_view_borrows_the_blob_bytes_it_reads() {
        let b = encode_value(&Blob(vec![7; 300])).unwrap();
        let v: BlobView<'_> = decode_value(&b).unwrap();
        assert!(matches!(v.0, std::borrow::Cow::Borrowed(_)));
        assert_eq!(&*v, &[7u8; 300][..]);
        // What is not bytes is refused with the type's expectation.
        let err = decode_value::<BlobView<'_>>(&encode_value(&5u8).unwrap()).unwrap_err();
        assert!(err.to_string().contains("bytes"), "{err}");
    }

    #[test]
    fn struct_output_roundtrip() {
        let out = call::<word_stats>(&[encode_value("a b a").unwrap(), encode_value(&Some(1u32)).unwrap()]).unwrap();
        let stats: <word_stats as Task>::Output = decode_value(&out).unwrap();
        assert_eq!(stats.count, 2);
        assert_eq!(stats.names["a"], 4);
        assert_eq!(word_stats("a".into(), None).count, 1);
        assert!(<word_stats as Task>::NAME.ends_with("task::tests::word_stats"));
    }

    #[test]
    fn result_err_becomes_failed() {
        let ok = call::<checked_div>(&[encode_value(&7).unwrap(), encode_value(&2).unwrap()]);
        assert_eq!(decode_value::<i64>(&ok.unwrap()).unwrap(), 3);
        let err = call::<checked_div>(&[encode_value(&7).unwrap(), encode_value(&0).unwrap()]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Failed);
        assert_eq!(err.message, "cannot divide 7 by zero");
        // Output is the Ok type.
        let _: <checked_div as Task>::Output = 1i64;
    }

    #[test]
    fn zero_args_and_recursion() {
        assert_eq!(decode_value::<u8>(&call::<no_args>(&[]).unwrap()).unwrap(), 7);
        let err = call::<no_args>(&[vec![0]]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadArguments);
        assert!(err.message.ends_with("takes 0 arguments, got 1"), "{}", err.message);
        assert_eq!(fact(5), 120);
    }

    #[test]
    fn arity_message_singular() {
        let err = call::<fact>(&[]).unwrap_err();
        assert!(err.message.ends_with("takes 1 argument, got 0"), "{}", err.message);
    }

    #[test]
    fn run_task_passes_results_through() {
        let a = encode_value(&3u64).unwrap();
        let out = run_task(fact::call_encoded, &[&a]).unwrap();
        assert_eq!(decode_value::<u64>(&out).unwrap(), 6);
        // A non-string panic payload still yields a message.
        #[task(crate = "crate")]
        fn odd_panic() {
            std::panic::panic_any(42u8);
        }
        let err = run_task(odd_panic::call_encoded, &[]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panicked);
        assert!(err.message.starts_with("panicked at "), "{}", err.message);
        assert!(err.message.ends_with("Box<dyn Any>"), "{}", err.message);
    }
}
