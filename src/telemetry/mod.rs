//! What Usher tells operators: Prometheus metrics, the access log, traces, request
//! correlation and the process's own structured logs, and what build and process this is.

pub mod access_log;
pub mod correlation;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod traces;

/// This build: its version, git revision and the Pingora it runs on.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REVISION: &str = env!("USHER_GIT_REVISION");
pub const PINGORA_VERSION: &str = env!("USHER_PINGORA_VERSION");
