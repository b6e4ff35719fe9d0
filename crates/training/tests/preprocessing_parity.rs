//! The worker's path (raw JSON → `Applicant::from_json` → preprocessor) gives exactly the
//! tensor the trainer's path (CSV row → loader → preprocessor) gives, for every applicant.
//!
//! The JSON is built from the CSV text with a hand-written label → wire-name table, not with
//! the schema's own `data` spellings, so a drift between the schema file's two spellings of a
//! category shows up here.

use credit_core::applicant::Applicant;
use credit_core::dataset::shipped_german_credit;
use credit_core::preprocess::Preprocessor;
use credit_core::schema::german_credit;
use std::collections::HashMap;
use std::path::Path;

/// (CSV label, wire value) pairs of one categorical column.
type Labels = &'static [(&'static str, &'static str)];

/// (CSV column, JSON field, labels) for categorical columns.
const CATEGORICAL: &[(&str, &str, Labels)] = &[
    (
        "status_of_existing_checking_account",
        "checking_account",
        &[
            ("... < 0 DM", "below_0_dm"),
            ("0 <= ... < 200 DM", "below_200_dm"),
            (
                "... >= 200 DM / salary assignments for at least 1 year",
                "at_least_200_dm_or_salary",
            ),
            ("no checking account", "no_checking_account"),
        ],
    ),
    (
        "credit_history",
        "credit_history",
        &[
            (
                "no credits taken/ all credits paid back duly",
                "no_credits_or_all_paid_back",
            ),
            (
                "all credits at this bank paid back duly",
                "all_paid_back_at_this_bank",
            ),
            (
                "existing credits paid back duly till now",
                "existing_paid_back_duly",
            ),
            ("delay in paying off in the past", "delay_in_past"),
            (
                "critical account/ other credits existing (not at this bank)",
                "critical_account",
            ),
        ],
    ),
    (
        "purpose",
        "purpose",
        &[
            ("car (new)", "car_new"),
            ("car (used)", "car_used"),
            ("furniture/equipment", "furniture_equipment"),
            ("radio/television", "radio_television"),
            ("domestic appliances", "domestic_appliances"),
            ("repairs", "repairs"),
            ("education", "education"),
            ("retraining", "retraining"),
            ("business", "business"),
            ("others", "others"),
        ],
    ),
    (
        "savings_account_and_bonds",
        "savings",
        &[
            ("... < 100 DM", "below_100_dm"),
            ("100 <= ... < 500 DM", "below_500_dm"),
            ("500 <= ... < 1000 DM", "below_1000_dm"),
            ("... >= 1000 DM", "at_least_1000_dm"),
            ("unknown/ no savings account", "unknown_or_none"),
        ],
    ),
    (
        "present_employment_since",
        "employment_since",
        &[
            ("unemployed", "unemployed"),
            ("... < 1 year", "below_1_year"),
            ("1 <= ... < 4 years", "below_4_years"),
            ("4 <= ... < 7 years", "below_7_years"),
            ("... >= 7 years", "at_least_7_years"),
        ],
    ),
    (
        "personal_status_and_sex",
        "personal_status_sex",
        &[
            ("male : divorced/separated", "male_divorced_separated"),
            (
                "female : divorced/separated/married",
                "female_divorced_separated_married",
            ),
            ("male : single", "male_single"),
            ("male : married/widowed", "male_married_widowed"),
        ],
    ),
    (
        "other_debtors_or_guarantors",
        "other_debtors",
        &[
            ("none", "none"),
            ("co-applicant", "co_applicant"),
            ("guarantor", "guarantor"),
        ],
    ),
    (
        "property",
        "property",
        &[
            ("real estate", "real_estate"),
            (
                "building society savings agreement/ life insurance",
                "savings_agreement_or_life_insurance",
            ),
            (
                "car or other, not in attribute Savings account/bonds",
                "car_or_other",
            ),
            ("unknown / no property", "unknown_or_none"),
        ],
    ),
    (
        "other_installment_plans",
        "other_installment_plans",
        &[("bank", "bank"), ("stores", "stores"), ("none", "none")],
    ),
    (
        "housing",
        "housing",
        &[("rent", "rent"), ("own", "own"), ("for free", "for_free")],
    ),
    (
        "job",
        "job",
        &[
            (
                "unemployed/ unskilled - non-resident",
                "unskilled_non_resident",
            ),
            ("unskilled - resident", "unskilled_resident"),
            ("skilled employee / official", "skilled"),
            (
                "management/ self-employed/ highly qualified employee/ officer",
                "highly_qualified",
            ),
        ],
    ),
    (
        "telephone",
        "telephone",
        &[
            ("none", "none"),
            ("yes, registered under the customers name", "registered"),
        ],
    ),
    (
        "foreign_worker",
        "foreign_worker",
        &[("yes", "yes"), ("no", "no")],
    ),
];

/// (CSV column, JSON field) for numeric columns.
const NUMERIC: &[(&str, &str)] = &[
    ("duration_in_month", "duration_months"),
    ("credit_amount", "credit_amount_dm"),
    (
        "installment_rate_in_percentage_of_disposable_income",
        "installment_rate_percent",
    ),
    ("present_residence_since", "residence_since"),
    ("age_in_years", "age_years"),
    (
        "number_of_existing_credits_at_this_bank",
        "existing_credits",
    ),
    (
        "number_of_people_being_liable_to_provide_maintenance_for",
        "dependents",
    ),
];

fn data_path() -> std::path::PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("data/german_credit.csv")
}

/// Builds the wire JSON of every CSV row with the hand-written table above.
fn raw_json_rows() -> Vec<String> {
    let mut reader = csv::Reader::from_path(data_path()).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column: HashMap<&str, usize> = headers.iter().enumerate().map(|(i, h)| (h, i)).collect();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let mut object = serde_json::Map::new();
            for (csv_column, field, labels) in CATEGORICAL {
                let text = &record[column[csv_column]];
                let wire = labels
                    .iter()
                    .find(|(label, _)| label == &text)
                    .unwrap_or_else(|| panic!("label `{text}` of {csv_column} not in the table"))
                    .1;
                object.insert(field.to_string(), wire.into());
            }
            for (csv_column, field) in NUMERIC {
                let number: u64 = record[column[csv_column]].parse().unwrap();
                object.insert(field.to_string(), number.into());
            }
            serde_json::Value::Object(object).to_string()
        })
        .collect()
}

#[test]
fn worker_json_path_and_trainer_csv_path_give_identical_tensors_for_every_applicant() {
    let schema = german_credit();
    let rows = shipped_german_credit();
    let applicants: Vec<Applicant> = rows.iter().map(|row| row.applicant.clone()).collect();
    let preprocessor = Preprocessor::fit(&schema, &applicants[..600]).unwrap();
    let trainer_side = preprocessor.transform_batch(&applicants).unwrap();

    let json_rows = raw_json_rows();
    assert_eq!(json_rows.len(), 1000);
    let mut worker_side = vec![0f32; preprocessor.width];
    for (index, json) in json_rows.iter().enumerate() {
        let applicant = Applicant::from_json(&schema, json.as_bytes())
            .unwrap_or_else(|error| panic!("row {index}: {error}"));
        preprocessor
            .transform_into(&applicant, &mut worker_side)
            .unwrap();
        let expected = &trainer_side[index * preprocessor.width..(index + 1) * preprocessor.width];
        assert_eq!(worker_side.as_slice(), expected, "row {index} differs");
    }
}

#[test]
fn shipped_preprocessor_gives_identical_tensors_on_both_paths() {
    let path =
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("models/preprocessor.json");
    let schema = german_credit();
    let preprocessor = Preprocessor::load(&path, &schema).unwrap();
    let rows = shipped_german_credit();
    let mut from_json = vec![0f32; preprocessor.width];
    let mut from_csv = vec![0f32; preprocessor.width];
    for (row, json) in rows.iter().zip(raw_json_rows()) {
        preprocessor
            .transform_into(&row.applicant, &mut from_csv)
            .unwrap();
        let applicant = Applicant::from_json(&schema, json.as_bytes()).unwrap();
        preprocessor
            .transform_into(&applicant, &mut from_json)
            .unwrap();
        assert_eq!(from_csv, from_json);
    }
}
