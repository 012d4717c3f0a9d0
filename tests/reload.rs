//! Hot reload through the real gateway: file changes and SIGHUP, invalid files, the
//! Kubernetes ConfigMap symlink swap, requests in flight, and pools that survive a reload.

mod common;

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(a: &EchoServer, b: &EchoServer, target: &str) -> String {
    format!(
        r#"
upstreams:
  a: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
  b: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: svc, match: {{ path: /svc }}, upstream: {target}, public: true }}
"#,
        a.addr, b.addr
    )
}

async fn service(gateway: &Gateway) -> String {
    gateway.get("/svc").await.json()["service"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_change_applies_within_a_second_and_invalid_one_is_rejected() {
    let (a, b) = (
        EchoServer::start("a").await.unwrap(),
        EchoServer::start("b").await.unwrap(),
    );
    let gateway = Gateway::start(&config(&a, &b, "a")).await;
    assert_eq!(service(&gateway).await, "a");

    let changed = Instant::now();
    gateway.rewrite_config(&config(&a, &b, "b"));
    assert!(
        eventually(Duration::from_secs(1), || async {
            service(&gateway).await == "b"
        })
        .await,
        "the change was not live within 1 s: {}",
        gateway.stderr()
    );
    let took = changed.elapsed();
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"usher_config_reloads_total{result="success"}"#),
        Some(1.0),
        "took {took:?}"
    );
    assert!(
        metrics.contains(r#"usher_config_info{hash=""#) && metrics.contains(r#"version="2"} 1"#),
        "{metrics}"
    );
    let status = get(gateway.admin, "/config").await.unwrap().json();
    assert_eq!(
        (
            &status["running"]["version"],
            &status["file_is_running"],
            &status["last_reload"]["result"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(true),
            &serde_json::json!("success")
        )
    );
    // How long the reload took (settled change to serving), and what is running.
    let took_ms = status["last_reload"]["took_ms"].as_f64().unwrap_or(-1.0);
    assert!(
        took_ms > 0.0 && took_ms < took.as_secs_f64() * 1e3,
        "{status}"
    );
    assert_eq!(status["running"]["routes"], 1, "{status}");
    assert_eq!(status["running"]["upstreams"], 2, "{status}");

    // An invalid file is rejected: the running config stays, the failure is counted and logged.
    gateway.rewrite_config(&config(&a, &b, "tickts"));
    assert!(
        eventually(Duration::from_secs(2), || async {
            metric_value(
                &gateway.metrics().await,
                r#"usher_config_reloads_total{result="failure"}"#,
            ) == Some(1.0)
        })
        .await,
        "{}",
        gateway.stderr()
    );
    assert_eq!(service(&gateway).await, "b");
    assert!(
        gateway.stderr().contains(r#"unknown upstream \"tickts\""#),
        "{}",
        gateway.stderr()
    );

    // Broken YAML too.
    gateway.write_raw_config("listeners: [this is not: valid");
    assert!(
        eventually(Duration::from_secs(2), || async {
            metric_value(
                &gateway.metrics().await,
                r#"usher_config_reloads_total{result="failure"}"#,
            ) == Some(2.0)
        })
        .await
    );
    assert_eq!(service(&gateway).await, "b");
    let health = get(gateway.admin, "/health").await.unwrap().json();
    assert_eq!(health["config"]["version"], 2);
    // What is running, visible: the file on disk is not it, and the rejection says why.
    assert_eq!(health["last_reload"]["result"], "rejected");
    let status = get(gateway.admin, "/config").await.unwrap().json();
    assert_eq!(status["file_is_running"], false, "{status}");
    assert_eq!(status["running"]["version"], 2);
    assert!(
        status["last_reload"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("invalid YAML")),
        "{status}"
    );
    // The running route table, as `usher routes` prints it: svc still goes to b.
    let table = get(gateway.admin, "/routes").await.unwrap();
    let table = String::from_utf8_lossy(&table.body);
    let row = table
        .lines()
        .find(|line| line.starts_with("svc "))
        .unwrap_or_default();
    assert!(row.contains(" b "), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_and_configmap_symlink_swaps_are_seen() {
    let (a, b) = (
        EchoServer::start("a").await.unwrap(),
        EchoServer::start("b").await.unwrap(),
    );
    // Lay the config out the way the kubelet mounts a ConfigMap:
    //   routes.yaml -> ..data/routes.yaml, ..data -> ..2026_v1 (swapped atomically).
    let gateway = Gateway::start(&config(&a, &b, "a")).await;
    let dir = gateway.dir.path();
    let text = std::fs::read_to_string(gateway.path()).unwrap();
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(dir.join("..v1/routes.yaml"), &text).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::fs::remove_file(gateway.path()).unwrap();
    std::os::unix::fs::symlink("..data/routes.yaml", gateway.path()).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(service(&gateway).await, "a");

    let new_text = text.replace("upstream: a", "upstream: b");
    std::fs::create_dir(dir.join("..v2")).unwrap();
    std::fs::write(dir.join("..v2/routes.yaml"), &new_text).unwrap();
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    assert!(
        eventually(Duration::from_secs(2), || async {
            service(&gateway).await == "b"
        })
        .await,
        "the symlink swap was not picked up"
    );

    // SIGHUP reloads even when the bytes are unchanged.
    let reloads =
        |m: &str| metric_value(m, r#"usher_config_reloads_total{result="success"}"#).unwrap_or(0.0);
    let before = reloads(&gateway.metrics().await);
    gateway.signal("HUP");
    assert!(
        eventually(Duration::from_secs(2), || async {
            reloads(&gateway.metrics().await) == before + 1.0
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_the_file_does_not_trigger_another_check() {
    let (a, b) = (
        EchoServer::start("a").await.unwrap(),
        EchoServer::start("b").await.unwrap(),
    );
    let body = config(&a, &b, "a");
    let gateway = Gateway::launch_with_log(
        |public, admin| {
            format!("listeners:\n  public: {{ address: \"{public}\" }}\n  admin: {{ address: \"{admin}\" }}\n{body}")
        },
        "info,usher::control=debug",
    )
    .await;
    // One check follows startup; a check must not cause the next (reads raise inotify
    // access events), which would show as a check every debounce interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let checks = gateway
        .stderr()
        .matches("configuration file unchanged")
        .count();
    assert!(checks <= 1, "{checks} checks of an unchanged file in 1.5 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_storm_under_load_fails_no_request() {
    let (a, b) = (
        EchoServer::start("a").await.unwrap(),
        EchoServer::start("b").await.unwrap(),
    );
    let gateway = Gateway::start(&config(&a, &b, "a")).await;
    let public = gateway.public;
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop_at = Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (failures, done) = (Arc::clone(&failures), Arc::clone(&done));
            tokio::spawn(async move {
                let mut sent = 0;
                while Instant::now() < stop_at && sent < 2_000 {
                    sent += 1;
                    match get(public, "/svc").await {
                        Ok(r) if r.status == 200 => {}
                        _ => {
                            failures.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // File rewrites (each one debounced into its own reload) with SIGHUPs in between,
    // which force a reload each: about eight reloads a second.
    let mut flip = false;
    while Instant::now() < stop_at {
        flip = !flip;
        gateway.rewrite_config(&config(&a, &b, if flip { "b" } else { "a" }));
        tokio::time::sleep(Duration::from_millis(125)).await;
        gateway.signal("HUP");
        tokio::time::sleep(Duration::from_millis(125)).await;
    }
    for client in clients {
        client.await.unwrap();
    }
    let reloads = metric_value(
        &gateway.metrics().await,
        r#"usher_config_reloads_total{result="success"}"#,
    )
    .unwrap_or(0.0);
    assert!(reloads >= 15.0, "only {reloads} reloads happened");
    assert!(done.load(Ordering::SeqCst) > 100);
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {} requests",
        done.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_pools_keep_their_state_across_a_reload() {
    let flaky = EchoServer::start("flaky").await.unwrap();
    flaky.set_status(500);
    let other = EchoServer::start("other").await.unwrap();
    let body = |extra_route: &str| {
        format!(
            r#"
upstreams:
  flaky:
    targets: ["{}"]
    health_check: {{ type: tcp, interval: 10s }}
    circuit_breaker: {{ min_requests: 3, open_for: 60s }}
  other: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: flaky, match: {{ path: /flaky }}, upstream: flaky, public: true }}
{extra_route}"#,
            flaky.addr, other.addr
        )
    };
    let gateway = Gateway::start(&body("")).await;
    for _ in 0..3 {
        gateway.get("/flaky").await;
    }
    assert_eq!(gateway.get("/flaky").await.error_code(), "circuit_open");

    // A reload that only adds a route keeps the flaky pool, and with it the open breaker.
    gateway.rewrite_config(&body(
        "  - { name: other, match: { path: /other }, upstream: other, public: true }\n",
    ));
    assert!(
        eventually(Duration::from_secs(2), || async {
            gateway.get("/other").await.status == 200
        })
        .await
    );
    assert_eq!(gateway.get("/flaky").await.error_code(), "circuit_open");
    assert_eq!(
        carried_over(&gateway, 2),
        (
            "rate-limit counts, idempotency records, approvals, webhook deliveries, upstream flaky, upstream other"
                .to_string(),
            String::new()
        ),
        "the reload says what it took over"
    );

    // Changing the pool's definition builds a new pool: a fresh, closed breaker.
    gateway.rewrite_config(&body("").replace("open_for: 60s", "open_for: 30s"));
    assert!(
        eventually(Duration::from_secs(2), || async {
            gateway.get("/flaky").await.status == 500
        })
        .await
    );
    let (reused, built) = carried_over(&gateway, 3);
    assert_eq!(built, "upstream flaky");
    assert!(reused.contains("upstream other"), "{reused}");
}

/// What the `configuration active` line of `version` says was reused and built.
fn carried_over(gateway: &Gateway, version: u64) -> (String, String) {
    let stderr = gateway.stderr();
    let line = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["fields"]["message"] == "configuration active"
                && line["fields"]["version"] == version
        })
        .unwrap_or_else(|| panic!("no configuration active line for version {version}: {stderr}"));
    let field = |name: &str| {
        line["fields"][name]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (field("reused"), field("built"))
}
