//! Are the published adverse-action reasons the model's? A faithfulness report, not a test.
//!
//! ```text
//! ORT_DYLIB_PATH=$PWD/.onnxruntime/libonnxruntime.so cargo bench --bench reasons -- \
//!     [--model models] [--data data/german_credit.csv] [--declines 200] [--seed 7]
//! ```
//!
//! Scores every row of `--data` with the bundle's model, draws `--declines` of the rows it
//! declines (seeded), and for each compares the reasons the worker would publish
//! ([`credit_core::explain::Explainer::explain`], the same call) with the exact Shapley values
//! of the model's input fields: every coalition of fields taken from the applicant, the others
//! from the bundle's reference applicant (`reference.json`), each coalition scored by the model
//! through ONNX Runtime, the game's value the log-odds of `bad`. Prints how often the top
//! published reason is the field with the largest Shapley value, how many of the top four
//! agree on average, and the efficiency check (Shapley values sum to the log-odds gap between
//! applicant and reference). Writes the figures to `target/bench-reasons.json`.

use anyhow::{bail, Context, Result};
use credit_core::dataset;
use credit_core::explain::{logit, Explainer, Reasons};
use credit_core::loader::{self, LoadOptions};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    model: PathBuf,
    data: PathBuf,
    declines: usize,
    seed: u64,
    top: usize,
}

fn args() -> Result<Args> {
    let mut args = Args {
        model: PathBuf::from("models"),
        data: PathBuf::from("data/german_credit.csv"),
        declines: 200,
        seed: 7,
        top: 4,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || {
            given
                .next()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--model" => args.model = value()?.into(),
            "--data" => args.data = value()?.into(),
            "--declines" => args.declines = value()?.parse()?,
            "--seed" => args.seed = value()?.parse()?,
            "--top" => args.top = value()?.parse()?,
            // cargo bench passes its own flags through.
            "--bench" => {}
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

/// Fields of the `k` largest values, largest first.
fn top_fields(values: &[(usize, f64)], k: usize) -> Vec<usize> {
    let mut ranked = values.to_vec();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.into_iter().take(k).map(|(field, _)| field).collect()
}

fn main() -> Result<()> {
    let args = args()?;
    let model = loader::load(&LoadOptions {
        dir: &args.model,
        ort_dylib: None,
        threshold: None,
        intra_threads: 1,
    })?;
    let reference = model
        .reference
        .clone()
        .context("the bundle has no reference.json: retrain it to get reasons")?;
    let schema = &model.schema;
    let mut scorer = model.scorer;
    let rows = dataset::load_labelled(schema, &args.data)?;
    let applicants: Vec<_> = rows.into_iter().map(|row| row.applicant).collect();
    let features = model.preprocessor.transform_batch(&applicants)?;
    let width = model.preprocessor.width;
    let mut probabilities = Vec::new();
    scorer.score_into(&features, applicants.len(), &mut probabilities)?;

    let mut declined: Vec<usize> = (0..applicants.len())
        .filter(|&row| probabilities[row] >= model.threshold)
        .collect();
    let declines_in_file = declined.len();
    declined.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(args.seed));
    declined.truncate(args.declines);
    if declined.is_empty() {
        bail!("the model declines none of the {} rows", applicants.len());
    }

    let mut explainer = Explainer::new(&model.preprocessor, &reference, args.top)?;
    let inputs = model.preprocessor.attributes.len();
    let mut sample = Vec::with_capacity(declined.len() * width);
    let mut sample_probabilities = Vec::with_capacity(declined.len());
    for &row in &declined {
        sample.extend_from_slice(&features[row * width..(row + 1) * width]);
        sample_probabilities.push(probabilities[row]);
    }
    let mut reasons = Reasons::default();
    explainer.explain(
        &mut scorer,
        &sample,
        &sample_probabilities,
        |_| true,
        &mut reasons,
    )?;

    let started = Instant::now();
    let (mut top_match, mut overlap, mut compared, mut worst_efficiency) = (0, 0, 0, 0f64);
    let reference_row = explainer.reference_row().to_vec();
    let mut reference_probability = Vec::new();
    scorer.score_into(&reference_row, 1, &mut reference_probability)?;
    for (at, row) in sample.chunks_exact(width).enumerate() {
        let shapley = explainer.exact_shapley(&mut scorer, row)?;
        let gap = logit(sample_probabilities[at]) - logit(reference_probability[0]);
        let total: f64 = shapley.iter().map(|(_, phi)| phi).sum();
        worst_efficiency = worst_efficiency.max((total - gap).abs());
        let published: Vec<usize> = reasons.of_row(at).iter().map(|r| r.field).collect();
        let expected = top_fields(&shapley, args.top);
        if published.first() == expected.first() {
            top_match += 1;
        }
        overlap += published.iter().filter(|f| expected.contains(f)).count();
        compared += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let top_share = top_match as f64 / compared as f64;
    let mean_overlap = overlap as f64 / compared as f64;
    println!(
        "model {} ({} input fields, {} coalitions each), {} of {} rows declined, {} sampled (seed {})",
        model.version,
        inputs,
        1usize << inputs,
        declines_in_file,
        applicants.len(),
        compared,
        args.seed
    );
    println!(
        "top reason is the largest Shapley value: {top_match}/{compared} = {:.1}% (target >= 90%)",
        100.0 * top_share
    );
    println!(
        "top {} agreeing: {mean_overlap:.2} on average (target >= 3 of 4)",
        args.top
    );
    println!(
        "efficiency: Shapley values sum to the log-odds gap to the reference within {worst_efficiency:.1e}"
    );
    println!("exact Shapley: {seconds:.1} s");
    let json = serde_json::json!({
        "model_version": model.version,
        "data": args.data,
        "input_fields": inputs,
        "declined_in_file": declines_in_file,
        "sampled": compared,
        "seed": args.seed,
        "top": args.top,
        "top_reason_match": top_share,
        "mean_top_overlap": mean_overlap,
        "worst_efficiency_error": worst_efficiency,
        "shapley_seconds": seconds,
    });
    let out = PathBuf::from("target/bench-reasons.json");
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
