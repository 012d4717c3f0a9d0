//! User-status and venue-access checks against a stand-in service through the real gateway:
//! banned users refused, answers cached (across reloads too), values encoded into one path
//! segment, and the per-route fail-closed / fail-open choice when the service cannot answer.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const SECRET: &str = "0123456789abcdef0123456789abcdef-lookups";

/// Answers `/internal/users/{sub}/status` and `/internal/venues/{venue}/access/{sub}`:
/// only user u1, and u1 on venue v7, are allowed; `down` makes every answer a 500.
struct Directory {
    addr: std::net::SocketAddr,
    down: Arc<AtomicBool>,
    stub: StubServer,
}

impl Directory {
    async fn start() -> Directory {
        let down = Arc::new(AtomicBool::new(false));
        let outage = Arc::clone(&down);
        let stub = StubServer::start(move |path| {
            let status = match path {
                _ if outage.load(Ordering::SeqCst) => 500,
                "/internal/users/u1/status" | "/internal/venues/v7/access/u1" => 200,
                _ => 403,
            };
            (status, String::new())
        })
        .await;
        Directory {
            addr: stub.addr,
            down,
            stub,
        }
    }

    fn asked(&self) -> Vec<String> {
        self.stub.asked()
    }
}

fn token(sub: &str, venues: &[&str]) -> String {
    let now = unix_now();
    let claims = json!({"sub": sub, "tenant_id": "t1", "roles": ["venue_manager"], "venue_ids": venues, "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600});
    hs256_jwt(SECRET, &claims)
}

#[tokio::test(flavor = "multi_thread")]
async fn banned_users_and_unconfirmed_venues_are_refused_with_cached_answers() {
    let directory = Directory::start().await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let base = format!("http://{}", directory.addr);
    let gateway = Gateway::start(&format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
  user_status: {{ url: "{base}/internal/users/{{sub}}/status", cache_ttl: 5m, negative_cache_ttl: 30s }}
  venue_access: {{ url: "{base}/internal/venues/{{venue}}/access/{{sub}}" }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: orders, match: {{ path: /orders }}, upstream: svc, auth: {{ user_status: true }} }}
  - {{ name: lenient, match: {{ path: /lenient }}, upstream: svc, auth: {{ user_status: true, on_dependency_failure: open }} }}
  - {{ name: venue, match: {{ path: /venues/:venueId }}, upstream: svc, auth: {{ venue_param: venueId, venue_check: true }} }}
"#,
        secret.display(),
        upstream.addr
    ))
    .await;
    let gateway = &gateway;
    let call = |path: &'static str, token: String| async move {
        bearer_get(gateway, path, &token).await.status
    };

    assert_eq!(call("/orders/1", token("u1", &[])).await, 200);
    let hits = upstream.hits();
    assert_eq!(
        call("/orders/1", token("banned", &[])).await,
        401,
        "a banned user's valid token stops working"
    );
    assert_eq!(
        call("/orders/1", token("../u1", &[])).await,
        401,
        "the subject cannot steer the lookup"
    );
    assert_eq!(upstream.hits(), hits);
    assert!(
        directory
            .asked()
            .contains(&"/internal/users/..%2Fu1/status".to_string()),
        "{:?}",
        directory.asked()
    );

    // Answers are cached: more requests, no more questions.
    let asked = directory.asked().len();
    for _ in 0..5 {
        assert_eq!(call("/orders/1", token("u1", &[])).await, 200);
        assert_eq!(call("/orders/1", token("banned", &[])).await, 401);
    }
    assert_eq!(directory.asked().len(), asked);

    // Venue scope is confirmed with the venue service, on top of the claim.
    assert_eq!(call("/venues/v7", token("u1", &["v7"])).await, 200);
    assert_eq!(
        call("/venues/v8", token("u1", &["v8"])).await,
        403,
        "the claim says v8, the venue service does not"
    );

    // The service goes down: closed routes answer 503, open ones let the request through.
    directory.down.store(true, Ordering::SeqCst);
    let response = request(
        gateway.public,
        "GET",
        "/orders/1",
        &[("authorization", &format!("Bearer {}", token("u2", &[])))],
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "auth_unavailable");
    assert_eq!(call("/lenient/1", token("u3", &[])).await, 200);
    assert_eq!(
        call("/orders/1", token("u1", &[])).await,
        200,
        "cached answers still serve"
    );

    // A reload during the outage keeps the answers: the URLs asked are the same.
    let reloads = r#"usher_config_reloads_total{result="success"}"#;
    let before = metric_value(&gateway.metrics().await, reloads).unwrap_or(0.0);
    gateway.signal("HUP");
    let reloaded = eventually(std::time::Duration::from_secs(5), || async {
        metric_value(&gateway.metrics().await, reloads).unwrap_or(0.0) > before
    })
    .await;
    assert!(reloaded, "{}", gateway.stderr());
    assert_eq!(
        call("/orders/1", token("u1", &[])).await,
        200,
        "a reload forgot the cached answers"
    );
    assert_eq!(call("/venues/v7", token("u1", &["v7"])).await, 200);
    assert_eq!(call("/orders/1", token("banned", &[])).await, 401);

    let metrics = gateway.metrics().await;
    for reason in ["user_inactive", "venue_denied"] {
        let series =
            format!(r#"usher_security_events_total{{reason="{reason}",severity="medium"}}"#);
        assert!(
            metric_value(&metrics, &series).unwrap_or(0.0) >= 1.0,
            "{series}"
        );
    }
}
