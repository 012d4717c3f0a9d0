//! docs/routes.md's default columns say what these constants are.

use super::*;
use std::collections::HashMap;

const DOCS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/routes.md"));

/// `(section, key)` → the default cell, from every table with a default column, keys with
/// their backticks removed.
fn documented_defaults() -> HashMap<(String, String), String> {
    let mut found = HashMap::new();
    let mut section = String::new();
    let mut default_column = None;
    for line in DOCS.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.trim().to_string();
            continue;
        }
        let Some(row) = line.strip_prefix('|') else {
            default_column = None;
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        match default_column {
            None => default_column = Some(cells.iter().position(|c| c.contains("default"))),
            Some(None) => {}
            Some(Some(_)) if cells[0].starts_with("---") => {}
            Some(Some(column)) => {
                let key = cells[0].replace('`', "");
                found.insert((section.clone(), key), cells[column].to_string());
            }
        }
    }
    found
}

fn code(text: impl std::fmt::Display) -> String {
    format!("`{text}`")
}

fn duration(value: Duration) -> String {
    let millis = value.as_millis();
    code(match (millis % 1000, value.as_secs()) {
        (0, s) if s % 3600 == 0 => format!("{}h", s / 3600),
        (0, s) if s % 60 == 0 => format!("{}m", s / 60),
        (0, s) => format!("{s}s"),
        _ => format!("{millis}ms"),
    })
}

fn size(bytes: u64) -> String {
    code(match bytes {
        b if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => b.to_string(),
    })
}

fn list(items: &[&str]) -> String {
    code(format!("[{}]", items.join(", ")))
}

fn each(values: &[String]) -> String {
    values.join(" / ")
}

#[test]
fn the_docs_state_every_built_in_default() {
    let expected: Vec<(&str, &str, String)> = vec![
        ("server", "grace_period", duration(GRACE_PERIOD)),
        ("server", "access_log", code(ACCESS_LOG)),
        ("listeners", "public.tls.http2", code(TLS_HTTP2)),
        (
            "listeners",
            "public.read_buffer",
            each(&[size(READ_BUFFER), size(READ_BUFFER_TLS)]),
        ),
        ("authentication", "jwt.leeway", duration(LEEWAY)),
        ("authentication", "jwt.max_lifetime", duration(MAX_LIFETIME)),
        ("authentication", "jwt.token_type", code(TOKEN_TYPE)),
        (
            "authentication",
            "jwt.claims.tenant / .roles / .venues / .token_type / .tier",
            each(&[
                code(CLAIM_TENANT),
                code(CLAIM_ROLES),
                code(CLAIM_VENUES),
                code(CLAIM_TOKEN_TYPE),
                code(CLAIM_TIER),
            ]),
        ),
        (
            "authentication",
            "jwt.jwks.refresh_interval",
            duration(JWKS_REFRESH_INTERVAL),
        ),
        (
            "authentication",
            "jwt.jwks.min_refresh_interval",
            duration(JWKS_MIN_REFRESH_INTERVAL),
        ),
        ("authentication", "jwt.jwks.timeout", duration(JWKS_TIMEOUT)),
        ("authentication", "api_keys.header", code(API_KEY_HEADER)),
        (
            "authentication",
            "*.cache_ttl / *.negative_cache_ttl / *.timeout",
            each(&[
                duration(LOOKUP_CACHE_TTL),
                duration(LOOKUP_NEGATIVE_CACHE_TTL),
                duration(LOOKUP_TIMEOUT),
            ]),
        ),
        (
            "authentication",
            "revocation.key_template",
            code(REVOCATION_KEY_TEMPLATE),
        ),
        (
            "authentication",
            "revocation.cache_ttl",
            duration(REVOCATION_CACHE_TTL),
        ),
        (
            "authentication",
            "revocation.stale_if_error",
            duration(REVOCATION_STALE_IF_ERROR),
        ),
        ("limits", "max_headers", code(MAX_HEADERS)),
        ("limits", "max_header_bytes", size(MAX_HEADER_BYTES)),
        ("limits", "max_uri_bytes", size(MAX_URI_BYTES)),
        (
            "limits",
            "request_head_timeout",
            duration(REQUEST_HEAD_TIMEOUT),
        ),
        (
            "limits",
            "request_body_timeout",
            duration(REQUEST_BODY_TIMEOUT),
        ),
        ("limits", "max_buffered_bytes", size(MAX_BUFFERED_BYTES)),
        (
            "routes",
            "buffer_body",
            format!("`true` up to {}", size(MAX_BUFFERED_BODY)),
        ),
        ("routes", "idempotency.required", code(IDEMPOTENCY_REQUIRED)),
        ("routes", "idempotency.ttl", duration(IDEMPOTENCY_TTL)),
        (
            "routes",
            "idempotency.on_store_failure",
            code(IDEMPOTENCY_ON_STORE_FAILURE),
        ),
        (
            "routes",
            "idempotency.max_response",
            size(IDEMPOTENCY_MAX_RESPONSE),
        ),
        (
            "limits",
            "max_route_removal_percent",
            code(MAX_ROUTE_REMOVAL_PERCENT),
        ),
        ("cors", "allowed_methods", list(CORS_METHODS)),
        ("cors", "max_age", duration(CORS_MAX_AGE)),
        ("rate_limiting", "redis.timeout", duration(REDIS_TIMEOUT)),
        ("rate_limiting", "redis.key_prefix", code(REDIS_KEY_PREFIX)),
        (
            "rate_limiting",
            "redis.failure_threshold",
            code(REDIS_FAILURE_THRESHOLD),
        ),
        (
            "rate_limiting",
            "redis.retry_interval",
            duration(REDIS_RETRY_INTERVAL),
        ),
        (
            "rate_limiting",
            "redis.fallback_share",
            code(REDIS_FALLBACK_SHARE),
        ),
        ("rate_limiting", "redis.readiness", code(REDIS_READINESS)),
        ("rate_limiting", "policies.NAME.key", list(POLICY_KEY)),
        (
            "rate_limiting",
            "policies.NAME.on_store_failure",
            code(ON_STORE_FAILURE),
        ),
        ("rate_limiting", "policies.NAME.tiered", code(TIERED)),
        (
            "rate_limiting",
            "tiers.levels",
            format!("one tier, {} ×{}", code(TIER.0), TIER.1),
        ),
        (
            "rate_limiting",
            "shedding.upstream_bulkhead",
            code(SHED_UPSTREAM_BULKHEAD),
        ),
        (
            "rate_limiting",
            "shedding.retry_after",
            duration(SHED_RETRY_AFTER),
        ),
        ("defaults", "route.max_body", size(MAX_BODY)),
        ("defaults", "route.user_status", code(USER_STATUS)),
        ("upstreams", "critical", code(CRITICAL)),
        ("upstreams", "lb", code(LB)),
        ("upstreams", "hash_key", code(HASH_KEY)),
        ("upstreams", "health_check.type", code(HC_TYPE)),
        ("upstreams", "health_check.interval", duration(HC_INTERVAL)),
        ("upstreams", "health_check.timeout", duration(HC_TIMEOUT)),
        (
            "upstreams",
            "health_check.healthy_threshold",
            code(HC_HEALTHY),
        ),
        (
            "upstreams",
            "health_check.unhealthy_threshold",
            code(HC_UNHEALTHY),
        ),
        ("upstreams", "timeouts.connect", duration(CONNECT)),
        ("upstreams", "timeouts.read", duration(READ)),
        ("upstreams", "timeouts.write", duration(WRITE)),
        ("upstreams", "timeouts.total", duration(TOTAL)),
        ("upstreams", "retries", code(RETRIES)),
        ("upstreams", "max_in_flight", code(MAX_IN_FLIGHT)),
        (
            "upstreams",
            "circuit_breaker.error_percent",
            code(ERROR_PERCENT),
        ),
        (
            "upstreams",
            "circuit_breaker.min_requests",
            code(MIN_REQUESTS),
        ),
        ("upstreams", "circuit_breaker.window", duration(WINDOW)),
        ("upstreams", "circuit_breaker.open_for", duration(OPEN_FOR)),
        (
            "upstreams",
            "circuit_breaker.half_open_probes",
            code(HALF_OPEN_PROBES),
        ),
        ("upstreams", "circuit_breaker.count_5xx", code(COUNT_5XX)),
        ("upstreams", "passive_ejection", duration(PASSIVE_EJECTION)),
        ("upstreams", "resolve_interval", duration(RESOLVE_INTERVAL)),
        (
            "routes",
            "auth.on_dependency_failure",
            code(ON_DEPENDENCY_FAILURE),
        ),
        ("routes", "auth.token_from", list(TOKEN_FROM)),
        ("routes", "default_rate_limits", code(DEFAULT_RATE_LIMITS)),
    ];
    let documented = documented_defaults();
    let mut wrong = Vec::new();
    for (section, key, value) in expected {
        match documented.get(&(section.to_string(), key.to_string())) {
            Some(cell) if *cell == value => {}
            Some(cell) => wrong.push(format!("{section}: `{key}` says {cell}, the code {value}")),
            None => wrong.push(format!("{section}: `{key}` has no row with a default")),
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/routes.md disagrees:\n{}",
        wrong.join("\n")
    );
}
