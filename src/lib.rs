//! Credit-risk scoring: the domain library behind the `trainer` and `worker` binaries.
//!
//! - [`applicant`]: the applicant schema (the worker's input format) and its validation.
//! - [`data`]: the German Credit data set, stratified splits and SMOTE-NC balancing.
//! - [`preprocess`]: the fitted encoder and scaler, shared by trainer and worker.
//! - [`model`]: the stacked-LSTM network, its training (candle) and its ONNX export.
//! - [`scoring`]: ONNX Runtime sessions that score preprocessed batches.
//! - [`evaluation`]: metrics, cost-based threshold choice, reports and plots.

pub mod applicant;
pub mod artifacts;
pub mod data;
pub mod evaluation;
pub mod model;
pub mod preprocess;
pub mod scoring;
pub mod trainer;
