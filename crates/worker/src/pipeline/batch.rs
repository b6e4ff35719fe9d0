//! The micro-batch: records gathered for one inference, with their features laid out row-major
//! in a buffer that is allocated once and reused for every batch.
//!
//! Records that cannot be scored travel in the same batch as entries without a feature row, so
//! every output — decision or dead letter — is produced in consumption order by one thread.

use crate::delivery::origin::Origin;
use crate::telemetry::fairness::DecisionGroups;
use credit_core::applicant::Applicant;
use credit_core::decision::Class;
use credit_core::decode::{RejectReason, Rejection};
use credit_core::explain::{ExplainError, Explainer, Reasons, ReasonsMode, Reference};
use credit_core::preprocess::Preprocessor;
use credit_core::schema::Schema;
use credit_core::scoring::onnx_runtime::ScoringError;
use credit_core::scoring::Scorer;
use rdkafka::message::OwnedHeaders;
use std::sync::Arc;

/// A consumed and decoded record on its way into a batch.
#[derive(Debug)]
pub(crate) struct Consumed {
    pub source: Origin,
    /// The input's headers, copied to its output.
    pub headers: Option<OwnedHeaders>,
    pub body: Body,
}

/// A record's content after decoding.
#[derive(Debug)]
pub(crate) enum Body {
    Valid {
        application_id: String,
        applicant: Applicant,
    },
    /// Destined for the dead-letter topic, with the original key and payload.
    Invalid {
        rejection: Rejection,
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
    },
}

/// One record of a batch.
#[derive(Debug)]
pub(crate) struct Entry {
    pub source: Origin,
    pub headers: Option<OwnedHeaders>,
    pub outcome: Outcome,
}

/// What is published for an entry.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Scored: its features are row `row` of the batch; the applicant stays for its reasons.
    Scored {
        application_id: String,
        row: usize,
        applicant: Applicant,
    },
    /// Dead-lettered.
    Rejected {
        rejection: Rejection,
        key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
    },
}

/// A reloaded model on its way to the scoring thread, riding on the first batch that was
/// preprocessed with its preprocessor.
///
/// Carrying the swap *in* the batch, rather than on a side channel, is what keeps
/// preprocessing, scoring and labelling consistent: batches pass the scoring thread and then
/// the publishing thread in order through one channel each, so every batch before this one is
/// scored and labelled by the old model and this one and every later one by the new model.
pub(crate) struct ModelSwap {
    pub scorer: Box<dyn Scorer>,
    pub reasoner: Option<Reasoner>,
    pub label: ModelLabel,
}

/// What decisions say about the model that made them: its version, the threshold in force with
/// it (its own, or the configured override), and what their reasons are read with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelLabel {
    pub version: String,
    pub threshold: f32,
    /// The schema that names the fields reasons point at.
    pub schema: Arc<Schema>,
    /// The applicant reasons are measured against; `None` when reasons are off.
    pub reference: Option<Arc<Reference>>,
}

/// A model's explainer as the scoring thread runs it.
#[derive(Debug)]
pub(crate) struct Reasoner {
    pub explainer: Explainer,
    /// Which rows to explain, at `threshold`.
    pub mode: ReasonsMode,
    pub threshold: f32,
}

impl std::fmt::Debug for ModelSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSwap")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Up to `capacity` records and the features of those that can be scored.
#[derive(Debug)]
pub(crate) struct Batch {
    width: usize,
    capacity: usize,
    /// `capacity × width`, allocated once; rows `0..rows` are in use.
    features: Vec<f32>,
    rows: usize,
    entries: Vec<Entry>,
    /// The probability of `bad` of rows `0..rows`, once scored (allocated once, reused).
    probabilities: Vec<f32>,
    /// The reasons of rows `0..rows`, once explained (empty when reasons are off).
    reasons: Reasons,
    /// The model to score this batch (and every later one) with, if it changes here.
    swap: Option<Box<ModelSwap>>,
    /// The swap's label, left by the scoring thread for the publishing thread.
    relabel: Option<ModelLabel>,
    /// The protected groups of the schema this batch was decoded with, and each row's group
    /// index per protected field (row-major, reused like `features`).
    groups: Arc<DecisionGroups>,
    group_rows: Vec<u16>,
}

impl Batch {
    /// A batch of at most `capacity` records of `width` features each.
    pub(crate) fn new(capacity: usize, width: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            width,
            capacity,
            features: vec![0.0; capacity * width],
            rows: 0,
            entries: Vec::with_capacity(capacity),
            probabilities: Vec::with_capacity(capacity),
            reasons: Reasons::default(),
            swap: None,
            relabel: None,
            groups: Arc::default(),
            group_rows: Vec::new(),
        }
    }

    /// Groups this batch's records by `groups` (the batcher, on an empty batch, with the
    /// groups of the schema it decodes with).
    pub(crate) fn group_by(&mut self, groups: &Arc<DecisionGroups>) {
        if !Arc::ptr_eq(&self.groups, groups) {
            self.groups = Arc::clone(groups);
        }
    }

    /// Counts the decisions of rows `0..rows()` at `threshold` by protected group.
    pub(crate) fn count_by_group(&self, threshold: f32) {
        let fields = self.groups.fields();
        if fields == 0 {
            return;
        }
        for (probability, groups) in self
            .probabilities
            .iter()
            .zip(self.group_rows.chunks_exact(fields))
            .take(self.rows)
        {
            if probability.is_finite() {
                self.groups
                    .count(groups, Class::from_probability(*probability, threshold));
            }
        }
    }

    /// Marks this batch as the first one for a new model. Only the batcher calls it, and only
    /// on an empty batch, before preprocessing anything with the new model's preprocessor.
    pub(crate) fn attach_swap(&mut self, swap: ModelSwap) {
        self.swap = Some(Box::new(swap));
    }

    /// Takes the model change this batch carries, if any (the scoring thread, before
    /// scoring).
    pub(crate) fn take_swap(&mut self) -> Option<Box<ModelSwap>> {
        self.swap.take()
    }

    #[cfg(test)]
    /// Whether this batch carries a model change.
    pub(crate) fn has_swap(&self) -> bool {
        self.swap.is_some()
    }

    /// Passes a swap's label on to the publishing thread (the scoring thread, having put the
    /// swap's scorer in service).
    pub(crate) fn relabel(&mut self, label: ModelLabel) {
        self.relabel = Some(label);
    }

    /// The label decisions carry from this batch on, if it changes here (the publishing
    /// thread).
    pub(crate) fn take_label(&mut self) -> Option<ModelLabel> {
        self.relabel.take()
    }

    /// Scores rows `0..rows()` with `scorer`, keeping the probabilities in the batch.
    pub(crate) fn score(&mut self, scorer: &mut dyn Scorer) -> Result<(), ScoringError> {
        let rows = self.rows;
        scorer.score_into(
            &self.features[..rows * self.width],
            rows,
            &mut self.probabilities,
        )
    }

    /// Computes the reasons of the scored rows `reasoner` wants with `scorer`, the model that
    /// scored them.
    pub(crate) fn explain(
        &mut self,
        scorer: &mut dyn Scorer,
        reasoner: &mut Reasoner,
    ) -> Result<(), ExplainError> {
        let rows = self.rows;
        let probabilities = &self.probabilities;
        let (mode, threshold) = (reasoner.mode, reasoner.threshold);
        reasoner.explainer.explain(
            scorer,
            &self.features[..rows * self.width],
            probabilities,
            |row| mode.wants(probabilities[row], threshold),
            &mut self.reasons,
        )
    }

    /// The probabilities [`Batch::score`] produced, by row.
    pub(crate) fn probabilities(&self) -> &[f32] {
        &self.probabilities
    }

    /// Adds a record, preprocessing a valid one straight into the next feature row.
    ///
    /// Returns the record back if the batch is full (callers check [`Batch::is_full`] first).
    pub(crate) fn push(
        &mut self,
        record: Consumed,
        schema: &Schema,
        preprocessor: &Preprocessor,
    ) -> Result<(), Box<Consumed>> {
        if self.is_full() {
            return Err(Box::new(record));
        }
        let Consumed {
            source,
            headers,
            body,
        } = record;
        let outcome = match body {
            Body::Valid {
                application_id,
                applicant,
            } => {
                let start = self.rows * self.width;
                let row = &mut self.features[start..start + self.width];
                match preprocessor.transform_into(&applicant, row) {
                    Ok(()) => {
                        self.groups.push_groups(&applicant, &mut self.group_rows);
                        self.rows += 1;
                        Outcome::Scored {
                            application_id,
                            row: self.rows - 1,
                            applicant,
                        }
                    }
                    // Only a preprocessor that does not fit the schema fails here; the record is
                    // kept (re-encoded: the original bytes are gone) rather than lost.
                    Err(error) => Outcome::Rejected {
                        rejection: Rejection::new(
                            RejectReason::Preprocessing,
                            "record",
                            error.to_string(),
                        ),
                        payload: Some(applicant.to_json(schema)),
                        key: Some(application_id.into_bytes()),
                    },
                }
            }
            Body::Invalid {
                rejection,
                key,
                payload,
            } => Outcome::Rejected {
                rejection,
                key,
                payload,
            },
        };
        self.entries.push(Entry {
            source,
            headers,
            outcome,
        });
        Ok(())
    }

    #[cfg(test)]
    /// Records in the batch, scored or not.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records with a feature row: the inference batch size.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn width(&self) -> usize {
        self.width
    }

    #[cfg(test)]
    /// The features of rows `0..rows()`, row-major.
    pub(crate) fn features(&self) -> &[f32] {
        &self.features[..self.rows * self.width]
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Removes the entries (in consumption order), leaving an empty batch whose buffers keep
    /// their allocation.
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, Entry> {
        self.rows = 0;
        self.group_rows.clear();
        self.probabilities.clear();
        self.entries.drain(..)
    }

    /// The reasons [`Batch::explain`] produced, by row.
    pub(crate) fn reasons(&self) -> &Reasons {
        &self.reasons
    }

    /// The entries (in consumption order) with the probabilities and reasons by row, leaving an
    /// empty batch once the iterator is dropped (probabilities and reasons stay until the next
    /// [`Batch::score`] and [`Batch::explain`]).
    pub(crate) fn drain_scored(&mut self) -> (std::vec::Drain<'_, Entry>, &[f32], &Reasons) {
        self.rows = 0;
        self.group_rows.clear();
        (self.entries.drain(..), &self.probabilities, &self.reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    static SCHEMA: LazyLock<Schema> = LazyLock::new(credit_core::schema::german_credit);

    fn source(offset: i64) -> Origin {
        Origin {
            partition: 0,
            offset,
            timestamp_ms: Some(1_000 + offset),
            consumed_at: std::time::Instant::now(),
        }
    }

    fn valid(offset: i64, applicant: Applicant) -> Consumed {
        Consumed {
            source: source(offset),
            headers: None,
            body: Body::Valid {
                application_id: format!("app-{offset}"),
                applicant,
            },
        }
    }

    fn invalid(offset: i64) -> Consumed {
        Consumed {
            source: source(offset),
            headers: None,
            body: Body::Invalid {
                rejection: Rejection::new(RejectReason::InvalidJson, "record", "nope"),
                key: Some(b"k".to_vec()),
                payload: Some(b"{".to_vec()),
            },
        }
    }

    #[test]
    fn rows_hold_exactly_the_preprocessed_features_of_valid_records() {
        let rows = crate::pipeline::shipped_applicants();
        let preprocessor = crate::pipeline::fitted(&rows);
        let mut batch = Batch::new(4, preprocessor.width);
        batch
            .push(valid(0, rows[0].clone()), &SCHEMA, &preprocessor)
            .unwrap();
        batch.push(invalid(1), &SCHEMA, &preprocessor).unwrap();
        batch
            .push(valid(2, rows[1].clone()), &SCHEMA, &preprocessor)
            .unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.rows(), 2);
        assert!(!batch.is_full());
        let expected = preprocessor.transform_batch(&rows[..2]).unwrap();
        assert_eq!(batch.features(), &expected[..]);
        let rows_of: Vec<Option<usize>> = batch
            .entries()
            .iter()
            .map(|entry| match entry.outcome {
                Outcome::Scored { row, .. } => Some(row),
                Outcome::Rejected { .. } => None,
            })
            .collect();
        assert_eq!(rows_of, vec![Some(0), None, Some(1)]);
    }

    #[test]
    fn a_full_batch_refuses_more_and_counts_rejected_records() {
        let rows = crate::pipeline::shipped_applicants();
        let preprocessor = crate::pipeline::fitted(&rows);
        let mut batch = Batch::new(2, preprocessor.width);
        batch.push(invalid(0), &SCHEMA, &preprocessor).unwrap();
        batch
            .push(valid(1, rows[0].clone()), &SCHEMA, &preprocessor)
            .unwrap();
        assert!(batch.is_full());
        let refused = batch
            .push(valid(2, rows[1].clone()), &SCHEMA, &preprocessor)
            .unwrap_err();
        assert_eq!(refused.source.offset, 2);
    }

    /// Scores each row as `row / 10`, so a probability names the row it came from.
    struct RowNumbers;

    impl Scorer for RowNumbers {
        fn input_width(&self) -> usize {
            0
        }

        fn score_into(
            &mut self,
            _: &[f32],
            batch: usize,
            out: &mut Vec<f32>,
        ) -> Result<(), ScoringError> {
            out.clear();
            out.extend((0..batch).map(|row| row as f32 / 10.0));
            Ok(())
        }
    }

    #[test]
    fn scored_entries_meet_their_own_row_probability_and_rejects_take_no_row() {
        let rows = crate::pipeline::shipped_applicants();
        let preprocessor = crate::pipeline::fitted(&rows);
        let mut batch = Batch::new(4, preprocessor.width);
        batch.push(invalid(0), &SCHEMA, &preprocessor).unwrap();
        batch
            .push(valid(1, rows[0].clone()), &SCHEMA, &preprocessor)
            .unwrap();
        batch.push(invalid(2), &SCHEMA, &preprocessor).unwrap();
        batch
            .push(valid(3, rows[1].clone()), &SCHEMA, &preprocessor)
            .unwrap();
        batch.score(&mut RowNumbers).unwrap();
        assert_eq!(batch.probabilities(), &[0.0, 0.1]);
        let (entries, probabilities, _) = batch.drain_scored();
        let answered: Vec<(i64, Option<f32>)> = entries
            .map(|entry| match entry.outcome {
                Outcome::Scored { row, .. } => (entry.source.offset, Some(probabilities[row])),
                Outcome::Rejected { .. } => (entry.source.offset, None),
            })
            .collect();
        assert_eq!(
            answered,
            vec![(0, None), (1, Some(0.0)), (2, None), (3, Some(0.1))]
        );
        assert!(batch.is_empty());
        assert_eq!(batch.rows(), 0);
    }

    #[test]
    fn drained_batches_are_reused_without_reallocating() {
        let rows = crate::pipeline::shipped_applicants();
        let preprocessor = crate::pipeline::fitted(&rows);
        let mut batch = Batch::new(8, preprocessor.width);
        let features_ptr = batch.features.as_ptr();
        for round in 0..3 {
            for i in 0..8 {
                batch
                    .push(
                        valid(i, rows[(round * 8 + i) as usize].clone()),
                        &SCHEMA,
                        &preprocessor,
                    )
                    .unwrap();
            }
            assert!(batch.is_full());
            let offsets: Vec<i64> = batch.drain().map(|e| e.source.offset).collect();
            assert_eq!(
                offsets,
                (0..8).collect::<Vec<_>>(),
                "consumption order kept"
            );
            assert!(batch.is_empty());
            assert_eq!(batch.rows(), 0);
            assert!(batch.features().is_empty());
        }
        assert_eq!(batch.features.as_ptr(), features_ptr);
        assert_eq!(batch.capacity(), 8);
    }
}
