//! The training loop shared by the LSTM and the logistic-regression baseline.
//!
//! Adam(W) at the configured learning rate, mini-batches in a seeded order, decoupled weight
//! decay, dropout inside the model, and early stopping on the validation loss: the weights kept
//! are those of the best validation epoch, not the last one. That last point is what the
//! original study lacked: it reported the final epoch of a run that had long since overfit.
//!
//! Validation loss is weighted with the same class weights as training, so the two curves are
//! comparable and the minimum is not dragged around by the balancing.

use crate::plots::LearningCurve;
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use credit_core::evaluation::roc_auc;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A model the loop can train: trainable variables plus logits for a batch.
pub trait Trainable {
    fn vars(&self) -> Vec<Var>;
    /// Logits `[N]` for features `[N, D]`; dropout on when `rng` is given.
    fn logits(
        &self,
        features: &Tensor,
        rng: Option<&mut ChaCha8Rng>,
    ) -> candle_core::Result<Tensor>;
}

impl Trainable for super::network::Network {
    fn vars(&self) -> Vec<Var> {
        super::network::Network::vars(self)
    }
    fn logits(
        &self,
        features: &Tensor,
        rng: Option<&mut ChaCha8Rng>,
    ) -> candle_core::Result<Tensor> {
        super::network::Network::logits(self, features, rng)
    }
}

/// Optimiser and stopping settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a new best validation loss before stopping.
    pub patience: usize,
    /// Epochs without a new best validation loss before the learning rate is multiplied by
    /// `lr_decay_factor` (0 disables). Adam at 0.01 overshoots within a few epochs on a data
    /// set this small; halving on a plateau lets it settle instead of stopping at epoch 2.
    #[serde(default)]
    pub lr_decay_patience: usize,
    #[serde(default = "default_decay_factor")]
    pub lr_decay_factor: f64,
    pub seed: u64,
}

fn default_decay_factor() -> f64 {
    0.5
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            learning_rate: 0.01,
            weight_decay: 0.1,
            batch_size: 128,
            max_epochs: 120,
            patience: 15,
            lr_decay_patience: 3,
            lr_decay_factor: 0.5,
            seed: 42,
        }
    }
}

/// Features and labels of one split, row-major `[rows, width]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Examples {
    pub features: Vec<f32>,
    pub labels: Vec<bool>,
    pub width: usize,
}

impl Examples {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }
}

/// What one epoch achieved, reported to the caller's progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub train_auc: f64,
    pub validation_auc: f64,
    pub best_epoch: usize,
}

/// Result of a training run: the curve, and at which epoch the kept weights were.
#[derive(Debug, Clone)]
pub struct TrainingOutcome {
    pub curve: LearningCurve,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub best_validation_loss: f64,
    /// Learning rate of each epoch up to the best one.
    pub learning_rates: Vec<f64>,
}

/// Per-class weights of the loss: `bad_weight` for bad rows, 1 for good rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassWeights {
    pub bad_weight: f64,
}

impl ClassWeights {
    pub(crate) const UNIFORM: ClassWeights = ClassWeights { bad_weight: 1.0 };

    /// Weights that make both classes count equally (`good / bad` for the bad class).
    pub(crate) fn balanced(labels: &[bool]) -> Self {
        let bad = labels.iter().filter(|b| **b).count().max(1);
        let good = labels.len().saturating_sub(bad).max(1);
        Self {
            bad_weight: good as f64 / bad as f64,
        }
    }
}

/// Loss weights used to optimise, and to measure the train / validation curves. They differ
/// under SMOTE: the synthetic rows already balance the optimised data, while the curves are
/// measured on real, imbalanced rows and reweighted to the same balance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossWeights {
    pub optimisation: ClassWeights,
    pub evaluation: ClassWeights,
}

impl LossWeights {
    /// The same weights for both.
    pub fn same(weights: ClassWeights) -> Self {
        Self {
            optimisation: weights,
            evaluation: weights,
        }
    }
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("the {0} split is empty")]
    EmptySplit(&'static str),
    #[error("training diverged: loss became {0} at epoch {1}")]
    Diverged(f64, usize),
}

fn labels_tensor(labels: &[bool]) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = labels.iter().map(|b| if *b { 1.0 } else { 0.0 }).collect();
    Tensor::from_vec(values, labels.len(), &Device::Cpu)
}

fn weights_tensor(labels: &[bool], weights: ClassWeights) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = labels
        .iter()
        .map(|b| if *b { weights.bad_weight as f32 } else { 1.0 })
        .collect();
    Tensor::from_vec(values, labels.len(), &Device::Cpu)
}

/// Weighted binary cross-entropy on logits, in the stable form
/// `max(z, 0) - z·y + ln(1 + e^{-|z|})`, averaged with the row weights.
pub(crate) fn weighted_bce_with_logits(
    logits: &Tensor,
    targets: &Tensor,
    row_weights: &Tensor,
) -> candle_core::Result<Tensor> {
    let per_row = logits
        .relu()?
        .sub(&logits.mul(targets)?)?
        .add(&logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
    per_row
        .mul(row_weights)?
        .sum_all()?
        .div(&row_weights.sum_all()?)
}

/// Evaluation-mode probabilities and weighted loss of `model` on `examples`.
pub fn evaluate<M: Trainable>(
    model: &M,
    examples: &Examples,
    weights: ClassWeights,
) -> Result<(Vec<f32>, f64), TrainingError> {
    let probabilities =
        super::network::predict_in_chunks(&examples.features, examples.width, |x| {
            model.logits(x, None)
        })?;
    let mut total = 0.0;
    let mut weight_sum = 0.0;
    for (p, bad) in probabilities.iter().zip(&examples.labels) {
        let p = f64::from(*p).clamp(1e-7, 1.0 - 1e-7);
        let (w, loss) = if *bad {
            (weights.bad_weight, -p.ln())
        } else {
            (1.0, -(1.0 - p).ln())
        };
        total += w * loss;
        weight_sum += w;
    }
    Ok((probabilities, total / weight_sum.max(f64::MIN_POSITIVE)))
}

/// Trains `model` on `train` with early stopping on `validation`; leaves the best epoch's
/// weights in the model. `train_eval` is the split the train curve is measured on (the real
/// training rows, without SMOTE's synthetic ones), `observer` sees every epoch.
pub fn train<M: Trainable>(
    model: &M,
    config: &TrainingConfig,
    weights: LossWeights,
    train: &Examples,
    train_eval: &Examples,
    validation: &Examples,
    observer: &mut dyn FnMut(&EpochStats),
) -> Result<TrainingOutcome, TrainingError> {
    if train.rows() == 0 {
        return Err(TrainingError::EmptySplit("training"));
    }
    if validation.rows() == 0 {
        return Err(TrainingError::EmptySplit("validation"));
    }
    let vars = model.vars();
    let mut optimiser = adam_w(vars.clone(), config)?;
    let mut epoch_state = EpochState::new(config, train);
    let mut stopping = EarlyStopping::new(config);
    let mut curve = LearningCurve::default();
    let mut epochs_run = 0;

    for epoch in 1..=config.max_epochs {
        epochs_run = epoch;
        stopping.start_epoch();
        epoch_state.run_epoch(model, &mut optimiser, train, weights.optimisation)?;
        let measured = measure_epoch(model, epoch, weights.evaluation, train_eval, validation)?;
        let stats = EpochStats {
            best_epoch: stopping.keep_if_best(&vars, epoch, measured.validation_loss)?,
            ..measured
        };
        add_to_curve(&mut curve, &stats);
        observer(&stats);
        if stopping.is_out_of_patience(epoch, stats.best_epoch) {
            break;
        }
        stopping.decay_if_stale(epoch, stats.best_epoch, &mut optimiser);
    }

    let (best_validation_loss, best_epoch, learning_rates) = stopping.restore_best(&vars)?;
    curve.best_epoch = Some(best_epoch);
    Ok(TrainingOutcome {
        curve,
        best_epoch,
        epochs_run,
        best_validation_loss,
        learning_rates,
    })
}

/// AdamW over `vars` at the configured learning rate and weight decay.
fn adam_w(vars: Vec<Var>, config: &TrainingConfig) -> Result<AdamW, TrainingError> {
    Ok(AdamW::new(
        vars,
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?)
}

/// Losses and AUCs of the model after `epoch`, with `best_epoch` still `epoch` (the caller
/// knows the best one); a non-finite loss is an error.
fn measure_epoch<M: Trainable>(
    model: &M,
    epoch: usize,
    weights: ClassWeights,
    train_eval: &Examples,
    validation: &Examples,
) -> Result<EpochStats, TrainingError> {
    let (train_probabilities, train_loss) = evaluate(model, train_eval, weights)?;
    let (validation_probabilities, validation_loss) = evaluate(model, validation, weights)?;
    if !validation_loss.is_finite() || !train_loss.is_finite() {
        return Err(TrainingError::Diverged(validation_loss, epoch));
    }
    Ok(EpochStats {
        epoch,
        train_loss,
        validation_loss,
        train_auc: auc_or_nan(&train_probabilities, &train_eval.labels),
        validation_auc: auc_or_nan(&validation_probabilities, &validation.labels),
        best_epoch: epoch,
    })
}

/// NaN where the AUC is undefined (a split with one class), so the run goes on without it.
fn auc_or_nan(probabilities: &[f32], labels: &[bool]) -> f64 {
    roc_auc(probabilities, labels)
        .ok()
        .flatten()
        .unwrap_or(f64::NAN)
}

fn add_to_curve(curve: &mut LearningCurve, stats: &EpochStats) {
    curve.epoch.push(stats.epoch);
    curve.train_loss.push(stats.train_loss);
    curve.validation_loss.push(stats.validation_loss);
    curve.train_auc.push(stats.train_auc);
    curve.validation_auc.push(stats.validation_auc);
}

/// The best validation epoch so far with a copy of its weights, and the learning-rate schedule.
struct EarlyStopping {
    patience: usize,
    lr_decay_patience: usize,
    lr_decay_factor: f64,
    best: Option<(f64, usize, Vec<Tensor>)>,
    learning_rate: f64,
    last_decay_epoch: usize,
    learning_rates: Vec<f64>,
}

impl EarlyStopping {
    fn new(config: &TrainingConfig) -> Self {
        Self {
            patience: config.patience,
            lr_decay_patience: config.lr_decay_patience,
            lr_decay_factor: config.lr_decay_factor,
            best: None,
            learning_rate: config.learning_rate,
            last_decay_epoch: 0,
            learning_rates: Vec::new(),
        }
    }

    /// Records the learning rate the coming epoch trains at.
    fn start_epoch(&mut self) {
        self.learning_rates.push(self.learning_rate);
    }

    /// Copies the weights if `validation_loss` is a new best; returns the best epoch.
    fn keep_if_best(
        &mut self,
        vars: &[Var],
        epoch: usize,
        validation_loss: f64,
    ) -> Result<usize, TrainingError> {
        let improved = self
            .best
            .as_ref()
            .is_none_or(|(best_loss, _, _)| validation_loss < *best_loss);
        if improved {
            let snapshot = vars
                .iter()
                .map(|v| v.as_tensor().copy())
                .collect::<candle_core::Result<Vec<_>>>()?;
            self.best = Some((validation_loss, epoch, snapshot));
        }
        Ok(self.best.as_ref().map(|(_, e, _)| *e).unwrap_or(epoch))
    }

    fn is_out_of_patience(&self, epoch: usize, best_epoch: usize) -> bool {
        epoch - best_epoch >= self.patience
    }

    /// Multiplies the learning rate by the decay factor after `lr_decay_patience` epochs
    /// without a new best (counted from the best epoch or the last decay, whichever is later).
    fn decay_if_stale(&mut self, epoch: usize, best_epoch: usize, optimiser: &mut AdamW) {
        let stale = epoch - best_epoch.max(self.last_decay_epoch);
        if self.lr_decay_patience > 0 && stale >= self.lr_decay_patience {
            self.learning_rate *= self.lr_decay_factor;
            optimiser.set_learning_rate(self.learning_rate);
            self.last_decay_epoch = epoch;
        }
    }

    /// Puts the best epoch's weights back into `vars`; returns its validation loss, its epoch
    /// and the learning rates of the epochs up to it.
    fn restore_best(self, vars: &[Var]) -> Result<(f64, usize, Vec<f64>), TrainingError> {
        let Some((best_validation_loss, best_epoch, snapshot)) = self.best else {
            return Err(TrainingError::EmptySplit("training"));
        };
        for (var, saved) in vars.iter().zip(snapshot) {
            var.set(&saved)?;
        }
        let mut learning_rates = self.learning_rates;
        learning_rates.truncate(best_epoch);
        Ok((best_validation_loss, best_epoch, learning_rates))
    }
}

/// The seeded generator and reusable buffers of one training run's epochs.
struct EpochState {
    rng: ChaCha8Rng,
    order: Vec<usize>,
    batch_size: usize,
    batch_features: Vec<f32>,
    batch_labels: Vec<bool>,
}

impl EpochState {
    fn new(config: &TrainingConfig, train: &Examples) -> Self {
        let batch_size = config.batch_size.max(1);
        Self {
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0x5EED_0F7A_1A1A),
            order: (0..train.rows()).collect(),
            batch_size,
            batch_features: Vec::with_capacity(batch_size * train.width),
            batch_labels: Vec::with_capacity(batch_size),
        }
    }

    /// One pass over `train` in a fresh seeded order, one optimiser step per mini-batch.
    fn run_epoch<M: Trainable>(
        &mut self,
        model: &M,
        optimiser: &mut AdamW,
        train: &Examples,
        weights: ClassWeights,
    ) -> Result<(), TrainingError> {
        let width = train.width;
        self.order.shuffle(&mut self.rng);
        for chunk in self.order.chunks(self.batch_size) {
            self.batch_features.clear();
            self.batch_labels.clear();
            for &row in chunk {
                self.batch_features
                    .extend_from_slice(&train.features[row * width..(row + 1) * width]);
                self.batch_labels.push(train.labels[row]);
            }
            let x = Tensor::from_slice(&self.batch_features, (chunk.len(), width), &Device::Cpu)?;
            let logits = model.logits(&x, Some(&mut self.rng))?;
            let loss = weighted_bce_with_logits(
                &logits,
                &labels_tensor(&self.batch_labels)?,
                &weights_tensor(&self.batch_labels, weights)?,
            )?;
            optimiser.backward_step(&loss)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Network, NetworkConfig};
    use rand::Rng;

    /// A separable toy problem: bad when the first feature is positive.
    fn toy(rows: usize, seed: u64) -> Examples {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..rows {
            let row: Vec<f32> = (0..4).map(|_| rng.gen_range(-1.0..1.0)).collect();
            labels.push(row[0] > 0.0);
            features.extend(row);
        }
        Examples {
            features,
            labels,
            width: 4,
        }
    }

    fn small_network(seed: u64) -> Network {
        let config = NetworkConfig {
            token_width: 4,
            hidden_size: 8,
            lstm_layers: 2,
            head_hidden: 8,
            dropout: 0.1,
        };
        Network::new(config, 4, &[(0, 2), (2, 4)], seed).unwrap()
    }

    fn quick_config() -> TrainingConfig {
        TrainingConfig {
            max_epochs: 15,
            patience: 5,
            batch_size: 32,
            ..TrainingConfig::default()
        }
    }

    #[test]
    fn training_learns_a_separable_problem() {
        let (train_set, validation) = (toy(300, 1), toy(100, 2));
        let network = small_network(1);
        let outcome = train(
            &network,
            &quick_config(),
            LossWeights::same(ClassWeights::UNIFORM),
            &train_set,
            &train_set,
            &validation,
            &mut |_| {},
        )
        .unwrap();
        let last_auc = outcome.curve.validation_auc[outcome.best_epoch - 1];
        assert!(last_auc > 0.95, "validation AUC {last_auc}");
    }

    #[test]
    fn same_seed_gives_the_same_trained_weights() {
        let (train_set, validation) = (toy(200, 1), toy(50, 2));
        let run = || {
            let network = small_network(3);
            train(
                &network,
                &quick_config(),
                LossWeights::same(ClassWeights::UNIFORM),
                &train_set,
                &train_set,
                &validation,
                &mut |_| {},
            )
            .unwrap();
            network.to_weights().unwrap()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn kept_weights_are_those_of_the_best_validation_epoch() {
        let (train_set, validation) = (toy(200, 4), toy(50, 5));
        let network = small_network(5);
        let outcome = train(
            &network,
            &quick_config(),
            LossWeights::same(ClassWeights::UNIFORM),
            &train_set,
            &train_set,
            &validation,
            &mut |_| {},
        )
        .unwrap();
        let (_, loss) = evaluate(&network, &validation, ClassWeights::UNIFORM).unwrap();
        assert!((loss - outcome.best_validation_loss).abs() < 1e-6);
        let min = outcome
            .curve
            .validation_loss
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        assert!((min - outcome.best_validation_loss).abs() < 1e-12);
    }

    #[test]
    fn weighted_loss_matches_hand_computation() {
        let logits = Tensor::new(&[0.0f32, 2.0], &Device::Cpu).unwrap();
        let targets = Tensor::new(&[1.0f32, 0.0], &Device::Cpu).unwrap();
        let weights = Tensor::new(&[3.0f32, 1.0], &Device::Cpu).unwrap();
        let loss = weighted_bce_with_logits(&logits, &targets, &weights)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let expected = (3.0 * 2f32.ln() + (1.0 + 2f32.exp()).ln()) / 4.0;
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }

    #[test]
    fn balanced_class_weights_equalise_the_classes() {
        let labels = [true, false, false, false];
        assert_eq!(ClassWeights::balanced(&labels).bad_weight, 3.0);
    }
}
