//! One-file checkpoints: model weights, momentum buffers, the training set's statistics and the
//! training state (epoch, step, learning rate, best error, schedule counters, seed) in a single
//! libtorch archive, written through [`alexpipe::atomic_file`] (a synced temporary file renamed
//! into place), so a crash never leaves a half-written checkpoint. Randomness needs no saved generator state: the engine draws from
//! (seed, epoch, record) and dropout is reseeded from (seed, epoch, step) before every step.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use alexpipe::stats::StatsSummary;
use alexpipe::{MeanMode, Stats};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::metrics::EpochTotals;
use crate::model::{AlexNet, AlexNetConfig};
use crate::schedule::LrState;
use crate::sgd::Sgd;

/// Version of the archive layout.
const FORMAT: u32 = 1;

/// Why a checkpoint cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// libtorch could not read or write the file.
    #[error("{path}: {message}")]
    Torch {
        /// The checkpoint.
        path: PathBuf,
        /// libtorch's message, without its C++ backtrace.
        message: String,
    },
    /// Syncing or renaming the finished file into place failed (the error names the file).
    #[error(transparent)]
    Write(#[from] alexpipe::Error),
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The checkpoint.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not one of ours, or does not match the model.
    #[error("{path}: {reason}")]
    Invalid {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The training set's statistics without the mean image (stored as a tensor): the JSON object
/// `{images, size, channel_mean, channel_std, covariance, eigvals, eigvecs}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StoredStats {
    /// Side of the mean image.
    size: u32,
    #[serde(flatten)]
    summary: StatsSummary,
}

/// [`MeanMode`] as checkpoints spell it (`"MeanImage"`, `"Channel"`, `"ImageNet"`).
mod mean_mode_serde {
    use alexpipe::MeanMode;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    enum Stored {
        MeanImage,
        Channel,
        ImageNet,
    }

    pub fn serialize<S: Serializer>(mode: &MeanMode, s: S) -> Result<S::Ok, S::Error> {
        match mode {
            MeanMode::Image => Stored::MeanImage,
            MeanMode::Channel => Stored::Channel,
            MeanMode::ImageNet => Stored::ImageNet,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MeanMode, D::Error> {
        Ok(match Stored::deserialize(d)? {
            Stored::MeanImage => MeanMode::Image,
            Stored::Channel => MeanMode::Channel,
            Stored::ImageNet => MeanMode::ImageNet,
        })
    }
}

/// The schedule and counters of a run: everything but tensors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// The network.
    pub model: AlexNetConfig,
    /// Class names, index = label (from the training dataset's manifest).
    pub classes: Vec<String>,
    /// Input normalisation the network was trained with.
    #[serde(with = "mean_mode_serde")]
    pub normalize: MeanMode,
    /// Seed of the engine's draws and of dropout.
    pub seed: u64,
    /// The epoch in progress (0-based); with `step == 0` the next epoch to start.
    pub epoch: u64,
    /// Batches of `epoch` already trained.
    pub step: u64,
    /// The learning-rate schedule: rate, best error, counters (stored as fields of this object).
    #[serde(flatten)]
    pub schedule: LrState,
    /// The in-progress epoch's sums, so a resumed epoch reports all of its batches.
    pub partial: EpochTotals,
    /// The engine's position in the in-progress epoch (`None` at an epoch's start): a resumed
    /// epoch starts there at once, and a dataset or recipe other than the checkpoint's is refused.
    /// Checkpoints written before this field resume from `step` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<alexpipe::LoaderState>,
    /// fp16's loss scale (`--precision fp16`), so a resumed run scales as it would have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::precision::LossScaler>,
}

/// What a checkpoint restores.
#[derive(Debug)]
pub struct Restored {
    /// Counters and schedule.
    pub state: TrainState,
    /// The training set's statistics (normalisation of every later input).
    pub stats: Stats,
    /// Model weights by variable name.
    weights: HashMap<String, Tensor>,
    /// Momentum buffers by variable name.
    velocities: HashMap<String, Tensor>,
}

fn torch_err(path: &Path) -> impl FnOnce(tch::TchError) -> CheckpointError + '_ {
    move |e| {
        let full = e.to_string();
        let message = full
            .split("\nException raised from")
            .next()
            .unwrap_or(&full)
            .trim()
            .to_string();
        CheckpointError::Torch {
            path: path.to_path_buf(),
            message,
        }
    }
}

/// The first bytes of every libtorch archive (a ZIP file).
const ARCHIVE_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    vs: &VarStore,
    sgd: &Sgd,
    stats: &Stats,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let meta = serde_json::json!({
        "format": FORMAT,
        "state": state,
        "stats": StoredStats {
            size: stats.size,
            summary: stats.summary(),
        },
    });
    let meta = serde_json::to_vec(&meta).map_err(|e| invalid(e.to_string()))?;
    let side = stats.size as i64;
    let mut named: Vec<(String, Tensor)> = vec![
        ("meta".into(), Tensor::from_slice(&meta)),
        (
            "stats/mean_image".into(),
            Tensor::from_slice(&stats.mean_image).view([side, side, 3]),
        ),
    ];
    for (name, w) in vs.variables() {
        named.push((format!("model/{name}"), w.to_device(Device::Cpu)));
    }
    for (name, v) in sgd.velocities() {
        named.push((format!("velocity/{name}"), v.to_device(Device::Cpu)));
    }
    alexpipe::atomic_file::write_with(path, |tmp| {
        Tensor::save_multi(&named, tmp).map_err(torch_err(tmp))
    })
}

/// Copies checkpoint `from` to `to` (`best.ot`) atomically.
pub fn copy(from: &Path, to: &Path) -> Result<(), CheckpointError> {
    alexpipe::atomic_file::write_with(to, |tmp| {
        std::fs::copy(from, tmp)
            .map(|_| ())
            .map_err(|source| CheckpointError::Io {
                path: to.to_path_buf(),
                source,
            })
    })
}

/// Reads a checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<Restored, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    // Missing and foreign files get a plain message before libtorch sees them.
    let mut head = Vec::with_capacity(4);
    std::fs::File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if head != ARCHIVE_MAGIC {
        return Err(invalid(
            "not a checkpoint (not a libtorch archive): give the checkpoint.ot or best.ot that \
             `train` wrote in its run directory"
                .into(),
        ));
    }
    let tensors = Tensor::load_multi(path).map_err(torch_err(path))?;
    let mut weights = HashMap::new();
    let mut velocities = HashMap::new();
    let (mut meta, mut mean_image) = (None, None);
    for (name, t) in tensors {
        if let Some(n) = name.strip_prefix("model/") {
            weights.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("velocity/") {
            velocities.insert(n.to_string(), t);
        } else if name == "meta" {
            meta = Some(t);
        } else if name == "stats/mean_image" {
            mean_image = Some(t);
        }
    }
    let not_ours = || invalid("not an alexpipe training checkpoint (no `meta` entry)".into());
    let meta = meta.ok_or_else(not_ours)?;
    let bytes: Vec<u8> = meta.try_into().map_err(|_| not_ours())?;
    let meta: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| not_ours())?;
    if meta["format"] != FORMAT {
        return Err(invalid(format!(
            "checkpoint format {} is not {FORMAT}: written by another alexpipe version",
            meta["format"]
        )));
    }
    let state: TrainState = serde_json::from_value(meta["state"].clone())
        .map_err(|e| invalid(format!("bad training state: {e}")))?;
    let s: StoredStats = serde_json::from_value(meta["stats"].clone())
        .map_err(|e| invalid(format!("bad statistics: {e}")))?;
    let mean_image = mean_image.ok_or_else(|| invalid("no mean image".into()))?;
    let side = i64::from(s.size);
    if mean_image.size() != [side, side, 3] || mean_image.kind() != Kind::Float {
        return Err(invalid(format!(
            "mean image of shape {:?}, expected [{side}, {side}, 3]",
            mean_image.size()
        )));
    }
    let mean_image: Vec<f32> = mean_image
        .flatten(0, -1)
        .try_into()
        .map_err(|_| invalid("unreadable mean image".into()))?;
    let stats = Stats::from_summary(&s.summary, s.size, mean_image);
    Ok(Restored {
        state,
        stats,
        weights,
        velocities,
    })
}

impl Restored {
    /// Copies the saved weights into `vs` (built from `state.model`); every variable must match.
    pub fn load_weights(&mut self, path: &Path, vs: &mut VarStore) -> Result<(), CheckpointError> {
        let invalid = |reason: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut saved = std::mem::take(&mut self.weights);
        for (name, mut w) in vs.variables() {
            let s = saved
                .remove(&name)
                .ok_or_else(|| invalid(format!("no weights for `{name}`")))?;
            if s.size() != w.size() {
                return Err(invalid(format!(
                    "`{name}` has shape {:?} in the checkpoint, {:?} in the model",
                    s.size(),
                    w.size()
                )));
            }
            tch::no_grad(|| w.copy_(&s));
        }
        Ok(())
    }

    /// Restores the momentum buffers into `sgd`.
    pub fn load_velocities(&mut self, path: &Path, sgd: &mut Sgd) -> Result<(), CheckpointError> {
        sgd.load_velocities(std::mem::take(&mut self.velocities))
            .map_err(|reason| CheckpointError::Invalid {
                path: path.to_path_buf(),
                reason,
            })
    }
}

/// The network of a checkpoint, ready for inference, with the checkpoint's state and statistics.
pub fn load_network(
    path: &Path,
    device: Device,
) -> Result<(VarStore, AlexNet, TrainState, Stats), CheckpointError> {
    let mut restored = load(path)?;
    let mut vs = VarStore::new(device);
    let net =
        AlexNet::new(&vs.root(), &restored.state.model).map_err(|e| CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason: format!("its network cannot be built: {e}"),
        })?;
    restored.load_weights(path, &mut vs)?;
    Ok((vs, net, restored.state, restored.stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The meta JSON of a checkpoint written before the statistics and the schedule moved into
    /// shared types: it must still read, to the same values.
    #[test]
    fn meta_json_of_this_format_still_reads() {
        let state = r#"{"model":{"classes":4,"width":0.25,"input":224,"dropout":0.5,"init":"Kaiming",
            "bias_init":"Caffe"},"classes":["a","b","c","d"],"normalize":"Channel","seed":3,
            "epoch":2,"step":1,"lr":0.002,"best":[40.0,2],"epochs_since_best":0,"lr_drops":1,
            "partial":{"images":4,"loss_sum":5.0,"top1":1,"top5":4,"wait_s":0.5,"seconds":2.0}}"#;
        for (name, mode) in [
            ("MeanImage", MeanMode::Image),
            ("ImageNet", MeanMode::ImageNet),
        ] {
            let other: TrainState =
                serde_json::from_str(&state.replace("\"Channel\"", &format!("\"{name}\"")))
                    .expect("reads");
            assert_eq!(other.normalize, mode);
            let back = serde_json::to_value(&other).expect("json");
            assert_eq!(back["normalize"], name);
        }
        let state: TrainState = serde_json::from_str(state).expect("old state reads");
        assert_eq!(state.normalize, MeanMode::Channel);
        assert_eq!(
            state.schedule,
            LrState {
                lr: 0.002,
                best: Some((40.0, 2)),
                epochs_since_best: 0,
                lr_drops: 1
            }
        );
        let again: serde_json::Value = serde_json::to_value(&state).expect("json");
        assert_eq!(again["normalize"], "Channel");
        assert_eq!(again["lr"], 0.002);
        assert_eq!(again["lr_drops"], 1);

        let stats = r#"{"images":31,"size":72,"channel_mean":[1.0,2.0,3.0],"channel_std":[4.0,5.0,6.0],
            "covariance":[[1.0,0.0,0.0],[0.0,1.0,0.0],[0.0,0.0,1.0]],"eigvals":[3.0,2.0,1.0],
            "eigvecs":[[1.0,0.0,0.0],[0.0,1.0,0.0],[0.0,0.0,1.0]]}"#;
        let s: StoredStats = serde_json::from_str(stats).expect("old statistics read");
        assert_eq!((s.size, s.summary.images), (72, 31));
        assert_eq!(s.summary.channel_std, [4.0, 5.0, 6.0]);
        let again = serde_json::to_value(&s).expect("json");
        let old: serde_json::Value = serde_json::from_str(stats).expect("json");
        assert_eq!(again, old, "written back to the same object");
    }
}
