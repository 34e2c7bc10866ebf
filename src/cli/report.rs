//! What the commands print: build summaries, statistics and dataset descriptions, for people
//! (plain text) and for programs (`--json`). Format-neutral: everything comes from
//! [`DatasetInfo`], never from one storage format's files.

use std::path::Path;

use crate::build::BuildSummary;
use crate::source::DatasetInfo;
use crate::stats::StatsSummary;

fn fmt3(v: [f64; 3]) -> String {
    format!("[{:.3}, {:.3}, {:.3}]", v[0], v[1], v[2])
}

/// The statistics (§2 channel means, §4.1 covariance eigenbasis) of `size`×`size` images.
pub fn print_stats(stats: &StatsSummary, size: u32) {
    println!(
        "statistics over {} images ({size}x{size}, u8 levels 0..255):",
        stats.images
    );
    println!("  channel mean (RGB): {}", fmt3(stats.channel_mean));
    println!("  channel std  (RGB): {}", fmt3(stats.channel_std));
    println!(
        "  covariance eigvals (levels^2, descending): {}",
        fmt3(stats.eigvals)
    );
    for row in 0..3 {
        let label = if row == 0 {
            "  eigvecs (columns):"
        } else {
            "                    "
        };
        println!("{label} {}", fmt3(stats.eigvecs[row]));
    }
}

fn print_classes(info: &DatasetInfo) {
    for (class, count) in info.classes.iter().zip(&info.class_counts) {
        println!("  {count:>8}  {class}");
    }
}

/// A finished build, as `alexpipe build` prints it.
pub fn print_summary(s: &BuildSummary) {
    let info = &s.info;
    println!(
        "wrote {} records to {} ({}, mode {}, {}x{})",
        info.num_records,
        s.out.display(),
        info.format,
        info.mode,
        info.size,
        info.size
    );
    print_classes(info);
    if info.rejected > 0 {
        println!(
            "rejected {} of {} inputs (listed in the dataset's rejects.tsv; `alexpipe info` shows where it is):",
            info.rejected, s.inputs
        );
        for (path, reason) in s.rejects.iter().take(10) {
            println!("  {}: {reason}", path.display());
        }
        if s.rejects.len() > 10 {
            println!("  ... and {} more", s.rejects.len() - 10);
        }
    } else {
        println!("rejected 0 of {} inputs", s.inputs);
    }
    let rate = s.inputs as f64 / s.elapsed_secs.max(1e-9);
    println!(
        "elapsed {:.2} s, {:.0} images/s on {} threads ({:.0} images/s per thread)",
        s.elapsed_secs,
        rate,
        s.threads,
        rate / s.threads as f64
    );
    if let Some(stats) = &info.stats {
        print_stats(stats, info.size);
    }
}

/// A finished build, as `alexpipe build --json` prints it.
pub fn summary_json(s: &BuildSummary) -> serde_json::Value {
    serde_json::json!({
        "out": s.out,
        "inputs": s.inputs,
        "records": s.info.num_records,
        "rejected": s.info.rejected,
        "rejects": s.rejects.iter().map(|(p, r)| serde_json::json!({
            "path": p, "reason": r.kind(), "detail": r.detail()
        })).collect::<Vec<_>>(),
        "threads": s.threads,
        "elapsed_secs": s.elapsed_secs,
        "dataset": s.info,
    })
}

/// What a dataset holds, as `alexpipe info` prints it.
pub fn print_info(location: &Path, info: &DatasetInfo) {
    println!("{}", location.display());
    println!(
        "  {} records, {} ({}), {}x{} RGB, {} classes, {} inputs rejected",
        info.num_records,
        info.format,
        info.mode,
        info.size,
        info.size,
        info.classes.len(),
        info.rejected
    );
    let b = &info.build;
    println!(
        "  built by {} from {} ({}); resize: {}",
        b.tool, b.input, b.input_kind, b.resize
    );
    print_classes(info);
    match &info.stats {
        Some(stats) => print_stats(stats, info.size),
        None => println!("  no statistics (run `alexpipe stats`)"),
    }
}

/// The provenance table (`index.tsv` text) as a list of objects.
pub fn provenance_json(index_tsv: &str) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = index_tsv
        .lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split('\t').collect();
            let cell = |i: usize| cells.get(i).copied().unwrap_or("");
            serde_json::json!({
                "record": cell(0).parse::<u64>().ok(),
                "label": cell(1).parse::<u64>().ok(),
                "class": cell(2),
                "shard": cell(3),
                "path": cell(4),
            })
        })
        .collect();
    serde_json::Value::Array(rows)
}
