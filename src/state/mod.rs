//! Restartable state: a versioned binary snapshot of the engine (window store, totals, dedup
//! ids, input statistics, eviction counters, watermark) and the caller's opaque source
//! positions, written atomically to a state directory and restored on start.
//!
//! [`encode`] runs in memory while the caller holds intake still, [`write`] does the I/O
//! afterwards, [`restore`] reads the snapshot back. A file that does not decode, fails its
//! checksum, or was made with another format or bucket width is never trusted: it is renamed
//! aside and the run starts empty.
//!
//! # Format (version 2)
//!
//! Fixed integers are little-endian; `var` is LEB128, `zvar` zigzag LEB128; strings are a
//! `var` length and UTF-8 bytes.
//!
//! ```text
//! magic "SIGNINRADAR-STATE\n" | version u32 = 1
//! header   written_at i64 (unix ns) | bucket_ns i64 | retention flag u8 + i64
//!          | max_keys u64 | dedup_capacity u64
//! sections tag u8 | length u64 | body, in this order:
//!   1 stats      records, duplicates, bytes: var | invalid: var n, n var
//!                | by_category: var n, n var | first, last: flag u8 + zvar
//!   2 windows    watermark: flag + zvar | evictions: 4 var | shards: var n, then per shard
//!                strings: var n, n strings | buckets: var n, then per bucket
//!                start: zvar bucket index (first), var delta (next) | keys: var n, then per
//!                key user, ip, client: var string index | protocol*3+outcome u8 | count var
//!   3 totals     buckets: var n, then per bucket start as above | cells: var mask of the
//!                non-zero cells of [category][class][outcome] | var per non-zero cell
//!   4 dedup      evicted var | shards: var n, then per shard hours: var n, then per hour
//!                hour: zvar (first), var delta (next) | ids: var n, n u128
//!   5 positions  the caller's bytes (the rest of the section)
//!   6 detect     (version 2) empty without detections, else the baseline key u8
//!                (bit 0 ip, bit 1 app) and the detector's state (`detect::persist`)
//! crc32 u32 over every byte before it
//!
//! Version 1 (no section 6) is still read; its run starts its detections empty.
//! ```

pub mod codec;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::decode::{Invalid, InvalidCounts};
use crate::dedup::{Dedup, DedupBuilder, DEDUP_SHARDS};
use crate::engine::{Engine, EngineConfig, InputStats};
use crate::model::{Category, Outcome, Protocol};
use crate::window::{self, EvictionCounts, Key, ShardParts, Store, Totals, STORE_SHARDS};
use codec::{CodecError, Reader, Writer};

/// Name of the snapshot in the state directory.
pub const FILE_NAME: &str = "snapshot.bin";
/// Name of the file a snapshot is written to before it is renamed over [`FILE_NAME`].
pub const TEMP_NAME: &str = "snapshot.bin.tmp";
/// First bytes of every snapshot.
pub const MAGIC: &[u8; 18] = b"SIGNINRADAR-STATE\n";
/// Format version written and read.
pub const VERSION: u32 = 2;

const TAG_STATS: u8 = 1;
const TAG_WINDOWS: u8 = 2;
const TAG_TOTALS: u8 = 3;
const TAG_DEDUP: u8 = 4;
const TAG_POSITIONS: u8 = 5;
const TAG_DETECT: u8 = 6;

/// Cells of a [`Totals`]: category x class x outcome.
const CELLS: usize = Category::ALL.len() * 3 * 3;

/// An encoded snapshot held in memory.
pub struct Image {
    bytes: Vec<u8>,
}

impl Image {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// What [`restore`] found.
// Made once per run: the engine is not worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Restored {
    /// No snapshot (or no state directory): start empty.
    None,
    /// The engine as it was, with the configuration of this run applied.
    Restored {
        engine: Engine,
        positions: Vec<u8>,
        written_at_unix_ns: i64,
    },
    /// The snapshot was corrupt or incompatible; it now lies at `path` and was not used.
    SetAside { path: PathBuf, reason: String },
}

impl std::fmt::Debug for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Restored::None => f.write_str("None"),
            Restored::Restored {
                positions,
                written_at_unix_ns,
                ..
            } => f
                .debug_struct("Restored")
                .field("positions_bytes", &positions.len())
                .field("written_at_unix_ns", written_at_unix_ns)
                .finish_non_exhaustive(),
            Restored::SetAside { path, reason } => f
                .debug_struct("SetAside")
                .field("path", path)
                .field("reason", reason)
                .finish(),
        }
    }
}

/// A problem with the state directory itself (a bad snapshot is not an error: it is set aside).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory cannot be created or used.
    #[error(
        "cannot use the state directory {}: {source}; check the volume mount and its permissions",
        path.display()
    )]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "cannot write the snapshot {}: {source}; check the volume mount, its permissions and free space",
        path.display()
    )]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "cannot read the snapshot {}: {source}; check the volume mount and its permissions, or move the file away to start empty",
        path.display()
    )]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "cannot move the unusable snapshot {} aside ({reason}): {source}; move or delete it by hand, then restart",
        path.display()
    )]
    SetAside {
        path: PathBuf,
        reason: String,
        source: io::Error,
    },
}

/// Encodes the engine and the caller's source positions into memory. No I/O: run it while
/// intake is held still so the parts agree; it locks one shard at a time.
pub fn encode(engine: &Engine, positions: &[u8]) -> Image {
    let store = &engine.store;
    let cfg = store.config();
    // Room for the usual sizes (about 20 bytes per legacy key, 17 per id): one allocation.
    let estimate = 4096 + positions.len() + store.legacy_keys() * 20 + engine.dedup.len() * 17;
    let mut w = Writer::with_capacity(estimate);

    w.raw(MAGIC);
    w.u32(VERSION);
    w.i64(now_unix_ns());
    w.i64(cfg.bucket_ns);
    match cfg.retention_ns {
        None => {
            w.u8(0);
            w.i64(0);
        }
        Some(r) => {
            w.u8(1);
            w.i64(r);
        }
    }
    w.u64(cfg.max_keys as u64);
    w.u64(engine.dedup.capacity() as u64);

    let m = w.begin_section(TAG_STATS);
    write_stats(&mut w, &engine.stats());
    w.end_section(m);

    let m = w.begin_section(TAG_WINDOWS);
    w.opt_i(store.watermark());
    let ev = store.evictions.counts();
    for v in [
        ev.capacity_keys,
        ev.capacity_records,
        ev.late_records,
        ev.expired_buckets,
    ] {
        w.var(v);
    }
    w.len_var(STORE_SHARDS);
    let mut scratch = Writer::default();
    store.for_each_shard(|_, buckets| {
        write_store_shard(&mut w, &mut scratch, buckets, cfg.bucket_ns);
    });
    drop(scratch);
    w.end_section(m);

    let m = w.begin_section(TAG_TOTALS);
    let totals = store.merged_totals();
    w.len_var(totals.len());
    let mut prev = None;
    for (b, t) in &totals {
        write_bucket_start(&mut w, &mut prev, *b, cfg.bucket_ns);
        let cells = t.counts.as_flattened().as_flattened();
        let mask = cells
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .fold(0u64, |m, (i, _)| m | 1 << i);
        w.var(mask);
        for n in cells.iter().filter(|n| **n > 0) {
            w.var(*n);
        }
    }
    drop(totals);
    w.end_section(m);

    let m = w.begin_section(TAG_DEDUP);
    w.var(engine.dedup.evicted());
    w.len_var(DEDUP_SHARDS);
    engine.dedup.for_each_shard(|by_hour| {
        w.len_var(by_hour.len());
        let mut prev: Option<i64> = None;
        for (hour, ids) in by_hour {
            match prev {
                None => w.var_i(*hour),
                Some(p) => w.var(hour.wrapping_sub(p) as u64),
            }
            prev = Some(*hour);
            w.len_var(ids.len());
            for id in ids {
                w.u128(*id);
            }
        }
    });
    w.end_section(m);

    let m = w.begin_section(TAG_POSITIONS);
    w.raw(positions);
    w.end_section(m);

    let m = w.begin_section(TAG_DETECT);
    if let Some(d) = &engine.detect {
        w.u8(key_bits(d.config().baseline_key));
        d.encode(&mut w);
    }
    w.end_section(m);

    let crc = crc32fast::hash(w.as_bytes());
    w.u32(crc);
    Image {
        bytes: w.into_inner(),
    }
}

/// Writes the image to `dir/FILE_NAME` atomically: a temporary file in `dir`, synced, renamed
/// over the snapshot, then the directory synced. Creates `dir` if needed. Returns the bytes
/// written.
pub fn write(dir: &Path, image: &Image) -> Result<u64, StateError> {
    fs::create_dir_all(dir).map_err(|source| StateError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(TEMP_NAME);
    let path = dir.join(FILE_NAME);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Write { path, source }
    };
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(image.as_bytes())?;
        f.sync_all()
    })()
    .map_err(err(&tmp));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, &path).map_err(err(&path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir).map_err(err(dir))?;
    Ok(image.len() as u64)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Reads `dir/FILE_NAME` and rebuilds the engine under `cfg`, the configuration of this run.
/// Under the configuration the snapshot was made with, the engine is exactly the one encoded;
/// a different retention, key bound or dedup capacity is applied to it (what that drops is
/// counted, as [`Engine::expire`] and inserts count it). A corrupt or incompatible file is
/// renamed to `snapshot.bin.corrupt-<unix secs>` (or `.incompatible-`) and reported as
/// [`Restored::SetAside`]. A missing directory or file is [`Restored::None`]; errors are
/// other I/O problems only. The whole file is read into memory.
pub fn restore(dir: &Path, cfg: &EngineConfig) -> Result<Restored, StateError> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::None),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    match decode(&bytes, cfg) {
        Ok((engine, positions, written_at_unix_ns)) => {
            drop(bytes);
            Ok(Restored::Restored {
                engine,
                positions,
                written_at_unix_ns,
            })
        }
        Err(bad) => {
            let (kind, reason) = match bad {
                Bad::Corrupt(r) => ("corrupt", r),
                Bad::Incompatible(r) => ("incompatible", r),
            };
            let aside = set_aside(&path, kind).map_err(|source| StateError::SetAside {
                path: path.clone(),
                reason: reason.clone(),
                source,
            })?;
            Ok(Restored::SetAside {
                path: aside,
                reason: format!("{kind} snapshot: {reason}"),
            })
        }
    }
}

/// Renames `path` to `<path>.<kind>-<unix secs>` (with `-N` added if that exists).
fn set_aside(path: &Path, kind: &str) -> io::Result<PathBuf> {
    let secs = now_unix_ns() / 1_000_000_000;
    let base = format!("{FILE_NAME}.{kind}-{secs}");
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut aside = dir.join(&base);
    let mut n = 1;
    while aside.try_exists()? {
        aside = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    fs::rename(path, &aside)?;
    Ok(aside)
}

fn now_unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Why a snapshot is not used.
#[derive(Debug)]
enum Bad {
    Corrupt(String),
    Incompatible(String),
}

fn corrupt(section: &'static str) -> impl Fn(CodecError) -> Bad {
    move |e| Bad::Corrupt(format!("{section}: {e}"))
}

fn write_stats(w: &mut Writer, st: &InputStats) {
    w.var(st.records);
    w.var(st.duplicates);
    w.var(st.bytes);
    w.len_var(st.invalid.0.len());
    for n in st.invalid.0 {
        w.var(n);
    }
    w.len_var(st.by_category.len());
    for n in st.by_category {
        w.var(n);
    }
    w.opt_i(st.first);
    w.opt_i(st.last);
}

fn read_stats(r: &mut Reader<'_>) -> Result<InputStats, CodecError> {
    let mut st = InputStats {
        records: r.var()?,
        duplicates: r.var()?,
        bytes: r.var()?,
        ..InputStats::default()
    };
    let n = r.count(1)?;
    if n > Invalid::COUNT {
        return Err(r.invalid("more invalid reasons than this build knows"));
    }
    let mut invalid = InvalidCounts::default();
    for slot in invalid.0.iter_mut().take(n) {
        *slot = r.var()?;
    }
    st.invalid = invalid;
    let n = r.count(1)?;
    if n > Category::ALL.len() {
        return Err(r.invalid("more categories than this build knows"));
    }
    for slot in st.by_category.iter_mut().take(n) {
        *slot = r.var()?;
    }
    st.first = r.opt_i()?;
    st.last = r.opt_i()?;
    Ok(st)
}

/// Bucket start as a bucket index: absolute (zigzag) for the first, the delta after.
fn write_bucket_start(w: &mut Writer, prev: &mut Option<i64>, b: i64, bucket_ns: i64) {
    debug_assert_eq!(b.rem_euclid(bucket_ns), 0);
    let i = b.div_euclid(bucket_ns);
    match *prev {
        None => w.var_i(i),
        Some(p) => w.var(i.wrapping_sub(p) as u64),
    }
    *prev = Some(i);
}

/// Reads what [`write_bucket_start`] wrote; starts must increase strictly.
fn read_bucket_start(
    r: &mut Reader<'_>,
    prev: &mut Option<i64>,
    bucket_ns: i64,
) -> Result<i64, CodecError> {
    let i = read_ordered(r, prev)?;
    i.checked_mul(bucket_ns)
        .ok_or_else(|| r.invalid("bucket start out of range"))
}

/// A strictly increasing i64: zigzag for the first, a positive delta after.
fn read_ordered(r: &mut Reader<'_>, prev: &mut Option<i64>) -> Result<i64, CodecError> {
    let v = match *prev {
        None => r.var_i()?,
        Some(p) => {
            let d = r.var()?;
            if d == 0 {
                return Err(r.invalid("not in increasing order"));
            }
            i64::try_from(d)
                .ok()
                .and_then(|d| p.checked_add(d))
                .ok_or_else(|| r.invalid("value out of range"))?
        }
    };
    *prev = Some(v);
    Ok(v)
}

/// One store shard: its string table (each string its keys use, once), then its buckets with
/// keys as indices into the table. One pass over the keys: they are encoded into `scratch`
/// while the table is built, then copied in after it.
fn write_store_shard(
    w: &mut Writer,
    scratch: &mut Writer,
    buckets: &BTreeMap<i64, FxHashMap<Key, u64>>,
    bucket_ns: i64,
) {
    // Interned strings are shared `Arc`s: index them by address, not by content.
    let mut index: FxHashMap<*const u8, u32> = FxHashMap::default();
    let mut table: Vec<&str> = Vec::new();
    scratch.clear();
    scratch.len_var(buckets.len());
    let mut prev = None;
    for (b, keys) in buckets {
        write_bucket_start(scratch, &mut prev, *b, bucket_ns);
        scratch.len_var(keys.len());
        for (k, n) in keys {
            for s in [&k.user, &k.ip, &k.client] {
                let i = *index.entry(Arc::as_ptr(s).cast::<u8>()).or_insert_with(|| {
                    table.push(s);
                    (table.len() - 1) as u32
                });
                scratch.var(u64::from(i));
            }
            scratch.u8((k.protocol.index() * Outcome::ALL.len() + k.outcome.index()) as u8);
            scratch.var(*n);
        }
    }
    w.len_var(table.len());
    for s in &table {
        w.bytes(s.as_bytes());
    }
    w.raw(scratch.as_bytes());
}

/// A key of a shard whose user belongs to another shard (the user hash changed between
/// builds): placed after every shard is read.
struct Misplaced {
    shard: usize,
    bucket: i64,
    key: Key,
    count: u64,
}

/// Reads one store shard into `parts`, each key into its user's shard.
fn read_store_shard(
    r: &mut Reader<'_>,
    source: usize,
    parts: &mut [ShardParts],
    misplaced: &mut Vec<Misplaced>,
    bucket_ns: i64,
) -> Result<(), CodecError> {
    let n = r.count(1)?;
    let mut table: Vec<Arc<str>> = Vec::with_capacity(n);
    let mut own = parts.get_mut(source).map(|p| &mut p.strings);
    for _ in 0..n {
        let s = r.str()?;
        table.push(match own.as_deref_mut() {
            Some(strings) => intern(strings, s),
            // A shard this build does not have: its keys all go elsewhere.
            None => Arc::from(s),
        });
    }
    // Shard of each table string used as a user, computed once (u8::MAX: not yet).
    let mut user_shard = vec![u8::MAX; table.len()];
    let string = |r: &mut Reader<'_>| -> Result<(usize, Arc<str>), CodecError> {
        let i = r.var()?;
        let a = usize::try_from(i)
            .ok()
            .and_then(|i| Some((i, table.get(i)?.clone())))
            .ok_or_else(|| r.invalid("string index out of range"))?;
        Ok(a)
    };
    let buckets = r.count(2)?;
    let mut prev = None;
    for _ in 0..buckets {
        let b = read_bucket_start(r, &mut prev, bucket_ns)?;
        let n = r.count(5)?;
        if n == 0 {
            return Err(r.invalid("empty bucket"));
        }
        let mut here: FxHashMap<Key, u64> =
            FxHashMap::with_capacity_and_hasher(n, Default::default());
        for _ in 0..n {
            let (ui, user) = string(r)?;
            let (_, ip) = string(r)?;
            let (_, client) = string(r)?;
            let pk = usize::from(r.u8()?);
            let (Some(&protocol), Some(&outcome)) = (
                Protocol::ALL.get(pk / Outcome::ALL.len()),
                Outcome::ALL.get(pk % Outcome::ALL.len()),
            ) else {
                return Err(r.invalid("unknown protocol"));
            };
            let count = r.var()?;
            if count == 0 {
                return Err(r.invalid("key with no sign-ins"));
            }
            let key = Key {
                user,
                ip,
                client,
                protocol,
                outcome,
            };
            if user_shard[ui] == u8::MAX {
                user_shard[ui] = window::user_shard(&key.user) as u8;
            }
            let shard = usize::from(user_shard[ui]);
            if shard == source {
                if here.insert(key, count).is_some() {
                    return Err(r.invalid("key twice in one bucket"));
                }
            } else {
                misplaced.push(Misplaced {
                    shard,
                    bucket: b,
                    key,
                    count,
                });
            }
        }
        if !here.is_empty() {
            if let Some(p) = parts.get_mut(source) {
                p.buckets.insert(b, here);
            }
        }
    }
    Ok(())
}

/// The set's string equal to `s`, added if missing.
fn intern(strings: &mut FxHashSet<Arc<str>>, s: &str) -> Arc<str> {
    match strings.get(s) {
        Some(a) => a.clone(),
        None => {
            let a: Arc<str> = Arc::from(s);
            strings.insert(a.clone());
            a
        }
    }
}

/// Like [`intern`], reusing `a` when the set lacks it.
fn intern_arc(strings: &mut FxHashSet<Arc<str>>, a: Arc<str>) -> Arc<str> {
    match strings.get(&a) {
        Some(b) => b.clone(),
        None => {
            strings.insert(a.clone());
            a
        }
    }
}

/// Places keys read in a shard that is not their user's.
fn place_misplaced(parts: &mut [ShardParts], misplaced: Vec<Misplaced>) -> Result<(), Bad> {
    let any = !misplaced.is_empty();
    for m in misplaced {
        let p = &mut parts[m.shard];
        let key = Key {
            user: intern_arc(&mut p.strings, m.key.user),
            ip: intern_arc(&mut p.strings, m.key.ip),
            client: intern_arc(&mut p.strings, m.key.client),
            ..m.key
        };
        if p.buckets
            .entry(m.bucket)
            .or_default()
            .insert(key, m.count)
            .is_some()
        {
            return Err(Bad::Corrupt("windows: key twice in one bucket".into()));
        }
    }
    if any {
        // Strings only misplaced keys used are left with no key referring to them.
        for p in parts.iter_mut() {
            p.strings.retain(|s| Arc::strong_count(s) > 1);
        }
    }
    Ok(())
}

/// The windows section, before the totals join it in a [`Store`].
struct Windows {
    parts: Vec<ShardParts>,
    watermark: Option<i64>,
    evictions: EvictionCounts,
}

fn read_windows(r: &mut Reader<'_>, bucket_ns: i64) -> Result<Windows, Bad> {
    let err = corrupt("windows");
    let watermark = r.opt_i().map_err(&err)?;
    let mut ev = [0u64; 4];
    for v in ev.iter_mut() {
        *v = r.var().map_err(&err)?;
    }
    let evictions = EvictionCounts {
        capacity_keys: ev[0],
        capacity_records: ev[1],
        late_records: ev[2],
        expired_buckets: ev[3],
    };
    let shards = r.count(2).map_err(&err)?;
    let mut parts: Vec<ShardParts> = (0..STORE_SHARDS).map(|_| ShardParts::default()).collect();
    let mut misplaced = Vec::new();
    for source in 0..shards {
        read_store_shard(r, source, &mut parts, &mut misplaced, bucket_ns).map_err(&err)?;
    }
    r.finish().map_err(&err)?;
    place_misplaced(&mut parts, misplaced)?;
    Ok(Windows {
        parts,
        watermark,
        evictions,
    })
}

fn read_totals(r: &mut Reader<'_>, bucket_ns: i64) -> Result<BTreeMap<i64, Totals>, CodecError> {
    let n = r.count(2)?;
    let mut out = BTreeMap::new();
    let mut prev = None;
    for _ in 0..n {
        let b = read_bucket_start(r, &mut prev, bucket_ns)?;
        let mask = r.var()?;
        if mask >> CELLS != 0 {
            return Err(r.invalid("totals cell out of range"));
        }
        let mut t = Totals::default();
        for (i, cell) in t
            .counts
            .as_flattened_mut()
            .as_flattened_mut()
            .iter_mut()
            .enumerate()
        {
            if mask >> i & 1 == 1 {
                *cell = r.var()?;
            }
        }
        out.insert(b, t);
    }
    r.finish()?;
    Ok(out)
}

fn read_dedup(r: &mut Reader<'_>, capacity: usize) -> Result<Dedup, Bad> {
    let err = corrupt("dedup");
    let evicted = r.var().map_err(&err)?;
    let shards = r.count(1).map_err(&err)?;
    let mut b = DedupBuilder::new();
    let mut ids: Vec<u128> = Vec::new();
    for _ in 0..shards {
        let hours = r.count(3).map_err(&err)?;
        let mut prev = None;
        for _ in 0..hours {
            let hour = read_ordered(r, &mut prev).map_err(&err)?;
            let n = r.count(16).map_err(&err)?;
            ids.clear();
            ids.reserve(n);
            for _ in 0..n {
                ids.push(r.u128().map_err(&err)?);
            }
            b.push_hour(hour, ids.drain(..));
        }
    }
    r.finish().map_err(&err)?;
    b.finish(capacity, evicted)
        .ok_or_else(|| Bad::Corrupt("dedup: an id appears twice".into()))
}

/// Checks and decodes a whole snapshot into an engine under `cfg`, the positions, and the
/// time it was written.
fn decode(bytes: &[u8], cfg: &EngineConfig) -> Result<(Engine, Vec<u8>, i64), Bad> {
    let mut r = Reader::new(bytes);
    let short = |_| Bad::Corrupt(format!("{} bytes: too short for a snapshot", bytes.len()));
    if r.take(MAGIC.len()).map_err(short)? != MAGIC {
        return Err(Bad::Incompatible("not a signin-radar snapshot".into()));
    }
    let version = r.u32().map_err(short)?;
    if version != VERSION && version != 1 {
        return Err(Bad::Incompatible(format!(
            "format version {version}, this build reads {VERSION}"
        )));
    }
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(Bad::Corrupt("too short for a snapshot".into()));
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(Bad::Corrupt(
            "checksum mismatch (truncated or damaged)".into(),
        ));
    }
    let mut r = Reader::new(body);
    r.take(MAGIC.len() + 4).map_err(corrupt("header"))?;
    decode_body(&mut r, cfg, version)
}

fn key_bits(k: crate::detect::BaselineKey) -> u8 {
    u8::from(k.ip) | u8::from(k.app) << 1
}

/// Decodes what follows the magic and version, up to the checksum.
fn decode_body(
    r: &mut Reader<'_>,
    cfg: &EngineConfig,
    version: u32,
) -> Result<(Engine, Vec<u8>, i64), Bad> {
    let err = corrupt("header");
    let written_at = r.i64().map_err(&err)?;
    let bucket_ns = r.i64().map_err(&err)?;
    let retention = match (r.u8().map_err(&err)?, r.i64().map_err(&err)?) {
        (0, _) => None,
        (1, r) => Some(r),
        _ => return Err(Bad::Corrupt("header: bad retention flag".into())),
    };
    let _max_keys = r.u64().map_err(&err)?;
    let _dedup_capacity = r.u64().map_err(&err)?;
    if bucket_ns <= 0 {
        return Err(Bad::Corrupt(format!("header: bucket width {bucket_ns} ns")));
    }
    if bucket_ns != cfg.window.bucket_ns {
        return Err(Bad::Incompatible(format!(
            "made with {bucket_ns} ns buckets, this run uses {} ns",
            cfg.window.bucket_ns
        )));
    }

    let mut s = r.section(TAG_STATS).map_err(corrupt("stats"))?;
    let stats = read_stats(&mut s)
        .and_then(|st| s.finish().map(|()| st))
        .map_err(corrupt("stats"))?;

    let mut s = r.section(TAG_WINDOWS).map_err(corrupt("windows"))?;
    let windows = read_windows(&mut s, bucket_ns)?;

    let mut s = r.section(TAG_TOTALS).map_err(corrupt("totals"))?;
    let totals = read_totals(&mut s, bucket_ns).map_err(corrupt("totals"))?;
    let store = Store::from_parts(
        cfg.window.clone(),
        windows.parts,
        totals,
        windows.watermark,
        windows.evictions,
    );

    let mut s = r.section(TAG_DEDUP).map_err(corrupt("dedup"))?;
    let dedup = read_dedup(&mut s, cfg.dedup_capacity)?;

    let mut s = r.section(TAG_POSITIONS).map_err(corrupt("positions"))?;
    let positions = s
        .take(s.remaining())
        .map_err(corrupt("positions"))?
        .to_vec();

    let detect = cfg.detect.clone().map(crate::detect::Detector::new);
    if version >= 2 {
        let mut s = r.section(TAG_DETECT).map_err(corrupt("detect"))?;
        if let (Some(d), false) = (&detect, s.remaining() == 0) {
            let bits = s.u8().map_err(corrupt("detect"))?;
            if bits == key_bits(d.config().baseline_key) {
                d.decode(&mut s)
                    .and_then(|()| s.finish())
                    .map_err(corrupt("detect"))?;
            } else {
                tracing::warn!(
                    "The snapshot's detections were made with another baseline key; they start empty and learn again."
                );
            }
        }
    }
    r.finish().map_err(corrupt("end"))?;

    let engine = Engine::from_parts(store, dedup, stats, detect);
    if retention != cfg.window.retention_ns {
        engine.expire();
    }
    Ok((engine, positions, written_at))
}

#[cfg(test)]
mod tests;
