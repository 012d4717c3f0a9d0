//! Configuration: the routes.yaml file format ([`raw`]) and the validated, compiled [`Config`]
//! that the rest of Usher reads.
//!
//! Two layers on purpose: the file format can change without touching the proxy, and
//! everything that can be decided before traffic arrives (defaults merged, names resolved to
//! indexes, patterns parsed, durations converted) is decided here, once, by pure code.
//! [`load`] is the one entry point: text in, a [`Config`] or every error out.

pub mod bounds;
pub(crate) mod builtin;
mod compile;
mod error;
mod locate;
mod parse;
pub mod raw;
pub mod units;

pub use compile::{check_redis_url, compile, content_hash};
pub use error::{ConfigError, ConfigErrors, Errors};

use crate::router::PathPattern;
use http::Method;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Parses and validates routes.yaml text. `source` names the file in error messages.
pub fn load(source: &str, text: &str) -> Result<Config, ConfigErrors> {
    let raw = parse::parse(source, text)?;
    compile(source, text, raw)
}

/// A validated configuration. Immutable; a reload builds a new one.
#[derive(Debug, Clone)]
pub struct Config {
    /// First 12 hex digits of the SHA-256 of the file's bytes.
    pub hash: String,
    pub server: ServerSettings,
    pub listeners: Listeners,
    /// Indexed by [`RouteSpec::upstream`].
    pub upstreams: Vec<UpstreamSpec>,
    /// In file order; the router decides precedence by specificity, not by this order.
    pub routes: Vec<RouteSpec>,
    pub authentication: AuthenticationSpec,
    pub identity: IdentitySpec,
    pub limits: Limits,
    pub rate_limiting: RateLimiting,
}

/// Rate limiting, compiled. Policies are referenced by index from [`RouteSpec::rate_limits`].
#[derive(Debug, Clone)]
pub struct RateLimiting {
    pub redis: Option<RedisSpec>,
    pub policies: Vec<Arc<PolicySpec>>,
    /// Indexes of the policies every route gets unless it opts out.
    pub defaults: Vec<usize>,
    pub tiers: Tiers,
    pub shedding: Option<SheddingSpec>,
}

/// Where the shared store is and how much to wait for it. Credentials are references,
/// resolved at startup and on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSpec {
    pub url: SecretRef,
    pub username: Option<String>,
    pub password: SecretRef,
    /// The deadline of one call, connection wait included.
    pub timeout: Duration,
    pub key_prefix: String,
    /// Consecutive failed calls after which Usher stops asking and uses its local store.
    pub failure_threshold: u32,
    /// How long the store is left alone after it failed, before one call tries it again.
    pub retry_interval: Duration,
    /// The fraction of each limit one replica enforces on its own while Redis is away.
    pub fallback_share: f64,
    /// Whether `/health/ready` fails while Redis cannot be reached.
    pub required_for_readiness: bool,
}

/// A value that is not written in routes.yaml: the name of an environment variable or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Literal(String),
    Env(String),
    File(String),
}

#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub name: Arc<str>,
    pub limit: u32,
    pub window: Duration,
    pub key: Vec<KeyPart>,
    /// Rejections within one window after which the caller is refused for a while.
    pub block: Option<BlockSpec>,
    /// Rejections within one window that mark the caller as a likely bot.
    pub bot_after: Option<u32>,
    pub on_store_failure: StoreFailure,
    /// Whether the caller's tier multiplies the limit.
    pub tiered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    pub after: u32,
    pub duration: Duration,
}

/// What a policy does while the shared store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// Count in this replica, with `fallback_share` of the limit.
    Local,
    /// Let requests through uncounted.
    Open,
    /// Refuse with 503: for money and minting paths, where over-admission costs more.
    Closed,
}

/// One part of a bucket's key. Identity parts come from the verified credential only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Tenant,
    User,
    ApiKey,
    Client,
    /// A lower-cased request header name.
    Header(String),
    /// A path parameter, by name; each route resolves it to an index.
    Param(String),
    Query(String),
}

/// Caller tiers, highest first. There is always at least one.
#[derive(Debug, Clone)]
pub struct Tiers {
    pub levels: Vec<Tier>,
    /// The tier of callers whose credential names none (or one not listed).
    pub default: usize,
    /// The tier of unauthenticated callers.
    pub anonymous: usize,
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: Arc<str>,
    pub multiplier: f64,
    /// The load (0–1) from which this tier's requests are shed; `None`: never shed.
    pub shed_at: Option<f64>,
}

impl Tiers {
    pub fn find(&self, name: &str) -> Option<usize> {
        self.levels.iter().position(|t| &*t.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SheddingSpec {
    /// Usher's own capacity: in-flight requests at which its load is 1.
    pub max_in_flight: u32,
    /// Whether the route's upstream bulkhead fill counts as load too.
    pub upstream_bulkhead: bool,
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct AuthenticationSpec {
    pub jwt: Option<JwtSpec>,
    pub api_keys: Option<ApiKeysSpec>,
    /// Asked whether a token's user is still active (`{sub}`, `{tenant}` in the URL).
    pub user_status: Option<LookupSpec>,
    /// Asked whether a user may act on a venue (`{venue}`, `{sub}`, `{tenant}`).
    pub venue_access: Option<LookupSpec>,
    pub revocation: Option<RevocationSpec>,
}

/// Where a token's `jti` is looked up before the token is accepted. With revocation on,
/// a token without `jti` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSpec {
    /// The Redis key that marks a token revoked, `{jti}` filled in; asked in
    /// `rate_limiting.redis` when that is configured.
    pub key_template: String,
    /// Revoked ids, one per line, read with every snapshot.
    pub file: Option<String>,
    /// How long one answer from Redis is reused for the same `jti`.
    pub cache_ttl: Duration,
    /// While Redis cannot answer, an answer up to this old still counts.
    pub stale_if_error: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupSpec {
    pub url_template: String,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct JwtSpec {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    /// The longest a token may live: `exp - iat` (or `exp - now` without `iat`).
    pub max_lifetime: Duration,
    /// The value the token-type claim must have (`access`).
    pub token_type: String,
    pub claims: ClaimNames,
    pub keys: Vec<JwtKeySpec>,
    pub jwks: Option<JwksSpec>,
}

/// Keys published by the token issuer as a JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSpec {
    /// An `http://` or `https://` URL (the issuer's in-cluster address).
    pub url: http::Uri,
    pub refresh_interval: Duration,
    /// A token with an unknown `kid` triggers a refresh at most this often.
    pub min_refresh_interval: Duration,
    pub timeout: Duration,
}

/// The names of the claims Usher reads besides the registered ones.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub tenant: String,
    pub roles: String,
    pub venues: String,
    pub token_type: String,
    /// Names the caller's rate-limit tier.
    pub tier: String,
}

#[derive(Debug, Clone)]
pub struct JwtKeySpec {
    pub kid: Option<String>,
    /// The only algorithm this key verifies; the token's header never chooses it.
    pub algorithm: jsonwebtoken::Algorithm,
    pub material: KeyMaterial,
}

/// Where key material comes from. Secrets never appear in routes.yaml itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    SecretEnv(String),
    SecretFile(String),
    PublicKeyFile(String),
}

#[derive(Debug, Clone)]
pub struct ApiKeysSpec {
    pub file: String,
    /// Lower-cased header name, `x-api-key` by default.
    pub header: String,
}

#[derive(Debug, Clone)]
pub struct IdentitySpec {
    /// Lower-cased header names removed from every request: the built-in list plus
    /// `identity.strip_headers`.
    pub strip_headers: Vec<String>,
    /// Lower-cased prefixes (written `x-internal-*`) removed likewise.
    pub strip_prefixes: Vec<String>,
    /// Peers allowed to report the client's address in `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_headers: usize,
    pub max_header_bytes: u64,
    pub max_uri_bytes: u64,
    /// The most a client may take to send a request head, from the connection's start
    /// (first request) or from the head's first byte (later requests on the connection).
    pub request_head_timeout: Duration,
    /// A reload may remove at most this share of the running routes (see control.rs).
    pub max_route_removal_percent: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub access_log: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listeners {
    pub public: SocketAddr,
    pub tls: Option<TlsSettings>,
    pub h2c: bool,
    pub admin: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    pub cert_file: String,
    pub key_file: String,
    pub http2: bool,
}

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

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: Arc<str>,
    /// Lower-cased, without port.
    pub host: Option<String>,
    pub pattern: PathPattern,
    /// `None` accepts every method.
    pub methods: Option<Vec<Method>>,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    /// Replaces the matched prefix before forwarding; `None` forwards the path unchanged.
    pub rewrite: Option<String>,
    pub access: Access,
    /// The total deadline for one request on this route: its `timeout`, else its
    /// upstream's `timeouts.total`.
    pub timeout: Duration,
    pub max_body: u64,
    pub auth: RouteAuth,
    /// Whether WebSocket upgrades may pass; other `Upgrade` requests are always refused.
    pub websocket: bool,
    /// The route's own CORS policy, else the global one; `None`: no cross-origin access.
    pub cors: Option<Arc<CorsPolicy>>,
    /// The policies a request on this route counts against: the defaults, then its own.
    pub rate_limits: Vec<RouteLimit>,
}

impl crate::router::Routable for RouteSpec {
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    fn pattern(&self) -> &PathPattern {
        &self.pattern
    }

    fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }
}

/// A policy attached to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimit {
    /// Index into [`RateLimiting::policies`].
    pub policy: usize,
    /// For each `Param` part of the policy's key, in order: its index among the route's
    /// parameters.
    pub params: Vec<usize>,
}

/// A compiled CORS policy: header values are built once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Lower-cased origins (`scheme://host[:port]`); `*` alone allows any origin.
    pub origins: Vec<String>,
    pub any_origin: bool,
    pub methods: Vec<http::Method>,
    /// `Access-Control-Allow-Methods`, ready to send.
    pub methods_value: String,
    /// Lower-cased request headers a browser may send.
    pub headers: Vec<String>,
    pub headers_value: String,
    pub exposed_value: Option<String>,
    pub credentials: bool,
    pub max_age_value: String,
}

/// What an authenticated caller must be on a route, beyond being authenticated.
#[derive(Debug, Clone, Default)]
pub struct RouteAuth {
    /// The caller needs at least one of these roles (none listed: any caller).
    pub roles: Vec<String>,
    /// The index, among the route's parameters, of the venue the caller must be scoped to.
    pub venue_param: Option<usize>,
    /// Roles that pass the venue scope check for every venue.
    pub admin_roles: Vec<String>,
    pub api_keys: bool,
    pub token_sources: Vec<TokenSource>,
    /// Ask `authentication.user_status` whether the token's user is still active.
    pub user_status: bool,
    /// Confirm the venue scope with `authentication.venue_access`.
    pub venue_check: bool,
    /// When a service asked above cannot answer: let the request through (`open`) instead
    /// of refusing it with 503 (`closed`, the default).
    pub fail_open: bool,
    /// Forward the verified credential (token or API key) to the upstream, for services that
    /// verify it themselves or act with it; otherwise it stays at the edge.
    pub forward_credential: bool,
}

/// Where a bearer token may come from. Only the `Authorization` header unless a route
/// opts in to more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    BearerHeader,
    Query(String),
    Cookie(String),
}

/// Who may call a route. Authenticated unless the file says otherwise.
#[derive(Debug, Clone)]
pub enum Access {
    Authenticated,
    Public,
    /// Authenticated, except these paths (relative to the route's prefix, already joined).
    PublicPaths(Vec<PublicPath>),
}

/// A public path: exact, or a whole subtree when written with a trailing `/*`.
#[derive(Debug, Clone)]
pub struct PublicPath {
    pub pattern: PathPattern,
    pub subtree: bool,
}

/// Checks what [`compile`] cannot because it needs the environment: that the files the
/// configuration names can be read. `usher check`, startup and every reload run it.
pub fn preflight(source: &str, text: &str, config: Config) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::new(source, text);
    if let Some(tls) = &config.listeners.tls {
        for (key, file) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
            if let Err(e) = std::fs::File::open(file) {
                errors.error(
                    format!("listeners.public.tls.{key}"),
                    format!("cannot read \"{file}\": {e}"),
                );
            }
        }
    }
    errors.finish(config)
}
