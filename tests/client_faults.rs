//! What clients do wrong must not count against an upstream: requests that declare a body
//! and never send it, clients that stop reading, clients that leave. Each test drives the
//! real gateway and checks what the upstream and its breaker saw.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// One echo upstream `svc` with a strict breaker and a short read timeout, behind a public
/// catch-all route, on a public listener that also speaks HTTP/2 over cleartext.
async fn strict_breaker(upstream: &EchoServer) -> Gateway {
    let body = format!(
        r#"
upstreams:
  svc:
    targets: ["{}"]
    health_check: {{ type: tcp, interval: 10s }}
    timeouts: {{ read: 300ms }}
    circuit_breaker: {{ error_percent: 50, min_requests: 5, window: 10s, open_for: 30s }}
routes:
  - {{ name: all, match: {{ path: / }}, upstream: svc, public: true }}
"#,
        upstream.addr
    );
    Gateway::start_h2c(&body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_never_arrive_do_not_open_the_breaker() {
    let upstream = EchoServer::start("auth").await.unwrap();
    let gateway = strict_breaker(&upstream).await;
    // A declared body that never comes, and a chunked body that stops half way: the
    // upstream waits for the rest, its read timeout passes, and the client is answered 408.
    let stalled: [&[u8]; 2] = [
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ];
    for round in 0..6 {
        let response = raw_request(gateway.public, stalled[round % 2]).await;
        assert_eq!(raw_status(&response), 408, "{response}");
        assert!(response.contains("request_timeout"), "{response}");
    }
    let response = gateway.get("/login").await;
    assert_eq!(
        response.status,
        200,
        "the breaker stays closed: {}",
        String::from_utf8_lossy(&response.body)
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"usher_circuit_breaker_state{upstream="svc"}"#),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_security_events_total{reason="request_body_timeout",severity="low"}"#
        ),
        Some(6.0)
    );
    assert!(
        !metrics.contains(r#"usher_upstream_errors_total{kind="read_timeout",upstream="svc"}"#),
        "a client's stall is no upstream error: {metrics}"
    );

    // The upstream's own slowness still counts: with the one success above, four complete
    // requests that time out make five outcomes, 80 % failed, and open it.
    upstream.set_delay(Duration::from_millis(600));
    for _ in 0..4 {
        assert_eq!(gateway.get("/login").await.status, 504);
    }
    upstream.set_delay(Duration::ZERO);
    let started = Instant::now();
    let response = gateway.get("/login").await;
    assert_eq!(response.error_code(), "circuit_open");
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_streams_that_never_send_their_body_do_not_open_the_breaker() {
    let upstream = EchoServer::start("auth").await.unwrap();
    let gateway = strict_breaker(&upstream).await;
    let port = gateway.public.port();
    for _ in 0..6 {
        let seen = h2_client(port, &["stall", "/login"]).await;
        assert_eq!(seen["statuses"], serde_json::json!([408]), "{seen}");
    }
    assert_eq!(gateway.get("/login").await.status, 200);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"usher_circuit_breaker_state{upstream="svc"}"#),
        Some(0.0),
        "{metrics}"
    );
}
