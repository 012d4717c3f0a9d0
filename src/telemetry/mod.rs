//! What Usher tells operators: Prometheus metrics, the access log, request correlation and
//! the process's own structured logs.

pub mod access_log;
pub mod correlation;
pub mod logging;
pub mod metrics;
