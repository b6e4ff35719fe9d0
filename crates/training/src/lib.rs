//! The offline trainer: an applicant schema and a lender's data file in (German Credit is the
//! shipped example); the model bundle (ONNX model, preprocessor, schema, JSON Schema, metrics,
//! report, manifest) out. The only crate with candle and plotters.
//!
//! - [`split`] and [`smote`]: stratified splits and SMOTE-NC balancing.
//! - [`network`]: the stacked LSTM in candle (training and the trainer's forward pass).
//! - [`logistic`]: the logistic-regression baseline.
//! - [`calibration`]: Platt scaling, folded into the models' output layers.
//! - [`training`]: the shared training loop with early stopping.
//! - [`plots`]: learning curves and ROC curves as SVG.
//! - [`trainer`]: the whole run, as the `trainer` binary drives it.

pub mod calibration;
mod logistic;
pub mod network;
mod plots;
mod smote;
pub mod split;
pub mod trainer;
pub mod training;
