//! A synthetic retail loan book whose true probability of default is known for every
//! applicant: the second lender's data (`schemas/retail-loan.toml`), and a yardstick, since
//! the AUC of the true probabilities is the best any model can reach on the book.
//!
//! The generative process (documented in docs/schema.md), applicant by applicant:
//! - age ~ 21 + Gamma-like (sum of two exponentials, mean 20), capped at 85;
//! - annual income ~ LogNormal(ln 52,000 + 0.012 (age − 40) − 0.00025 (age − 40)², 0.55);
//! - employment years ~ min(age − 18, Exponential(mean 6)), missing for 8%;
//! - home ownership: mortgage 38%, rent 42%, own 14%, other 6% (own more likely past 50);
//! - purpose: debt consolidation 45%, credit card 20%, home improvement 10%, car 8%, medical 5%,
//!   small business 4%, other 8%;
//! - debt-to-income ~ Normal(18, 8) clipped to [0, 60]; delinquencies ~ Poisson(0.35);
//!   open accounts ~ 1 + Poisson(9); revolving utilisation ~ Beta-like(2, 3) × 1.2, missing
//!   (no revolving line) for 5%;
//! - loan amount ~ LogNormal(ln 12,000 + 0.5 ln(income / 52,000), 0.6) clipped to [1,000,
//!   60,000]; term 36 months (70%) or 60; income verified for 60%;
//! - the true log-odds of default: −2.3 + 0.045 (dti − 18) + 0.55 delinquencies
//!   + 1.6 (utilisation − 0.45) (0.35 if missing) − 0.5 ln(income / 52,000)
//!   + 0.35 ln(loan / 12,000) + 0.45 [term 60] + 0.25 [rent] − 0.2 [own]
//!   + {small business 0.6, medical 0.3, credit card −0.2, home improvement −0.1}
//!   − 0.04 min(employment years, 10) (+0.3 if missing) − 0.02 (open accounts − 10)
//!   − 0.15 [verified];
//!   age has no direct effect (only through income); `defaulted` ~ Bernoulli(true PD).
//!
//! Deterministic for a seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;

/// One applicant of the book, with the outcome drawn and the probability it was drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoanRow {
    pub application_id: String,
    pub annual_income: f64,
    pub debt_to_income: f64,
    pub employment_years: Option<u32>,
    pub home_ownership: &'static str,
    pub purpose: &'static str,
    pub delinquencies_2y: u32,
    pub revolving_utilisation: Option<f64>,
    pub open_accounts: u32,
    pub loan_amount: f64,
    pub term_months: u32,
    pub verified_income: bool,
    pub age_years: u32,
    /// The true probability of default.
    pub true_pd: f64,
    pub defaulted: bool,
}

/// The book's CSV header: the schema's fields, the label, then the true probability.
pub const HEADER: [&str; 15] = [
    "application_id",
    "annual_income",
    "debt_to_income",
    "employment_years",
    "home_ownership",
    "purpose",
    "delinquencies_2y",
    "revolving_utilisation",
    "open_accounts",
    "loan_amount",
    "term_months",
    "verified_income",
    "age_years",
    "defaulted",
    "true_pd",
];

/// `rows` applicants drawn with `seed`.
pub fn draw(rows: usize, seed: u64) -> Vec<LoanRow> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows).map(|index| applicant(&mut rng, index)).collect()
}

/// Writes `rows` as CSV (header first); numbers rounded to what a loan system stores.
pub fn write_csv(rows: &[LoanRow], out: impl Write) -> std::io::Result<()> {
    let mut writer = std::io::BufWriter::new(out);
    writeln!(writer, "{}", HEADER.join(","))?;
    for row in rows {
        let optional = |value: Option<String>| value.unwrap_or_default();
        writeln!(
            writer,
            "{},{:.0},{:.2},{},{},{},{},{},{},{:.0},{},{},{},{},{:.6}",
            row.application_id,
            row.annual_income,
            row.debt_to_income,
            optional(row.employment_years.map(|years| years.to_string())),
            row.home_ownership,
            row.purpose,
            row.delinquencies_2y,
            optional(row.revolving_utilisation.map(|u| format!("{u:.3}"))),
            row.open_accounts,
            row.loan_amount,
            row.term_months,
            row.verified_income,
            row.age_years,
            if row.defaulted { "yes" } else { "no" },
            row.true_pd,
        )?;
    }
    writer.flush()
}

fn applicant(rng: &mut ChaCha8Rng, index: usize) -> LoanRow {
    let age = (21.0 + exponential(rng, 10.0) + exponential(rng, 10.0))
        .min(85.0)
        .floor();
    let centred = age - 40.0;
    let income = (normal(rng) * 0.55 + 52_000f64.ln() + 0.012 * centred
        - 0.00025 * centred * centred)
        .exp()
        .clamp(6_000.0, 2_000_000.0);
    let employment_years = (rng.gen::<f64>() >= 0.08).then(|| {
        exponential(rng, 6.0)
            .min(age - 18.0)
            .clamp(0.0, 50.0)
            .floor() as u32
    });
    let own_bias = if age > 50.0 { 0.12 } else { 0.0 };
    let home_ownership = pick(
        rng,
        &[
            ("mortgage", 0.38),
            ("rent", 0.42 - own_bias),
            ("own", 0.14 + own_bias),
            ("other", 0.06),
        ],
    );
    let purpose = pick(
        rng,
        &[
            ("debt_consolidation", 0.45),
            ("credit_card", 0.20),
            ("home_improvement", 0.10),
            ("car", 0.08),
            ("medical", 0.05),
            ("small_business", 0.04),
            ("other", 0.08),
        ],
    );
    let debt_to_income = (18.0 + 8.0 * normal(rng)).clamp(0.0, 60.0);
    let delinquencies = poisson(rng, 0.35).min(30);
    let open_accounts = (1 + poisson(rng, 9.0)).min(80);
    let utilisation = (rng.gen::<f64>() >= 0.05).then(|| (beta_2_3(rng) * 1.2).min(1.5));
    let loan_amount = (12_000f64.ln() + 0.5 * (income / 52_000.0).ln() + 0.6 * normal(rng))
        .exp()
        .clamp(1_000.0, 60_000.0);
    let term_months = if rng.gen::<f64>() < 0.7 { 36 } else { 60 };
    let verified = rng.gen::<f64>() < 0.6;

    let purpose_effect = match purpose {
        "small_business" => 0.6,
        "medical" => 0.3,
        "credit_card" => -0.2,
        "home_improvement" => -0.1,
        _ => 0.0,
    };
    let home_effect = match home_ownership {
        "rent" => 0.25,
        "own" => -0.2,
        _ => 0.0,
    };
    let log_odds = -2.3
        + 0.045 * (debt_to_income - 18.0)
        + 0.55 * f64::from(delinquencies)
        + utilisation.map_or(0.35, |u| 1.6 * (u - 0.45))
        - 0.5 * (income / 52_000.0).ln()
        + 0.35 * (loan_amount / 12_000.0).ln()
        + if term_months == 60 { 0.45 } else { 0.0 }
        + home_effect
        + purpose_effect
        + employment_years.map_or(0.3, |years| -0.04 * f64::from(years.min(10)))
        - 0.02 * (f64::from(open_accounts) - 10.0)
        - if verified { 0.15 } else { 0.0 };
    let true_pd = 1.0 / (1.0 + (-log_odds).exp());
    let defaulted = rng.gen::<f64>() < true_pd;
    LoanRow {
        application_id: format!("loan-{:07}", index + 1),
        annual_income: income.round(),
        debt_to_income: (debt_to_income * 100.0).round() / 100.0,
        employment_years,
        home_ownership,
        purpose,
        delinquencies_2y: delinquencies,
        revolving_utilisation: utilisation.map(|u| (u * 1000.0).round() / 1000.0),
        open_accounts,
        loan_amount: loan_amount.round(),
        term_months,
        verified_income: verified,
        age_years: age as u32,
        true_pd,
        defaulted,
    }
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let v: f64 = rng.gen();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    -mean * u.ln()
}

/// A Poisson draw (Knuth's method; the means here are small).
fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let limit = (-mean).exp();
    let mut product: f64 = rng.gen();
    let mut count = 0;
    while product > limit {
        product *= rng.gen::<f64>();
        count += 1;
    }
    count
}

/// A Beta(2, 3) draw: the second smallest of four uniforms.
fn beta_2_3(rng: &mut ChaCha8Rng) -> f64 {
    let mut draws: [f64; 4] = [rng.gen(), rng.gen(), rng.gen(), rng.gen()];
    draws.sort_by(f64::total_cmp);
    draws[1]
}

fn pick(rng: &mut ChaCha8Rng, choices: &[(&'static str, f64)]) -> &'static str {
    let total: f64 = choices.iter().map(|(_, weight)| weight).sum();
    let mut draw = rng.gen::<f64>() * total;
    for (value, weight) in choices {
        if draw < *weight {
            return value;
        }
        draw -= weight;
    }
    choices.last().map_or("", |(value, _)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_book_and_another_seed_another() {
        assert_eq!(draw(200, 7), draw(200, 7));
        assert_ne!(draw(200, 7), draw(200, 8));
    }

    #[test]
    fn the_default_rate_follows_the_true_probabilities() {
        let rows = draw(40_000, 1);
        let mean_pd = rows.iter().map(|row| row.true_pd).sum::<f64>() / rows.len() as f64;
        let rate = rows.iter().filter(|row| row.defaulted).count() as f64 / rows.len() as f64;
        assert!((0.10..0.25).contains(&mean_pd), "mean true PD {mean_pd}");
        assert!(
            (rate - mean_pd).abs() < 0.01,
            "rate {rate} against {mean_pd}"
        );
        let missing = rows
            .iter()
            .filter(|row| row.employment_years.is_none())
            .count();
        assert!(
            (2_800..3_600).contains(&missing),
            "{missing} without employment years"
        );
    }
}
