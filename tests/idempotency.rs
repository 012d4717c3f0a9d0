//! Idempotency-Key through the real gateway (in-process records): one execution per key and
//! caller, the first answer replayed without the upstream, 422 for a reused key, 409 while
//! in flight, and a key given back when the upstream was never reached.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef-idempotency";

fn token(subject: &str) -> String {
    let now = unix_now();
    hs256_jwt(
        SECRET,
        &json!({"sub": subject, "tenant_id": "t1", "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600}),
    )
}

async fn gateway(upstream: &EchoServer, dir: &tempfile::TempDir) -> Gateway {
    gateway_with(upstream, dir, "").await
}

/// `extra` goes into the file as is (a `rate_limiting` section, say).
async fn gateway_with(upstream: &EchoServer, dir: &tempfile::TempDir, extra: &str) -> Gateway {
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let dead = free_port();
    Gateway::start_h2c(&format!(
        r#"
{extra}
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
  gone: {{ targets: ["127.0.0.1:{dead}"], retries: 0, health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 100 }} }}
routes:
  - {{ name: buy, match: {{ path: /buy }}, upstream: svc, max_body: 16KiB, idempotency: {{}} }}
  - {{ name: gone, match: {{ path: /gone }}, upstream: gone, max_body: 16KiB, idempotency: {{}} }}
  - {{ name: slow, match: {{ path: /slow }}, upstream: svc, max_body: 16KiB, timeout: 1s, idempotency: {{}} }}
  - {{ name: open, match: {{ path: /open }}, upstream: svc, max_body: 16KiB, idempotency: {{ on_store_failure: open }} }}
"#,
        secret.display(),
        upstream.addr
    ))
    .await
}

async fn post(gateway: &Gateway, path: &str, who: &str, key: Option<&str>, body: &str) -> Response {
    let bearer = format!("Bearer {}", token(who));
    let quoted = key.map(|k| format!("\"{k}\""));
    let mut headers = vec![
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(quoted) = &quoted {
        headers.push(("idempotency-key", quoted));
    }
    request(
        gateway.public,
        "POST",
        path,
        &headers,
        Some(body.as_bytes()),
    )
    .await
    .unwrap()
}

/// `post` until it is no longer 409: an answer is recorded once it was delivered, so a
/// retry sent in that instant is told the first request is still in flight.
async fn post_settled(gateway: &Gateway, path: &str, who: &str, key: &str, body: &str) -> Response {
    let mut response = post(gateway, path, who, Some(key), body).await;
    for _ in 0..40 {
        if response.status != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        response = post(gateway, path, who, Some(key), body).await;
    }
    response
}

/// Ten requests with `key` at once, spread over `gateways`: each one's status and
/// Retry-After.
async fn ten_at_once(
    gateways: &[std::sync::Arc<Gateway>],
    key: &'static str,
    body: &'static str,
) -> Vec<(u16, Option<String>)> {
    let calls: Vec<_> = (0..10)
        .map(|n| {
            let gateway = std::sync::Arc::clone(&gateways[n % gateways.len()]);
            tokio::spawn(async move {
                let response = post(&gateway, "/buy", "u1", Some(key), body).await;
                (
                    response.status,
                    response.header("retry-after").map(str::to_string),
                )
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn one_execution_per_key_and_caller() {
    let upstream = EchoServer::start("svc").await.unwrap();
    upstream.add_response_header("location", "/orders/1");
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&upstream, &dir).await;

    let missing = post(&gateway, "/buy", "u1", None, "{}").await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (400, "idempotency_key_missing")
    );
    let invalid = request(
        gateway.public,
        "POST",
        "/buy",
        &[
            ("authorization", &format!("Bearer {}", token("u1"))),
            ("idempotency-key", "unquoted"),
        ],
        Some(b"{}"),
    )
    .await
    .unwrap();
    assert_eq!(invalid.error_code(), "idempotency_key_invalid");
    assert_eq!(upstream.hits(), 0);

    let first = post(&gateway, "/buy", "u1", Some("order-1"), "{\"n\":1}").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(
        first.json()["headers"]["idempotency-key"][0],
        "\"order-1\"",
        "the service gets the key too"
    );
    let again = post_settled(&gateway, "/buy", "u1", "order-1", "{\"n\":1}").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the first answer, byte for byte");
    assert_eq!(again.header("location"), Some("/orders/1"));
    assert_ne!(again.header("x-request-id"), first.header("x-request-id"));
    assert_eq!(upstream.hits(), 1, "the replay did not reach the upstream");

    // The query is part of the request, too.
    let other_query = post(&gateway, "/buy?qty=100", "u1", Some("order-1"), "{\"n\":1}").await;
    assert_eq!(other_query.error_code(), "idempotency_key_reused");
    let reused = post(&gateway, "/buy", "u1", Some("order-1"), "{\"n\":2}").await;
    assert_eq!(
        (reused.status, reused.error_code().as_str()),
        (422, "idempotency_key_reused")
    );

    // Another caller's key of the same name is another key.
    let other = post(&gateway, "/buy", "u2", Some("order-1"), "{\"n\":1}").await;
    assert_eq!(
        (other.status, other.header("idempotent-replayed")),
        (200, None)
    );
    assert_eq!(upstream.hits(), 2);

    // Error answers are answers: stored and replayed too.
    upstream.set_status(500);
    let failed = post(&gateway, "/buy", "u1", Some("order-2"), "{}").await;
    assert_eq!(failed.status, 500);
    upstream.set_status(200);
    let replayed = post_settled(&gateway, "/buy", "u1", "order-2", "{}").await;
    assert_eq!(
        (replayed.status, replayed.header("idempotent-replayed")),
        (500, Some("true"))
    );
    assert_eq!(upstream.hits(), 3);

    let metrics = gateway.metrics().await;
    for (outcome, count) in [
        ("reserved", 3.0),
        ("replayed", 2.0),
        ("key_reused", 2.0),
        ("key_missing", 1.0),
    ] {
        let series = format!(r#"usher_idempotency_total{{outcome="{outcome}",route="buy"}}"#);
        assert_eq!(
            metric_value(&metrics, &series),
            Some(count),
            "{series}\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_with_one_key_run_once() {
    let upstream = EchoServer::start("svc").await.unwrap();
    upstream.set_delay(Duration::from_millis(600));
    let dir = tempfile::tempdir().unwrap();
    let gateway = std::sync::Arc::new(gateway(&upstream, &dir).await);
    let statuses = ten_at_once(&[std::sync::Arc::clone(&gateway)], "same", "{\"seat\":7}").await;
    assert_eq!(
        upstream.hits(),
        1,
        "ten requests, one execution: {statuses:?}"
    );
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let busy: Vec<_> = statuses.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(ok + busy.len(), 10, "{statuses:?}");
    assert!(
        busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")),
        "{statuses:?}"
    );
    // Once done, the key answers with the stored response.
    let after = post_settled(&gateway, "/buy", "u1", "same", "{\"seat\":7}").await;
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_upstream_never_saw_is_given_back() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&upstream, &dir).await;
    let first = post(&gateway, "/gone", "u1", Some("k"), "{}").await;
    assert!(matches!(first.status, 502 | 503), "{}", first.status);
    // Not 409 once the first is done: nothing was sent, so the same key may go again (to
    // the same failure: the refusing peer is ejected by now, 503).
    let second = post_settled(&gateway, "/gone", "u1", "k", "{}").await;
    assert!(
        matches!(second.status, 502 | 503),
        "{}",
        second.error_code()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_sharing_redis_share_the_records() {
    let mut redis = RedisServer::start().await;
    let upstream = EchoServer::start("svc").await.unwrap();
    upstream.set_delay(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let extra = redis.section(", timeout: 1s");
    let one = std::sync::Arc::new(gateway_with(&upstream, &dir, &extra).await);
    let two = std::sync::Arc::new(gateway_with(&upstream, &dir, &extra).await);

    // The second replica replays what the first stored.
    let first = post(&one, "/buy", "u1", Some("shared-1"), "{\"n\":1}").await;
    assert_eq!(first.status, 200);
    let elsewhere = post_settled(&two, "/buy", "u1", "shared-1", "{\"n\":1}").await;
    assert_eq!(elsewhere.header("idempotent-replayed"), Some("true"));
    assert_eq!(elsewhere.body, first.body);
    let reused = post(&two, "/buy", "u1", Some("shared-1"), "{\"n\":2}").await;
    assert_eq!(reused.status, 422);
    assert_eq!(upstream.hits(), 1);

    // Ten requests with one key, split across both replicas: one execution.
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let statuses = ten_at_once(
        &[std::sync::Arc::clone(&one), std::sync::Arc::clone(&two)],
        "shared-2",
        "{}",
    )
    .await;
    assert_eq!(
        upstream.hits(),
        2,
        "one execution for ten requests: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|(s, _)| matches!(s, 200 | 409)),
        "{statuses:?}"
    );
    // One record per key; two round trips for the executed request (reserve, complete) and
    // one for each of the nine others (a refusal or a replay).
    let keys = redis.cli(&["--scan", "--pattern", "*idem:*"]);
    assert_eq!(keys.lines().count(), 2, "{keys}");
    let round_trips = || redis.command_calls("evalsha") + redis.command_calls("eval");
    let eleven = eventually(Duration::from_secs(2), || async { round_trips() == 11 }).await;
    assert!(eleven, "{} round trips", round_trips());

    // Redis gone: these routes fail closed, never 500, and never run unrecorded.
    redis.kill();
    let down = post(&one, "/buy", "u1", Some("shared-3"), "{}").await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "idempotency_unavailable")
    );
    assert_eq!(upstream.hits(), 2);
    // A route that chose availability forwards without a record, key and all.
    let open = post(&one, "/open", "u1", Some("shared-3"), "{}").await;
    assert_eq!(open.status, 200);
    assert_eq!(
        open.json()["headers"]["idempotency-key"],
        serde_json::json!(["\"shared-3\""])
    );
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_requests_are_replayed_too() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&upstream, &dir).await;
    let port = gateway.public.port();
    let bearer = format!("authorization:Bearer {}", token("u1"));
    let call = || {
        let bearer = bearer.clone();
        async move {
            h2_client(
                port,
                &[
                    "post",
                    "/buy",
                    "100",
                    &bearer,
                    "content-type:application/json",
                    "idempotency-key:\"h2-1\"",
                ],
            )
            .await
        }
    };
    let first = call().await;
    assert_eq!(first["status"], 200, "{first}");
    let mut again = call().await;
    for _ in 0..40 {
        if again["status"] != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        again = call().await;
    }
    assert_eq!(
        (again["status"].as_u64(), again["replayed"].as_str()),
        (Some(200), Some("true")),
        "{again}"
    );
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_whose_fate_is_unknown_is_never_run_again() {
    let upstream = EchoServer::start("svc").await.unwrap();
    upstream.set_delay(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&upstream, &dir).await;
    // The upstream got the request and did not answer within the route's 1 s: 504.
    let first = post(&gateway, "/slow", "u1", Some("fate"), "{}").await;
    assert_eq!(first.status, 504);
    assert_eq!(upstream.hits(), 1);
    // Its key is held for the lease (the route's timeout plus 5 s), then answers "unknown";
    // the request is never sent again.
    let held = post(&gateway, "/slow", "u1", Some("fate"), "{}").await;
    assert_eq!(held.error_code(), "idempotency_in_flight");
    let unknown = eventually(Duration::from_secs(10), || async {
        post(&gateway, "/slow", "u1", Some("fate"), "{}")
            .await
            .error_code()
            == "idempotency_outcome_unknown"
    })
    .await;
    assert!(unknown);
    assert_eq!(upstream.hits(), 1, "never run again at the edge");
}
