//! Token revocation by `jti` through the real gateway: keys the auth service writes in a
//! real redis-server, a file of ids when there is no Redis, answers cached per `jti`, and
//! the per-route fail-closed / fail-open choice while Redis is down. Every refusal is
//! checked against the upstream's hit count.

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef-revocation";

fn token(jti: Option<&str>) -> String {
    let now = unix_now();
    let mut claims = json!({"sub": "u1", "tenant_id": "t1", "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600});
    if let Some(jti) = jti {
        claims["jti"] = json!(jti);
    }
    hs256_jwt(SECRET, &claims)
}

fn config(dir: &Path, upstream: std::net::SocketAddr, revocation: &str, extra: &str) -> String {
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
  revocation: {revocation}
{extra}
upstreams:
  svc: {{ targets: ["{upstream}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: strict, match: {{ path: /strict }}, upstream: svc }}
  - {{ name: lenient, match: {{ path: /lenient }}, upstream: svc, auth: {{ on_dependency_failure: open }} }}
  - {{ name: admin, match: {{ path: /admin }}, upstream: svc, auth: {{ roles: [admin] }} }}
"#,
        secret.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_revoked_in_redis_are_refused_and_an_outage_follows_the_route() {
    let mut redis = RedisServer::start().await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(
        dir.path(),
        upstream.addr,
        "{ cache_ttl: 0s }",
        &redis.section(", timeout: 1s, failure_threshold: 1, retry_interval: 200ms"),
    ))
    .await;
    let (kept, revoked) = (token(Some("jti-kept")), token(Some("jti-revoked")));

    assert_eq!(bearer_get(&gateway, "/strict", &revoked).await.status, 200);
    assert_eq!(bearer_get(&gateway, "/admin", &revoked).await.status, 403);
    // The auth service revokes the token: the next request is refused, on every route,
    // also where its roles would not do (a stolen token shows as revoked, not as a role
    // refusal).
    redis.cli(&["SET", "session:blacklist:jti-revoked", "1", "EX", "600"]);
    let hits = upstream.hits();
    for path in ["/strict", "/lenient", "/admin"] {
        let response = bearer_get(&gateway, path, &revoked).await;
        assert_eq!(response.status, 401, "{path}");
        assert_eq!(response.error_code(), "unauthenticated");
    }
    let response = bearer_get(&gateway, "/strict", &token(None)).await;
    assert_eq!(
        response.status, 401,
        "with revocation on, a token needs a jti"
    );
    assert_eq!(
        upstream.hits(),
        hits,
        "no refused request reached the upstream"
    );
    assert_eq!(bearer_get(&gateway, "/strict", &kept).await.status, 200);
    assert!(redis.command_calls("exists") >= 4);
    let metrics = gateway.metrics().await;
    assert!(
        metric_value(
            &metrics,
            r#"usher_revocation_checks_total{result="revoked",source="redis"}"#
        ) >= Some(3.0),
        "{metrics}"
    );
    assert!(
        metric_value(
            &metrics,
            r#"usher_security_events_total{reason="token_without_jti",severity="medium"}"#
        ) == Some(1.0),
        "{metrics}"
    );

    // Redis down: a token Redis answered for within stale_if_error keeps its answer; for
    // a token never seen the strict route cannot tell, so it refuses (503), and the lenient
    // route lets it through, as its configuration says.
    redis.kill();
    assert_eq!(bearer_get(&gateway, "/strict", &kept).await.status, 200);
    assert_eq!(bearer_get(&gateway, "/strict", &revoked).await.status, 401);
    let unseen = token(Some("jti-unseen"));
    let response = bearer_get(&gateway, "/strict", &unseen).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "auth_unavailable");
    assert_eq!(bearer_get(&gateway, "/lenient", &unseen).await.status, 200);
    let metrics = gateway.metrics().await;
    assert!(
        metric_value(
            &metrics,
            r#"usher_revocation_checks_total{result="valid",source="stale"}"#
        ) >= Some(1.0),
        "{metrics}"
    );

    // A reload during the outage keeps what Redis said: the revocation check's answers
    // are taken over by a reload that keeps the Redis settings.
    gateway.signal("HUP");
    let reloaded = eventually(Duration::from_secs(10), || async {
        metric_value(
            &gateway.metrics().await,
            r#"usher_config_reloads_total{result="success"}"#,
        ) == Some(1.0)
    })
    .await;
    assert!(reloaded, "{}", gateway.stderr());
    assert_eq!(bearer_get(&gateway, "/strict", &kept).await.status, 200);
    assert_eq!(bearer_get(&gateway, "/strict", &revoked).await.status, 401);

    // Redis back (empty: no persistence in this test) and the revocation written again.
    redis.restart().await;
    redis.cli(&["SET", "session:blacklist:jti-revoked", "1"]);
    let recovered = eventually(Duration::from_secs(10), || async {
        bearer_get(&gateway, "/strict", &unseen).await.status == 200
            && bearer_get(&gateway, "/strict", &revoked).await.status == 401
    })
    .await;
    assert!(recovered, "{}", gateway.stderr());
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_are_reused_for_cache_ttl() {
    let redis = RedisServer::start().await;
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(&config(
        dir.path(),
        upstream.addr,
        "{ cache_ttl: 1m }",
        &redis.section(", timeout: 1s"),
    ))
    .await;
    let valid = token(Some("jti-cached"));
    for _ in 0..5 {
        assert_eq!(bearer_get(&gateway, "/strict", &valid).await.status, 200);
    }
    assert_eq!(redis.command_calls("exists"), 1, "one question per jti");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_a_file_of_ids_is_read_on_every_reload() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("revoked");
    std::fs::write(&file, "# revoked by hand\njti-old\n\n").unwrap();
    let gateway = Gateway::start(&config(
        dir.path(),
        upstream.addr,
        &format!("{{ file: \"{}\" }}", file.display()),
        "",
    ))
    .await;
    let (old, new) = (token(Some("jti-old")), token(Some("jti-new")));
    let hits = upstream.hits();
    assert_eq!(bearer_get(&gateway, "/strict", &old).await.status, 401);
    assert_eq!(upstream.hits(), hits);
    assert_eq!(bearer_get(&gateway, "/strict", &new).await.status, 200);

    std::fs::write(&file, "jti-old\njti-new\n").unwrap();
    gateway.signal("HUP");
    let reloaded = eventually(Duration::from_secs(10), || async {
        bearer_get(&gateway, "/strict", &new).await.status == 401
    })
    .await;
    assert!(reloaded, "{}", gateway.stderr());

    // A reload that cannot read the file is refused; the ids already read stay in force.
    std::fs::remove_file(&file).unwrap();
    gateway.signal("HUP");
    let refused = eventually(Duration::from_secs(10), || async {
        gateway.stderr().contains("authentication.revocation.file")
    })
    .await;
    assert!(refused, "{}", gateway.stderr());
    assert_eq!(bearer_get(&gateway, "/strict", &new).await.status, 401);
    assert_eq!(
        bearer_get(&gateway, "/strict", &token(Some("jti-3")))
            .await
            .status,
        200
    );
}
