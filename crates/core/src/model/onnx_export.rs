//! Writes [`NetworkWeights`] as an ONNX model that ONNX Runtime can serve, and reads them back
//! ([`read_exported`]) so a loader can check the model version against the weights.
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

use std::collections::{BTreeMap, BTreeSet};
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
use super::weights::{DenseWeights, LstmLayerWeights, NetworkWeights};

/// Name of the graph input: preprocessed features, `float [batch, D]`.
pub(crate) const INPUT_NAME: &str = "features";
/// Name of the graph output: probability of `bad`, `float [batch, 1]`.
pub(crate) const OUTPUT_NAME: &str = "probability_bad";
/// Symbolic name of the batch dimension, so one model serves any batch size.
pub(crate) const BATCH_DIM: &str = "batch";
/// ONNX IR version written (8 is understood by every ONNX Runtime since 1.10).
pub(crate) const IR_VERSION: i64 = 8;
/// Default-domain opset: 17 has `Squeeze` with `axes` as an input (since 13) and `LSTM`
/// version 14 (with the `layout` attribute, left at its default 0).
pub(crate) const OPSET_VERSION: i64 = 17;
/// `ModelProto.producer_name`.
pub(crate) const PRODUCER_NAME: &str = "credit-risk-trainer";

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
    check_metadata_keys(metadata)?;

    let mut graph = GraphProto {
        name: "credit_risk_lstm".to_owned(),
        doc_string: describe(weights),
        ..Default::default()
    };
    graph.input.push(tensor_value_info(
        INPUT_NAME,
        &[
            Dim::Batch,
            Dim::Fixed(dim(INPUT_NAME, weights.input_width)?),
        ],
    ));
    graph
        .output
        .push(tensor_value_info(OUTPUT_NAME, &[Dim::Batch, Dim::Fixed(1)]));
    add_token_projection(&mut graph, weights)?;
    add_lstm_layers(&mut graph, &weights.lstm)?;
    add_head(&mut graph, &weights.head_hidden, &weights.head_output)?;

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

/// ONNX Runtime keeps one value per metadata key and cannot look up an empty one.
fn check_metadata_keys(metadata: &[(String, String)]) -> Result<(), ExportError> {
    let mut seen = BTreeSet::new();
    for (key, _) in metadata {
        if key.is_empty() {
            return Err(ExportError::EmptyMetadataKey);
        }
        if !seen.insert(key.as_str()) {
            return Err(ExportError::DuplicateMetadataKey { key: key.clone() });
        }
    }
    Ok(())
}

/// `features [N, D]` to time-major tokens `tokens_time_major [T, N, F]`.
fn add_token_projection(
    graph: &mut GraphProto,
    weights: &NetworkWeights,
) -> Result<(), ExportError> {
    let d = weights.input_width;
    let t = weights.tokens;
    let f = weights.token_width;
    let tf = t * f;
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
    Ok(())
}

/// The stacked LSTM layers over `tokens_time_major`, ending in the last layer's final hidden
/// state `lstm_last_h [N, H]`.
fn add_lstm_layers(graph: &mut GraphProto, layers: &[LstmLayerWeights]) -> Result<(), ExportError> {
    graph.initializer.push(int64_tensor("axes_1", &[1]));
    graph.initializer.push(int64_tensor("axes_0", &[0]));
    let mut sequence = "tokens_time_major".to_owned();
    let last = layers.len() - 1;
    for (index, layer) in layers.iter().enumerate() {
        sequence = add_lstm_layer(graph, index, layer, &sequence, index == last)?;
    }
    graph.node.push(node(
        "Squeeze",
        &["lstm_last_h_directions", "axes_0"],
        &["lstm_last_h"],
        vec![],
    ));
    Ok(())
}

/// Layer `index` over `sequence`, with its W, R and B; returns the name of its output: the
/// next layer's input sequence, or the last layer's final hidden state.
fn add_lstm_layer(
    graph: &mut GraphProto,
    index: usize,
    layer: &LstmLayerWeights,
    sequence: &str,
    last: bool,
) -> Result<String, ExportError> {
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
    let inputs = [sequence, w.as_str(), r.as_str(), b.as_str()];
    if last {
        // Only Y_h (output 1) is needed; an empty name leaves Y unproduced.
        let last_h = "lstm_last_h_directions";
        graph
            .node
            .push(node("LSTM", &inputs, &["", last_h], attributes));
        return Ok(last_h.to_owned());
    }
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
    Ok(next)
}

/// `lstm_last_h` and the raw features through the dense head to `probability_bad`.
fn add_head(
    graph: &mut GraphProto,
    hidden: &DenseWeights,
    output: &DenseWeights,
) -> Result<(), ExportError> {
    graph.node.push(node(
        "Concat",
        &["lstm_last_h", INPUT_NAME],
        &["head_input"],
        vec![attr_int("axis", 1)],
    ));
    let head_in = dim("head_hidden.in_features", hidden.in_features)?;
    let kk = dim("head_hidden.out_features", hidden.out_features)?;
    graph.initializer.push(float_tensor(
        "head_hidden_weight",
        &[kk, head_in],
        &hidden.weight,
    ));
    graph
        .initializer
        .push(float_tensor("head_hidden_bias", &[kk], &hidden.bias));
    graph
        .initializer
        .push(float_tensor("head_output_weight", &[1, kk], &output.weight));
    graph
        .initializer
        .push(float_tensor("head_output_bias", &[1], &output.bias));
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
    Ok(())
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

/// Why the weights could not be read back from an ONNX model. Messages follow the model's name
/// ("model m.onnx has no initializer ...").
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bytes are not a protobuf `ModelProto`.
    #[error("is not a valid ONNX model: {0}")]
    Parse(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The model has no graph at all.
    #[error("has no graph")]
    NoGraph,
    /// A tensor the exporter always writes is absent.
    #[error("has no initializer `{name}`, so it was not written by this project's trainer")]
    MissingInitializer { name: String },
    /// Two initializers share a name, so which one ONNX Runtime runs is not the one hashed.
    #[error("has initializer `{name}` more than once")]
    DuplicateInitializer { name: String },
    /// A tensor has another type, shape or storage than the exporter writes.
    #[error("has initializer `{name}` {problem}")]
    BadInitializer { name: String, problem: String },
    /// Two metadata entries share a key, so which value ONNX Runtime reports is not defined.
    #[error("has metadata key {key:?} more than once")]
    DuplicateMetadataKey { key: String },
    /// The tensors are there but do not chain into the documented network.
    #[error("has weights that do not describe a consistent network: {0}")]
    InvalidWeights(#[from] ShapeError),
    /// The weights read back, but exporting them does not give this model again.
    #[error("is not an export of its own weights: {0}")]
    NotAnExport(String),
}

/// What an exported model carries, read back from its bytes: the inverse of [`export_onnx`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedModel {
    pub weights: NetworkWeights,
    pub metadata: BTreeMap<String, String>,
}

/// Reads the weights and metadata back from a model written by [`export_onnx`].
///
/// Why: the model version is a hash of the weights; reading back the very tensors ONNX Runtime
/// will run lets a loader recompute it, so a model whose weights were edited cannot keep the
/// version of the trained one. The read is exact (raw little-endian `f32`s), so an untouched
/// model yields the trainer's [`NetworkWeights`] bit for bit; and the model must be exactly what
/// [`export_onnx`] writes for them (only `producer_version` may differ), so the graph that uses
/// the weights cannot be edited either.
pub fn read_exported(bytes: &[u8]) -> Result<ExportedModel, ImportError> {
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| ImportError::Parse(Box::new(e)))?;
    let metadata = metadata_by_key(&model)?;
    let graph = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let tensors = Initializers::by_name(graph)?;
    let weights = read_weights(&tensors)?;
    weights.validate()?;
    check_is_export_of(&weights, &model, bytes)?;
    Ok(ExportedModel { weights, metadata })
}

/// The model's metadata by key, refusing a key given twice.
fn metadata_by_key(model: &ModelProto) -> Result<BTreeMap<String, String>, ImportError> {
    let mut metadata = BTreeMap::new();
    for entry in &model.metadata_props {
        if metadata
            .insert(entry.key.clone(), entry.value.clone())
            .is_some()
        {
            return Err(ImportError::DuplicateMetadataKey {
                key: entry.key.clone(),
            });
        }
    }
    Ok(metadata)
}

/// The network's tensors, in the order the exporter writes them.
fn read_weights(tensors: &Initializers) -> Result<NetworkWeights, ImportError> {
    let (token_dims, token_weight) = tensors.floats("token_weight")?;
    let [input_width, _] = shape("token_weight", &token_dims)?;
    let (_, token_bias) = tensors.floats("token_bias")?;
    let tokens_shape = tensors.int64s("tokens_shape")?;
    let [_, tokens, token_width] = shape("tokens_shape", &tokens_shape)?;
    let lstm = read_lstm_layers(tensors)?;
    let head_hidden = read_dense(tensors, "head_hidden")?;
    let head_output = read_dense(tensors, "head_output")?;
    Ok(NetworkWeights {
        input_width,
        tokens,
        token_width,
        token_weight,
        token_bias,
        lstm,
        head_hidden,
        head_output,
    })
}

/// `lstm0_*`, `lstm1_*`, ... up to the first index the model has no `W` for.
fn read_lstm_layers(tensors: &Initializers) -> Result<Vec<LstmLayerWeights>, ImportError> {
    let mut lstm = Vec::new();
    while tensors.has(&format!("lstm{}_W", lstm.len())) {
        lstm.push(read_lstm_layer(tensors, lstm.len())?);
    }
    Ok(lstm)
}

/// One `LSTM` operator's `W`, `R` and `B`, with the sizes `W` implies checked on all three.
fn read_lstm_layer(tensors: &Initializers, index: usize) -> Result<LstmLayerWeights, ImportError> {
    let (w_name, r_name, b_name) = (
        format!("lstm{index}_W"),
        format!("lstm{index}_R"),
        format!("lstm{index}_B"),
    );
    let (w_dims, w) = tensors.floats(&w_name)?;
    let [_, gates, input_size] = shape(&w_name, &w_dims)?;
    let hidden_size = gates / 4;
    let (r_dims, r) = tensors.floats(&r_name)?;
    let (b_dims, mut wb) = tensors.floats(&b_name)?;
    for (name, dims, expected) in [
        (&w_name, &w_dims, vec![1, 4 * hidden_size, input_size]),
        (&r_name, &r_dims, vec![1, 4 * hidden_size, hidden_size]),
        (&b_name, &b_dims, vec![1, 8 * hidden_size]),
    ] {
        if *dims != expected {
            return Err(bad(
                name,
                format!("has shape {dims:?}, expected {expected:?}"),
            ));
        }
    }
    let rb = wb.split_off(4 * hidden_size);
    Ok(LstmLayerWeights {
        input_size,
        hidden_size,
        w,
        r,
        wb,
        rb,
    })
}

/// The `{prefix}_weight` `[out, in]` and `{prefix}_bias` of one dense layer of the head.
fn read_dense(tensors: &Initializers, prefix: &str) -> Result<DenseWeights, ImportError> {
    let weight_name = format!("{prefix}_weight");
    let (dims, weight) = tensors.floats(&weight_name)?;
    let [out_features, in_features] = shape(&weight_name, &dims)?;
    let (_, bias) = tensors.floats(&format!("{prefix}_bias"))?;
    Ok(DenseWeights {
        in_features,
        out_features,
        weight,
        bias,
    })
}

/// Refuses a model that is not byte for byte what [`export_onnx`] writes for `weights` and the
/// model's own metadata, so the graph that runs the weights cannot have been edited.
fn check_is_export_of(
    weights: &NetworkWeights,
    model: &ModelProto,
    bytes: &[u8],
) -> Result<(), ImportError> {
    let in_file_order: Vec<(String, String)> = model
        .metadata_props
        .iter()
        .map(|entry| (entry.key.clone(), entry.value.clone()))
        .collect();
    let mut expected = build_model(weights, &in_file_order)
        .map_err(|error| ImportError::NotAnExport(error.to_string()))?;
    // The crate version that wrote the file names the build, not the computation.
    expected
        .producer_version
        .clone_from(&model.producer_version);
    // Bytes, not parsed messages: a parser that keeps the last of a repeated field (as this
    // one does) would miss a second graph that ONNX Runtime merges in.
    let rewritten = expected
        .write_to_bytes()
        .map_err(|error| ImportError::NotAnExport(error.to_string()))?;
    if expected != *model || rewritten != bytes {
        return Err(ImportError::NotAnExport(
            "its graph, opset or header differ from what this build's exporter writes for its \
             weights (an edited graph, or a model from another exporter)"
                .to_owned(),
        ));
    }
    Ok(())
}

fn bad(name: &str, problem: String) -> ImportError {
    ImportError::BadInitializer {
        name: name.to_owned(),
        problem,
    }
}

/// `dims` as exactly `N` sizes (a leading `-1`, as in a reshape target, reads as 0).
fn shape<const N: usize>(name: &str, dims: &[usize]) -> Result<[usize; N], ImportError> {
    dims.try_into()
        .map_err(|_| bad(name, format!("has {} dimensions, expected {N}", dims.len())))
}

/// The graph's initializers by name.
struct Initializers<'a>(BTreeMap<&'a str, &'a TensorProto>);

impl<'a> Initializers<'a> {
    /// The graph's initializers, refusing a name given twice.
    fn by_name(graph: &'a GraphProto) -> Result<Self, ImportError> {
        let mut initializers = BTreeMap::new();
        for tensor in &graph.initializer {
            if initializers.insert(tensor.name.as_str(), tensor).is_some() {
                return Err(ImportError::DuplicateInitializer {
                    name: tensor.name.clone(),
                });
            }
        }
        Ok(Self(initializers))
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The tensor's inline bytes; external data would be read from another file than the one
    /// hashed, so it is refused.
    fn tensor(&self, name: &str, data_type: DataType) -> Result<&TensorProto, ImportError> {
        let tensor = self
            .0
            .get(name)
            .ok_or_else(|| ImportError::MissingInitializer {
                name: name.to_owned(),
            })?;
        if tensor.data_type != data_type as i32 {
            return Err(bad(
                name,
                format!("has data type {}, expected {data_type:?}", tensor.data_type),
            ));
        }
        if !tensor.external_data.is_empty() || tensor.data_location.value() != 0 {
            return Err(bad(name, "is stored outside the model file".to_owned()));
        }
        Ok(tensor)
    }

    /// Dimensions and `f32` values, from `raw_data` or `float_data` (whichever ONNX Runtime
    /// would read), checked against each other.
    fn floats(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), ImportError> {
        let tensor = self.tensor(name, DataType::FLOAT)?;
        let values = match (tensor.raw_data.is_empty(), tensor.float_data.is_empty()) {
            (false, true) if tensor.raw_data.len() % 4 == 0 => tensor
                .raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            (true, _) => tensor.float_data.clone(),
            _ => {
                return Err(bad(
                    name,
                    "has raw data that is not one set of little-endian floats".to_owned(),
                ))
            }
        };
        let dims = dims_of(name, tensor)?;
        Self::check_count(name, &dims, values.len())?;
        Ok((dims, values))
    }

    /// The values of a one-dimensional `int64` tensor as sizes (negative values read as 0).
    fn int64s(&self, name: &str) -> Result<Vec<usize>, ImportError> {
        let tensor = self.tensor(name, DataType::INT64)?;
        let values: Vec<i64> = match (tensor.raw_data.is_empty(), tensor.int64_data.is_empty()) {
            (false, true) if tensor.raw_data.len() % 8 == 0 => tensor
                .raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            (true, _) => tensor.int64_data.clone(),
            _ => {
                return Err(bad(
                    name,
                    "has raw data that is not one set of little-endian int64s".to_owned(),
                ))
            }
        };
        let dims = dims_of(name, tensor)?;
        Self::check_count(name, &dims, values.len())?;
        Ok(values
            .into_iter()
            .map(|v| usize::try_from(v).unwrap_or(0))
            .collect())
    }

    fn check_count(name: &str, dims: &[usize], actual: usize) -> Result<(), ImportError> {
        let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected == Some(actual) {
            Ok(())
        } else {
            Err(bad(
                name,
                format!("has {actual} values for its shape {dims:?}"),
            ))
        }
    }
}

fn dims_of(name: &str, tensor: &TensorProto) -> Result<Vec<usize>, ImportError> {
    tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(name, format!("has dimension {d}"))))
        .collect()
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

    #[test]
    fn read_exported_gives_back_the_exported_weights_and_metadata_bit_for_bit() {
        let metadata = vec![("model_version".to_owned(), "lstm-1".to_owned())];
        for w in [
            weights(),
            NetworkWeights::random(9, 3, 4, 8, 1, 8, &blocks(9, 3), 7),
        ] {
            let exported = read_exported(&export_onnx(&w, &metadata).unwrap()).unwrap();
            // The version hashes the weights' JSON, so equal JSON is what must hold.
            assert_eq!(
                serde_json::to_vec(&exported.weights).unwrap(),
                serde_json::to_vec(&w).unwrap()
            );
            assert_eq!(
                exported.metadata,
                metadata.iter().cloned().collect::<BTreeMap<_, _>>()
            );
        }
    }

    #[test]
    fn read_exported_refuses_a_second_graph_that_its_parser_would_drop() {
        let honest = export_onnx(&weights(), &[]).unwrap();
        // Field 7 (`graph`) once more, before the real one: this parser keeps the last copy,
        // ONNX Runtime's merges both.
        let mut extra = build_model(&weights(), &[]).unwrap().graph.unwrap();
        extra.node.truncate(1);
        let extra = extra.write_to_bytes().unwrap();
        let mut tampered = vec![(7 << 3) | 2];
        let mut length = extra.len();
        while length >= 0x80 {
            tampered.push((length as u8) | 0x80);
            length >>= 7;
        }
        tampered.push(length as u8);
        tampered.extend_from_slice(&extra);
        tampered.extend_from_slice(&honest);
        assert_eq!(
            ModelProto::parse_from_bytes(&tampered).unwrap(),
            ModelProto::parse_from_bytes(&honest).unwrap(),
            "the parser must see the same model for this test to mean anything"
        );
        assert!(read_exported(&honest).is_ok());
        let refused = read_exported(&tampered).unwrap_err();
        assert!(
            matches!(refused, ImportError::NotAnExport(_)),
            "{refused:?}"
        );
    }

    #[test]
    fn read_exported_refuses_tensors_or_graphs_other_than_the_exporter_writes() {
        let rebuilt = |edit: &dyn Fn(&mut ModelProto)| {
            let mut model = build_model(&weights(), &[]).unwrap();
            edit(&mut model);
            read_exported(&model.write_to_bytes().unwrap()).unwrap_err()
        };
        let duplicate = rebuilt(&|model| {
            let graph = model.graph.mut_or_insert_default();
            let copy = graph.initializer[0].clone();
            graph.initializer.push(copy);
        });
        assert!(
            matches!(&duplicate, ImportError::DuplicateInitializer { name } if name == "token_weight"),
            "{duplicate:?}"
        );
        let both = rebuilt(&|model| {
            let graph = model.graph.mut_or_insert_default();
            let output = graph
                .initializer
                .iter_mut()
                .find(|t| t.name == "head_output_weight")
                .unwrap();
            output.float_data = vec![0.0; 16];
        });
        assert!(
            matches!(&both, ImportError::BadInitializer { name, .. } if name == "head_output_weight"),
            "{both:?}"
        );
        let missing = rebuilt(&|model| {
            let graph = model.graph.mut_or_insert_default();
            graph.initializer.retain(|t| t.name != "head_output_bias");
        });
        assert!(
            matches!(&missing, ImportError::MissingInitializer { name } if name == "head_output_bias"),
            "{missing:?}"
        );
        let keys = rebuilt(&|model| {
            for value in ["a", "b"] {
                model.metadata_props.push(StringStringEntryProto {
                    key: "model_version".to_owned(),
                    value: value.to_owned(),
                    ..Default::default()
                });
            }
        });
        assert!(
            matches!(&keys, ImportError::DuplicateMetadataKey { key } if key == "model_version"),
            "{keys:?}"
        );
        let relu_to_abs = |model: &mut ModelProto| {
            let graph = model.graph.mut_or_insert_default();
            let relu = graph.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
            relu.op_type = "Abs".to_owned();
        };
        let older_opset = |model: &mut ModelProto| model.opset_import[0].version = 13;
        for edit in [&relu_to_abs as &dyn Fn(&mut ModelProto), &older_opset] {
            let error = rebuilt(edit);
            assert!(matches!(error, ImportError::NotAnExport(_)), "{error:?}");
        }
    }
}
