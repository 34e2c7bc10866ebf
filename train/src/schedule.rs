//! The learning-rate schedule of §5, as a pure function of the epoch's validation error: "The
//! heuristic which we followed was to divide the learning rate by 10 when the validation error rate
//! stopped improving with the current learning rate. [...] reduced three times prior to
//! termination." Or, like Caffe's reference recipe, a fixed step schedule: divide after given
//! epochs. Either way at most `max_drops` times.

/// The rule: when the learning rate is divided, and by how much.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    /// Epochs without a better validation top-1 error before ε is divided (plateau rule).
    pub patience: u64,
    /// How often ε may be divided (paper: 3).
    pub max_drops: u32,
    /// What ε is divided by (paper: 10).
    pub divisor: f64,
    /// Divide after these (1-based) epochs instead of on plateaus; empty: the plateau rule.
    pub drop_after: Vec<u64>,
}

/// Where the schedule stands: the current rate and what the rule needs to remember. Checkpoints
/// store it (flattened into the training state).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LrState {
    /// Learning rate (ε) of the next epoch.
    pub lr: f64,
    /// Lowest validation top-1 error so far, %, and its 1-based epoch.
    pub best: Option<(f64, u64)>,
    /// Epochs since the validation error last improved (or since the last drop).
    pub epochs_since_best: u64,
    /// Times the learning rate has been divided.
    pub lr_drops: u32,
}

impl LrState {
    /// The state before the first epoch, at rate `lr`.
    pub fn new(lr: f64) -> LrState {
        LrState {
            lr,
            best: None,
            epochs_since_best: 0,
            lr_drops: 0,
        }
    }
}

/// What the schedule decided after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The validation error is the lowest so far (the run saves `best.ot`).
    pub improved: bool,
    /// The learning rate was divided for the next epoch.
    pub dropped: bool,
}

impl LrSchedule {
    /// The state after 1-based `epoch` ended with validation top-1 error `val_top1_err` (%).
    pub fn after_epoch(&self, s: LrState, epoch: u64, val_top1_err: f64) -> (LrState, Decision) {
        let improved = s.best.is_none_or(|(best, _)| val_top1_err < best);
        let mut next = s;
        if improved {
            next.best = Some((val_top1_err, epoch));
            next.epochs_since_best = 0;
        } else {
            next.epochs_since_best += 1;
        }
        let due = if self.drop_after.is_empty() {
            next.epochs_since_best >= self.patience
        } else {
            self.drop_after.contains(&epoch)
        };
        let dropped = due && next.lr_drops < self.max_drops;
        if dropped {
            next.lr /= self.divisor;
            next.lr_drops += 1;
            next.epochs_since_best = 0;
        }
        (next, Decision { improved, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plateau(patience: u64) -> LrSchedule {
        LrSchedule {
            patience,
            max_drops: 3,
            divisor: 10.0,
            drop_after: Vec::new(),
        }
    }

    /// The rates of the epochs after each of `errors`, and the epochs after which ε was divided.
    fn replay(rule: &LrSchedule, errors: &[f64]) -> (Vec<f64>, Vec<u64>) {
        let mut s = LrState::new(0.01);
        let (mut rates, mut drops) = (Vec::new(), Vec::new());
        for (i, &e) in errors.iter().enumerate() {
            let epoch = i as u64 + 1;
            let (next, d) = rule.after_epoch(s, epoch, e);
            if d.dropped {
                drops.push(epoch);
            }
            s = next;
            rates.push(s.lr);
        }
        (rates, drops)
    }

    #[test]
    fn plateau_divides_after_patience_epochs_without_improvement() {
        // Improves for 3 epochs, then stalls: with patience 2 the rate drops after epoch 5.
        let (rates, drops) = replay(&plateau(2), &[50.0, 40.0, 30.0, 30.0, 31.0, 29.0, 28.0]);
        assert_eq!(drops, [5]);
        assert_eq!(rates[3], 0.01);
        assert!((rates[4] - 0.001).abs() < 1e-15);
        assert!((rates[6] - 0.001).abs() < 1e-15);
    }

    #[test]
    fn a_drop_restarts_the_patience_count() {
        // Never improves after epoch 1: patience 1 drops after epochs 2, 3, 4; then the limit.
        let (rates, drops) = replay(&plateau(1), &[10.0; 8]);
        assert_eq!(drops, [2, 3, 4]);
        assert!((rates[7] - 1e-5).abs() < 1e-18, "{rates:?}");
        // Patience 2: epochs 2 and 3 stall, drop; 4 and 5 stall, drop; ...
        let (_, drops) = replay(&plateau(2), &[10.0; 8]);
        assert_eq!(drops, [3, 5, 7]);
    }

    #[test]
    fn step_schedule_drops_after_the_given_epochs_at_most_max_times() {
        let rule = LrSchedule {
            drop_after: vec![2, 4, 5, 6],
            ..plateau(1)
        };
        // Improving every epoch: the plateau rule would never fire; the steps do, three times.
        let (rates, drops) = replay(&rule, &[9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0]);
        assert_eq!(drops, [2, 4, 5]);
        assert!((rates[6] - 1e-5).abs() < 1e-18);
    }

    #[test]
    fn best_is_the_lowest_error_and_its_epoch() {
        let rule = plateau(5);
        let mut s = LrState::new(0.01);
        let mut improved = Vec::new();
        for (i, e) in [40.0, 35.0, 35.0, 20.0, 25.0].into_iter().enumerate() {
            let (next, d) = rule.after_epoch(s, i as u64 + 1, e);
            improved.push(d.improved);
            s = next;
        }
        // A tie is no improvement.
        assert_eq!(improved, [true, true, false, true, false]);
        assert_eq!(s.best, Some((20.0, 4)));
        assert_eq!(s.epochs_since_best, 1);
    }
}
