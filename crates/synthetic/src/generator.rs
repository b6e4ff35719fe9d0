//! Drawing synthetic applicants between real neighbours (see the [module docs](super)).
//!
//! Rows are generated in blocks of [`BLOCK_ROWS`]; block `b` uses a ChaCha8 generator seeded
//! with the seed on stream `b`, so any block can be produced on its own (in parallel, or after
//! a restart) and row `i` never depends on how many rows were requested.

use super::neighbours::same_class_neighbours;
use credit_core::applicant::{Applicant, AttributeValue, RecordError};
use credit_core::dataset::LabelledApplicant;
use credit_core::schema::{FieldKind, Schema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows per independently seeded block.
pub const BLOCK_ROWS: u64 = 4096;
/// Neighbours an anchor may be paired with.
pub(crate) const NEIGHBOURS: usize = 5;

/// One synthetic applicant.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedRow {
    /// `gen-000000001`, ... (1-based).
    pub application_id: String,
    pub applicant: Applicant,
    /// The anchor's class (`true` = bad).
    pub bad: bool,
}

/// Why no generator could be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeneratorError {
    #[error("the generator needs at least two applicants of each class in the seed data")]
    TooFewRows,
    #[error("interpolated applicant is invalid: {0}")]
    Invalid(#[from] RecordError),
}

/// Generates applicants resembling `seed_rows`.
#[derive(Debug, Clone)]
pub struct Generator {
    schema: Schema,
    rows: Vec<LabelledApplicant>,
    neighbours: Vec<Vec<usize>>,
    seed: u64,
}

impl Generator {
    /// Prepares a generator (neighbour search over `seed_rows`, read with `schema`).
    pub fn new(
        schema: &Schema,
        seed_rows: Vec<LabelledApplicant>,
        seed: u64,
    ) -> Result<Self, GeneratorError> {
        let applicants: Vec<&Applicant> = seed_rows.iter().map(|r| &r.applicant).collect();
        let class: Vec<bool> = seed_rows.iter().map(|r| r.bad).collect();
        let neighbours = same_class_neighbours(&applicants, &class, NEIGHBOURS);
        if neighbours.is_empty() || neighbours.iter().any(Vec::is_empty) {
            return Err(GeneratorError::TooFewRows);
        }
        Ok(Self {
            schema: schema.clone(),
            rows: seed_rows,
            neighbours,
            seed,
        })
    }

    /// The schema of the rows it generates.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Rows `first..first + count` (0-based), appended to `out`.
    pub fn generate(
        &self,
        first: u64,
        count: u64,
        out: &mut Vec<GeneratedRow>,
    ) -> Result<(), GeneratorError> {
        let end = first + count;
        let mut index = first;
        while index < end {
            let block = index / BLOCK_ROWS;
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(block);
            // Skip the rows of the block before `index` (only at a non-aligned start).
            let block_start = block * BLOCK_ROWS;
            for _ in block_start..index {
                self.draw(&mut rng)?;
            }
            let block_end = (block_start + BLOCK_ROWS).min(end);
            while index < block_end {
                let (applicant, bad) = self.draw(&mut rng)?;
                out.push(GeneratedRow {
                    application_id: format!("gen-{:09}", index + 1),
                    applicant,
                    bad,
                });
                index += 1;
            }
        }
        Ok(())
    }

    /// One applicant and its class.
    fn draw(&self, rng: &mut ChaCha8Rng) -> Result<(Applicant, bool), GeneratorError> {
        let anchor = rng.gen_range(0..self.rows.len());
        let partners = &self.neighbours[anchor];
        let partner = partners[rng.gen_range(0..partners.len())];
        let u: f64 = rng.gen();
        let a = self.rows[anchor].applicant.values();
        let b = self.rows[partner].applicant.values();
        let mut values = a.to_vec();
        for (attribute, (value, field)) in values.iter_mut().zip(self.schema.fields()).enumerate() {
            // One draw per attribute whatever its kind, so the stream stays aligned.
            let pick: f64 = rng.gen();
            *value = match (&field.kind, a[attribute], b[attribute]) {
                (
                    FieldKind::Integer { min, max },
                    AttributeValue::Numeric(x),
                    AttributeValue::Numeric(y),
                ) => {
                    let interpolated = (x + u * (y - x)).round();
                    AttributeValue::Numeric(interpolated.clamp(*min as f64, *max as f64))
                }
                (
                    FieldKind::Number { min, max },
                    AttributeValue::Numeric(x),
                    AttributeValue::Numeric(y),
                ) => AttributeValue::Numeric((x + u * (y - x)).clamp(*min, *max)),
                // Closer to the partner (large u), more of the partner's categories.
                (_, from_anchor, from_partner) => {
                    if pick < u {
                        from_partner
                    } else {
                        from_anchor
                    }
                }
            };
        }
        let applicant = Applicant::from_values(&self.schema, values)?;
        Ok((applicant, self.rows[anchor].bad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::dataset::shipped_german_credit;
    use credit_core::schema::german_credit;

    fn generator(seed: u64) -> Generator {
        Generator::new(&german_credit(), shipped_german_credit(), seed).unwrap()
    }

    /// Field `name` of every row, as numbers.
    fn numbers(g: &Generator, rows: &[GeneratedRow], name: &str) -> Vec<f64> {
        rows.iter()
            .map(|r| match r.applicant.value(g.schema(), name) {
                Some(AttributeValue::Numeric(x)) => x,
                other => panic!("{name} is {other:?}"),
            })
            .collect()
    }

    #[test]
    fn same_seed_same_rows_whatever_the_split() {
        let g = generator(7);
        let mut whole = Vec::new();
        g.generate(0, 10_000, &mut whole).unwrap();
        let mut pieces = Vec::new();
        g.generate(0, 4000, &mut pieces).unwrap();
        g.generate(4000, 6000, &mut pieces).unwrap();
        assert_eq!(whole, pieces);
        let mut other = Vec::new();
        generator(8).generate(0, 100, &mut other).unwrap();
        assert_ne!(&whole[..100], &other[..]);
        assert_eq!(whole[0].application_id, "gen-000000001");
    }

    #[test]
    fn rows_resemble_the_data_set() {
        let g = generator(1);
        let mut rows = Vec::new();
        g.generate(0, 20_000, &mut rows).unwrap();
        let bad = rows.iter().filter(|r| r.bad).count() as f64 / rows.len() as f64;
        assert!((bad - 0.3).abs() < 0.02, "bad share {bad}");
        let ages = numbers(&g, &rows, "age_years");
        let mean_age = ages.iter().sum::<f64>() / rows.len() as f64;
        assert!((mean_age - 35.5).abs() < 1.5, "mean age {mean_age}");
        // Longer loans are larger in the data (correlation ~0.62); interpolation keeps that.
        let xs = numbers(&g, &rows, "duration_months");
        let ys = numbers(&g, &rows, "credit_amount_dm");
        let correlation = pearson(&xs, &ys);
        assert!(
            correlation > 0.5,
            "duration/amount correlation {correlation}"
        );
    }

    fn pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        cov / (vx.sqrt() * vy.sqrt())
    }
}
