//! Resume benchmark (issue 15): the time from a loaded [`LoaderState`] to the first batch, resuming
//! at 0 %, 50 % and 99 % of a 10,000-batch epoch (synthetic 8×8 records in memory, batches of 2,
//! 6×6 crops: the work per batch is tiny, so the figure is the cost of resuming itself). Goal: the
//! 99 % figure within 1.5× of the 0 % one — nothing skipped is built. In the same run, the peer:
//! torchdata's `StatefulDataLoader` resuming the same epoch at the same points over the same
//! records (`benches/resume_torchdata.py`, with `.venv/bin/python`; left out, saying why, when
//! torchdata does not import there).
//!
//! `cargo bench --bench resume`. Options after `--`: `--batches N` (default 10000), `--reps R`
//! timed resumes per point, median reported (default 21), `--threads T` a second alexpipe row with T
//! loader threads beside the 1-thread one, and T torchdata workers (default 2), `--smoke` a
//! 100-batch epoch, 3 reps (a check that it runs; CI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

mod common;
use common::{arg, root, smoke};

use alexpipe::prep::ResizeCrop;
use alexpipe::source::{BuildInfo, DatasetInfo, Mode, RecordSource};
use alexpipe::stats::StatsAccumulator;
use alexpipe::{Dataset, Loader, LoaderConfig, Result};

const SIZE: u32 = 8;
const CROP: u32 = 6;
const BATCH: usize = 2;
const PERCENTS: [usize; 3] = [0, 50, 99];

/// Records in memory (the same pixels as the torchdata peer's).
struct Memory {
    info: DatasetInfo,
    location: PathBuf,
    pixels: Vec<Vec<u8>>,
}

impl RecordSource for Memory {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn location(&self) -> &Path {
        &self.location
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.check_index(index)?;
        Ok((index % 2) as u32)
    }
    fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32> {
        self.check_index(index)?;
        buf.clone_from(&self.pixels[index]);
        self.label(index)
    }
    fn read_pixels(&self, index: usize, _: &mut ResizeCrop, out: &mut [u8]) -> Result<u32> {
        self.check_index(index)?;
        out.copy_from_slice(&self.pixels[index]);
        self.label(index)
    }
    fn verify(&self) -> Result<u64> {
        Ok(self.pixels.len() as u64)
    }
    fn provenance(&self) -> Result<String> {
        Ok(String::new())
    }
}

fn memory(records: usize) -> Arc<Dataset> {
    let len = (SIZE * SIZE * 3) as usize;
    let pixels: Vec<Vec<u8>> = (0..records)
        .map(|r| (0..len).map(|i| ((i * 13 + r * 37) % 256) as u8).collect())
        .collect();
    let mut acc = StatsAccumulator::new(SIZE);
    pixels.iter().for_each(|p| acc.add_image(p));
    let stats = acc.finish().expect("images");
    let info = DatasetInfo {
        format: "memory".into(),
        mode: Mode::Raw,
        size: SIZE,
        num_records: records as u64,
        classes: vec!["a".into(), "b".into()],
        class_counts: vec![records.div_ceil(2) as u64, (records / 2) as u64],
        rejected: 0,
        stats: Some(stats.summary()),
        build: BuildInfo {
            tool: "bench".into(),
            input: "memory".into(),
            input_kind: "memory".into(),
            quality: None,
            draft: false,
            max_side: None,
            shard_size: 1,
            max_pixels: 1,
            resize: "none".into(),
            created_unix: 0,
        },
    };
    let source = Memory {
        info,
        location: PathBuf::from("memory"),
        pixels,
    };
    Arc::new(Dataset::from_source(Box::new(source), Some(stats)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds from `resume` to the first batch, median of `reps`, at each of [`PERCENTS`].
fn alexpipe_ms(ds: &Arc<Dataset>, batches: usize, threads: usize, reps: usize) -> Vec<f64> {
    let config = LoaderConfig {
        batch_size: BATCH,
        crop: CROP,
        threads,
        drop_last: true,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(ds.clone(), config).expect("loader");
    assert_eq!(loader.len(), batches);
    // States taken at the epoch's start (a state counts from the loader's position).
    let states: Vec<_> = PERCENTS
        .iter()
        .map(|&pct| loader.state(batches * pct / 100).expect("state"))
        .collect();
    // One untimed resume first: it fills the buffer pool, as any running loader has it.
    loader.resume(&states[0]).expect("resume");
    drop(loader.iter().next());
    // Rep-major: the points take turns, so a slow stretch of the (shared) machine falls on all
    // of them alike.
    let mut times = vec![Vec::with_capacity(reps); states.len()];
    for _ in 0..reps {
        for (state, times) in states.iter().zip(&mut times) {
            let t = Instant::now();
            loader.resume(state).expect("resume");
            let mut epoch = loader.iter();
            let first = epoch.next().expect("a batch").expect("batch");
            times.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(first);
            // Stopping the epoch's workers is not part of the resume.
            drop(epoch);
        }
    }
    times.into_iter().map(median).collect()
}

/// torchdata's figures for `workers` worker processes, or why there are none.
fn torchdata_ms(
    batches: usize,
    workers: usize,
    reps: usize,
) -> std::result::Result<Vec<f64>, String> {
    let python = root().join(".venv/bin/python");
    let out = Command::new(&python)
        .arg(root().join("benches/resume_torchdata.py"))
        .args(["--batches", &batches.to_string()])
        .args(["--batch-size", &BATCH.to_string()])
        .args(["--workers", &workers.to_string()])
        .args(["--reps", &reps.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if out.status.code() == Some(3) {
        return Err(format!(
            "torchdata does not import in .venv ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if !out.status.success() {
        panic!(
            "resume_torchdata.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let value: serde_json::Value = serde_json::from_str(line.trim()).expect("json");
    Ok(PERCENTS
        .iter()
        .map(|p| value["ms"][p.to_string()].as_f64().expect("a figure"))
        .collect())
}

fn main() {
    let batches = arg("--batches", if smoke() { 100 } else { 10_000 });
    let reps = arg("--reps", if smoke() { 3 } else { 21 });
    let threads = arg("--threads", 2);
    let ds = memory(batches * BATCH);
    println!(
        "time to the first batch after resuming (ms, median of {reps}): epoch of {batches} batches \
         of {BATCH} ({SIZE}x{SIZE} records, {CROP}x{CROP} crops), shuffled"
    );
    let mut rows = Vec::new();
    for t in if threads == 1 {
        vec![1]
    } else {
        vec![1, threads]
    } {
        rows.push((
            format!(
                "alexpipe Loader, {t} thread{}",
                if t == 1 { "" } else { "s" }
            ),
            alexpipe_ms(&ds, batches, t, reps),
        ));
    }
    let ours = rows.len();
    let peer_reps = if smoke() { 1 } else { 5 };
    for workers in [0, threads] {
        match torchdata_ms(batches, workers, peer_reps) {
            Ok(ms) => rows.push((
                format!("torchdata StatefulDataLoader, {workers} workers (median of {peer_reps})"),
                ms,
            )),
            Err(why) => {
                println!("(no torchdata column: {why})");
                break;
            }
        }
    }
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>10}",
        "", "at 0 %", "at 50 %", "at 99 %", "99 % / 0 %"
    );
    for (name, ms) in &rows {
        println!(
            "{name:<58} {:>9.3} {:>9.3} {:>9.3} {:>9.2}x",
            ms[0],
            ms[1],
            ms[2],
            ms[2] / ms[0]
        );
    }
    for (name, ms) in &rows[..ours] {
        let ratio = ms[2] / ms[0];
        println!(
            "{name}: 99 % / 0 % = {ratio:.2}x ({} the 1.5x goal)",
            if ratio <= 1.5 { "within" } else { "outside" }
        );
    }
}
