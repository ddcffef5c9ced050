//! A task's arguments as its thread decodes them: values from the header,
//! stored results of its dependencies (in memory or spilled), and lists or
//! maps of stored results joined behind a msgpack array or map header
//! ([`Arg::Keys`], [`Arg::KeyMap`]). Joining and reading spilled files
//! happen on the task's thread, never on the worker actor's.

use bytes::Bytes;

use crate::wire::messages::{Arg, ErrorKind, Key, TaskFailure};

/// One argument of a [`Job`](super::pool::Job), as the task's thread will
/// decode it.
#[derive(Clone, Debug)]
pub enum JobArg {
    /// msgpack bytes ready to decode.
    Ready(Bytes),
    /// A stored value spilled to this file.
    Spilled(std::path::PathBuf),
    /// A list or map of stored values ([`Arg::Keys`], [`Arg::KeyMap`]): the
    /// concatenation of these pieces (a msgpack header, then the values,
    /// each map value preceded by its encoded map key) is the argument.
    Joined(Vec<JobArg>),
}

/// Builds a job's arguments from the task's `args` and the stored values of
/// their keys, given in the order of [`Arg::keys`] over all arguments
/// (`None` where the store has no value). Fails with the first key whose
/// value is missing.
pub fn job_args(args: Vec<Arg>, mut values: impl Iterator<Item = Option<JobArg>>) -> Result<Vec<JobArg>, Key> {
    let mut next = |k: &Key| values.next().flatten().ok_or_else(|| k.clone());
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        out.push(match a {
            Arg::Value(v) => JobArg::Ready(Bytes::from(v)),
            Arg::Key(k) => next(&k)?,
            Arg::Keys(keys) => {
                let mut header = Vec::with_capacity(5);
                // Writing to a Vec cannot fail.
                let _ = rmp::encode::write_array_len(&mut header, keys.len() as u32);
                let mut pieces = Vec::with_capacity(keys.len() + 1);
                pieces.push(JobArg::Ready(Bytes::from(header)));
                for k in &keys {
                    pieces.push(next(k)?);
                }
                JobArg::Joined(pieces)
            }
            Arg::KeyMap(entries) => {
                let mut header = Vec::with_capacity(5);
                let _ = rmp::encode::write_map_len(&mut header, entries.len() as u32);
                let mut pieces = Vec::with_capacity(2 * entries.len() + 1);
                pieces.push(JobArg::Ready(Bytes::from(header)));
                for (map_key, k) in entries {
                    pieces.push(JobArg::Ready(Bytes::from(map_key.into_vec())));
                    pieces.push(next(&k)?);
                }
                JobArg::Joined(pieces)
            }
        });
    }
    Ok(out)
}

/// Reads a spilled value; a file that cannot be read fails the task as
/// lost data.
fn read_spilled(path: &std::path::Path) -> Result<Vec<u8>, TaskFailure> {
    std::fs::read(path).map_err(|e| TaskFailure {
        kind: ErrorKind::DataLost,
        message: format!("cannot read spilled argument {}: {e}", path.display()),
    })
}

/// Puts a job's arguments together: spilled values read back, composite
/// ones joined into one buffer.
pub(crate) fn load_args(args: Vec<JobArg>) -> Result<Vec<Bytes>, TaskFailure> {
    fn append(piece: JobArg, buf: &mut Vec<u8>) -> Result<(), TaskFailure> {
        match piece {
            JobArg::Ready(b) => buf.extend_from_slice(&b),
            JobArg::Spilled(path) => buf.extend_from_slice(&read_spilled(&path)?),
            JobArg::Joined(pieces) => {
                for p in pieces {
                    append(p, buf)?;
                }
            }
        }
        Ok(())
    }
    args.into_iter()
        .map(|a| match a {
            JobArg::Ready(b) => Ok(b),
            JobArg::Spilled(path) => read_spilled(&path).map(Bytes::from),
            JobArg::Joined(pieces) => {
                let len = pieces
                    .iter()
                    .map(|p| match p {
                        JobArg::Ready(b) => b.len(),
                        _ => 0,
                    })
                    .sum();
                let mut buf = Vec::with_capacity(len);
                for p in pieces {
                    append(p, &mut buf)?;
                }
                Ok(Bytes::from(buf))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spilled_argument_is_read_in_place_and_a_missing_file_is_lost_data() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let path = file.path().to_path_buf();
        std::fs::write(&path, b"spilled").expect("write");
        let args = vec![JobArg::Ready(Bytes::from_static(b"a")), JobArg::Spilled(path.clone())];
        let loaded = load_args(args.clone()).expect("reads");
        assert_eq!(&loaded[1][..], b"spilled");
        std::fs::remove_file(&path).expect("remove");
        let err = load_args(args).expect_err("file is gone");
        assert_eq!(err.kind, ErrorKind::DataLost);
    }

    #[test]
    fn lists_and_maps_of_keys_are_joined_into_one_msgpack_value() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let path = file.path().to_path_buf();
        std::fs::write(&path, crate::task::encode_value(&2i64).expect("encodes")).expect("write");
        let enc = |v: i64| {
            Some(JobArg::Ready(Bytes::from(
                crate::task::encode_value(&v).expect("encodes"),
            )))
        };
        let name = |s: &str| serde_bytes::ByteBuf::from(crate::task::encode_value(s).expect("encodes"));
        let args = vec![
            Arg::Keys(vec!["a".into(), "b".into(), "c".into()]),
            Arg::Value(crate::task::encode_value(&7i64).expect("encodes")),
            Arg::KeyMap(vec![(name("x"), "a".into()), (name("y"), "d".into())]),
            Arg::Keys(Vec::new()),
        ];
        let values = vec![enc(1), Some(JobArg::Spilled(path.clone())), enc(3), enc(1), enc(4)];
        let loaded = load_args(job_args(args, values.into_iter()).expect("all found")).expect("loads");
        let list: Vec<i64> = crate::task::decode_value(&loaded[0]).expect("a list");
        assert_eq!(list, [1, 2, 3]);
        assert_eq!(crate::task::decode_value::<i64>(&loaded[1]).expect("a value"), 7);
        let map: std::collections::BTreeMap<String, i64> = crate::task::decode_value(&loaded[2]).expect("a map");
        assert_eq!(map, [("x".to_string(), 1), ("y".to_string(), 4)].into());
        assert!(crate::task::decode_value::<Vec<i64>>(&loaded[3])
            .expect("empty")
            .is_empty());
        std::fs::remove_file(&path).expect("remove");

        let missing = job_args(
            vec![Arg::Keys(vec!["a".into(), "gone".into()])],
            vec![enc(1), None].into_iter(),
        );
        assert_eq!(missing.expect_err("one is missing"), "gone");
    }
}
