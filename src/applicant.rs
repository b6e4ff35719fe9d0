//! The applicant schema: the 20 attributes of a loan application, as the worker receives them.
//!
//! Categorical attributes are enums with stable `snake_case` wire values; the German Credit
//! file's own labels (`... < 0 DM` and friends) are known only to [`Categorical::from_dataset_label`],
//! which the CSV loader uses. Numeric attributes are integers with documented ranges; a record
//! outside them is rejected with a [`RecordError`] naming the field, the value and the range,
//! because a model asked to score a 900-year-old applicant returns a confident, meaningless number.
//!
//! The JSON form (one object, field names as in [`Applicant`]):
//!
//! ```json
//! {"checking_account": "below_0_dm", "duration_months": 6,
//!  "credit_history": "critical_account", "purpose": "radio_television",
//!  "credit_amount_dm": 1169, "savings": "unknown_or_none",
//!  "employment_since": "at_least_7_years", "installment_rate_percent": 4,
//!  "personal_status_sex": "male_divorced_separated", "other_debtors": "none",
//!  "residence_since": 4, "property": "real_estate", "age_years": 67,
//!  "other_installment_plans": "none", "housing": "own", "existing_credits": 2,
//!  "job": "skilled", "dependents": 1, "telephone": "registered", "foreign_worker": "yes"}
//! ```

use serde::de::{self, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// A record that does not fit the schema: which field, and what is wrong with it.
///
/// The worker puts this text in the dead-letter header, so it must be enough for the team that
/// produced the record to fix it without reading our code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct RecordError {
    /// Dotted path of the offending field (`duration_months`), or `record` for the whole input.
    pub field: String,
    /// What was wrong and what was expected.
    pub problem: String,
}

impl RecordError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A categorical attribute: a closed set of values with a stable order.
///
/// The order is the code book's (A11, A12, ...); the one-hot encoding and the saved
/// preprocessor rely on it, so variants are only ever appended, never reordered.
pub trait Categorical: Sized + Copy + 'static {
    /// Every value, in code-book order.
    const ALL: &'static [Self];
    /// Wire (JSON) names, in the same order as [`Categorical::ALL`].
    const WIRE_NAMES: &'static [&'static str];
    /// Position of this value in [`Categorical::ALL`].
    fn index(self) -> usize;
    /// The label the German Credit CSV uses for this value.
    fn dataset_label(self) -> &'static str;
    /// The value whose wire (JSON) name is `name`, if any.
    fn from_wire_name(name: &str) -> Option<Self>;
    /// The value whose German Credit CSV label is `label`, if any.
    fn from_dataset_label(label: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|value| value.dataset_label() == label)
    }
    /// The value at `index`, if in range (used by SMOTE-NC and the data generator).
    fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }
}

/// Deserializes a category from a string, and only from a string.
struct CategoryVisitor<T>(PhantomData<T>);

impl<T: Categorical> Visitor<'_> for CategoryVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "a string, one of {}", quoted_list(T::WIRE_NAMES))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        T::from_wire_name(value).ok_or_else(|| E::unknown_variant(value, T::WIRE_NAMES))
    }
}

/// Declares a categorical attribute: enum, serde wire names, code-book labels.
macro_rules! categorical {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, $label:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )+
        }

        // Not derived: serde's enum support would also take `{"skilled": null}` for `skilled`,
        // and a category is a string and nothing else.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(CategoryVisitor::<Self>(PhantomData))
            }
        }

        impl Categorical for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            const WIRE_NAMES: &'static [&'static str] = &[$($wire),+];
            fn index(self) -> usize {
                Self::ALL.iter().position(|v| *v == self).unwrap_or(0)
            }
            fn dataset_label(self) -> &'static str {
                match self { $(Self::$variant => $label),+ }
            }
            fn from_wire_name(name: &str) -> Option<Self> {
                match name { $($wire => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(Self::WIRE_NAMES[self.index()])
            }
        }
    };
}

categorical! {
    /// Status of the existing checking account (code book A11-A14).
    CheckingAccount {
        Below0Dm = "below_0_dm", "... < 0 DM";
        Below200Dm = "below_200_dm", "0 <= ... < 200 DM";
        AtLeast200DmOrSalary = "at_least_200_dm_or_salary", "... >= 200 DM / salary assignments for at least 1 year";
        NoCheckingAccount = "no_checking_account", "no checking account";
    }
}

categorical! {
    /// Credit history (A30-A34).
    CreditHistory {
        NoCreditsOrAllPaidBack = "no_credits_or_all_paid_back", "no credits taken/ all credits paid back duly";
        AllPaidBackAtThisBank = "all_paid_back_at_this_bank", "all credits at this bank paid back duly";
        ExistingPaidBackDuly = "existing_paid_back_duly", "existing credits paid back duly till now";
        DelayInPast = "delay_in_past", "delay in paying off in the past";
        CriticalAccount = "critical_account", "critical account/ other credits existing (not at this bank)";
    }
}

categorical! {
    /// Purpose of the loan (A40-A410; `vacation` is in the code book but never in the data).
    Purpose {
        CarNew = "car_new", "car (new)";
        CarUsed = "car_used", "car (used)";
        FurnitureEquipment = "furniture_equipment", "furniture/equipment";
        RadioTelevision = "radio_television", "radio/television";
        DomesticAppliances = "domestic_appliances", "domestic appliances";
        Repairs = "repairs", "repairs";
        Education = "education", "education";
        Vacation = "vacation", "vacation";
        Retraining = "retraining", "retraining";
        Business = "business", "business";
        Others = "others", "others";
    }
}

categorical! {
    /// Savings account and bonds (A61-A65).
    Savings {
        Below100Dm = "below_100_dm", "... < 100 DM";
        Below500Dm = "below_500_dm", "100 <= ... < 500 DM";
        Below1000Dm = "below_1000_dm", "500 <= ... < 1000 DM";
        AtLeast1000Dm = "at_least_1000_dm", "... >= 1000 DM";
        UnknownOrNone = "unknown_or_none", "unknown/ no savings account";
    }
}

categorical! {
    /// Present employment since (A71-A75).
    EmploymentSince {
        Unemployed = "unemployed", "unemployed";
        Below1Year = "below_1_year", "... < 1 year";
        Below4Years = "below_4_years", "1 <= ... < 4 years";
        Below7Years = "below_7_years", "4 <= ... < 7 years";
        AtLeast7Years = "at_least_7_years", "... >= 7 years";
    }
}

categorical! {
    /// Personal status and sex (A91-A95; `female_single` is in the code book but never in the data).
    PersonalStatusSex {
        MaleDivorcedSeparated = "male_divorced_separated", "male : divorced/separated";
        FemaleDivorcedSeparatedMarried = "female_divorced_separated_married", "female : divorced/separated/married";
        MaleSingle = "male_single", "male : single";
        MaleMarriedWidowed = "male_married_widowed", "male : married/widowed";
        FemaleSingle = "female_single", "female : single";
    }
}

categorical! {
    /// Other debtors or guarantors (A101-A103).
    OtherDebtors {
        None = "none", "none";
        CoApplicant = "co_applicant", "co-applicant";
        Guarantor = "guarantor", "guarantor";
    }
}

categorical! {
    /// Most valuable property (A121-A124).
    Property {
        RealEstate = "real_estate", "real estate";
        SavingsAgreementOrLifeInsurance = "savings_agreement_or_life_insurance", "building society savings agreement/ life insurance";
        CarOrOther = "car_or_other", "car or other, not in attribute Savings account/bonds";
        UnknownOrNone = "unknown_or_none", "unknown / no property";
    }
}

categorical! {
    /// Other installment plans (A141-A143).
    OtherInstallmentPlans {
        Bank = "bank", "bank";
        Stores = "stores", "stores";
        None = "none", "none";
    }
}

categorical! {
    /// Housing (A151-A153).
    Housing {
        Rent = "rent", "rent";
        Own = "own", "own";
        ForFree = "for_free", "for free";
    }
}

categorical! {
    /// Job (A171-A174).
    Job {
        UnskilledNonResident = "unskilled_non_resident", "unemployed/ unskilled - non-resident";
        UnskilledResident = "unskilled_resident", "unskilled - resident";
        Skilled = "skilled", "skilled employee / official";
        HighlyQualified = "highly_qualified", "management/ self-employed/ highly qualified employee/ officer";
    }
}

categorical! {
    /// Telephone (A191-A192).
    Telephone {
        None = "none", "none";
        Registered = "registered", "yes, registered under the customers name";
    }
}

categorical! {
    /// Foreign worker (A201-A202).
    ForeignWorker {
        Yes = "yes", "yes";
        No = "no", "no";
    }
}

/// One loan applicant: the 20 attributes of the German Credit code book, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Applicant {
    pub checking_account: CheckingAccount,
    /// Loan duration in months, 1-120.
    pub duration_months: u32,
    pub credit_history: CreditHistory,
    pub purpose: Purpose,
    /// Credit amount in Deutsche Mark, 1-1,000,000.
    pub credit_amount_dm: u32,
    pub savings: Savings,
    pub employment_since: EmploymentSince,
    /// Installment rate in percentage of disposable income, the code book's band 1-4.
    pub installment_rate_percent: u32,
    pub personal_status_sex: PersonalStatusSex,
    pub other_debtors: OtherDebtors,
    /// Present residence since, the code book's band 1-4.
    pub residence_since: u32,
    pub property: Property,
    /// Age in years, 18-120.
    pub age_years: u32,
    pub other_installment_plans: OtherInstallmentPlans,
    pub housing: Housing,
    /// Number of existing credits at this bank, the code book's band 1-4.
    pub existing_credits: u32,
    pub job: Job,
    /// Number of people the applicant is liable to provide maintenance for, 1-2.
    pub dependents: u32,
    pub telephone: Telephone,
    pub foreign_worker: ForeignWorker,
}

/// Whether an attribute is categorical (with its wire names) or numeric (with its valid range).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeKind {
    Categorical { values: &'static [&'static str] },
    Numeric { min: u32, max: u32 },
}

/// Name and kind of one attribute, in code-book order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttributeSpec {
    /// The JSON field name.
    pub name: &'static str,
    /// The German Credit CSV column.
    pub dataset_column: &'static str,
    pub kind: AttributeKind,
}

/// The value of one attribute, in a form the preprocessor and SMOTE-NC can handle generically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttributeValue {
    /// Index into the attribute's values.
    Categorical(usize),
    Numeric(f64),
}

macro_rules! attribute_table {
    ( $( $field:ident, $column:literal, $kind:tt $( ( $ty:ty ) )? $( [ $min:literal, $max:literal ] )? ; )+ ) => {
        /// The 20 attributes, in code-book (and JSON, and CSV) order.
        pub const ATTRIBUTES: [AttributeSpec; 20] = [
            $( AttributeSpec {
                name: stringify!($field),
                dataset_column: $column,
                kind: attribute_table!(@kind $kind $( ( $ty ) )? $( [ $min, $max ] )?),
            }, )+
        ];

        impl Applicant {
            /// The attribute values in [`ATTRIBUTES`] order.
            pub fn attribute_values(&self) -> [AttributeValue; 20] {
                [ $( attribute_table!(@get self, $field, $kind), )+ ]
            }

            /// Rebuilds an applicant from attribute values in [`ATTRIBUTES`] order (SMOTE-NC and
            /// the generator produce these); numeric values are rounded and must be in range.
            pub fn from_attribute_values(values: &[AttributeValue; 20]) -> Result<Self, RecordError> {
                let mut position = 0usize;
                let applicant = Applicant {
                    $( $field: {
                        let value = values[position];
                        position += 1;
                        attribute_table!(@set value, $field, $kind $( ( $ty ) )?)?
                    }, )+
                };
                debug_assert_eq!(position, 20);
                applicant.validate()?;
                Ok(applicant)
            }

            /// Checks every numeric attribute against its range.
            pub fn validate(&self) -> Result<(), RecordError> {
                $( attribute_table!(@check self, $field, $kind $( [ $min, $max ] )?); )+
                Ok(())
            }
        }
    };
    (@kind cat ( $ty:ty )) => { AttributeKind::Categorical { values: <$ty as Categorical>::WIRE_NAMES } };
    (@kind num [ $min:literal, $max:literal ]) => { AttributeKind::Numeric { min: $min, max: $max } };
    (@get $self:ident, $field:ident, cat) => { AttributeValue::Categorical($self.$field.index()) };
    (@get $self:ident, $field:ident, num) => { AttributeValue::Numeric(f64::from($self.$field)) };
    (@set $value:ident, $field:ident, cat ( $ty:ty )) => {
        match $value {
            AttributeValue::Categorical(index) => <$ty as Categorical>::from_index(index).ok_or_else(|| {
                RecordError::new(stringify!($field), format!("category index {index} is out of range"))
            }),
            AttributeValue::Numeric(_) => Err(RecordError::new(stringify!($field), "expected a category, got a number")),
        }
    };
    (@set $value:ident, $field:ident, num) => {
        match $value {
            AttributeValue::Numeric(number) if number.is_finite() && number >= 0.0 && number <= f64::from(u32::MAX) => Ok(number.round() as u32),
            AttributeValue::Numeric(number) => Err(RecordError::new(stringify!($field), format!("value {number} is not a non-negative integer"))),
            AttributeValue::Categorical(_) => Err(RecordError::new(stringify!($field), "expected a number, got a category")),
        }
    };
    (@check $self:ident, $field:ident, cat) => {};
    (@check $self:ident, $field:ident, num [ $min:literal, $max:literal ]) => {
        if !($min..=$max).contains(&$self.$field) {
            return Err(RecordError::new(
                stringify!($field),
                format!("value {} is out of range, expected an integer from {} to {}", $self.$field, $min, $max),
            ));
        }
    };
}

attribute_table! {
    checking_account, "status_of_existing_checking_account", cat(CheckingAccount);
    duration_months, "duration_in_month", num[1, 120];
    credit_history, "credit_history", cat(CreditHistory);
    purpose, "purpose", cat(Purpose);
    credit_amount_dm, "credit_amount", num[1, 1_000_000];
    savings, "savings_account_and_bonds", cat(Savings);
    employment_since, "present_employment_since", cat(EmploymentSince);
    installment_rate_percent, "installment_rate_in_percentage_of_disposable_income", num[1, 4];
    personal_status_sex, "personal_status_and_sex", cat(PersonalStatusSex);
    other_debtors, "other_debtors_or_guarantors", cat(OtherDebtors);
    residence_since, "present_residence_since", num[1, 4];
    property, "property", cat(Property);
    age_years, "age_in_years", num[18, 120];
    other_installment_plans, "other_installment_plans", cat(OtherInstallmentPlans);
    housing, "housing", cat(Housing);
    existing_credits, "number_of_existing_credits_at_this_bank", num[1, 4];
    job, "job", cat(Job);
    dependents, "number_of_people_being_liable_to_provide_maintenance_for", num[1, 2];
    telephone, "telephone", cat(Telephone);
    foreign_worker, "foreign_worker", cat(ForeignWorker);
}

/// Upper bound on an accepted JSON record, in bytes. A real record is ~600 bytes; anything much
/// larger is garbage or an attack, and parsing it would only waste the worker's time.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

impl Applicant {
    /// Decodes and validates one JSON record.
    ///
    /// Errors name the field: serde's own messages do not say *which* field had the wrong type,
    /// so the path is tracked with `serde_path_to_error`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::new(
                "record",
                format!(
                    "record is {} bytes, larger than the {MAX_RECORD_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|error| {
            RecordError::new(
                "record",
                format!(
                    "not valid UTF-8 (invalid byte at offset {})",
                    error.valid_up_to()
                ),
            )
        })?;
        // serde would read a JSON array as the struct's fields in order, and answer `null` or
        // a number with a bare "expected value": say what was expected instead.
        match text.trim_start().as_bytes().first() {
            Some(b'{') => {}
            found => {
                let problem = match json_kind(found.copied()) {
                    Some(kind) => {
                        format!("invalid type: {kind}, expected a JSON object of applicant fields")
                    }
                    None => "not JSON: expected a JSON object of applicant fields".to_owned(),
                };
                return Err(RecordError::new("record", problem));
            }
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let applicant: Applicant =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                if path == "." || path.is_empty() {
                    let field = missing_field_name(&inner).unwrap_or_else(|| "record".to_string());
                    return RecordError::new(field, describe_json_error(&inner));
                }
                // `job.skilled` (an object where a category was expected) is about `job`.
                let field = path
                    .split(['.', '['])
                    .next()
                    .unwrap_or(path.as_str())
                    .to_string();
                let message = describe_json_error(&inner);
                match categories_of(&field) {
                    // A category given as something other than a string.
                    Some(values) if !message.starts_with("unknown variant") => RecordError::new(
                        field,
                        format!(
                            "invalid type: expected a string, one of {}",
                            quoted_list(values)
                        ),
                    ),
                    _ => RecordError::new(field, message),
                }
            })?;
        deserializer
            .end()
            .map_err(|error| RecordError::new("record", describe_json_error(&error)))?;
        applicant.validate()?;
        Ok(applicant)
    }

    /// Encodes as the JSON wire form.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of enums and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// serde reports a missing field at the parent path; pull the field name out of its message so
/// the error still names it.
fn missing_field_name(error: &serde_json::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.strip_prefix("missing field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

/// The allowed values of `field`, if it is a categorical attribute.
fn categories_of(field: &str) -> Option<&'static [&'static str]> {
    ATTRIBUTES
        .iter()
        .find(|spec| spec.name == field)
        .and_then(|spec| match spec.kind {
            AttributeKind::Categorical { values } => Some(values),
            AttributeKind::Numeric { .. } => None,
        })
}

/// `` `a`, `b`, `c` ``.
fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|value| format!("`{value}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What kind of JSON value starts with `first`, for error messages; `None` if none does.
fn json_kind(first: Option<u8>) -> Option<&'static str> {
    match first? {
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b'n' => Some("null"),
        b't' | b'f' => Some("a boolean"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

/// Longest offending value quoted back in an error message: a dead-letter header and a log
/// line must stay small whatever the producer sent.
const MAX_QUOTED_VALUE: usize = 64;

/// serde_json's message without its ` at line 1 column 57` suffix, which means nothing to the
/// producer of a Kafka message, and with a long quoted value (`unknown variant `xxxx...``)
/// shortened.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(position) => message[..position].to_string(),
        None => message,
    };
    shorten_quoted_value(message)
}

/// Shortens the first backquoted value of `message` to [`MAX_QUOTED_VALUE`] characters.
fn shorten_quoted_value(message: String) -> String {
    let Some(start) = message.find('`').map(|at| at + 1) else {
        return message;
    };
    let Some(length) = message[start..].find('`') else {
        return message;
    };
    let value = &message[start..start + length];
    if value.chars().count() <= MAX_QUOTED_VALUE {
        return message;
    }
    let kept: String = value.chars().take(MAX_QUOTED_VALUE).collect();
    format!(
        "{}{kept}… ({} characters){}",
        &message[..start],
        value.chars().count(),
        &message[start + length..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn example() -> Applicant {
        Applicant {
            checking_account: CheckingAccount::Below0Dm,
            duration_months: 6,
            credit_history: CreditHistory::CriticalAccount,
            purpose: Purpose::RadioTelevision,
            credit_amount_dm: 1169,
            savings: Savings::UnknownOrNone,
            employment_since: EmploymentSince::AtLeast7Years,
            installment_rate_percent: 4,
            personal_status_sex: PersonalStatusSex::MaleDivorcedSeparated,
            other_debtors: OtherDebtors::None,
            residence_since: 4,
            property: Property::RealEstate,
            age_years: 67,
            other_installment_plans: OtherInstallmentPlans::None,
            housing: Housing::Own,
            existing_credits: 2,
            job: Job::Skilled,
            dependents: 1,
            telephone: Telephone::Registered,
            foreign_worker: ForeignWorker::Yes,
        }
    }

    fn with_field(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut json = serde_json::to_value(example()).unwrap();
        json[field] = value;
        serde_json::to_vec(&json).unwrap()
    }

    #[test]
    fn json_round_trip_keeps_every_attribute() {
        let applicant = example();
        assert_eq!(
            Applicant::from_json(&applicant.to_json()).unwrap(),
            applicant
        );
    }

    #[test]
    fn wire_values_are_snake_case_names_not_dataset_labels() {
        let json: serde_json::Value = serde_json::from_slice(&example().to_json()).unwrap();
        assert_eq!(json["checking_account"], "below_0_dm");
        assert_eq!(json["telephone"], "registered");
        assert_eq!(json["job"], "skilled");
    }

    #[test]
    fn module_doc_example_decodes() {
        let doc_example = br#"{"checking_account": "below_0_dm", "duration_months": 6,
 "credit_history": "critical_account", "purpose": "radio_television",
 "credit_amount_dm": 1169, "savings": "unknown_or_none",
 "employment_since": "at_least_7_years", "installment_rate_percent": 4,
 "personal_status_sex": "male_divorced_separated", "other_debtors": "none",
 "residence_since": 4, "property": "real_estate", "age_years": 67,
 "other_installment_plans": "none", "housing": "own", "existing_credits": 2,
 "job": "skilled", "dependents": 1, "telephone": "registered", "foreign_worker": "yes"}"#;
        assert_eq!(Applicant::from_json(doc_example).unwrap(), example());
    }

    #[test]
    fn out_of_range_number_names_field_value_and_range() {
        let error = Applicant::from_json(&with_field("age_years", 900.into())).unwrap_err();
        assert_eq!(error.field, "age_years");
        assert!(error.problem.contains("900"), "{error}");
        assert!(error.problem.contains("18 to 120"), "{error}");
    }

    #[test]
    fn unknown_category_names_field_and_expected_values() {
        let error = Applicant::from_json(&with_field("purpose", "yacht".into())).unwrap_err();
        assert_eq!(error.field, "purpose");
        assert!(error.problem.contains("yacht"), "{error}");
        assert!(error.problem.contains("car_new"), "{error}");
    }

    #[test]
    fn dataset_label_is_not_accepted_on_the_wire() {
        let error =
            Applicant::from_json(&with_field("checking_account", "... < 0 DM".into())).unwrap_err();
        assert_eq!(error.field, "checking_account");
    }

    #[test]
    fn missing_field_is_named() {
        let mut json = serde_json::to_value(example()).unwrap();
        json.as_object_mut().unwrap().remove("housing");
        let error = Applicant::from_json(&serde_json::to_vec(&json).unwrap()).unwrap_err();
        assert_eq!(error.field, "housing");
        assert!(error.problem.contains("missing"), "{error}");
    }

    #[test]
    fn wrong_type_names_field() {
        let error =
            Applicant::from_json(&with_field("duration_months", "twelve".into())).unwrap_err();
        assert_eq!(error.field, "duration_months");
        let error = Applicant::from_json(&with_field("credit_amount_dm", 12.5.into())).unwrap_err();
        assert_eq!(error.field, "credit_amount_dm");
        let error = Applicant::from_json(&with_field("age_years", (-3).into())).unwrap_err();
        assert_eq!(error.field, "age_years");
        let error =
            Applicant::from_json(&with_field("dependents", serde_json::Value::Null)).unwrap_err();
        assert_eq!(error.field, "dependents");
    }

    #[test]
    fn a_category_deserializes_from_a_string_and_nothing_else() {
        assert_eq!(
            serde_json::from_str::<Job>("\"skilled\"").unwrap(),
            Job::Skilled
        );
        for not_a_string in ["{\"skilled\": null}", "[\"skilled\"]", "2", "null"] {
            assert!(
                serde_json::from_str::<Job>(not_a_string).is_err(),
                "{not_a_string}"
            );
        }
        let mut json = serde_json::to_value(example()).unwrap();
        json["job"] = serde_json::json!({"skilled": null});
        assert!(serde_json::from_value::<Applicant>(json).is_err());
    }

    #[test]
    fn huge_number_is_rejected_with_field() {
        let bytes = String::from_utf8(example().to_json())
            .unwrap()
            .replace("\"credit_amount_dm\":1169", "\"credit_amount_dm\":1e400");
        let error = Applicant::from_json(bytes.as_bytes()).unwrap_err();
        assert_eq!(error.field, "credit_amount_dm");
    }

    #[test]
    fn malformed_input_is_a_record_error() {
        for bad in [
            &b"{\"checking_account\": "[..],
            b"not json",
            b"",
            b"[]",
            b"null",
        ] {
            let error = Applicant::from_json(bad).unwrap_err();
            assert!(!error.problem.is_empty());
        }
        let error = Applicant::from_json(&[0xff, 0xfe, b'{']).unwrap_err();
        assert_eq!(error.field, "record");
        assert!(error.problem.contains("UTF-8"));
        let mut trailing = example().to_json();
        trailing.extend_from_slice(b" {}");
        assert_eq!(Applicant::from_json(&trailing).unwrap_err().field, "record");
    }

    #[test]
    fn oversized_record_is_rejected_before_parsing() {
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        let error = Applicant::from_json(&huge).unwrap_err();
        assert_eq!(error.field, "record");
        assert!(error.problem.contains("limit"));
    }

    #[test]
    fn attribute_values_round_trip() {
        let applicant = example();
        let values = applicant.attribute_values();
        assert_eq!(
            Applicant::from_attribute_values(&values).unwrap(),
            applicant
        );
        assert_eq!(values[1], AttributeValue::Numeric(6.0));
        assert_eq!(values[0], AttributeValue::Categorical(0));
    }

    #[test]
    fn attribute_table_matches_struct_field_order() {
        let json: serde_json::Value = serde_json::from_slice(&example().to_json()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut names: Vec<&str> = ATTRIBUTES.iter().map(|a| a.name).collect();
        assert_eq!(names.len(), 20);
        names.sort_unstable();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        assert_eq!(names, sorted_keys);
    }

    #[test]
    fn every_dataset_label_maps_back_to_its_value() {
        for value in Purpose::ALL {
            assert_eq!(
                Purpose::from_dataset_label(value.dataset_label()),
                Some(*value)
            );
        }
        assert_eq!(
            CheckingAccount::from_dataset_label("no checking account"),
            Some(CheckingAccount::NoCheckingAccount)
        );
        assert_eq!(Housing::from_dataset_label("castle"), None);
    }
}
