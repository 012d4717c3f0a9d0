//! Rate limiting, compiled: policies, tiers, shedding and the shared store.

use super::*;

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
    /// The fraction of each limit one replica enforces on its own while Redis is away; with
    /// `replicas_env`, 1 / replicas once the environment is read (startup, each reload).
    pub fallback_share: f64,
    /// The environment variable holding the number of replicas.
    pub replicas_env: Option<String>,
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
    /// A budget: the policy counts this amount of each request's body instead of one per
    /// request, once the body is in (`crate::ratelimit::budget`).
    pub amount: Option<AmountSpec>,
}

/// Where a budget finds a request's amount in its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountSpec {
    /// A JSON pointer (RFC 6901), as written.
    pub pointer: String,
    pub measure: Measure,
    /// A request asking for more is refused whole (422 `amount_over_cap`).
    pub max_per_request: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// The length of the array at the pointer.
    Length,
    /// The non-negative integer at the pointer.
    Number,
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
