//! The training loss: §5's multinomial logistic regression (cross-entropy of the softmax) against
//! each image's label, or, when the engine mixes batches (MixUp/CutMix) or smooths labels, against
//! its `[N, classes]` soft labels — timm's `SoftTargetCrossEntropy`, `mean(−Σ_c t_c · log softmax(z)_c)`.
//!
//! With soft labels the training top-1 counts an image as right when the network's top class is
//! the class holding the largest share of its soft label (its own class unless the partner's
//! share is larger).

use tch::{Kind, Tensor};

/// The mean loss of `logits` (`[N, classes]`) against `labels` (`[N]` class indices), or against
/// `soft` (`[N, classes]`, each row summing to 1) when given.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, soft: Option<&Tensor>) -> Tensor {
    match soft {
        None => logits.cross_entropy_for_logits(labels),
        Some(targets) => {
            let log_probs = logits.log_softmax(-1, Kind::Float);
            (targets * log_probs)
                .sum_dim_intlist(-1, false, Kind::Float)
                .neg()
                .mean(Kind::Float)
        }
    }
}

/// The class each image is scored against for top-k: its label, or the largest share of its
/// soft label.
pub fn scored_classes(labels: &Tensor, soft: Option<&Tensor>) -> Tensor {
    match soft {
        None => labels.shallow_clone(),
        Some(targets) => targets.argmax(-1, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `−Σ t log softmax(z)` per row, averaged, in f64 from the definition.
    fn plain(logits: &[[f64; 3]], targets: &[[f64; 3]]) -> f64 {
        let rows = logits.iter().zip(targets).map(|(z, t)| {
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max;
            -(0..3).map(|c| t[c] * (z[c] - log_sum)).sum::<f64>()
        });
        rows.sum::<f64>() / logits.len() as f64
    }

    fn tensor(rows: &[[f64; 3]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, 3])
    }

    #[test]
    fn soft_targets_follow_the_definition() {
        let z = [[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]];
        let t = [[0.7, 0.3, 0.0], [0.05, 0.05, 0.9]];
        let labels = Tensor::from_slice(&[0i64, 2]);
        let got = cross_entropy(&tensor(&z), &labels, Some(&tensor(&t))).double_value(&[]);
        assert!(
            (got - plain(&z, &t)).abs() < 1e-5,
            "{got} vs {}",
            plain(&z, &t)
        );
    }

    #[test]
    fn one_hot_soft_targets_are_the_hard_loss_and_smoothing_is_libtorchs() {
        let z = [[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [-0.3, 1.5, 0.0]];
        let labels = Tensor::from_slice(&[0i64, 2, 1]);
        let one_hot = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
        let hard = cross_entropy(&tensor(&z), &labels, None).double_value(&[]);
        let soft = cross_entropy(&tensor(&z), &labels, Some(&tensor(&one_hot))).double_value(&[]);
        assert!((hard - soft).abs() < 1e-5, "{hard} vs {soft}");
        // timm's smoothing (off = s / C, on = 1 − s + off) is libtorch's label_smoothing = s.
        let s = 0.1;
        let smooth = one_hot.map(|row| row.map(|v| v * (1.0 - s) + s / 3.0));
        let ours = cross_entropy(&tensor(&z), &labels, Some(&tensor(&smooth))).double_value(&[]);
        let torch = tensor(&z)
            .cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, s)
            .double_value(&[]);
        assert!((ours - torch).abs() < 1e-5, "{ours} vs libtorch {torch}");
    }

    #[test]
    fn mixed_images_are_scored_against_their_larger_share() {
        let labels = Tensor::from_slice(&[0i64, 1]);
        let soft = tensor(&[[0.3, 0.7, 0.0], [0.0, 0.6, 0.4]]);
        let scored = scored_classes(&labels, Some(&soft));
        assert_eq!(Vec::<i64>::try_from(&scored).expect("i64"), vec![1, 1]);
        let plain = scored_classes(&labels, None);
        assert_eq!(Vec::<i64>::try_from(&plain).expect("i64"), vec![0, 1]);
    }
}
