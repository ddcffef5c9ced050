//! [`Partition`]: one partition of a data frame, a Polars `DataFrame`,
//! whose wire form is the Arrow IPC file format (uncompressed) carried as
//! one msgpack `bin`. A task's result is its own payload of the frame
//! (`docs/protocol.md` §2, §10), so a partition travels as a 5-byte `bin`
//! header then the IPC bytes: no per-value msgpack encoding, and a reader in
//! another language opens it with any Arrow library (`pyarrow.ipc.open_file`).
//! Decoding reads the IPC straight from the received bytes. Spilled
//! partitions go to disk in the same form (the worker spills task values as
//! they are encoded).

use std::fmt;
use std::io::Cursor;

use polars::prelude::{IpcReader, IpcWriter, SerReader, SerWriter};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One partition (a task's argument or result).
#[derive(Clone, Debug, Default)]
pub struct Partition(pub polars::prelude::DataFrame);

impl Partition {
    /// The data frame inside.
    pub fn into_inner(self) -> polars::prelude::DataFrame {
        self.0
    }

    /// Its Arrow IPC file bytes.
    pub fn to_ipc(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut df = self.0.clone();
        IpcWriter::new(&mut out)
            .finish(&mut df)
            .map_err(|e| format!("encoding a partition as Arrow IPC: {e}"))?;
        Ok(out)
    }

    /// A partition from Arrow IPC file bytes.
    pub fn from_ipc(bytes: &[u8]) -> Result<Partition, String> {
        IpcReader::new(Cursor::new(bytes))
            .finish()
            .map(Partition)
            .map_err(|e| format!("decoding a partition from Arrow IPC ({} bytes): {e}", bytes.len()))
    }
}

impl From<polars::prelude::DataFrame> for Partition {
    fn from(df: polars::prelude::DataFrame) -> Self {
        Partition(df)
    }
}

impl std::ops::Deref for Partition {
    type Target = polars::prelude::DataFrame;
    fn deref(&self) -> &polars::prelude::DataFrame {
        &self.0
    }
}

impl Serialize for Partition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_ipc().map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }
}

struct IpcVisitor;

impl Visitor<'_> for IpcVisitor {
    type Value = Partition;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a partition as Arrow IPC file bytes")
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Partition, E> {
        Partition::from_ipc(b).map_err(E::custom)
    }
    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Partition, E> {
        self.visit_bytes(&b)
    }
}

impl<'de> Deserialize<'de> for Partition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Partition, D::Error> {
        d.deserialize_bytes(IpcVisitor)
    }
}
