//! Resuming an epoch (issue 15): over random stop points, thread counts 1–4, batch sizes and every
//! (old, new) world size in 1..=8 × 1..=8, the records consumed before the stop and after the
//! resume are exactly the epoch's order (each once; the resumed part padded by repeating the
//! epoch's first records, as a whole epoch is), every record keeps the augmentation of an
//! uninterrupted run, and under the same world size the resumed batches are bit-identical to the
//! uninterrupted ones. States from another dataset, seed or recipe, and corrupt ones, are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alexpipe::augment::SampleParams;
use alexpipe::prep::ResizeCrop;
use alexpipe::sampler::Sampler;
use alexpipe::source::{BuildInfo, DatasetInfo, Mode, RecordSource};
use alexpipe::stats::{Stats, StatsAccumulator};
use alexpipe::{Dataset, Error, Loader, LoaderConfig, LoaderState, MeanMode, Result};

const SIZE: u32 = 8;
const CROP: u32 = 6;

/// `records` small images in memory, labels `i % classes`.
struct Memory {
    info: DatasetInfo,
    location: PathBuf,
    pixels: Vec<Vec<u8>>,
}

fn memory(records: usize, classes: &[&str]) -> Arc<Dataset> {
    let len = (SIZE * SIZE * 3) as usize;
    let pixels: Vec<Vec<u8>> = (0..records)
        .map(|r| (0..len).map(|i| ((i * 13 + r * 37) % 256) as u8).collect())
        .collect();
    let mut acc = StatsAccumulator::new(SIZE);
    pixels.iter().for_each(|p| acc.add_image(p));
    let stats: Stats = acc.finish().expect("images");
    let k = classes.len();
    let info = DatasetInfo {
        format: "memory".into(),
        mode: Mode::Raw,
        size: SIZE,
        num_records: records as u64,
        classes: classes.iter().map(|c| c.to_string()).collect(),
        class_counts: (0..k)
            .map(|c| (0..records).filter(|i| i % k == c).count() as u64)
            .collect(),
        rejected: 0,
        stats: Some(stats.summary()),
        build: BuildInfo {
            tool: "test".into(),
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

impl RecordSource for Memory {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }
    fn location(&self) -> &Path {
        &self.location
    }
    fn label(&self, index: usize) -> Result<u32> {
        self.check_index(index)?;
        Ok((index % self.info.classes.len()) as u32)
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

/// SplitMix64 as the test's own random source.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (alexpipe::seed::mix64(self.0) % n as u64) as usize
    }
}

fn config(batch_size: usize, threads: usize, rank: usize, world_size: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        crop: CROP,
        threads,
        prefetch: 1 + threads % 3,
        seed: 5,
        drop_last: false,
        rank,
        world_size,
        ..LoaderConfig::default()
    }
}

/// A batch as compared: its epoch index, records, labels, augmentation and image bits.
#[derive(Debug, PartialEq)]
struct Seen {
    index: usize,
    records: Vec<usize>,
    labels: Vec<i64>,
    params: Vec<SampleParams>,
    bits: Vec<u32>,
}

/// The first `take` batches (all: `usize::MAX`) of the loader's next iteration.
fn batches(loader: &Loader, take: usize) -> Vec<Seen> {
    loader
        .iter()
        .take(take)
        .map(|b| {
            let b = b.expect("batch");
            Seen {
                index: b.index(),
                records: b.indices().to_vec(),
                labels: b.labels().to_vec(),
                params: b.params().to_vec(),
                bits: b
                    .images_f32()
                    .expect("f32")
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            }
        })
        .collect()
}

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

#[test]
fn elastic_resume_consumes_the_epoch_exactly_once_with_the_same_draws() {
    let mut rng = Rng(2026);
    let epoch = 3;
    let mut cases = 0;
    for old_world in 1..=8 {
        for new_world in 1..=8 {
            for _ in 0..2 {
                let records = 1 + rng.below(70);
                let dataset = memory(records, &["a", "b", "c"]);
                let batch = 1 + rng.below(5);
                let new_batch = if rng.below(3) == 0 {
                    1 + rng.below(5)
                } else {
                    batch
                };
                let open = |batch, threads, rank, world| {
                    let mut l = Loader::new(dataset.clone(), config(batch, threads, rank, world))
                        .expect("loader");
                    l.set_epoch(epoch);
                    l
                };
                // The augmentation every record has in an uninterrupted epoch.
                let reference: HashMap<usize, SampleParams> =
                    batches(&open(7, 2, 0, 1), usize::MAX)
                        .iter()
                        .flat_map(|s| s.records.iter().copied().zip(s.params.iter().copied()))
                        .collect();
                assert_eq!(reference.len(), records);

                let old_len = open(batch, 1, 0, old_world).len();
                // Stop strictly inside the epoch (the epoch's end is its own test).
                let stop = rng.below(old_len);
                let mut before = Vec::new();
                let mut states = Vec::new();
                for rank in 0..old_world {
                    let loader = open(batch, 1 + rng.below(4), rank, old_world);
                    let mut it = loader.iter();
                    for b in it.by_ref().take(stop) {
                        let b = b.expect("batch");
                        before.extend_from_slice(b.indices());
                        for (r, p) in b.indices().iter().zip(b.params()) {
                            assert_eq!(&reference[r], p, "record {r}'s draws before the stop");
                        }
                    }
                    assert_eq!(it.state(), loader.state(stop).expect("state"));
                    states.push(it.state());
                }
                // Every rank reports the same state: it is global.
                assert!(states.iter().all(|s| s == &states[0]));
                let json = states[0].to_json();
                let state = LoaderState::from_json(&json).expect("json");
                assert_eq!(state.epoch, epoch);
                let consumed = state.consumed as usize;
                assert_eq!(consumed, old_world * stop * batch);

                let order = Sampler {
                    len: records,
                    shuffle: true,
                    seed: 5,
                    rank: 0,
                    world_size: 1,
                }
                .epoch_order(epoch);
                // Before the stop: exactly the order's first `consumed` positions.
                assert_eq!(sorted(before), sorted(order[..consumed].to_vec()));

                let mut after = Vec::new();
                for rank in 0..new_world {
                    let threads = 1 + rng.below(4);
                    let mut loader =
                        Loader::new(dataset.clone(), config(new_batch, threads, rank, new_world))
                            .expect("loader");
                    loader.resume(&state).expect("resume");
                    loader.set_epoch(epoch); // the training loop's call keeps the position
                    let seen = batches(&loader, usize::MAX);
                    assert_eq!(seen.len(), loader.len());
                    for s in &seen {
                        for (r, p) in s.records.iter().zip(&s.params) {
                            assert_eq!(&reference[r], p, "record {r}'s draws after the resume");
                        }
                        after.extend_from_slice(&s.records);
                    }
                    if new_world == old_world && new_batch == batch {
                        let whole =
                            batches(&open(batch, 1 + rng.below(4), rank, old_world), usize::MAX);
                        assert_eq!(seen, whole[stop..], "same world: bit-identical batches");
                    }
                }
                // After the resume: the rest of the order once, plus the padding that evens out
                // the new ranks (the epoch's first records).
                let rest = records - consumed;
                let pad = rest.div_ceil(new_world) * new_world - rest;
                let mut expected = order[consumed..].to_vec();
                expected.extend((0..pad).map(|k| order[k % records]));
                assert_eq!(
                    sorted(after),
                    sorted(expected),
                    "records {records}, worlds {old_world}→{new_world}, batch {batch}→{new_batch}, stop {stop}"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 128);
}

#[test]
fn drop_last_resume_never_repeats_a_record() {
    let mut rng = Rng(7);
    for _ in 0..40 {
        let records = 5 + rng.below(60);
        let dataset = memory(records, &["a", "b"]);
        let (old_world, new_world, batch) = (1 + rng.below(8), 1 + rng.below(8), 1 + rng.below(4));
        let cfg = |rank, world| LoaderConfig {
            drop_last: true,
            ..config(batch, 2, rank, world)
        };
        let len = Loader::new(dataset.clone(), cfg(0, old_world))
            .expect("loader")
            .len();
        if len == 0 {
            continue;
        }
        let stop = rng.below(len);
        let mut seen = Vec::new();
        let mut state = None;
        for rank in 0..old_world {
            let l = Loader::new(dataset.clone(), cfg(rank, old_world)).expect("loader");
            seen.extend(batches(&l, stop).into_iter().flat_map(|s| s.records));
            state = Some(l.state(stop).expect("state"));
        }
        let state = state.expect("a rank");
        let consumed = state.consumed as usize;
        let rest = records - consumed;
        for rank in 0..new_world {
            let mut l = Loader::new(dataset.clone(), cfg(rank, new_world)).expect("loader");
            l.resume(&state).expect("resume");
            assert_eq!(l.len(), rest.div_ceil(new_world) / batch);
            seen.extend(batches(&l, usize::MAX).into_iter().flat_map(|s| s.records));
        }
        let pad = rest.div_ceil(new_world) * new_world - rest;
        let mut counts = HashMap::new();
        seen.iter()
            .for_each(|&r| *counts.entry(r).or_insert(0usize) += 1);
        let twice = counts.values().filter(|&&c| c > 1).count();
        assert!(
            counts.values().all(|&c| c <= 2) && twice <= pad,
            "{counts:?} pad {pad}"
        );
    }
}

#[test]
fn resuming_at_the_start_is_the_whole_epoch_and_at_the_end_the_next_epoch() {
    let dataset = memory(23, &["a", "b"]);
    for world in [1, 3] {
        for rank in 0..world {
            let mut l = Loader::new(dataset.clone(), config(4, 2, rank, world)).expect("loader");
            l.set_epoch(1);
            let whole1 = batches(&l, usize::MAX);
            let start = l.state(0).expect("state");
            assert!(start.at_epoch_start() && start.epoch == 1);
            let end = l.state(l.len()).expect("state");
            assert_eq!(
                (end.epoch, end.consumed),
                (2, 0),
                "the epoch's end is the next epoch"
            );
            assert!(l.state(l.len() + 1).is_err());
            // The epoch's end through the iterator, too.
            let mut it = l.iter();
            it.by_ref().for_each(drop);
            assert_eq!(it.state(), end);
            drop(it);

            let mut r = Loader::new(dataset.clone(), config(4, 1, rank, world)).expect("loader");
            r.resume(&start).expect("resume");
            assert_eq!(batches(&r, usize::MAX), whole1);
            r.resume(&end).expect("resume");
            assert_eq!(r.epoch(), 2);
            l.set_epoch(2);
            assert_eq!(batches(&r, usize::MAX), batches(&l, usize::MAX));
            // A hand-made state with the whole epoch consumed is the next epoch too.
            let full = LoaderState {
                consumed: 23,
                ..start.clone()
            };
            r.resume(&full).expect("resume");
            assert_eq!((r.epoch(), r.position()), (2, 0));
            // Another epoch starts from its beginning; the same one keeps the position.
            r.resume(&l.state(1).expect("state")).expect("resume");
            let at = r.position();
            assert!(at > 0);
            r.set_epoch(2);
            assert_eq!(r.position(), at);
            r.set_epoch(3);
            assert_eq!(r.position(), 0);
        }
    }
}

#[test]
fn a_state_from_another_loader_is_refused_naming_the_difference() {
    let dataset = memory(30, &["a", "b"]);
    let base = config(4, 1, 0, 1);
    let state = Loader::new(dataset.clone(), base.clone())
        .expect("loader")
        .state(2)
        .expect("state");
    let refused = |dataset: &Arc<Dataset>, cfg: LoaderConfig, state: &LoaderState| -> String {
        let mut l = Loader::new(dataset.clone(), cfg).expect("loader");
        let before = (l.epoch(), l.position());
        match l.resume(state) {
            Err(Error::Usage(m)) => {
                assert_eq!(
                    (l.epoch(), l.position()),
                    before,
                    "a refusal changes nothing"
                );
                m
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let m = refused(&memory(31, &["a", "b"]), base.clone(), &state);
    assert!(
        m.contains("dataset") && m.contains("30 records") && m.contains("31 records"),
        "{m}"
    );
    let m = refused(&memory(30, &["a", "c"]), base.clone(), &state);
    assert!(m.contains("dataset"), "{m}");
    let m = refused(
        &dataset,
        LoaderConfig {
            seed: 6,
            ..base.clone()
        },
        &state,
    );
    assert!(m.contains("seed (state 5, loader 6)"), "{m}");
    let m = refused(
        &dataset,
        LoaderConfig {
            crop: 4,
            ..base.clone()
        },
        &state,
    );
    assert!(m.contains("crop (state 6, loader 4)"), "{m}");
    let m = refused(
        &dataset,
        LoaderConfig {
            shuffle: false,
            ..base.clone()
        },
        &state,
    );
    assert!(m.contains("shuffle"), "{m}");
    let m = refused(
        &dataset,
        LoaderConfig {
            mean: MeanMode::ImageNet,
            ..base.clone()
        },
        &state,
    );
    assert!(
        m.contains("mean (state image, loader imagenet)") && m.contains("norm"),
        "{m}"
    );
    let subset = Loader::new(dataset.clone(), base.clone())
        .and_then(|l| l.with_subset((0..30).rev().collect()))
        .expect("subset");
    let mut subset = subset;
    assert!(matches!(subset.resume(&state), Err(Error::Usage(m)) if m.contains("dataset")));
    let corrupt = LoaderState {
        consumed: 31,
        ..state.clone()
    };
    assert!(refused(&dataset, base.clone(), &corrupt).contains("corrupt"));
    // What may differ: world size, batch size, threads, prefetch.
    let mut l = Loader::new(
        dataset.clone(),
        LoaderConfig {
            batch_size: 3,
            threads: 4,
            prefetch: 9,
            rank: 1,
            world_size: 5,
            ..base
        },
    )
    .expect("loader");
    l.resume(&state).expect("an elastic resume");
    assert_eq!(l.position(), 8);
}
