//! Replays, with stable Rust and without libFuzzer, every input the fuzz targets (`fuzz/`,
//! docs/RELIABILITY.md) found and we kept (`tests/fuzz_regressions/TARGET/*`), plus the seeds. Each
//! must run through its target's body without a panic.
//!
//! `ALEXPIPE_FUZZ_SEEDS=fuzz/corpus cargo test --test integration fuzz_regressions` also writes the seeds to
//! `fuzz/corpus/TARGET/` as the starting corpus for `cargo +nightly fuzz run`.

use std::fs;
use std::path::Path;

#[path = "fuzz_harness/mod.rs"]
mod harness;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("manifest", harness::manifest),
    ("shard_reader", harness::shard_reader),
    ("jpeg_record", harness::jpeg_record),
    ("build_decode", harness::build_decode),
];

#[test]
fn kept_fuzz_inputs_and_seeds_run_clean() {
    let seeds = harness::seeds();
    if let Some(dir) = std::env::var_os("ALEXPIPE_FUZZ_SEEDS") {
        for (target, name, bytes) in &seeds {
            let d = Path::new(&dir).join(target);
            fs::create_dir_all(&d).expect("mkdir corpus");
            fs::write(d.join(format!("seed-{name}")), bytes).expect("write seed");
        }
    }
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for (t, seed, bytes) in &seeds {
            if *t == name {
                eprintln!("{name}: seed {seed}");
                target(bytes);
            }
        }
        // Inputs that matter even without a found crash: empty, one byte.
        target(&[]);
        target(&[0xFF]);
        let Ok(entries) = fs::read_dir(kept.join(name)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            eprintln!("{name}: {}", f.display());
            target(&fs::read(&f).expect("read kept input"));
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} kept inputs");
    harness::cleanup();
}
