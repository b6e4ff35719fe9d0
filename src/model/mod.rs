//! The scoring network: its weights, training and ONNX export.
//!
//! - [`network`]: the stacked LSTM in candle (training and the trainer's forward pass).
//! - [`logistic`]: the logistic-regression baseline.
//! - [`training`]: the shared training loop with early stopping.
//! - [`weights`]: framework-free weights in ONNX layout.
//! - [`reference`]: a plain-Rust forward pass over those weights.
//! - [`onnx_export`]: writes the weights as an ONNX graph with native `LSTM` nodes.

pub mod logistic;
pub mod network;
pub mod onnx_export;
pub mod reference;
pub mod training;
pub mod weights;
