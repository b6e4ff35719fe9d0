//! The worker as a service: HTTP probes and metrics around the pipeline, model loading,
//! signal handling, logging, and the embedded demonstration mode.
//!
//! [`run`] is the production entry point: it runs until `shutdown` resolves (the binary passes
//! [`shutdown_signal`]: SIGTERM or SIGINT), then drains, commits and returns; SIGHUP reloads
//! the model ([`reload`]). [`Worker`] splits the same thing in two steps for callers that need
//! the HTTP address or a [`ReloadHandle`] first (embedded mode, tests).

pub mod embedded;
pub mod http;
pub mod model;
pub mod reload;

use crate::config::Config;
use crate::pipeline::{PipelineError, RunReport};
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use http::{HttpLimits, HttpServer, HttpState, PublishedSchema};
use reload::ReloadHandle;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why the worker failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot serve HTTP on {address}: {source}")]
    Http {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] model::LoadError),
    #[error("model loading was interrupted")]
    ModelTask,
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
}

/// A started worker: HTTP is up (alive; not ready until the model is loaded and partitions
/// are assigned), the pipeline not yet running.
pub struct Worker {
    config: Config,
    metrics: Metrics,
    health: Arc<Health>,
    schema: PublishedSchema,
    http: HttpServer,
    reload: ReloadHandle,
}

impl Worker {
    /// Starts the HTTP endpoint on `metrics.address`.
    pub async fn start(config: Config) -> Result<Self, ServiceError> {
        let address = config.metrics.socket_addr().map_err(ServiceError::Config)?;
        let metrics = Metrics::new()?;
        let health = Arc::new(Health::new());
        let schema = PublishedSchema::default();
        let http = HttpServer::start(
            address,
            HttpState {
                metrics: metrics.clone(),
                health: Arc::clone(&health),
                schema: schema.clone(),
            },
            HttpLimits::with_max_connections(config.metrics.max_connections),
        )
        .await
        .map_err(|source| ServiceError::Http { address, source })?;
        Ok(Self {
            config,
            metrics,
            health,
            schema,
            http,
            reload: ReloadHandle::default(),
        })
    }

    /// Where `/metrics`, `/healthz`, `/readyz` and `/schema` are served.
    pub fn http_address(&self) -> SocketAddr {
        self.http.local_addr()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Requests model reloads from `model.dir` while [`Worker::run`] runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reload.clone()
    }

    /// Loads the model, runs the pipeline against `bootstrap` until `shutdown`, then stops
    /// HTTP. The HTTP endpoint stays up while the pipeline drains.
    pub async fn run(
        self,
        bootstrap: &str,
        shutdown: impl Future<Output = ()>,
    ) -> Result<RunReport, ServiceError> {
        let Self {
            config,
            metrics,
            health,
            schema,
            http,
            reload,
        } = self;
        let result = async {
            let model_config = config.model.clone();
            let reasons = config.reasons;
            let served = tokio::task::spawn_blocking(move || model::load(&model_config, reasons))
                .await
                .map_err(|_| ServiceError::ModelTask)??;
            metrics.set_model_version(&served.version);
            schema.set(&served.schema);
            health.set_model_loaded(true);
            // Capacity 1: a second reloaded model waits until the batcher took the first.
            let (models_tx, models_rx) = tokio::sync::mpsc::channel(1);
            let reloading = tokio::spawn(reload::serve_reloads(
                reload,
                (config.model.clone(), config.reasons),
                models_tx,
                Arc::clone(&served.schema),
                schema.clone(),
                metrics.clone(),
                config.fairness.bands.clone(),
            ));
            let report = crate::pipeline::run(
                &config,
                bootstrap,
                served,
                models_rx,
                metrics.clone(),
                Arc::clone(&health),
                shutdown,
            )
            .await;
            // A reload still loading is abandoned: there is nothing left to serve it to.
            reloading.abort();
            Ok(report?)
        }
        .await;
        health.set_model_loaded(false);
        http.stop().await;
        result
    }
}

/// Runs the production worker against `kafka.brokers` until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<RunReport, ServiceError> {
    if config.kafka.embedded() {
        return Err(ServiceError::Config(
            "kafka.brokers is empty; set it, or use embedded mode".to_owned(),
        ));
    }
    let brokers = config.kafka.brokers.clone();
    tracing::info!(config = %config, "starting worker");
    let worker = Worker::start(config).await?;
    let sighup = reload::reload_on_sighup(worker.reload_handle()).map_err(ServiceError::Signal)?;
    let result = worker.run(&brokers, shutdown).await;
    sighup.abort();
    result
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C). SIGHUP is not a shutdown: [`run`]
/// reloads the model on it.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
