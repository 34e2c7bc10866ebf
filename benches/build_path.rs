//! Build-path benchmark: read + decode + short-side resize + centre crop (paper §2) per image, ours
//! against PIL doing the same work on the same files in the same run, without and with draft mode,
//! on two corpora: ImageNet-like sizes (short side 300–500 px) and camera-size photos (1200–2400 px,
//! where DCT-domain draft decoding applies; the draft rows run on that corpus only). PIL's decode alone is printed as the bound: both sides
//! decode with libjpeg-turbo.
//!
//! `cargo bench --bench build_path` (after `scripts/setup.sh`). Options after `--`:
//! `--count N` ImageNet-like corpus size (default 1000), `--large N` camera-size corpus size
//! (default 120), `--reps R` repetitions (default 3, median reported), `--smoke` the same work on 12
//! and 3 images, once, in `target/*-smoke` (a check that it runs; CI). Corpora are made by
//! `benches/make_corpus.py` from the real photos in the scikit-image and scikit-learn wheels.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod common;
use common::{arg, root, smoke};

use alexpipe::prep::{decode_rgb, DecodeOptions, ResizeCrop};

const SIZE: u32 = 256;

fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

/// Makes (or reuses) a corpus and returns its files and a file listing them for PIL.
fn corpus(name: &str, count: usize, short: (u32, u32)) -> (Vec<PathBuf>, PathBuf) {
    let dir = root().join("target").join(name);
    let status = Command::new(python())
        .arg(root().join("benches/make_corpus.py"))
        .arg(&dir)
        .args(["--count", &count.to_string()])
        .args([
            "--short-min",
            &short.0.to_string(),
            "--short-max",
            &short.1.to_string(),
        ])
        .status()
        .expect("run benches/make_corpus.py (did you run scripts/setup.sh?)");
    assert!(status.success(), "make_corpus.py failed");
    let mut files = Vec::new();
    for class in std::fs::read_dir(&dir).expect("corpus dir").flatten() {
        if class.path().is_dir() {
            files.extend(
                std::fs::read_dir(class.path())
                    .expect("class dir")
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    files.sort();
    let list = root().join("target").join(format!("{name}.files.txt"));
    let text: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    std::fs::write(&list, text).expect("write file list");
    (files, list)
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

/// Images/s of `threads` threads, each taking every `threads`-th file.
fn ours(files: &[PathBuf], threads: usize, draft: bool) -> f64 {
    let n = (SIZE * SIZE * 3) as usize;
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in 0..threads {
            s.spawn(move || {
                let (mut resize, mut out) = (ResizeCrop::new(), vec![0u8; n]);
                for f in files.iter().skip(k).step_by(threads) {
                    prep_one(f, draft, &mut resize, &mut out);
                }
            });
        }
    });
    files.len() as f64 / t.elapsed().as_secs_f64()
}

/// Images/s of the whole build (`alexpipe::build`: discover, read, decode, resize, crop, statistics,
/// raw shards written and synced) of the corpus folder, with `threads` workers.
fn build_all(dir: &Path, threads: usize, files: usize) -> f64 {
    let out = root().join("target").join("build-path-out");
    let mut cfg = alexpipe::BuildConfig::new(dir, &out);
    cfg.threads = Some(threads);
    let t = Instant::now();
    alexpipe::build(&cfg, &|_| {}).expect("the corpus builds");
    let rate = files as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out);
    rate
}

fn pil(list: &Path, procs: usize, flags: &[&str]) -> f64 {
    let out = Command::new(python())
        .arg(root().join("benches/pil_build.py"))
        .arg(list)
        .args(["--procs", &procs.to_string()])
        .args(flags)
        .output()
        .expect("run benches/pil_build.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from pil_build.py");
    v["images_per_s"].as_f64().expect("images_per_s")
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn range(v: (f64, f64, f64)) -> String {
    format!("{:>6.0} ({:>5.0}..{:>5.0})", v.0, v.1, v.2)
}

fn main() {
    let reps = arg("--reps", if smoke() { 1 } else { 3 }).max(1);
    let tag = if smoke() { "-smoke" } else { "" };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let corpora = [
        (
            format!("bench-corpus{tag}"),
            "ImageNet-like, short side 300-500 px",
            arg("--count", if smoke() { 12 } else { 1000 }),
            (300, 500),
        ),
        (
            format!("bench-corpus-large{tag}"),
            "camera-size, short side 1200-2400 px",
            arg("--large", if smoke() { 3 } else { 120 }),
            (1200, 2400),
        ),
    ];
    println!("build path: read + decode + resize short side to {SIZE} + centre crop; images/s, median of {reps} (min..max)");
    println!("ratio = alexpipe / PIL at equal cores; 'PIL decode' = Image.open().load() alone (the shared libjpeg-turbo bound)");
    for (dir, label, count, short) in corpora {
        let (files, list) = corpus(&dir, count, short);
        println!("\n{label}: {} real-photo JPEGs", files.len());
        println!(
            "{:<6} {:<6} {:>20} {:>20} {:>7} {:>20}",
            "draft", "cores", "alexpipe", "PIL", "ratio", "PIL decode"
        );
        ours(&files, cores, false); // warm the page cache
        let mut thread_counts = vec![1];
        if cores > 1 {
            thread_counts.push(cores);
        }
        // Draft decoding needs a side of at least 2 × SIZE; a corpus that never has one would only
        // measure noise in its "draft on" rows, so those rows run only where draft applies.
        let drafts: &[bool] = if short.1 >= 2 * SIZE {
            &[false, true]
        } else {
            println!(
                "(no draft rows: short sides {}-{} px never reach 2 x {SIZE}, where draft applies)",
                short.0, short.1
            );
            &[false]
        };
        let mut end_to_end = None;
        for &draft in drafts {
            for &threads in &thread_counts {
                let (mut a, mut p, mut d, mut e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let whole = !draft && threads == cores;
                for _ in 0..reps {
                    a.push(ours(&files, threads, draft));
                    p.push(pil(&list, threads, if draft { &["--draft"] } else { &[] }));
                    if !draft {
                        d.push(pil(&list, threads, &["--decode-only"]));
                    }
                    if whole {
                        e.push(build_all(
                            &root().join("target").join(&dir),
                            threads,
                            files.len(),
                        ));
                    }
                }
                if whole {
                    end_to_end = Some((median(e), median(d.clone()), threads));
                }
                let (a, p) = (median(a), median(p));
                let decode = if d.is_empty() {
                    String::new()
                } else {
                    range(median(d))
                };
                println!(
                    "{:<6} {:<6} {:>20} {:>20} {:>6.2}x {:>20}",
                    if draft { "on" } else { "off" },
                    threads,
                    range(a),
                    range(p),
                    a.0 / p.0,
                    decode
                );
            }
        }
        if let Some((e, d, threads)) = end_to_end {
            println!(
                "end to end, `alexpipe build` (files -> raw shards + statistics, synced), {threads} threads: {} images/s = {:.0}% of PIL decode alone",
                range(e),
                100.0 * e.0 / d.0
            );
        }
    }
}
