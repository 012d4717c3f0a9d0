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
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_upstream_errors_total{kind="read_timeout",upstream="svc"}"#
        ),
        Some(0.0),
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

/// A gateway whose routes all go to `upstream` through a bulkhead of `max_in_flight`, with
/// a route deadline of one second.
async fn bulkhead_gateway(upstream: std::net::SocketAddr, max_in_flight: u32) -> Gateway {
    Gateway::start_h2c(&format!(
        r#"
upstreams:
  svc: {{ targets: ["{upstream}"], max_in_flight: {max_in_flight}, health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: all, match: {{ path: / }}, upstream: svc, public: true, timeout: 1s }}
"#
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_holds_no_slot_once_the_upstream_is_done() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = bulkhead_gateway(upstream.addr, 1).await;
    let port = gateway.public.port();
    // One stream on a connection whose receive window stays at zero: its small response is
    // complete at Usher, but cannot be delivered.
    let stuck =
        tokio::spawn(async move { h2_client(port, &["zero-window", "1", "/x", "3"]).await });
    assert!(
        eventually(Duration::from_secs(2), || async { upstream.hits() == 1 }).await,
        "the stuck stream reached the upstream"
    );
    let given_back = eventually(Duration::from_secs(2), || async {
        gateway.get("/x").await.status == 200
    })
    .await;
    assert!(given_back, "the slot was given back");
    let seen = stuck.await.unwrap();
    assert_eq!(seen["statuses"], serde_json::json!([200]), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_http2_connection_holds_at_most_its_share_of_the_bulkhead() {
    let framework = PythonServer::start("werkzeug_upstream.py");
    let gateway = bulkhead_gateway(framework.addr, 8).await;
    let port = gateway.public.port();
    // Twenty slow streams on one connection: two (a quarter of eight) reach the upstream.
    let greedy =
        tokio::spawn(async move { h2_client(port, &["zero-window", "20", "/slow", "1"]).await });
    let two_running = eventually(Duration::from_secs(2), || async {
        get(framework.addr, "/stats").await.unwrap().json()["running"] == 2
    })
    .await;
    assert!(
        two_running,
        "the connection's two streams reached the upstream"
    );
    let response = gateway.get("/slow").await;
    assert_eq!(response.status, 200, "others still get slots");
    let seen = greedy.await.unwrap();
    let statuses: Vec<u64> = seen["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 18, "{seen}");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_upstream_rejected_total{reason="connection_share",upstream="svc"}"#
        ),
        Some(18.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reader_is_cut_off_at_the_route_deadline() {
    let framework = PythonServer::start("werkzeug_upstream.py");
    let gateway = bulkhead_gateway(framework.addr, 1).await;
    // 32 MiB asked for and never read: more than the socket buffers hold, so the upstream's
    // response cannot complete while the client does not read.
    let mut reader = tokio::net::TcpStream::connect(gateway.public)
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    reader
        .write_all(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Polling with requests would race for the slot: wait until Usher has the request.
    let arrived = eventually(Duration::from_secs(2), || async {
        metric_value(&gateway.metrics().await, "usher_http_requests_in_flight") == Some(1.0)
    })
    .await;
    assert!(arrived, "the unread request is in flight");
    assert_eq!(gateway.get("/slow").await.error_code(), "upstream_busy");
    let started = Instant::now();
    let freed = eventually(Duration::from_secs(5), || async {
        gateway.get("/slow").await.status == 200
    })
    .await;
    assert!(freed, "the slot came back");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the one-second deadline: {:?}",
        started.elapsed()
    );
    drop(reader);
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_requests_keep_their_slot_while_the_upstream_works() {
    let framework = PythonServer::start("werkzeug_upstream.py");
    let gateway = bulkhead_gateway(framework.addr, 4).await;
    // Usher learns how long the upstream takes...
    for _ in 0..3 {
        assert_eq!(gateway.get("/slow").await.status, 200);
    }
    // ...then 60 clients, ten at a time, each leave 30 ms after asking, over HTTP/1.1 and
    // HTTP/2 (stream cancelled).
    let public = gateway.public;
    let mut clients = Vec::new();
    for round in 0..6 {
        for _ in 0..10 {
            clients.push(tokio::spawn(async move {
                if round % 2 == 0 {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = tokio::net::TcpStream::connect(public).await.unwrap();
                    stream
                        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(30)).await;
                } else {
                    h2_client(public.port(), &["cancel", "1", "/slow", "30"]).await;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let quiet = eventually(Duration::from_secs(5), || async {
        get(framework.addr, "/stats").await.unwrap().json()["running"] == 0
    })
    .await;
    assert!(quiet);
    let stats = get(framework.addr, "/stats").await.unwrap().json();
    assert!(
        stats["most"].as_u64().unwrap() <= 4,
        "the upstream never worked on more than the bulkhead: {stats}"
    );
    let metrics = gateway.metrics().await;
    assert!(
        metric_value(
            &metrics,
            r#"usher_upstream_abandoned_total{upstream="svc"}"#
        )
        .is_some_and(|n| n >= 4.0),
        "{metrics}"
    );
}
