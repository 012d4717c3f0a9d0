//! The order of the stages and the refusal each maps to, against a compiled snapshot and
//! request heads built in the test: no socket, no upstream. The lookup service and the
//! upstream are addresses nothing listens on; only the confirm stage tries to reach one.

use super::{admit, Verdict};
use crate::proxy::request::Request;
use crate::proxy::RequestCtx;
use crate::respond::Rejection;
use crate::snapshot::Snapshot;
use pingora::http::RequestHeader;
use std::net::SocketAddr;
use std::sync::Arc;

const SECRET_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/jwt-secret");

/// Two requests a minute per user on `/limited` and `/confirmed`; roles, a body limit, a
/// user-status check against a service that is down, CORS for one origin, and an upstream that takes one
/// request at a time.
fn snapshot() -> Arc<Snapshot> {
    let yaml = format!(
        r#"
listeners:
  public: {{ address: "127.0.0.1:0" }}
  admin: {{ address: "127.0.0.1:1" }}
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{SECRET_FILE}" }}] }}
  user_status: {{ url: "http://127.0.0.1:9/users/{{sub}}" }}
cors:
  allowed_origins: [https://app.example]
rate_limiting:
  policies:
    two: {{ limit: 2, window: 60s, key: [user] }}
upstreams:
  svc: {{ targets: ["127.0.0.1:9"], max_in_flight: 1 }}
routes:
  - {{ name: open, match: {{ path: /open }}, upstream: svc, public: true }}
  - {{ name: buyers, match: {{ path: /buy, methods: [POST] }}, upstream: svc, max_body: 10, auth: {{ roles: [buyer] }} }}
  - {{ name: limited, match: {{ path: /limited }}, upstream: svc, rate_limits: [two], max_body: 10 }}
  - {{ name: confirmed, match: {{ path: /confirmed }}, upstream: svc, rate_limits: [two], auth: {{ user_status: true }} }}
  - {{ name: lenient, match: {{ path: /lenient }}, upstream: svc, auth: {{ user_status: true, on_dependency_failure: open }} }}
"#
    );
    Arc::new(Snapshot::compiled(&yaml))
}

fn token(subject: &str, roles: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "sub": subject, "tenant_id": "t1", "roles": roles, "type": "access",
        "iss": "i", "aud": "a", "iat": now, "exp": now + 600,
    });
    let secret = std::fs::read_to_string(SECRET_FILE).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .unwrap()
}

/// An HTTP/1.1 request head with a `Host` and `headers`.
fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut head = RequestHeader::build(method, path.as_bytes(), None).unwrap();
    head.insert_header("host", "gateway.test").unwrap();
    for (name, value) in headers {
        head.append_header(name.to_string(), *value).unwrap();
    }
    head
}

/// Runs admission once on `head`, from `peer`; returns what it decided and the context it
/// left.
async fn admit_from(
    snapshot: &Arc<Snapshot>,
    head: &mut RequestHeader,
    peer: SocketAddr,
) -> (Result<Verdict, Rejection>, RequestCtx) {
    let mut ctx = RequestCtx::new();
    let mut request = Request {
        head,
        raw_head: None,
        peer: Some(peer),
        upgrade: false,
    };
    let verdict = match admit(&mut request, snapshot, &mut ctx).await {
        Ok(Verdict::Proxy) => super::reserve(&request, snapshot, &mut ctx).map(|()| Verdict::Proxy),
        other => other,
    };
    (verdict, ctx)
}

async fn run(
    snapshot: &Arc<Snapshot>,
    mut head: RequestHeader,
) -> (Result<Verdict, Rejection>, RequestCtx) {
    admit_from(
        snapshot,
        &mut head,
        SocketAddr::from(([127, 0, 0, 1], 40000)),
    )
    .await
}

async fn status(snapshot: &Arc<Snapshot>, head: RequestHeader) -> u16 {
    match run(snapshot, head).await.0 {
        Ok(Verdict::Proxy) => 200,
        Ok(Verdict::Preflight(_)) => 204,
        Ok(Verdict::Replay(stored)) => stored.status,
        Ok(Verdict::Answer(_)) => 200,
        Err(rejection) => rejection.status(),
    }
}

#[tokio::test]
async fn each_stage_refuses_with_its_own_status() {
    let snapshot = snapshot();
    let buyer = format!("Bearer {}", token("u1", &["buyer"]));
    let long_uri = format!("/open/{}", "a".repeat(9000));
    let rows: Vec<(&str, RequestHeader, u16)> = vec![
        ("route: hardening", head("GET", &long_uri, &[]), 414),
        ("route: path", head("GET", "/open/%2e%2e/%2e%2e", &[]), 400),
        ("route: no route", head("GET", "/nowhere", &[]), 404),
        ("route: method", head("GET", "/buy", &[]), 405),
        ("identify: no credential", head("POST", "/buy", &[]), 401),
        (
            "identify: bad token",
            head("POST", "/buy", &[("authorization", "Bearer x.y.z")]),
            401,
        ),
        (
            "identify: roles",
            head(
                "POST",
                "/buy",
                &[(
                    "authorization",
                    &format!("Bearer {}", token("u1", &["fan"])),
                )],
            ),
            403,
        ),
        (
            "confirm: service down, closed",
            head("GET", "/confirmed", &[("authorization", &buyer)]),
            503,
        ),
        (
            "confirm: service down, open",
            head("GET", "/lenient", &[("authorization", &buyer)]),
            200,
        ),
        (
            "reserve: body limit",
            head(
                "POST",
                "/buy",
                &[("authorization", &buyer), ("content-length", "11")],
            ),
            413,
        ),
        (
            "admitted",
            head(
                "POST",
                "/buy",
                &[("authorization", &buyer), ("content-length", "10")],
            ),
            200,
        ),
        ("public", head("GET", "/open", &[]), 200),
    ];
    for (stage, head, expected) in rows {
        assert_eq!(status(&snapshot, head).await, expected, "{stage}");
    }
}

#[tokio::test]
async fn later_stages_do_not_run_after_a_refusal() {
    let snapshot = snapshot();
    // Unauthenticated, over the body limit and on a rate-limited route: identify refuses
    // first, and the refusal costs the caller none of its quota.
    for _ in 0..3 {
        let oversized = head("GET", "/limited", &[("content-length", "11")]);
        assert_eq!(status(&snapshot, oversized).await, 401);
    }
    let bearer = format!("Bearer {}", token("u2", &[]));
    let limited = || {
        head(
            "GET",
            "/limited",
            &[("authorization", &bearer), ("content-length", "11")],
        )
    };
    // Counted before the body limit: two 413s use up the quota, the third is a 429.
    assert_eq!(status(&snapshot, limited()).await, 413);
    assert_eq!(status(&snapshot, limited()).await, 413);
    let (verdict, ctx) = run(&snapshot, limited()).await;
    assert!(
        matches!(verdict, Err(Rejection::RateLimited { .. })),
        "{verdict:?}"
    );
    assert_eq!(
        ctx.quotas.len(),
        1,
        "a 429 keeps its quotas for the RateLimit fields"
    );
    assert!(ctx.pool.is_none(), "nothing was reserved");
    // Limited before confirm: over the limit, the user-status service is not asked (its
    // outage answers 503 until then).
    let token = format!("Bearer {}", token("u3", &[]));
    let confirmed = || head("GET", "/confirmed", &[("authorization", &token)]);
    assert_eq!(status(&snapshot, confirmed()).await, 503);
    assert_eq!(status(&snapshot, confirmed()).await, 503);
    assert_eq!(status(&snapshot, confirmed()).await, 429);
}

#[tokio::test]
async fn a_refused_upgrade_is_the_routes_refusal() {
    let snapshot = snapshot();
    let mut upgrade = head(
        "GET",
        "/open",
        &[("upgrade", "h2c"), ("connection", "upgrade")],
    );
    let mut ctx = RequestCtx::new();
    let mut request = Request {
        head: &mut upgrade,
        raw_head: None,
        peer: None,
        upgrade: true,
    };
    let verdict = admit(&mut request, &snapshot, &mut ctx).await;
    assert_eq!(verdict.map(|_| ()).unwrap_err().status(), 400);
    assert_eq!(
        ctx.route_name(),
        Some("open"),
        "counted and logged as the route's"
    );
}

#[tokio::test]
async fn reserve_holds_the_bulkhead_and_refuses_the_next_request() {
    let snapshot = snapshot();
    let (first, held) = run(&snapshot, head("GET", "/open", &[])).await;
    assert!(matches!(first, Ok(Verdict::Proxy)));
    assert!(held.slot.is_some() && held.breaker.is_some() && held.deadline.is_some());
    let (second, ctx) = run(&snapshot, head("GET", "/open", &[])).await;
    assert!(matches!(second, Err(Rejection::Busy { .. })), "{second:?}");
    assert_eq!(
        ctx.upstream_name(),
        Some("svc"),
        "the refusal names its upstream"
    );
    drop(held);
    assert_eq!(status(&snapshot, head("GET", "/open", &[])).await, 200);
}

#[tokio::test]
async fn identity_comes_from_the_credential_and_client_headers_are_stripped() {
    let snapshot = snapshot();
    let bearer = format!("Bearer {}", token("u4", &["buyer"]));
    let mut spoofed = head(
        "POST",
        "/buy",
        &[
            ("authorization", &bearer),
            ("x-tenant-id", "other"),
            ("x-user-id", "admin"),
        ],
    );
    let (verdict, ctx) = admit_from(
        &snapshot,
        &mut spoofed,
        SocketAddr::from(([10, 0, 0, 1], 1)),
    )
    .await;
    assert!(matches!(verdict, Ok(Verdict::Proxy)), "{verdict:?}");
    assert!(spoofed.headers.get("x-tenant-id").is_none());
    assert!(spoofed.headers.get("x-user-id").is_none());
    let identity = ctx.identity.as_ref().expect("the caller");
    assert_eq!(
        (identity.subject.as_str(), identity.tenant.as_str()),
        ("u4", "t1")
    );
    assert_eq!(ctx.client, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(ctx.route_name(), Some("buyers"));
}

#[tokio::test]
async fn a_preflight_is_answered_by_the_route_stage_without_a_credential() {
    let snapshot = snapshot();
    let preflight = |origin| {
        head(
            "OPTIONS",
            "/buy",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
            ],
        )
    };
    let (allowed, ctx) = run(&snapshot, preflight("https://app.example")).await;
    let Ok(Verdict::Preflight(headers)) = allowed else {
        panic!("{allowed:?}");
    };
    assert!(headers
        .iter()
        .any(|(name, value)| *name == "access-control-allow-origin"
            && value == "https://app.example"));
    assert_eq!(
        ctx.route_name(),
        Some("buyers"),
        "routed by the method it asks about"
    );
    assert!(ctx.pool.is_none(), "a preflight reserves nothing");
    let (refused, _) = run(&snapshot, preflight("https://evil.example")).await;
    assert!(
        matches!(refused, Err(Rejection::CorsRefused)),
        "{refused:?}"
    );
    // A preflight for a method no route takes is an ordinary OPTIONS request: 405 here.
    let unroutable = head(
        "OPTIONS",
        "/buy",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(status(&snapshot, unroutable).await, 405);
}
