//! Two-person approval through the real gateway, on a real redis-server shared by two
//! replicas: a large request is held for approval bound to its submitter, path, body and
//! key; another admin of the same tenant approves it on the other replica; the identical
//! request then goes through once, with the approver named; self-approval, other tenants,
//! missing roles, a changed body, reuse, expiry and m-of-n are refused or counted as the
//! rules say; with Redis gone, approvals fail closed.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef-approvals";

fn bearer(subject: &str, tenant: &str, roles: &[&str]) -> String {
    scoped_bearer(subject, tenant, roles, &[])
}

fn scoped_bearer(subject: &str, tenant: &str, roles: &[&str], venues: &[&str]) -> String {
    let now = unix_now();
    format!(
        "Bearer {}",
        hs256_jwt(
            SECRET,
            &json!({"sub": subject, "tenant_id": tenant, "roles": roles, "venue_ids": venues, "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600}),
        )
    )
}

async fn replica(upstream: &EchoServer, dir: &tempfile::TempDir, redis: &str) -> Gateway {
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let dead = free_port();
    Gateway::start_h2c(&format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}], claims: {{ venues: venue_ids }} }}
{redis}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
  gone: {{ targets: ["127.0.0.1:{dead}"], retries: 0, health_check: {{ type: tcp, interval: 10s, unhealthy_threshold: 100 }} }}
routes:
  - {{ name: approvals, match: {{ path: /approvals }}, serve: approvals }}
  - name: mint
    match: {{ path: /mint, methods: [POST] }}
    upstream: svc
    max_body: 16KiB
    idempotency: {{}}
    auth: {{ roles: [admin] }}
    approval: {{ length_of: /ticketIds, above: 3 }}
  - name: big
    match: {{ path: /big, methods: [POST] }}
    upstream: svc
    max_body: 16KiB
    auth: {{ roles: [admin] }}
    approval: {{ number_at: /quantity, above: 10, approvals: 2, roles: [admin, auditor] }}
  - name: quick
    match: {{ path: /quick, methods: [POST] }}
    upstream: svc
    max_body: 16KiB
    auth: {{ roles: [admin] }}
    approval: {{ number_at: /quantity, above: 0, expires: 1s }}
  - name: venue
    match: {{ path: /venue, methods: [POST] }}
    upstream: svc
    max_body: 16KiB
    auth: {{ roles: [admin], venue_field: /venueId, admin_roles: [platform] }}
    approval: {{ number_at: /quantity, above: 0 }}
  - name: gone
    match: {{ path: /gone, methods: [POST] }}
    upstream: gone
    max_body: 16KiB
    auth: {{ roles: [admin] }}
    approval: {{ number_at: /quantity, above: 0 }}
"#,
        secret.display(),
        upstream.addr
    ))
    .await
}

async fn call(
    gateway: &Gateway,
    method: &str,
    path: &str,
    who: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> Response {
    let body = body.map(|b| b.to_string());
    let quoted = key.map(|k| format!("\"{k}\""));
    let mut headers = vec![("authorization", who)];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(quoted) = &quoted {
        headers.push(("idempotency-key", quoted));
    }
    request(
        gateway.public,
        method,
        path,
        &headers,
        body.as_deref().map(str::as_bytes),
    )
    .await
    .unwrap()
}

/// One approval of the approval at `status` by `who`.
async fn approve(gateway: &Gateway, status: &str, who: &str) -> Response {
    call(
        gateway,
        "POST",
        &format!("{status}/approve"),
        who,
        None,
        None,
    )
    .await
}

/// A request for `quantity` on `path`, without an Idempotency-Key.
async fn ask(gateway: &Gateway, path: &str, who: &str, quantity: u64) -> Response {
    let body = json!({ "quantity": quantity });
    call(gateway, "POST", path, who, None, Some(body)).await
}

fn tickets(n: usize) -> serde_json::Value {
    json!({ "ticketIds": (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>() })
}

/// The approval a 403 `approval_required` names, and where to read it.
fn required(response: &Response) -> (String, String) {
    assert_eq!(
        (response.status, response.error_code().as_str()),
        (403, "approval_required"),
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let details = &response.json()["error"]["details"];
    (
        details["approval_id"].as_str().unwrap().to_string(),
        details["status"].as_str().unwrap().to_string(),
    )
}

/// `call` until a key just given back (the refused request is logged after its answer is
/// out) is free again.
async fn call_settled(
    gateway: &Gateway,
    path: &str,
    who: &str,
    key: &str,
    body: serde_json::Value,
) -> Response {
    let mut response = call(gateway, "POST", path, who, Some(key), Some(body.clone())).await;
    for _ in 0..40 {
        if response.error_code() != "idempotency_in_flight" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        response = call(gateway, "POST", path, who, Some(key), Some(body.clone())).await;
    }
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_admin_approves_what_the_first_submitted() {
    let mut redis = RedisServer::start().await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = redis.section(", timeout: 1s");
    let one = replica(&upstream, &dir, &settings).await;
    let two = replica(&upstream, &dir, &settings).await;
    let alice = bearer("alice", "t1", &["admin"]);
    let bob = bearer("bob", "t1", &["admin"]);
    let carol = bearer("carol", "t2", &["admin"]);
    let dave = bearer("dave", "t1", &["customer", "admin-viewer"]);

    // Small enough: no approval.
    let small = call(&one, "POST", "/mint", &alice, Some("k0"), Some(tickets(3))).await;
    assert_eq!(small.status, 200);
    assert_eq!(small.json()["headers"].get("x-approved-by"), None);

    // Large: held, whoever asks and on whichever replica.
    let submitted = call(&one, "POST", "/mint", &alice, Some("k1"), Some(tickets(5))).await;
    let (id, status) = required(&submitted);
    assert_eq!(status, format!("/approvals/{id}"));
    let seen = call(&two, "GET", &status, &alice, None, None).await;
    assert_eq!(seen.status, 200);
    let seen = seen.json();
    assert_eq!(
        (
            &seen["status"],
            &seen["amount"],
            &seen["approvals"],
            &seen["needed"]
        ),
        (&json!("pending"), &json!(5), &json!(0), &json!(1))
    );
    assert_eq!(seen.get("body"), None, "a status never shows the body");
    assert_eq!(upstream.hits(), 1);

    // Nobody approves their own; another tenant, or a caller without the role, cannot
    // even see it.
    let own = approve(&two, &status, &alice).await;
    assert_eq!(
        (own.status, own.error_code().as_str()),
        (403, "approval_self")
    );
    for stranger in [&carol, &dave] {
        let refused = approve(&two, &status, stranger).await;
        assert!(matches!(refused.status, 403 | 404), "{}", refused.status);
        let hidden = call(&two, "GET", &status, stranger, None, None).await;
        assert_eq!(hidden.error_code(), "approval_not_found");
    }

    // Bob approves on the other replica; he can approve once.
    let granted = approve(&two, &status, &bob).await;
    assert_eq!(granted.status, 200);
    assert_eq!(granted.json()["status"], "approved");
    assert_eq!(granted.json()["approvers"], json!(["jwt:bob"]));
    let again = approve(&one, &status, &bob).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "approval_closed")
    );

    // A changed body is another request: it needs its own approval.
    let changed = call_settled(&one, "/mint", &alice, "k1", tickets(6)).await;
    let (other_id, _) = required(&changed);
    assert_ne!(other_id, id);

    // The identical request goes through once, naming its approver; a retry replays.
    let used = call_settled(&one, "/mint", &alice, "k1", tickets(5)).await;
    assert_eq!(used.status, 200, "{}", used.error_code());
    assert_eq!(used.json()["headers"]["x-approved-by"], json!(["jwt:bob"]));
    assert_eq!(upstream.hits(), 2);
    let status_now = call(&two, "GET", &status, &bob, None, None).await;
    assert_eq!(status_now.json()["status"], "used");
    let replayed = call_settled(&two, "/mint", &alice, "k1", tickets(5)).await;
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(upstream.hits(), 2);
    // The same body under a new key is a new request, with a new approval.
    let (fresh, _) =
        required(&call(&one, "POST", "/mint", &alice, Some("k2"), Some(tickets(5))).await);
    assert_ne!(fresh, id);

    // A client cannot claim an approval: its X-Approved-By is dropped.
    let forged = request(
        one.public,
        "POST",
        "/mint",
        &[
            ("authorization", alice.as_str()),
            ("content-type", "application/json"),
            ("idempotency-key", "\"k3\""),
            ("x-approved-by", "jwt:bob"),
        ],
        Some(tickets(2).to_string().as_bytes()),
    )
    .await
    .unwrap();
    assert_eq!(forged.json()["headers"].get("x-approved-by"), None);

    // Two of n: each approver counts once; a role from the route's list suffices.
    let erin = bearer("erin", "t1", &["auditor"]);
    let (big, big_status) = required(&ask(&one, "/big", &alice, 11).await);
    let first = approve(&two, &big_status, &bob).await;
    assert_eq!(
        (
            first.json()["status"].as_str(),
            first.json()["approvals"].as_u64()
        ),
        (Some("pending"), Some(1))
    );
    let pending = ask(&one, "/big", &alice, 11).await;
    assert_eq!(required(&pending).0, big);
    assert_eq!(pending.json()["error"]["details"]["approvals"], 1);
    let second = approve(&one, &big_status, &erin).await;
    assert_eq!(second.json()["status"], "approved");
    let through = ask(&two, "/big", &alice, 11).await;
    assert_eq!(
        through.json()["headers"]["x-approved-by"],
        json!(["jwt:bob,jwt:erin"])
    );
    // Single use: without an Idempotency-Key to replay it, the same request is refused.
    let reused = ask(&one, "/big", &alice, 11).await;
    assert_eq!(
        (reused.status, reused.error_code().as_str()),
        (409, "approval_used")
    );

    // Expiry: an approval not granted in time is gone; asking again starts anew.
    let (_, quick) = required(&ask(&one, "/quick", &alice, 1).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let late = approve(&two, &quick, &bob).await;
    assert_eq!(
        (late.status, late.error_code().as_str()),
        (410, "approval_expired")
    );
    assert_eq!(
        call(&two, "GET", &quick, &alice, None, None).await.json()["status"],
        "expired"
    );
    required(&ask(&one, "/quick", &alice, 1).await);

    // A request that used its approval and was never sent gives it back.
    let (_, gone) = required(&ask(&one, "/gone", &alice, 1).await);
    assert_eq!(approve(&two, &gone, &bob).await.status, 200);
    let unsent = ask(&one, "/gone", &alice, 1).await;
    assert!(matches!(unsent.status, 502 | 503), "{}", unsent.status);
    assert_eq!(
        call(&two, "GET", &gone, &alice, None, None).await.json()["status"],
        "approved"
    );

    // Every step is a security event naming both identities.
    let log = one.stderr() + &two.stderr();
    let granted_line = log
        .lines()
        .find(|line| line.contains("approval_granted") && line.contains(&id))
        .unwrap_or_else(|| panic!("no approval_granted event for {id}"));
    assert!(
        granted_line.contains("jwt:alice") && granted_line.contains("jwt:bob"),
        "{granted_line}"
    );
    for reason in ["approval_requested", "approval_used", "approval_self"] {
        assert!(log.contains(reason), "no {reason} event");
    }
    let refused_line = log
        .lines()
        .find(|line| line.contains("approval_role"))
        .expect("no approval_role event");
    assert!(
        refused_line.contains(r#""submitter":"jwt:alice""#)
            && refused_line.contains(r#""actor":"jwt:dave""#),
        "{refused_line}"
    );
    let metrics = one.metrics().await;
    assert!(
        metric_value(&metrics, r#"usher_approvals_total{outcome="used"}"#)
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );

    venue_scope_is_held(&two).await;

    // Redis gone: approvals fail closed.
    redis.kill();
    let down = call(&one, "POST", "/mint", &alice, Some("k9"), Some(tickets(5))).await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "idempotency_unavailable")
    );
    let down = ask(&one, "/big", &alice, 11).await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "approval_unavailable")
    );
    let down = call(&two, "GET", &status, &alice, None, None).await;
    assert_eq!(
        (down.status, down.error_code().as_str()),
        (503, "approval_unavailable")
    );
}

/// An approver acts within their own venues, unless they hold one of the route's admin
/// roles.
async fn venue_scope_is_held(gateway: &Gateway) {
    let submitter = scoped_bearer("sam", "t1", &["admin"], &["v1"]);
    let elsewhere = scoped_bearer("eve", "t1", &["admin"], &["v2"]);
    let local = scoped_bearer("val", "t1", &["admin"], &["v1"]);
    let platform = scoped_bearer("pat", "t1", &["admin", "platform"], &[]);
    let asked = |quantity| {
        let body = json!({"venueId": "v1", "quantity": quantity});
        call(gateway, "POST", "/venue", &submitter, None, Some(body))
    };
    let (_, status) = required(&asked(3).await);
    let refused = approve(gateway, &status, &elsewhere).await;
    assert_eq!(
        (refused.status, refused.error_code().as_str()),
        (403, "forbidden")
    );
    assert_eq!(approve(gateway, &status, &local).await.status, 200);
    let (_, other) = required(&asked(4).await);
    assert_eq!(approve(gateway, &other, &platform).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_keeps_approvals_in_process() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = replica(&upstream, &dir, "").await;
    let alice = bearer("alice", "t1", &["admin"]);
    let bob = bearer("bob", "t1", &["admin"]);
    let (_, status) = required(
        &call(
            &gateway,
            "POST",
            "/mint",
            &alice,
            Some("k1"),
            Some(tickets(4)),
        )
        .await,
    );
    let own = approve(&gateway, &status, &alice).await;
    assert_eq!(own.error_code(), "approval_self");
    assert_eq!(approve(&gateway, &status, &bob).await.status, 200);
    let used = call_settled(&gateway, "/mint", &alice, "k1", tickets(4)).await;
    assert_eq!(used.json()["headers"]["x-approved-by"], json!(["jwt:bob"]));
    assert_eq!(
        call(&gateway, "GET", &status, &bob, None, None)
            .await
            .json()["status"],
        "used"
    );

    venue_scope_is_held(&gateway).await;
}
