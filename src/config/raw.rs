//! The routes.yaml file format, key for key.
//!
//! These serde structs mirror the file and hold no logic: every field an SRE may omit is an
//! `Option`, so that [`super::compile`] can merge it with `defaults` and report what is wrong.
//! Unknown keys are errors (`deny_unknown_fields`), so a typo never silently falls back to a
//! default. The runtime never reads these types; it reads the compiled [`super::Config`].
//! One file on purpose, though it passes 400 lines: it is the whole format, declarations
//! only, to be read alongside docs/routes.md.

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
    #[serde(default)]
    pub aliases: Vec<RawAlias>,
    #[serde(default)]
    pub authentication: RawAuthentication,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub limits: RawLimits,
    pub cors: Option<RawCors>,
    #[serde(default)]
    pub rate_limiting: RawRateLimiting,
    pub signing: Option<RawSigning>,
}

/// The keys Usher signs what it forwards with (to upstreams with `sign_requests`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigning {
    pub keys: Vec<RawSigningKey>,
    /// The key id new signatures use; the first key by default.
    pub active: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSigningKey {
    pub id: String,
    /// An Ed25519 private key, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    pub private_key_file: String,
}

/// Rate-limit policies, where their counts live, caller tiers and overload shedding.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimiting {
    pub redis: Option<RawRedis>,
    /// Policies applied to every route (unless a route sets `default_rate_limits: false`).
    #[serde(default)]
    pub default_policies: Vec<String>,
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
    pub tiers: Option<RawTiers>,
    pub shedding: Option<RawShedding>,
}

/// The shared store. Absent: every replica counts on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub timeout: Option<Dur>,
    pub key_prefix: Option<String>,
    pub failure_threshold: Option<u32>,
    pub retry_interval: Option<Dur>,
    pub fallback_share: Option<f64>,
    /// An environment variable holding the replica count: the share is then 1 / replicas.
    pub replicas_env: Option<String>,
    pub readiness: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub limit: u32,
    pub window: Dur,
    pub key: Option<Vec<String>>,
    pub block: Option<RawBlock>,
    pub bot_after: Option<u32>,
    pub on_store_failure: Option<String>,
    pub tiered: Option<bool>,
    pub amount: Option<RawAmount>,
}

/// What a budget counts, from the buffered JSON body: exactly one of the two pointers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmount {
    pub length_of: Option<String>,
    pub number_at: Option<String>,
    pub max_per_request: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBlock {
    pub after: u32,
    pub duration: Dur,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTiers {
    pub default: String,
    pub anonymous: Option<String>,
    pub levels: Vec<RawTier>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub name: String,
    pub multiplier: f64,
    pub shed_at: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShedding {
    pub max_in_flight: u32,
    pub upstream_bulkhead: Option<bool>,
    pub retry_after: Option<Dur>,
}

/// Cross-origin access for browsers. Absent: no CORS headers at all, so browsers refuse
/// cross-origin calls.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// An environment variable holding the origins, separated by commas or spaces.
    pub allowed_origins_env: Option<String>,
    pub allowed_methods: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub exposed_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    pub max_age: Option<Dur>,
}

/// How callers prove who they are. Nothing here is enabled unless configured; routes that
/// need an authenticated caller are refused (401) when no verifier is configured.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthentication {
    pub jwt: Option<RawJwt>,
    pub api_keys: Option<RawApiKeys>,
    pub signatures: Option<RawSignatures>,
    pub user_status: Option<RawLookup>,
    pub venue_access: Option<RawLookup>,
    pub revocation: Option<RawRevocation>,
}

/// RFC 9421 message signatures as a credential: the keys, by `keyid`, and their rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignatures {
    pub keys: Vec<RawSignatureKey>,
    /// Components every signature must cover (`content-digest` is added when there is a
    /// body).
    pub require: Option<Vec<String>>,
    pub max_skew: Option<Dur>,
    /// `required` or `optional` (the default).
    pub nonce: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignatureKey {
    pub id: String,
    pub hmac_secret_file: Option<String>,
    pub ed25519_public_key_file: Option<String>,
    pub tenant: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The principal's name upstream (`x-user-id`); `signature:<id>` by default.
    pub subject: Option<String>,
    pub tier: Option<String>,
}

/// Where revoked token ids (`jti`) are found: keys in the shared Redis that the auth
/// service writes, and/or a file of ids.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    pub key_template: Option<String>,
    pub file: Option<String>,
    pub cache_ttl: Option<Dur>,
    pub stale_if_error: Option<Dur>,
}

/// A question asked of another service about a caller, answered by the HTTP status.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLookup {
    pub url: String,
    pub cache_ttl: Option<Dur>,
    pub negative_cache_ttl: Option<Dur>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Option<Dur>,
    pub max_lifetime: Option<Dur>,
    pub token_type: Option<String>,
    #[serde(default)]
    pub claims: RawClaimNames,
    #[serde(default)]
    pub keys: Vec<RawJwtKey>,
    pub jwks: Option<RawJwks>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwks {
    pub url: String,
    pub refresh_interval: Option<Dur>,
    pub min_refresh_interval: Option<Dur>,
    pub timeout: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimNames {
    pub tenant: Option<String>,
    pub roles: Option<String>,
    pub venues: Option<String>,
    pub token_type: Option<String>,
    pub tier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtKey {
    pub kid: Option<String>,
    pub algorithm: String,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub public_key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    pub file: String,
    pub header: Option<String>,
}

/// Which client headers never reach an upstream, and which peers may speak for clients.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    #[serde(default)]
    pub strip_headers: Vec<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_headers: Option<usize>,
    pub max_header_bytes: Option<ByteSize>,
    pub max_uri_bytes: Option<ByteSize>,
    pub request_head_timeout: Option<Dur>,
    pub request_body_timeout: Option<Dur>,
    pub max_buffered_bytes: Option<ByteSize>,
    pub max_route_removal_percent: Option<u8>,
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
    pub read_buffer: Option<ByteSize>,
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
    #[serde(default)]
    pub sign_requests: bool,
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
    /// Whether routes ask `authentication.user_status` unless they say otherwise.
    pub user_status: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    pub upstream: Option<String>,
    /// An endpoint Usher answers itself instead of an upstream: `approvals`.
    pub serve: Option<String>,
    pub rewrite: Option<RawRewrite>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub public_paths: Vec<String>,
    pub timeout: Option<Dur>,
    pub max_body: Option<ByteSize>,
    pub buffer_body: Option<bool>,
    pub idempotency: Option<RawIdempotency>,
    pub validate: Option<RawValidate>,
    pub approval: Option<RawApproval>,
    pub webhook: Option<RawWebhook>,
    pub auth: Option<RawRouteAuth>,
    #[serde(default)]
    pub websocket: bool,
    pub cors: Option<RawCors>,
    #[serde(default)]
    pub rate_limits: Vec<String>,
    pub default_rate_limits: Option<bool>,
    pub tracing: Option<RawRouteTracing>,
}

/// A route's own trace sampler, in place of `OTEL_TRACES_SAMPLER`'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteTracing {
    pub sampler: String,
    pub ratio: Option<f64>,
}

/// Another spelling of paths that routes serve: a request it matches is routed again with
/// the matched prefix replaced by `to`, and gets that route's every policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlias {
    pub name: String,
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    pub to: String,
}

/// What a route's requests must look like: a JSON Schema for the body, patterns for path
/// parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValidate {
    pub body_schema: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// A provider's webhook signature, verified on one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub scheme: String,
    pub secrets: Vec<RawSecretSource>,
    pub tolerance: Option<Dur>,
    pub replay_window: Option<Dur>,
    pub on_store_failure: Option<String>,
}

/// Where a secret is: an environment variable or a file (exactly one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretSource {
    pub env: Option<String>,
    pub file: Option<String>,
}

/// Two-person approval above an amount, on one route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    pub length_of: Option<String>,
    pub number_at: Option<String>,
    pub above: u64,
    #[serde(default)]
    pub roles: Vec<String>,
    pub approvals: Option<u32>,
    pub expires: Option<Dur>,
}

/// Idempotency-Key handling on one route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdempotency {
    pub required: Option<bool>,
    pub ttl: Option<Dur>,
    pub max_response: Option<ByteSize>,
    pub on_store_failure: Option<String>,
}

/// What an authenticated caller must be, on one route.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteAuth {
    #[serde(default)]
    pub roles: Vec<String>,
    pub venue_param: Option<String>,
    pub venue_field: Option<String>,
    /// Accept RFC 9421 signatures (`authentication.signatures`) as the credential.
    #[serde(default)]
    pub signatures: bool,
    /// Components this route's signatures must cover besides `authentication.signatures`'s.
    #[serde(default)]
    pub signature_covers: Vec<String>,
    #[serde(default)]
    pub admin_roles: Vec<String>,
    #[serde(default)]
    pub api_keys: bool,
    #[serde(default)]
    pub token_from: Vec<String>,
    pub user_status: Option<bool>,
    #[serde(default)]
    pub venue_check: bool,
    pub on_dependency_failure: Option<String>,
    #[serde(default)]
    pub forward_credential: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub path: String,
    pub methods: Option<Vec<String>>,
    pub host: Option<String>,
    #[serde(default)]
    pub exact: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    pub strip_prefix: Option<bool>,
    pub replace_prefix: Option<String>,
}
