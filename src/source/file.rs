//! Exported logs: files (plain or gzip, recognised by magic bytes), directories of them, and
//! stdin. Plain files are memory-mapped and cut into chunks of whole lines; gzip and stdin are
//! read as streams in chunks of whole lines, or held whole when they are one document.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::decode::{self, Framing, MAX_LINE_BYTES};

/// Target size of one chunk of lines, in bytes.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Largest document read from a stream (stdin, gzip), in bytes.
pub const MAX_STREAM_DOCUMENT: usize = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("{path} is a directory with no files in it")]
    EmptyDirectory { path: String },
}

/// One input named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSpec {
    Stdin,
    Path(PathBuf),
}

impl InputSpec {
    pub fn parse(arg: &str) -> InputSpec {
        if arg == "-" {
            InputSpec::Stdin
        } else {
            InputSpec::Path(PathBuf::from(arg))
        }
    }

    pub fn name(&self) -> String {
        match self {
            InputSpec::Stdin => "stdin".into(),
            InputSpec::Path(p) => p.display().to_string(),
        }
    }
}

/// Expands directories (recursively, sorted, hidden entries skipped) into their files.
pub fn expand(inputs: &[InputSpec]) -> Result<Vec<InputSpec>, SourceError> {
    let mut out = Vec::new();
    for i in inputs {
        match i {
            InputSpec::Path(p) if p.is_dir() => {
                let before = out.len();
                walk(p, &mut out)?;
                if out.len() == before {
                    return Err(SourceError::EmptyDirectory {
                        path: p.display().to_string(),
                    });
                }
            }
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<InputSpec>) -> Result<(), SourceError> {
    let err = |source| SourceError::Open {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(InputSpec::Path(p));
        }
    }
    Ok(())
}

/// An opened input.
pub enum Opened {
    /// A plain file, mapped (or read, when empty or not mappable).
    Mapped(Arc<Bytes>),
    /// gzip or stdin.
    Stream(Box<dyn BufRead + Send>),
}

/// Bytes of a whole plain file.
pub enum Bytes {
    Map(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// Opens an input; errors name the file and the cause.
pub fn open(spec: &InputSpec) -> Result<Opened, SourceError> {
    let err = |source| SourceError::Open {
        path: spec.name(),
        source,
    };
    match spec {
        InputSpec::Stdin => {
            let mut r = BufReader::with_capacity(1 << 20, io::stdin());
            let head = r.fill_buf().map_err(err)?;
            if is_gzip(head) {
                Ok(Opened::Stream(Box::new(BufReader::with_capacity(
                    1 << 20,
                    flate2::bufread::MultiGzDecoder::new(r),
                ))))
            } else {
                Ok(Opened::Stream(Box::new(r)))
            }
        }
        InputSpec::Path(p) => {
            let f = File::open(p).map_err(err)?;
            let meta = f.metadata().map_err(err)?;
            if meta.is_dir() {
                return Err(err(io::Error::other("is a directory")));
            }
            let mut head = [0u8; 2];
            let n = (&f).read(&mut head).map_err(err)?;
            if is_gzip(&head[..n]) {
                let f = File::open(p).map_err(err)?;
                return Ok(Opened::Stream(Box::new(BufReader::with_capacity(
                    1 << 20,
                    flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f)),
                ))));
            }
            if meta.len() == 0 || !meta.is_file() {
                // Empty files cannot be mapped; pipes and devices are read instead.
                let mut v = Vec::new();
                File::open(p)
                    .map_err(err)?
                    .read_to_end(&mut v)
                    .map_err(err)?;
                return Ok(Opened::Mapped(Arc::new(Bytes::Owned(v))));
            }
            // SAFETY: the map is read-only; a file truncated under us while mapped is the
            // usual mmap caveat, accepted for exported logs that are not being written.
            let map = unsafe { Mmap::map(&f) }.map_err(err)?;
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            Ok(Opened::Mapped(Arc::new(Bytes::Map(map))))
        }
    }
}

/// A piece of work for decode.
pub enum Work {
    /// Whole lines of a mapped file.
    MappedLines(Arc<Bytes>, Range<usize>),
    /// A whole mapped file that is one document.
    MappedDocument(Arc<Bytes>),
    /// Whole lines read from a stream.
    Lines(Vec<u8>),
    /// A whole document read from a stream.
    Document(Vec<u8>),
    /// Units a stream could not deliver (too large, or the stream broke), counted by reason.
    Invalid(decode::Invalid, String),
}

impl Work {
    pub fn len(&self) -> usize {
        match self {
            Work::MappedLines(_, r) => r.len(),
            Work::MappedDocument(b) => b.len(),
            Work::Lines(v) | Work::Document(v) => v.len(),
            Work::Invalid(..) => 0,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Cuts a mapped file into work: chunks of about [`CHUNK_BYTES`] of whole lines, or one
/// document. Stops when `emit` returns false.
pub fn split_mapped(bytes: Arc<Bytes>, mut emit: impl FnMut(Work) -> bool) {
    let data: &[u8] = &bytes;
    let bom = data.len() - decode::strip_bom(data).len();
    if decode::detect_framing(data) == Framing::Document {
        emit(Work::MappedDocument(bytes.clone()));
        return;
    }
    let mut start = bom;
    while start < data.len() {
        let target = (start + CHUNK_BYTES).min(data.len());
        let end = if target == data.len() {
            data.len()
        } else {
            memchr::memchr(b'\n', &data[target..]).map_or(data.len(), |i| target + i + 1)
        };
        if !emit(Work::MappedLines(bytes.clone(), start..end)) {
            return;
        }
        start = end;
    }
}

/// Reads a stream into work. Read errors end the stream: the whole lines read before still
/// count, and the break (with the line or document it cut) is one `truncated` unit, with a
/// warning naming the error. Stops reading when `emit` returns false.
pub fn split_stream(
    mut r: Box<dyn BufRead + Send>,
    name: &str,
    mut emit: impl FnMut(Work) -> bool,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES * 2);
    let mut eof = false;
    let mut broken: Option<io::Error> = None;
    let mut fill =
        |buf: &mut Vec<u8>, extra: usize, eof: &mut bool, broken: &mut Option<io::Error>| {
            let want = buf.len() + extra;
            while !*eof && buf.len() < want {
                let avail = match r.fill_buf() {
                    Ok(a) => a,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        *broken = Some(e);
                        *eof = true;
                        break;
                    }
                };
                if avail.is_empty() {
                    *eof = true;
                    break;
                }
                let n = avail.len().min(want - buf.len());
                buf.extend_from_slice(&avail[..n]);
                r.consume(n);
            }
        };

    // Read until the first non-blank line is complete, to choose the framing.
    loop {
        fill(&mut buf, CHUNK_BYTES, &mut eof, &mut broken);
        if eof || has_complete_first_line(&buf) || buf.len() > MAX_LINE_BYTES {
            break;
        }
    }
    // A leading byte order mark belongs to neither framing.
    if buf.starts_with(b"\xEF\xBB\xBF") {
        buf.drain(..3);
    }
    if decode::detect_framing(&buf) == Framing::Document {
        while !eof && buf.len() <= MAX_STREAM_DOCUMENT {
            fill(&mut buf, CHUNK_BYTES * 4, &mut eof, &mut broken);
        }
        if broken.is_some() {
            // A document cut by a broken stream is the one truncated unit reported below.
        } else if buf.len() > MAX_STREAM_DOCUMENT {
            emit(Work::Invalid(
                decode::Invalid::TooLarge,
                format!(
                    "{name}: one JSON document larger than {} GiB; convert it to NDJSON (for \
                     example `jq -c '.[]'`) to read it in pieces",
                    MAX_STREAM_DOCUMENT >> 30
                ),
            ));
        } else {
            emit(Work::Document(std::mem::take(&mut buf)));
        }
    } else {
        // Lines: hand on whole lines, carry the partial last line.
        let mut skipping = false;
        loop {
            if skipping {
                match memchr::memchr(b'\n', &buf) {
                    Some(i) => {
                        buf.drain(..=i);
                        skipping = false;
                    }
                    None => buf.clear(),
                }
            }
            // At the end, the last line counts too, unless the stream broke: then the cut line
            // is the one truncated unit reported below.
            let cut = if eof && broken.is_none() {
                buf.len()
            } else {
                memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1)
            };
            if cut > 0 && !skipping {
                let rest = buf.split_off(cut);
                if !emit(Work::Lines(std::mem::replace(&mut buf, rest))) {
                    return;
                }
            }
            if eof {
                break;
            }
            if buf.len() > MAX_LINE_BYTES && !skipping {
                let go = emit(Work::Invalid(
                    decode::Invalid::TooLarge,
                    format!(
                        "{name}: a line longer than {} MiB was skipped",
                        MAX_LINE_BYTES >> 20
                    ),
                ));
                if !go {
                    return;
                }
                skipping = true;
                buf.clear();
            }
            fill(&mut buf, CHUNK_BYTES, &mut eof, &mut broken);
        }
    }
    if let Some(e) = broken {
        // Drain nothing more: the stream is unusable past this point.
        emit(Work::Invalid(
            decode::Invalid::Truncated,
            format!("{name}: input ended early ({e}); the records read before it count"),
        ));
    }
}

fn has_complete_first_line(buf: &[u8]) -> bool {
    let data = decode::strip_bom(buf);
    let mut rest = data;
    while let Some(i) = memchr::memchr(b'\n', rest) {
        if !rest[..i]
            .iter()
            .all(|&b| b == b' ' || b == b'\t' || b == b'\r')
        {
            return true;
        }
        rest = &rest[i + 1..];
    }
    false
}

/// The service's `file:` source: cuts each opened file into units as `replay` does, numbers
/// them, skips the ones `positions` says were counted, and hands the rest to `emit` with their
/// [`Mark`](super::Mark). Unit boundaries depend only on the bytes, so the numbers are stable
/// across restarts. Stops early when `emit` returns false (shutdown).
pub fn feed_units(
    files: Vec<(String, Opened)>,
    positions: &super::Positions,
    emit: &mut dyn FnMut(super::Unit) -> bool,
) -> bool {
    for (name, o) in files {
        let done = positions.files.get(&name).map(|f| f.done.clone());
        let mut unit = 0u64;
        let mut go = true;
        let mut each = |w: Work| {
            let n = unit;
            unit += 1;
            if done.as_ref().is_some_and(|d| d.contains(n)) {
                return true;
            }
            let mark = super::Mark::File {
                path: name.clone(),
                unit: n,
            };
            go = emit(super::Unit { work: w, mark });
            go
        };
        match o {
            Opened::Mapped(b) => split_mapped(b, &mut each),
            Opened::Stream(r) => split_stream(r, &name, &mut each),
        }
        if !go {
            return false;
        }
    }
    true
}

/// Length of an opened input, when known before reading (mapped files).
pub fn opened_len(o: &Opened) -> Option<u64> {
    match o {
        Opened::Mapped(b) => Some(b.len() as u64),
        Opened::Stream(_) => None,
    }
}
