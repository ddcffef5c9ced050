//! Text files in and out of bags: `read_text` (a partition per file, and
//! per block of a large uncompressed file, with line-aligned boundaries)
//! and `to_textfiles` (a file per partition), both compressed by file
//! extension (`.gz`, `.zst`, `.bz2`, `.xz`). The client side expands the glob and plans the
//! blocks; the worker side (the `rdask::bag::read_text` / `to_textfile`
//! runners) opens the files, so they must be where the workers can see
//! them (the same machine, or a shared file system).
//!
//! A block holds the lines that *start* inside it: a reader starting at
//! byte `s > 0` skips to just after the first `\n` at or after `s - 1`, and
//! stops after the line that crosses its end. Every line is read by exactly
//! one block, whatever the block size.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::msgpack::{finish_array, start_array};
use super::runners::{arg, bad, decode, failed, items};
use crate::client::Error;
use crate::wire::messages::TaskFailure;

/// Read buffer of the text reader (and of the gzip decoder under it).
const READ_BUFFER: usize = 256 * 1024;

/// xz preset of `to_textfiles` (as `xz -1`: a 1 MiB dictionary, so a
/// writing task holds about 10 MiB for the encoder, where the tool's
/// default `-6` would take about 90 MiB).
const XZ_PRESET: u32 = 1;

/// How a file is compressed, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    pub(crate) fn of(path: &str) -> Compression {
        if path.ends_with(".gz") {
            Compression::Gzip
        } else if path.ends_with(".zst") {
            Compression::Zstd
        } else if path.ends_with(".bz2") {
            Compression::Bzip2
        } else if path.ends_with(".xz") {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// A reader of the decompressed bytes of `file` (every member, frame
    /// or stream of it, as the tools write several when given several
    /// inputs).
    fn reader(self, file: File) -> Box<dyn Read> {
        let file = BufReader::with_capacity(READ_BUFFER, file);
        match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => Box::new(ZstdFrames::new(file)),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(file)),
            Compression::Xz => Box::new(lzma_rust2::XzReader::new(file, true)),
            Compression::None => Box::new(file),
        }
    }
}

/// One partition of `read_text`: a file, or bytes `start..end` of one.
pub(crate) struct Block {
    pub(crate) path: String,
    pub(crate) start: u64,
    pub(crate) end: Option<u64>,
    /// The file's size and modification time (ns since the epoch, 0 if
    /// unknown): part of the call's arguments only so that its key changes
    /// when the file does (Dask tokenizes files the same way).
    pub(crate) version: (u64, u128),
}

/// The blocks of the files that `pattern` matches (sorted by path): one per
/// file, or with `blocksize` one per `blocksize` bytes of each uncompressed
/// file.
pub(crate) fn plan_blocks(pattern: &str, blocksize: Option<u64>) -> Result<Vec<Block>, Error> {
    let paths = glob::glob(pattern).map_err(|e| Error::Input(format!("bad glob {pattern:?}: {e}")))?;
    let mut files = Vec::new();
    for p in paths {
        let p = p.map_err(|e| Error::Input(format!("{pattern}: {e}")))?;
        if p.is_file() {
            files.push(p.to_string_lossy().into_owned());
        }
    }
    if files.is_empty() {
        return Err(Error::Input(format!("no files match {pattern:?}")));
    }
    files.sort();
    let mut blocks = Vec::new();
    for path in files {
        let compression = Compression::of(&path);
        let meta = std::fs::metadata(&path).map_err(|e| Error::Input(format!("{path}: {e}")))?;
        let size = meta.len();
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let version = (size, modified);
        match blocksize.filter(|&b| b > 0 && compression == Compression::None && size > b) {
            Some(b) => {
                let mut start = 0;
                while start < size {
                    let end = (start + b).min(size);
                    blocks.push(Block {
                        path: path.clone(),
                        start,
                        end: Some(end),
                        version,
                    });
                    start = end;
                }
            }
            None => blocks.push(Block {
                path,
                start: 0,
                end: None,
                version,
            }),
        }
    }
    Ok(blocks)
}

fn io_failure(path: &str, e: std::io::Error) -> TaskFailure {
    failed(format!("{path}: {e}"))
}

/// The lines (without `\n` or `\r\n`) of a block, as a msgpack array of
/// strings, encoded as they are read (no `String` per line).
fn lines_of(path: &str, start: u64, end: Option<u64>) -> Result<Vec<u8>, TaskFailure> {
    let mut file = File::open(path).map_err(|e| io_failure(path, e))?;
    let compression = Compression::of(path);
    let mut pos = start;
    let mut reader: Box<dyn BufRead> = match compression {
        Compression::None => {
            file.seek(SeekFrom::Start(start.saturating_sub(1)))
                .map_err(|e| io_failure(path, e))?;
            let mut r = BufReader::with_capacity(READ_BUFFER, file);
            if start > 0 {
                // Skip the line that started in the previous block.
                let mut skipped = Vec::new();
                let n = r.read_until(b'\n', &mut skipped).map_err(|e| io_failure(path, e))?;
                pos = start - 1 + n as u64;
            }
            Box::new(r)
        }
        packed => Box::new(BufReader::with_capacity(READ_BUFFER, packed.reader(file))),
    };
    let mut body = start_array();
    let mut count: u32 = 0;
    let mut buf = Vec::new();
    while end.is_none_or(|e| pos < e) {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| io_failure(path, e))?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|_| failed(format!("{path}: line {} of the block is not UTF-8", count + 1)))?;
        // Writing to a Vec cannot fail.
        let _ = rmp::encode::write_str(&mut body, line);
        count = count
            .checked_add(1)
            .ok_or_else(|| failed(format!("{path}: more than {} lines in one block", u32::MAX)))?;
    }
    Ok(finish_array(body, count))
}

/// `(path, start, end or nil, version)`: the lines of a block, as a
/// partition of strings (the version only keys the call).
pub(crate) fn read_text(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let path: String = decode(arg(args, 0, "read_text")?, "read_text's path")?;
    let start: u64 = decode(arg(args, 1, "read_text")?, "read_text's start")?;
    let end: Option<u64> = decode(arg(args, 2, "read_text")?, "read_text's end")?;
    lines_of(&path, start, end)
}

/// The path of partition `i` of `to_textfiles(pattern)`: its `*` replaced
/// by `i`, or without a `*`, `pattern/i.part` (Dask's naming).
pub(crate) fn part_path(pattern: &str, i: usize) -> String {
    if pattern.contains('*') {
        pattern.replacen('*', &i.to_string(), 1)
    } else {
        Path::new(pattern)
            .join(format!("{i}.part"))
            .to_string_lossy()
            .into_owned()
    }
}

/// `(path, partition of strings)`: writes each string and a `\n` to the
/// file (compressed by its extension); returns the path.
pub(crate) fn to_textfile(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let path: String = decode(arg(args, 0, "to_textfile")?, "to_textfile's path")?;
    let compression = Compression::of(&path);
    let lines: Vec<String> = decode(
        arg(args, 1, "to_textfile")?,
        "to_textfile's partition (must be strings)",
    )?;
    items(arg(args, 1, "to_textfile")?, "to_textfile")?;
    if let Some(dir) = Path::new(&path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_failure(&path, e))?;
    }
    let file = File::create(&path).map_err(|e| io_failure(&path, e))?;
    let buffered = std::io::BufWriter::with_capacity(READ_BUFFER, file);
    let written = match compression {
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(buffered, flate2::Compression::default());
            write_lines(&mut gz, &lines).and_then(|_| gz.finish()?.flush())
        }
        Compression::Zstd => {
            // The pure-Rust encoder compresses from a reader in one go; the
            // partition is in memory already, and its text is as large.
            let mut text = Vec::new();
            let mut w = buffered;
            write_lines(&mut text, &lines).and_then(|_| {
                let packed = ruzstd::encoding::compress_to_vec(&text[..], ruzstd::encoding::CompressionLevel::Fastest);
                w.write_all(&packed)?;
                w.flush()
            })
        }
        Compression::Bzip2 => {
            let mut bz = bzip2::write::BzEncoder::new(buffered, bzip2::Compression::default());
            write_lines(&mut bz, &lines).and_then(|_| bz.finish()?.flush())
        }
        Compression::Xz => lzma_rust2::XzWriter::new(buffered, lzma_rust2::XzOptions::with_preset(XZ_PRESET))
            .and_then(|mut xz| write_lines(&mut xz, &lines).and_then(|_| xz.finish()?.flush())),
        Compression::None => {
            let mut w = buffered;
            write_lines(&mut w, &lines).and_then(|_| w.flush())
        }
    };
    written.map_err(|e| io_failure(&path, e))?;
    rmp_serde::to_vec_named(&path).map_err(|e| bad(e.to_string()))
}

fn write_lines(out: &mut impl Write, lines: &[String]) -> std::io::Result<()> {
    for l in lines {
        out.write_all(l.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads a whole text file, decompressed as its extension says (`.gz`,
/// `.zst`, `.bz2`, `.xz`): for tests and examples.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    let name = path.to_string_lossy();
    let compression = Compression::of(&name);
    let mut text = String::new();
    compression.reader(File::open(path)?).read_to_string(&mut text)?;
    Ok(text)
}

/// Decodes every frame of a zstd stream in turn (the `zstd` tool writes
/// several when its input was several; `ruzstd`'s decoder reads one).
struct ZstdFrames<R: BufRead> {
    /// The current frame's decoder; `None` at the end, or before the first
    /// frame.
    frame: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    /// The source while no frame is open.
    source: Option<R>,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames {
            frame: None,
            source: Some(source),
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(frame) = self.frame.as_mut() {
                let n = frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                if let Some(done) = self.frame.take() {
                    self.source = Some(done.into_inner());
                }
            }
            let Some(mut source) = self.source.take() else {
                return Ok(0);
            };
            if source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let frame = ruzstd::decoding::StreamingDecoder::new(source)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            self.frame = Some(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_read_every_line_once_whatever_the_block_size() {
        let dir = std::env::temp_dir().join(format!("rdask-text-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.txt");
        let text = "alpha\nb\r\n\nlonger line here\nx\nlast-no-newline";
        std::fs::write(&path, text).unwrap();
        let want: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
        for bs in 1..=text.len() as u64 + 1 {
            let blocks = plan_blocks(path.to_str().unwrap(), Some(bs)).unwrap();
            let mut got = Vec::new();
            for b in &blocks {
                let part: Vec<String> = crate::task::decode_value(&lines_of(&b.path, b.start, b.end).unwrap()).unwrap();
                got.extend(part);
            }
            assert_eq!(got, want, "block size {bs}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
