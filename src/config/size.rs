//! Sizes in config files: byte counts such as `"4GB"` and the worker's
//! memory limit (`"auto"`, a size or a fraction of the machine).

use serde::{Deserialize, Serialize};

/// A size in bytes; in TOML an integer or a string such as `"4GB"`,
/// `"512MiB"` or `"0"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

/// How a size is written in TOML: an integer of bytes or a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Int(u64),
    Text(String),
}

impl RawSize {
    /// The size in bytes (strings as `4GB`, `512MiB`, `0`).
    fn bytes<E: serde::de::Error>(self) -> Result<u64, E> {
        match self {
            RawSize::Int(n) => Ok(n),
            RawSize::Text(s) => parse_bytes(&s).map_err(E::custom),
        }
    }
}

/// Parses a size such as `4GB`, `512MiB`, `1.5 GiB`, `1e9` or `0`: decimal
/// (kB, MB, GB, TB, also as K, M, G, T) and binary (KiB, MiB, GiB, TiB)
/// units in any case, as the `bytesize` crate reads them, plus plain numbers
/// in scientific notation (which `bytesize` would read as exabytes).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(value) = t.parse::<f64>() {
        if !value.is_finite() || value < 0.0 {
            return Err(format!("not a size: {s:?} (a size is not negative)"));
        }
        return Ok(value as u64);
    }
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("not a size: {s:?} ({e}); write e.g. 4GB, 512MiB or 1e9"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawSize::deserialize(d)?.bytes().map(ByteSize)
    }
}

/// A worker's memory limit: a size as for [`ByteSize`] (0 for none), or
/// `"auto"`: the machine's memory (or its container's limit) times the
/// worker's share of the CPUs, as Dask's `memory_limit="auto"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryLimit {
    /// This many bytes; 0 for none.
    Bytes(u64),
    /// A share of the machine's memory, resolved when the worker starts.
    Auto,
}

impl Default for MemoryLimit {
    fn default() -> Self {
        MemoryLimit::Bytes(0)
    }
}

impl MemoryLimit {
    /// The limit in bytes for a worker with `nthreads` threads.
    pub fn resolve(self, nthreads: u32) -> u64 {
        match self {
            MemoryLimit::Bytes(n) => n,
            MemoryLimit::Auto => crate::worker::memory::auto_memory_limit(nthreads),
        }
    }
}

impl Serialize for MemoryLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MemoryLimit::Bytes(n) => s.serialize_u64(*n),
            MemoryLimit::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for MemoryLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawSize::deserialize(d)? {
            RawSize::Text(s) if s.trim().eq_ignore_ascii_case("auto") => Ok(MemoryLimit::Auto),
            raw => raw.bytes().map(MemoryLimit::Bytes),
        }
    }
}
