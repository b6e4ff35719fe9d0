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

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

/// What kind of problem a [`RecordError`] is, decided where the problem is found: the worker's
/// dead-letter reason is derived from it, never from the wording of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordErrorKind {
    /// Nothing to decode: the input is empty.
    Empty,
    /// Larger than [`MAX_RECORD_BYTES`].
    TooLarge,
    /// Not valid UTF-8.
    NotUtf8,
    /// Not well-formed in its format: a JSON syntax error, a record cut short, trailing data, a
    /// string that cannot be decoded (a lone surrogate escape), a field given twice; a CSV row
    /// of the wrong width.
    Malformed,
    /// A required attribute is absent.
    MissingField,
    /// A value of the wrong type: an object, array, boolean, null or number where a category
    /// belongs, anything but an integer where a number belongs.
    WrongType,
    /// An integer outside its attribute's range (negative and oversized ones included).
    OutOfRange,
    /// A text value that is none of the attribute's categories (or outcomes).
    UnknownCategory,
    /// The record's identifier (Kafka key, application id column) is missing or unusable.
    Identifier,
}

/// A record that does not fit the schema: which field, and what is wrong with it.
///
/// The worker puts this text in the dead-letter header, so it must be enough for the team that
/// produced the record to fix it without reading our code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct RecordError {
    /// What kind of problem it is.
    pub kind: RecordErrorKind,
    /// Dotted path of the offending field (`duration_months`), or `record` for the whole input.
    pub field: String,
    /// What was wrong and what was expected.
    pub problem: String,
}

impl RecordError {
    pub fn new(
        kind: RecordErrorKind,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            kind,
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

            /// Reads the fields of a JSON object. Every value is read to the end of the object
            /// even after a problem is found, so that a record that is not even JSON (cut
            /// short, say) is reported as such whatever else is wrong with it; then the first
            /// problem in the record, a malformed one before any other, then a missing field.
            /// `reading` names the attribute whose value is being read, for a parse error.
            fn read_json_fields<'de, A: MapAccess<'de>>(
                mut map: A,
                reading: &Cell<Option<&'static str>>,
            ) -> Result<Result<Applicant, RecordError>, A::Error> {
                $( let mut $field = None; )+
                let mut problem: Option<RecordError> = None;
                while let Some(key) = map.next_key_seed(FieldKey)? {
                    match key {
                        $( Some(JsonField::$field) => {
                            reading.set(Some(stringify!($field)));
                            let value = attribute_table!(@read map, $field, $kind $( ( $ty ) )? $( [ $min, $max ] )?);
                            reading.set(None);
                            if $field.is_some() {
                                note(&mut problem, duplicate(stringify!($field)));
                            }
                            match value {
                                Ok(value) => $field = Some(value),
                                Err(error) => note(&mut problem, error),
                            }
                        } )+
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                if let Some(problem) = problem {
                    return Ok(Err(problem));
                }
                Ok(Ok(Applicant {
                    $( $field: match $field {
                        Some(value) => value,
                        None => return Ok(Err(missing(stringify!($field)))),
                    }, )+
                }))
            }
        }

        /// The attributes as JSON object keys.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum JsonField { $( $field, )+ }

        impl JsonField {
            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( stringify!($field) => Some(Self::$field), )+
                    _ => None,
                }
            }
        }
    };
    (@read $map:ident, $field:ident, cat ( $ty:ty )) => {
        read_category::<$ty>(stringify!($field), $map.next_value()?)
    };
    (@read $map:ident, $field:ident, num [ $min:literal, $max:literal ]) => {
        read_integer(stringify!($field), $map.next_value()?, $min, $max)
    };
    (@kind cat ( $ty:ty )) => { AttributeKind::Categorical { values: <$ty as Categorical>::WIRE_NAMES } };
    (@kind num [ $min:literal, $max:literal ]) => { AttributeKind::Numeric { min: $min, max: $max } };
    (@get $self:ident, $field:ident, cat) => { AttributeValue::Categorical($self.$field.index()) };
    (@get $self:ident, $field:ident, num) => { AttributeValue::Numeric(f64::from($self.$field)) };
    (@set $value:ident, $field:ident, cat ( $ty:ty )) => {
        match $value {
            AttributeValue::Categorical(index) => <$ty as Categorical>::from_index(index).ok_or_else(|| {
                RecordError::new(RecordErrorKind::UnknownCategory, stringify!($field), format!("category index {index} is out of range"))
            }),
            AttributeValue::Numeric(_) => Err(RecordError::new(RecordErrorKind::WrongType, stringify!($field), "expected a category, got a number")),
        }
    };
    (@set $value:ident, $field:ident, num) => {
        match $value {
            AttributeValue::Numeric(number) if number.is_finite() && number >= 0.0 && number <= f64::from(u32::MAX) => Ok(number.round() as u32),
            AttributeValue::Numeric(number) => Err(RecordError::new(RecordErrorKind::OutOfRange, stringify!($field), format!("value {number} is not a non-negative integer"))),
            AttributeValue::Categorical(_) => Err(RecordError::new(RecordErrorKind::WrongType, stringify!($field), "expected a number, got a category")),
        }
    };
    (@check $self:ident, $field:ident, cat) => {};
    (@check $self:ident, $field:ident, num [ $min:literal, $max:literal ]) => {
        if !($min..=$max).contains(&$self.$field) {
            return Err(RecordError::new(
                RecordErrorKind::OutOfRange,
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
    /// Errors name the field and say what kind of problem it is ([`RecordErrorKind`]). A
    /// category must be a string; a number must be an integer, range included; an input that
    /// is not JSON (cut short, a raw control character in a string, a lone surrogate escape
    /// in a value that is read) is [`RecordErrorKind::Malformed`] whatever else is wrong with
    /// it. Unknown fields are skipped, checked for JSON syntax only.
    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.is_empty() {
            return Err(RecordError::new(
                RecordErrorKind::Empty,
                "record",
                "the record is empty; expected a JSON object of applicant fields",
            ));
        }
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::new(
                RecordErrorKind::TooLarge,
                "record",
                format!(
                    "record is {} bytes, larger than the {MAX_RECORD_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|error| {
            RecordError::new(
                RecordErrorKind::NotUtf8,
                "record",
                format!(
                    "not valid UTF-8 (invalid byte at offset {})",
                    error.valid_up_to()
                ),
            )
        })?;
        let first = text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .as_bytes()
            .first()
            .copied();
        if first != Some(b'{') {
            return Err(not_an_object(text, first));
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let reading = Cell::new(None);
        let visitor = ApplicantVisitor { reading: &reading };
        let decoded = de::Deserializer::deserialize_map(&mut deserializer, visitor)
            .and_then(|decoded| deserializer.end().map(|()| decoded));
        match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                let mut problem = describe_json_error(&error);
                if let Some(field) = reading.get() {
                    problem.push_str(&format!(", in the value of `{field}`"));
                }
                Err(RecordError::new(json_error_kind(&error), "record", problem))
            }
        }
    }

    /// Encodes as the JSON wire form.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of enums and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The applicant as a JSON object; its value is the verdict on the record's content, its
/// error one on the JSON itself.
struct ApplicantVisitor<'a> {
    /// The attribute whose value is being read.
    reading: &'a Cell<Option<&'static str>>,
}

impl<'de> Visitor<'de> for ApplicantVisitor<'_> {
    type Value = Result<Applicant, RecordError>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object of applicant fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Applicant::read_json_fields(map, self.reading)
    }
}

/// An object key: the attribute it names, or `None` for a field the schema does not have.
struct FieldKey;

impl<'de> DeserializeSeed<'de> for FieldKey {
    type Value = Option<JsonField>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldKey {
    type Value = Option<JsonField>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(JsonField::from_name(name))
    }
}

/// Keeps the first problem found, unless a later one says the record is malformed: that is
/// the one to fix first.
fn note(first: &mut Option<RecordError>, problem: RecordError) {
    match first {
        Some(kept)
            if kept.kind == RecordErrorKind::Malformed
                || problem.kind != RecordErrorKind::Malformed => {}
        _ => *first = Some(problem),
    }
}

fn duplicate(field: &'static str) -> RecordError {
    RecordError::new(
        RecordErrorKind::Malformed,
        "record",
        format!("duplicate field `{field}`"),
    )
}

fn missing(field: &'static str) -> RecordError {
    RecordError::new(
        RecordErrorKind::MissingField,
        field,
        format!("missing field `{field}`"),
    )
}

/// A categorical attribute from its raw JSON value: a string naming one of its categories.
fn read_category<T: Categorical>(field: &'static str, raw: &RawValue) -> Result<T, RecordError> {
    let text = raw.get();
    if !text.starts_with('"') {
        return Err(wrong_type(
            field,
            text,
            format_args!("a string, one of {}", quoted_list(T::WIRE_NAMES)),
        ));
    }
    let value = json_string(field, text)?;
    T::from_wire_name(&value).ok_or_else(|| {
        RecordError::new(
            RecordErrorKind::UnknownCategory,
            field,
            format!(
                "unknown variant {}, expected one of {}",
                quote(&value),
                quoted_list(T::WIRE_NAMES)
            ),
        )
    })
}

/// A numeric attribute from its raw JSON value: an integer from `min` to `max`.
fn read_integer(
    field: &'static str,
    raw: &RawValue,
    min: u32,
    max: u32,
) -> Result<u32, RecordError> {
    let text = raw.get();
    let is_number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    if !is_number || text.contains(['.', 'e', 'E']) {
        return Err(wrong_type(
            field,
            text,
            format_args!("an integer from {min} to {max}"),
        ));
    }
    // The parser has checked the grammar: an optional minus sign, then digits.
    match text.parse::<u32>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(RecordError::new(
            RecordErrorKind::OutOfRange,
            field,
            format!(
                "value {} is out of range, expected an integer from {min} to {max}",
                shorten(text)
            ),
        )),
    }
}

/// `field` holds `raw`, a JSON value that is not of the `expected` type.
fn wrong_type(field: &'static str, raw: &str, expected: fmt::Arguments<'_>) -> RecordError {
    let found = match raw.as_bytes().first() {
        Some(b'"') => match json_string(field, raw) {
            Ok(value) => format!("the string {}", quote(&value)),
            Err(malformed) => return malformed,
        },
        Some(b'{') => "an object".to_owned(),
        Some(b'[') => "an array".to_owned(),
        Some(b'n') => "null".to_owned(),
        Some(b't' | b'f') => format!("the boolean {raw}"),
        _ => format!("the number {}", shorten(raw)),
    };
    RecordError::new(
        RecordErrorKind::WrongType,
        field,
        format!("invalid type: {found}, expected {expected}"),
    )
}

/// The text of the raw JSON string `raw` (quotes included), borrowed unless it has escapes.
///
/// The parser has checked its syntax but not its escapes' meaning: a lone surrogate (`\ud800`)
/// is no character, so the record is not valid JSON text.
fn json_string<'a>(field: &'static str, raw: &'a str) -> Result<Cow<'a, str>, RecordError> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'));
    if let Some(inner) = inner.filter(|inner| !inner.contains('\\')) {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw)
        .map(Cow::Owned)
        .map_err(|error| {
            RecordError::new(
                RecordErrorKind::Malformed,
                "record",
                format!(
                    "the value of `{field}` is not a valid JSON string: {}",
                    describe_json_error(&error)
                ),
            )
        })
}

/// The error for an input whose first character (`first`) does not open a JSON object.
fn not_an_object(text: &str, first: Option<u8>) -> RecordError {
    let Some(kind) = json_kind(first) else {
        return RecordError::new(
            RecordErrorKind::Malformed,
            "record",
            "not JSON: expected a JSON object of applicant fields",
        );
    };
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => RecordError::new(
            RecordErrorKind::WrongType,
            "record",
            format!("invalid type: {kind}, expected a JSON object of applicant fields"),
        ),
        Err(error) => RecordError::new(
            RecordErrorKind::Malformed,
            "record",
            describe_json_error(&error),
        ),
    }
}

/// The kind of problem a serde_json error is.
fn json_error_kind(error: &serde_json::Error) -> RecordErrorKind {
    match error.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => RecordErrorKind::Malformed,
        // The visitors report every problem with the content themselves; the parser's only
        // data error is a top level that is not an object, which `from_json` rules out first.
        serde_json::error::Category::Data => RecordErrorKind::WrongType,
    }
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
/// producer of a Kafka message.
fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(position) => message[..position].to_string(),
        None => message,
    }
}

/// `` `value` ``, shortened and with control characters escaped.
fn quote(value: &str) -> String {
    format!("`{}`", shorten(value))
}

/// `value` cut to [`MAX_QUOTED_VALUE`] characters, control characters escaped: it goes into
/// headers and log lines.
fn shorten(value: &str) -> String {
    let mut out = String::new();
    for character in value.chars().take(MAX_QUOTED_VALUE) {
        if character.is_control() {
            out.extend(character.escape_default());
        } else {
            out.push(character);
        }
    }
    let length = value.chars().count();
    if length > MAX_QUOTED_VALUE {
        out.push_str(&format!("… ({length} characters)"));
    }
    out
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
        assert_eq!(error.kind, RecordErrorKind::OutOfRange);
        assert_eq!(error.field, "age_years");
        assert!(error.problem.contains("900"), "{error}");
        assert!(error.problem.contains("18 to 120"), "{error}");
    }

    #[test]
    fn unknown_category_names_field_and_expected_values() {
        let error = Applicant::from_json(&with_field("purpose", "yacht".into())).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::UnknownCategory);
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
        assert_eq!(error.kind, RecordErrorKind::MissingField);
        assert_eq!(error.field, "housing");
        assert!(error.problem.contains("missing"), "{error}");
    }

    #[test]
    fn wrong_type_names_field() {
        use RecordErrorKind::{OutOfRange, WrongType};
        for (field, value, kind) in [
            ("duration_months", "twelve".into(), WrongType),
            ("credit_amount_dm", 12.5.into(), WrongType),
            ("age_years", (-3).into(), OutOfRange),
            ("dependents", serde_json::Value::Null, WrongType),
            ("job", serde_json::json!({"skilled": null}), WrongType),
            ("housing", serde_json::json!({"own": null}), WrongType),
            (
                "foreign_worker",
                serde_json::json!({"yes": null}),
                WrongType,
            ),
            ("telephone", serde_json::json!(["none"]), WrongType),
        ] {
            let error = Applicant::from_json(&with_field(field, value)).unwrap_err();
            assert_eq!((error.kind, error.field.as_str()), (kind, field), "{error}");
        }
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
    fn a_record_cut_short_is_malformed_whatever_came_before_the_cut() {
        let text = String::from_utf8(with_field("job", serde_json::json!({"skilled": null})))
            .unwrap()
            .replace("\"age_years\":67", "\"age_years\":900");
        // The last field is a category: the cut falls inside its string.
        let cut = &text[..text.len() - 3];
        let error = Applicant::from_json(cut.as_bytes()).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::Malformed, "record")
        );
        assert!(error.problem.contains("`telephone`"), "{error}");
    }

    #[test]
    fn a_duplicate_field_is_malformed_even_after_a_wrong_type() {
        let text = String::from_utf8(with_field("job", serde_json::Value::Null)).unwrap();
        let twice = format!("{},\"age_years\":30}}", text.trim_end_matches('}'));
        let error = Applicant::from_json(twice.as_bytes()).unwrap_err();
        assert_eq!(
            (error.kind, error.field.as_str()),
            (RecordErrorKind::Malformed, "record")
        );
        assert!(error.problem.contains("age_years"), "{error}");
    }

    #[test]
    fn a_value_quoted_in_a_message_is_short_and_has_no_control_characters() {
        let value = format!("\u{1b}[31m\n{}", "x".repeat(10_000));
        let error = Applicant::from_json(&with_field("purpose", value.into())).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::UnknownCategory);
        assert!(!error.problem.chars().any(char::is_control), "{error}");
        assert!(error.problem.len() < 1_000, "{}", error.problem.len());
    }

    #[test]
    fn huge_number_is_rejected_with_field() {
        let bytes = String::from_utf8(example().to_json())
            .unwrap()
            .replace("\"credit_amount_dm\":1169", "\"credit_amount_dm\":1e400");
        let error = Applicant::from_json(bytes.as_bytes()).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::WrongType);
        assert_eq!(error.field, "credit_amount_dm");
    }

    #[test]
    fn malformed_input_is_a_record_error() {
        use RecordErrorKind::{Empty, Malformed, WrongType};
        for (bad, kind) in [
            (&b"{\"checking_account\": "[..], Malformed),
            (b"not json", Malformed),
            (b"", Empty),
            (b" \n", Malformed),
            (b"[]", WrongType),
            (b"null", WrongType),
            (b"[1, 2", Malformed),
        ] {
            let error = Applicant::from_json(bad).unwrap_err();
            assert_eq!(
                (error.kind, error.field.as_str()),
                (kind, "record"),
                "{error}"
            );
            assert!(!error.problem.is_empty());
        }
        let error = Applicant::from_json(&[0xff, 0xfe, b'{']).unwrap_err();
        assert_eq!(error.kind, RecordErrorKind::NotUtf8);
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
        assert_eq!(error.kind, RecordErrorKind::TooLarge);
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
