//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (alive), `/readyz`
//! (model loaded, partitions assigned, a broker reachable; 503 otherwise) and `/schema` (the
//! JSON Schema of the records the served model accepts; 503 until a model is loaded).
//!
//! The probes must keep answering whatever clients do, or an orchestrator kills a healthy
//! worker, so connections are served under [`HttpLimits`]: a client has a bounded time to send
//! each request's headers (which also closes idle keep-alive connections), a handler a bounded
//! time to answer, a connection a bounded lifetime, and at most `max_connections` connections
//! are open at once. When every slot is taken a new connection is still accepted, and the
//! least recently active connection that is not running a handler is closed to make room; so
//! a flood of idle or half-sent connections can neither shut out a probe nor use up the file
//! descriptors the worker needs for its Kafka sockets and model reloads.

use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use credit_core::schema::{json_schema, Schema};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub schema: PublishedSchema,
}

/// The JSON Schema served at `/schema`: the served model's, replaced when a reload is accepted.
#[derive(Clone, Default)]
pub struct PublishedSchema(Arc<Mutex<Option<Arc<str>>>>);

impl PublishedSchema {
    /// Publishes the JSON Schema generated from `schema`.
    pub(crate) fn set(&self, schema: &Schema) {
        let document = json_schema::generate(schema);
        let text: Arc<str> = match serde_json::to_string_pretty(&document) {
            Ok(text) => (text + "\n").into(),
            // A `Value` always serialises; keep serving the previous document otherwise.
            Err(_) => return,
        };
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(text);
    }

    fn get(&self) -> Option<Arc<str>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The routes.
pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/schema", get(schema))
        .with_state(state)
}

async fn schema(State(state): State<HttpState>) -> impl IntoResponse {
    match state.schema.get() {
        Some(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/schema+json")],
            text.to_string(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no model loaded yet\n".to_owned(),
        ),
    }
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

/// Default `metrics.max_connections`: a quarter of the usual 1,024 file descriptors, leaving
/// the rest to Kafka sockets, model files and the runtime.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How long closing a connection to make room for a new one may take before the new one is
/// closed instead, so a stuck connection task cannot stall the accept loop.
const EVICTION_WAIT: Duration = Duration::from_millis(200);
/// Pause after an accept error that is not about one connection (out of file descriptors or
/// memory), so the loop neither spins nor gives up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning per this interval about closed connections, so a flood cannot flood
/// the log too.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Bounds on what clients can hold open; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once (at least 1).
    pub max_connections: usize,
    /// Time to send a request's headers, counted from the connection or the previous response.
    pub header_read_timeout: Duration,
    /// Time a handler has to answer (503 after it); also how long a connection that is told to
    /// close (lifetime over, shutdown) may take to finish its request.
    pub request_timeout: Duration,
    /// Time after which a connection is closed once its current request is answered.
    pub connection_lifetime: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(60),
        }
    }
}

impl HttpLimits {
    /// The defaults with `max_connections` from the configuration.
    pub(crate) fn with_max_connections(max_connections: usize) -> Self {
        Self {
            max_connections,
            ..Self::default()
        }
    }
}

/// A running HTTP server.
pub struct HttpServer {
    address: SocketAddr,
    shutdown: watch::Sender<bool>,
    connections: Arc<Connections>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Binds `address` (port 0 picks a free port) and serves in a background task.
    pub async fn start(
        address: SocketAddr,
        state: HttpState,
        limits: HttpLimits,
    ) -> std::io::Result<Self> {
        let server = Self::serve(TcpListener::bind(address).await?, router(state), limits)?;
        tracing::info!(
            address = %server.address,
            max_connections = server.connections.limit,
            "serving /metrics, /healthz and /readyz"
        );
        Ok(server)
    }

    fn serve(listener: TcpListener, router: Router, limits: HttpLimits) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let connections = Arc::new(Connections::new(limits.max_connections));
        let task = tokio::spawn(accept_loop(
            listener,
            router,
            limits,
            Arc::clone(&connections),
            shutdown_rx,
        ));
        Ok(Self {
            address,
            shutdown,
            connections,
            task,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Connections open now (never more than `max_connections`).
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// Stops accepting connections and waits for open requests to finish (each connection
    /// gets at most `request_timeout` to do so).
    pub async fn stop(self) {
        // Sending fails only once every receiver is gone, that is when the server has stopped.
        let _ = self.shutdown.send(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "HTTP server task failed");
        }
    }
}

/// Accepts until shutdown, then waits for every connection to close.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    connections: Arc<Connections>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pressure = Pressure::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                pressure.accept_failed(&error);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(permit) = connections.slot(&mut pressure).await else {
            // Every slot runs a handler: closing the newcomer keeps the descriptor count bounded.
            drop(stream);
            pressure.refused();
            continue;
        };
        let registration = connections.register(permit);
        tokio::spawn(serve_connection(
            stream,
            registration,
            router.clone(),
            limits,
            shutdown.clone(),
        ));
    }
    drop(listener);
    connections.all_closed().await;
}

/// Errors `accept` reports about one connection that was gone before it was taken.
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
            | ErrorKind::WouldBlock
    )
}

/// Serves one connection until the client closes it, a timeout or the lifetime ends it, it is
/// closed to make room, or the server shuts down.
async fn serve_connection(
    stream: TcpStream,
    registration: Registration,
    router: Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let connection = Arc::clone(&registration.connection);
    {
        let service = Tracked {
            router: TowerToHyperService::new(router),
            connection: Arc::clone(&connection),
            request_timeout: limits.request_timeout,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let deadline = tokio::time::sleep(limits.connection_lifetime);
        tokio::pin!(deadline);
        let mut closing = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "HTTP connection ended");
                    }
                    break;
                }
                () = connection.close.notified() => break,
                () = &mut deadline => {
                    if closing {
                        break;
                    }
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    deadline.as_mut().reset(Instant::now() + limits.request_timeout);
                }
                _ = shutdown.wait_for(|stop| *stop), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    deadline.as_mut().reset(Instant::now() + limits.request_timeout);
                }
            }
        }
    }
    // The socket is closed above, before the slot is given back, so open descriptors never
    // exceed the limit.
    drop(registration);
}

/// The router, with the connection marked busy while a handler runs and the handler bounded by
/// `request_timeout`.
#[derive(Clone)]
struct Tracked {
    router: TowerToHyperService<Router>,
    connection: Arc<Connection>,
    request_timeout: Duration,
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

impl hyper::service::Service<axum::http::Request<Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: axum::http::Request<Incoming>) -> Self::Future {
        let busy = Busy::start(Arc::clone(&self.connection));
        let response = self.router.call(request);
        let limit = self.request_timeout;
        Box::pin(async move {
            let _busy = busy;
            match tokio::time::timeout(limit, response).await {
                Ok(response) => response,
                Err(_elapsed) => Ok((
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONNECTION, "close")],
                    "request timed out\n",
                )
                    .into_response()),
            }
        })
    }
}

/// Marks a connection as running a handler (not to be closed for room) while it lives.
struct Busy(Arc<Connection>);

impl Busy {
    fn start(connection: Arc<Connection>) -> Self {
        connection.in_flight.fetch_add(1, Ordering::SeqCst);
        connection.touch();
        Self(connection)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One open connection, as the accept loop sees it.
struct Connection {
    epoch: Instant,
    /// Handlers running (0 or 1 with HTTP/1).
    in_flight: AtomicUsize,
    /// Milliseconds from `epoch` to the last accept, request or response.
    last_active: AtomicU64,
    /// Set once the connection was chosen to make room, so it is not chosen twice.
    evicted: AtomicBool,
    close: Notify,
}

impl Connection {
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::SeqCst);
    }
}

/// The open connections and the slots that bound them.
struct Connections {
    epoch: Instant,
    limit: usize,
    slots: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
}

impl Connections {
    fn new(limit: usize) -> Self {
        // `acquire_many` counts in u32, which bounds the limit too.
        let limit = limit.clamp(1, u32::MAX as usize);
        Self {
            epoch: Instant::now(),
            limit,
            slots: Arc::new(Semaphore::new(limit)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn open(&self) -> usize {
        self.limit - self.slots.available_permits()
    }

    /// A free slot, closing the least recently active idle connection if there is none; `None`
    /// if every connection runs a handler.
    async fn slot(&self, pressure: &mut Pressure) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        if !self.evict_least_recently_active() {
            return None;
        }
        pressure.evicted();
        let freed = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(EVICTION_WAIT, freed).await {
            Ok(Ok(permit)) => Some(permit),
            // Timed out, or the semaphore closed (it never is).
            _ => None,
        }
    }

    fn evict_least_recently_active(&self) -> bool {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let victim = open
            .values()
            .filter(|c| {
                c.in_flight.load(Ordering::SeqCst) == 0 && !c.evicted.load(Ordering::SeqCst)
            })
            .min_by_key(|c| c.last_active.load(Ordering::SeqCst));
        match victim {
            Some(connection) => {
                connection.evicted.store(true, Ordering::SeqCst);
                // A stored permit: the task sees it even if it is not waiting right now.
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn register(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let connection = Arc::new(Connection {
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            close: Notify::new(),
        });
        connection.touch();
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&connection));
        Registration {
            id,
            connection,
            connections: Arc::clone(self),
            _permit: permit,
        }
    }

    /// Resolves once every slot is free again.
    async fn all_closed(&self) {
        let all = u32::try_from(self.limit).unwrap_or(u32::MAX);
        // The semaphore is never closed, so this only returns once the permits are back.
        let _ = self.slots.acquire_many(all).await;
    }
}

/// A connection's slot: removes it from the open set and frees the slot when dropped, even if
/// its task panics.
struct Registration {
    id: u64,
    connection: Arc<Connection>,
    connections: Arc<Connections>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// What the accept loop had to refuse or close, reported at most once per
/// [`WARNING_INTERVAL`].
#[derive(Default)]
struct Pressure {
    evicted: u64,
    refused: u64,
    last_warning: Option<Instant>,
}

impl Pressure {
    fn evicted(&mut self) {
        self.evicted += 1;
        self.warn();
    }

    fn refused(&mut self) {
        self.refused += 1;
        self.warn();
    }

    fn warn(&mut self) {
        if self
            .last_warning
            .is_some_and(|last| last.elapsed() < WARNING_INTERVAL)
        {
            return;
        }
        self.last_warning = Some(Instant::now());
        tracing::warn!(
            closed_idle = self.evicted,
            refused = self.refused,
            "HTTP connection limit reached; closing the least recently active idle connections"
        );
        self.evicted = 0;
        self.refused = 0;
    }

    fn accept_failed(&mut self, error: &std::io::Error) {
        if self
            .last_warning
            .is_some_and(|last| last.elapsed() < WARNING_INTERVAL)
        {
            return;
        }
        self.last_warning = Some(Instant::now());
        tracing::warn!(%error, "cannot accept HTTP connections; retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_testkit::http::get as get_blocking;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn probes_and_metrics_are_served() {
        let metrics = Metrics::new().unwrap();
        metrics.set_model_version("v-test");
        let health = Arc::new(Health::new());
        let schema = PublishedSchema::default();
        let server = HttpServer::start(
            "127.0.0.1:0".parse().unwrap(),
            HttpState {
                metrics: metrics.clone(),
                health: Arc::clone(&health),
                schema: schema.clone(),
            },
            HttpLimits::default(),
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
        assert_eq!(get("/schema").await.unwrap().unwrap().0, 503);
        let shipped = credit_core::schema::german_credit();
        schema.set(&shipped);
        let (status, body) = get("/schema").await.unwrap().unwrap();
        assert_eq!(status, 200, "{body}");
        let served: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(served, json_schema::generate(&shipped));
        assert_eq!(get("/nope").await.unwrap().unwrap().0, 404);
        server.stop().await;
    }

    /// Serves `router` on a free loopback port.
    async fn serve(router: Router, limits: HttpLimits) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        HttpServer::serve(listener, router, limits).unwrap()
    }

    /// A `/slow` route whose handler says when it started, then takes `duration`.
    fn slow_router(started: Arc<Notify>, duration: Duration) -> Router {
        Router::new()
            .route(
                "/slow",
                get(move || async move {
                    started.notify_one();
                    tokio::time::sleep(duration).await;
                    "done\n"
                }),
            )
            .route("/healthz", get(healthz))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_slower_than_the_request_timeout_is_answered_503() {
        let limits = HttpLimits {
            request_timeout: Duration::from_millis(200),
            ..HttpLimits::default()
        };
        let server = serve(
            slow_router(Arc::new(Notify::new()), Duration::from_secs(30)),
            limits,
        )
        .await;
        let address = server.local_addr();
        let started = Instant::now();
        let (status, body) = tokio::task::spawn_blocking(move || get_blocking(address, "/slow"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((status, body.as_str()), (503, "request timed out\n"));
        assert!(started.elapsed() < Duration::from_secs(5));
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_running_a_handler_is_not_closed_to_make_room() {
        let limits = HttpLimits {
            max_connections: 1,
            ..HttpLimits::default()
        };
        let started = Arc::new(Notify::new());
        let server = serve(
            slow_router(Arc::clone(&started), Duration::from_millis(800)),
            limits,
        )
        .await;
        let address = server.local_addr();
        let slow = tokio::task::spawn_blocking(move || get_blocking(address, "/slow"));
        started.notified().await;

        let crowded_out = tokio::task::spawn_blocking(move || get_blocking(address, "/healthz"))
            .await
            .unwrap();
        assert!(
            crowded_out.is_err(),
            "the only slot runs a handler, yet a second connection was served: {crowded_out:?}"
        );
        assert_eq!(
            slow.await.unwrap().unwrap(),
            (200, "done\n".to_owned()),
            "the request in progress must be answered"
        );
        let after = tokio::task::spawn_blocking(move || get_blocking(address, "/healthz"));
        assert_eq!(after.await.unwrap().unwrap(), (200, "ok\n".to_owned()));
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_keep_alive_connection_is_closed_at_the_end_of_its_lifetime() {
        let limits = HttpLimits {
            header_read_timeout: Duration::from_secs(60),
            connection_lifetime: Duration::from_millis(300),
            ..HttpLimits::default()
        };
        let server = serve(slow_router(Arc::new(Notify::new()), Duration::ZERO), limits).await;
        let address = server.local_addr();
        let response = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(address)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(stream, "GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n")?;
            // Returns only once the server closes the connection.
            let mut response = String::new();
            stream.read_to_string(&mut response).map(|_| response)
        })
        .await
        .unwrap()
        .expect("the server closes a keep-alive connection after its lifetime");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        server.stop().await;
    }
}
