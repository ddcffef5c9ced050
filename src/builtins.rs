//! The built-in tasks of the `rdask` binary, registered as
//! `rdask::builtins::<name>`.
//!
//! They make a cluster of plain `rdask` workers useful before anyone writes
//! Rust (shell commands, file tasks) and give tests and benchmarks cheap,
//! predictable functions (arithmetic, sleeps, failures, panics, blobs).
//! [`ENTRIES`] lists them for [`Registry::global`](crate::registry::Registry::global),
//! which must not rely on `inventory` alone for the rlib's own entries.

use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;

use rdask_macros::task;
use serde::{Deserialize, Serialize};

use crate::task::{Blob, BlobView, TaskEntry};

/// Every built-in task.
pub const ENTRIES: &[TaskEntry] = &[
    TaskEntry::of::<noop>(),
    TaskEntry::of::<inc>(),
    TaskEntry::of::<add>(),
    TaskEntry::of::<sum>(),
    TaskEntry::of::<sleep_ms>(),
    TaskEntry::of::<fail>(),
    TaskEntry::of::<panic>(),
    TaskEntry::of::<make_blob>(),
    TaskEntry::of::<blob_len>(),
    TaskEntry::of::<shell>(),
    TaskEntry::of::<read_file>(),
    TaskEntry::of::<write_file>(),
    TaskEntry::of::<count_letters>(),
];

/// Does nothing and returns `()` (msgpack nil): measures per-task overhead.
#[task(crate = "crate")]
pub fn noop(x: i64) {
    let _ = x;
}

/// Returns `x + 1` (wrapping, so no input can panic it).
#[task(crate = "crate")]
pub fn inc(x: i64) -> i64 {
    x.wrapping_add(1)
}

/// Returns `a + b` (wrapping).
#[task(crate = "crate")]
pub fn add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// Returns the sum of `xs` (wrapping): the usual reduction of a fan-in test.
#[task(crate = "crate")]
pub fn sum(xs: Vec<i64>) -> i64 {
    xs.into_iter().fold(0, i64::wrapping_add)
}

/// Sleeps `ms` milliseconds on the task thread, then returns `ms`.
#[task(crate = "crate")]
pub fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Always fails with `message` (an `ErrorKind::Failed` task error).
#[task(crate = "crate")]
pub fn fail(message: String) -> Result<(), String> {
    Err(message)
}

/// Always panics with `message` (an `ErrorKind::Panicked` task error), for
/// tests.
#[task(crate = "crate")]
pub fn panic(message: String) {
    panic!("{message}");
}

/// Returns `n` pseudo-random bytes from `seed` (xorshift64*, same bytes for
/// the same seed on every machine): test data that does not compress.
///
/// Panics (a task error, not a crash) if `n` bytes cannot be allocated.
#[task(crate = "crate")]
pub fn make_blob(n: u64, seed: u64) -> Blob {
    let n = usize::try_from(n).expect("make_blob: size does not fit in memory");
    let mut bytes = Vec::new();
    // try_reserve so an absurd size is a panic (caught by the runner) rather
    // than an allocation-failure abort of the whole worker.
    if let Err(e) = bytes.try_reserve_exact(n) {
        panic!("make_blob: cannot allocate {n} bytes: {e}");
    }
    // xorshift gets stuck at 0; any non-zero state works.
    let mut state = if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed };
    let mut next = || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    // Eight bytes per step: filling byte by byte would be ~8x slower.
    while bytes.len() + 8 <= n {
        bytes.extend_from_slice(&next().to_le_bytes());
    }
    let tail = n - bytes.len();
    bytes.extend_from_slice(&next().to_le_bytes()[..tail]);
    Blob(bytes)
}

/// Returns the CRC-32 of `b`'s bytes: checks that a moved value arrived
/// exactly, without moving it back.
#[task(crate = "crate")]
pub fn blob_crc32(b: Blob) -> u32 {
    crc32fast::hash(&b)
}

/// Returns the length of `b` (read in place: a 200 MB argument is not
/// copied to be measured).
#[task(crate = "crate")]
pub fn blob_len(b: BlobView<'_>) -> u64 {
    b.len() as u64
}

/// What [`shell`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellOutput {
    /// Exit code; -1 if the command was killed by a signal.
    pub status: i32,
    /// Its standard output (invalid UTF-8 replaced by U+FFFD).
    pub stdout: String,
    /// Its standard error (invalid UTF-8 replaced by U+FFFD).
    pub stderr: String,
}

/// Runs `command` with `sh -c` in the worker's directory and returns its exit
/// status and output. A non-zero exit is a result, not a task error; only
/// failing to start `sh` is. Stdin is empty, so a command never reads the
/// worker's own.
#[task(crate = "crate")]
pub fn shell(command: String) -> Result<ShellOutput, io::Error> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `sh -c {command}`: {e}")))?;
    Ok(ShellOutput {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Adds the path to an I/O error, whose own message does not name it.
fn with_path(path: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}

/// Returns the contents of the file at `path` on the worker.
#[task(crate = "crate")]
pub fn read_file(path: String) -> Result<Blob, io::Error> {
    std::fs::read(&path).map(Blob).map_err(|e| with_path(&path, e))
}

/// Writes `data` to the file at `path` on the worker (replacing it) and
/// returns the number of bytes written.
#[task(crate = "crate")]
pub fn write_file(path: String, data: Blob) -> Result<u64, io::Error> {
    std::fs::write(&path, &data.0).map_err(|e| with_path(&path, e))?;
    Ok(data.len() as u64)
}

/// Reads the file at `path`, sorts its bytes and returns their count: the
/// seed workload of the project (I/O plus CPU in one task).
#[task(crate = "crate")]
pub fn count_letters(path: String) -> Result<u64, io::Error> {
    let mut bytes = std::fs::read(&path).map_err(|e| with_path(&path, e))?;
    bytes.sort_unstable();
    // Keep the sort from being optimised away: its result is otherwise unused.
    std::hint::black_box(&bytes);
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{decode_value, encode_value, run_task, ErrorKind, Task};

    fn call<T: Task>(args: &[Vec<u8>]) -> Result<Vec<u8>, crate::task::TaskFailure> {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        run_task(T::call_encoded, &refs)
    }

    fn enc<T: Serialize>(v: T) -> Vec<u8> {
        encode_value(&v).unwrap()
    }

    #[test]
    fn names_are_module_paths() {
        assert_eq!(<inc as Task>::NAME, "rdask::builtins::inc");
        assert_eq!(<count_letters as Task>::NAME, "rdask::builtins::count_letters");
    }

    #[test]
    fn deref_call_syntax() {
        assert_eq!(inc(1), 2);
        assert_eq!(add(2, 3), 5);
        assert_eq!(sum(vec![1, 2, 3]), 6);
        assert_eq!(fail("x".into()), Err("x".to_string()));
        // The struct is Copy and usable as a fn pointer too.
        let f: fn(i64) -> i64 = *inc;
        assert_eq!(f(41), 42);
    }

    #[test]
    fn call_encoded_good_args() {
        let out = call::<add>(&[enc(2i64), enc(40i64)]).unwrap();
        assert_eq!(decode_value::<i64>(&out).unwrap(), 42);
        let out = call::<noop>(&[enc(1i64)]).unwrap();
        decode_value::<()>(&out).unwrap();
        // Unsigned msgpack ints decode as i64 params too.
        let out = call::<inc>(&[enc(5u8)]).unwrap();
        assert_eq!(decode_value::<i64>(&out).unwrap(), 6);
    }

    #[test]
    fn call_encoded_wrong_count() {
        let err = call::<add>(&[enc(1i64)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadArguments);
        assert_eq!(err.message, "function rdask::builtins::add takes 2 arguments, got 1");
    }

    #[test]
    fn call_encoded_wrong_type() {
        let err = call::<add>(&[enc(1i64), enc("two")]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadArguments);
        assert!(
            err.message
                .starts_with("function rdask::builtins::add: argument 1 (`b`) is not a valid `i64`: "),
            "{}",
            err.message
        );
        let err = call::<sum>(&[enc(3i64)]).unwrap_err();
        assert!(err.message.contains("`Vec<i64>`"), "{}", err.message);
        let err = call::<inc>(&[vec![0xc1]]).unwrap_err(); // 0xc1: never used
        assert_eq!(err.kind, ErrorKind::BadArguments);
    }

    #[test]
    fn fail_is_failed() {
        let err = call::<fail>(&[enc("boom")]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Failed);
        assert_eq!(err.message, "boom");
    }

    #[test]
    fn panic_is_panicked_with_location() {
        let err = call::<panic>(&[enc("kaboom")]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panicked);
        assert!(
            err.message.starts_with("panicked at src/builtins.rs:"),
            "{}",
            err.message
        );
        assert!(err.message.ends_with(": kaboom"), "{}", err.message);
        // FILE:LINE:COL
        let loc = err.message["panicked at ".len()..].split(": ").next().unwrap();
        assert_eq!(loc.split(':').count(), 3, "{loc}");
        // The thread is still usable and clean afterwards.
        assert_eq!(decode_value::<i64>(&call::<inc>(&[enc(1i64)]).unwrap()).unwrap(), 2);
    }

    #[test]
    fn blobs() {
        let b = make_blob(1001, 7);
        assert_eq!(b.len(), 1001);
        assert_eq!(b, make_blob(1001, 7));
        assert_ne!(b, make_blob(1001, 8));
        assert_eq!(make_blob(0, 0).len(), 0);
        assert_eq!(make_blob(3, 0).len(), 3);
        let out = call::<make_blob>(&[enc(100_000u64), enc(1u64)]).unwrap();
        // msgpack bin32 header (5 bytes) + data, not an int array.
        assert_eq!(out.len(), 100_005);
        let out = run_task(blob_len::call_encoded, &[&out]).unwrap();
        assert_eq!(decode_value::<u64>(&out).unwrap(), 100_000);
        let err = call::<make_blob>(&[enc(u64::MAX), enc(1u64)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Panicked);
    }

    #[test]
    fn shell_runs() {
        let out = shell("echo hi; echo err >&2; exit 3".into()).unwrap();
        assert_eq!(
            out,
            ShellOutput {
                status: 3,
                stdout: "hi\n".into(),
                stderr: "err\n".into()
            }
        );
        assert_eq!(shell("kill -9 $$".into()).unwrap().status, -1);
        let enc_out = call::<shell>(&[enc("true")]).unwrap();
        assert_eq!(decode_value::<ShellOutput>(&enc_out).unwrap().status, 0);
    }

    #[test]
    fn files() {
        let dir = std::env::temp_dir().join(format!("rdask-builtins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt").to_string_lossy().into_owned();
        assert_eq!(write_file(path.clone(), Blob(b"hello".to_vec())).unwrap(), 5);
        assert_eq!(read_file(path.clone()).unwrap(), Blob(b"hello".to_vec()));
        assert_eq!(count_letters(path.clone()).unwrap(), 5);
        let missing = dir.join("missing").to_string_lossy().into_owned();
        let err = call::<count_letters>(&[enc(&missing)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Failed);
        assert!(err.message.starts_with(&missing), "{}", err.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
