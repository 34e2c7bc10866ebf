//! Engine benchmarks (paper §4.1): the per-image kernels, then end-to-end loader throughput for
//! f32 NCHW (crop, flip, lighting, mean image) and u8 NHWC (crop, flip) batches of 128 from raw,
//! JPEG and original shards at 1..N threads, and in the same run the peer baseline — a PyTorch
//! DataLoader with torchvision doing the same work on the same data and cores
//! (`benches/peer_torch.py`: pre-decoded array for raw, ImageFolder over the 256 px JPEGs for jpeg,
//! ImageFolder over the original JPEGs for original; run when `target/peers-venv` has torch, which
//! `benches/setup_peers.sh` installs).
//!
//! `cargo bench --bench loader` (after `scripts/setup.sh`). Options after `--`: `--count N` corpus
//! size (default 1000), `--epochs E` timed epochs per measurement after one warm-up epoch (default 3),
//! `--smoke` the same work on 160 images, one epoch, in `target/*-smoke` (a check that it runs; CI).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

mod common;
use common::{arg, root, smoke};

use alexpipe::augment::{fused_f32_nchw, fused_u8_nhwc, lighting_delta, Normalize};
use alexpipe::sampler::train_params;
use alexpipe::{build, BuildConfig, Dataset, Layout, Loader, LoaderConfig, Mode};

/// The benchmark corpus (benches/make_corpus.py) built into shards of `mode`, reused when present.
fn shards(count: usize, mode: Mode) -> Arc<Dataset> {
    let corpus = corpus_dir();
    let status = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("benches/make_corpus.py"))
        .arg(&corpus)
        .args(["--count", &count.to_string()])
        .status()
        .expect("run benches/make_corpus.py (did you run scripts/setup.sh?)");
    assert!(status.success());
    let out = shards_dir(count, mode);
    if let Ok(ds) = Dataset::open(&out) {
        return Arc::new(ds);
    }
    let mut cfg = BuildConfig::new(&corpus, &out);
    cfg.mode = mode;
    build(&cfg, &|_| {}).expect("build bench shards");
    Arc::new(Dataset::open(&out).expect("open bench shards"))
}

/// The corpus directory (a separate one for `--smoke`, so a smoke never replaces the real corpus).
fn corpus_dir() -> std::path::PathBuf {
    root().join(if smoke() {
        "target/bench-corpus-smoke"
    } else {
        "target/bench-corpus"
    })
}

fn shards_dir(count: usize, mode: Mode) -> std::path::PathBuf {
    let tag = if smoke() { "-smoke" } else { "" };
    root().join(format!("target/bench-shards-{}-{count}{tag}", mode.name()))
}

fn per_second(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64()
}

fn kernels(ds: &Dataset) {
    let stats = ds.stats().expect("stats");
    let basis = alexpipe::Eigenbasis::from_stats(stats);
    let rec = ds.record(0).expect("record");
    let src = &rec.bytes[..];
    let n = if smoke() { 100 } else { 5000 };
    let mut out_f = vec![0f32; 3 * 224 * 224];
    let mut out_u = vec![0u8; 3 * 224 * 224];
    let params: Vec<_> = (0..n)
        .map(|i| train_params(0, 0, i, 256, 224, 0.5, 0.1))
        .collect();
    println!("per-image kernels, one core (images/s):");
    let r = per_second(n, || {
        for p in &params {
            std::hint::black_box(train_params(0, 0, p.x as usize, 256, 224, 0.5, 0.1));
        }
    });
    println!(
        "  {:<44} {r:>10.0}",
        "train_params (crop, flip, alpha draws)"
    );
    let norm = Normalize::MeanImage(&stats.mean_image);
    let r = per_second(n, || {
        for p in &params {
            let delta = lighting_delta(&basis.eigvecs, &basis.axis_std, p.alpha);
            fused_f32_nchw(src, 256, p, 224, delta, &norm, &mut out_f);
            std::hint::black_box(&out_f);
        }
    });
    println!(
        "  {:<44} {r:>10.0}",
        "fused crop+flip+lighting+mean image -> f32"
    );
    let norm = Normalize::Channel {
        mean: stats.channel_mean.map(|v| v as f32),
        std: stats.channel_std.map(|v| v as f32),
    };
    let r = per_second(n, || {
        for p in &params {
            fused_f32_nchw(src, 256, p, 224, [1.0, 2.0, 3.0], &norm, &mut out_f);
            std::hint::black_box(&out_f);
        }
    });
    println!(
        "  {:<44} {r:>10.0}",
        "fused crop+flip+lighting+channel norm -> f32"
    );
    let r = per_second(n, || {
        for p in &params {
            fused_u8_nhwc(src, 256, p, 224, &mut out_u);
            std::hint::black_box(&out_u);
        }
    });
    println!("  {:<44} {r:>10.0}", "fused crop+flip -> u8 NHWC");
}

fn loader_rate(ds: &Arc<Dataset>, layout: Layout, threads: usize, epochs: u64) -> f64 {
    let cfg = LoaderConfig {
        layout,
        threads,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(ds.clone(), cfg).expect("loader");
    // One untimed epoch first: it fills the buffer pool (the steady state allocates nothing) and
    // verifies each record's checksum once.
    loader.set_epoch(u64::MAX);
    loader.iter().for_each(|b| drop(b.expect("batch")));
    let mut images = 0;
    let t = Instant::now();
    for e in 0..epochs {
        loader.set_epoch(e);
        for batch in loader.iter() {
            images += batch.expect("batch").shape()[0];
        }
    }
    images as f64 / t.elapsed().as_secs_f64()
}

fn peer(count: usize, threads: usize, what: &str) -> Option<f64> {
    let python = root().join("target/peers-venv/bin/python");
    if !python.exists() {
        return None;
    }
    let out = Command::new(python)
        .arg(root().join("benches/peer_torch.py"))
        .arg(corpus_dir())
        .args([
            "--shards",
            &shards_dir(count, Mode::Raw).display().to_string(),
        ])
        .args(["--workers", &threads.to_string(), "--what", what])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "peer_torch.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["images_per_s"].as_f64()
}

fn main() {
    // A smoke needs one batch of 128 per epoch.
    let count = arg("--count", if smoke() { 160 } else { 1000 });
    let epochs = arg("--epochs", if smoke() { 1 } else { 3 }) as u64;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let raw = shards(count, Mode::Raw);
    let jpeg = shards(count, Mode::Jpeg);
    let original = shards(count, Mode::Original);
    kernels(&raw);
    println!("\nloader, batches of 128 at 224 from 256 shards, {count} images x {epochs} epochs (images/s; the consumer only drops the batches):");
    println!(
        "{:<10} {:<8} {:>8} {:>10} {:>11} {:>9}",
        "shards", "layout", "threads", "images/s", "efficiency", "peer"
    );
    for (name, ds) in [("raw", &raw), ("jpeg", &jpeg), ("original", &original)] {
        for (lname, layout) in [("f32 NCHW", Layout::F32Nchw), ("u8 NHWC", Layout::U8Nhwc)] {
            if name == "original" && layout == Layout::U8Nhwc {
                continue;
            }
            let mut base = 0.0;
            for threads in 1..=cores {
                let rate = loader_rate(ds, layout, threads, epochs);
                if threads == 1 {
                    base = rate;
                }
                let what = match (name, layout) {
                    ("raw", Layout::F32Nchw) => Some("array-f32"),
                    ("raw", Layout::U8Nhwc) => Some("array-u8"),
                    ("jpeg", Layout::F32Nchw) => Some("folder256-f32"),
                    ("original", Layout::F32Nchw) => Some("imagefolder-f32"),
                    _ => None,
                };
                let peer_rate = if threads == cores {
                    what.and_then(|w| peer(count, threads, w))
                } else {
                    None
                };
                let peer_col = peer_rate
                    .map(|p| format!("{p:.0} ({:.1}x)", rate / p))
                    .unwrap_or_default();
                println!(
                    "{name:<10} {lname:<8} {threads:>8} {rate:>10.0} {:>10.0}% {peer_col:>9}",
                    100.0 * rate / (base * threads as f64)
                );
            }
        }
    }
    if !root().join("target/peers-venv/bin/python").exists() {
        println!("\n(no peer column: run benches/setup_peers.sh to install torch + torchvision for the baseline)");
    }
}
