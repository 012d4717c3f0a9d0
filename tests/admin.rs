//! The admin listener (probes, health report, metrics) and graceful shutdown.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn probes_follow_critical_upstreams() {
    let auth = EchoServer::start("auth").await.unwrap();
    let auth_addr = auth.addr;
    let other = EchoServer::start("other").await.unwrap();
    let body = format!(
        r#"
upstreams:
  auth:
    targets: ["{auth_addr}"]
    critical: true
    health_check: {{ type: http, path: /health, interval: 200ms, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1 }}
  other: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: auth, match: {{ path: /auth }}, upstream: auth, public: true }}
"#,
        other.addr
    );
    let gateway = Gateway::start(&body).await;
    for path in ["/health/live", "/health/startup", "/health/ready"] {
        let response = get(gateway.admin, path).await.unwrap();
        assert_eq!(
            response.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    let report = get(gateway.admin, "/health").await.unwrap().json();
    assert_eq!(report["status"], "ready");
    assert_eq!(report["config"]["version"], 1);
    assert_eq!(report["config"]["hash"].as_str().unwrap().len(), 12);
    assert_eq!(report["upstreams"]["auth"]["healthy_peers"], 1);
    assert_eq!(report["upstreams"]["auth"]["circuit_breaker"], "closed");
    assert_eq!(report["upstreams"]["other"]["critical"], false);
    assert!(report["uptime_seconds"].is_u64());

    // The critical upstream goes away: readiness follows, liveness does not.
    drop(auth);
    assert!(
        eventually(Duration::from_secs(3), || async {
            get(gateway.admin, "/health/ready").await.unwrap().status == 503
        })
        .await
    );
    let ready = get(gateway.admin, "/health/ready").await.unwrap().json();
    assert_eq!(
        ready["reasons"][0],
        "critical upstream auth has no healthy peer"
    );
    assert_eq!(
        get(gateway.admin, "/health/live").await.unwrap().status,
        200
    );
    assert_eq!(
        get(gateway.admin, "/health").await.unwrap().json()["upstreams"]["auth"]["healthy_peers"],
        0
    );

    // It comes back on the same address: ready again.
    let listener = tokio::net::TcpListener::bind(auth_addr).await.unwrap();
    let _auth = EchoServer::serve(listener, "auth");
    assert!(
        eventually(Duration::from_secs(3), || async {
            get(gateway.admin, "/health/ready").await.unwrap().status == 200
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_cover_every_documented_family_and_admin_is_not_public() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let body = format!(
        r#"
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: svc, match: {{ path: /svc }}, upstream: svc, public: true }}
rate_limiting:
  default_policies: [per-client]
  policies: {{ per-client: {{ limit: 100, window: 1m, key: [client] }} }}
"#,
        upstream.addr
    );
    let gateway = Gateway::start(&body).await;
    assert_eq!(gateway.get("/svc/a").await.status, 200);
    assert_eq!(gateway.get("/nope").await.status, 404);
    // Admin endpoints are not served on the public listener.
    for path in ["/metrics", "/health", "/health/ready"] {
        assert_eq!(gateway.get(path).await.status, 404, "{path}");
    }
    // Metrics are recorded once a response is complete: wait for the last one.
    let unmatched =
        r#"usher_http_requests_total{method="GET",route="unmatched",status_class="4xx"}"#;
    assert!(
        eventually(Duration::from_secs(2), || async {
            metric_value(&gateway.metrics().await, unmatched) == Some(4.0)
        })
        .await
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_http_requests_total{method="GET",route="svc",status_class="2xx"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_http_request_duration_seconds_count{route="svc"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_upstream_attempt_duration_seconds_count{upstream="svc"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, r#"usher_upstream_healthy_peers{upstream="svc"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, r#"usher_upstream_peers{upstream="svc"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, r#"usher_circuit_breaker_state{upstream="svc"}"#),
        Some(0.0)
    );
    assert_eq!(
        metric_value(&metrics, "usher_http_requests_in_flight"),
        Some(0.0)
    );
    assert!(metrics.contains("usher_config_info{hash="), "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_http_responses_total{code="200",route="svc"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    // The process and the build, as Prometheus' own client libraries name them.
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_threads",
        "process_start_time_seconds",
    ] {
        let value = metric_value(&metrics, family).unwrap_or_else(|| panic!("{family}: {metrics}"));
        assert!(value > 0.0, "{family} {value}");
    }
    assert!(
        metrics.contains("usher_build_info{git_revision=")
            && metrics.contains("pingora_version=\"0.9"),
        "{metrics}"
    );
    let health = get(gateway.admin, "/health").await.unwrap().json();
    assert_eq!(health["build"]["version"], env!("CARGO_PKG_VERSION"));

    // Every family named in docs/metrics.md is exported whatever the configuration has
    // to count: those it names nothing for (no idempotency here, no budget) only once it
    // does (tests/demo.rs checks them all on the shipped file).
    let unconfigured = [
        "usher_ratelimit_blocks_total",
        "usher_ratelimit_bot_signals_total",
        "usher_shed_requests_total",
        "usher_idempotency_total",
        "usher_validation_refusals_total",
        "usher_budget_requests_total",
        "usher_budget_amount_total",
        "usher_signature_verifications_total",
    ];
    for name in documented_metric_families() {
        let exported = metrics.contains(&format!("# TYPE {name} "));
        assert!(
            exported || unconfigured.contains(&name.as_str()),
            "{name} is documented but not exported"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_requests_in_flight_then_exits() {
    let slow = EchoServer::start("slow").await.unwrap();
    slow.set_delay(Duration::from_millis(1500));
    let body = format!(
        r#"
upstreams:
  slow: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: slow, match: {{ path: /slow }}, upstream: slow, public: true }}
"#,
        slow.addr
    );
    let mut gateway = Gateway::start(&body).await;
    let public = gateway.public;
    let in_flight = tokio::spawn(async move { get(public, "/slow").await });
    assert!(
        eventually(Duration::from_secs(2), || async { slow.hits() == 1 }).await,
        "the request reached the upstream"
    );
    let signalled = Instant::now();
    gateway.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        get(public, "/slow").await.is_err(),
        "no new connections after SIGTERM"
    );
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(response.status, 200);
    let status = gateway
        .wait_exit(Duration::from_secs(4))
        .expect("exits once drained");
    assert!(status.success(), "{status}");
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "exit took {took:?}; the grace period is 5 s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usher_probe_reports_readiness_by_exit_code() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let body = format!(
        "upstreams:\n  svc: {{ targets: [\"{}\"], critical: true, health_check: {{ type: tcp, interval: 200ms, timeout: 100ms, unhealthy_threshold: 1 }} }}\nroutes:\n  - {{ name: svc, match: {{ path: / }}, upstream: svc, public: true }}\n",
        upstream.addr
    );
    let gateway = Gateway::start(&body).await;
    let probe = |args: Vec<String>| {
        std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .arg("probe")
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(
        probe(vec![
            "--config".into(),
            gateway.path().display().to_string()
        ]),
        Some(0)
    );
    assert_eq!(
        probe(vec!["--admin".into(), gateway.admin.to_string()]),
        Some(0)
    );
    drop(upstream);
    assert!(
        eventually(Duration::from_secs(3), || async {
            probe(vec!["--admin".into(), gateway.admin.to_string()]) == Some(1)
        })
        .await,
        "not ready once the critical upstream is gone"
    );
    assert_eq!(
        probe(vec!["--admin".into(), format!("127.0.0.1:{}", free_port())]),
        Some(1)
    );
}
