//! Build throughput by input format (issue 18): the same real-photo JPEGs built from an ImageFolder,
//! from WebDataset tars (written by webdataset's `ShardWriter`) and from parquet (written by Hugging
//! Face `datasets`), in the same run, interleaved, with all cores: `alexpipe::build` end to end
//! (discover, read, decode, resize, crop, statistics, raw shards at 256 px). The goal: tars and
//! parquet within 10 % of the folder.
//!
//! `cargo bench --bench build_formats` (after `scripts/setup.sh`). Options after `--`: `--count N`
//! images (default 1000, the `build_path` corpus), `--reps R` (default 3, median reported),
//! `--smoke` 12 images once in `target/*-smoke` (a check that it runs; CI).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

mod common;
use common::{arg, root, smoke};

use alexpipe::BuildConfig;

fn python(script: &str, args: &[&str]) {
    let status = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("benches").join(script))
        .args(args)
        .status()
        .expect("run a benches/ script (did you run scripts/setup.sh?)");
    assert!(status.success(), "{script} failed");
}

/// Images/s of one build of `input`, and the number of records.
fn build(input: &str, out: &PathBuf) -> (f64, u64) {
    let mut cfg = BuildConfig::new(input, out);
    cfg.size = 256;
    let t = Instant::now();
    let summary = alexpipe::build(&cfg, &|_| {}).expect("build");
    let secs = t.elapsed().as_secs_f64();
    // The corpus folder's own corpus.json, outside the class folders, is its one reject.
    assert!(
        summary
            .rejects
            .iter()
            .all(|(p, _)| p.ends_with("corpus.json")),
        "{:?}",
        summary.rejects
    );
    (
        summary.info.num_records as f64 / secs,
        summary.info.num_records,
    )
}

fn main() {
    let tag = if smoke() { "-smoke" } else { "" };
    let count = arg("--count", if smoke() { 12 } else { 1000 });
    let reps = arg("--reps", if smoke() { 1 } else { 3 }).max(1);
    let target = root().join("target");
    let folder = target.join(format!("bench-corpus{tag}"));
    python(
        "make_corpus.py",
        &[&folder.to_string_lossy(), "--count", &count.to_string()],
    );
    let formats = target.join(format!("bench-formats{tag}"));
    python(
        "make_formats.py",
        &[&folder.to_string_lossy(), &formats.to_string_lossy()],
    );
    let inputs = [
        ("folder", folder.to_string_lossy().into_owned()),
        (
            "webdataset",
            formats
                .join("wds/shard-*.tar")
                .to_string_lossy()
                .into_owned(),
        ),
        (
            "parquet",
            formats
                .join("parquet/train-*.parquet")
                .to_string_lossy()
                .into_owned(),
        ),
    ];
    let out = target.join(format!("bench-formats-out{tag}"));
    let cores = alexpipe::threads::worker_threads(0);
    println!("build from each input format: {count} real-photo JPEGs -> raw 256 px shards, {cores} worker threads; images/s, median of {reps} (min..max)");
    build(&inputs[0].1, &out); // warm the page cache and the corpus
    let mut rates = vec![Vec::new(); inputs.len()];
    let mut records = vec![0; inputs.len()];
    for _ in 0..reps {
        for (k, (_, input)) in inputs.iter().enumerate() {
            let (rate, n) = build(input, &out);
            rates[k].push(rate);
            records[k] = n;
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let folder_rate = median(rates[0].clone()).0;
    println!(
        "{:<11} {:>8} {:>22} {:>10}",
        "input", "records", "images/s", "vs folder"
    );
    for (k, (name, _)) in inputs.iter().enumerate() {
        let (m, lo, hi) = median(rates[k].clone());
        println!(
            "{name:<11} {:>8} {:>8.0} ({:>5.0}..{:>5.0}) {:>9.1} %",
            records[k],
            m,
            lo,
            hi,
            100.0 * (m / folder_rate - 1.0)
        );
        assert_eq!(records[k], records[0], "{name} built another record count");
    }
    let _ = std::fs::remove_dir_all(&out);
}
