//! Writes the synthetic retail loan book (see `credit_synthetic::loan_book`) as CSV.
//!
//! `cargo run --release -p credit-synthetic --bin loan-book -- --rows 20000 --seed 2026 \
//!  --out data/retail_loan_book.csv` writes the shipped book.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "Write a synthetic retail loan book with known true probabilities of default")]
struct Args {
    /// Applicants to draw.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Output CSV file.
    #[arg(long, default_value = "data/retail_loan_book.csv")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rows = credit_synthetic::loan_book::draw(args.rows, args.seed);
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    credit_synthetic::loan_book::write_csv(&rows, file)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let defaults = rows.iter().filter(|row| row.defaulted).count();
    println!(
        "{} applicants, {defaults} defaults ({:.1}%), written to {}",
        rows.len(),
        100.0 * defaults as f64 / rows.len().max(1) as f64,
        args.out.display()
    );
    Ok(())
}
