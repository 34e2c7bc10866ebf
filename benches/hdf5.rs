//! Loader throughput from HDF5 against raw shards, in the same run on the same images: batches of
//! 128 at 224 from 256 px records, f32 NCHW (the paper's §4.1 recipe) and u8 NHWC, 1..N threads.
//!
//! - `raw shards`: the shard dataset, each record read with `pread` and its CRC-32C checked on every
//!   read (docs/RELIABILITY.md; the reference);
//! - `h5 in place`: alexpipe's own HDF5 layout (one unfiltered image per chunk), read from a memory
//!   map at the offsets HDF5 reports, no library call per record;
//! - `h5 H5Dread`: the same bytes behind a no-op filter (byte shuffle of 1-byte elements), which
//!   forces one `H5Dread` per image under HDF5's global lock;
//! - `h5 gzip`: gzip level 1 chunks of 1 image (H5Dread plus inflate).
//!
//! `cargo bench --features hdf5 --bench hdf5` (options after `--`: `--count N` images, default 1000;
//! `--epochs E` epochs per measurement, default 2; `--reps R` rounds, default 7, medians reported;
//! `--smoke`: 160 images, 1 epoch, 1 round, in `target/bench-hdf5-160-smoke`, a check that it runs).
//! Each round runs every source in turn with its own warmed-up loader, so a change in the machine's
//! load hits all of them alike; images per CPU-second is printed too, as it depends less on it.
//! The images are synthetic (smooth gradients plus noise, so gzip has something to do); the loader's
//! work does not depend on their content.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod common;
use common::{arg, root, smoke};

use alexpipe::hdf5::shards_to_hdf5;
use alexpipe::shards::DatasetWriter;
use alexpipe::source::BuildInfo;
use alexpipe::stats::StatsAccumulator;
use alexpipe::{Dataset, Layout, Loader, LoaderConfig, Mode};

const S: usize = 256;

fn synthetic_image(i: usize, out: &mut [u8]) {
    let mut state = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (a, b, c) = (next() % 256, next() % 256, next() % 256);
    for y in 0..S {
        for x in 0..S {
            let o = (y * S + x) * 3;
            let noise = next() % 24;
            out[o] = ((a * x as u64 / S as u64 + noise) % 256) as u8;
            out[o + 1] = ((b * y as u64 / S as u64 + noise) % 256) as u8;
            out[o + 2] = ((c * (x + y) as u64 / (2 * S) as u64 + noise) % 256) as u8;
        }
    }
}

fn make_shards(dir: &Path, count: usize) {
    let mut w = DatasetWriter::create(dir, Mode::Raw, S as u32, 1024, vec!["a".into(), "b".into()])
        .expect("writer");
    let mut acc = StatsAccumulator::new(S as u32);
    let mut buf = vec![0u8; S * S * 3];
    for i in 0..count {
        synthetic_image(i, &mut buf);
        acc.add_image(&buf);
        w.push((i % 2) as u32, Path::new(&format!("synthetic/{i}")), &buf)
            .expect("push");
    }
    let build = BuildInfo {
        tool: "benches/hdf5.rs".into(),
        input: "synthetic".into(),
        input_kind: "synthetic".into(),
        quality: None,
        draft: false,
        max_side: None,
        shard_size: 1024,
        max_pixels: 0,
        resize: "none".into(),
        created_unix: 0,
    };
    w.commit(&acc.finish().expect("stats"), build)
        .expect("commit");
}

/// The images and labels of `ds` behind a filter: `shuffle` (a no-op on bytes) or gzip level 1.
fn make_filtered(ds: &Dataset, path: &Path, gzip: bool) {
    let n = ds.len();
    let file = hdf5::File::create(path).expect("create");
    let mut b = file.new_dataset::<u8>();
    b = b.chunk((1, S, S, 3));
    b = if gzip { b.deflate(1) } else { b.shuffle() };
    let images = b.shape((n, S, S, 3)).create("images").expect("images");
    for i in 0..n {
        let rec = ds.record(i).expect("record");
        let view = ndarray::ArrayView4::from_shape((1, S, S, 3), &rec.bytes[..]).expect("view");
        images
            .write_slice(view, ndarray::s![i..i + 1, .., .., ..])
            .expect("write");
    }
    let labels: Vec<i64> = (0..n).map(|i| ds.label(i).expect("label") as i64).collect();
    file.new_dataset_builder()
        .with_data(ndarray::ArrayView1::from(&labels[..]))
        .create("labels")
        .expect("labels");
}

/// CPU seconds used so far by this process, all threads (utime + stime of /proc/self/stat, in
/// USER_HZ = 100 ticks); `None` where there is no /proc.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// A warmed-up loader (buffer pool filled, page cache hot, checksums verified).
fn warm_loader(ds: &Arc<Dataset>, layout: Layout, threads: usize) -> Loader {
    let cfg = LoaderConfig {
        layout,
        threads,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(ds.clone(), cfg).expect("loader");
    loader.set_epoch(u64::MAX);
    loader.iter().for_each(|b| drop(b.expect("batch")));
    loader
}

/// (images per wall second, images per CPU second) over `epochs` epochs.
fn rates(loader: &mut Loader, epochs: u64) -> (f64, f64) {
    let mut images = 0;
    let cpu = cpu_seconds();
    let t = Instant::now();
    for e in 0..epochs {
        loader.set_epoch(e);
        for batch in loader.iter() {
            images += batch.expect("batch").shape()[0];
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu
        .zip(cpu_seconds())
        .map_or(f64::NAN, |(a, b)| images as f64 / (b - a).max(0.01));
    (images as f64 / wall, cpu)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let count = arg("--count", if smoke() { 160 } else { 1000 });
    let epochs = arg("--epochs", if smoke() { 1 } else { 2 }) as u64;
    let reps = arg("--reps", if smoke() { 1 } else { 7 }).max(1);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let tag = if smoke() { "-smoke" } else { "" };
    let dir = root().join(format!("target/bench-hdf5-{count}{tag}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let sh = dir.join("shards");
    if Dataset::open(&sh).is_err() {
        make_shards(&sh, count);
    }
    let raw = Arc::new(Dataset::open(&sh).expect("shards"));
    let ours = dir.join("inplace.h5");
    if !ours.exists() {
        shards_to_hdf5(&sh, &ours, &|_| {}).expect("to hdf5");
    }
    for (name, gzip) in [("shuffle.h5", false), ("gzip.h5", true)] {
        if !dir.join(name).exists() {
            make_filtered(&raw, &dir.join(name), gzip);
        }
    }
    let open = |name: &str| {
        let t = Instant::now();
        let ds = Arc::new(Dataset::open(dir.join(name)).expect(name));
        println!(
            "open {name}: {:.1} ms ({count} images)",
            t.elapsed().as_secs_f64() * 1e3
        );
        ds
    };
    let sets: [(&str, Arc<Dataset>); 4] = [
        ("raw shards", raw.clone()),
        ("h5 in place", open("inplace.h5")),
        ("h5 H5Dread", open("shuffle.h5")),
        ("h5 gzip", open("gzip.h5")),
    ];
    assert!(sets[1].1.record_in_place(0).expect("rec").is_some());
    assert!(sets[2].1.record_in_place(0).expect("rec").is_none());
    println!(
        "loader from HDF5 vs raw shards: batches of 128 at 224 from {count} synthetic 256 px images; \
         {reps} rounds, each running every source for {epochs} epochs in turn; medians. \
         images/s (wall clock) and, in brackets, images per CPU-second (all threads); % of raw shards"
    );
    println!(
        "{:<8} {:>7}  {:>16} {:>26} {:>26} {:>26}",
        "layout", "threads", sets[0].0, sets[1].0, sets[2].0, sets[3].0
    );
    for (lname, layout) in [("f32 NCHW", Layout::F32Nchw), ("u8 NHWC", Layout::U8Nhwc)] {
        for threads in 1..=cores {
            let mut loaders: Vec<Loader> = sets
                .iter()
                .map(|(_, ds)| warm_loader(ds, layout, threads))
                .collect();
            let mut wall = vec![Vec::new(); sets.len()];
            let mut cpu = vec![Vec::new(); sets.len()];
            for _ in 0..reps {
                for (k, loader) in loaders.iter_mut().enumerate() {
                    let (w, c) = rates(loader, epochs);
                    wall[k].push(w);
                    cpu[k].push(c);
                }
            }
            let wall: Vec<f64> = wall.into_iter().map(median).collect();
            let cpu: Vec<f64> = cpu.into_iter().map(median).collect();
            let col = |k: usize| {
                format!(
                    "{:.0} {:.0}% [{:.0} {:.0}%]",
                    wall[k],
                    100.0 * wall[k] / wall[0],
                    cpu[k],
                    100.0 * cpu[k] / cpu[0]
                )
            };
            println!(
                "{lname:<8} {threads:>7}  {:>16} {:>26} {:>26} {:>26}",
                format!("{:.0} [{:.0}]", wall[0], cpu[0]),
                col(1),
                col(2),
                col(3)
            );
        }
    }
}
