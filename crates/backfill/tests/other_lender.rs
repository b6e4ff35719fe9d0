//! The backfill on another lender's applicants: a small made-up schema with a key column, an
//! optional number, a boolean and categories spelled one way in the lender's files and another
//! on the wire, scored end to end with a bundle of that schema (a randomly initialised network:
//! the test is about reading and writing, not about the model).

use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use credit_backfill::row::{InputPosition, InputRow, RejectedRow};
use credit_backfill::{source, synthetic_files};
use credit_backfill::{BackfillModel, Format, OutputPaths, ScoreOptions, Shard};
use credit_core::applicant::{Applicant, AttributeValue};
use credit_core::dataset::{self, LabelledApplicant};
use credit_core::schema::Schema;
use credit_synthetic::Generator;
use credit_testkit::scenarios::write_test_bundle;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const SCHEMA: &str = r#"
name = "retail-test"
description = "A made-up retail lender, for tests"

[[field]]
name = "loan_ref"
label = "Loan reference"
column = "LoanRef"
type = "text"
max_length = 16
role = "key"

[[field]]
name = "income"
label = "Annual income"
column = "Income"
type = "number"
min = 0
max = 10_000_000
transform = "log1p"

[[field]]
name = "debt_to_income"
label = "Debt to income ratio"
type = "number"
min = 0
max = 5
required = false

[[field]]
name = "home_owner"
label = "Owns a home"
type = "boolean"

[[field]]
name = "purpose"
label = "Purpose of the loan"
column = "LoanPurpose"
type = "category"
categories = [
    { value = "car", label = "Car", data = "CAR" },
    { value = "home_improvement", label = "Home improvement", data = "HOME" },
    { value = "other", label = "Other purpose" },
]

[[field]]
name = "defaulted"
label = "Defaulted"
column = "Defaulted"
type = "category"
role = "label"
bad = "yes"
categories = [
    { value = "no", label = "Repaid" },
    { value = "yes", label = "Defaulted" },
]
"#;

/// The lender's loan book, as its own files spell it.
const LOAN_BOOK: &str = "\
LoanRef,Income,debt_to_income,home_owner,LoanPurpose,Defaulted
L-001,52000,0.35,true,CAR,no
L-002,31000,,false,HOME,yes
L-003,87000.5,0.1,true,other,no
L-004,,0.5,false,CAR,no
L-005,45000,0.8,false,boat,yes
L-006,23000,1.2,false,HOME,yes
L-007,99000,,true,car,no
L-008,61000,0.4,maybe,CAR,no
";

fn schema() -> Arc<Schema> {
    Arc::new(Schema::parse(SCHEMA, "retail-test.toml").unwrap())
}

/// Labelled applicants of the schema, varied enough to fit a preprocessor and a generator.
fn seed_rows(schema: &Schema) -> Vec<LabelledApplicant> {
    (0..40)
        .map(|i| {
            let values = vec![
                AttributeValue::Missing,
                AttributeValue::Numeric(20_000.0 + 2_500.0 * f64::from(i)),
                if i % 5 == 0 {
                    AttributeValue::Missing
                } else {
                    AttributeValue::Numeric(f64::from(i % 10) * 0.1)
                },
                AttributeValue::Categorical((i % 2) as usize),
                AttributeValue::Categorical((i % 3) as usize),
                AttributeValue::Missing,
            ];
            LabelledApplicant {
                applicant: Applicant::from_values(schema, values).unwrap(),
                bad: i % 4 == 0,
            }
        })
        .collect()
}

fn model(dir: &Path) -> BackfillModel {
    let schema = schema();
    let applicants: Vec<Applicant> = seed_rows(&schema)
        .into_iter()
        .map(|row| row.applicant)
        .collect();
    write_test_bundle(dir, &schema, &applicants, 0.5, 3).unwrap();
    BackfillModel::load(dir, None, None).unwrap()
}

fn options(input: &Path, output: &Path) -> ScoreOptions {
    ScoreOptions {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        include_fields: true,
        batch_size: 3,
        workers: 2,
        durable: false,
        ..ScoreOptions::default()
    }
}

/// The loans of `rows`: id, applicant and outcome (row positions differ between an input and
/// the output that left its rejected rows out).
fn loans(rows: &[InputRow]) -> Vec<(String, Applicant, Option<bool>)> {
    rows.iter()
        .map(|row| (row.application_id.clone(), row.applicant.clone(), row.bad))
        .collect()
}

/// Every row of a file, read with `schema`, and the rows it rejects.
fn read(schema: &Arc<Schema>, path: &Path) -> (Vec<InputRow>, Vec<RejectedRow>) {
    let format = Format::resolve(None, path).unwrap();
    let (mut source, decoder) =
        source::open(Arc::clone(schema), path, format, InputPosition::default()).unwrap();
    let (mut rows, mut rejections) = (Vec::new(), Vec::new());
    while let Some(chunk) = source.next_chunk(4).unwrap() {
        decoder
            .decode(&chunk, Shard::ALL, &mut rows, &mut rejections)
            .unwrap();
    }
    (rows, rejections)
}

#[test]
fn another_lenders_loan_book_is_scored_and_written_by_its_own_schema() {
    let dir = tempfile::tempdir().unwrap();
    let model = model(&dir.path().join("bundle"));
    let schema = Arc::clone(&model.schema);
    assert_eq!(schema.name(), "retail-test");
    let input = dir.path().join("book.csv");
    std::fs::write(&input, LOAN_BOOK).unwrap();

    // CSV in the lender's layout -> Parquet, and the Parquet output read back.
    let scored = dir.path().join("scored.parquet");
    let summary = credit_backfill::run(&options(&input, &scored), &model, &|_| {}).unwrap();
    assert_eq!((summary.rows, summary.rejects), (5, 3));
    let backtest = summary.backtest.unwrap();
    assert_eq!(backtest.labelled_rows, 5);

    let rejections =
        credit_backfill::rejects::read(&OutputPaths::for_output(&scored).rejects).unwrap();
    let by_row: BTreeMap<u64, (&str, &str)> = rejections
        .iter()
        .map(|r| (r.row, (r.field.as_str(), r.reason.as_str())))
        .collect();
    assert_eq!(by_row.keys().copied().collect::<Vec<_>>(), [4, 5, 8]);
    // A required field left empty is a missing field; an optional one is a missing value.
    assert_eq!(by_row[&4].0, "income");
    assert!(by_row[&4].1.contains("missing"), "{:?}", by_row[&4]);
    assert_eq!(by_row[&5].0, "purpose");
    assert!(by_row[&5].1.contains("boat"), "{:?}", by_row[&5]);
    assert_eq!(by_row[&8].0, "home_owner");

    let (original, _) = read(&schema, &input);
    let (read_back, rejected) = read(&schema, &scored);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(loans(&read_back), loans(&original));
    let ids: Vec<&str> = read_back
        .iter()
        .map(|r| r.application_id.as_str())
        .collect();
    assert_eq!(ids, ["L-001", "L-002", "L-003", "L-006", "L-007"]);
    let debt = |row: &InputRow| row.applicant.value(&schema, "debt_to_income").unwrap();
    assert_eq!(debt(&read_back[1]), AttributeValue::Missing);
    assert_eq!(debt(&read_back[0]), AttributeValue::Numeric(0.35));
    assert_eq!(read_back[1].bad, Some(true));
    assert_eq!(read_back[0].bad, Some(false));

    // The Parquet columns are typed by the fields' kinds, named by the schema.
    let part = std::fs::read_dir(&scored)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(part).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .next()
    .unwrap()
    .unwrap();
    let columns = batch.schema();
    let column = |name: &str| columns.field_with_name(name).unwrap().clone();
    assert_eq!(column("income").data_type(), &DataType::Float64);
    assert!(!column("income").is_nullable());
    assert_eq!(column("debt_to_income").data_type(), &DataType::Float64);
    assert!(column("debt_to_income").is_nullable());
    assert_eq!(column("home_owner").data_type(), &DataType::Boolean);
    assert_eq!(column("purpose").data_type(), &DataType::Utf8);
    let purposes = batch
        .column(columns.index_of("purpose").unwrap())
        .as_string::<i32>();
    assert_eq!(purposes.value(1), "home_improvement", "the wire value");
    assert!(
        columns.field_with_name("loan_ref").is_err(),
        "the key is the id column"
    );

    // JSON Lines output: wire values by field name, a missing value null, the outcome by the
    // label field's name; read back as an input, the same loans.
    let lines = dir.path().join("scored.jsonl");
    credit_backfill::run(&options(&input, &lines), &model, &|_| {}).unwrap();
    let text = std::fs::read_to_string(&lines).unwrap();
    let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["application_id"], "L-002");
    assert_eq!(second["debt_to_income"], serde_json::Value::Null);
    assert_eq!(second["home_owner"], false);
    assert_eq!(second["purpose"], "home_improvement");
    assert_eq!(second["defaulted"], "yes");
    let (from_lines, rejected) = read(&schema, &lines);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(loans(&from_lines), loans(&original));

    // CSV output, read back too.
    let table = dir.path().join("scored.csv");
    credit_backfill::run(&options(&input, &table), &model, &|_| {}).unwrap();
    let header = std::fs::read_to_string(&table).unwrap();
    assert!(header.starts_with(
        "application_id,decision,probability_bad,threshold,model_version,reasons,\
         income,debt_to_income,home_owner,purpose,defaulted\n"
    ));
    assert_eq!(loans(&read(&schema, &table).0), loans(&original));
}

#[test]
fn another_lenders_synthetic_files_follow_its_schema_in_every_format() {
    let schema = schema();
    let generator = Generator::new(&schema, seed_rows(&schema), 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for format in Format::ALL {
        let path = dir.path().join(format!("book.{format}"));
        synthetic_files::generate_to_file(&generator, &path, format, 200, true, &|_| {}).unwrap();
        let (rows, rejected) = read(&schema, &path);
        assert!(rejected.is_empty(), "{format}: {rejected:?}");
        assert_eq!(rows.len(), 200);
        assert_eq!(rows[0].application_id, "gen-000000001");
        assert!(rows.iter().all(|row| row.bad.is_some()));
        assert!(rows
            .iter()
            .any(|row| row.applicant.value(&schema, "debt_to_income")
                == Some(AttributeValue::Missing)));
    }
    // The CSV is in the lender's layout: its column names and data spellings, loadable as
    // its training data.
    let csv = dir.path().join("book.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("LoanRef,Income,debt_to_income,home_owner,LoanPurpose,Defaulted\n"));
    assert!(text.contains(",CAR,") || text.contains(",HOME,"), "{text}");
    assert_eq!(dataset::load_labelled(&schema, &csv).unwrap().len(), 200);
}
