//! Plain, framework-free weights of the scoring network.
//!
//! Why a separate type: the trainer learns these with candle, the ONNX exporter writes them as
//! initialisers, and a plain-Rust reference forward pass checks both. Keeping them as flat `f32`
//! vectors in ONNX's own layout means export is a copy, not a translation.
//!
//! Network (N = batch, D = preprocessed width, T = tokens, F = token width, H = hidden):
//!
//! ```text
//! features [N, D]
//!   -> tokens = features · token_weight [D, T*F] + token_bias [T*F]   (block-sparse: token t
//!      only sees the columns of attribute t), reshaped to [N, T, F]
//!   -> LSTM layer 1 (F -> H), LSTM layer 2 (H -> H), ... ; last hidden state h [N, H]
//!   -> head input [h, features] ([N, H + D])
//!   -> dense (H + D -> K) + ReLU -> dense (K -> 1) -> sigmoid = probability of `bad`
//! ```

use serde::{Deserialize, Serialize};

/// One LSTM layer in ONNX's layout: gates stacked in the order input, output, forget, cell
/// (`iofc`), matching the `W`, `R` and `B` inputs of ONNX's `LSTM` operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmLayerWeights {
    pub input_size: usize,
    pub hidden_size: usize,
    /// `[4H, input_size]`, row-major, gate blocks `i, o, f, c`.
    pub w: Vec<f32>,
    /// `[4H, H]`, row-major, gate blocks `i, o, f, c`.
    pub r: Vec<f32>,
    /// `[4H]` input bias (ONNX `Wb`), gate blocks `i, o, f, c`.
    pub wb: Vec<f32>,
    /// `[4H]` recurrent bias (ONNX `Rb`), gate blocks `i, o, f, c`.
    pub rb: Vec<f32>,
}

/// A fully connected layer, `y = x · weightᵀ + bias` (ONNX `Gemm` with `transB = 1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseWeights {
    pub in_features: usize,
    pub out_features: usize,
    /// `[out_features, in_features]`, row-major.
    pub weight: Vec<f32>,
    /// `[out_features]`.
    pub bias: Vec<f32>,
}

/// Everything needed to run the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkWeights {
    /// Preprocessed feature width D.
    pub input_width: usize,
    /// Number of tokens T (one per applicant attribute).
    pub tokens: usize,
    /// Token width F.
    pub token_width: usize,
    /// `[D, T*F]`, row-major; zero outside each attribute's block.
    pub token_weight: Vec<f32>,
    /// `[T*F]`.
    pub token_bias: Vec<f32>,
    /// Stacked LSTM layers, first to last.
    pub lstm: Vec<LstmLayerWeights>,
    /// Hidden dense layer of the head: `H + D -> K`, followed by ReLU.
    pub head_hidden: DenseWeights,
    /// Output layer of the head: `K -> 1`, followed by sigmoid.
    pub head_output: DenseWeights,
}
