//! A plain-Rust forward pass of the scoring network, plus shape validation and random weights.
//!
//! Why it exists: the network is trained with candle and served by ONNX Runtime, two
//! independent implementations of the same maths. This module is a third, deliberately naive
//! one (scalar loops, no framework) that follows `weights.rs` and the ONNX `LSTM` operator
//! literally, so the exporter can be checked against it ("does ONNX Runtime compute what we
//! documented?") and a trained model can be spot-checked without either framework.
//!
//! It is written for clarity, not speed: one row at a time, `f32` arithmetic, `exp`/`tanh` from
//! `std`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::weights::{DenseWeights, LstmLayerWeights, NetworkWeights};

/// A size or vector length that does not match the network's declared dimensions.
///
/// Field names are spelled as in [`NetworkWeights`] (e.g. `lstm[1].r`) so that a message points
/// straight at the offending tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A declared dimension is zero; every dimension of this network must be at least 1.
    #[error("{name} is 0, but must be at least 1")]
    ZeroDimension { name: String },
    /// The network has no recurrent layer, so there is no hidden state for the head.
    #[error("the network has no LSTM layers; at least one is required")]
    NoLstmLayers,
    /// A declared dimension disagrees with the dimension it must chain to.
    #[error("{name} is {actual}, but must be {expected} ({reason})")]
    DimensionMismatch {
        name: String,
        expected: usize,
        actual: usize,
        reason: &'static str,
    },
    /// A weight vector's length disagrees with its declared shape.
    #[error("{name} has {actual} values, but its shape {shape} needs {expected}")]
    LengthMismatch {
        name: String,
        shape: String,
        expected: usize,
        actual: usize,
    },
    /// The feature slice is not `batch × input_width` values.
    #[error(
        "features has {actual} values, but batch {batch} × input width {input_width} needs {}",
        .batch.saturating_mul(*.input_width)
    )]
    FeatureLength {
        batch: usize,
        input_width: usize,
        actual: usize,
    },
    /// A declared shape is so large that its element count does not fit in `usize`.
    #[error("the element count of {name} overflows usize")]
    Overflow { name: String },
}

/// Element count of a shape, or [`ShapeError::Overflow`] (weights may come from untrusted
/// JSON, so absurd sizes must not wrap around and pass a length check by accident).
fn element_count(name: &str, dims: &[usize]) -> Result<usize, ShapeError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| ShapeError::Overflow {
            name: name.to_owned(),
        })
}

fn check_len(name: &str, dims: &[usize], actual: usize) -> Result<(), ShapeError> {
    let expected = element_count(name, dims)?;
    if expected == actual {
        Ok(())
    } else {
        Err(ShapeError::LengthMismatch {
            name: name.to_owned(),
            shape: format!("{dims:?}"),
            expected,
            actual,
        })
    }
}

fn check_positive(name: &str, value: usize) -> Result<(), ShapeError> {
    if value == 0 {
        Err(ShapeError::ZeroDimension {
            name: name.to_owned(),
        })
    } else {
        Ok(())
    }
}

fn check_dim(
    name: &str,
    actual: usize,
    expected: usize,
    reason: &'static str,
) -> Result<(), ShapeError> {
    if actual == expected {
        Ok(())
    } else {
        Err(ShapeError::DimensionMismatch {
            name: name.to_owned(),
            expected,
            actual,
            reason,
        })
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl NetworkWeights {
    /// Hidden size H of the last LSTM layer, i.e. the width of the state the head reads
    /// (0 when there are no layers, which [`validate`](Self::validate) rejects).
    pub fn hidden_size(&self) -> usize {
        self.lstm.last().map_or(0, |layer| layer.hidden_size)
    }

    /// Checks every declared size and every vector length against the network in `weights.rs`.
    ///
    /// Why: weights are deserialised from files and produced by a trainer; a wrong length would
    /// otherwise surface as an index panic in [`forward`](Self::forward) or as a model ONNX
    /// Runtime rejects with a far less specific message.
    pub fn validate(&self) -> Result<(), ShapeError> {
        let d = self.input_width;
        let t = self.tokens;
        let f = self.token_width;
        check_positive("input_width", d)?;
        check_positive("tokens", t)?;
        check_positive("token_width", f)?;
        let tf = element_count("token_bias", &[t, f])?;
        check_len("token_weight", &[d, tf], self.token_weight.len())?;
        check_len("token_bias", &[tf], self.token_bias.len())?;

        if self.lstm.is_empty() {
            return Err(ShapeError::NoLstmLayers);
        }
        let mut expected_input = f;
        for (index, layer) in self.lstm.iter().enumerate() {
            let reason = if index == 0 {
                "the first LSTM layer reads tokens of width token_width"
            } else {
                "an LSTM layer reads the previous layer's hidden state"
            };
            layer.validate(index, expected_input, reason)?;
            expected_input = layer.hidden_size;
        }
        let h = expected_input;

        let head_in = h.checked_add(d).ok_or_else(|| ShapeError::Overflow {
            name: "head_hidden.in_features".to_owned(),
        })?;
        check_dim(
            "head_hidden.in_features",
            self.head_hidden.in_features,
            head_in,
            "the head reads [last hidden state, features], H + D",
        )?;
        self.head_hidden.validate("head_hidden")?;
        check_dim(
            "head_output.in_features",
            self.head_output.in_features,
            self.head_hidden.out_features,
            "the output layer reads head_hidden's outputs",
        )?;
        check_dim(
            "head_output.out_features",
            self.head_output.out_features,
            1,
            "the network outputs one probability per row",
        )?;
        self.head_output.validate("head_output")
    }

    /// Probability of `bad` for each of `batch` rows of `features` (row-major `[batch, D]`).
    ///
    /// Follows `weights.rs` step by step: block-sparse token projection, the ONNX `LSTM`
    /// recurrence per layer (gate order i, o, f, c; zero initial state; no peepholes, no clip),
    /// the last layer's final hidden state concatenated with the raw features, dense + ReLU,
    /// dense + sigmoid.
    pub fn forward(&self, features: &[f32], batch: usize) -> Result<Vec<f32>, ShapeError> {
        self.validate()?;
        let d = self.input_width;
        if batch.checked_mul(d) != Some(features.len()) {
            return Err(ShapeError::FeatureLength {
                batch,
                input_width: d,
                actual: features.len(),
            });
        }

        let t_count = self.tokens;
        let tf = self.token_bias.len();
        let k_count = self.head_hidden.out_features;
        let max_hidden = self.lstm.iter().map(|l| l.hidden_size).max().unwrap_or(0);

        // Scratch buffers reused across rows.
        let mut sequence: Vec<f32> = Vec::with_capacity(t_count * max_hidden.max(self.token_width));
        let mut next_sequence: Vec<f32> = Vec::with_capacity(t_count * max_hidden);
        let mut gates = vec![0.0f32; 4 * max_hidden];
        let mut h = vec![0.0f32; max_hidden];
        let mut c = vec![0.0f32; max_hidden];
        let mut head = vec![0.0f32; k_count];
        let mut out = Vec::with_capacity(batch);

        for row in features.chunks_exact(d) {
            // Token projection: [D] · [D, T*F] + [T*F], laid out as T tokens of width F.
            sequence.clear();
            sequence.extend_from_slice(&self.token_bias);
            for (x, weights) in row.iter().zip(self.token_weight.chunks_exact(tf)) {
                for (acc, w) in sequence.iter_mut().zip(weights) {
                    *acc += x * w;
                }
            }

            let mut width = self.token_width;
            for layer in &self.lstm {
                let hs = layer.hidden_size;
                let (h, c, gates) = (&mut h[..hs], &mut c[..hs], &mut gates[..4 * hs]);
                h.fill(0.0);
                c.fill(0.0);
                next_sequence.clear();
                for x in sequence.chunks_exact(width) {
                    // All four gate pre-activations from the previous h before h is updated.
                    for (g, gate) in gates.iter_mut().enumerate() {
                        *gate = dot(&layer.w[g * width..(g + 1) * width], x)
                            + dot(&layer.r[g * hs..(g + 1) * hs], h)
                            + layer.wb[g]
                            + layer.rb[g];
                    }
                    for j in 0..hs {
                        let input = sigmoid(gates[j]);
                        let output = sigmoid(gates[hs + j]);
                        let forget = sigmoid(gates[2 * hs + j]);
                        let candidate = gates[3 * hs + j].tanh();
                        c[j] = forget * c[j] + input * candidate;
                        h[j] = output * c[j].tanh();
                    }
                    next_sequence.extend_from_slice(h);
                }
                std::mem::swap(&mut sequence, &mut next_sequence);
                width = hs;
            }
            // The last layer's hidden state after the last token.
            let last_h = &sequence[sequence.len() - width..];

            let hidden_layer = &self.head_hidden;
            for (k, unit) in head.iter_mut().enumerate() {
                let w = &hidden_layer.weight[k * hidden_layer.in_features..]
                    [..hidden_layer.in_features];
                let z = dot(&w[..width], last_h) + dot(&w[width..], row) + hidden_layer.bias[k];
                *unit = z.max(0.0);
            }
            let z = dot(&self.head_output.weight, &head) + self.head_output.bias[0];
            out.push(sigmoid(z));
        }
        Ok(out)
    }

    /// Random weights with the network's structure, reproducible from `seed` (ChaCha8).
    ///
    /// `attribute_blocks[t]` is the half-open column range `[start, end)` of the preprocessed
    /// features that belong to attribute (token) `t`; `token_weight` is zero outside those
    /// blocks so each token only sees its own attribute, as the trained network does. Values are
    /// uniform in ±1/√fan_in (PyTorch's default for linear and LSTM layers), which keeps
    /// activations in the non-saturated range where numerical comparisons are meaningful.
    ///
    /// # Panics
    /// If a dimension is zero, `attribute_blocks.len() != tokens`, or a block is empty or
    /// reaches past `input_width`: these are programming errors in the caller, not data errors.
    // The argument list mirrors the network's hyper-parameters one to one; a builder struct
    // would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn random(
        input_width: usize,
        tokens: usize,
        token_width: usize,
        hidden: usize,
        layers: usize,
        head_hidden: usize,
        attribute_blocks: &[(usize, usize)],
        seed: u64,
    ) -> NetworkWeights {
        for (name, value) in [
            ("input_width", input_width),
            ("tokens", tokens),
            ("token_width", token_width),
            ("hidden", hidden),
            ("layers", layers),
            ("head_hidden", head_hidden),
        ] {
            assert!(
                value > 0,
                "NetworkWeights::random: {name} must be at least 1"
            );
        }
        assert_eq!(
            attribute_blocks.len(),
            tokens,
            "NetworkWeights::random: one attribute block per token is required"
        );
        for (t, &(start, end)) in attribute_blocks.iter().enumerate() {
            assert!(
                start < end && end <= input_width,
                "NetworkWeights::random: attribute block {t} = [{start}, {end}) is empty or \
                 outside 0..{input_width}"
            );
        }

        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = |n: usize, fan_in: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| rng.gen_range(-bound..bound)).collect()
        };

        let tf = tokens * token_width;
        let mut token_weight = vec![0.0f32; input_width * tf];
        let mut token_bias = Vec::with_capacity(tf);
        for (t, &(start, end)) in attribute_blocks.iter().enumerate() {
            let fan_in = end - start;
            for row in start..end {
                let values = uniform(token_width, fan_in);
                let offset = row * tf + t * token_width;
                token_weight[offset..offset + token_width].copy_from_slice(&values);
            }
            token_bias.extend(uniform(token_width, fan_in));
        }

        let mut lstm = Vec::with_capacity(layers);
        for layer in 0..layers {
            let input_size = if layer == 0 { token_width } else { hidden };
            lstm.push(LstmLayerWeights {
                input_size,
                hidden_size: hidden,
                w: uniform(4 * hidden * input_size, hidden),
                r: uniform(4 * hidden * hidden, hidden),
                wb: uniform(4 * hidden, hidden),
                rb: uniform(4 * hidden, hidden),
            });
        }

        let head_in = hidden + input_width;
        let head_hidden_layer = DenseWeights {
            in_features: head_in,
            out_features: head_hidden,
            weight: uniform(head_hidden * head_in, head_in),
            bias: uniform(head_hidden, head_in),
        };
        let head_output = DenseWeights {
            in_features: head_hidden,
            out_features: 1,
            weight: uniform(head_hidden, head_hidden),
            bias: uniform(1, head_hidden),
        };

        NetworkWeights {
            input_width,
            tokens,
            token_width,
            token_weight,
            token_bias,
            lstm,
            head_hidden: head_hidden_layer,
            head_output,
        }
    }
}

impl LstmLayerWeights {
    fn validate(
        &self,
        index: usize,
        expected_input: usize,
        reason: &'static str,
    ) -> Result<(), ShapeError> {
        let name = |field: &str| format!("lstm[{index}].{field}");
        let (i, h) = (self.input_size, self.hidden_size);
        check_dim(&name("input_size"), i, expected_input, reason)?;
        check_positive(&name("hidden_size"), h)?;
        let gates = element_count(&name("wb"), &[4, h])?;
        check_len(&name("w"), &[gates, i], self.w.len())?;
        check_len(&name("r"), &[gates, h], self.r.len())?;
        check_len(&name("wb"), &[gates], self.wb.len())?;
        check_len(&name("rb"), &[gates], self.rb.len())
    }
}

impl DenseWeights {
    fn validate(&self, name: &str) -> Result<(), ShapeError> {
        check_positive(&format!("{name}.in_features"), self.in_features)?;
        check_positive(&format!("{name}.out_features"), self.out_features)?;
        check_len(
            &format!("{name}.weight"),
            &[self.out_features, self.in_features],
            self.weight.len(),
        )?;
        check_len(
            &format!("{name}.bias"),
            &[self.out_features],
            self.bias.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// D = 2, T = 2, F = 1, H = 1, one layer, K = 2: small enough to follow by hand, yet every
    /// gate has a distinct weight (a swapped gate order changes the result), the second token
    /// depends on the first through R and the cell state, and one head unit is clamped by ReLU
    /// in the second row.
    fn tiny() -> NetworkWeights {
        NetworkWeights {
            input_width: 2,
            tokens: 2,
            token_width: 1,
            // Token 0 sees column 0 only, token 1 sees column 1 only.
            token_weight: vec![0.5, 0.0, 0.0, -1.0],
            token_bias: vec![0.1, -0.2],
            lstm: vec![LstmLayerWeights {
                input_size: 1,
                hidden_size: 1,
                // Gate blocks i, o, f, c.
                w: vec![0.3, -0.4, 0.5, 0.7],
                r: vec![0.2, 0.1, -0.3, 0.6],
                wb: vec![0.05, -0.05, 0.1, 0.0],
                rb: vec![0.01, 0.02, 0.03, -0.04],
            }],
            head_hidden: DenseWeights {
                in_features: 3,
                out_features: 2,
                // Each row reads [h, x0, x1].
                weight: vec![2.0, 0.3, 0.1, -1.0, 0.5, 0.5],
                bias: vec![0.5, -0.5],
            },
            head_output: DenseWeights {
                in_features: 2,
                out_features: 1,
                weight: vec![1.5, 2.0],
                bias: vec![-0.25],
            },
        }
    }

    fn attribute_blocks(width: usize, tokens: usize) -> Vec<(usize, usize)> {
        (0..tokens)
            .map(|t| (t * width / tokens, (t + 1) * width / tokens))
            .collect()
    }

    #[test]
    fn forward_matches_hand_computed_tiny_network() {
        // Expected values computed independently in f64 (Python `math`), step by step:
        // row [1, 2]: tokens 0.6, -2.2; after token 0: i=σ(0.24)=0.55971, o=σ(-0.27)=0.43291,
        //   f=σ(0.43)=0.60587, c̃=tanh(0.38)=0.36271, C=0.20301, h=0.08670;
        //   after token 1: C=-0.27134, h=-0.18604; head [0.62792, 1.18604];
        //   z=3.06396; p=σ(z)=0.9553813080488734.
        // row [0.5, -1]: tokens 0.35, 0.8; final h=0.14210, C=0.35719; head [0.83419, 0 (ReLU)];
        //   z=1.00129; p=0.7313124097737868.
        let probabilities = tiny().forward(&[1.0, 2.0, 0.5, -1.0], 2).unwrap();
        let expected = [0.955_381_3_f32, 0.731_312_4];
        assert_eq!(probabilities.len(), 2);
        for (got, want) in probabilities.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "got {got}, want {want}");
        }
    }

    #[test]
    fn forward_detects_swapped_forget_and_output_gates() {
        // Guards the test above against being insensitive to gate order: swapping the o and f
        // blocks (the classic i,f,c,o vs i,o,f,c mix-up) must move the result well beyond 1e-6.
        let reference = tiny().forward(&[1.0, 2.0], 1).unwrap()[0];
        let mut swapped = tiny();
        let layer = &mut swapped.lstm[0];
        for v in [&mut layer.w, &mut layer.r, &mut layer.wb, &mut layer.rb] {
            v.swap(1, 2);
        }
        let changed = swapped.forward(&[1.0, 2.0], 1).unwrap()[0];
        assert!((reference - changed).abs() > 1e-3);
    }

    #[test]
    fn closed_input_gate_leaves_zero_hidden_state() {
        // With the input gate saturated shut the cell never receives anything, so h = 0 and the
        // head sees only the raw features: p = σ(1.5·relu(0.3·x0 + 0.1·x1 + 0.5)
        //                                        + 2·relu(0.5·x0 + 0.5·x1 − 0.5) − 0.25).
        let mut weights = tiny();
        weights.lstm[0].wb[0] = -1.0e4;
        let p = weights.forward(&[1.0, 2.0], 1).unwrap()[0];
        let z: f32 = 1.5 * (0.3 + 0.2 + 0.5) + 2.0 * (0.5 + 1.0 - 0.5) - 0.25;
        assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6);
    }

    #[test]
    fn forward_of_empty_batch_is_empty() {
        assert_eq!(tiny().forward(&[], 0).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn forward_rejects_feature_length_not_matching_batch() {
        let err = tiny().forward(&[1.0, 2.0, 3.0], 2).unwrap_err();
        assert_eq!(
            err,
            ShapeError::FeatureLength {
                batch: 2,
                input_width: 2,
                actual: 3
            }
        );
        assert!(err.to_string().contains("needs 4"), "{err}");
    }

    #[test]
    fn forward_rejects_invalid_weights_instead_of_panicking() {
        let mut weights = tiny();
        weights.lstm[0].r.pop();
        let err = weights.forward(&[1.0, 2.0], 1).unwrap_err();
        assert!(
            matches!(&err, ShapeError::LengthMismatch { name, expected: 4, actual: 3, .. } if name == "lstm[0].r"),
            "{err:?}"
        );
    }

    #[test]
    fn validate_accepts_consistent_weights() {
        tiny().validate().unwrap();
        NetworkWeights::random(61, 20, 8, 32, 2, 16, &attribute_blocks(61, 20), 1)
            .validate()
            .unwrap();
    }

    #[test]
    fn validate_names_each_inconsistent_field() {
        type Breakage = fn(&mut NetworkWeights);
        let cases: [(&str, Breakage); 10] = [
            ("token_weight", |w| w.token_weight.push(0.0)),
            ("token_bias", |w| w.token_bias.clear()),
            ("lstm[0].input_size", |w| w.lstm[0].input_size = 2),
            ("lstm[0].wb", |w| w.lstm[0].wb.push(0.0)),
            ("lstm[0].rb", |w| {
                w.lstm[0].rb.pop();
            }),
            ("head_hidden.in_features", |w| w.head_hidden.in_features = 2),
            ("head_hidden.bias", |w| w.head_hidden.bias.push(0.0)),
            ("head_output.in_features", |w| w.head_output.in_features = 3),
            ("head_output.out_features", |w| {
                w.head_output.out_features = 2
            }),
            ("input_width", |w| w.input_width = 0),
        ];
        for (field, break_it) in cases {
            let mut weights = tiny();
            break_it(&mut weights);
            let message = weights.validate().unwrap_err().to_string();
            assert!(message.starts_with(field), "{field}: {message}");
        }
        let mut no_layers = tiny();
        no_layers.lstm.clear();
        assert_eq!(no_layers.validate(), Err(ShapeError::NoLstmLayers));
    }

    #[test]
    fn validate_chains_layer_sizes() {
        let mut weights = NetworkWeights::random(6, 2, 3, 4, 2, 5, &attribute_blocks(6, 2), 7);
        // Second layer declared as reading 3 values although layer 1 emits 4.
        weights.lstm[1].input_size = 3;
        weights.lstm[1].w.truncate(4 * 4 * 3);
        let err = weights.validate().unwrap_err();
        assert!(
            matches!(&err, ShapeError::DimensionMismatch { name, expected: 4, actual: 3, .. } if name == "lstm[1].input_size"),
            "{err:?}"
        );
    }

    #[test]
    fn validate_reports_overflow_instead_of_wrapping() {
        let mut weights = tiny();
        weights.input_width = usize::MAX;
        assert!(matches!(
            weights.validate(),
            Err(ShapeError::Overflow { .. })
        ));
    }

    #[test]
    fn random_token_weight_is_zero_outside_each_attribute_block() {
        let blocks = [(0, 3), (3, 4), (4, 9)];
        let (d, f) = (9, 2);
        let w = NetworkWeights::random(d, 3, f, 4, 1, 3, &blocks, 11);
        let tf = 3 * f;
        for row in 0..d {
            for col in 0..tf {
                let token = col / f;
                let (start, end) = blocks[token];
                let value = w.token_weight[row * tf + col];
                if (start..end).contains(&row) {
                    assert!(
                        value != 0.0,
                        "row {row} col {col} should be a learnable weight"
                    );
                } else {
                    assert_eq!(
                        value, 0.0,
                        "row {row} col {col} is outside token {token}'s block"
                    );
                }
            }
        }
    }

    #[test]
    fn random_is_reproducible_from_seed() {
        let blocks = attribute_blocks(10, 5);
        let a = NetworkWeights::random(10, 5, 2, 3, 2, 4, &blocks, 42);
        let b = NetworkWeights::random(10, 5, 2, 3, 2, 4, &blocks, 42);
        let c = NetworkWeights::random(10, 5, 2, 3, 2, 4, &blocks, 43);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    #[should_panic(expected = "one attribute block per token")]
    fn random_rejects_block_count_different_from_tokens() {
        NetworkWeights::random(10, 3, 2, 3, 1, 4, &[(0, 5), (5, 10)], 0);
    }

    #[test]
    fn forward_outputs_probabilities_for_random_weights() {
        let blocks = attribute_blocks(61, 20);
        let w = NetworkWeights::random(61, 20, 8, 32, 2, 16, &blocks, 3);
        let features: Vec<f32> = (0..61 * 4).map(|i| ((i % 13) as f32 - 6.0) / 3.0).collect();
        let p = w.forward(&features, 4).unwrap();
        assert_eq!(p.len(), 4);
        assert!(
            p.iter().all(|v| v.is_finite() && *v > 0.0 && *v < 1.0),
            "{p:?}"
        );
    }
}
