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
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let dead = free_port();
    Gateway::start(&format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
  gone: {{ targets: ["127.0.0.1:{dead}"], retries: 0, health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 100 }} }}
routes:
  - {{ name: buy, match: {{ path: /buy }}, upstream: svc, max_body: 16KiB, idempotency: {{}} }}
  - {{ name: gone, match: {{ path: /gone }}, upstream: gone, max_body: 16KiB, idempotency: {{}} }}
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
    let again = post(&gateway, "/buy", "u1", Some("order-1"), "{\"n\":1}").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the first answer, byte for byte");
    assert_eq!(again.header("location"), Some("/orders/1"));
    assert_ne!(again.header("x-request-id"), first.header("x-request-id"));
    assert_eq!(upstream.hits(), 1, "the replay did not reach the upstream");

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
    let replayed = post(&gateway, "/buy", "u1", Some("order-2"), "{}").await;
    assert_eq!(
        (replayed.status, replayed.header("idempotent-replayed")),
        (500, Some("true"))
    );
    assert_eq!(upstream.hits(), 3);

    let metrics = gateway.metrics().await;
    for (outcome, count) in [
        ("reserved", 3.0),
        ("replayed", 2.0),
        ("key_reused", 1.0),
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
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let gateway = std::sync::Arc::clone(&gateway);
            tokio::spawn(async move {
                let response = post(&gateway, "/buy", "u1", Some("same"), "{\"seat\":7}").await;
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
    let after = post(&gateway, "/buy", "u1", Some("same"), "{\"seat\":7}").await;
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_upstream_never_saw_is_given_back() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&upstream, &dir).await;
    let first = post(&gateway, "/gone", "u1", Some("k"), "{}").await;
    assert!(matches!(first.status, 502 | 503), "{}", first.status);
    // Not 409: nothing was sent, so the same key may go again (to the same failure: the
    // refusing peer is ejected by now, 503).
    let second = post(&gateway, "/gone", "u1", Some("k"), "{}").await;
    assert!(
        matches!(second.status, 502 | 503),
        "{}",
        second.error_code()
    );
}
