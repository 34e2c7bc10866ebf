//! Build-path benchmark: read + decode + short-side resize + centre crop (paper §2) per image, ours
//! against PIL doing the same work on the same files in the same run, without and with draft mode.
//!
//! `cargo bench --bench build_path` (after `scripts/setup.sh`). Options after `--`:
//! `--count N` corpus size (default 1000), `--reps R` repetitions (default 3, median reported).
//! The corpus is made by `benches/make_corpus.py` (real photos from the scikit-image and
//! scikit-learn wheels, ImageNet-like sizes) under `target/bench-corpus`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use alexpipe::prep::{decode_rgb, DecodeOptions, ResizeCrop};
use rayon::prelude::*;

const SIZE: u32 = 256;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

fn corpus(count: usize) -> Vec<PathBuf> {
    let dir = root().join("target/bench-corpus");
    let status = Command::new(python())
        .arg(root().join("benches/make_corpus.py"))
        .arg(&dir)
        .args(["--count", &count.to_string()])
        .status()
        .expect("run benches/make_corpus.py (did you run scripts/setup.sh?)");
    assert!(status.success(), "make_corpus.py failed");
    let mut files = Vec::new();
    for class in std::fs::read_dir(&dir).expect("corpus dir").flatten() {
        if class.path().is_dir() {
            files.extend(std::fs::read_dir(class.path()).expect("class dir").flatten().map(|e| e.path()));
        }
    }
    files.sort();
    files
}

/// One image of build-shards' work: read the file, decode, resize the short side, crop the centre.
fn prep_one(path: &Path, draft: bool, resize: &mut ResizeCrop, out: &mut [u8]) {
    let bytes = std::fs::read(path).expect("read corpus file");
    let opts = DecodeOptions {
        draft_for: draft.then_some(SIZE),
        ..DecodeOptions::default()
    };
    let img = decode_rgb(&bytes, &opts).expect("corpus images decode");
    resize.resize_center_crop(&img, SIZE, out);
}

fn ours(files: &[PathBuf], threads: usize, draft: bool) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let n = (SIZE * SIZE * 3) as usize;
    let t = Instant::now();
    pool.install(|| {
        files.par_iter().for_each_init(
            || (ResizeCrop::new(), vec![0u8; n]),
            |(resize, out), f| prep_one(f, draft, resize, out),
        )
    });
    files.len() as f64 / t.elapsed().as_secs_f64()
}

fn pil(list: &Path, procs: usize, draft: bool) -> f64 {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("benches/pil_build.py")).arg(list).args(["--procs", &procs.to_string()]);
    if draft {
        cmd.arg("--draft");
    }
    let out = cmd.output().expect("run benches/pil_build.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from pil_build.py");
    v["images_per_s"].as_f64().expect("images_per_s")
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let count = arg("--count", 1000);
    let reps = arg("--reps", 3).max(1);
    let files = corpus(count);
    let list = root().join("target/bench-corpus/files.txt");
    let text: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    std::fs::write(&list, text).expect("write file list");
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("build path: read + decode + resize short side to {SIZE} + centre crop, {} real-photo JPEGs", files.len());
    println!("median of {reps} runs (min..max), images/s; ratio = alexpipe / PIL at equal cores\n");
    println!("{:<8} {:<6} {:>24} {:>24} {:>7}", "draft", "cores", "alexpipe", "PIL", "ratio");
    // Warm the page cache and both code paths once.
    ours(&files, cores, false);
    for draft in [false, true] {
        let mut thread_counts = vec![1];
        if cores > 1 {
            thread_counts.push(cores);
        }
        for &threads in &thread_counts {
            let mut a = Vec::new();
            let mut p = Vec::new();
            for _ in 0..reps {
                a.push(ours(&files, threads, draft));
                p.push(pil(&list, threads, draft));
            }
            let (am, alo, ahi) = median(a);
            let (pm, plo, phi) = median(p);
            println!(
                "{:<8} {:<6} {:>8.0} ({:>5.0}..{:>5.0}) {:>8.0} ({:>5.0}..{:>5.0}) {:>6.2}x   per core: {:.0} vs {:.0}",
                if draft { "on" } else { "off" },
                threads,
                am,
                alo,
                ahi,
                pm,
                plo,
                phi,
                am / pm,
                am / threads as f64,
                pm / threads as f64
            );
        }
    }
}
