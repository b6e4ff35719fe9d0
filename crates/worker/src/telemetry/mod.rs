//! What the worker tells its operators: Prometheus metrics ([`metrics`], with decisions by
//! protected group in [`fairness`]) and the liveness and readiness state behind `/healthz` and
//! `/readyz` ([`health`]). Every layer above writes here; the HTTP endpoint
//! ([`crate::service`]) serves it.

pub mod fairness;
pub mod health;
pub mod metrics;
