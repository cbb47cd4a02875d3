use std::collections::BTreeMap;
use std::sync::OnceLock;

use rustc_hash::FxHashMap;

use super::codec::{Reader, Writer};
use super::*;
use crate::report;
use crate::synth::{self, SynthArgs};
use crate::window::query::Window;

const MIN: i64 = 60_000_000_000;

fn line(
    id: Option<&str>,
    time: &str,
    user: &str,
    ip: &str,
    app: &str,
    cat: &str,
    code: u32,
) -> String {
    let id = id.map_or(String::new(), |id| format!(r#""id":"{id}","#));
    format!(
        r#"{{"category":"{cat}","properties":{{{id}"createdDateTime":"{time}","userPrincipalName":"{user}","ipAddress":"{ip}","clientAppUsed":"{app}","status":{{"errorCode":{code}}}}}}}"#
    )
}

/// A varied batch: legacy and modern clients, workloads, outcomes, several hours and days,
/// duplicates, records without an id, bad times and lines that are not JSON.
fn sample() -> String {
    let apps = [
        "IMAP4",
        "POP3",
        "Authenticated SMTP",
        "Exchange ActiveSync",
        "Browser",
        "Mobile Apps and Desktop clients",
        "Unknown",
    ];
    let cats = [
        "SignInLogs",
        "NonInteractiveUserSignInLogs",
        "ServicePrincipalSignInLogs",
    ];
    let times = [
        "2026-01-01T00:00:30Z",
        "2026-01-01T00:01:10Z",
        "2026-01-01T03:15:00Z",
        "2026-01-02T10:59:59Z",
        "2026-01-05T23:00:00Z",
    ];
    let users = ["a@x.com", "B@X.com", "zoë@x.com", "svc-mail@x.com"];
    let mut lines = Vec::new();
    for i in 0..140u32 {
        let uuid = format!("{i:08x}-0000-4000-8000-{:012x}", i * 7);
        let plain = format!("plain-{i}");
        let id = match i % 9 {
            0 => None,
            1 | 2 => Some(plain.as_str()),
            _ => Some(uuid.as_str()),
        };
        let l = line(
            id,
            times[i as usize % times.len()],
            users[(i / 3) as usize % users.len()],
            &format!("10.0.{}.{}", i % 3, i % 5),
            apps[i as usize % apps.len()],
            cats[(i / 7) as usize % cats.len()],
            [0, 50126, 53003][(i / 2) as usize % 3],
        );
        if i % 11 == 0 {
            lines.push(l.clone()); // a duplicate
        }
        lines.push(l);
    }
    lines.push(r#"{"properties":{"id":"bad","createdDateTime":"not a time"}}"#.into());
    lines.push("not json".into());
    lines.join("\n")
}

fn synth_lines(records: u64) -> Vec<u8> {
    let mut out = Vec::new();
    synth::write(
        &SynthArgs {
            records,
            ..Default::default()
        },
        &mut out,
    )
    .expect("synth");
    out
}

/// 20 000 synthetic records, made once.
fn synth_20k() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| synth_lines(20_000))
}

/// An engine holding [`synth_20k`], built once (read only: tests that ingest build their own).
fn synth_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let e = Engine::new(EngineConfig::default());
        e.ingest_lines(synth_20k());
        e
    })
}

/// The first `n` lines of `data`.
fn head(data: &[u8], n: usize) -> &[u8] {
    let end = data
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n)
        .map_or(data.len(), |(i, _)| i + 1);
    &data[..end]
}

fn restored(r: Restored) -> (Engine, Vec<u8>, i64) {
    match r {
        Restored::Restored {
            engine,
            positions,
            written_at_unix_ns,
        } => (engine, positions, written_at_unix_ns),
        other => panic!("expected a restored engine, got {other:?}"),
    }
}

fn roundtrip(e: &Engine, positions: &[u8], cfg: &EngineConfig) -> (Engine, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = encode(e, positions);
    assert_eq!(
        write(dir.path(), &image).expect("write"),
        image.len() as u64
    );
    let (engine, positions, _) = restored(restore(dir.path(), cfg).expect("restore"));
    (engine, positions)
}

/// Store keys by shard, and dedup ids by shard and hour (sorted).
type StoreDump = Vec<BTreeMap<i64, FxHashMap<window::Key, u64>>>;
type DedupDump = Vec<BTreeMap<i64, Vec<u128>>>;

fn dump(e: &Engine) -> (StoreDump, DedupDump) {
    let mut store = Vec::new();
    e.store.for_each_shard(|_, b| store.push(b.clone()));
    let mut dedup = Vec::new();
    e.dedup.for_each_shard(|h| {
        let mut h = h.clone();
        h.values_mut().for_each(|ids| ids.sort_unstable());
        dedup.push(h);
    });
    (store, dedup)
}

fn report_json(e: &Engine, w: Window, top: usize) -> (report::Report, String) {
    let r = report::build(e, w, top);
    let s = serde_json::to_string(&r).expect("json");
    (r, s)
}

/// Everything observable, and the contents, are the same.
fn assert_same(a: &Engine, b: &Engine) {
    let day = crate::classify::time::parse("2026-01-01T00:00:00Z").expect("time");
    for (w, top) in [
        (Window::ALL, 100),
        (Window::ALL, 3),
        (
            Window {
                from: day,
                to: day + 60 * MIN,
            },
            100,
        ),
    ] {
        assert_eq!(report_json(a, w, top), report_json(b, w, top));
    }
    assert_eq!(a.stats(), b.stats());
    assert_eq!(a.store.legacy_keys(), b.store.legacy_keys());
    assert_eq!(a.store.watermark(), b.store.watermark());
    assert_eq!(a.store.evictions.counts(), b.store.evictions.counts());
    assert_eq!(a.store.merged_totals(), b.store.merged_totals());
    assert_eq!(a.dedup.len(), b.dedup.len());
    assert_eq!(a.dedup.evicted(), b.dedup.evicted());
    assert_eq!(a.dedup.capacity(), b.dedup.capacity());
    assert!(dump(a) == dump(b), "store or dedup contents differ");
    assert!(b.store.is_well_interned());
}

#[test]
fn roundtrip_reproduces_the_engine_and_later_ingestion() {
    let data = sample();
    let cfg = EngineConfig::default();
    let e = Engine::new(cfg.clone());
    e.ingest_lines(data.as_bytes());
    let st = e.stats();
    assert!(st.duplicates > 0 && st.invalid.total() == 2 && e.store.legacy_keys() > 10);

    let (r, positions) = roundtrip(&e, br#"{"file":{"a.json":123}}"#, &cfg);
    assert_eq!(positions, br#"{"file":{"a.json":123}}"#);
    assert_same(&e, &r);

    // The same lines again: all duplicates in both (ids and first-seen hours remembered).
    e.ingest_lines(data.as_bytes());
    r.ingest_lines(data.as_bytes());
    assert_same(&e, &r);
    assert_eq!(r.stats().records, 2 * st.records);
    assert_eq!(
        r.stats().duplicates,
        st.duplicates + st.records - without_id(&data)
    );
}

/// Records of the sample with no id (dedup does not see them, so they count again).
fn without_id(data: &str) -> u64 {
    data.lines()
        .filter(|l| !l.contains(r#""id""#) && l.contains("createdDateTime"))
        .count() as u64
}

#[test]
fn roundtrip_of_a_synthetic_tenant() {
    let data = synth_20k();
    let cfg = EngineConfig::default();
    let e = Engine::new(cfg.clone());
    e.ingest_lines(data);
    assert!(e.store.legacy_keys() > 100 && e.dedup.len() > 10_000);
    let (r, _) = roundtrip(&e, b"", &cfg);
    assert_same(&e, &r);
    // Part of it again (debug builds ingest slowly): duplicates in both.
    let again = head(data, 3000);
    e.ingest_lines(again);
    r.ingest_lines(again);
    assert_same(&e, &r);
    assert!(r.stats().duplicates >= 2900);
}

#[test]
fn counters_and_evictions_carry_over() {
    // Small bounds so every counter moves: capacity, late records, expired buckets, dedup.
    let cfg = EngineConfig {
        window: crate::window::WindowConfig {
            retention_ns: Some(90 * MIN),
            max_keys: 64,
            ..Default::default()
        },
        dedup_capacity: 640,
        detect: Some(crate::detect::DetectConfig::default()),
    };
    let e = Engine::new(cfg.clone());
    let data = head(synth_20k(), 5000);
    for chunk in data
        .split_inclusive(|b| *b == b'\n')
        .collect::<Vec<_>>()
        .chunks(500)
    {
        e.ingest_lines(&chunk.concat());
        e.expire();
    }
    e.ingest_lines(sample().as_bytes()); // far older than the synth: all late
    let ev = e.store.evictions.counts();
    assert!(
        ev.capacity_keys > 0 && ev.late_records > 0 && ev.expired_buckets > 0,
        "{ev:?}"
    );
    assert!(e.dedup.evicted() > 0);
    let (r, _) = roundtrip(&e, b"", &cfg);
    assert_same(&e, &r);
    e.ingest_lines(data);
    r.ingest_lines(data);
    assert_same(&e, &r);
}

#[test]
fn the_configuration_of_this_run_applies() {
    let e = synth_engine();
    let image = encode(e, b"");
    let keys = e.store.legacy_keys() as u64;
    let ids = e.dedup.len() as u64;
    let restore_with = |cfg: EngineConfig| {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &image).expect("write");
        restored(restore(dir.path(), &cfg).expect("restore")).0
    };

    // Fewer keys: the oldest buckets go, counted as capacity evictions.
    let mut cfg = EngineConfig::default();
    cfg.window.max_keys = 64;
    let r = restore_with(cfg);
    let ev = r.store.evictions.counts();
    assert!(r.store.legacy_keys() <= 64);
    assert_eq!(ev.capacity_keys, keys - r.store.legacy_keys() as u64);
    assert!(r.store.is_well_interned());

    // A retention: what is older goes, as `expire` would drop it.
    let mut cfg = EngineConfig::default();
    cfg.window.retention_ns = Some(60 * MIN);
    let r = restore_with(cfg);
    let w = r.store.watermark().expect("watermark");
    assert!(r.store.evictions.counts().expired_buckets > 0);
    let recent = Window {
        from: w - 60 * MIN,
        to: i64::MAX,
    };
    // Everything inside the retention is as it was; nothing older is left.
    assert_eq!(
        r.store.legacy_summary(recent, 50),
        e.store.legacy_summary(recent, 50)
    );
    assert_eq!(r.store.totals(recent), e.store.totals(recent));
    assert_eq!(r.store.totals(Window::ALL), r.store.totals(recent));
    assert!(r.store.legacy_keys() < e.store.legacy_keys());

    // Fewer ids: the oldest hours go, counted as dedup evictions.
    let cfg = EngineConfig {
        dedup_capacity: 6400,
        ..EngineConfig::default()
    };
    let r = restore_with(cfg);
    assert!(r.dedup.len() <= 6400);
    assert_eq!(r.dedup.evicted(), ids - r.dedup.len() as u64);
}

#[test]
fn positions_come_back_exactly_and_writes_replace_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("nested/state");
    let e = Engine::new(EngineConfig::default());
    e.ingest_lines(sample().as_bytes());
    let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    for positions in [b"first".as_slice(), b"", &binary, br#"{"p":[1,2,3]}"#] {
        write(&state, &encode(&e, positions)).expect("write");
        let names: Vec<String> = fs::read_dir(&state)
            .expect("dir")
            .map(|d| d.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [FILE_NAME], "no temporary file remains");
        let (_, p, at) = restored(restore(&state, &EngineConfig::default()).expect("restore"));
        assert_eq!(p, positions);
        assert!((now_unix_ns() - at).abs() < 60_000_000_000);
    }
}

#[test]
fn no_snapshot_is_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EngineConfig::default();
    assert!(matches!(restore(dir.path(), &cfg), Ok(Restored::None)));
    let missing = dir.path().join("missing");
    assert!(matches!(restore(&missing, &cfg), Ok(Restored::None)));
}

#[cfg(unix)]
#[test]
fn io_problems_are_errors_that_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").expect("write");
    // A file where the directory should be.
    let e = write(&file, &encode(&Engine::new(EngineConfig::default()), b"")).expect_err("write");
    assert!(e.to_string().contains("check the volume mount"), "{e}");
    // The snapshot is a directory: unreadable, not "missing".
    fs::create_dir(dir.path().join(FILE_NAME)).expect("mkdir");
    let e = restore(dir.path(), &EngineConfig::default()).expect_err("restore");
    assert!(matches!(e, StateError::Read { .. }), "{e}");
}

fn small_image() -> Vec<u8> {
    let e = Engine::new(EngineConfig::default());
    e.ingest_lines(
        [
            line(
                Some("1"),
                "2026-01-01T00:00:30Z",
                "a@x",
                "1.1.1.1",
                "IMAP4",
                "SignInLogs",
                0,
            ),
            line(
                Some("2"),
                "2026-01-01T02:00:30Z",
                "b@x",
                "2.2.2.2",
                "POP3",
                "SignInLogs",
                53003,
            ),
            line(
                Some("3"),
                "2026-01-01T02:00:40Z",
                "a@x",
                "1.1.1.1",
                "Browser",
                "SignInLogs",
                0,
            ),
        ]
        .join("\n")
        .as_bytes(),
    );
    encode(&e, b"{}").bytes
}

/// Replaces the checksum so a change reaches the decoder.
fn reseal(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 4 {
        b.truncate(b.len() - 4);
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Writes `bytes` as the snapshot, restores, and checks it was set aside (and as what).
fn assert_set_aside(bytes: &[u8], cfg: &EngineConfig, kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(FILE_NAME);
    fs::write(&path, bytes).expect("write");
    match restore(dir.path(), cfg).expect("restore") {
        Restored::SetAside {
            path: aside,
            reason,
        } => {
            assert!(reason.starts_with(kind), "{reason}");
            assert!(!path.exists(), "the bad file keeps its name");
            let name = aside
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            assert!(name.starts_with(&format!("{FILE_NAME}.{kind}-")), "{name}");
            assert_eq!(fs::read(&aside).expect("aside"), bytes);
        }
        other => panic!("{kind}: expected set aside, got {other:?}"),
    }
}

#[test]
fn bad_files_are_set_aside() {
    let good = small_image();
    let cfg = EngineConfig::default();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x10;
    let mut magic = good.clone();
    magic[0] = b'X';
    let mut version = good.clone();
    version[MAGIC.len()] = 3;
    let mut trailing = good.clone();
    trailing.push(0);
    let cases: &[(&str, Vec<u8>, &str)] = &[
        ("empty", Vec::new(), "corrupt"),
        (
            "garbage",
            b"hello, world, this is not a snapshot at all".to_vec(),
            "incompatible",
        ),
        ("magic only", MAGIC.to_vec(), "corrupt"),
        ("truncated", good[..good.len() - 1].to_vec(), "corrupt"),
        ("half", good[..good.len() / 2].to_vec(), "corrupt"),
        ("flipped byte", flipped, "corrupt"),
        ("wrong magic", magic, "incompatible"),
        ("wrong version", version, "incompatible"),
        ("trailing byte", trailing.clone(), "corrupt"),
        ("trailing byte, resealed", reseal(trailing), "corrupt"),
    ];
    for (name, bytes, kind) in cases {
        eprintln!("case {name}");
        assert_set_aside(bytes, &cfg, kind);
    }
    let mut five = cfg.clone();
    five.window.bucket_ns = 5 * MIN;
    assert_set_aside(&good, &five, "incompatible");
}

#[test]
fn a_second_bad_file_in_the_same_second_gets_its_own_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = EngineConfig::default();
    let mut asides = Vec::new();
    for _ in 0..3 {
        fs::write(dir.path().join(FILE_NAME), b"junk").expect("write");
        match restore(dir.path(), &cfg).expect("restore") {
            Restored::SetAside { path, .. } => asides.push(path),
            other => panic!("{other:?}"),
        }
    }
    asides.sort();
    asides.dedup();
    assert_eq!(asides.len(), 3);
    assert!(asides.iter().all(|p| p.exists()));
}

fn decodes(bytes: &[u8]) -> bool {
    decode(bytes, &EngineConfig::default()).is_ok()
}

#[test]
fn every_truncation_and_flip_is_refused() {
    let good = small_image();
    assert!(decodes(&good));
    for n in 0..good.len() {
        assert!(!decodes(&good[..n]), "truncated to {n}");
        // Past the checksum too: cut the body, then seal it again.
        if n > MAGIC.len() + 4 {
            assert!(!decodes(&reseal(good[..n].to_vec())), "resealed at {n}");
        }
    }
    for i in 0..good.len() {
        for bit in [0x01, 0x80] {
            let mut b = good.clone();
            b[i] ^= bit;
            assert!(!decodes(&b), "byte {i} bit {bit:#x}");
        }
    }
}

/// Changes that pass the checksum must never panic the decoder (they may decode).
#[test]
fn resealed_damage_never_panics() {
    let good = small_image();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in MAGIC.len() + 4..good.len() - 4 {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] = v;
            let _ = decodes(&reseal(b));
        }
    }
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + next() % 4 {
            let i = MAGIC.len() + 4 + (next() as usize) % (good.len() - MAGIC.len() - 8);
            b[i] = next() as u8;
        }
        let _ = decodes(&reseal(b));
    }
    // Random bodies behind a good magic and version, sealed: refused, no panic.
    for len in [0usize, 1, 7, 40, 41, 100, 1000] {
        for _ in 0..200 {
            let mut b = good[..MAGIC.len() + 4].to_vec();
            b.extend((0..len).map(|_| next() as u8));
            assert!(!decodes(&reseal(b)));
        }
    }
    // Plain random bytes.
    for len in 0..200usize {
        let b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        assert!(!decodes(&b));
    }
}

#[test]
fn a_huge_count_is_refused_without_allocating() {
    // Windows section claiming u64::MAX / 2 shards, sealed with a good checksum.
    let mut w = Writer::default();
    let good = small_image();
    // Magic, version and header, copied.
    let header = MAGIC.len() + 4 + 8 + 8 + 9 + 8 + 8;
    w.raw(&good[..header]);
    let m = w.begin_section(TAG_STATS);
    write_stats(&mut w, &InputStats::default());
    w.end_section(m);
    let m = w.begin_section(TAG_WINDOWS);
    w.opt_i(None);
    for _ in 0..4 {
        w.var(0);
    }
    w.var(u64::MAX / 2);
    w.end_section(m);
    let b = reseal({
        let mut b = w.into_inner();
        b.extend_from_slice(&[0; 4]);
        b
    });
    match decode(&b, &EngineConfig::default()) {
        Err(Bad::Corrupt(r)) => assert!(r.starts_with("windows: count"), "{r}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("decoded"),
    }
}

/// Keys found in a shard that is not their user's (the user hash changed between builds) go
/// to their user's shard, interned there.
#[test]
fn keys_move_to_their_users_shard() {
    let e = synth_engine();
    let bucket_ns = e.store.config().bucket_ns;
    let mut all: BTreeMap<i64, FxHashMap<window::Key, u64>> = BTreeMap::new();
    e.store.for_each_shard(|_, b| {
        for (t, keys) in b {
            all.entry(*t)
                .or_default()
                .extend(keys.iter().map(|(k, n)| (k.clone(), *n)));
        }
    });
    for source in [0, STORE_SHARDS + 3] {
        let mut w = Writer::default();
        write_store_shard(&mut w, &mut Writer::default(), &all, bucket_ns);
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        let mut parts: Vec<ShardParts> = (0..STORE_SHARDS).map(|_| ShardParts::default()).collect();
        let mut misplaced = Vec::new();
        read_store_shard(&mut r, source, &mut parts, &mut misplaced, bucket_ns).expect("read");
        r.finish().expect("finish");
        assert!(!misplaced.is_empty());
        place_misplaced(&mut parts, misplaced).expect("place");
        let s = Store::from_parts(
            e.store.config().clone(),
            parts,
            e.store.merged_totals(),
            e.store.watermark(),
            EvictionCounts::default(),
        );
        assert!(s.is_well_interned());
        assert_eq!(s.legacy_keys(), e.store.legacy_keys());
        assert_eq!(
            s.legacy_summary(Window::ALL, 100),
            e.store.legacy_summary(Window::ALL, 100)
        );
    }
}
