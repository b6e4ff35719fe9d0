//! The stacked-LSTM network in candle, for training and for the trainer's own forward pass.
//!
//! How a tabular applicant becomes a sequence: each input attribute becomes one *token*.
//! Token t is a learned linear map of attribute t's columns only (an embedding row for a
//! categorical value, a learned direction scaled by the value for a numeric one) plus a learned
//! per-attribute bias that tells the LSTM which attribute it is reading. The LSTM reads the
//! tokens in code-book order, as a loan officer reads the form, and its last hidden state goes
//! to a dense head together with the raw features (a "wide and deep" skip), so the recurrent
//! part only has to learn what a linear model cannot.
//!
//! The whole token map is one block-sparse matrix multiply, which the ONNX export writes as a
//! single `MatMul`; the LSTM cells follow ONNX's gate order (i, o, f, c) so export is a copy.
//!
//! candle's CPU device cannot be seeded, so initial weights and dropout masks come from our own
//! ChaCha8 generator: the same seed gives the same model on every run.

use crate::calibration::PlattScaling;
use candle_core::{DType, Device, IndexOp, Tensor, Var};
use credit_core::model::weights::{DenseWeights, LstmLayerWeights, NetworkWeights};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Shape and regularisation of the network.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Width F of each attribute token.
    pub token_width: usize,
    /// Hidden size H of every LSTM layer.
    pub hidden_size: usize,
    /// Number of stacked LSTM layers (at least 2).
    pub lstm_layers: usize,
    /// Width K of the dense head's hidden layer.
    pub head_hidden: usize,
    /// Dropout probability on tokens, between LSTM layers and in the head.
    pub dropout: f32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            token_width: 8,
            hidden_size: 16,
            lstm_layers: 2,
            head_hidden: 16,
            dropout: 0.3,
        }
    }
}

/// One LSTM layer's trainable variables (ONNX layout).
struct LstmVars {
    hidden: usize,
    w: Var,
    r: Var,
    wb: Var,
    rb: Var,
}

/// The network with trainable candle variables.
pub struct Network {
    config: NetworkConfig,
    input_width: usize,
    tokens: usize,
    token_mask: Tensor,
    token_weight: Var,
    token_bias: Var,
    lstm: Vec<LstmVars>,
    head_hidden_weight: Var,
    head_hidden_bias: Var,
    head_output_weight: Var,
    head_output_bias: Var,
}

fn uniform(rng: &mut ChaCha8Rng, len: usize, bound: f32) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-bound..=bound)).collect()
}

fn var(data: Vec<f32>, shape: &[usize]) -> candle_core::Result<Var> {
    Var::from_tensor(&Tensor::from_vec(data, shape, &Device::Cpu)?)
}

fn to_vec(var: &Var) -> candle_core::Result<Vec<f32>> {
    var.as_tensor().flatten_all()?.to_vec1::<f32>()
}

/// Multiplies by a fresh inverted-dropout mask drawn from `rng`; identity when `rng` is `None`
/// (evaluation) or `p` is 0.
fn dropout(tensor: &Tensor, p: f32, rng: Option<&mut ChaCha8Rng>) -> candle_core::Result<Tensor> {
    match rng {
        Some(rng) if p > 0.0 => {
            let keep = 1.0 / (1.0 - p);
            let mask: Vec<f32> = (0..tensor.elem_count())
                .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
                .collect();
            tensor.mul(&Tensor::from_vec(mask, tensor.shape(), tensor.device())?)
        }
        _ => Ok(tensor.clone()),
    }
}

/// Numerically stable logistic function; candle's `ops::sigmoid` carries its own gradient.
fn sigmoid(tensor: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::sigmoid(tensor)
}

impl Network {
    /// A freshly initialised network for features of `input_width` columns whose attributes
    /// occupy `blocks` (`[start, end)` column ranges, one token each).
    pub fn new(
        config: NetworkConfig,
        input_width: usize,
        blocks: &[(usize, usize)],
        seed: u64,
    ) -> candle_core::Result<Self> {
        use rand::SeedableRng;
        if config.lstm_layers < 1 || blocks.is_empty() {
            candle_core::bail!("the network needs at least one LSTM layer and one token");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tokens = blocks.len();
        let f = config.token_width;
        let h = config.hidden_size;
        let k = config.head_hidden;

        let mut mask = vec![0f32; input_width * tokens * f];
        let mut token_weight = vec![0f32; input_width * tokens * f];
        for (t, &(start, end)) in blocks.iter().enumerate() {
            if start >= end || end > input_width {
                candle_core::bail!(
                    "attribute block {t} ({start}..{end}) is outside 0..{input_width}"
                );
            }
            let bound = 1.0 / ((end - start) as f32).sqrt();
            for row in start..end {
                for col in t * f..(t + 1) * f {
                    mask[row * tokens * f + col] = 1.0;
                    token_weight[row * tokens * f + col] = rng.gen_range(-bound..=bound);
                }
            }
        }
        let token_bias = uniform(&mut rng, tokens * f, 0.1);

        let mut lstm = Vec::with_capacity(config.lstm_layers);
        for layer in 0..config.lstm_layers {
            let input = if layer == 0 { f } else { h };
            let bound = 1.0 / (h as f32).sqrt();
            let mut wb = vec![0f32; 4 * h];
            // Forget-gate bias 1 (gate block 2 in i, o, f, c order): the cell starts out
            // remembering, the usual remedy for vanishing memory early in training.
            wb[2 * h..3 * h].fill(1.0);
            lstm.push(LstmVars {
                hidden: h,
                w: var(uniform(&mut rng, 4 * h * input, bound), &[4 * h, input])?,
                r: var(uniform(&mut rng, 4 * h * h, bound), &[4 * h, h])?,
                wb: var(wb, &[4 * h])?,
                rb: var(vec![0f32; 4 * h], &[4 * h])?,
            });
        }
        let head_in = h + input_width;
        let head_bound = 1.0 / (head_in as f32).sqrt();
        let out_bound = 1.0 / (k as f32).sqrt();
        Ok(Self {
            config,
            input_width,
            tokens,
            token_mask: Tensor::from_vec(mask, (input_width, tokens * f), &Device::Cpu)?,
            token_weight: var(token_weight, &[input_width, tokens * f])?,
            token_bias: var(token_bias, &[tokens * f])?,
            lstm,
            head_hidden_weight: var(uniform(&mut rng, k * head_in, head_bound), &[k, head_in])?,
            head_hidden_bias: var(vec![0f32; k], &[k])?,
            head_output_weight: var(uniform(&mut rng, k, out_bound), &[1, k])?,
            head_output_bias: var(vec![0f32; 1], &[1])?,
        })
    }

    /// Rebuilds a network from exported weights (for the parity check and for tests).
    #[cfg(test)]
    pub(crate) fn from_weights(
        weights: &NetworkWeights,
        dropout: f32,
    ) -> candle_core::Result<Self> {
        let d = weights.input_width;
        let tf = weights.tokens * weights.token_width;
        let hidden = weights.lstm.last().map(|l| l.hidden_size).unwrap_or(0);
        let mask: Vec<f32> = weights
            .token_weight
            .iter()
            .map(|w| if *w != 0.0 { 1.0 } else { 0.0 })
            .collect();
        let lstm = weights
            .lstm
            .iter()
            .map(|layer| {
                let h = layer.hidden_size;
                Ok(LstmVars {
                    hidden: h,
                    w: var(layer.w.clone(), &[4 * h, layer.input_size])?,
                    r: var(layer.r.clone(), &[4 * h, h])?,
                    wb: var(layer.wb.clone(), &[4 * h])?,
                    rb: var(layer.rb.clone(), &[4 * h])?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let k = weights.head_hidden.out_features;
        Ok(Self {
            config: NetworkConfig {
                token_width: weights.token_width,
                hidden_size: hidden,
                lstm_layers: weights.lstm.len(),
                head_hidden: k,
                dropout,
            },
            input_width: d,
            tokens: weights.tokens,
            token_mask: Tensor::from_vec(mask, (d, tf), &Device::Cpu)?,
            token_weight: var(weights.token_weight.clone(), &[d, tf])?,
            token_bias: var(weights.token_bias.clone(), &[tf])?,
            lstm,
            head_hidden_weight: var(
                weights.head_hidden.weight.clone(),
                &[k, weights.head_hidden.in_features],
            )?,
            head_hidden_bias: var(weights.head_hidden.bias.clone(), &[k])?,
            head_output_weight: var(weights.head_output.weight.clone(), &[1, k])?,
            head_output_bias: var(weights.head_output.bias.clone(), &[1])?,
        })
    }

    pub fn config(&self) -> NetworkConfig {
        self.config
    }

    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Every trainable variable, for the optimiser.
    pub(crate) fn vars(&self) -> Vec<Var> {
        let mut vars = vec![self.token_weight.clone(), self.token_bias.clone()];
        for layer in &self.lstm {
            vars.extend([
                layer.w.clone(),
                layer.r.clone(),
                layer.wb.clone(),
                layer.rb.clone(),
            ]);
        }
        vars.extend([
            self.head_hidden_weight.clone(),
            self.head_hidden_bias.clone(),
            self.head_output_weight.clone(),
            self.head_output_bias.clone(),
        ]);
        vars
    }

    /// Logits (before the sigmoid) for a `[N, D]` batch; dropout is applied when `rng` is given.
    pub(crate) fn logits(
        &self,
        features: &Tensor,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> candle_core::Result<Tensor> {
        let n = features.dim(0)?;
        let t_count = self.tokens;
        let f = self.config.token_width;
        let p = self.config.dropout;
        let token_weight = self.token_weight.as_tensor().mul(&self.token_mask)?;
        let tokens = features
            .matmul(&token_weight)?
            .broadcast_add(self.token_bias.as_tensor())?;
        let tokens = dropout(&tokens, p, rng.as_deref_mut())?;
        let mut sequence = tokens.reshape((n, t_count, f))?;
        let mut last_hidden = None;
        for (index, layer) in self.lstm.iter().enumerate() {
            let h_size = layer.hidden;
            let input_size = sequence.dim(2)?;
            let bias = layer.wb.as_tensor().add(layer.rb.as_tensor())?;
            // The input projection of every step at once: one big matmul instead of T small ones.
            let projected = sequence
                .reshape((n * t_count, input_size))?
                .matmul(&layer.w.as_tensor().t()?)?
                .broadcast_add(&bias)?
                .reshape((n, t_count, 4 * h_size))?;
            let recurrent = layer.r.as_tensor().t()?;
            let mut h = Tensor::zeros((n, h_size), DType::F32, &Device::Cpu)?;
            let mut c = Tensor::zeros((n, h_size), DType::F32, &Device::Cpu)?;
            let mut outputs = Vec::with_capacity(t_count);
            for t in 0..t_count {
                let gates = projected.i((.., t, ..))?.add(&h.matmul(&recurrent)?)?;
                let input_gate = sigmoid(&gates.narrow(1, 0, h_size)?)?;
                let output_gate = sigmoid(&gates.narrow(1, h_size, h_size)?)?;
                let forget_gate = sigmoid(&gates.narrow(1, 2 * h_size, h_size)?)?;
                let candidate = gates.narrow(1, 3 * h_size, h_size)?.tanh()?;
                c = forget_gate.mul(&c)?.add(&input_gate.mul(&candidate)?)?;
                h = output_gate.mul(&c.tanh()?)?;
                if index + 1 < self.lstm.len() {
                    outputs.push(h.clone());
                }
            }
            if index + 1 < self.lstm.len() {
                sequence = dropout(&Tensor::stack(&outputs, 1)?, p, rng.as_deref_mut())?;
            }
            last_hidden = Some(h);
        }
        let last_hidden = match last_hidden {
            Some(h) => h,
            None => candle_core::bail!("the network has no LSTM layer"),
        };
        let head_input = Tensor::cat(&[&last_hidden, features], 1)?;
        let hidden = head_input
            .matmul(&self.head_hidden_weight.as_tensor().t()?)?
            .broadcast_add(self.head_hidden_bias.as_tensor())?
            .relu()?;
        let hidden = dropout(&hidden, p, rng)?;
        hidden
            .matmul(&self.head_output_weight.as_tensor().t()?)?
            .broadcast_add(self.head_output_bias.as_tensor())?
            .squeeze(1)
    }

    /// Probabilities of `bad` for row-major `[rows, D]` features, in evaluation mode.
    pub fn predict(&self, features: &[f32]) -> candle_core::Result<Vec<f32>> {
        predict_in_chunks(features, self.input_width, |x| self.logits(x, None))
    }

    /// Logits (before the sigmoid) for row-major `[rows, D]` features, in evaluation mode.
    pub(crate) fn predict_logits(&self, features: &[f32]) -> candle_core::Result<Vec<f32>> {
        logits_in_chunks(features, self.input_width, |x| self.logits(x, None))
    }

    /// Folds `platt` into the output layer (see [`fold_platt`]): from then on the network, and
    /// its ONNX export, output calibrated probabilities.
    pub(crate) fn calibrate(&self, platt: PlattScaling) -> candle_core::Result<()> {
        fold_platt(&self.head_output_weight, &self.head_output_bias, platt)
    }

    /// The trained weights, in the framework-free layout the ONNX exporter writes.
    pub fn to_weights(&self) -> candle_core::Result<NetworkWeights> {
        let masked = self.token_weight.as_tensor().mul(&self.token_mask)?;
        let lstm = self
            .lstm
            .iter()
            .map(|layer| {
                Ok(LstmLayerWeights {
                    input_size: layer.w.as_tensor().dim(1)?,
                    hidden_size: layer.hidden,
                    w: to_vec(&layer.w)?,
                    r: to_vec(&layer.r)?,
                    wb: to_vec(&layer.wb)?,
                    rb: to_vec(&layer.rb)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let k = self.config.head_hidden;
        Ok(NetworkWeights {
            input_width: self.input_width,
            tokens: self.tokens,
            token_width: self.config.token_width,
            token_weight: masked.flatten_all()?.to_vec1::<f32>()?,
            token_bias: to_vec(&self.token_bias)?,
            lstm,
            head_hidden: DenseWeights {
                in_features: self.head_hidden_weight.as_tensor().dim(1)?,
                out_features: k,
                weight: to_vec(&self.head_hidden_weight)?,
                bias: to_vec(&self.head_hidden_bias)?,
            },
            head_output: DenseWeights {
                in_features: k,
                out_features: 1,
                weight: to_vec(&self.head_output_weight)?,
                bias: to_vec(&self.head_output_bias)?,
            },
        })
    }
}

/// Runs `logits` over `features` in chunks and applies the sigmoid: evaluation of a few
/// thousand rows in one graph would build needlessly large intermediate tensors.
pub(crate) fn predict_in_chunks(
    features: &[f32],
    width: usize,
    logits: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Vec<f32>> {
    map_in_chunks(features, width, |x| sigmoid(&logits(x)?))
}

/// Runs `logits` over `features` in chunks, without the sigmoid (what calibration is fitted on).
pub(crate) fn logits_in_chunks(
    features: &[f32],
    width: usize,
    logits: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Vec<f32>> {
    map_in_chunks(features, width, logits)
}

/// Folds Platt scaling into an output layer: `a · (w · x + bias) + b` is
/// `(a · w) · x + (a · bias + b)`, so the layer itself outputs the calibrated logit.
pub(crate) fn fold_platt(weight: &Var, bias: &Var, platt: PlattScaling) -> candle_core::Result<()> {
    weight.set(&weight.as_tensor().affine(platt.a, 0.0)?)?;
    bias.set(&bias.as_tensor().affine(platt.a, platt.b)?)
}

fn map_in_chunks(
    features: &[f32],
    width: usize,
    per_chunk: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Vec<f32>> {
    const CHUNK: usize = 1024;
    if width == 0 || !features.len().is_multiple_of(width) {
        candle_core::bail!(
            "feature buffer of {} values is not a multiple of the width {width}",
            features.len()
        );
    }
    let mut probabilities = Vec::with_capacity(features.len() / width);
    for chunk in features.chunks(CHUNK * width) {
        let x = Tensor::from_slice(chunk, (chunk.len() / width, width), &Device::Cpu)?;
        probabilities.extend(per_chunk(&x)?.to_vec1::<f32>()?);
    }
    Ok(probabilities)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn blocks() -> Vec<(usize, usize)> {
        vec![(0, 3), (3, 4), (4, 7), (7, 8)]
    }

    fn features(rows: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * 8).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    #[test]
    fn same_seed_gives_identical_weights() {
        let config = NetworkConfig::default();
        let a = Network::new(config, 8, &blocks(), 7)
            .unwrap()
            .to_weights()
            .unwrap();
        let b = Network::new(config, 8, &blocks(), 7)
            .unwrap()
            .to_weights()
            .unwrap();
        let c = Network::new(config, 8, &blocks(), 8)
            .unwrap()
            .to_weights()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn token_weight_is_zero_outside_each_attribute_block() {
        let config = NetworkConfig::default();
        let weights = Network::new(config, 8, &blocks(), 1)
            .unwrap()
            .to_weights()
            .unwrap();
        let tf = 4 * config.token_width;
        // Column 0 belongs to token 0 only.
        for col in config.token_width..tf {
            assert_eq!(weights.token_weight[col], 0.0);
        }
        assert!(weights.token_weight[..config.token_width]
            .iter()
            .any(|w| *w != 0.0));
    }

    #[test]
    fn candle_forward_matches_plain_rust_reference() {
        let config = NetworkConfig::default();
        let network = Network::new(config, 8, &blocks(), 3).unwrap();
        let x = features(50, 9);
        let candle = network.predict(&x).unwrap();
        let reference = network.to_weights().unwrap().forward(&x, 50).unwrap();
        let max_diff = candle
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max_diff < 1e-5, "max diff {max_diff}");
    }

    #[test]
    fn from_weights_reproduces_predictions() {
        let network = Network::new(NetworkConfig::default(), 8, &blocks(), 4).unwrap();
        let rebuilt = Network::from_weights(&network.to_weights().unwrap(), 0.0).unwrap();
        let x = features(20, 5);
        assert_eq!(network.predict(&x).unwrap(), rebuilt.predict(&x).unwrap());
    }

    #[test]
    fn dropout_changes_training_output_but_not_evaluation() {
        let network = Network::new(NetworkConfig::default(), 8, &blocks(), 4).unwrap();
        let x = Tensor::from_vec(features(10, 5), (10, 8), &Device::Cpu).unwrap();
        let eval_a = network.logits(&x, None).unwrap().to_vec1::<f32>().unwrap();
        let eval_b = network.logits(&x, None).unwrap().to_vec1::<f32>().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let train = network
            .logits(&x, Some(&mut rng))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(eval_a, eval_b);
        assert_ne!(eval_a, train);
    }

    #[test]
    fn platt_scaling_folded_into_the_output_layer_gives_the_scaled_probabilities() {
        let network = Network::new(NetworkConfig::default(), 8, &blocks(), 6).unwrap();
        let x = features(40, 2);
        let platt = PlattScaling { a: 0.7, b: -0.9 };
        let scaled_after: Vec<f32> = network
            .predict_logits(&x)
            .unwrap()
            .into_iter()
            .map(|logit| platt.probability(logit))
            .collect();
        network.calibrate(platt).unwrap();
        let folded = network.predict(&x).unwrap();
        let reference = network.to_weights().unwrap().forward(&x, 40).unwrap();
        for ((after, folded), reference) in scaled_after.iter().zip(&folded).zip(&reference) {
            assert!((after - folded).abs() < 1e-6, "{after} vs {folded}");
            assert!((folded - reference).abs() < 1e-5, "{folded} vs {reference}");
        }
        assert!(scaled_after.iter().any(|p| (p - 0.5).abs() > 0.01));
    }

    #[test]
    fn blocks_outside_the_input_are_rejected() {
        assert!(Network::new(NetworkConfig::default(), 4, &blocks(), 1).is_err());
    }
}
