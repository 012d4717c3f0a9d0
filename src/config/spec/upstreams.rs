//! Upstream pools, compiled: targets, balancing, health checks, timeouts, breaker.

use super::*;

/// Everything that defines an upstream pool. Two equal specs describe the same pool, which is
/// how a reload knows it may keep a pool's health state.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    /// Shared, so logs and metrics can hold it without copying.
    pub name: Arc<str>,
    pub targets: Vec<Target>,
    pub critical: bool,
    pub lb: LoadBalancing,
    pub health_check: HealthCheckSpec,
    pub timeouts: UpstreamTimeouts,
    pub retries: u32,
    pub max_in_flight: u32,
    pub circuit_breaker: BreakerSpec,
    pub passive_ejection: Duration,
    pub resolve_interval: Duration,
    /// Usher signs what it forwards here (RFC 9421, `crate::signatures::signer`).
    pub sign_requests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadBalancing {
    RoundRobin,
    Random,
    ConsistentHash(HashKey),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientAddress,
    /// A lower-cased request header name.
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    pub kind: HealthCheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    Tcp,
    Http { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    /// The default total deadline for a request, unless its route sets `timeout`.
    pub total: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSpec {
    pub error_percent: u32,
    pub min_requests: u32,
    pub window: Duration,
    pub open_for: Duration,
    pub half_open_probes: u32,
    pub count_5xx: bool,
}
