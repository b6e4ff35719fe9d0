//! Synthetic applicants that resemble a lender's seed data (the German Credit file by default),
//! for load tests and backfill rehearsals at any size, of any schema.
//!
//! Uniform noise over the schema would be useless: the model has never seen a 19-year-old with
//! a 20-year real-estate mortgage, and its scores on such rows say nothing about production.
//! Instead every synthetic applicant is drawn SMOTE-style between two real ones
//! ([`generator`]): a random applicant of the data set as anchor, one of its nearest
//! neighbours of the same class ([`neighbours`]), numeric attributes interpolated between them
//! (rounded and clamped to the schema's ranges), categorical ones taken from one or the other.
//! Joint structure (duration with amount, age with employment, ...) and the 70:30 class mix
//! carry over; with `--with-outcomes` the anchor's class goes along as `creditability`.
//!
//! Generation is deterministic for a seed and independent of the row count: row `i` is the
//! same whether 1,000 or 10,000,000 rows are asked for. The backfill crate streams them out as
//! CSV (the data set's own layout), JSON Lines or Parquet, in constant memory.

pub mod generator;
pub mod loan_book;
mod neighbours;

pub use generator::{GeneratedRow, Generator};
