//! The fitted encoder and scaler: turns an [`Applicant`] into the model's float features.
//!
//! One implementation serves the trainer (which fits it on the training split only, so no
//! statistic of validation or test data leaks into the model) and the worker (which loads the
//! saved JSON artifact). Categorical attributes are one-hot encoded over the schema's full value
//! list; numeric attributes are optionally log-transformed (the skewed ones) and standardised.
//!
//! [`Preprocessor::transform_into`] writes into a caller-provided slice, so the worker's hot path
//! can reuse one batch buffer instead of allocating per record.

use crate::applicant::{Applicant, AttributeValue};
use crate::schema::{FieldKind, Schema, Transform};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Version of the JSON artifact's layout; bumped when the meaning of a field changes.
pub const FORMAT_VERSION: u32 = 1;

/// How a numeric value is transformed before standardisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumericTransform {
    Identity,
    /// `ln(1 + x)`.
    Log1p,
}

impl NumericTransform {
    fn apply(self, value: f64) -> f64 {
        match self {
            NumericTransform::Identity => value,
            NumericTransform::Log1p => value.ln_1p(),
        }
    }
}

impl From<Transform> for NumericTransform {
    fn from(transform: Transform) -> Self {
        match transform {
            Transform::None => NumericTransform::Identity,
            Transform::Log1p => NumericTransform::Log1p,
        }
    }
}

/// How one attribute is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// One column per category, in schema order (a boolean: `false`, `true`).
    OneHot { categories: Vec<String> },
    /// One column: `(transform(x) - mean) / std`.
    Standardised {
        transform: NumericTransform,
        mean: f64,
        std: f64,
    },
}

/// One attribute's encoding and its place in the feature vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodedAttribute {
    pub name: String,
    /// First column of this attribute.
    pub offset: usize,
    /// Number of columns.
    pub width: usize,
    pub encoding: Encoding,
    /// An optional field's last column is 1 when the value is missing (a numeric value's own
    /// column is then 0, the mean): the model sees that it is missing, it is not filled in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing_indicator: bool,
    /// Position of the field in the schema (not saved: resolved by name when bound).
    #[serde(skip)]
    field: usize,
}

impl EncodedAttribute {
    /// Position of the attribute's field in the schema it is bound to.
    pub fn field(&self) -> usize {
        self.field
    }
}

/// The saved encoder and scaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub format_version: u32,
    /// Total number of feature columns.
    pub width: usize,
    /// The model-input fields, in schema order.
    pub attributes: Vec<EncodedAttribute>,
    /// Number of rows the scaler was fitted on.
    pub fitted_rows: usize,
}

/// Why a preprocessor could not be fitted, loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("cannot fit a preprocessor on zero rows")]
    NoRows,
    #[error("preprocessor output buffer has {actual} columns, expected {expected}")]
    BufferWidth { expected: usize, actual: usize },
    #[error("cannot read preprocessor {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write preprocessor {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("preprocessor {path} is not valid JSON for this format: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("preprocessor does not fit the schema: {0}")]
    Incompatible(String),
}

impl Preprocessor {
    /// Fits the scaler on `rows` (the training split only), one block per model-input field of
    /// `schema`.
    pub fn fit(schema: &Schema, rows: &[Applicant]) -> Result<Self, PreprocessError> {
        if rows.is_empty() {
            return Err(PreprocessError::NoRows);
        }
        let mut attributes = Vec::new();
        let mut offset = 0;
        for (position, field) in schema.fields().iter().enumerate() {
            if !field.is_model_input() {
                continue;
            }
            let encoding = match &field.kind {
                FieldKind::Category { categories } => Encoding::OneHot {
                    categories: categories.iter().map(|c| c.value.clone()).collect(),
                },
                FieldKind::Boolean => Encoding::OneHot {
                    categories: vec!["false".to_owned(), "true".to_owned()],
                },
                FieldKind::Integer { .. } | FieldKind::Number { .. } => {
                    let transform = NumericTransform::from(field.transform);
                    let values: Vec<f64> = rows
                        .iter()
                        .filter_map(|row| match row.values()[position] {
                            AttributeValue::Numeric(value) => Some(transform.apply(value)),
                            _ => None,
                        })
                        .collect();
                    let (mean, std) = mean_and_std(&values);
                    Encoding::Standardised {
                        transform,
                        mean,
                        std,
                    }
                }
                FieldKind::Text { .. } => continue,
            };
            let missing_indicator = !field.required;
            let width = match &encoding {
                Encoding::OneHot { categories } => categories.len(),
                Encoding::Standardised { .. } => 1,
            } + usize::from(missing_indicator);
            attributes.push(EncodedAttribute {
                name: field.name.clone(),
                offset,
                width,
                encoding,
                missing_indicator,
                field: position,
            });
            offset += width;
        }
        Ok(Self {
            format_version: FORMAT_VERSION,
            width: offset,
            attributes,
            fitted_rows: rows.len(),
        })
    }

    /// Writes the features of `applicant` into `out`, which must be exactly [`Self::width`] long.
    ///
    /// Allocation-free: the worker calls this once per record on a slice of its batch buffer.
    pub fn transform_into(
        &self,
        applicant: &Applicant,
        out: &mut [f32],
    ) -> Result<(), PreprocessError> {
        if out.len() != self.width {
            return Err(PreprocessError::BufferWidth {
                expected: self.width,
                actual: out.len(),
            });
        }
        out.fill(0.0);
        let values = applicant.values();
        for attribute in &self.attributes {
            let value = values
                .get(attribute.field)
                .copied()
                .unwrap_or(AttributeValue::Missing);
            let block = &mut out[attribute.offset..attribute.offset + attribute.width];
            match (&attribute.encoding, value) {
                (_, AttributeValue::Missing) if attribute.missing_indicator => {
                    block[attribute.width - 1] = 1.0;
                }
                (Encoding::OneHot { categories }, AttributeValue::Categorical(index))
                    if index < categories.len() =>
                {
                    block[index] = 1.0;
                }
                (
                    Encoding::Standardised {
                        transform,
                        mean,
                        std,
                    },
                    AttributeValue::Numeric(value),
                ) => {
                    block[0] = ((transform.apply(value) - mean) / std) as f32;
                }
                _ => {
                    return Err(PreprocessError::Incompatible(format!(
                        "attribute `{}` has an encoding that does not fit its value",
                        attribute.name
                    )))
                }
            }
        }
        Ok(())
    }

    /// Transforms many applicants into one row-major `[rows, width]` buffer.
    pub fn transform_batch(&self, applicants: &[Applicant]) -> Result<Vec<f32>, PreprocessError> {
        let mut out = vec![0.0; applicants.len() * self.width];
        for (applicant, row) in applicants.iter().zip(out.chunks_exact_mut(self.width)) {
            self.transform_into(applicant, row)?;
        }
        Ok(out)
    }

    /// Column range `[start, end)` of each attribute, in schema order. The model turns each
    /// range into one token of the sequence it reads.
    pub fn attribute_blocks(&self) -> Vec<(usize, usize)> {
        self.attributes
            .iter()
            .map(|attribute| (attribute.offset, attribute.offset + attribute.width))
            .collect()
    }

    /// The feature layout as compact JSON, stored in the ONNX model's metadata so the model
    /// file says which columns it expects.
    pub fn layout_json(&self) -> String {
        let layout: Vec<serde_json::Value> = self
            .attributes
            .iter()
            .map(|attribute| {
                serde_json::json!({
                    "name": attribute.name,
                    "offset": attribute.offset,
                    "width": attribute.width,
                })
            })
            .collect();
        serde_json::Value::Array(layout).to_string()
    }

    /// SHA-256 of the artifact's canonical JSON: part of the model version.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }

    /// Saves the artifact as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), PreprocessError> {
        let json = serde_json::to_string_pretty(self).map_err(|source| PreprocessError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        std::fs::write(path, json + "\n").map_err(|source| PreprocessError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Loads an artifact and binds it to `schema`.
    pub fn load(path: &Path, schema: &Schema) -> Result<Self, PreprocessError> {
        let bytes = std::fs::read(path).map_err(|source| PreprocessError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json_bytes(&bytes, path, schema)
    }

    /// Parses an artifact already read from `path` (e.g. the bytes whose hash the model
    /// bundle's manifest just confirmed) and binds it to `schema`.
    pub(crate) fn from_json_bytes(
        bytes: &[u8],
        path: &Path,
        schema: &Schema,
    ) -> Result<Self, PreprocessError> {
        let mut preprocessor: Preprocessor =
            serde_json::from_slice(bytes).map_err(|source| PreprocessError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        preprocessor.bind(schema)?;
        Ok(preprocessor)
    }

    /// Finds each attribute's field in `schema` and checks that the artifact was fitted for it
    /// (the same model inputs, in order, with the same categories and kinds), so a preprocessor
    /// of another schema fails at start-up instead of scoring garbage.
    pub(crate) fn bind(&mut self, schema: &Schema) -> Result<(), PreprocessError> {
        let fail = |message: String| Err(PreprocessError::Incompatible(message));
        if self.format_version != FORMAT_VERSION {
            return fail(format!(
                "format_version is {}, this build reads {FORMAT_VERSION}",
                self.format_version
            ));
        }
        let inputs: Vec<(usize, &crate::schema::Field)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| field.is_model_input())
            .collect();
        if self.attributes.len() != inputs.len() {
            return fail(format!(
                "{} attributes, schema `{}` has {} model inputs",
                self.attributes.len(),
                schema.name(),
                inputs.len()
            ));
        }
        let mut offset = 0;
        for (attribute, (position, field)) in self.attributes.iter_mut().zip(inputs) {
            if attribute.name != field.name {
                return fail(format!(
                    "attribute at offset {offset} is `{}`, the schema expects `{}`",
                    attribute.name, field.name
                ));
            }
            if attribute.offset != offset {
                return fail(format!(
                    "attribute `{}` starts at column {}, expected {offset}",
                    attribute.name, attribute.offset
                ));
            }
            if attribute.missing_indicator == field.required {
                return fail(format!(
                    "attribute `{}` {} a missing indicator, but the field is {}",
                    attribute.name,
                    if attribute.missing_indicator {
                        "has"
                    } else {
                        "lacks"
                    },
                    if field.required {
                        "required"
                    } else {
                        "optional"
                    }
                ));
            }
            let extra = usize::from(attribute.missing_indicator);
            let expected: Option<Vec<&str>> = match &field.kind {
                FieldKind::Category { categories } => {
                    Some(categories.iter().map(|c| c.value.as_str()).collect())
                }
                FieldKind::Boolean => Some(vec!["false", "true"]),
                _ => None,
            };
            match (&attribute.encoding, expected) {
                (Encoding::OneHot { categories }, Some(values)) => {
                    if categories.len() != values.len()
                        || categories.iter().zip(&values).any(|(a, b)| a != b)
                        || attribute.width != values.len() + extra
                    {
                        return fail(format!(
                            "attribute `{}` was fitted with categories [{}], the schema has [{}]",
                            attribute.name,
                            categories.join(", "),
                            values.join(", ")
                        ));
                    }
                }
                (Encoding::Standardised { mean, std, .. }, None) => {
                    if attribute.width != 1 + extra
                        || !mean.is_finite()
                        || !std.is_finite()
                        || *std <= 0.0
                    {
                        return fail(format!(
                            "attribute `{}` has an invalid scaler (mean {mean}, std {std}, width {})",
                            attribute.name, attribute.width
                        ));
                    }
                }
                _ => {
                    return fail(format!(
                        "attribute `{}` has an encoding that does not fit its type",
                        attribute.name
                    ))
                }
            }
            attribute.field = position;
            offset += attribute.width;
        }
        if offset != self.width {
            return fail(format!(
                "width is {}, the attributes add up to {offset}",
                self.width
            ));
        }
        Ok(())
    }
}

/// Mean and standard deviation of `values`; a constant (or empty) column gets std 1, which
/// keeps it at zero instead of dividing by zero.
fn mean_and_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    let std = if variance > 1e-12 {
        variance.sqrt()
    } else {
        1.0
    };
    (mean, std)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::shipped_german_credit;
    use crate::schema::{german_credit, Schema};

    fn shipped() -> Vec<Applicant> {
        shipped_german_credit()
            .into_iter()
            .map(|row| row.applicant)
            .collect()
    }

    fn fitted(rows: &[Applicant]) -> Preprocessor {
        Preprocessor::fit(&german_credit(), rows).unwrap()
    }

    #[test]
    fn width_is_one_hot_categories_plus_numerics() {
        let preprocessor = fitted(&shipped());
        // The protected fields (sex and status, age, foreign worker) are no inputs: 11
        // categorical attributes with 4+5+11+5+5+3+4+3+3+4+2 values, 6 numerics.
        assert_eq!(preprocessor.width, 49 + 6);
        assert_eq!(preprocessor.attribute_blocks().len(), 17);
        assert_eq!(preprocessor.attribute_blocks()[0], (0, 4));
        assert_eq!(preprocessor.attribute_blocks()[1], (4, 5));
    }

    #[test]
    fn numeric_columns_are_standardised_on_the_fitted_rows() {
        let rows = shipped();
        let preprocessor = fitted(&rows);
        let features = preprocessor.transform_batch(&rows).unwrap();
        let column = 4; // duration_months
        let values: Vec<f64> = features
            .chunks_exact(preprocessor.width)
            .map(|row| f64::from(row[column]))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(mean.abs() < 1e-5, "mean {mean}");
        assert!((variance - 1.0).abs() < 1e-4, "variance {variance}");
    }

    #[test]
    fn one_hot_sets_exactly_one_column_per_categorical_attribute() {
        let rows = shipped();
        let preprocessor = fitted(&rows);
        let mut out = vec![0.0; preprocessor.width];
        preprocessor.transform_into(&rows[0], &mut out).unwrap();
        for attribute in &preprocessor.attributes {
            if let Encoding::OneHot { .. } = attribute.encoding {
                let block = &out[attribute.offset..attribute.offset + attribute.width];
                assert_eq!(block.iter().filter(|v| **v == 1.0).count(), 1);
                assert_eq!(block.iter().filter(|v| **v == 0.0).count(), block.len() - 1);
            }
        }
        // Row 1 is `... < 0 DM`: the first checking-account column.
        assert_eq!(out[0], 1.0);
    }

    #[test]
    fn transform_into_rejects_a_buffer_of_the_wrong_width() {
        let rows = shipped();
        let preprocessor = fitted(&rows);
        let mut out = vec![0.0; preprocessor.width - 1];
        assert!(matches!(
            preprocessor.transform_into(&rows[0], &mut out),
            Err(PreprocessError::BufferWidth { .. })
        ));
    }

    #[test]
    fn save_and_load_round_trip() {
        let preprocessor = fitted(&shipped());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor.json");
        preprocessor.save(&path).unwrap();
        assert_eq!(
            Preprocessor::load(&path, &german_credit()).unwrap(),
            preprocessor
        );
    }

    #[test]
    fn load_rejects_an_artifact_from_another_schema() {
        let mut preprocessor = fitted(&shipped());
        if let Encoding::OneHot { categories } = &mut preprocessor.attributes[3].encoding {
            categories.pop();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor.json");
        preprocessor.save(&path).unwrap();
        let message = Preprocessor::load(&path, &german_credit())
            .unwrap_err()
            .to_string();
        assert!(message.contains("purpose"), "{message}");
    }

    #[test]
    fn load_names_the_path_of_a_truncated_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor.json");
        std::fs::write(&path, "{\"format_version\": 1, \"wid").unwrap();
        let message = Preprocessor::load(&path, &german_credit())
            .unwrap_err()
            .to_string();
        assert!(message.contains("preprocessor.json"), "{message}");
        let missing =
            Preprocessor::load(&dir.path().join("absent.json"), &german_credit()).unwrap_err();
        assert!(missing.to_string().contains("absent.json"));
    }

    #[test]
    fn fit_on_no_rows_is_an_error() {
        assert!(matches!(
            Preprocessor::fit(&german_credit(), &[]),
            Err(PreprocessError::NoRows)
        ));
    }

    #[test]
    fn a_missing_optional_value_sets_its_indicator_and_nothing_else() {
        let schema = Schema::parse(
            r#"
            name = "x"
            [[field]]
            name = "income"
            label = "Income"
            type = "number"
            min = 0
            max = 1e6
            required = false
            [[field]]
            name = "owner"
            label = "Home owner"
            type = "boolean"
            required = false
            "#,
            "test.toml",
        )
        .unwrap();
        let rows: Vec<Applicant> = [(10.0, 1), (30.0, 0)]
            .map(|(income, owner)| {
                Applicant::from_values(
                    &schema,
                    vec![
                        AttributeValue::Numeric(income),
                        AttributeValue::Categorical(owner),
                    ],
                )
                .unwrap()
            })
            .to_vec();
        let preprocessor = Preprocessor::fit(&schema, &rows).unwrap();
        assert_eq!(preprocessor.width, 2 + 3);
        let missing = Applicant::from_values(
            &schema,
            vec![AttributeValue::Missing, AttributeValue::Missing],
        )
        .unwrap();
        let mut out = vec![9.0; preprocessor.width];
        preprocessor.transform_into(&missing, &mut out).unwrap();
        assert_eq!(out, [0.0, 1.0, 0.0, 0.0, 1.0]);
        preprocessor.transform_into(&rows[0], &mut out).unwrap();
        assert_eq!(out, [-1.0, 0.0, 0.0, 1.0, 0.0]);
    }
}
