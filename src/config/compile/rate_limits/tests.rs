//! The rate-limiting section's tables: policies, tiers, shedding and routes' limits.

use super::*;
use crate::config::compile::testing::{assert_file_errors, file, section};

#[test]
fn key_parts_parse() {
    assert_eq!(key_part("user"), Ok(KeyPart::User));
    assert_eq!(
        key_part("header:X-Device"),
        Ok(KeyPart::Header("x-device".into()))
    );
    assert_eq!(
        key_part("param:eventId"),
        Ok(KeyPart::Param("eventId".into()))
    );
    assert!(key_part("query:").is_err());
    assert!(key_part("cookie:x").is_err());
    assert!(key_part("users").is_err());
}

fn rate_limiting(yaml: &str) -> (RateLimiting, Vec<String>) {
    section(yaml, |c, raw| c.rate_limiting(raw))
}

#[test]
fn policies_tiers_and_shedding_default() {
    let (compiled, errors) = rate_limiting("{ default_policies: [global], policies: { global: { limit: 10, window: 1m } }, shedding: { max_in_flight: 10 }, tiers: { default: std, levels: [{ name: gold, multiplier: 2 }, { name: std, multiplier: 1, shed_at: 0.5 }] } }");
    assert!(errors.is_empty(), "{errors:?}");
    let policy = &compiled.policies[0];
    assert_eq!(policy.key, [KeyPart::Tenant, KeyPart::User]);
    assert_eq!(
        (policy.on_store_failure, policy.tiered),
        (StoreFailure::Local, builtin::TIERED)
    );
    assert_eq!(compiled.defaults, [0]);
    assert_eq!((compiled.tiers.default, compiled.tiers.anonymous), (1, 1));
    let shedding = compiled.shedding.unwrap();
    assert_eq!(
        (shedding.upstream_bulkhead, shedding.retry_after),
        (builtin::SHED_UPSTREAM_BULKHEAD, builtin::SHED_RETRY_AFTER)
    );
    let (compiled, _) = rate_limiting("{}");
    assert_eq!(
        (
            &*compiled.tiers.levels[0].name,
            compiled.tiers.levels[0].multiplier
        ),
        builtin::TIER
    );
}

#[test]
fn rate_limiting_errors() {
    let at = "rate_limiting";
    for (yaml, expected) in [
        ("policies: { Bad: { limit: 0, window: 0s, key: [] } }", vec![
            format!("{at}.policies.Bad: policy names may hold only lower-case letters, digits, - and _"),
            format!("{at}.policies.Bad.limit: must be at least 1 (to refuse every request, do not route it)"),
            format!("{at}.policies.Bad.window: must be greater than zero"),
            format!("{at}.policies.Bad.key: an empty key would put every caller in one bucket; leave key out for per-caller buckets"),
        ]),
        ("policies: { p: { limit: 1, window: 1s, block: { after: 0, duration: 1s }, bot_after: 0, on_store_failure: maybe } }", vec![
            format!("{at}.policies.p.block.after: must be at least 1"),
            format!("{at}.policies.p.bot_after: must be at least 1"),
            format!("{at}.policies.p.on_store_failure: \"maybe\": expected local, open or closed"),
        ]),
        ("policies: { b: { limit: 5, window: 1s, amount: { length_of: ids, number_at: /n } } }", vec![
            format!("{at}.policies.b.amount: set exactly one of length_of: /array or number_at: /number (JSON pointers into the body)"),
        ]),
        ("policies: { b: { limit: 5, window: 1s, bot_after: 3, on_store_failure: local, amount: { length_of: ids, max_per_request: 6 } } }", vec![
            format!("{at}.policies.b.amount.length_of: \"ids\" is not a JSON pointer: it starts with / (\"/ticketIds\")"),
            format!("{at}.policies.b.amount.max_per_request: must be between 1 and the policy's limit (5)"),
            format!("{at}.policies.b.bot_after: a budget counts amounts, not refusals; remove it"),
            format!("{at}.policies.b.on_store_failure: a budget fails closed: while Redis cannot answer, its requests are refused (503)"),
        ]),
        ("{ default_policies: [b], policies: { b: { limit: 5, window: 1s, amount: { number_at: /n } } } }", vec![
            format!("{at}.default_policies[0]: policy \"b\" is a budget (it has amount); attach it to the routes whose bodies carry that amount"),
        ]),
        ("{ default_policies: [p, p], policies: { p: { limit: 1, window: 1s } } }", vec![
            format!("{at}.default_policies[1]: policy \"p\" is listed twice"),
        ]),
        ("tiers: { default: gold, anonymous: free, levels: [] }", vec![
            format!("{at}.tiers.levels: list at least one tier"),
            format!("{at}.tiers.default: unknown tier \"gold\": list it under levels"),
            format!("{at}.tiers.anonymous: unknown tier \"free\": list it under levels"),
        ]),
        ("tiers: { default: a, levels: [{ name: a, multiplier: 1, shed_at: 2 }, { name: a, multiplier: 1 }] }", vec![
            format!("{at}.tiers.levels[0].shed_at: must be a load fraction above 0 and at most 1"),
            format!("{at}.tiers.levels[1].name: tier \"a\" is listed twice"),
        ]),
        ("shedding: { max_in_flight: 0, retry_after: 0s }", vec![
            format!("{at}.shedding.max_in_flight: must be greater than zero"),
            format!("{at}.shedding: no tier in rate_limiting.tiers has shed_at, so nothing would ever be shed"),
            format!("{at}.shedding.retry_after: must be greater than zero"),
        ]),
    ] {
        assert_eq!(rate_limiting(yaml).1, expected, "{yaml}");
    }
}

#[test]
fn routes_count_against_default_policies_then_their_own() {
    let head = "rate_limiting: { default_policies: [all], policies: { all: { limit: 9, window: 1s }, per-event: { limit: 1, window: 1s, key: [\"param:eventId\"] } } }\nupstreams: { u: { targets: [\"u:1\"] } }\nroutes:\n";
    let config = file(&format!("{head}  - {{ name: a, match: {{ path: /e/:eventId }}, upstream: u, public: true, rate_limits: [per-event] }}\n  - {{ name: b, match: {{ path: /b }}, upstream: u, public: true, default_rate_limits: false }}\n"));
    assert_eq!(
        config.routes[0].rate_limits,
        [
            RouteLimit {
                policy: 0,
                params: vec![]
            },
            RouteLimit {
                policy: 1,
                params: vec![0]
            }
        ]
    );
    assert!(config.routes[1].rate_limits.is_empty());
    assert_file_errors(&[(
        &format!("{head}  - {{ name: a, match: {{ path: /a }}, upstream: u, public: true, rate_limits: [all, per-event, alll] }}\n"),
        &[
            "routes[0].rate_limits[0]: policy \"all\" already applies to this route",
            "routes[0].rate_limits[1]: policy \"per-event\" keys on :eventId, which this route's path does not have",
            "routes[0].rate_limits[2]: unknown rate-limit policy \"alll\" (did you mean \"all\"?)",
        ],
    )]);
}
