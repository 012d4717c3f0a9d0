//! Browser-facing behaviour through the real gateway: CORS preflights answered at the edge,
//! CORS headers only for allowed origins, security headers on every response, and upstream
//! `Server`/`X-Powered-By` removed.

mod common;

use common::*;

const APP: &str = "https://app.example.com";

async fn gateway(upstream: &EchoServer) -> Gateway {
    Gateway::start(&format!(
        r#"
{}
cors:
  allowed_origins: ["{APP}"]
  allowed_methods: [GET, POST, PUT]
  allowed_headers: [authorization, content-type]
  exposed_headers: [x-request-id]
  allow_credentials: true
  max_age: 10m
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: private, match: {{ path: /private }}, upstream: svc }}
  - {{ name: open, match: {{ path: /public }}, upstream: svc, public: true }}
"#,
        unused_jwt_section(),
        upstream.addr
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn preflights_are_answered_at_the_edge() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = gateway(&upstream).await;
    let hits = upstream.hits();
    let preflight = |origin: &'static str, method: &'static str, headers: &'static str| {
        let public = gateway.public;
        async move {
            request(
                public,
                "OPTIONS",
                "/private/orders",
                &[
                    ("origin", origin),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", headers),
                ],
                None,
            )
            .await
            .unwrap()
        }
    };
    let response = preflight(APP, "PUT", "authorization, content-type").await;
    assert_eq!(
        response.status,
        204,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        response.header("access-control-allow-methods"),
        Some("GET, POST, PUT")
    );
    assert_eq!(response.header("access-control-max-age"), Some("600"));
    assert_eq!(response.header("vary"), Some("Origin"));
    for (origin, method, headers) in [
        ("https://evil.example", "GET", ""),
        (APP, "DELETE", ""),
        (APP, "GET", "x-tenant-id"),
    ] {
        let response = preflight(origin, method, headers).await;
        assert_eq!(response.status, 403, "{origin} {method} {headers}");
        assert_eq!(response.error_code(), "cors_refused");
        assert!(response.header("access-control-allow-origin").is_none());
    }
    assert_eq!(upstream.hits(), hits, "preflights never reach the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_and_security_headers_on_responses() {
    let upstream = EchoServer::start("svc").await.unwrap();
    upstream.add_response_header("server", "express/4.18");
    upstream.add_response_header("x-powered-by", "Express");
    upstream.add_response_header("access-control-allow-origin", "*");
    let gateway = gateway(&upstream).await;

    let response = request(gateway.public, "GET", "/public/x", &[("origin", APP)], None)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        response.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert!(
        response.header("server").is_none(),
        "the upstream's Server header leaked"
    );
    assert!(response.header("x-powered-by").is_none());
    assert!(
        response.header("strict-transport-security").is_none(),
        "no HSTS on plain HTTP"
    );

    let foreign = request(
        gateway.public,
        "GET",
        "/public/x",
        &[("origin", "https://evil.example")],
        None,
    )
    .await
    .unwrap();
    assert!(
        foreign.header("access-control-allow-origin").is_none(),
        "an upstream's permissive CORS passed through"
    );
    assert_eq!(
        response
            .headers
            .get_all("access-control-allow-origin")
            .iter()
            .count(),
        1
    );

    // Gateway-made answers: the same headers, a strict CSP, and CORS so a browser can read them.
    let denied = request(
        gateway.public,
        "GET",
        "/private/x",
        &[("origin", APP)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        denied.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(denied.header("x-content-type-options"), Some("nosniff"));
}
