//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (alive) and `/readyz`
//! (model loaded, partitions assigned, a broker reachable; 503 otherwise).

use crate::service::health::Health;
use crate::service::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    match state.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {error}\n"),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, String) {
    let description = state.health.describe();
    if state.health.ready() {
        (StatusCode::OK, format!("ready: {description}\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {description}\n"),
        )
    }
}

/// A running HTTP server.
pub struct HttpServer {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// Binds `address` (port 0 picks a free port) and serves in a background task.
    pub async fn start(address: SocketAddr, state: HttpState) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.await;
                })
                .await
        });
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
        Ok(Self {
            address,
            shutdown: Some(shutdown_tx),
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting connections and waits for open requests to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "HTTP server failed"),
            Err(error) => tracing::warn!(%error, "HTTP server task failed"),
        }
    }
}

/// A minimal blocking HTTP/1.0 GET, for tests and the embedded summary (no HTTP client
/// dependency needed). Returns the status code and the body.
pub fn get_blocking(address: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .ok_or_else(invalid)?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn probes_and_metrics_are_served() {
        let metrics = Metrics::new().unwrap();
        metrics.set_model_version("v-test");
        let health = Arc::new(Health::new());
        let server = HttpServer::start(
            "127.0.0.1:0".parse().unwrap(),
            HttpState {
                metrics: metrics.clone(),
                health: Arc::clone(&health),
            },
        )
        .await
        .unwrap();
        let address = server.local_addr();
        let get = move |path: &'static str| {
            tokio::task::spawn_blocking(move || get_blocking(address, path))
        };

        assert_eq!(
            get("/healthz").await.unwrap().unwrap(),
            (200, "ok\n".to_owned())
        );
        let (status, body) = get("/readyz").await.unwrap().unwrap();
        assert_eq!(status, 503, "{body}");
        health.set_model_loaded(true);
        health.set_assigned_partitions(2);
        let (status, body) = get("/readyz").await.unwrap().unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, body) = get("/metrics").await.unwrap().unwrap();
        assert_eq!(status, 200);
        assert!(
            body.contains("credit_risk_model_info{version=\"v-test\"} 1"),
            "{body}"
        );
        assert_eq!(get("/nope").await.unwrap().unwrap().0, 404);
        server.stop().await;
    }
}
