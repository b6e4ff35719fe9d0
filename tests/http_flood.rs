//! The HTTP endpoint under connection floods: half-sent requests and idle connections are
//! closed after the header timeout, more connections than `max_connections` neither shut out
//! `/healthz` nor hold more than the limit of file descriptors, and stopping the server does not
//! wait on clients that never finish a request.
//!
//! Loopback only; every wait is bounded, and each test runs in a few seconds.

use credit_testkit::http::get as get_blocking;
use credit_worker::service::http::{HttpLimits, HttpServer, HttpState, PublishedSchema};
use credit_worker::telemetry::health::Health;
use credit_worker::telemetry::metrics::Metrics;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections the flood opens: far over the limit below, yet (with the server's share) under
/// the 1,024 file descriptors a test process may have.
const FLOOD: usize = 600;
/// The server's connection limit in the flood test.
const LIMIT: usize = 32;
/// Descriptors the process may open besides the flood's and the server's connections (the
/// runtime, a probe connection, files the test reads).
const SLACK: usize = 24;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn start(runtime: &tokio::runtime::Runtime, limits: HttpLimits) -> HttpServer {
    let state = HttpState {
        metrics: Metrics::new().expect("metrics register"),
        health: Arc::new(Health::new()),
        schema: PublishedSchema::default(),
    };
    runtime
        .block_on(HttpServer::start(
            "127.0.0.1:0".parse().expect("an address"),
            state,
            limits,
        ))
        .expect("the server starts on loopback")
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd lists this process's descriptors")
        .count()
}

/// A connection that sent the start of a request and stops there, as a slow-loris client does.
fn half_sent(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: flood\r\nX-Waiting: ")
        .expect("send the start of a request");
    stream
}

/// Whether the server has closed `stream`, without waiting.
fn closed_by_server(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut byte = [0u8; 1];
    let closed = match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

/// How long a blocking read on `stream` waits before the server closes it (`None`: still
/// open after `limit`).
fn time_until_closed(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => Some(started.elapsed()),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        // A reset is the server closing too.
        Err(_) => Some(started.elapsed()),
    }
}

#[test]
fn a_half_sent_request_and_a_silent_connection_are_closed_after_the_header_timeout() {
    let runtime = runtime();
    let limits = HttpLimits {
        header_read_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let server = start(&runtime, limits);
    let address = server.local_addr();

    let half = half_sent(address);
    let silent = TcpStream::connect(address).expect("connect");
    for (what, stream) in [("half-sent request", half), ("silent connection", silent)] {
        let closed_after = time_until_closed(stream, Duration::from_secs(5));
        assert!(
            closed_after.is_some_and(|after| after < Duration::from_secs(3)),
            "a {what} was still open {closed_after:?} after a 300 ms header timeout"
        );
    }
    // A client that sends its request in time is still served.
    assert_eq!(
        get_blocking(address, "/healthz").expect("GET /healthz"),
        (200, "ok\n".to_owned())
    );
    runtime.block_on(server.stop());
}

#[test]
fn a_flood_of_idle_and_half_sent_connections_leaves_the_probes_answering_and_descriptors_bounded() {
    let runtime = runtime();
    // A header timeout longer than the test: only the connection limit can protect the probes.
    let limits = HttpLimits {
        max_connections: LIMIT,
        header_read_timeout: Duration::from_secs(120),
        ..HttpLimits::default()
    };
    let server = start(&runtime, limits);
    let address = server.local_addr();
    let before = open_descriptors();

    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|i| {
            if i % 2 == 0 {
                half_sent(address)
            } else {
                TcpStream::connect(address).expect("connect")
            }
        })
        .collect();
    // The server takes the whole flood and keeps at most LIMIT of it open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut still_open = FLOOD;
    while Instant::now() < deadline {
        still_open = flood.iter().filter(|s| !closed_by_server(s)).count();
        if still_open <= LIMIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        still_open <= LIMIT,
        "the server still holds {still_open} of {FLOOD} flood connections (limit {LIMIT})"
    );
    let during = open_descriptors();
    assert!(
        during <= before + FLOOD + LIMIT + SLACK,
        "{during} descriptors open with the flood, {before} before it: the server holds more \
         than {LIMIT} connections"
    );
    assert!(server.open_connections() <= LIMIT);

    // The probes answer at once, and a file (a model reload's) still opens.
    for (path, status) in [("/healthz", 200), ("/readyz", 503)] {
        let asked = Instant::now();
        let (answered, body) = get_blocking(address, path).expect("the probe is answered");
        assert_eq!(answered, status, "{path}: {body}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{path} took {:?} under the flood",
            asked.elapsed()
        );
    }
    std::fs::File::open(file!()).expect("a file opens under the flood");
    assert!(server.open_connections() <= LIMIT);
    drop(flood);
    runtime.block_on(server.stop());
}

#[test]
fn stopping_the_server_does_not_wait_on_a_request_that_is_never_finished() {
    let runtime = runtime();
    let limits = HttpLimits {
        header_read_timeout: Duration::from_secs(120),
        request_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let server = start(&runtime, limits);
    let address = server.local_addr();
    let half = half_sent(address);
    let idle = TcpStream::connect(address).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.open_connections() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.open_connections(), 2);

    let stopped = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), server.stop()).await });
    assert!(
        stopped.is_ok(),
        "stop() still waited on a half-sent request 5 s later"
    );
    for stream in [half, idle] {
        assert!(
            time_until_closed(stream, Duration::from_secs(1)).is_some(),
            "a connection outlived the server"
        );
    }
}
