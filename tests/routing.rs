//! Routing through the real gateway: prefixes on segment boundaries, parameters, methods,
//! hosts, rewrites, normalization attacks, body limits and correlation headers.

mod common;

use common::*;

async fn setup() -> (Gateway, EchoServer, EchoServer, EchoServer) {
    let (public, private, admin_api) = (
        EchoServer::start("public-svc").await.unwrap(),
        EchoServer::start("private-svc").await.unwrap(),
        EchoServer::start("admin-host-svc").await.unwrap(),
    );
    let body = format!(
        r#"
{}
upstreams:
  public-svc:  {{ targets: ["{}"] }}
  private-svc: {{ targets: ["{}"] }}
  admin-api:   {{ targets: ["{}"] }}
routes:
  - name: auth
    match: {{ path: /api/v1/auth }}
    upstream: public-svc
    rewrite: {{ replace_prefix: /auth }}
    public_paths: [/login, /open/*]
  - name: docs
    match: {{ path: /docs }}
    upstream: public-svc
    public: true
    rewrite: {{ strip_prefix: true }}
    max_body: 16
  - name: venues
    match: {{ path: /api/v1/venues }}
    upstream: private-svc
  - name: event-tickets
    match: {{ path: /api/v1/events/:eventId/tickets }}
    upstream: public-svc
    public: true
  - name: jobs
    match: {{ path: /api/v1/jobs, methods: [POST, PUT] }}
    upstream: public-svc
    public: true
  - name: admin-host
    match: {{ path: /api/v1/venues, host: admin.example.com }}
    upstream: admin-api
    public: true
"#,
        unused_jwt_section(),
        public.addr,
        private.addr,
        admin_api.addr
    );
    let gateway = Gateway::start(&body).await;
    (gateway, public, private, admin_api)
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_rewrites_and_rejections() {
    let (gateway, public, private, _admin_api) = setup().await;

    // Public path of an authenticated route, rewritten onto the service's prefix.
    let response = gateway.get("/api/v1/auth/login?next=%2Fhome").await;
    assert_eq!(response.status, 200);
    let echo = response.json();
    assert_eq!(echo["service"], "public-svc");
    assert_eq!(echo["path"], "/auth/login?next=%2Fhome");

    // A subtree public path, and a strip_prefix rewrite.
    assert_eq!(
        gateway.get("/api/v1/auth/open/a/b").await.json()["path"],
        "/auth/open/a/b"
    );
    assert_eq!(gateway.get("/docs/guide").await.json()["path"], "/guide");
    assert_eq!(gateway.get("/docs").await.json()["path"], "/");

    // Secure by default: everything else needs authentication and never reaches upstream.
    let before = private.hits();
    for path in [
        "/api/v1/venues",
        "/api/v1/venues/7",
        "/api/v1/auth/me",
        "/api/v1/auth/loginx",
    ] {
        let response = gateway.get(path).await;
        assert_eq!(response.status, 401, "{path}");
        assert_eq!(response.error_code(), "unauthenticated");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(
        private.hits(),
        before,
        "rejected requests must not reach the upstream"
    );

    // Segment boundaries and parameters.
    let response = gateway.get("/api/v1/venuesX").await;
    assert_eq!(response.status, 404);
    assert_eq!(response.error_code(), "route_not_found");
    assert_eq!(
        gateway.get("/api/v1/events/42/tickets").await.json()["path"],
        "/api/v1/events/42/tickets"
    );
    assert_eq!(gateway.get("/api/v1/events/42").await.status, 404);

    // Methods.
    let response = gateway.get("/api/v1/jobs").await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST, PUT"));
    assert_eq!(response.error_code(), "method_not_allowed");
    let response = request(gateway.public, "POST", "/api/v1/jobs", &[], Some(b"{}"))
        .await
        .unwrap();
    assert_eq!(response.json()["method"], "POST");

    // Host routing wins over the host-less route, for every spelling of the host: case,
    // port, and the trailing dot of a fully qualified name.
    for host in [
        "Admin.Example.com:8080",
        "admin.example.com.",
        "ADMIN.EXAMPLE.COM.:9",
    ] {
        let response = request(
            gateway.public,
            "GET",
            "/api/v1/venues/1",
            &[("host", host)],
            None,
        )
        .await
        .unwrap();
        assert_eq!(response.json()["service"], "admin-host-svc", "{host}");
    }

    let hits_before = public.hits();
    assert!(hits_before > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn normalization_attacks_never_reach_another_route() {
    let (gateway, _public, private, _admin_api) = setup().await;
    let before = private.hits();
    // Each tries to reach the protected venues route through the public login path.
    let attacks = [
        ("/api/v1/auth/login/../../venues", 401),
        ("/api/v1/auth/login/%2e%2e/%2e%2e/venues", 401),
        ("/api/v1/auth/login/%2E%2E/%2E%2E/venues", 401),
        ("/api/v1/auth/login/..%2f..%2fvenues", 400),
        ("/api/v1/auth/login%2f..%2f..%2fvenues", 400),
        ("/api/v1/auth/login/..%5c..%5cvenues", 400),
        ("//api//v1//venues", 401),
        ("/api/v1/./venues", 401),
        ("/../api/v1/venues", 400),
        ("/api/v1/auth/login/%00", 400),
        ("/api/v1/auth/login/..;/..;/venues", 400),
        ("/api/v1/auth/login/..%3B/..%3B/venues", 400),
    ];
    for (path, expected) in attacks {
        let response = gateway.get(path).await;
        assert_eq!(
            response.status,
            expected,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    assert_eq!(
        private.hits(),
        before,
        "no attack reached the protected upstream"
    );

    // A raw backslash, which HTTP clients refuse to send.
    let raw = raw_request(
        gateway.public,
        b"GET /api/v1/auth/login\\..\\..\\venues HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_ne!(raw_status(&raw), 200, "{raw}");
    assert_eq!(private.hits(), before);

    // The normalized path is what the upstream receives.
    let response = gateway.get("/api/v1/auth/x/../login").await;
    assert_eq!(response.json()["path"], "/auth/login");
    let response = gateway.get("/docs//a/%7euser/./b").await;
    assert_eq!(response.json()["path"], "/a/~user/b");
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_limits_and_correlation() {
    let (gateway, _public, _private, _admin_api) = setup().await;

    // Client-sent identity headers never reach an upstream.
    let response = request(
        gateway.public,
        "GET",
        "/api/v1/auth/login",
        &[
            ("X-Tenant-ID", "victim"),
            ("x-internal-admin", "1"),
            ("X-User-Id", "7"),
        ],
        None,
    )
    .await
    .unwrap();
    let headers = &response.json()["headers"];
    for name in ["x-tenant-id", "x-internal-admin", "x-user-id"] {
        assert!(
            headers.get(name).is_none(),
            "{name} was forwarded: {headers}"
        );
    }

    // Request id and traceparent: generated, forwarded and returned.
    let request_id = response.header("x-request-id").unwrap().to_string();
    assert_eq!(request_id.len(), 32);
    assert_eq!(headers["x-request-id"][0], request_id.as_str());
    let traceparent = headers["traceparent"][0].as_str().unwrap();
    assert!(
        traceparent.starts_with("00-") && traceparent.len() == 55,
        "{traceparent}"
    );

    // ...and kept when the client sends valid ones.
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = request(
        gateway.public,
        "GET",
        "/api/v1/auth/login",
        &[("x-request-id", "client-id-1"), ("traceparent", parent)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.header("x-request-id"), Some("client-id-1"));
    assert_eq!(response.json()["headers"]["traceparent"][0], parent);

    // Body limits: declared length, and a chunked body that grows past the limit.
    let response = request(
        gateway.public,
        "POST",
        "/docs/upload",
        &[],
        Some(&[b'x'; 17]),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 413);
    assert_eq!(response.error_code(), "payload_too_large");
    let raw = raw_request(
        gateway.public,
        b"POST /docs/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\n0123456789abcdef\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&raw), 413, "{raw}");
    let response = request(
        gateway.public,
        "POST",
        "/docs/upload",
        &[],
        Some(&[b'x'; 16]),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);

    // Gateway errors carry the request id in the body and the header.
    let response = gateway.get("/nowhere").await;
    assert_eq!(
        response.json()["error"]["request_id"],
        response.header("x-request-id").unwrap()
    );
    assert_eq!(response.header("content-type"), Some("application/json"));

    // One access log line per request, JSON, without the query string.
    let _ = gateway.get("/api/v1/auth/login?token=secret-value").await;
    let found = eventually(std::time::Duration::from_secs(2), || async {
        gateway
            .access_log()
            .contains("\"path\":\"/api/v1/auth/login\"")
    })
    .await;
    assert!(found, "access log: {}", gateway.access_log());
    assert!(!gateway.access_log().contains("secret-value"));
    for line in gateway.access_log().lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).expect("each access log line is JSON");
        assert_eq!(record["kind"], "access");
    }
}
