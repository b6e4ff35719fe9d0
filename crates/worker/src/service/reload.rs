//! Reloading the model while the worker runs (SIGHUP, or [`ReloadHandle::request`]).
//!
//! A reload loads the artifacts in the configured `model.dir` again, with every check of a
//! start-up ([`model::load`]: the files match the bundle's manifest and belong together, the
//! version is the hash of the weights, and the self-check scores a fixed sample sanely), on the blocking pool so the reactor keeps serving. Only a model that passes
//! is handed to the pipeline, whose batcher puts it in service at the next batch boundary
//! (see [`crate::pipeline::intake`]). A model that fails is logged with the reason (naming
//! the file), counted as `credit_risk_model_reloads_total{result="failed"}`, and dropped: the
//! current model stays in service, so a bad deployment of model files cannot take the worker
//! down.
//!
//! A reload also keeps every record producers may already be sending valid: a bundle whose
//! schema would refuse a record the current schema accepts (a new required field, a narrowed
//! range, a removed category, a changed type; see [`incompatibilities`]) is refused, each reason
//! logged and the refusal counted as `result="incompatible_schema"`. A restart takes any bundle.
//! A bundle whose schema the configured `fairness.bands` do not fit is refused as `failed`.

use crate::config::{ModelConfig, ReasonsConfig};
use crate::pipeline::ServedModel;
use crate::service::http::PublishedSchema;
use crate::service::model;
use crate::telemetry::fairness::{protected_groups, Bands};
use crate::telemetry::metrics::{Metrics, ReloadResult};
use credit_core::schema::{incompatibilities, Schema};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Asks a running worker to reload its model. Cheap to clone; requests made while a reload is
/// in progress are merged into one more reload after it.
#[derive(Debug, Clone, Default)]
pub struct ReloadHandle(Arc<Notify>);

impl ReloadHandle {
    /// Requests a reload (what SIGHUP does).
    pub fn request(&self) {
        // A stored permit: a request made before the reload task waits is not lost.
        self.0.notify_one();
    }
}

/// Serves reload requests until the pipeline stops taking models (the receiver is dropped).
pub(crate) async fn serve_reloads(
    requests: ReloadHandle,
    (config, reasons): (ModelConfig, ReasonsConfig),
    models: mpsc::Sender<ServedModel>,
    mut current: Arc<Schema>,
    published: PublishedSchema,
    metrics: Metrics,
    bands: Bands,
) {
    loop {
        requests.0.notified().await;
        tracing::info!(dir = %config.dir.display(), "reloading the model");
        let loading = config.clone();
        match tokio::task::spawn_blocking(move || model::load(&loading, reasons)).await {
            Ok(Ok(served)) => {
                let refusals = incompatibilities(&current, &served.schema);
                if !refusals.is_empty() {
                    metrics.count_reload(ReloadResult::IncompatibleSchema);
                    tracing::error!(
                        dir = %config.dir.display(),
                        version = %served.version,
                        reasons = %refusals.join("; "),
                        "model reload refused: its schema would reject records the current one \
                         accepts; the current model stays in service (a restart takes it)"
                    );
                    continue;
                }
                if let Err(error) = protected_groups(&served.schema, &bands) {
                    metrics.count_reload(ReloadResult::Failed);
                    tracing::error!(
                        dir = %config.dir.display(),
                        version = %served.version,
                        %error,
                        "model reload refused: fairness.bands do not fit its schema; the \
                         current model stays in service"
                    );
                    continue;
                }
                metrics.count_reload(ReloadResult::Ok);
                current = Arc::clone(&served.schema);
                published.set(&current);
                let version = served.version.clone();
                tracing::info!(
                    version = %version,
                    threshold = served.threshold,
                    "model reloaded and self-checked; serving it from the next batch"
                );
                if models.send(served).await.is_err() {
                    break;
                }
            }
            Ok(Err(error)) => {
                metrics.count_reload(ReloadResult::Failed);
                tracing::error!(
                    dir = %config.dir.display(),
                    %error,
                    "model reload failed; the current model stays in service"
                );
            }
            Err(error) => {
                metrics.count_reload(ReloadResult::Failed);
                tracing::error!(
                    %error,
                    "model reload did not finish; the current model stays in service"
                );
            }
        }
    }
}

/// Turns every SIGHUP into a reload request, until the returned task is aborted.
///
/// The handler is installed before this returns, so a SIGHUP sent as soon as the worker is up
/// reloads instead of terminating the process (SIGHUP's default action).
pub(crate) fn reload_on_sighup(handle: ReloadHandle) -> std::io::Result<JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP received");
                handle.request();
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = handle;
        Ok(tokio::spawn(async {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use credit_core::artifacts::{ArtifactPaths, BUNDLE_FILES};
    use credit_core::bundle;
    use std::collections::HashMap;
    use std::path::Path;
    use std::time::Duration;

    /// The shipped bundle, copied, with its age bands taken out of the schema (a change that
    /// accepts the same records), sealed again.
    fn unbanded_bundle() -> tempfile::TempDir {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let dir = tempfile::tempdir().expect("temporary directory");
        for name in BUNDLE_FILES {
            std::fs::copy(shipped.join(name), dir.path().join(name)).expect("copy the bundle");
        }
        let paths = ArtifactPaths::new(dir.path());
        let source = std::fs::read_to_string(paths.schema()).expect("schema");
        assert!(
            source.contains("bands = [25]\n"),
            "the shipped schema bands age"
        );
        std::fs::write(paths.schema(), source.replace("bands = [25]\n", "")).expect("write");
        let schema = Schema::load(&paths.schema()).expect("unbanded schema");
        bundle::write_json_schema(dir.path(), &schema).expect("JSON Schema");
        bundle::seal(dir.path()).expect("seal");
        dir
    }

    /// One reload of the bundle in `dir` while the shipped schema is served with `bands`:
    /// whether a model was handed to the pipeline, and the reload's counted result.
    async fn reload_once(dir: &Path, bands: &[(&str, Vec<f64>)]) -> (bool, ReloadResult) {
        let mut config = Config::from_toml_with_env("", HashMap::new()).expect("defaults");
        config.model.dir = dir.to_path_buf();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/schema.toml");
        let current = Arc::new(Schema::load(&shipped).expect("shipped schema"));
        let bands: Bands = bands
            .iter()
            .map(|(field, edges)| (field.to_string(), edges.clone()))
            .collect();
        let metrics = Metrics::new().expect("metrics");
        let (models, mut served) = mpsc::channel(1);
        let requests = ReloadHandle::default();
        let task = tokio::spawn(serve_reloads(
            requests.clone(),
            (config.model, config.reasons),
            models,
            current,
            PublishedSchema::default(),
            metrics.clone(),
            bands,
        ));
        requests.request();
        let counted = |label: &str| metrics.model_reloads.with_label_values(&[label]).get();
        let mut result = None;
        for _ in 0..600 {
            result = [("ok", ReloadResult::Ok), ("failed", ReloadResult::Failed)]
                .into_iter()
                .find(|(label, _)| counted(label) > 0)
                .map(|(_, result)| result);
            if result.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let handed_over = served.try_recv().is_ok();
        task.abort();
        (
            handed_over,
            result.expect("the reload finished within 30 s"),
        )
    }

    #[tokio::test]
    async fn a_reload_whose_schema_the_configured_bands_do_not_fit_is_refused() {
        let dir = unbanded_bundle();
        // Age 150 lies outside the schema's 18..120: these bands cannot group it.
        let refused = reload_once(dir.path(), &[("age_years", vec![150.0])]).await;
        assert_eq!(refused, (false, ReloadResult::Failed));
        // The same bundle with bands that fit is taken: the bands alone decided.
        let taken = reload_once(dir.path(), &[("age_years", vec![30.0, 60.0])]).await;
        assert_eq!(taken, (true, ReloadResult::Ok));
    }
}
