//! What each epoch reports (§6 reports top-1 and top-5 error): running sums, the per-epoch row, and
//! its two files in the run directory, `metrics.jsonl` (one JSON object per epoch) and `metrics.csv`.
//!
//! Top-5 error is reported only with more than 5 classes: with 5 or fewer every label is among the
//! five highest scores and the error is 0 by construction. The columns stay: `null` in
//! `metrics.jsonl`, empty in `metrics.csv`.

use std::io::Write;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

/// Number of the `labels` found among each row's `k` highest `scores` (ties: libtorch's topk
/// order), as a 0-d tensor on the scores' device (reading it waits for the device).
pub fn topk_hits(scores: &Tensor, labels: &Tensor, k: i64) -> Tensor {
    let k = k.min(scores.size()[1]);
    let (_, top) = scores.topk(k, 1, true, true);
    let hits = top.eq_tensor(&labels.unsqueeze(1)).any_dim(1, false);
    hits.sum(Kind::Int64)
}

/// Whether top-5 error means something with `classes` classes (more than 5).
pub fn top5_is_reported(classes: usize) -> bool {
    classes > 5
}

/// Sums over the batches of one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochTotals {
    /// Images seen.
    pub images: u64,
    /// Σ per-image cross-entropy loss.
    pub loss_sum: f64,
    /// Images whose label was the top score.
    pub top1: u64,
    /// Images whose label was among the five top scores.
    pub top5: u64,
    /// Seconds the loop waited for the engine.
    pub wait_s: f64,
    /// Seconds of the whole pass.
    pub seconds: f64,
}

impl EpochTotals {
    /// Adds one batch of `n` images.
    pub fn add(&mut self, n: usize, mean_loss: f64, top1: i64, top5: i64) {
        self.images += n as u64;
        self.loss_sum += mean_loss * n as f64;
        self.top1 += top1 as u64;
        self.top5 += top5 as u64;
    }

    /// Mean loss.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.images.max(1) as f64
    }

    /// Top-1 error, %.
    pub fn top1_error(&self) -> f64 {
        100.0 * (1.0 - self.top1 as f64 / self.images.max(1) as f64)
    }

    /// Top-5 error, %.
    pub fn top5_error(&self) -> f64 {
        100.0 * (1.0 - self.top5 as f64 / self.images.max(1) as f64)
    }

    /// Images per second.
    pub fn images_per_s(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }

    /// Share of the pass spent waiting for data, %.
    pub fn data_wait_pct(&self) -> f64 {
        100.0 * self.wait_s / self.seconds.max(1e-9)
    }
}

/// One line of `metrics.jsonl` / `metrics.csv`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: u64,
    /// Learning rate used in this epoch.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training top-1 error, % (on the augmented patches, dropout on).
    pub train_top1_err: f64,
    /// Training top-5 error, %; `None` (null) with 5 classes or fewer.
    pub train_top5_err: Option<f64>,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation top-1 error, %.
    pub val_top1_err: f64,
    /// Validation top-5 error, %; `None` (null) with 5 classes or fewer.
    pub val_top5_err: Option<f64>,
    /// Training images per second.
    pub images_per_s: f64,
    /// Share of training time spent waiting for the engine, %.
    pub data_wait_pct: f64,
    /// Training seconds.
    pub train_s: f64,
    /// Validation seconds.
    pub val_s: f64,
    /// The learning rate was divided after this epoch.
    pub lr_dropped: bool,
}

impl EpochRow {
    /// The row of 1-based `epoch`, trained at rate `lr`; top-5 errors only if `top5`.
    pub fn new(
        epoch: u64,
        lr: f64,
        train: &EpochTotals,
        val: &EpochTotals,
        lr_dropped: bool,
        top5: bool,
    ) -> EpochRow {
        let top5_err = |t: &EpochTotals| top5.then(|| t.top5_error());
        EpochRow {
            epoch,
            lr,
            train_loss: train.loss(),
            train_top1_err: train.top1_error(),
            train_top5_err: top5_err(train),
            val_loss: val.loss(),
            val_top1_err: val.top1_error(),
            val_top5_err: top5_err(val),
            images_per_s: train.images_per_s(),
            data_wait_pct: train.data_wait_pct(),
            train_s: train.seconds,
            val_s: val.seconds,
            lr_dropped,
        }
    }

    /// The line printed after the epoch, of `epochs`; `divisor`: what a drop divided ε by.
    pub fn line(&self, epochs: u64, divisor: f64) -> String {
        let top5 = |e: Option<f64>| e.map(|e| format!(" top-5 {e:.1}%")).unwrap_or_default();
        format!(
            "epoch {}/{epochs} lr {:.0e} | train loss {:.3} top-1 {:.1}%{} | val top-1 {:.1}%{} | \
             {:.0} img/s, data wait {:.1}%{}",
            self.epoch,
            self.lr,
            self.train_loss,
            self.train_top1_err,
            top5(self.train_top5_err),
            self.val_top1_err,
            top5(self.val_top5_err),
            self.images_per_s,
            self.data_wait_pct,
            if self.lr_dropped {
                format!(" | lr ÷ {divisor}")
            } else {
                String::new()
            }
        )
    }
}

/// A CSV cell: the number, or empty.
fn cell(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

const CSV_HEADER: &str = "epoch,lr,train_loss,train_top1_err,train_top5_err,val_loss,val_top1_err,val_top5_err,images_per_s,data_wait_pct,train_s,val_s,lr_dropped";

/// Appends rows to `metrics.jsonl` and `metrics.csv` in a run directory.
#[derive(Debug)]
pub struct MetricsLog {
    jsonl: PathBuf,
    csv: PathBuf,
}

impl MetricsLog {
    /// The log of run directory `dir`. A fresh run (`keep_before == None`) starts both files over; a
    /// resumed one keeps the rows before epoch `keep_before` and appends.
    pub fn open(dir: &Path, keep_before: Option<u64>) -> std::io::Result<MetricsLog> {
        let log = MetricsLog {
            jsonl: dir.join("metrics.jsonl"),
            csv: dir.join("metrics.csv"),
        };
        let kept: Vec<EpochRow> = match keep_before {
            Some(epoch) => read_rows(&log.jsonl)
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.epoch < epoch)
                .collect(),
            None => Vec::new(),
        };
        std::fs::write(&log.jsonl, "")?;
        std::fs::write(&log.csv, format!("{CSV_HEADER}\n"))?;
        for row in &kept {
            log.append(row)?;
        }
        Ok(log)
    }

    /// The `metrics.jsonl` file.
    pub fn jsonl(&self) -> &Path {
        &self.jsonl
    }

    /// Adds one epoch.
    pub fn append(&self, row: &EpochRow) -> std::io::Result<()> {
        let mut jsonl = std::fs::OpenOptions::new().append(true).open(&self.jsonl)?;
        let line = serde_json::to_string(row).map_err(std::io::Error::other)?;
        writeln!(jsonl, "{line}")?;
        let mut csv = std::fs::OpenOptions::new().append(true).open(&self.csv)?;
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            row.epoch,
            row.lr,
            row.train_loss,
            row.train_top1_err,
            cell(row.train_top5_err),
            row.val_loss,
            row.val_top1_err,
            cell(row.val_top5_err),
            row.images_per_s,
            row.data_wait_pct,
            row.train_s,
            row.val_s,
            row.lr_dropped
        )
    }
}

/// The rows of a `metrics.jsonl` (errors do not name it: callers do).
pub fn read_rows(path: &Path) -> std::io::Result<Vec<EpochRow>> {
    std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_counts_hits() {
        let topk_correct = |s: &Tensor, l: &Tensor, k| topk_hits(s, l, k).int64_value(&[]);
        let scores = Tensor::from_slice(&[
            0.1f32, 0.5, 0.2, 0.9, 0.0, 0.3, //
            0.9, 0.1, 0.2, 0.3, 0.4, 0.5, //
            0.0, 0.1, 0.2, 0.3, 0.4, 0.5,
        ])
        .view([3, 6]);
        let labels = Tensor::from_slice(&[3i64, 5, 0]);
        // Row 0: label 3 is the top score. Row 1: label 5 is second. Row 2: label 0 is last.
        assert_eq!(topk_correct(&scores, &labels, 1), 1);
        assert_eq!(topk_correct(&scores, &labels, 2), 2);
        assert_eq!(topk_correct(&scores, &labels, 5), 2);
        assert_eq!(topk_correct(&scores, &labels, 6), 3);
        // k above the class count means every class.
        assert_eq!(topk_correct(&scores, &labels, 9), 3);
    }

    #[test]
    fn resumed_log_keeps_earlier_epochs_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let row = |epoch| EpochRow {
            epoch,
            lr: 0.01,
            train_loss: 1.0,
            train_top1_err: 50.0,
            train_top5_err: Some(10.0),
            val_loss: 1.0,
            val_top1_err: 40.0,
            val_top5_err: None,
            images_per_s: 100.0,
            data_wait_pct: 1.0,
            train_s: 1.0,
            val_s: 0.5,
            lr_dropped: false,
        };
        let log = MetricsLog::open(dir.path(), None).expect("log");
        for e in 1..=3 {
            log.append(&row(e)).expect("append");
        }
        let log = MetricsLog::open(dir.path(), Some(3)).expect("log");
        log.append(&row(3)).expect("append");
        let rows = read_rows(&dir.path().join("metrics.jsonl")).expect("rows");
        assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3]);
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).expect("csv");
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.starts_with("epoch,lr,"));
        // No validation top-5: null in JSON, an empty cell in CSV, the same columns.
        assert_eq!(rows[0].val_top5_err, None);
        assert_eq!(rows[0].train_top5_err, Some(10.0));
        let json = std::fs::read_to_string(dir.path().join("metrics.jsonl")).expect("jsonl");
        assert!(
            json.lines().all(|l| l.contains("\"val_top5_err\":null")),
            "{json}"
        );
        for line in csv.lines() {
            assert_eq!(line.split(',').count(), 13, "{line}");
        }
        assert_eq!(csv.lines().nth(1).expect("row").split(',').nth(7), Some(""));
    }

    #[test]
    fn top5_is_shown_only_above_five_classes() {
        assert!(!top5_is_reported(4));
        assert!(!top5_is_reported(5));
        assert!(top5_is_reported(6));
        let t = EpochTotals {
            images: 10,
            loss_sum: 5.0,
            top1: 7,
            top5: 10,
            wait_s: 0.0,
            seconds: 1.0,
        };
        let shown = EpochRow::new(3, 0.01, &t, &t, true, true);
        assert_eq!(shown.val_top5_err, Some(0.0));
        let line = shown.line(6, 10.0);
        assert!(line.contains("top-1 30.0% top-5 0.0%"), "{line}");
        assert!(line.ends_with("| lr ÷ 10"), "{line}");
        let hidden = EpochRow::new(3, 0.01, &t, &t, false, false);
        assert_eq!((hidden.train_top5_err, hidden.val_top5_err), (None, None));
        let line = hidden.line(6, 10.0);
        assert!(!line.contains("top-5"), "{line}");
        assert!(
            line.starts_with("epoch 3/6 lr 1e-2 | train loss 0.500 top-1 30.0% | val"),
            "{line}"
        );
    }
}
