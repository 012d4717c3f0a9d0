//! Upstream failure handling through the real gateway: load balancing over healthy peers,
//! dead peers, the circuit breaker's whole cycle, the 502/503/504 mapping, the bulkhead
//! and route deadlines.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Three echo peers named a, b and c behind one upstream `svc` (with `settings`, YAML lines
/// indented for the upstream) and a public catch-all route.
async fn three_peers(settings: &str) -> ([EchoServer; 3], Gateway) {
    let peers = [
        EchoServer::start("a").await.unwrap(),
        EchoServer::start("b").await.unwrap(),
        EchoServer::start("c").await.unwrap(),
    ];
    let body = format!(
        "upstreams:\n  svc:\n    targets: [\"{}\", \"{}\", \"{}\"]\n    {settings}\nroutes:\n  - {{ name: all, match: {{ path: / }}, upstream: svc, public: true }}\n",
        peers[0].addr, peers[1].addr, peers[2].addr
    );
    let gateway = Gateway::start(&body).await;
    (peers, gateway)
}

#[tokio::test(flavor = "multi_thread")]
async fn balances_across_peers_and_stops_using_a_dead_one() {
    let (peers, gateway) = three_peers(
        "health_check: { type: tcp, interval: 200ms, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1 }",
    )
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let response = gateway.get("/x").await;
        assert_eq!(response.status, 200);
        *seen
            .entry(response.json()["service"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 3, "round robin reaches every peer: {seen:?}");
    assert!(seen.values().all(|&n| n == 10), "evenly: {seen:?}");

    // Kill one peer: no request fails (retry to another peer, then ejection), and the
    // dead peer is no longer chosen.
    let [a, b, c] = peers;
    drop(b);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..40 {
        let response = gateway.get("/x").await;
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        *seen
            .entry(response.json()["service"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(!seen.contains_key("b"), "{seen:?}");
    assert!(seen["a"] >= 15 && seen["c"] >= 15, "{seen:?}");
    let metrics = gateway.metrics().await;
    assert!(
        metric_value(&metrics, r#"usher_upstream_healthy_peers{upstream="svc"}"#) == Some(2.0),
        "{metrics}"
    );
    drop((a, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn breaker_opens_fails_fast_half_opens_and_closes() {
    let upstream = EchoServer::start("flaky").await.unwrap();
    upstream.set_status(500);
    let body = format!(
        r#"
upstreams:
  flaky:
    targets: ["{}"]
    health_check: {{ type: tcp, interval: 10s }}
    circuit_breaker: {{ error_percent: 50, min_requests: 5, window: 10s, open_for: 1s, half_open_probes: 2 }}
routes:
  - {{ name: all, match: {{ path: / }}, upstream: flaky, public: true }}
"#,
        upstream.addr
    );
    let gateway = Gateway::start(&body).await;
    // POSTs with `Expect: 100-continue` get an informational 100 before the 500: the 500
    // is what counts.
    let post = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nabcd";
    for _ in 0..5 {
        let response = raw_request(gateway.public, post).await;
        assert!(
            response.contains(" 500 "),
            "upstream errors pass through while closed: {response}"
        );
    }
    // Open: fail fast, without touching the upstream.
    let hits = upstream.hits();
    let started = Instant::now();
    let response = gateway.get("/x").await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "circuit_open");
    assert_eq!(response.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(
        upstream.hits(),
        hits,
        "an open breaker does not touch the upstream"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"usher_circuit_breaker_state{upstream="flaky"}"#),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_upstream_rejected_total{reason="circuit_open",upstream="flaky"}"#
        ),
        Some(1.0)
    );

    // Half-open after open_for; a failing probe opens it again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        gateway.get("/x").await.status,
        500,
        "the probe reaches the upstream"
    );
    assert_eq!(gateway.get("/x").await.error_code(), "circuit_open");

    // The upstream recovers: probes succeed and the breaker closes.
    upstream.set_status(0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(gateway.get("/x").await.status, 200);
    assert_eq!(gateway.get("/x").await.status, 200);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"usher_circuit_breaker_state{upstream="flaky"}"#),
        Some(0.0)
    );
    for _ in 0..5 {
        assert_eq!(gateway.get("/x").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_unavailable_and_slow_upstreams() {
    let slow = EchoServer::start("slow").await.unwrap();
    slow.set_delay(Duration::from_secs(3));
    let closed_port = free_port();
    let body = format!(
        r#"
upstreams:
  gone:
    targets: ["127.0.0.1:{closed_port}"]
    health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 5 }}
    passive_ejection: 5s
  slow:
    targets: ["{slow}"]
    health_check: {{ type: tcp, interval: 10s }}
    timeouts: {{ read: 5s }}
routes:
  - {{ name: gone, match: {{ path: /gone }}, upstream: gone, public: true }}
  - {{ name: slow, match: {{ path: /slow }}, upstream: slow, public: true, timeout: 300ms }}
  - {{ name: slower, match: {{ path: /slower }}, upstream: slow, public: true, timeout: 1500ms }}
  - {{ name: slow-post, match: {{ path: /slow, methods: [POST] }}, upstream: slow, public: true }}
"#,
        slow = slow.addr
    );
    let gateway = Gateway::start(&body).await;

    // Refused: 502, then the refusing peer is ejected and the pool has no peer: 503.
    let response = gateway.get("/gone").await;
    assert_eq!(
        response.status,
        502,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.error_code(), "upstream_refused");
    assert!(response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gone"));
    assert!(
        !String::from_utf8_lossy(&response.body).contains("127.0.0.1"),
        "no internal detail"
    );
    let response = gateway.get("/gone").await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "upstream_unavailable");
    assert!(response.header("retry-after").is_some());

    // Slow: the route's 300 ms deadline answers 504 long before the upstream would.
    let started = Instant::now();
    let response = gateway.get("/slow").await;
    assert_eq!(response.status, 504);
    assert_eq!(response.error_code(), "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A deadline of a second or more is on Tokio's timer (server.rs), one shorter (above)
    // on Pingora's: this one too ends the wait before the upstream answers (at 3 s), and
    // not early.
    let started = Instant::now();
    let response = gateway.get("/slower").await;
    assert_eq!(response.status, 504);
    assert_eq!(response.error_code(), "upstream_timeout");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400), "{waited:?}");

    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_upstream_errors_total{kind="connect_refused",upstream="gone"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_upstream_errors_total{kind="read_timeout",upstream="slow"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bulkhead_caps_requests_in_flight() {
    let slow = EchoServer::start("minting").await.unwrap();
    slow.set_delay(Duration::from_millis(800));
    let fast = EchoServer::start("tickets").await.unwrap();
    let body = format!(
        r#"
upstreams:
  minting: {{ targets: ["{}"], max_in_flight: 2, health_check: {{ type: tcp, interval: 10s }} }}
  tickets: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: mint, match: {{ path: /mint }}, upstream: minting, public: true }}
  - {{ name: tickets, match: {{ path: /tickets }}, upstream: tickets, public: true }}
"#,
        slow.addr, fast.addr
    );
    let gateway = Gateway::start(&body).await;
    let public = gateway.public;
    let mints: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(public, "/mint").await.unwrap().status }))
        .collect();
    assert!(
        eventually(Duration::from_secs(2), || async { slow.hits() == 2 }).await,
        "both mints reached the upstream"
    );
    let response = gateway.get("/mint").await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "upstream_busy");
    // A full minting bulkhead does not slow ticket traffic.
    let started = Instant::now();
    assert_eq!(gateway.get("/tickets").await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(400));
    for mint in mints {
        assert_eq!(mint.await.unwrap(), 200);
    }
    assert_eq!(gateway.get("/mint").await.status, 200, "slots are returned");
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hash_keeps_a_key_on_one_peer() {
    let (_peers, gateway) = three_peers(
        "lb: consistent_hash\n    hash_key: header:x-session\n    health_check: { type: tcp, interval: 10s }",
    )
    .await;
    let mut owners = std::collections::HashSet::new();
    for session in 0..20 {
        let session = format!("session-{session}");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5 {
            let response = request(
                gateway.public,
                "GET",
                "/x",
                &[("x-session", &session)],
                None,
            )
            .await
            .unwrap();
            seen.insert(response.json()["service"].as_str().unwrap().to_string());
        }
        assert_eq!(seen.len(), 1, "{session} moved between peers: {seen:?}");
        owners.extend(seen);
    }
    assert!(
        owners.len() >= 2,
        "20 keys all hashed to one peer: {owners:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_name_targets_are_resolved() {
    let upstream = EchoServer::start("named").await.unwrap();
    let body = format!(
        r#"
upstreams:
  named: {{ targets: ["localhost:{}"], health_check: {{ type: tcp, interval: 10s }}, resolve_interval: 1s }}
routes:
  - {{ name: all, match: {{ path: / }}, upstream: named, public: true }}
"#,
        upstream.addr.port()
    );
    let gateway = Gateway::start(&body).await;
    for _ in 0..5 {
        assert_eq!(gateway.get("/x").await.status, 200);
    }
    let report = get(gateway.admin, "/health").await.unwrap().json();
    let peers = report["upstreams"]["named"]["peers"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        peers
            .iter()
            .any(|p| p["address"] == upstream.addr.to_string().as_str()),
        "{peers:?}"
    );
}
