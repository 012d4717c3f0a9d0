//! Every built-in default of routes.yaml: the value a key takes when neither its own section
//! nor `defaults:` sets it. The single source: the compiler reads these, the head deadline
//! uses the first request's, and a test holds docs/routes.md's default columns to them.

use std::time::Duration;

/// `server.grace_period`: fits Kubernetes' default 30 s termination grace period.
pub const GRACE_PERIOD: Duration = Duration::from_secs(20);
/// `server.access_log`.
pub const ACCESS_LOG: bool = true;

/// `server.threads`: one worker thread per CPU.
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `listeners.public.tls.http2`: offer h2 through ALPN.
pub const TLS_HTTP2: bool = true;
/// `listeners.public.read_buffer`: Pingora's default (64 KiB) on a TLS listener, whose
/// reads come a 16 KiB record at a time; 4 KiB in plain HTTP, where it is held by every
/// idle keep-alive connection and reads as fast (docs/benchmarks.md, "Edge figures").
pub const READ_BUFFER_TLS: u64 = 64 * 1024;
pub const READ_BUFFER: u64 = 4 * 1024;
/// The largest `listeners.public.read_buffer`.
pub const MAX_READ_BUFFER: u64 = 1 << 20;

/// `authentication.jwt.leeway`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// `authentication.jwt.max_lifetime`.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// `authentication.jwt.token_type`: the value the token-type claim must have.
pub const TOKEN_TYPE: &str = "access";
/// `authentication.jwt.claims.tenant`.
pub const CLAIM_TENANT: &str = "tenant_id";
/// `authentication.jwt.claims.roles`.
pub const CLAIM_ROLES: &str = "roles";
/// `authentication.jwt.claims.venues`.
pub const CLAIM_VENUES: &str = "venue_ids";
/// `authentication.jwt.claims.token_type`.
pub const CLAIM_TOKEN_TYPE: &str = "type";
/// `authentication.jwt.claims.tier`.
pub const CLAIM_TIER: &str = "tier";
/// `authentication.jwt.jwks.refresh_interval`.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// `authentication.jwt.jwks.min_refresh_interval`.
pub const JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// `authentication.jwt.jwks.timeout`.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(2);
/// `authentication.api_keys.header`.
pub const API_KEY_HEADER: &str = "x-api-key";
/// `authentication.user_status.cache_ttl` and `venue_access.cache_ttl`.
pub const LOOKUP_CACHE_TTL: Duration = Duration::from_secs(300);
/// `authentication.user_status.negative_cache_ttl` and `venue_access.negative_cache_ttl`.
pub const LOOKUP_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(30);
/// `authentication.user_status.timeout` and `venue_access.timeout`.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// `authentication.revocation.key_template`: the key the auth service writes.
pub const REVOCATION_KEY_TEMPLATE: &str = "session:blacklist:{jti}";
/// `authentication.revocation.cache_ttl`.
pub const REVOCATION_CACHE_TTL: Duration = Duration::from_secs(1);
/// `authentication.revocation.stale_if_error`.
pub const REVOCATION_STALE_IF_ERROR: Duration = Duration::from_secs(300);

/// `limits.max_headers`.
pub const MAX_HEADERS: usize = 100;
/// `limits.max_header_bytes`.
pub const MAX_HEADER_BYTES: u64 = 32 << 10;
/// `limits.max_uri_bytes`.
pub const MAX_URI_BYTES: u64 = 8 << 10;
/// `limits.request_head_timeout`.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// `limits.request_body_timeout`.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// `limits.max_buffered_bytes`.
pub const MAX_BUFFERED_BYTES: u64 = 64 << 20;
/// `authentication.signatures.max_skew`: how far `created` may be from now.
pub const SIGNATURE_MAX_SKEW: Duration = Duration::from_secs(300);
/// `authentication.signatures.require`.
pub const SIGNATURE_REQUIRED: [&str; 3] = ["@method", "@path", "@query"];
/// `routes[].webhook.tolerance`: Stripe's and Standard Webhooks' own default.
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// `routes[].webhook.replay_window` for GitHub, which signs no timestamp (for the others it
/// is twice the tolerance: a signature is accepted that long at most).
pub const WEBHOOK_GITHUB_REPLAY_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// `routes[].approval.approvals`: the four-eyes rule, one approver besides the submitter.
pub const APPROVALS_NEEDED: u32 = 1;
/// `routes[].approval.expires`.
pub const APPROVAL_EXPIRES: Duration = Duration::from_secs(15 * 60);
/// `routes[].timeout` of a route Usher serves itself (`serve`).
pub const SERVED_TIMEOUT: Duration = Duration::from_secs(10);
/// `routes[].idempotency.required`.
pub const IDEMPOTENCY_REQUIRED: bool = true;
/// `routes[].idempotency.ttl`: the draft's suggestion of a day.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// `routes[].idempotency.max_response`.
pub const IDEMPOTENCY_MAX_RESPONSE: u64 = 1 << 20;
/// `routes[].idempotency.on_store_failure`: money fails closed.
pub const IDEMPOTENCY_ON_STORE_FAILURE: &str = "closed";
/// `routes[].buffer_body` when unset: on exactly when the route's `max_body` fits
/// [`MAX_BUFFERED_BODY`], so small bodies are checked whole before the upstream (as nginx
/// buffers request bodies by default) and larger ones stream.
pub fn buffer_body(max_body: u64) -> bool {
    max_body <= MAX_BUFFERED_BODY
}
/// The largest `max_body` a route that buffers its body may have: Pingora 0.9 forwards a
/// body read before the upstream is contacted from its retry buffer, which holds this much
/// (docs/research/pingora-body-buffering.md).
pub const MAX_BUFFERED_BODY: u64 = 64 << 10;
/// `limits.max_route_removal_percent`.
pub const MAX_ROUTE_REMOVAL_PERCENT: u8 = 50;

/// `cors.allowed_methods`.
pub const CORS_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// `cors.max_age`.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// `rate_limiting.redis.timeout`.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);
/// `rate_limiting.redis.key_prefix`.
pub const REDIS_KEY_PREFIX: &str = "usher:rl:";
/// `rate_limiting.redis.failure_threshold`.
pub const REDIS_FAILURE_THRESHOLD: u32 = 3;
/// `rate_limiting.redis.retry_interval`.
pub const REDIS_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// `rate_limiting.redis.fallback_share`: favours availability.
pub const REDIS_FALLBACK_SHARE: f64 = 1.0;
/// `rate_limiting.redis.readiness`.
pub const REDIS_READINESS: &str = "required";
/// `rate_limiting.policies.NAME.key`, as written: users are unique within a tenant only.
pub const POLICY_KEY: &[&str] = &["tenant", "user"];
/// `rate_limiting.policies.NAME.on_store_failure`.
pub const ON_STORE_FAILURE: &str = "local";
/// `rate_limiting.policies.NAME.tiered`.
pub const TIERED: bool = true;
/// The one tier of a file without `rate_limiting.tiers`, and its multiplier.
pub const TIER: (&str, f64) = ("standard", 1.0);
/// `rate_limiting.shedding.upstream_bulkhead`.
pub const SHED_UPSTREAM_BULKHEAD: bool = true;
/// `rate_limiting.shedding.retry_after`.
pub const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// `upstreams.NAME.critical`.
pub const CRITICAL: bool = false;
/// `upstreams.NAME.lb`.
pub const LB: &str = "round_robin";
/// `upstreams.NAME.hash_key`, for `lb: consistent_hash`.
pub const HASH_KEY: &str = "client_address";
/// `upstreams.NAME.health_check.type`.
pub const HC_TYPE: &str = "tcp";
/// `upstreams.NAME.health_check.interval`.
pub const HC_INTERVAL: Duration = Duration::from_secs(5);
/// `upstreams.NAME.health_check.timeout`.
pub const HC_TIMEOUT: Duration = Duration::from_secs(1);
/// `upstreams.NAME.health_check.healthy_threshold`.
pub const HC_HEALTHY: usize = 2;
/// `upstreams.NAME.health_check.unhealthy_threshold`.
pub const HC_UNHEALTHY: usize = 3;
/// `upstreams.NAME.timeouts.connect`.
pub const CONNECT: Duration = Duration::from_secs(1);
/// `upstreams.NAME.timeouts.read`.
pub const READ: Duration = Duration::from_secs(10);
/// `upstreams.NAME.timeouts.write`.
pub const WRITE: Duration = Duration::from_secs(10);
/// `upstreams.NAME.timeouts.total`.
pub const TOTAL: Duration = Duration::from_secs(10);
/// `upstreams.NAME.retries`.
pub const RETRIES: u32 = 1;
/// `upstreams.NAME.max_in_flight`.
pub const MAX_IN_FLIGHT: u32 = 1000;
/// `upstreams.NAME.circuit_breaker.error_percent`.
pub const ERROR_PERCENT: u32 = 50;
/// `upstreams.NAME.circuit_breaker.min_requests`.
pub const MIN_REQUESTS: u32 = 20;
/// `upstreams.NAME.circuit_breaker.window`.
pub const WINDOW: Duration = Duration::from_secs(10);
/// `upstreams.NAME.circuit_breaker.open_for`.
pub const OPEN_FOR: Duration = Duration::from_secs(30);
/// `upstreams.NAME.circuit_breaker.half_open_probes`.
pub const HALF_OPEN_PROBES: u32 = 3;
/// `upstreams.NAME.circuit_breaker.count_5xx`.
pub const COUNT_5XX: bool = true;
/// `upstreams.NAME.passive_ejection`.
pub const PASSIVE_EJECTION: Duration = Duration::from_secs(10);
/// `upstreams.NAME.resolve_interval`.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(10);

/// `defaults.route.max_body`, and so each route's `max_body`.
pub const MAX_BODY: u64 = 1 << 20;
/// `defaults.route.user_status`, and so each route's `auth.user_status`.
pub const USER_STATUS: bool = false;
/// `routes[].auth.on_dependency_failure`.
pub const ON_DEPENDENCY_FAILURE: &str = "closed";
/// `routes[].auth.token_from`, as written.
pub const TOKEN_FROM: &[&str] = &["header"];
/// `routes[].default_rate_limits`.
pub const DEFAULT_RATE_LIMITS: bool = true;

#[cfg(test)]
mod tests;
