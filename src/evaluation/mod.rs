//! Metrics, cost-based threshold choice, reports and plots.

pub mod metrics;
pub mod plots;
