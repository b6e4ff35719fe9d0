//! Writes [`NetworkWeights`] as an ONNX model that ONNX Runtime can serve.
//!
//! Why hand-built protobuf rather than a framework exporter: candle has no ONNX export, and the
//! network is small and fixed, so spelling the graph out node by node keeps the served model
//! exactly the one documented in `weights.rs` (and checked by [`NetworkWeights::forward`]).
//!
//! The recurrent layers use ONNX's native `LSTM` operator instead of an unrolled loop of
//! `MatMul`s: ONNX Runtime runs it as one fused kernel, the graph stays a few dozen nodes
//! whatever the token count, and the weights already sit in the operator's `iofc` layout.
//!
//! Graph (N is the symbolic dimension `batch`):
//!
//! ```text
//! features [N, D] ─ MatMul token_weight [D, T*F] ─ Add token_bias ─ Reshape [-1, T, F]
//!   ─ Transpose [1, 0, 2] → [T, N, F]
//!   ─ LSTM 1 → Y [T, 1, N, H] ─ Squeeze axes [1] → [T, N, H] ─ LSTM 2 ─ ... ─ LSTM L
//!   ─ Y_h [1, N, H] ─ Squeeze axes [0] → [N, H]
//!   ─ Concat([h, features], axis 1) → [N, H + D]
//!   ─ Gemm head_hidden (transB) ─ Relu ─ Gemm head_output (transB) ─ Sigmoid
//!   → probability_bad [N, 1]
//! ```

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use super::reference::ShapeError;
use super::weights::NetworkWeights;

/// Name of the graph input: preprocessed features, `float [batch, D]`.
pub const INPUT_NAME: &str = "features";
/// Name of the graph output: probability of `bad`, `float [batch, 1]`.
pub const OUTPUT_NAME: &str = "probability_bad";
/// Symbolic name of the batch dimension, so one model serves any batch size.
pub const BATCH_DIM: &str = "batch";
/// ONNX IR version written (8 is understood by every ONNX Runtime since 1.10).
pub const IR_VERSION: i64 = 8;
/// Default-domain opset: 17 has `Squeeze` with `axes` as an input (since 13) and `LSTM`
/// version 14 (with the `layout` attribute, left at its default 0).
pub const OPSET_VERSION: i64 = 17;
/// `ModelProto.producer_name`.
pub const PRODUCER_NAME: &str = "credit-risk-trainer";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The weights do not describe a consistent network.
    #[error("cannot export the network: {0}")]
    InvalidWeights(#[from] ShapeError),
    /// A weight is NaN or infinite; such a model would score every applicant as NaN.
    #[error("cannot export the network: {tensor}[{index}] is {value}, not a finite number")]
    NonFiniteWeight {
        tensor: &'static str,
        index: usize,
        value: f32,
    },
    /// Two metadata entries share a key; ONNX Runtime would silently keep only one of them.
    #[error("metadata key {key:?} is given more than once")]
    DuplicateMetadataKey { key: String },
    /// A metadata key is empty, which ONNX Runtime cannot look up.
    #[error("metadata keys must not be empty")]
    EmptyMetadataKey,
    /// A dimension does not fit ONNX's `int64`.
    #[error("dimension {value} of {tensor} does not fit in an ONNX int64")]
    DimensionTooLarge { tensor: String, value: usize },
    /// The protobuf encoder failed.
    #[error("failed to serialise the ONNX model: {0}")]
    Serialise(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Writing the model file failed.
    #[error("failed to write the ONNX model to {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Serialises `weights` as an ONNX `ModelProto`, with `metadata` as its `metadata_props`.
///
/// The weights are validated first ([`NetworkWeights::validate`], finite values) so that a bad
/// model is rejected here, at training time, rather than by the scoring worker.
pub fn export_onnx(
    weights: &NetworkWeights,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, ExportError> {
    build_model(weights, metadata)?
        .write_to_bytes()
        .map_err(|e| ExportError::Serialise(Box::new(e)))
}

/// [`export_onnx`] and write the bytes to `path`.
///
/// The bytes go to a sibling temporary file that is then renamed over `path`, so a reader (e.g.
/// a worker picking up a new model) never sees a half-written file.
pub fn write_onnx(
    path: &Path,
    weights: &NetworkWeights,
    metadata: &[(String, String)],
) -> Result<(), ExportError> {
    let bytes = export_onnx(weights, metadata)?;
    let io_error = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let Some(file_name) = path.file_name() else {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        )));
    };
    let mut temp_name = file_name.to_os_string();
    temp_name.push(".part");
    let temp = path.with_file_name(temp_name);
    let written = fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(source) = written {
        // Best effort: the original error is what matters to the caller.
        let _ = fs::remove_file(&temp);
        return Err(io_error(source));
    }
    Ok(())
}

/// Builds the `ModelProto`; separate from [`export_onnx`] so the tests can inspect it.
fn build_model(
    weights: &NetworkWeights,
    metadata: &[(String, String)],
) -> Result<ModelProto, ExportError> {
    weights.validate()?;
    check_finite(weights)?;
    let mut seen = BTreeSet::new();
    for (key, _) in metadata {
        if key.is_empty() {
            return Err(ExportError::EmptyMetadataKey);
        }
        if !seen.insert(key.as_str()) {
            return Err(ExportError::DuplicateMetadataKey { key: key.clone() });
        }
    }

    let d = weights.input_width;
    let t = weights.tokens;
    let f = weights.token_width;
    let tf = t * f;
    let k = weights.head_hidden.out_features;

    let mut graph = GraphProto {
        name: "credit_risk_lstm".to_owned(),
        doc_string: describe(weights),
        ..Default::default()
    };
    graph.input.push(tensor_value_info(
        INPUT_NAME,
        &[Dim::Batch, Dim::Fixed(dim(INPUT_NAME, d)?)],
    ));
    graph
        .output
        .push(tensor_value_info(OUTPUT_NAME, &[Dim::Batch, Dim::Fixed(1)]));

    // Token projection.
    graph.initializer.push(float_tensor(
        "token_weight",
        &[dim("token_weight", d)?, dim("token_weight", tf)?],
        &weights.token_weight,
    ));
    graph.initializer.push(float_tensor(
        "token_bias",
        &[dim("token_bias", tf)?],
        &weights.token_bias,
    ));
    graph.initializer.push(int64_tensor(
        "tokens_shape",
        &[-1, dim("tokens", t)?, dim("token_width", f)?],
    ));
    graph.node.push(node(
        "MatMul",
        &[INPUT_NAME, "token_weight"],
        &["tokens_flat"],
        vec![],
    ));
    graph.node.push(node(
        "Add",
        &["tokens_flat", "token_bias"],
        &["tokens_flat_biased"],
        vec![],
    ));
    graph.node.push(node(
        "Reshape",
        &["tokens_flat_biased", "tokens_shape"],
        &["tokens_batch_major"],
        vec![],
    ));
    graph.node.push(node(
        "Transpose",
        &["tokens_batch_major"],
        &["tokens_time_major"],
        vec![attr_ints("perm", &[1, 0, 2])],
    ));

    // Stacked LSTM layers.
    graph.initializer.push(int64_tensor("axes_1", &[1]));
    graph.initializer.push(int64_tensor("axes_0", &[0]));
    let mut sequence = "tokens_time_major".to_owned();
    let last = weights.lstm.len() - 1;
    for (index, layer) in weights.lstm.iter().enumerate() {
        let hs = dim("lstm hidden_size", layer.hidden_size)?;
        let is = dim("lstm input_size", layer.input_size)?;
        let (w, r, b) = (
            format!("lstm{index}_W"),
            format!("lstm{index}_R"),
            format!("lstm{index}_B"),
        );
        graph
            .initializer
            .push(float_tensor(&w, &[1, 4 * hs, is], &layer.w));
        graph
            .initializer
            .push(float_tensor(&r, &[1, 4 * hs, hs], &layer.r));
        let bias: Vec<f32> = layer.wb.iter().chain(&layer.rb).copied().collect();
        graph
            .initializer
            .push(float_tensor(&b, &[1, 8 * hs], &bias));

        let attributes = vec![
            attr_int("hidden_size", hs),
            attr_string("direction", "forward"),
        ];
        let inputs = [sequence.as_str(), w.as_str(), r.as_str(), b.as_str()];
        if index == last {
            // Only Y_h (output 1) is needed; an empty name leaves Y unproduced.
            graph.node.push(node(
                "LSTM",
                &inputs,
                &["", "lstm_last_h_directions"],
                attributes,
            ));
        } else {
            let y = format!("lstm{index}_y");
            let next = format!("lstm{index}_sequence");
            graph
                .node
                .push(node("LSTM", &inputs, &[y.as_str()], attributes));
            // Y is [T, num_directions = 1, N, H]; the next layer wants [T, N, H].
            graph.node.push(node(
                "Squeeze",
                &[y.as_str(), "axes_1"],
                &[next.as_str()],
                vec![],
            ));
            sequence = next;
        }
    }
    graph.node.push(node(
        "Squeeze",
        &["lstm_last_h_directions", "axes_0"],
        &["lstm_last_h"],
        vec![],
    ));

    // Head.
    graph.node.push(node(
        "Concat",
        &["lstm_last_h", INPUT_NAME],
        &["head_input"],
        vec![attr_int("axis", 1)],
    ));
    let head_in = dim("head_hidden.in_features", weights.head_hidden.in_features)?;
    let kk = dim("head_hidden.out_features", k)?;
    graph.initializer.push(float_tensor(
        "head_hidden_weight",
        &[kk, head_in],
        &weights.head_hidden.weight,
    ));
    graph.initializer.push(float_tensor(
        "head_hidden_bias",
        &[kk],
        &weights.head_hidden.bias,
    ));
    graph.initializer.push(float_tensor(
        "head_output_weight",
        &[1, kk],
        &weights.head_output.weight,
    ));
    graph.initializer.push(float_tensor(
        "head_output_bias",
        &[1],
        &weights.head_output.bias,
    ));
    graph.node.push(node(
        "Gemm",
        &["head_input", "head_hidden_weight", "head_hidden_bias"],
        &["head_hidden_linear"],
        vec![attr_int("transB", 1)],
    ));
    graph.node.push(node(
        "Relu",
        &["head_hidden_linear"],
        &["head_hidden_activation"],
        vec![],
    ));
    graph.node.push(node(
        "Gemm",
        &[
            "head_hidden_activation",
            "head_output_weight",
            "head_output_bias",
        ],
        &["logit_bad"],
        vec![attr_int("transB", 1)],
    ));
    graph
        .node
        .push(node("Sigmoid", &["logit_bad"], &[OUTPUT_NAME], vec![]));

    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET_VERSION,
            ..Default::default()
        }],
        producer_name: PRODUCER_NAME.to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        doc_string: describe(weights),
        graph: Some(graph).into(),
        metadata_props: metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// Human-readable summary stored as the model's `doc_string`, so `netron` or
/// `onnxruntime`'s metadata show what the file contains without the training code.
fn describe(w: &NetworkWeights) -> String {
    let hidden: Vec<String> = w.lstm.iter().map(|l| l.hidden_size.to_string()).collect();
    format!(
        "Credit-risk scoring network. Input `{INPUT_NAME}` [batch, {d}] (preprocessed applicant \
         features). Block-sparse token projection to {t} tokens of width {f} (token t sees only \
         the columns of attribute t); {layers} stacked forward LSTM layer(s) with hidden sizes \
         [{hidden}] over the tokens, zero initial state; the last layer's final hidden state is \
         concatenated with the raw features ([batch, {head_in}]), then dense {head_in}->{k} + \
         ReLU, dense {k}->1 + sigmoid. Output `{OUTPUT_NAME}` [batch, 1] is the probability \
         that the applicant is a bad credit risk.",
        d = w.input_width,
        t = w.tokens,
        f = w.token_width,
        layers = w.lstm.len(),
        hidden = hidden.join(", "),
        head_in = w.head_hidden.in_features,
        k = w.head_hidden.out_features,
    )
}

fn check_finite(w: &NetworkWeights) -> Result<(), ExportError> {
    let mut tensors: Vec<(&'static str, &[f32])> = vec![
        ("token_weight", &w.token_weight),
        ("token_bias", &w.token_bias),
    ];
    for layer in &w.lstm {
        tensors.extend([
            ("lstm.w", layer.w.as_slice()),
            ("lstm.r", &layer.r),
            ("lstm.wb", &layer.wb),
            ("lstm.rb", &layer.rb),
        ]);
    }
    tensors.extend([
        ("head_hidden.weight", w.head_hidden.weight.as_slice()),
        ("head_hidden.bias", &w.head_hidden.bias),
        ("head_output.weight", &w.head_output.weight),
        ("head_output.bias", &w.head_output.bias),
    ]);
    for (tensor, values) in tensors {
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ExportError::NonFiniteWeight {
                tensor,
                index,
                value,
            });
        }
    }
    Ok(())
}

fn dim(tensor: &str, value: usize) -> Result<i64, ExportError> {
    i64::try_from(value).map_err(|_| ExportError::DimensionTooLarge {
        tensor: tensor.to_owned(),
        value,
    })
}

enum Dim {
    Batch,
    Fixed(i64),
}

fn tensor_value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let shape = TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Batch => dimension::Value::DimParam(BATCH_DIM.to_owned()),
                    Dim::Fixed(v) => dimension::Value::DimValue(*v),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_owned(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::FLOAT as i32,
                shape: Some(shape).into(),
                ..Default::default()
            })),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// A float initializer stored as little-endian `raw_data` (ONNX's canonical byte order),
/// which is both compact and loaded by ONNX Runtime without per-element parsing.
fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: DataType::FLOAT as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn int64_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: vec![values.len() as i64],
        data_type: DataType::INT64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A default-domain node; its name is derived from its first output, which is unique.
fn node(
    op_type: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    let first_named = outputs
        .iter()
        .find(|o| !o.is_empty())
        .copied()
        .unwrap_or(op_type);
    NodeProto {
        name: format!("{op_type}_{first_named}"),
        op_type: op_type.to_owned(),
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: outputs.iter().map(|s| (*s).to_owned()).collect(),
        attribute,
        ..Default::default()
    }
}

fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        type_: AttributeType::INT.into(),
        i: value,
        ..Default::default()
    }
}

fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        type_: AttributeType::INTS.into(),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        type_: AttributeType::STRING.into(),
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(width: usize, tokens: usize) -> Vec<(usize, usize)> {
        (0..tokens)
            .map(|t| (t * width / tokens, (t + 1) * width / tokens))
            .collect()
    }

    fn weights() -> NetworkWeights {
        NetworkWeights::random(61, 20, 8, 32, 2, 16, &blocks(61, 20), 5)
    }

    fn parse(bytes: &[u8]) -> ModelProto {
        ModelProto::parse_from_bytes(bytes).unwrap()
    }

    fn dims_of(info: &ValueInfoProto) -> Vec<dimension::Value> {
        match &info.type_.value {
            Some(type_proto::Value::TensorType(t)) => {
                assert_eq!(t.elem_type, DataType::FLOAT as i32);
                t.shape
                    .dim
                    .iter()
                    .map(|d| d.value.clone().unwrap())
                    .collect()
            }
            other => panic!("{} is not a tensor: {other:?}", info.name),
        }
    }

    #[test]
    fn model_header_is_ir8_opset17_from_the_trainer() {
        let model = parse(&export_onnx(&weights(), &[]).unwrap());
        assert_eq!(model.ir_version, 8);
        assert_eq!(model.opset_import.len(), 1);
        assert_eq!(model.opset_import[0].domain, "");
        assert_eq!(model.opset_import[0].version, 17);
        assert_eq!(model.producer_name, "credit-risk-trainer");
        assert!(model.doc_string.contains("LSTM"), "{}", model.doc_string);
        assert!(
            model.doc_string.contains("[batch, 61]"),
            "{}",
            model.doc_string
        );
    }

    #[test]
    fn graph_io_has_symbolic_batch_and_declared_widths() {
        let model = parse(&export_onnx(&weights(), &[]).unwrap());
        let graph = &model.graph;
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, "features");
        assert_eq!(
            dims_of(&graph.input[0]),
            [
                dimension::Value::DimParam("batch".into()),
                dimension::Value::DimValue(61)
            ]
        );
        assert_eq!(graph.output.len(), 1);
        assert_eq!(graph.output[0].name, "probability_bad");
        assert_eq!(
            dims_of(&graph.output[0]),
            [
                dimension::Value::DimParam("batch".into()),
                dimension::Value::DimValue(1)
            ]
        );
    }

    #[test]
    fn each_lstm_layer_is_one_native_lstm_node_with_its_weights() {
        let w = weights();
        let model = parse(&export_onnx(&w, &[]).unwrap());
        let graph = &model.graph;
        let lstm: Vec<&NodeProto> = graph.node.iter().filter(|n| n.op_type == "LSTM").collect();
        assert_eq!(lstm.len(), 2);
        for (index, node) in lstm.iter().enumerate() {
            let hidden = node
                .attribute
                .iter()
                .find(|a| a.name == "hidden_size")
                .unwrap();
            assert_eq!(hidden.i, 32);
            let direction = node
                .attribute
                .iter()
                .find(|a| a.name == "direction")
                .unwrap();
            assert_eq!(direction.s, b"forward");
            let init = |name: &str| graph.initializer.iter().find(|t| t.name == name).unwrap();
            let input_size = if index == 0 { 8 } else { 32 };
            assert_eq!(init(&node.input[1]).dims, [1, 128, input_size]);
            assert_eq!(init(&node.input[2]).dims, [1, 128, 32]);
            let b = init(&node.input[3]);
            assert_eq!(b.dims, [1, 256]);
            // B = concat(Wb, Rb), little-endian f32.
            let b_values: Vec<f32> = b
                .raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(&b_values[..128], w.lstm[index].wb.as_slice());
            assert_eq!(&b_values[128..], w.lstm[index].rb.as_slice());
        }
        // Layer 2 reads layer 1's squeezed Y; the head reads the last layer's Y_h.
        assert_eq!(lstm[1].input[0], "lstm0_sequence");
        assert_eq!(lstm[1].output[1], "lstm_last_h_directions");
    }

    #[test]
    fn every_node_input_is_produced_before_use() {
        let model = parse(&export_onnx(&weights(), &[]).unwrap());
        let graph = &model.graph;
        let mut available: BTreeSet<String> = graph
            .initializer
            .iter()
            .map(|t| t.name.clone())
            .chain(graph.input.iter().map(|i| i.name.clone()))
            .collect();
        for node in &graph.node {
            for input in &node.input {
                assert!(
                    available.contains(input),
                    "{} reads undefined {input}",
                    node.name
                );
            }
            available.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
        }
        assert!(available.contains("probability_bad"));
    }

    #[test]
    fn metadata_goes_into_metadata_props_in_order() {
        let metadata = vec![
            ("threshold".to_owned(), "0.37".to_owned()),
            ("preprocessor_sha256".to_owned(), "ab12".to_owned()),
        ];
        let model = parse(&export_onnx(&weights(), &metadata).unwrap());
        let props: Vec<(String, String)> = model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        assert_eq!(props, metadata);
    }

    #[test]
    fn export_rejects_inconsistent_weights() {
        let mut w = weights();
        w.head_output.bias.clear();
        assert!(matches!(
            export_onnx(&w, &[]),
            Err(ExportError::InvalidWeights(
                ShapeError::LengthMismatch { .. }
            ))
        ));
    }

    #[test]
    fn export_rejects_non_finite_weights() {
        let mut w = weights();
        w.lstm[1].r[7] = f32::NAN;
        let err = export_onnx(&w, &[]).unwrap_err();
        assert!(
            matches!(
                err,
                ExportError::NonFiniteWeight {
                    tensor: "lstm.r",
                    index: 7,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn export_rejects_duplicate_or_empty_metadata_keys() {
        let duplicate = vec![
            ("k".to_owned(), "1".to_owned()),
            ("k".to_owned(), "2".to_owned()),
        ];
        assert!(matches!(
            export_onnx(&weights(), &duplicate),
            Err(ExportError::DuplicateMetadataKey { key }) if key == "k"
        ));
        assert!(matches!(
            export_onnx(&weights(), &[(String::new(), "v".to_owned())]),
            Err(ExportError::EmptyMetadataKey)
        ));
    }

    #[test]
    fn write_onnx_writes_the_exported_bytes_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        let w = weights();
        write_onnx(&path, &w, &[]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), export_onnx(&w, &[]).unwrap());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["model.onnx"]);
    }

    #[test]
    fn write_onnx_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("model.onnx");
        let err = write_onnx(&path, &weights(), &[]).unwrap_err();
        assert!(matches!(err, ExportError::Io { .. }));
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }
}
