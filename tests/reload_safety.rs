//! Reloads that must not publish what the operator did not mean: a file still being written
//! in place, a file cut short that removes most routes, and the metric series of what a
//! reload retired.

mod common;

use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `routes` public routes `/r0`.. on upstream `svc`, then `extra` YAML (top level).
fn table(upstream: &EchoServer, routes: usize, extra: &str) -> String {
    let mut body = format!(
        "{extra}\nupstreams:\n  svc: {{ targets: [\"{}\"], health_check: {{ type: tcp, interval: 10s }} }}\nroutes:\n",
        upstream.addr
    );
    for n in 0..routes {
        body.push_str(&format!(
            "  - {{ name: r{n}, match: {{ path: /r{n} }}, upstream: svc, public: true }}\n"
        ));
    }
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_written_in_place_goes_live_only_when_its_writer_is_done() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&table(&upstream, 12, "")).await;
    let text = |routes| {
        Gateway::document(
            gateway.public,
            gateway.admin,
            "threads: 2\n  grace_period: 5s",
            &table(&upstream, routes, ""),
        )
    };
    // The full new file adds /r12; its first part alone would be a valid file with eight
    // routes (not enough removed for the removal guard to step in).
    let full = text(13);
    let cut = full.find("  - { name: r8,").unwrap();
    let (prefix, rest) = full.split_at(cut);

    let public = gateway.public;
    let not_found = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(AtomicUsize::new(0));
    let stop = Instant::now() + Duration::from_millis(2_500);
    let client = {
        let (not_found, asked) = (Arc::clone(&not_found), Arc::clone(&asked));
        tokio::spawn(async move {
            while Instant::now() < stop {
                if get(public, "/r11").await.unwrap().status == 404 {
                    not_found.fetch_add(1, Ordering::SeqCst);
                }
                asked.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // An in-place write that pauses for a second, longer than the debounce, with the file
    // open: what an SRE's editor, `cp` or a slow mount does.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&gateway.config_path)
        .unwrap();
    file.write_all(prefix.as_bytes()).unwrap();
    file.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    file.write_all(rest.as_bytes()).unwrap();
    drop(file);
    let live = eventually(Duration::from_secs(2), || async {
        gateway.get("/r12").await.status == 200
    })
    .await;
    assert!(live, "the finished file went live: {}", gateway.stderr());
    client.await.unwrap();
    assert!(asked.load(Ordering::SeqCst) > 40);
    assert_eq!(
        not_found.load(Ordering::SeqCst),
        0,
        "the half-written file was served"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_that_removes_most_routes_needs_the_file_to_say_so() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&table(&upstream, 20, "")).await;
    let failures = || async {
        metric_value(
            &gateway.metrics().await,
            r#"usher_config_reloads_total{result="failure"}"#,
        )
        .unwrap_or(0.0)
    };
    // A file cut right after `routes:` is valid YAML with no routes: refused.
    gateway.rewrite_config(&table(&upstream, 0, ""));
    assert!(eventually(Duration::from_secs(3), || async { failures().await == 1.0 }).await);
    assert_eq!(
        gateway.get("/r5").await.status,
        200,
        "the running routes stay"
    );
    assert!(gateway.stderr().contains("max_route_removal_percent"));
    // Removing half is allowed by default; removing more is when the new file allows it.
    gateway.rewrite_config(&table(&upstream, 10, ""));
    assert!(
        eventually(Duration::from_secs(3), || async {
            gateway.get("/r15").await.status == 404
        })
        .await
    );
    gateway.rewrite_config(&table(&upstream, 1, ""));
    assert!(eventually(Duration::from_secs(3), || async { failures().await == 2.0 }).await);
    gateway.rewrite_config(&table(
        &upstream,
        1,
        "limits: { max_route_removal_percent: 100 }",
    ));
    assert!(
        eventually(Duration::from_secs(3), || async {
            gateway.get("/r3").await.status == 404
        })
        .await
    );
    assert_eq!(gateway.get("/r0").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn retired_routes_and_upstreams_leave_the_metrics() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let other = EchoServer::start("other").await.unwrap();
    let extra = format!(
        "upstreams:\n  retired: {{ targets: [\"{}\"], health_check: {{ type: tcp, interval: 10s }} }}",
        other.addr
    );
    let with_retired = table(&upstream, 300, "").replace("upstreams:\n", &format!("{extra}\n"))
        + "  - { name: old, match: { path: /old }, upstream: retired, public: true }\n";
    let gateway = Gateway::start(&with_retired).await;
    for n in [0, 7, 150, 299] {
        assert_eq!(gateway.get(&format!("/r{n}")).await.status, 200);
    }
    assert_eq!(gateway.get("/old").await.status, 200);
    let before = gateway.metrics().await;
    assert!(before.contains(r#"route="r150""#));
    assert!(before.contains(r#"upstream="retired""#));
    assert!(
        !before.contains(r#"route="r151""#),
        "a route's series appear with its first request"
    );

    gateway.rewrite_config(&table(
        &upstream,
        1,
        "limits: { max_route_removal_percent: 100 }",
    ));
    assert!(
        eventually(Duration::from_secs(3), || async {
            gateway.get("/r7").await.status == 404
        })
        .await
    );
    // The last 404's series is recorded once its response is out: wait for it.
    assert!(
        eventually(Duration::from_secs(2), || async {
            gateway.metrics().await.contains(r#"route="unmatched""#)
        })
        .await
    );
    let after = gateway.metrics().await;
    for gone in [
        r#"route="r150""#,
        r#"route="r7""#,
        r#"route="old""#,
        r#"upstream="retired""#,
    ] {
        assert!(!after.contains(gone), "{gone} is still exported:\n{after}");
    }
    assert!(
        after.contains(r#"route="r0""#),
        "kept routes keep their series"
    );
    let exported: std::collections::BTreeSet<&str> = after
        .lines()
        .filter_map(|line| line.split("route=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        exported,
        ["r0", "unmatched"].into(),
        "only routes of the running file (and requests that matched none)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_file_supersedes_one_still_compiling() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&table(&upstream, 1, "")).await;
    // A table at the route bound takes a debug build about a second to compile; the next
    // file arrives while it does.
    gateway.rewrite_config(&table(&upstream, 20_000, ""));
    tokio::time::sleep(Duration::from_millis(400)).await;
    gateway.rewrite_config(&table(&upstream, 3, ""));
    let live = eventually(Duration::from_secs(10), || async {
        gateway.get("/r2").await.status == 200
    })
    .await;
    assert!(live, "{}", gateway.stderr());
    assert!(
        gateway.stderr().contains("compiling the newer one"),
        "{}",
        gateway.stderr()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        gateway.get("/r19999").await.status,
        404,
        "the superseded file never went live"
    );
}
