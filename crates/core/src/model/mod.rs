//! The scoring network as data: its weights, the ONNX graph they are served as, and a plain-Rust
//! forward pass that both the trainer and the tests hold the ONNX graph to.
//!
//! - [`weights`]: framework-free weights in ONNX layout.
//! - [`reference`]: a plain-Rust forward pass over those weights.
//! - [`onnx_export`]: writes the weights as an ONNX graph with native `LSTM` nodes, and reads
//!   them back.

pub mod onnx_export;
pub mod reference;
pub mod weights;
