//! Dropping the engine at random points, 1,000 times: no deadlock, no leaked thread. Its own test
//! binary (process) so that counting the process's threads sees only this test's.

use std::sync::Arc;
use std::time::Duration;

use alexpipe::{build, Dataset, Layout, Loader, LoaderConfig, Mode};

use crate::common;

/// Live threads of this process whose name starts with `alexpipe-loader` (Linux truncates names to
/// 15 bytes: "alexpipe-loader").
fn loader_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("alexpipe-loader"))
        })
        .count()
}

/// A small deterministic generator (SplitMix64), so that a failure names a reproducible round.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_loader_dropped_at_random_points_1000_times_never_hangs_or_leaks_threads() {
    let _alone = crate::alone();
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("raw");
    let mut cfg = common::fixtures_config(&raw, 32, Mode::Raw, 8);
    build(&cfg, &|_| {}).expect("build fixtures");
    let jpeg = dir.path().join("jpeg");
    cfg.out = jpeg.clone();
    cfg.mode = Mode::Jpeg;
    build(&cfg, &|_| {}).expect("build fixtures");
    let datasets = [
        Arc::new(Dataset::open(&raw).expect("open")),
        Arc::new(Dataset::open(&jpeg).expect("open")),
    ];
    assert_eq!(loader_threads(), 0);

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut rng = 7u64;
        for round in 0..1000u64 {
            let r = splitmix(&mut rng);
            let ds = datasets[(r & 1) as usize].clone();
            let config = LoaderConfig {
                batch_size: 1 + (r >> 1) as usize % 4,
                crop: 24,
                threads: 1 + (r >> 3) as usize % 4,
                prefetch: 1 + (r >> 5) as usize % 3,
                layout: if r >> 7 & 1 == 0 {
                    Layout::F32Nchw
                } else {
                    Layout::U8Nhwc
                },
                ..LoaderConfig::default()
            };
            let mut loader = Loader::new(ds, config).expect("loader");
            loader.set_epoch(round);
            let mut it = loader.iter();
            let take = (r >> 8) as usize % (loader.len() + 2);
            let mut loader = Some(loader);
            let mut held = Vec::new();
            for _ in 0..take {
                match it.next() {
                    Some(b) => held.push(b.expect("batch")),
                    None => break,
                }
            }
            // Drop in a random order: batches before or after the epoch, the loader before or
            // after the epoch (the epoch owns what its workers need).
            match (r >> 20) % 4 {
                0 => drop(it),
                1 => {
                    held.clear();
                    drop(it)
                }
                2 => {
                    loader = None;
                    drop(it)
                }
                _ => {
                    // Park the consumer a moment so workers fill their channels and block.
                    std::thread::sleep(Duration::from_micros((r >> 24) % 500));
                    drop(it)
                }
            }
            drop(held);
            drop(loader);
            // A joined thread can linger in /proc for a moment after `pthread_join` returns (the
            // kernel wakes the joiner before it removes the task), so wait for it to go; a leaked
            // thread never does.
            let mut live = loader_threads();
            for _ in 0..2000 {
                if live == 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
                live = loader_threads();
            }
            if live != 0 {
                let _ = done_tx.send(Err(format!(
                    "round {round}: {live} loader threads still alive after drop"
                )));
                return;
            }
        }
        let _ = done_tx.send(Ok(()));
    });
    // A hang guard, not a timing assertion: 1,000 rounds take seconds when shutdown works.
    match done_rx.recv_timeout(Duration::from_secs(600)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("the loader deadlocked on drop (no progress in 10 minutes)"),
    }
    worker.join().expect("worker thread");
    assert_eq!(loader_threads(), 0);
}
