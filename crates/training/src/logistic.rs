//! Logistic regression on the same preprocessed features: the baseline the LSTM must beat.
//!
//! The original study's own next step was "other models"; a linear model is the classic
//! reference on this data set, and if the LSTM does not beat it the report should say so.
//! It is trained by the same loop (Adam, weight decay, early stopping) for a fair comparison.

use super::calibration::PlattScaling;
use super::training::Trainable;
use candle_core::{Device, Tensor, Var};
use rand_chacha::ChaCha8Rng;

/// `p(bad) = sigmoid(x · w + b)`.
pub(crate) struct LogisticRegression {
    weight: Var,
    bias: Var,
    width: usize,
}

impl LogisticRegression {
    /// Zero-initialised: the loss is convex, so the start does not matter and zero is
    /// reproducible without a seed.
    pub(crate) fn new(width: usize) -> candle_core::Result<Self> {
        Ok(Self {
            weight: Var::from_tensor(&Tensor::zeros(
                (width, 1),
                candle_core::DType::F32,
                &Device::Cpu,
            )?)?,
            bias: Var::from_tensor(&Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?)?,
            width,
        })
    }

    /// Probabilities of `bad` for row-major features.
    pub(crate) fn predict(&self, features: &[f32]) -> candle_core::Result<Vec<f32>> {
        super::network::predict_in_chunks(features, self.width, |x| self.logits(x, None))
    }

    /// Logits (before the sigmoid) for row-major features.
    pub(crate) fn predict_logits(&self, features: &[f32]) -> candle_core::Result<Vec<f32>> {
        super::network::logits_in_chunks(features, self.width, |x| self.logits(x, None))
    }

    /// Folds `platt` into the weights, so [`Self::predict`] gives calibrated probabilities.
    pub(crate) fn calibrate(&self, platt: PlattScaling) -> candle_core::Result<()> {
        super::network::fold_platt(&self.weight, &self.bias, platt)
    }

    #[cfg(test)]
    /// The learned coefficients, one per feature column.
    pub(crate) fn coefficients(&self) -> candle_core::Result<Vec<f32>> {
        self.weight.as_tensor().flatten_all()?.to_vec1::<f32>()
    }
}

impl Trainable for LogisticRegression {
    fn vars(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }

    fn logits(
        &self,
        features: &Tensor,
        _rng: Option<&mut ChaCha8Rng>,
    ) -> candle_core::Result<Tensor> {
        features
            .matmul(self.weight.as_tensor())?
            .squeeze(1)?
            .broadcast_add(self.bias.as_tensor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::{train, ClassWeights, Examples, LossWeights, TrainingConfig};

    #[test]
    fn learns_the_sign_of_a_linear_rule() {
        // bad when x0 - x1 > 0
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let a = ((i * 37) % 100) as f32 / 50.0 - 1.0;
            let b = ((i * 61) % 100) as f32 / 50.0 - 1.0;
            features.extend([a, b]);
            labels.push(a - b > 0.0);
        }
        let examples = Examples {
            features,
            labels,
            width: 2,
        };
        let model = LogisticRegression::new(2).unwrap();
        let config = TrainingConfig {
            // Adam at 0.01 moves each weight by about 0.01 per step: 200 epochs of two
            // mini-batches take the coefficients well past ±1.
            max_epochs: 200,
            patience: 200,
            weight_decay: 0.0,
            ..TrainingConfig::default()
        };
        train(
            &model,
            &config,
            LossWeights::same(ClassWeights::UNIFORM),
            &examples,
            &examples,
            &examples,
            &mut |_| {},
        )
        .unwrap();
        let coefficients = model.coefficients().unwrap();
        assert!(
            coefficients[0] > 0.5 && coefficients[1] < -0.5,
            "{coefficients:?}"
        );
        let p = model.predict(&[1.0, -1.0, -1.0, 1.0]).unwrap();
        assert!(p[0] > 0.9 && p[1] < 0.1, "{p:?}");
    }
}
