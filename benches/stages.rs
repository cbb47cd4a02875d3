//! Criterion benches per stage, over synthetic Event Hubs records (NDJSON, about 7 KB each).
//!
//! `cargo bench --bench stages` runs them; figures go to benches/README.md with the machine.
//! The `parsers` group compares the decode stage with simd-json and sonic-rs on the same lines
//! and the same job: find the fields the engine needs.

use std::hint::black_box;

use clap::Parser;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use signin_radar::classify;
use signin_radar::decode::{self, json, Decoded};
use signin_radar::engine::{Engine, EngineConfig};
use signin_radar::synth::SynthArgs;

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    synth: SynthArgs,
}

/// 5,000 records of NDJSON from the built-in generator (seeded, so every run sees the same).
fn data() -> Vec<u8> {
    data_with(&[])
}

fn data_with(extra: &[&str]) -> Vec<u8> {
    let mut args = vec![
        "synth",
        "--records",
        "5000",
        "--users",
        "20000",
        "--seed",
        "7",
        "--format",
        "ndjson",
    ];
    args.extend_from_slice(extra);
    let w = Wrap::parse_from(args);
    let mut out = Vec::new();
    signin_radar::synth::write(&w.synth, &mut out).expect("synth writes to memory");
    out
}

fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

fn stages(c: &mut Criterion) {
    let data = data();
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("utf8_validate", |b| {
        b.iter(|| simdutf8::basic::from_utf8(black_box(&data)).is_ok())
    });
    g.bench_function("split_lines", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(&data)).count())
    });
    g.bench_function("scan_skip_strict", |b| {
        // The whole of every line, token by token, as if nothing were skipped unread.
        let ls = lines(&data);
        b.iter(|| {
            ls.iter()
                .filter(|l| {
                    let text = std::str::from_utf8(l).expect("synth writes UTF-8");
                    let mut s = json::Scanner::new(text);
                    s.skip(0).is_ok() && s.finish().is_ok()
                })
                .count()
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut d = Decoded::default();
            decode::decode_lines(black_box(&data), &mut d);
            d.records.len()
        })
    });
    g.bench_function("decode_classify", |b| {
        b.iter(|| {
            let mut d = Decoded::default();
            decode::decode_lines(black_box(&data), &mut d);
            d.records
                .iter()
                .filter(|f| classify::classify(f).is_ok_and(|s| s.legacy().is_some()))
                .count()
        })
    });
    g.bench_function("engine_end_to_end", |b| {
        b.iter(|| {
            let e = Engine::new(EngineConfig::default());
            e.ingest_lines(black_box(&data));
            e.stats().records
        })
    });
    g.finish();
}

fn parsers(c: &mut Criterion) {
    let data = data();
    let ls = lines(&data);
    let mut g = c.benchmark_group("parsers");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("signin-radar", "on-demand"), |b| {
        b.iter(|| {
            let mut d = Decoded::default();
            decode::decode_lines(black_box(&data), &mut d);
            d.records.len()
        })
    });
    g.bench_function(BenchmarkId::new("simd-json", "borrowed-dom"), |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for l in &ls {
                // simd-json parses in place: the copy is part of its cost.
                buf.clear();
                buf.extend_from_slice(l);
                if let Ok(v) = simd_json::to_borrowed_value(&mut buf) {
                    use simd_json::prelude::*;
                    let p = v.get("properties");
                    n += usize::from(p.and_then(|p| p.get("clientAppUsed")).is_some());
                    n += usize::from(p.and_then(|p| p.get("userPrincipalName")).is_some());
                }
            }
            n
        })
    });
    g.bench_function(BenchmarkId::new("simd-json", "tape"), |b| {
        let mut buf = Vec::new();
        b.iter(|| {
            let mut n = 0;
            for l in &ls {
                buf.clear();
                buf.extend_from_slice(l);
                n += usize::from(simd_json::to_tape(&mut buf).is_ok());
            }
            n
        })
    });
    g.bench_function(BenchmarkId::new("sonic-rs", "get_many"), |b| {
        let mut tree = sonic_rs::PointerTree::new();
        for p in [
            "id",
            "createdDateTime",
            "userPrincipalName",
            "ipAddress",
            "clientAppUsed",
            "userAgent",
        ] {
            tree.add_path(["properties", p]);
        }
        tree.add_path(["category"]);
        b.iter(|| {
            let mut n = 0;
            for l in &ls {
                n += sonic_rs::get_many(*l, &tree).map_or(0, |v| v.len());
            }
            n
        })
    });
    g.bench_function(BenchmarkId::new("sonic-rs", "object_iter"), |b| {
        // The same walk as signin-radar's: top-level members, then `properties` members.
        const WANT: [&str; 8] = [
            "id",
            "createdDateTime",
            "userPrincipalName",
            "userId",
            "ipAddress",
            "clientAppUsed",
            "userAgent",
            "status",
        ];
        b.iter(|| {
            let mut n = 0;
            for l in &ls {
                for member in sonic_rs::to_object_iter(*l) {
                    let Ok((k, v)) = member else { break };
                    if k.as_str() != "properties" {
                        continue;
                    }
                    for inner in sonic_rs::to_object_iter(v.as_raw_str()) {
                        let Ok((k2, _)) = inner else { break };
                        n += usize::from(WANT.contains(&k2.as_str()));
                    }
                }
            }
            n
        })
    });
    g.bench_function(BenchmarkId::new("sonic-rs", "dom"), |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &ls {
                n += usize::from(sonic_rs::from_slice::<sonic_rs::Value>(l).is_ok());
            }
            n
        })
    });
    g.bench_function(BenchmarkId::new("serde_json", "ignored"), |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &ls {
                n += usize::from(serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok());
            }
            n
        })
    });
    g.finish();
}

/// The service's metrics on an engine holding 200,000 legacy users (400,000 keys) in the last
/// hour: the background refresh (distinct counts, top-K) and the render a scrape pays for.
fn metrics(c: &mut Criterion) {
    use signin_radar::export::metrics::{Metrics, MetricsOptions};
    use signin_radar::model::{Outcome, Protocol};
    use signin_radar::window::LegacyEvent;
    let e = Engine::new(EngineConfig::default());
    let base = 1_800_000_000i64 * 1_000_000_000;
    let users = 200_000usize;
    let evs: Vec<LegacyEvent> = (0..users)
        .flat_map(|i| {
            (0..=(i % 3)).map(move |j| LegacyEvent {
                time: base + ((i * 7 + j * 13) % 3_600) as i64 * 1_000_000_000,
                user: format!("user{i:06}@example.com"),
                ip: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                client: "Mozilla/5.0".into(),
                protocol: Protocol::ALL[(i + j) % Protocol::COUNT],
                outcome: Outcome::ALL[(i + j) % 3],
            })
        })
        .collect();
    let newest = evs.iter().map(|e| e.time).max().unwrap_or(base);
    e.store.insert_batch(&Default::default(), &evs, newest);
    let mut g = c.benchmark_group("metrics");
    g.sample_size(10);
    for (name, top_k, key) in [
        ("top_k_off", 0, None),
        ("top_k_1000_pseudonymised", 1000, Some(b"key".to_vec())),
    ] {
        let m = Metrics::new(MetricsOptions {
            top_k,
            pseudonymise_key: key,
            version: "bench",
        });
        g.bench_function(BenchmarkId::new("refresh", name), |b| {
            b.iter(|| m.refresh(&e))
        });
        m.refresh(&e);
        g.bench_function(BenchmarkId::new("render", name), |b| {
            b.iter(|| black_box(m.render(&e).len()))
        });
    }
    g.finish();
}

/// State snapshots of an engine that read 200,000 synthetic records (a 50,000-user tenant):
/// encode (intake is paused meanwhile), write (fsync, rename) and restore.
fn state(c: &mut Criterion) {
    use signin_radar::state;
    let args = SynthArgs {
        records: 200_000,
        users: 50_000,
        ..SynthArgs::default()
    };
    let mut ndjson = Vec::new();
    signin_radar::synth::write(&args, &mut ndjson).expect("synth");
    let e = Engine::new(EngineConfig::default());
    e.ingest_lines(&ndjson);
    drop(ndjson);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("state");
    g.sample_size(10);
    let image = state::encode(&e, b"{}");
    g.throughput(Throughput::Bytes(image.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| black_box(state::encode(&e, b"{}").len()))
    });
    g.bench_function("write", |b| {
        b.iter(|| state::write(dir.path(), &image).expect("write"))
    });
    g.bench_function("restore", |b| {
        b.iter(|| {
            black_box(matches!(
                state::restore(dir.path(), &EngineConfig::default()),
                Ok(state::Restored::Restored { .. })
            ))
        })
    });
    g.finish();
}

/// What the detections add to the core path: the same input through an engine without and
/// with them, as `replay` runs it (findings computed at the end) and as the stream runs it
/// (evaluated after every batch of 100 records).
fn detect(c: &mut Criterion) {
    use signin_radar::detect::DetectConfig;
    let mut g = c.benchmark_group("detect");
    g.sample_size(20);
    let inputs = [
        ("tenant_3pct_legacy", data()),
        (
            "spray_heavy_50pct_legacy",
            data_with(&["--legacy-share", "0.5", "--sprays", "40", "--span", "6h"]),
        ),
    ];
    for (name, data) in &inputs {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let ls = lines(data);
        g.bench_function(BenchmarkId::new("off", name), |b| {
            b.iter(|| {
                let e = Engine::new(EngineConfig::default());
                e.ingest_lines(black_box(data));
                e.stats().records
            })
        });
        g.bench_function(BenchmarkId::new("replay", name), |b| {
            b.iter(|| {
                let e = Engine::new(EngineConfig {
                    detect: Some(DetectConfig::default()),
                    ..EngineConfig::default()
                });
                e.ingest_lines(black_box(data));
                e.detect.as_ref().map(|d| d.findings().len())
            })
        });
        g.bench_function(BenchmarkId::new("stream", name), |b| {
            b.iter(|| {
                let e = Engine::new(EngineConfig {
                    detect: Some(DetectConfig {
                        lateness_ns: Some(600_000_000_000),
                        ..DetectConfig::default()
                    }),
                    ..EngineConfig::default()
                });
                let mut n = 0;
                for (i, chunk) in ls.chunks(100).enumerate() {
                    e.ingest_lines(&chunk.join(&b'\n'));
                    if let Some(d) = &e.detect {
                        n += d.evaluate(i as i64 * 100_000_000).len();
                    }
                }
                n
            })
        });
        g.bench_function(BenchmarkId::new("stream_off", name), |b| {
            b.iter(|| {
                let e = Engine::new(EngineConfig::default());
                for chunk in ls.chunks(100) {
                    e.ingest_lines(&chunk.join(&b'\n'));
                }
                e.stats().records
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stages, parsers, metrics, state, detect);
criterion_main!(benches);
