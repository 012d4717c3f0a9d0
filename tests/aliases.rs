//! Aliases through the real gateway: a request on another spelling of a path is routed
//! again as the path it leads to and gets that route's every policy (the audit's
//! `/api/v1/ticket/purchase` took none of `/api/v1/tickets/purchase`'s limits).

mod common;

use common::*;
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef-aliases";

fn token(subject: &str) -> String {
    let now = unix_now();
    hs256_jwt(
        SECRET,
        &json!({"sub": subject, "tenant_id": "t1", "roles": ["customer"], "type": "access",
                "iss": "i", "aud": "a", "iat": now, "exp": now + 600, "jti": "jti-of-the-buyer"}),
    )
}

async fn gateway(tickets: &EchoServer, dir: &tempfile::TempDir) -> Gateway {
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    Gateway::start(&format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
rate_limiting:
  policies:
    ticket-purchase: {{ limit: 5, window: 60s, key: [tenant, user] }}
upstreams:
  tickets: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: tickets, match: {{ path: /api/v1/tickets }}, upstream: tickets }}
  - name: ticket-purchase
    match: {{ path: /api/v1/tickets/purchase, methods: [POST] }}
    upstream: tickets
    rate_limits: [ticket-purchase]
  - {{ name: ticket-lookup, match: {{ path: /api/v1/tickets/:ticketId, methods: [GET] }}, upstream: tickets, public: true }}
  - {{ name: admin, match: {{ path: /api/v1/admin }}, upstream: tickets, public: true, rewrite: {{ replace_prefix: /internal-admin }} }}
aliases:
  - {{ name: tickets-alt, match: {{ path: /api/v1/ticket }}, to: /api/v1/tickets }}
  - {{ name: admin-alt, match: {{ path: /admin }}, to: /api/v1/admin }}
"#,
        secret.display(),
        tickets.addr
    ))
    .await
}

async fn purchase(gateway: &Gateway, path: &str, token: &str) -> Response {
    let bearer = format!("Bearer {token}");
    request(
        gateway.public,
        "POST",
        path,
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        Some(b"{}"),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn purchases_alternating_both_spellings_share_one_limit() {
    let tickets = EchoServer::start("tickets").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway(&tickets, &dir).await;
    let buyer = token("buyer");
    let mut statuses = Vec::new();
    for n in 0..7 {
        let path = if n % 2 == 0 {
            "/api/v1/ticket/purchase"
        } else {
            "/api/v1/tickets/purchase"
        };
        let response = purchase(&gateway, path, &buyer).await;
        if response.status == 200 {
            assert_eq!(
                response.json()["path"],
                "/api/v1/tickets/purchase",
                "the upstream sees the canonical path"
            );
        }
        statuses.push(response.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);

    // The alias needs what the route needs: no token, no purchase.
    let anonymous = request(gateway.public, "POST", "/api/v1/ticket/purchase", &[], None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 401);

    // The route reached decides the rest too: its methods, its public paths.
    let lookup = gateway.get("/api/v1/ticket/t-7?x=1").await;
    assert_eq!(lookup.status, 200);
    assert_eq!(lookup.json()["path"], "/api/v1/tickets/t-7?x=1");
    let wrong_method = request(gateway.public, "DELETE", "/api/v1/ticket/t-7", &[], None)
        .await
        .unwrap();
    assert_eq!(
        wrong_method.status, 401,
        "DELETE reaches `tickets`, which is not public"
    );

    // The route reached rewrites the path the alias led to, as its own requests.
    let rewritten = gateway.get("/admin/stats?day=1").await;
    assert_eq!(rewritten.status, 200);
    assert_eq!(rewritten.json()["path"], "/internal-admin/stats?day=1");

    // Metrics and the access log name the route; the log also names the alias and the path
    // the client asked for.
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(r#"route="ticket-purchase""#) && !metrics.contains("tickets-alt"),
        "{metrics}"
    );
    let log = eventually(std::time::Duration::from_secs(2), || async {
        gateway.access_log().contains("\"alias\":\"tickets-alt\"")
    })
    .await;
    assert!(log, "{}", gateway.access_log());
    let line: serde_json::Value = gateway
        .access_log()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .find(|line: &serde_json::Value| line["alias"] == "tickets-alt")
        .unwrap();
    assert_eq!(line["path"], "/api/v1/ticket/purchase");
    assert_eq!(line["route"], "ticket-purchase");
    // Who called, for incident response: never the token, its jti only as a digest.
    assert_eq!(
        (&line["subject"], &line["tenant"], &line["credential"]),
        (&json!("buyer"), &json!("t1"), &json!("jwt"))
    );
    let digest = line["jti_sha256"].as_str().unwrap();
    assert_eq!(digest.len(), 16);
    assert!(!gateway.access_log().contains("jti-of-the-buyer"));
}
