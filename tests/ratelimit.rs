//! Rate limiting through the real gateway, with a real `redis-server` on a loopback port:
//! exact counts, one limit shared by several Usher processes, tiers, blocking across
//! replicas, keys that resist evasion, the RateLimit fields, and what happens when Redis is
//! killed or frozen mid-load (no 500s, bounded latency, fallback, recovery).

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "0123456789abcdef0123456789abcdef-ratelimit";

fn token(sub: &str, tier: Option<&str>) -> String {
    let now = unix_now();
    let mut claims = json!({"sub": sub, "tenant_id": "t1", "roles": [], "type": "access",
        "iss": "i", "aud": "a", "iat": now, "exp": now + 600,
        "jti": format!("{sub}-{}", rand_suffix())});
    if let Some(tier) = tier {
        claims["tier"] = json!(tier);
    }
    hs256_jwt(SECRET, &claims)
}

fn rand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A gateway with a JWT verifier, one echo upstream `svc`, and `rate_limiting` / `routes`
/// as given.
struct Setup {
    upstream: EchoServer,
    secret: tempfile::TempDir,
    /// The upstream's `max_in_flight`.
    bulkhead: u32,
}

impl Setup {
    async fn new() -> Setup {
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("jwt"), SECRET).unwrap();
        Setup {
            upstream: EchoServer::start("svc").await.unwrap(),
            secret,
            bulkhead: 1000,
        }
    }

    fn body(&self, rate_limiting: &str, routes: &str) -> String {
        format!(
            r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }}, max_in_flight: {} }}
rate_limiting:
{rate_limiting}
routes:
{routes}
"#,
            self.secret.path().join("jwt").display(),
            self.upstream.addr,
            self.bulkhead,
        )
    }

    async fn gateway(&self, rate_limiting: &str, routes: &str) -> Gateway {
        Gateway::start(&self.body(rate_limiting, routes)).await
    }
}

async fn call(gateway: &Gateway, path: &str, headers: &[(&str, &str)]) -> Response {
    request(gateway.public, "GET", path, headers, None)
        .await
        .expect("the gateway answers")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread")]
async fn local_store_admits_exactly_the_limit_with_consistent_headers() {
    let setup = Setup::new().await;
    let gateway = setup
        .gateway(
            "  default_policies: [per-client]\n  policies:\n    per-client: { limit: 5, window: 60s, key: [client] }",
            "  - { name: open, match: { path: /open }, upstream: svc, public: true }",
        )
        .await;
    let mut previous_t = u64::MAX;
    for expected_remaining in (0..5).rev() {
        let response = call(&gateway, "/open", &[]).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("ratelimit-policy"),
            Some("\"per-client\";q=5;w=60")
        );
        let state = response.header("ratelimit").unwrap().to_string();
        let (r, t) = parse_state(&state);
        assert_eq!(r, expected_remaining, "{state}");
        assert!(t <= 60 && t <= previous_t, "t counts down: {state}");
        previous_t = t;
    }
    let refused = call(&gateway, "/open", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.error_code(), "rate_limited");
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((58..=60).contains(&retry), "Retry-After {retry}");
    let (r, t) = parse_state(refused.header("ratelimit").unwrap());
    assert_eq!((r, t), (0, retry));
    assert_eq!(
        setup.upstream.hits(),
        5,
        "refused requests never reach the upstream"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "usher_ratelimit_decisions_total{policy=\"per-client\",result=\"limited\",store=\"local\"}"
        ),
        Some(1.0)
    );
}

/// The sum of every series of `name`.
fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `"name";r=R;t=T` → (R, T) for the first policy.
fn parse_state(value: &str) -> (u64, u64) {
    let first = value.split(',').next().unwrap();
    let field = |name: &str| {
        first
            .split(';')
            .find_map(|p| p.trim().strip_prefix(name))
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("r="), field("t="))
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_counts_exactly_at_the_window_edge_in_one_round_trip_each() {
    let redis = RedisServer::start().await;
    let setup = Setup::new().await;
    let gateway = setup
        .gateway(
            &format!("  redis: {}\n  policies:\n    burst: {{ limit: 3, window: 2s, key: [client] }}", redis.settings("")),
            "  - { name: open, match: { path: /open }, upstream: svc, public: true, rate_limits: [burst] }",
        )
        .await;
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(call(&gateway, "/open", &[]).await.status, 200);
    }
    let refused = call(&gateway, "/open", &[]).await;
    assert_eq!(refused.status, 429);
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait));
    assert_eq!(
        redis.command_calls("evalsha"),
        4,
        "one EVALSHA per decision, nothing else: {}",
        gateway.stderr()
    );
    assert_eq!(redis.command_calls("eval"), 1, "the script was loaded once");
    // The keys expire by themselves.
    let keys = redis.cli(&["KEYS", "usher:rl:*"]);
    let log_key = keys
        .lines()
        .find(|k| !k.ends_with(":r"))
        .unwrap()
        .to_string();
    let ttl: i64 = redis.cli(&["PTTL", &log_key]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 2000, "PTTL {ttl}");
    // Once the first request leaves the window, exactly one more passes at a time.
    tokio::time::sleep(
        Duration::from_secs(2).saturating_sub(started.elapsed()) + Duration::from_millis(150),
    )
    .await;
    let statuses = [
        call(&gateway, "/open", &[]).await.status,
        call(&gateway, "/open", &[]).await.status,
        call(&gateway, "/open", &[]).await.status,
        call(&gateway, "/open", &[]).await.status,
    ];
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(setup.upstream.hits(), 6);
}

/// The `RateLimit` item of `policy`: (r, t).
fn item(value: &str, policy: &str) -> (u64, u64) {
    let item = value
        .split(", ")
        .find(|item| item.starts_with(&format!("\"{policy}\"")))
        .unwrap_or_else(|| panic!("no {policy} in {value}"));
    parse_state(item)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_by_one_policy_does_not_use_up_the_others() {
    let redis = RedisServer::start().await;
    let setup = Setup::new().await;
    let policies = "  policies:\n    tight: { limit: 1, window: 1h, key: [client] }\n    wide: { limit: 3, window: 1h, key: [client] }";
    let routes = "  - { name: open, match: { path: /open }, upstream: svc, public: true, rate_limits: [tight, wide] }";
    let local = setup.gateway(policies, routes).await;
    let shared = setup
        .gateway(
            &format!("  redis: {}\n{policies}", redis.settings(", timeout: 1s")),
            routes,
        )
        .await;
    for gateway in [&local, &shared] {
        let first = call(gateway, "/open", &[]).await;
        assert_eq!(first.status, 200);
        assert_eq!(item(first.header("ratelimit").unwrap(), "wide").0, 2);
        for _ in 0..5 {
            let refused = call(gateway, "/open", &[]).await;
            assert_eq!(refused.status, 429);
            let state = refused.header("ratelimit").unwrap();
            assert_eq!(
                item(state, "wide").0,
                2,
                "wide gave its entry back: {state}"
            );
        }
    }
    assert_eq!(
        redis.cli(&["ZCARD", "usher:rl:{wide|c=127.0.0.1}"]).trim(),
        "1",
        "Redis holds only the admitted request"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_gateways_sharing_redis_enforce_one_limit() {
    let redis = RedisServer::start().await;
    let setup = Setup::new().await;
    let rate_limiting = format!(
        "  redis: {}\n  default_policies: [shared]\n  policies:\n    shared: {{ limit: 30, window: 60s }}",
        // A generous deadline: on this shared machine a 50 ms deadline can pass under the
        // burst, and a decision that times out falls back to the local store (the documented
        // tolerance). Here every decision must be Redis's.
        redis.settings(", timeout: 1s")
    );
    let routes = "  - { name: api, match: { path: /api }, upstream: svc }";
    let gateways = [
        setup.gateway(&rate_limiting, routes).await,
        setup.gateway(&rate_limiting, routes).await,
        setup.gateway(&rate_limiting, routes).await,
    ];
    let user = token("shared-user", None);
    let auth = bearer(&user);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..90 {
        let addr = gateways[i % 3].public;
        let auth = auth.clone();
        tasks.spawn(async move {
            request(addr, "GET", "/api", &[("authorization", &auth)], None)
                .await
                .unwrap()
                .status
        });
    }
    let mut admitted = 0;
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            200 => admitted += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(admitted, 30, "exactly the limit across three replicas");
    assert_eq!(setup.upstream.hits(), 30);
    for gateway in &gateways {
        let metrics = gateway.metrics().await;
        assert_eq!(
            metric_sum(&metrics, "usher_ratelimit_store_errors_total"),
            0.0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_multiply_limits_and_blocks_hold_on_every_replica() {
    let redis = RedisServer::start().await;
    let setup = Setup::new().await;
    let rate_limiting = format!(
        r#"  redis: {}
  tiers:
    default: standard
    levels:
      - {{ name: premium, multiplier: 3 }}
      - {{ name: standard, multiplier: 1 }}
  policies:
    purchase: {{ limit: 2, window: 60s, key: [user, "param:eventId"], block: {{ after: 2, duration: 30s }}, bot_after: 3 }}"#,
        redis.settings("")
    );
    let routes = "  - { name: buy, match: { path: /events/:eventId/purchase }, upstream: svc, rate_limits: [purchase] }";
    let a = setup.gateway(&rate_limiting, routes).await;
    let b = setup.gateway(&rate_limiting, routes).await;

    // Premium: three times the limit.
    let premium = bearer(&token("vip", Some("premium")));
    let statuses = statuses_of(&a, "/events/e1/purchase", &premium, 7).await;
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 6);
    // An unknown tier gets the default.
    let unknown = bearer(&token("someone", Some("platinum")));
    let statuses = statuses_of(&a, "/events/e1/purchase", &unknown, 3).await;
    assert_eq!(statuses, [200, 200, 429]);

    // Standard: 2 admitted, 2 refused (the second starts a block), then blocked on B too.
    let standard = bearer(&token("fan", None));
    assert_eq!(
        statuses_of(&a, "/events/e9/purchase", &standard, 4).await,
        [200, 200, 429, 429]
    );
    let blocked = call(&b, "/events/e9/purchase", &[("authorization", &standard)]).await;
    assert_eq!(blocked.status, 429);
    let retry: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (25..=30).contains(&retry),
        "blocked for the block's duration: {retry}"
    );
    // A different event is a different bucket.
    let other = call(&b, "/events/e10/purchase", &[("authorization", &standard)]).await;
    assert_eq!(other.status, 200);

    let metrics = a.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "usher_ratelimit_blocks_total{policy=\"purchase\"}"
        ),
        Some(1.0)
    );
    let metrics_b = b.metrics().await;
    assert_eq!(
        metric_value(
            &metrics_b,
            "usher_ratelimit_decisions_total{policy=\"purchase\",result=\"blocked\",store=\"redis\"}"
        ),
        Some(1.0)
    );
    // The third refusal within the window (on B) is the fourth overall: a bot signal.
    let _ = call(&b, "/events/e9/purchase", &[("authorization", &standard)]).await;
    let metrics_b = b.metrics().await;
    assert_eq!(
        metric_value(
            &metrics_b,
            "usher_ratelimit_bot_signals_total{policy=\"purchase\"}"
        ),
        Some(1.0)
    );
    assert!(b.stderr().contains("rate_limit_bot_suspected"));
}

async fn statuses_of(gateway: &Gateway, path: &str, auth: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(call(gateway, path, &[("authorization", auth)]).await.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_resist_case_slashes_query_noise_forwarded_for_and_new_tokens() {
    let setup = Setup::new().await;
    let gateway = setup
        .gateway(
            "  policies:\n    purchase: { limit: 4, window: 60s, key: [user, \"param:eventId\"] }\n    search: { limit: 2, window: 60s, key: [client, \"query:q\"] }",
            "  - { name: buy, match: { path: /events/:eventId/purchase }, upstream: svc, rate_limits: [purchase] }\n  - { name: find, match: { path: /search }, upstream: svc, public: true, rate_limits: [search] }",
        )
        .await;
    let tricks = [
        ("/events/EVT-1/purchase", token("alice", None), "1.1.1.1"),
        ("/events/evt-1/purchase/", token("alice", None), "2.2.2.2"),
        (
            "/events/evt-1/purchase?x=1&utm=2",
            token("alice", None),
            "3.3.3.3",
        ),
        ("/events//evt-1/./purchase", token("alice", None), "4.4.4.4"),
    ];
    for (path, token, forwarded) in &tricks {
        let response = call(
            &gateway,
            path,
            &[
                ("authorization", &bearer(token)),
                ("x-forwarded-for", forwarded),
            ],
        )
        .await;
        assert_eq!(response.status, 200, "{path}");
    }
    let fifth = call(
        &gateway,
        "/events/Evt-1/purchase",
        &[("authorization", &bearer(&token("alice", None)))],
    )
    .await;
    assert_eq!(fifth.status, 429, "every trick counted against one bucket");
    // Anonymous search: keyed by client address (not X-Forwarded-For) and the q parameter.
    for (query, forwarded) in [("?q=Rock", "9.9.9.1"), ("?page=2&q=rock%20", "9.9.9.2")] {
        let response = call(
            &gateway,
            &format!("/search{query}"),
            &[("x-forwarded-for", forwarded)],
        )
        .await;
        assert_eq!(response.status, 200);
    }
    assert_eq!(call(&gateway, "/search?q=ROCK&z=1", &[]).await.status, 429);
    assert_eq!(call(&gateway, "/search?q=jazz", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_redis_falls_back_without_5xx_and_recovers() {
    let mut redis = RedisServer::start().await;
    let setup = Setup::new().await;
    let gateway = setup
        .gateway(
            &format!(
                "  redis: {}\n  default_policies: [global]\n  policies:\n    global: {{ limit: 1000, window: 60s, key: [client] }}\n    money: {{ limit: 1000, window: 60s, key: [client], on_store_failure: closed }}",
                redis.settings(", fallback_share: 0.5, readiness: required")
            ),
            "  - { name: open, match: { path: /open }, upstream: svc, public: true }\n  - { name: pay, match: { path: /pay }, upstream: svc, public: true, rate_limits: [money] }",
        )
        .await;
    assert_eq!(call(&gateway, "/open", &[]).await.status, 200);
    assert_eq!(
        get(gateway.admin, "/health/ready").await.unwrap().status,
        200
    );

    redis.kill();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(call(&gateway, "/open", &[]).await.status);
    }
    assert!(
        statuses.iter().all(|&s| s == 200),
        "no errors while Redis is gone: {statuses:?}"
    );
    let policy = call(&gateway, "/open", &[]).await;
    assert_eq!(
        policy.header("ratelimit-policy"),
        Some("\"global\";q=500;w=60"),
        "the local store enforces this replica's share"
    );
    let closed = call(&gateway, "/pay", &[]).await;
    assert_eq!(
        closed.status,
        503,
        "a fail-closed policy refuses: {:?} {}",
        closed.headers,
        gateway.stderr()
    );
    assert_eq!(closed.error_code(), "rate_limit_unavailable");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, "usher_ratelimit_fallback_active"),
        Some(1.0)
    );
    assert!(metric_sum(&metrics, "usher_ratelimit_store_errors_total") >= 3.0);
    let ready = get(gateway.admin, "/health/ready").await.unwrap();
    assert_eq!(ready.status, 503);
    let health = get(gateway.admin, "/health").await.unwrap().json();
    assert_eq!(health["rate_limiting"]["fallback_active"], true);
    assert_eq!(
        gateway.stderr().matches("is not answering").count(),
        1,
        "logged once per transition"
    );

    redis.restart().await;
    // An idle replica sees it by itself: no request is sent until the fallback has ended.
    let noticed = eventually(Duration::from_secs(15), || async {
        metric_value(&gateway.metrics().await, "usher_ratelimit_fallback_active") == Some(0.0)
    })
    .await;
    assert!(
        noticed,
        "the background probe ends the fallback: {}",
        gateway.stderr()
    );
    let recovered = eventually(Duration::from_secs(15), || async {
        call(&gateway, "/pay", &[]).await.status == 200
    })
    .await;
    assert!(recovered, "shared limiting resumes by itself");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, "usher_ratelimit_fallback_active"),
        Some(0.0)
    );
    assert!(gateway.stderr().contains("answers again"));
    assert_eq!(
        get(gateway.admin, "/health/ready").await.unwrap().status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn frozen_redis_costs_at_most_the_deadline_and_recovers() {
    let redis = RedisServer::start().await;
    let setup = Setup::new().await;
    let gateway = setup
        .gateway(
            &format!(
                "  redis: {}\n  default_policies: [global]\n  policies:\n    global: {{ limit: 1000, window: 60s, key: [client] }}",
                redis.settings(", timeout: 50ms, failure_threshold: 3, retry_interval: 500ms, readiness: reported")
            ),
            "  - { name: open, match: { path: /open }, upstream: svc, public: true }",
        )
        .await;
    assert_eq!(call(&gateway, "/open", &[]).await.status, 200);
    redis.signal("STOP");
    // Concurrent load while frozen: every request answered, none waits much past the deadline.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let addr = gateway.public;
        tasks.spawn(async move {
            let started = Instant::now();
            let status = get(addr, "/open").await.unwrap().status;
            (status, started.elapsed())
        });
    }
    let mut slowest = Duration::ZERO;
    while let Some(result) = tasks.join_next().await {
        let (status, elapsed) = result.unwrap();
        assert_eq!(status, 200);
        slowest = slowest.max(elapsed);
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest request {slowest:?}"
    );
    let metrics = gateway.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "usher_ratelimit_store_errors_total{kind=\"timeout\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        metric_value(&metrics, "usher_ratelimit_fallback_active"),
        Some(1.0)
    );
    assert_eq!(
        get(gateway.admin, "/health/ready").await.unwrap().status,
        200,
        "readiness: reported"
    );

    redis.signal("CONT");
    let recovered = eventually(Duration::from_secs(10), || async {
        call(&gateway, "/open", &[]).await;
        metric_value(&gateway.metrics().await, "usher_ratelimit_fallback_active") == Some(0.0)
    })
    .await;
    assert!(recovered);
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_sheds_lower_tiers_first() {
    let setup = Setup {
        bulkhead: 4,
        ..Setup::new().await
    };
    let gateway = setup
        .gateway(
            r#"  tiers:
    default: standard
    levels:
      - { name: premium, multiplier: 1 }
      - { name: standard, multiplier: 1, shed_at: 0.75 }
      - { name: free, multiplier: 1, shed_at: 0.5 }
  shedding: { max_in_flight: 1000, retry_after: 2s }"#,
            "  - { name: slow, match: { path: /slow }, upstream: svc, public: true }\n  - { name: api, match: { path: /api }, upstream: svc }",
        )
        .await;
    setup.upstream.set_delay(Duration::from_millis(1500));
    // Two slow requests fill half of the upstream's bulkhead (max_in_flight: 4).
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let addr = gateway.public;
            tokio::spawn(async move { get(addr, "/slow").await.unwrap().status })
        })
        .collect();
    let filled = eventually(Duration::from_secs(5), || async {
        metric_value(&gateway.metrics().await, "usher_http_requests_in_flight") == Some(2.0)
    })
    .await;
    assert!(filled);
    // Anonymous callers are the lowest tier (free): shed at load 0.5.
    let shed = call(&gateway, "/slow", &[]).await;
    assert_eq!(shed.status, 503);
    assert_eq!(shed.error_code(), "overloaded");
    assert_eq!(shed.header("retry-after"), Some("2"));
    let standard = bearer(&token("s", None));
    setup.upstream.set_delay(Duration::ZERO);
    assert_eq!(
        call(&gateway, "/api", &[("authorization", &standard)])
            .await
            .status,
        200
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, "usher_shed_requests_total{tier=\"free\"}"),
        Some(1.0)
    );
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
}

/// Dropping a policy's `block` ends the blocks it began: the script looks for one only
/// when the policy has a block (and so does the in-process store, `window.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_without_a_block_ignores_one_begun_under_another() {
    let redis = RedisServer::start().await;
    let setup = Setup::new().await;
    let policy = |rest: &str| {
        format!(
            "  redis: {}\n  policies:\n    purchase: {{ window: 60s, key: [user], {rest} }}",
            redis.settings("")
        )
    };
    let routes =
        "  - { name: buy, match: { path: /purchase }, upstream: svc, rate_limits: [purchase] }";
    let blocking = setup
        .gateway(
            &policy("limit: 1, block: { after: 1, duration: 30s }"),
            routes,
        )
        .await;
    let unblocked = setup.gateway(&policy("limit: 3"), routes).await;
    let fan = bearer(&token("fan", None));
    assert_eq!(
        statuses_of(&blocking, "/purchase", &fan, 3).await,
        [200, 429, 429],
        "the first refusal starts the block"
    );
    let again = call(&blocking, "/purchase", &[("authorization", &fan)]).await;
    let retry: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((25..=30).contains(&retry), "still blocked: {retry}");
    // The same bucket under a policy without a block: one admitted request is logged, so
    // two places of three are left.
    assert_eq!(
        statuses_of(&unblocked, "/purchase", &fan, 3).await,
        [200, 200, 429]
    );
}
