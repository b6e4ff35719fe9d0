//! What the tests and benches share, and nothing the binaries need: end-to-end scenarios of
//! the worker on any broker, the worker binary as a child process, the reliability scenarios
//! against a broker process, and readers of /proc. A dev-dependency only.
//!
//! - [`scenarios`]: worker scenarios checked from the outside (topics, committed offsets).
//! - [`worker_process`]: the `worker` binary as a child process.
//! - [`reliability`]: `kill -9`, outages and rebalances against Tansu.
//! - [`proc_stats`]: peak memory and CPU time of a process.
//! - [`http`]: a blocking GET of the worker's probes and metrics.
//! - [`latency`]: every output's exact latencies, for the worker bench.
//! - [`paths`]: the checkout, the binaries under test, scratch space.

pub mod http;
pub mod latency;
pub mod paths;
pub mod proc_stats;
pub mod reliability;
pub mod scenarios;
pub mod worker_process;
