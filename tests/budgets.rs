//! Budgets (rate-limit policies with an amount) through the real gateway, on a real
//! redis-server shared by two replicas: amounts add up exactly across both, the window
//! frees them, a request over the cap or without its amount is 422, a request the upstream
//! refuses or never got gives its amount back, and with Redis gone budgets fail closed.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const SECRET: &str = "0123456789abcdef0123456789abcdef-budgets";

fn token(subject: &str, tenant: &str) -> String {
    let now = unix_now();
    hs256_jwt(
        SECRET,
        &json!({"sub": subject, "tenant_id": tenant, "roles": ["admin"], "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600}),
    )
}

async fn replica(upstream: &EchoServer, dir: &tempfile::TempDir, redis: &str) -> Gateway {
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let dead = free_port();
    Gateway::start_h2c(&format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
rate_limiting:
  {redis}
  policies:
    tickets: {{ limit: 10, window: 3s, key: [tenant], tiered: false, amount: {{ length_of: /ticketIds, max_per_request: 6 }} }}
    quantity: {{ limit: 1000, window: 1h, key: [tenant, user], tiered: false, amount: {{ number_at: /quantity }} }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
  gone: {{ targets: ["127.0.0.1:{dead}"], retries: 0, health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 100 }} }}
routes:
  - {{ name: mint, match: {{ path: /mint }}, upstream: svc, max_body: 16KiB, rate_limits: [tickets] }}
  - {{ name: gone, match: {{ path: /gone }}, upstream: gone, max_body: 16KiB, rate_limits: [tickets] }}
  - {{ name: buy, match: {{ path: /buy }}, upstream: svc, max_body: 16KiB, rate_limits: [quantity] }}
"#,
        secret.display(),
        upstream.addr
    ))
    .await
}

async fn post(gateway: &Gateway, path: &str, tenant: &str, body: serde_json::Value) -> Response {
    let bearer = format!("Bearer {}", token("admin-1", tenant));
    let body = body.to_string();
    request(
        gateway.public,
        "POST",
        path,
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ],
        Some(body.as_bytes()),
    )
    .await
    .unwrap()
}

fn tickets(n: usize) -> serde_json::Value {
    json!({ "ticketIds": (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>() })
}

/// The `RateLimit` field's remaining amount for the `tickets` policy.
fn remaining(response: &Response) -> Option<u64> {
    let field = response.header("ratelimit")?;
    let item = field
        .split(',')
        .find(|item| item.trim().starts_with("\"tickets\""))?;
    item.split(';')
        .find_map(|param| param.trim().strip_prefix("r="))
        .and_then(|r| r.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_count_amounts_exactly_across_replicas() {
    let mut redis = RedisServer::start().await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("redis: {}", redis.settings(", timeout: 1s"));
    let one = replica(&upstream, &dir, &settings).await;
    let two = replica(&upstream, &dir, &settings).await;

    // 4 on one replica and 6 on the other fill the tenant's 10; one more is refused on
    // both, and another tenant has its own budget.
    let first = post(&one, "/mint", "t1", tickets(4)).await;
    assert_eq!(first.status, 200, "{}", first.error_code());
    let started = Instant::now();
    assert_eq!(
        remaining(&first),
        Some(6),
        "{:?}",
        first.header("ratelimit")
    );
    // Later, so the window's edge below sees one amount leave and not the other.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = post(&two, "/mint", "t1", tickets(6)).await;
    assert_eq!((second.status, remaining(&second)), (200, Some(0)));
    for gateway in [&one, &two] {
        let over = post(gateway, "/mint", "t1", tickets(1)).await;
        assert_eq!(
            (over.status, over.error_code().as_str()),
            (429, "budget_exhausted")
        );
        assert_eq!(remaining(&over), Some(0));
        let wait: u64 = over.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=3).contains(&wait), "Retry-After {wait}");
    }
    assert_eq!(post(&two, "/mint", "t2", tickets(6)).await.status, 200);
    assert_eq!(upstream.hits(), 3);

    // Over the cap, or without the amount: 422, nothing spent, the upstream never asked.
    let capped = post(&one, "/mint", "t3", tickets(7)).await;
    assert_eq!(
        (capped.status, capped.error_code().as_str()),
        (422, "amount_over_cap")
    );
    let missing = post(&one, "/mint", "t3", json!({ "ticketIds": "t1" })).await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (422, "invalid_amount")
    );
    let quantity = post(&one, "/buy", "t3", json!({ "quantity": -2 })).await;
    assert_eq!(quantity.error_code(), "invalid_amount");
    // More than the whole limit could never be granted: over the cap, not 429.
    let huge = post(&one, "/buy", "t3", json!({ "quantity": u64::MAX })).await;
    assert_eq!(
        (huge.status, huge.error_code().as_str()),
        (422, "amount_over_cap")
    );
    assert_eq!(
        post(&one, "/buy", "t3", json!({ "quantity": 999 }))
            .await
            .status,
        200
    );
    assert_eq!(
        post(&two, "/buy", "t3", json!({ "quantity": 2 }))
            .await
            .status,
        429
    );
    assert_eq!(
        post(&two, "/buy", "t3", json!({ "quantity": 1 }))
            .await
            .status,
        200
    );
    assert_eq!(post(&one, "/mint", "t3", tickets(6)).await.status, 200);
    assert_eq!(upstream.hits(), 6);

    // At the window's edge: the first 4 leave 3 s after they were spent, not before, and
    // the 6 spent a second later stay.
    let edge = Duration::from_secs(3);
    tokio::time::sleep_until((started + edge - Duration::from_millis(600)).into()).await;
    assert_eq!(post(&one, "/mint", "t1", tickets(4)).await.status, 429);
    tokio::time::sleep_until((started + edge + Duration::from_millis(300)).into()).await;
    let freed = post(&one, "/mint", "t1", tickets(4)).await;
    assert_eq!((freed.status, remaining(&freed)), (200, Some(0)));

    // A definite refusal by the service gives the amount back; a 5xx does not.
    upstream.set_status(409);
    assert_eq!(post(&one, "/mint", "t4", tickets(6)).await.status, 409);
    upstream.set_status(500);
    assert_eq!(post(&one, "/mint", "t4", tickets(6)).await.status, 500);
    upstream.set_status(200);
    assert_eq!(post(&two, "/mint", "t4", tickets(5)).await.status, 429);
    assert_eq!(post(&two, "/mint", "t4", tickets(4)).await.status, 200);
    // Never sent (the upstream refuses connections): given back too.
    let refused = post(&one, "/gone", "t5", tickets(6)).await;
    assert!(matches!(refused.status, 502 | 503), "{}", refused.status);
    let after = post(&one, "/mint", "t5", tickets(6)).await;
    assert_eq!(after.status, 200, "{}", after.error_code());

    // Replica one gave back the 6 the service refused (409) and the 6 never sent.
    let metrics = one.metrics().await;
    let series = |outcome: &str| {
        metric_value(
            &metrics,
            &format!(r#"usher_budget_amount_total{{outcome="{outcome}",policy="tickets"}}"#),
        )
    };
    assert_eq!(series("refunded"), Some(12.0), "{metrics}");
    // t1: 4 and 4; t3: 6; t4: 6 (refused by the service) and 6 (its 500); t5: 6 and 6.
    assert_eq!(series("spent"), Some(38.0));

    // Redis gone: budgets fail closed, never 500, and the upstream sees nothing.
    let hits = upstream.hits();
    redis.kill();
    let down = post(&one, "/mint", "t6", tickets(1)).await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "rate_limit_unavailable")
    );
    assert_eq!(upstream.hits(), hits);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_one_replica_counts_in_process() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = replica(&upstream, &dir, "").await;
    assert_eq!(post(&gateway, "/mint", "t1", tickets(6)).await.status, 200);
    assert_eq!(post(&gateway, "/mint", "t1", tickets(4)).await.status, 200);
    let over = post(&gateway, "/mint", "t1", tickets(1)).await;
    assert_eq!((over.status, remaining(&over)), (429, Some(0)));
    // A request that did not happen gives its amount back in process too.
    upstream.set_status(422);
    assert_eq!(post(&gateway, "/mint", "t2", tickets(6)).await.status, 422);
    upstream.set_status(200);
    assert_eq!(post(&gateway, "/mint", "t2", tickets(6)).await.status, 200);
}
