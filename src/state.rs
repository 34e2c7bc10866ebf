//! Resuming an epoch where it stopped: the [`LoaderState`] a [`crate::Loader`] reports after any
//! batch, and the checks that a state fits the loader it is loaded into.
//!
//! A state is global, not per rank: it says how many positions of the epoch's global order (the
//! permutation of [`crate::sampler::Sampler::epoch_order`]) all ranks together have consumed. With
//! `W` ranks each taking every `W`-th position ([`crate::sampler::Sampler::indices_from`]), once
//! every rank has consumed `b` batches of `B` images the consumed positions are exactly the first
//! `W·b·B` of the order (fewer than the epoch: a rank's last batch ends the epoch). A state is
//! therefore exact at a *synchronised* step, where every rank has consumed the same number of
//! batches — the step at which data-parallel training (paper §5's two GPUs, or DDP) checkpoints,
//! since every step ends with the ranks exchanging gradients. Saved by any rank, it is the same
//! state.
//!
//! Because every random draw comes from (seed, epoch, record) alone (paper §4.1's crops, mirrors
//! and lighting; [`crate::sampler::train_params`]), the rest of the epoch can be started at once
//! from the state — no skipped batch is built or read, whatever the position — under any world
//! size, batch size, thread count or prefetch depth, and each record keeps the patch it would have
//! had. Under the same world and batch size the resumed batches are bit-identical to the
//! uninterrupted run's.
//!
//! Padding: an epoch under `W` ranks is padded to a multiple of `W` by repeating its first records
//! (as PyTorch's `DistributedSampler`). A state taken mid-epoch has consumed no padding (fewer
//! positions than records). A resumed epoch pads its rest the same way for its own world size `W'`:
//! up to `W' - 1` positions past the order's end, read as the epoch's first records — records
//! trained before the interruption. So across the interrupted and the resumed run every record of
//! the epoch is trained exactly once, plus at most `W' - 1` repeats of already-trained records
//! (none when `W'` divides the rest); under the same world size this is exactly the uninterrupted
//! epoch's padding. With `drop_last`, each rank drops its last partial batch of the resumed part as
//! of a whole epoch: the same records as uninterrupted under the same world and batch size, under
//! others possibly others, and never a record twice beyond the padding.
//!
//! Not for: checkpointing the model, or a loader's position per rank (ranks at different steps).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The version of the state's format this library writes and reads.
pub const STATE_VERSION: u64 = 1;

/// Where an epoch stands, and what it must be resumed with. Serialisable (JSON through
/// [`LoaderState::to_json`] / [`LoaderState::from_json`], or any serde format); every field is an
/// integer or a string, so it is a plain dict in Python.
///
/// Load it with [`crate::Loader::resume`]; it is refused ([`Error::Usage`], naming what differs)
/// unless the loader reads the same records (`dataset`, `records`) in the same order (`seed`, the
/// recipe's `shuffle`) with the same augmentation and output (the rest of `recipe`). The world
/// size, the batch size, threads and prefetch may all differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderState {
    /// [`STATE_VERSION`].
    pub version: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// The epoch under way (an epoch that was completed is reported as the next one, at 0).
    pub epoch: u64,
    /// Positions of the epoch's global order consumed by all ranks together, `0..records`.
    pub consumed: u64,
    /// Length of the epoch's order: the records of the dataset (or of the loader's subset).
    pub records: u64,
    /// Digest of what the records are: the dataset's mode, image size, record count, class names
    /// and class counts, and the loader's subset if it has one.
    pub dataset: String,
    /// What the loader does with each record, as `key=value` words: the augmentation (train,
    /// crop, flip, lighting, ten_crop), the order (shuffle), drop_last, the output (layout, mean),
    /// and a digest of the normalisation (mean image, channel constants, lighting axes).
    pub recipe: String,
    /// World size when the state was taken (for information: a state resumes under any).
    pub world_size: u64,
    /// Images per batch per rank when the state was taken (for information: a state resumes
    /// under any).
    pub batch_size: u64,
}

impl LoaderState {
    /// The state as JSON.
    pub fn to_json(&self) -> String {
        // A struct of integers and strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A state from JSON; [`Error::Usage`] when it is not one.
    pub fn from_json(json: &str) -> Result<LoaderState> {
        serde_json::from_str(json)
            .map_err(|e| Error::Usage(format!("not an alexpipe loader state: {e}")))
    }

    /// Whether the state is at the start of its epoch.
    pub fn at_epoch_start(&self) -> bool {
        self.consumed == 0
    }

    /// The state after `done` of the `batches` batches of an iteration that started at this
    /// state, with `world` ranks of `batch` images each: `done` batches per rank consume `world ·
    /// done · batch` positions; the last batch (`done == batches`) completes the epoch, reported
    /// as the next epoch at position 0.
    pub(crate) fn advanced(
        &self,
        done: usize,
        batches: usize,
        world: usize,
        batch: usize,
    ) -> Result<LoaderState> {
        if done > batches {
            return Err(Error::Usage(format!(
                "consumed_batches {done} is more than the {batches} batches of this iteration"
            )));
        }
        let mut next = self.clone();
        next.world_size = world as u64;
        next.batch_size = batch as u64;
        if done == batches {
            next.epoch = self.epoch.saturating_add(1);
            next.consumed = 0;
        } else {
            // Below `records` (a rank's last batch is the epoch's last), so no overflow.
            next.consumed = self.consumed + (world * done * batch) as u64;
        }
        Ok(next)
    }

    /// Checks that `self` (a state being loaded) fits a loader whose own state is `expected`;
    /// the error names every field that differs.
    pub(crate) fn check_fits(&self, expected: &LoaderState) -> Result<()> {
        if self.version != STATE_VERSION {
            return Err(Error::Usage(format!(
                "loader state version {}: this alexpipe reads version {STATE_VERSION}",
                self.version
            )));
        }
        let mut differ = Vec::new();
        if self.seed != expected.seed {
            differ.push(format!(
                "seed (state {}, loader {})",
                self.seed, expected.seed
            ));
        }
        if self.records != expected.records || self.dataset != expected.dataset {
            differ.push(format!(
                "dataset (state: {} records, digest {}; loader: {} records, digest {})",
                self.records, self.dataset, expected.records, expected.dataset
            ));
        }
        let words = |r: &str| -> Vec<(String, String)> {
            r.split_whitespace()
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (w.to_string(), String::new()),
                })
                .collect()
        };
        let (mine, theirs) = (words(&self.recipe), words(&expected.recipe));
        for (k, v) in &theirs {
            match mine.iter().find(|(mk, _)| mk == k) {
                Some((_, mv)) if mv == v => {}
                Some((_, mv)) => differ.push(format!("{k} (state {mv}, loader {v})")),
                None => differ.push(format!("{k} (missing from the state, loader {v})")),
            }
        }
        for (k, mv) in &mine {
            if !theirs.iter().any(|(tk, _)| tk == k) {
                differ.push(format!("{k} (state {mv}, unknown to this loader)"));
            }
        }
        if !differ.is_empty() {
            return Err(Error::Usage(format!(
                "this loader state is from another loader; it differs in: {} (resume with the \
                 dataset, seed and recipe it was saved with)",
                differ.join(", ")
            )));
        }
        if self.consumed > self.records {
            return Err(Error::Usage(format!(
                "corrupt loader state: {} positions consumed of an epoch of {} records",
                self.consumed, self.records
            )));
        }
        Ok(())
    }
}

/// A 64-bit FNV-1a digest, for fingerprints (a guard against loading the wrong state, not a
/// security measure).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Digest(u64);

impl Digest {
    /// An empty digest.
    pub(crate) fn new() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Digest {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Adds a length-prefixed string (so that ("ab", "c") and ("a", "bc") differ).
    pub(crate) fn str(self, s: &str) -> Digest {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// Adds an integer.
    pub(crate) fn u64(self, v: u64) -> Digest {
        self.bytes(&v.to_le_bytes())
    }

    /// The digest as 16 hex digits.
    pub(crate) fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LoaderState {
        LoaderState {
            version: STATE_VERSION,
            seed: 1,
            epoch: 2,
            consumed: 40,
            records: 100,
            dataset: "00ff".into(),
            recipe: "train=true crop=24".into(),
            world_size: 2,
            batch_size: 4,
        }
    }

    #[test]
    fn json_round_trip_and_garbage_is_a_usage_error() {
        let s = state();
        assert_eq!(LoaderState::from_json(&s.to_json()).expect("json"), s);
        for bad in ["", "{}", "[1]", r#"{"seed": -1}"#] {
            assert!(matches!(LoaderState::from_json(bad), Err(Error::Usage(_))));
        }
        let extra = s.to_json().replace('}', r#","rank":0}"#);
        assert!(
            matches!(LoaderState::from_json(&extra), Err(Error::Usage(m)) if m.contains("rank"))
        );
    }

    #[test]
    fn advancing_counts_every_rank_and_the_last_batch_ends_the_epoch() {
        let s = LoaderState {
            consumed: 0,
            ..state()
        };
        assert_eq!(s.advanced(3, 12, 2, 4).expect("ok").consumed, 24);
        let end = s.advanced(12, 12, 2, 4).expect("ok");
        assert_eq!((end.epoch, end.consumed), (3, 0));
        assert!(matches!(s.advanced(13, 12, 2, 4), Err(Error::Usage(_))));
    }

    #[test]
    fn a_misfit_names_each_difference() {
        let s = state();
        assert!(s.check_fits(&s).is_ok());
        let other = LoaderState {
            seed: 2,
            recipe: "train=true crop=32".into(),
            ..state()
        };
        let Err(Error::Usage(m)) = s.check_fits(&other) else {
            panic!("accepted")
        };
        assert!(m.contains("seed (state 1, loader 2)"), "{m}");
        assert!(m.contains("crop (state 24, loader 32)"), "{m}");
        assert!(!m.contains("train"), "{m}");
        let far = LoaderState {
            consumed: 101,
            ..state()
        };
        assert!(matches!(far.check_fits(&s), Err(Error::Usage(m)) if m.contains("corrupt")));
        let v2 = LoaderState {
            version: 2,
            ..state()
        };
        assert!(matches!(v2.check_fits(&s), Err(Error::Usage(m)) if m.contains("version")));
    }
}
