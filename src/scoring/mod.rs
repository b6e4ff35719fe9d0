//! Scoring preprocessed batches with ONNX Runtime.

pub mod onnx_runtime;
