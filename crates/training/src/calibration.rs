//! Platt scaling: a logistic regression of the outcome on the model's logit, two parameters,
//! fitted on rows the model did not train on (Platt, 1999; the Newton method with a line search
//! of Lin, Lin & Weng, 2007).
//!
//! Why: class weights (or SMOTE-NC) train the network on a balanced mix, which multiplies the
//! odds it predicts by good/bad; a lender prices and sets limits from the probability, so it
//! must match the real population's bad rate. `sigmoid(a · logit + b)` undoes the shift and
//! any over- or under-confidence without changing the ranking (AUC) for `a > 0`.
//!
//! The targets are Platt's, `(N₊ + 1) / (N₊ + 2)` for bad rows and `1 / (N₋ + 2)` for good
//! ones rather than 1 and 0: they keep the fit finite when the logit separates the classes,
//! and they shift the fitted mean by less than one row's share.

use serde::{Deserialize, Serialize};

/// `p = sigmoid(a · logit + b)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlattScaling {
    pub a: f64,
    pub b: f64,
}

/// Why the scaling could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("{logits} logits but {labels} labels")]
    LengthMismatch { logits: usize, labels: usize },
    #[error("Platt scaling needs rows of both outcomes, got {bad} bad of {rows}")]
    OneOutcome { rows: usize, bad: usize },
    #[error("logit at index {index} is not finite")]
    NonFinite { index: usize },
    #[error("Platt scaling did not converge in {iterations} Newton steps")]
    NoConvergence { iterations: usize },
}

/// Newton steps before giving up; the problem is convex and two-dimensional, so a handful do.
const MAX_ITERATIONS: usize = 100;

/// `ln(1 + eˣ)` without overflow.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl PlattScaling {
    /// Leaves probabilities as they are.
    pub const IDENTITY: Self = Self { a: 1.0, b: 0.0 };

    /// Fits `a` and `b` by maximum likelihood of Platt's targets given `logits`.
    pub fn fit(logits: &[f32], labels: &[bool]) -> Result<Self, CalibrationError> {
        if logits.len() != labels.len() {
            return Err(CalibrationError::LengthMismatch {
                logits: logits.len(),
                labels: labels.len(),
            });
        }
        if let Some(index) = logits.iter().position(|l| !l.is_finite()) {
            return Err(CalibrationError::NonFinite { index });
        }
        let bad = labels.iter().filter(|&&bad| bad).count();
        let good = labels.len() - bad;
        if bad == 0 || good == 0 {
            return Err(CalibrationError::OneOutcome {
                rows: labels.len(),
                bad,
            });
        }
        let high = (bad as f64 + 1.0) / (bad as f64 + 2.0);
        let low = 1.0 / (good as f64 + 2.0);
        let data: Vec<(f64, f64)> = logits
            .iter()
            .zip(labels)
            .map(|(&f, &bad)| (f64::from(f), if bad { high } else { low }))
            .collect();
        let objective = |a: f64, b: f64| -> f64 {
            data.iter()
                .map(|&(f, t)| {
                    let z = a * f + b;
                    t * softplus(-z) + (1.0 - t) * softplus(z)
                })
                .sum()
        };
        let (mut a, mut b) = (Self::IDENTITY.a, Self::IDENTITY.b);
        let mut value = objective(a, b);
        for _ in 0..MAX_ITERATIONS {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &(f, t) in &data {
                let p = sigmoid(a * f + b);
                let d = p - t;
                let w = p * (1.0 - p);
                ga += d * f;
                gb += d;
                haa += w * f * f;
                hab += w * f;
                hbb += w;
            }
            // The gradient is a sum over rows: scale the tolerance with them.
            let tolerance = 1e-9 * data.len() as f64;
            if ga.abs() < tolerance && gb.abs() < tolerance {
                return Ok(Self { a, b });
            }
            // A tiny ridge keeps the Hessian invertible when every row has p near 0 or 1.
            let (haa, hbb) = (haa + 1e-12, hbb + 1e-12);
            let det = haa * hbb - hab * hab;
            let step_a = -(hbb * ga - hab * gb) / det;
            let step_b = -(-hab * ga + haa * gb) / det;
            let slope = ga * step_a + gb * step_b;
            let mut scale = 1.0;
            loop {
                let (na, nb) = (a + scale * step_a, b + scale * step_b);
                let candidate = objective(na, nb);
                if candidate <= value + 1e-4 * scale * slope {
                    (a, b, value) = (na, nb, candidate);
                    if (scale * step_a).abs().max((scale * step_b).abs()) < 1e-12 {
                        return Ok(Self { a, b });
                    }
                    break;
                }
                scale /= 2.0;
                if scale < 1e-10 {
                    // No step improves the objective: the gradient is as small as rounding allows.
                    return Ok(Self { a, b });
                }
            }
        }
        Err(CalibrationError::NoConvergence {
            iterations: MAX_ITERATIONS,
        })
    }

    /// The calibrated probability of a logit.
    pub fn probability(&self, logit: f32) -> f32 {
        sigmoid(self.a * f64::from(logit) + self.b) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn platt_scaling_recovers_the_scale_and_shift_that_generated_the_outcomes() {
        // Outcomes drawn with P(bad) = sigmoid(0.6 · logit − 0.8): the fit finds 0.6 and −0.8
        // within sampling error (about 0.02 and 0.02 for 20,000 rows).
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (a, b) = (0.6, -0.8);
        let logits: Vec<f32> = (0..20_000).map(|_| rng.gen_range(-4.0..4.0)).collect();
        let labels: Vec<bool> = logits
            .iter()
            .map(|&f| rng.gen::<f64>() < sigmoid(a * f64::from(f) + b))
            .collect();
        let fitted = PlattScaling::fit(&logits, &labels).unwrap();
        assert!((fitted.a - a).abs() < 0.05, "{fitted:?}");
        assert!((fitted.b - b).abs() < 0.05, "{fitted:?}");
    }

    #[test]
    fn the_fitted_mean_matches_the_observed_rate_within_one_rows_share() {
        // A logit that overstates the odds by 7/3 (the class-weight shift).
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let logits: Vec<f32> = (0..2_000).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let labels: Vec<bool> = logits
            .iter()
            .map(|&f| rng.gen::<f64>() < sigmoid(f64::from(f) - (7.0f64 / 3.0).ln()))
            .collect();
        let fitted = PlattScaling::fit(&logits, &labels).unwrap();
        let mean = logits
            .iter()
            .map(|&f| f64::from(fitted.probability(f)))
            .sum::<f64>()
            / logits.len() as f64;
        let observed = labels.iter().filter(|&&b| b).count() as f64 / labels.len() as f64;
        assert!(
            (mean - observed).abs() < 1.0 / 2_000.0,
            "{mean} vs {observed}"
        );
    }

    #[test]
    fn separable_rows_give_a_finite_fit() {
        let fitted = PlattScaling::fit(&[-2.0, -1.0, 1.0, 2.0], &[false, false, true, true]);
        let fitted = fitted.unwrap();
        assert!(fitted.a.is_finite() && fitted.a > 0.0, "{fitted:?}");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            PlattScaling::fit(&[0.0, 1.0], &[true, true]),
            Err(CalibrationError::OneOutcome { rows: 2, bad: 2 })
        );
        assert_eq!(
            PlattScaling::fit(&[0.0], &[true, false]),
            Err(CalibrationError::LengthMismatch {
                logits: 1,
                labels: 2
            })
        );
        assert_eq!(
            PlattScaling::fit(&[0.0, f32::NAN], &[true, false]),
            Err(CalibrationError::NonFinite { index: 1 })
        );
    }
}
