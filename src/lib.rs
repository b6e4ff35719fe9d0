//! Credit-risk scoring: the domain library behind the `trainer`, `worker` and `backfill`
//! binaries.
//!
//! - [`applicant`]: the applicant schema (the worker's input format) and its validation.
//! - [`artifacts`]: file names and ONNX metadata keys shared by trainer, worker and backfill.
//! - [`bundle`]: the manifest of the model directory and the verified loading of its files.
//! - [`data`]: the German Credit data set, stratified splits and SMOTE-NC balancing.
//! - [`preprocess`]: the fitted encoder and scaler, shared by trainer and worker.
//! - [`model`]: the stacked-LSTM network, its training (candle) and its ONNX export.
//! - [`scoring`]: ONNX Runtime sessions that score preprocessed batches.
//! - [`evaluation`]: metrics, cost-based threshold choice, reports and plots.
//! - [`trainer`]: the offline training run that writes `models/`.
//! - [`config`]: the worker's layered configuration (file, then environment).
//! - [`kafka`]: Kafka clients, offsets, publishing, dead letters and the embedded broker.
//! - [`pipeline`]: the worker's hot path: decode → preprocess → batch → infer → publish.
//! - [`service`]: what surrounds the pipeline: metrics, health, HTTP, logging, model loading.
//! - [`backfill`]: the nightly rescoring of historical loans from files, sharded.
//! - [`synthetic`]: realistic synthetic applicants for load tests and benchmarks.

pub mod applicant;
pub mod artifacts;
pub mod backfill;
pub mod bundle;
pub mod config;
pub mod data;
pub mod evaluation;
pub mod kafka;
pub mod model;
pub mod pipeline;
pub mod preprocess;
pub mod redact;
pub mod scoring;
pub mod service;
pub mod synthetic;
pub mod trainer;
