//! Adverse-action reasons: which of an applicant's fields pushed the model towards `bad`, and by
//! how much, measured on the model that made the decision.
//!
//! Every contribution is measured against one documented [`Reference`] applicant, stored in the
//! bundle as `reference.json`: the most common value of each category and the median of each
//! number on the training split. A field's contribution is the change in the model's log-odds of
//! `bad` when that field alone is set back to the reference value:
//!
//! ```text
//! contribution(field) = logit(p(x)) - logit(p(x with field := reference))
//! ```
//!
//! This is the model itself evaluated on edited inputs, never a surrogate. It costs one extra row
//! per field that differs from the reference (a field equal to it contributes exactly nothing and
//! is not scored), and all the extra rows of a batch go through the scorer in one run, so the
//! recurrent network is run on large batches where it is most efficient.
//!
//! [`exact_shapley`] computes the Shapley values of the same game (every coalition of fields
//! taken from the applicant, the rest from the reference) for the faithfulness report: the
//! published ranking is checked against it, not assumed.

use crate::applicant::{Applicant, AttributeValue, RecordError};
use crate::artifacts::REFERENCE_FILE;
use crate::preprocess::{PreprocessError, Preprocessor};
use crate::schema::{FieldKind, Schema};
use crate::scoring::onnx_runtime::ScoringError;
use crate::scoring::Scorer;

/// Default number of reasons a decision carries.
pub const DEFAULT_TOP: usize = 4;

/// Which decisions carry reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasonsMode {
    /// Every `bad` decision: what adverse-action notices need.
    #[default]
    Declines,
    /// Every decision.
    All,
    /// None: decisions carry no `reasons` field.
    Off,
}

impl ReasonsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Declines => "declines",
            Self::All => "all",
            Self::Off => "off",
        }
    }

    /// Whether a decision at `probability_bad` gets reasons under `threshold`.
    pub fn wants(self, probability_bad: f32, threshold: f32) -> bool {
        match self {
            Self::Declines => probability_bad >= threshold,
            Self::All => true,
            Self::Off => false,
        }
    }
}

impl std::str::FromStr for ReasonsMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "declines" => Ok(Self::Declines),
            "all" => Ok(Self::All),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "reasons must be `declines`, `all` or `off`, got `{other}`"
            )),
        }
    }
}

/// Most fields [`exact_shapley`] enumerates every coalition of (2^20 model runs per applicant).
pub const MAX_SHAPLEY_FIELDS: usize = 20;

/// Rows sent to the scorer in one run while enumerating coalitions.
const SHAPLEY_CHUNK: usize = 8192;

/// Why reasons could not be set up or computed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("reference applicant: {0}")]
    Record(#[from] RecordError),
    #[error("reference applicant: {0}")]
    Preprocess(#[from] PreprocessError),
    #[error("cannot compute a reference from zero rows")]
    NoRows,
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    #[error("the model returned {got} probabilities for {rows} rows")]
    OutputCount { rows: usize, got: usize },
    #[error("exact Shapley values over {fields} fields would need 2^{fields} model runs per applicant; the limit is {MAX_SHAPLEY_FIELDS} fields")]
    TooManyFields { fields: usize },
    /// Serving such a bundle with reasons on would publish declines without the reasons a
    /// declined applicant is owed.
    #[error(
        "the bundle has no {REFERENCE_FILE}, which reasons are measured against: retrain it (the \
         trainer writes one) or turn reasons off (worker: reasons.mode = \"off\"; backfill: \
         --reasons off)"
    )]
    NoReference,
}

/// The applicant every contribution is measured against.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    applicant: Applicant,
}

impl Reference {
    /// The typical applicant of `rows`: each category's most common value (ties: the first in
    /// schema order), each number's lower median (an observed value, so an integer stays one);
    /// an optional field is missing when most rows miss it. Fields not on the wire (key, label)
    /// stay missing.
    pub fn typical(schema: &Schema, rows: &[Applicant]) -> Result<Self, ExplainError> {
        if rows.is_empty() {
            return Err(ExplainError::NoRows);
        }
        let values = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(at, field)| {
                let column = rows.iter().map(|row| row.values()[at]);
                if !field.is_wire() {
                    return AttributeValue::Missing;
                }
                match &field.kind {
                    FieldKind::Category { categories } => most_common(column, categories.len()),
                    FieldKind::Boolean => most_common(column, 2),
                    FieldKind::Integer { .. } | FieldKind::Number { .. } => lower_median(column),
                    FieldKind::Text { .. } => AttributeValue::Missing,
                }
            })
            .collect();
        Ok(Self {
            applicant: Applicant::from_values(schema, values)?,
        })
    }

    /// Reads the bundle's `reference.json` (the applicant's wire form).
    pub fn from_json(schema: &Schema, bytes: &[u8]) -> Result<Self, ExplainError> {
        Ok(Self {
            applicant: Applicant::from_json(schema, bytes)?,
        })
    }

    /// The wire form, as `reference.json` holds it.
    pub fn to_json(&self, schema: &Schema) -> Vec<u8> {
        self.applicant.to_json(schema)
    }

    pub fn applicant(&self) -> &Applicant {
        &self.applicant
    }
}

/// The most frequent of `count` categories (or missing, when that is more frequent).
fn most_common(column: impl Iterator<Item = AttributeValue>, count: usize) -> AttributeValue {
    let mut counts = vec![0usize; count];
    let mut missing = 0usize;
    for value in column {
        match value {
            AttributeValue::Categorical(index) if index < count => counts[index] += 1,
            _ => missing += 1,
        }
    }
    let best = counts
        .iter()
        .enumerate()
        .rev()
        .max_by_key(|(_, &n)| n)
        .map(|(index, &n)| (index, n));
    match best {
        Some((index, n)) if n >= missing => AttributeValue::Categorical(index),
        _ => AttributeValue::Missing,
    }
}

/// The lower median of the present values (or missing, when most values are).
fn lower_median(column: impl Iterator<Item = AttributeValue>) -> AttributeValue {
    let mut missing = 0usize;
    let mut present: Vec<f64> = Vec::new();
    for value in column {
        match value {
            AttributeValue::Numeric(number) => present.push(number),
            _ => missing += 1,
        }
    }
    if present.is_empty() || missing > present.len() {
        return AttributeValue::Missing;
    }
    present.sort_by(f64::total_cmp);
    AttributeValue::Numeric(present[(present.len() - 1) / 2])
}

/// One reason: a schema field and how much it raised the log-odds of `bad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reason {
    /// Position of the field in the schema.
    pub field: usize,
    /// Log-odds of `bad` with the applicant's value minus with the reference's.
    pub contribution: f32,
}

/// The reasons of every row of a batch, at most `top` per row, largest contribution first.
#[derive(Debug, Clone, Default)]
pub struct Reasons {
    top: usize,
    /// Row `r`'s reasons are `items[r * top..r * top + counts[r]]`.
    items: Vec<Reason>,
    counts: Vec<usize>,
}

impl Reasons {
    /// The reasons of `row` (empty for a row that was not explained).
    pub fn of_row(&self, row: usize) -> &[Reason] {
        match self.counts.get(row) {
            Some(&count) => &self.items[row * self.top..row * self.top + count],
            None => &[],
        }
    }

    /// Forgets every row, keeping the allocations.
    pub fn clear(&mut self) {
        self.items.clear();
        self.counts.clear();
    }

    fn reset(&mut self, rows: usize, top: usize) {
        self.top = top;
        self.counts.clear();
        self.counts.resize(rows, 0);
        self.items.clear();
        self.items.resize(
            rows * top,
            Reason {
                field: 0,
                contribution: 0.0,
            },
        );
    }

    /// Keeps `candidate` if it is among the row's `top` largest positive contributions so far.
    fn offer(&mut self, row: usize, candidate: Reason) {
        if candidate.contribution <= 0.0 || self.top == 0 {
            return;
        }
        let slots = &mut self.items[row * self.top..(row + 1) * self.top];
        let count = &mut self.counts[row];
        let mut at = *count;
        while at > 0 && slots[at - 1].contribution < candidate.contribution {
            at -= 1;
        }
        if at >= self.top {
            return;
        }
        let end = (*count + 1).min(self.top);
        slots.copy_within(at..end - 1, at + 1);
        slots[at] = candidate;
        *count = end;
    }
}

/// One model input's columns in the feature row.
#[derive(Debug, Clone, Copy)]
struct Block {
    field: usize,
    start: usize,
    end: usize,
}

/// Computes the reasons of a scored batch with the scorer that scored it.
///
/// Built once per model (it holds the model's reference row) and reused for every batch: its
/// buffers grow to the largest batch and stay.
#[derive(Debug, Clone)]
pub struct Explainer {
    blocks: Box<[Block]>,
    reference: Box<[f32]>,
    width: usize,
    top: usize,
    /// Feature rows with one field set to the reference, for one scorer run.
    edited: Vec<f32>,
    /// Which batch row and block each edited row belongs to.
    owners: Vec<(usize, usize)>,
    edited_probabilities: Vec<f32>,
}

impl Explainer {
    /// An explainer for the model `preprocessor` feeds, against `reference`, keeping the `top`
    /// largest contributions of each row.
    pub fn new(
        preprocessor: &Preprocessor,
        reference: &Reference,
        top: usize,
    ) -> Result<Self, ExplainError> {
        let mut row = vec![0.0; preprocessor.width];
        preprocessor.transform_into(reference.applicant(), &mut row)?;
        let blocks = preprocessor
            .attributes
            .iter()
            .map(|attribute| Block {
                field: attribute.field(),
                start: attribute.offset,
                end: attribute.offset + attribute.width,
            })
            .collect();
        Ok(Self {
            blocks,
            reference: row.into_boxed_slice(),
            width: preprocessor.width,
            top,
            edited: Vec::new(),
            owners: Vec::new(),
            edited_probabilities: Vec::new(),
        })
    }

    /// How many reasons a row gets at most.
    pub fn top(&self) -> usize {
        self.top
    }

    /// The reference applicant's feature row.
    pub fn reference_row(&self) -> &[f32] {
        &self.reference
    }

    /// Fills `reasons` for every row of `features` (row-major, scored as `probabilities`) that
    /// `wanted` selects, scoring the edited rows with `scorer` in one run.
    pub fn explain(
        &mut self,
        scorer: &mut dyn Scorer,
        features: &[f32],
        probabilities: &[f32],
        wanted: impl Fn(usize) -> bool,
        reasons: &mut Reasons,
    ) -> Result<(), ExplainError> {
        let rows = probabilities.len();
        reasons.reset(rows, self.top);
        self.edited.clear();
        self.owners.clear();
        for row in (0..rows).filter(|&row| wanted(row)) {
            let original = &features[row * self.width..(row + 1) * self.width];
            for (index, block) in self.blocks.iter().enumerate() {
                let reference = &self.reference[block.start..block.end];
                if original[block.start..block.end] == *reference {
                    continue;
                }
                let start = self.edited.len();
                self.edited.extend_from_slice(original);
                self.edited[start + block.start..start + block.end].copy_from_slice(reference);
                self.owners.push((row, index));
            }
        }
        if self.owners.is_empty() {
            return Ok(());
        }
        let edited_rows = self.owners.len();
        scorer.score_into(&self.edited, edited_rows, &mut self.edited_probabilities)?;
        if self.edited_probabilities.len() != edited_rows {
            return Err(ExplainError::OutputCount {
                rows: edited_rows,
                got: self.edited_probabilities.len(),
            });
        }
        for (&(row, index), &edited) in self.owners.iter().zip(&self.edited_probabilities) {
            let contribution = (logit(probabilities[row]) - logit(edited)) as f32;
            reasons.offer(
                row,
                Reason {
                    field: self.blocks[index].field,
                    contribution,
                },
            );
        }
        Ok(())
    }

    /// Every model input's contribution to `row` (schema field, contribution), in the order of
    /// the model's inputs, for reports that rank all of them.
    pub fn contributions(
        &mut self,
        scorer: &mut dyn Scorer,
        row: &[f32],
    ) -> Result<Vec<(usize, f64)>, ExplainError> {
        let blocks = self.blocks.len();
        self.edited.clear();
        self.edited.extend_from_slice(row);
        for block in self.blocks.iter() {
            let start = self.edited.len();
            self.edited.extend_from_slice(row);
            self.edited[start + block.start..start + block.end]
                .copy_from_slice(&self.reference[block.start..block.end]);
        }
        scorer.score_into(&self.edited, blocks + 1, &mut self.edited_probabilities)?;
        if self.edited_probabilities.len() != blocks + 1 {
            return Err(ExplainError::OutputCount {
                rows: blocks + 1,
                got: self.edited_probabilities.len(),
            });
        }
        let full = logit(self.edited_probabilities[0]);
        Ok(self
            .blocks
            .iter()
            .zip(&self.edited_probabilities[1..])
            .map(|(block, &edited)| (block.field, full - logit(edited)))
            .collect())
    }

    /// The reasons [`Explainer::explain`] gives `row`, computed field by field without its
    /// shortcuts (every input scored, fields equal to the reference too): the positive
    /// contributions, largest first, at most `top`. For checks of the published reasons.
    pub fn reasons_of_row(
        &mut self,
        scorer: &mut dyn Scorer,
        row: &[f32],
    ) -> Result<Vec<(usize, f64)>, ExplainError> {
        let mut reasons = self.contributions(scorer, row)?;
        reasons.retain(|(_, contribution)| *contribution > 0.0);
        reasons.sort_by(|a, b| b.1.total_cmp(&a.1));
        reasons.truncate(self.top);
        Ok(reasons)
    }

    /// The exact Shapley value of every model input for `row` (schema field, value), in the
    /// order of the model's inputs: the game's value of a coalition is the log-odds of `bad`
    /// with the coalition's fields from `row` and the others from the reference, and every one
    /// of the 2^fields coalitions is scored.
    pub fn exact_shapley(
        &mut self,
        scorer: &mut dyn Scorer,
        row: &[f32],
    ) -> Result<Vec<(usize, f64)>, ExplainError> {
        let n = self.blocks.len();
        if n > MAX_SHAPLEY_FIELDS {
            return Err(ExplainError::TooManyFields { fields: n });
        }
        let coalitions = 1usize << n;
        let mut value = Vec::with_capacity(coalitions);
        let mut first = 0;
        while first < coalitions {
            let last = (first + SHAPLEY_CHUNK).min(coalitions);
            self.edited.clear();
            for mask in first..last {
                let start = self.edited.len();
                self.edited.extend_from_slice(&self.reference);
                for (bit, block) in self.blocks.iter().enumerate() {
                    if mask & (1 << bit) != 0 {
                        self.edited[start + block.start..start + block.end]
                            .copy_from_slice(&row[block.start..block.end]);
                    }
                }
            }
            let rows = last - first;
            scorer.score_into(&self.edited, rows, &mut self.edited_probabilities)?;
            if self.edited_probabilities.len() != rows {
                return Err(ExplainError::OutputCount {
                    rows,
                    got: self.edited_probabilities.len(),
                });
            }
            value.extend(self.edited_probabilities.iter().map(|&p| logit(p)));
            first = last;
        }
        // weight[s] = s! (n - s - 1)! / n!, the share of orderings in which a field joins a
        // coalition of size s.
        let weight: Vec<f64> = (0..n)
            .map(|s| {
                let mut w = 1.0 / n as f64;
                for k in 1..=s {
                    w *= k as f64 / (n - k) as f64;
                }
                w
            })
            .collect();
        Ok(self
            .blocks
            .iter()
            .enumerate()
            .map(|(bit, block)| {
                let flag = 1usize << bit;
                let phi: f64 = (0..coalitions)
                    .filter(|mask| mask & flag == 0)
                    .map(|mask| {
                        weight[mask.count_ones() as usize] * (value[mask | flag] - value[mask])
                    })
                    .sum();
                (block.field, phi)
            })
            .collect())
    }
}

/// Log-odds of a probability, kept finite at 0 and 1: the scale contributions are measured on.
pub fn logit(probability: f32) -> f64 {
    let p = f64::from(probability).clamp(1e-7, 1.0 - 1e-7);
    (p / (1.0 - p)).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::shipped_german_credit;
    use crate::schema::german_credit;

    /// A stand-in model whose log-odds are a weighted sum of the features plus, optionally,
    /// the product of the first two: additive games have Shapley values equal to occlusion.
    struct Additive {
        width: usize,
        weights: Vec<f32>,
        /// Columns whose product is added to the log-odds.
        interaction: Option<(usize, usize)>,
    }

    impl Scorer for Additive {
        fn input_width(&self) -> usize {
            self.width
        }
        fn score_into(
            &mut self,
            features: &[f32],
            batch: usize,
            out: &mut Vec<f32>,
        ) -> Result<(), ScoringError> {
            out.clear();
            for row in features.chunks_exact(self.width).take(batch) {
                let linear: f32 = row.iter().zip(&self.weights).map(|(x, w)| x * w).sum();
                let coupled = self.interaction.map_or(0.0, |(a, b)| row[a] * row[b]);
                let z = linear + coupled;
                out.push(1.0 / (1.0 + (-z).exp()));
            }
            Ok(())
        }
    }

    fn shipped() -> (Schema, Vec<Applicant>, Preprocessor) {
        let schema = german_credit();
        let rows: Vec<Applicant> = shipped_german_credit()
            .into_iter()
            .map(|row| row.applicant)
            .collect();
        let preprocessor = Preprocessor::fit(&schema, &rows).unwrap();
        (schema, rows, preprocessor)
    }

    fn additive(preprocessor: &Preprocessor, interaction: Option<(usize, usize)>) -> Additive {
        Additive {
            width: preprocessor.width,
            weights: (0..preprocessor.width)
                .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.4)
                .collect(),
            interaction,
        }
    }

    #[test]
    fn the_reference_takes_the_most_common_category_and_the_lower_median() {
        let (schema, rows, _) = shipped();
        let reference = Reference::typical(&schema, &rows).unwrap();
        for (at, field) in schema.fields().iter().enumerate() {
            let value = reference.applicant().values()[at];
            if !field.is_wire() {
                assert_eq!(value, AttributeValue::Missing, "{}", field.name);
                continue;
            }
            match (&field.kind, value) {
                (FieldKind::Category { categories }, AttributeValue::Categorical(chosen)) => {
                    let count = |index| {
                        rows.iter()
                            .filter(|row| row.values()[at] == AttributeValue::Categorical(index))
                            .count()
                    };
                    let best = (0..categories.len()).map(count).max().unwrap();
                    assert_eq!(count(chosen), best, "{}", field.name);
                }
                (FieldKind::Integer { .. }, AttributeValue::Numeric(median)) => {
                    let numbers = rows.iter().map(|row| match row.values()[at] {
                        AttributeValue::Numeric(number) => number,
                        _ => f64::NAN,
                    });
                    let below = numbers.clone().filter(|&n| n < median).count();
                    let above = numbers.filter(|&n| n > median).count();
                    assert!(
                        below <= rows.len() / 2 && above <= rows.len() / 2,
                        "{}",
                        field.name
                    );
                }
                (FieldKind::Text { .. }, AttributeValue::Missing) => {}
                (kind, value) => panic!("{}: {kind:?} with {value:?}", field.name),
            }
        }
        let reread = Reference::from_json(&schema, &reference.to_json(&schema)).unwrap();
        assert_eq!(reread, reference);
    }

    #[test]
    fn occlusion_equals_exact_shapley_on_an_additive_model() {
        let (schema, rows, preprocessor) = shipped();
        let reference = Reference::typical(&schema, &rows).unwrap();
        let mut explainer = Explainer::new(&preprocessor, &reference, 4).unwrap();
        let mut model = additive(&preprocessor, None);
        let features = preprocessor.transform_batch(&rows[..3]).unwrap();
        for row in features.chunks_exact(preprocessor.width) {
            let occlusion = explainer.contributions(&mut model, row).unwrap();
            let shapley = explainer.exact_shapley(&mut model, row).unwrap();
            for ((field, a), (same, b)) in occlusion.iter().zip(&shapley) {
                assert_eq!(field, same);
                assert!((a - b).abs() < 1e-3, "field {field}: {a} against {b}");
            }
            let total: f64 = shapley.iter().map(|(_, phi)| phi).sum();
            let full = logit(model_probability(&mut model, row));
            let base = logit(model_probability(&mut model, explainer.reference_row()));
            assert!((total - (full - base)).abs() < 1e-3, "efficiency");
        }
    }

    #[test]
    fn shapley_values_split_an_interaction_between_its_two_fields() {
        let (schema, rows, preprocessor) = shipped();
        let reference = Reference::typical(&schema, &rows).unwrap();
        let mut explainer = Explainer::new(&preprocessor, &reference, 4).unwrap();
        // Two numeric fields (one column each) that the interaction couples.
        let numeric: Vec<usize> = explainer
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, block)| block.end - block.start == 1)
            .map(|(index, _)| index)
            .take(2)
            .collect();
        let (i, j) = (numeric[0], numeric[1]);
        let (a, b) = (explainer.blocks[i].start, explainer.blocks[j].start);
        let row = preprocessor.transform_batch(&rows[..1]).unwrap();
        let mut plain_model = additive(&preprocessor, None);
        let mut mixed_model = additive(&preprocessor, Some((a, b)));
        let plain = explainer.exact_shapley(&mut plain_model, &row).unwrap();
        let mixed = explainer.exact_shapley(&mut mixed_model, &row).unwrap();
        let (xa, xb) = (f64::from(row[a]), f64::from(row[b]));
        let (ra, rb) = (
            f64::from(explainer.reference_row()[a]),
            f64::from(explainer.reference_row()[b]),
        );
        // Each field gets half of what the product gains whichever joins first.
        let share_i = 0.5 * ((xa * rb - ra * rb) + (xa * xb - ra * xb));
        let share_j = 0.5 * ((ra * xb - ra * rb) + (xa * xb - xa * rb));
        for (index, (got, base)) in mixed.iter().zip(&plain).enumerate() {
            let expected = if index == i {
                share_i
            } else if index == j {
                share_j
            } else {
                0.0
            };
            assert!(
                (got.1 - base.1 - expected).abs() < 1e-3,
                "input {index}: {} against {}",
                got.1 - base.1,
                expected
            );
        }
    }

    fn model_probability(model: &mut Additive, row: &[f32]) -> f32 {
        let mut out = Vec::new();
        model.score_into(row, 1, &mut out).unwrap();
        out[0]
    }

    #[test]
    fn a_batch_gets_the_largest_positive_contributions_of_the_rows_it_wants() {
        let (schema, rows, preprocessor) = shipped();
        let reference = Reference::typical(&schema, &rows).unwrap();
        let mut explainer = Explainer::new(&preprocessor, &reference, 4).unwrap();
        let mut model = additive(&preprocessor, None);
        let features = preprocessor.transform_batch(&rows[..20]).unwrap();
        let mut probabilities = Vec::new();
        model.score_into(&features, 20, &mut probabilities).unwrap();
        let mut reasons = Reasons::default();
        explainer
            .explain(
                &mut model,
                &features,
                &probabilities,
                |row| row % 2 == 0,
                &mut reasons,
            )
            .unwrap();
        for (row, features) in features.chunks_exact(preprocessor.width).enumerate() {
            let got = reasons.of_row(row);
            if row % 2 == 1 {
                assert!(got.is_empty());
                continue;
            }
            let expected = explainer.reasons_of_row(&mut model, features).unwrap();
            assert_eq!(got.len(), expected.len(), "row {row}");
            for (reason, (field, contribution)) in got.iter().zip(&expected) {
                assert_eq!(reason.field, *field, "row {row}");
                assert!((f64::from(reason.contribution) - contribution).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn a_field_equal_to_the_reference_is_not_scored_again() {
        let (schema, rows, preprocessor) = shipped();
        let reference = Reference::typical(&schema, &rows).unwrap();
        let mut explainer = Explainer::new(&preprocessor, &reference, 4).unwrap();
        let mut model = additive(&preprocessor, None);
        let row = explainer.reference_row().to_vec();
        let mut probabilities = Vec::new();
        model.score_into(&row, 1, &mut probabilities).unwrap();
        let mut reasons = Reasons::default();
        explainer
            .explain(&mut model, &row, &probabilities, |_| true, &mut reasons)
            .unwrap();
        assert!(reasons.of_row(0).is_empty());
        assert!(explainer.owners.is_empty());
    }
}
