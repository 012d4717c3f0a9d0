//! The routes.yaml file format, key for key.
//!
//! These serde structs mirror the file and hold no logic: every field an SRE may omit is an
//! `Option`, so that [`super::compile`] can merge it with `defaults` and report what is wrong.
//! Unknown keys are errors (`deny_unknown_fields`), so a typo never silently falls back to a
//! default. The runtime never reads these types; it reads the compiled [`super::Config`].

use super::units::{ByteSize, Dur};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub listeners: RawListeners,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub threads: Option<usize>,
    pub grace_period: Option<Dur>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListeners {
    pub public: RawPublicListener,
    pub admin: RawAdminListener,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublicListener {
    pub address: String,
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub h2c: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
    pub http2: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminListener {
    pub address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub route: RawRouteDefaults,
}

/// One upstream pool, or (under `defaults.upstream`) the settings every pool inherits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub targets: Vec<String>,
    pub critical: Option<bool>,
    pub lb: Option<String>,
    pub hash_key: Option<String>,
    pub health_check: Option<RawHealthCheck>,
    pub timeouts: Option<RawTimeouts>,
    pub retries: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub circuit_breaker: Option<RawCircuitBreaker>,
    pub passive_ejection: Option<Dur>,
    pub resolve_interval: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub interval: Option<Dur>,
    pub timeout: Option<Dur>,
    pub healthy_threshold: Option<usize>,
    pub unhealthy_threshold: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<Dur>,
    pub read: Option<Dur>,
    pub write: Option<Dur>,
    pub total: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    pub error_percent: Option<u32>,
    pub min_requests: Option<u32>,
    pub window: Option<Dur>,
    pub open_for: Option<Dur>,
    pub half_open_probes: Option<u32>,
    pub count_5xx: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteDefaults {
    pub max_body: Option<ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    pub upstream: String,
    pub rewrite: Option<RawRewrite>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub public_paths: Vec<String>,
    pub timeout: Option<Dur>,
    pub max_body: Option<ByteSize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    pub strip_prefix: Option<bool>,
    pub replace_prefix: Option<String>,
}
