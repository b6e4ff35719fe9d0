//! What the trainer, the worker and the backfill share: the applicant and its wire formats,
//! preprocessing, the model bundle and the scorer that runs it.
//!
//! - [`schema`]: the applicant schema as data (a lender's fields, types, bounds, roles, labels),
//!   its JSON Schema and the reload compatibility rule.
//! - [`applicant`]: an applicant's values and the JSON decoder that reads them by a schema.
//! - [`decode`]: a record's key and JSON → an applicant or a rejection naming the field.
//! - [`decision`]: the decision record a scored applicant becomes.
//! - [`dataset`]: labelled data files read by a schema (training data, backfill references).
//! - [`preprocess`]: the fitted encoder and scaler.
//! - [`model`]: the network's weights, their ONNX form and a plain-Rust reference forward pass.
//! - [`artifacts`], [`bundle`] and [`loader`]: the model directory, its manifest, and the one
//!   verified, self-checked loader.
//! - [`scoring`]: the [`scoring::Scorer`] seam and the ONNX Runtime scorer.
//! - [`explain`]: adverse-action reasons measured on the model, and their exact Shapley check.
//! - [`evaluation`]: AUC, cost-based thresholds and classification reports.
//! - [`fairness`]: decisions by protected group: approval rates, the four-fifths rule, error
//!   rates and calibration.
//! - [`training_rows`]: fingerprints of the rows a model was fitted on, so scored files can be
//!   told apart from the model's own training data.
//! - [`redact`] and [`logging`]: secrets kept out of logs; the binaries' log set-up.

pub mod applicant;
pub mod artifacts;
pub mod bundle;
pub mod dataset;
pub mod decision;
pub mod decode;
pub mod evaluation;
pub mod explain;
pub mod fairness;
pub mod loader;
pub mod logging;
pub mod model;
pub mod preprocess;
pub mod redact;
pub mod schema;
pub mod scoring;
pub mod training_rows;
