//! What routes.yaml leaves to the environment besides secrets, through the real gateway:
//! the CORS origins of a deployment's front ends, and the replica count that sizes each
//! replica's share of a limit while Redis is down.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn cors_origins_come_from_the_environment() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let body = format!(
        r#"
cors: {{ allowed_origins_env: WEB_ORIGINS, allow_credentials: true, allowed_headers: [authorization] }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: open, match: {{ path: /open }}, upstream: svc, public: true }}
"#,
        upstream.addr
    );
    let gateway = Gateway::start_with_env(
        &body,
        &[(
            "WEB_ORIGINS",
            "https://app.example.com, https://venues.example.com",
        )],
    )
    .await;
    let preflight = |origin: &'static str| {
        let public = gateway.public;
        async move {
            request(
                public,
                "OPTIONS",
                "/open",
                &[
                    ("origin", origin),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "authorization"),
                ],
                None,
            )
            .await
            .unwrap()
        }
    };
    for origin in ["https://app.example.com", "https://venues.example.com"] {
        let response = preflight(origin).await;
        assert_eq!(response.status, 204, "{origin}");
        assert_eq!(response.header("access-control-allow-origin"), Some(origin));
    }
    assert_eq!(preflight("https://evil.example").await.status, 403);
}

#[tokio::test]
async fn a_missing_or_bad_variable_stops_startup_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(
        &path,
        "listeners:\n  public: { address: \"127.0.0.1:1\" }\n  admin: { address: \"127.0.0.1:2\" }\ncors: { allowed_origins_env: WEB_ORIGINS }\nrate_limiting:\n  redis: { url: \"redis://127.0.0.1:1\", password_env: REDIS_PW, replicas_env: REPLICAS }\nupstreams: { svc: { targets: [\"127.0.0.1:3\"] } }\nroutes: [{ name: r, match: { path: /r }, upstream: svc, public: true }]\n",
    )
    .unwrap();
    let check = |env: &[(&str, &str)]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["check", "--strict"])
            .arg(&path)
            .env_remove("WEB_ORIGINS")
            .env_remove("REPLICAS")
            .env("REDIS_PW", "unused")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let unset = check(&[]);
    assert!(unset.contains("routes.yaml:4:9: cors.allowed_origins_env: environment variable WEB_ORIGINS is not set"), "{unset}");
    assert!(
        unset
            .contains("rate_limiting.redis.replicas_env: environment variable REPLICAS is not set"),
        "{unset}"
    );
    let bad = check(&[
        ("WEB_ORIGINS", "https://ok.example,ftp://no"),
        ("REPLICAS", "0"),
    ]);
    assert!(
        bad.contains("cors.allowed_origins_env: WEB_ORIGINS: invalid origin \"ftp://no\""),
        "{bad}"
    );
    assert!(
        bad.contains("REPLICAS is \"0\", not a number of replicas (1 or more)"),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn while_redis_is_down_each_replica_keeps_one_replicas_share() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("redis-password");
    std::fs::write(&password, "unused\n").unwrap();
    // No Redis answers on this port: every decision falls back to this replica's share.
    let dead = free_port();
    let body = format!(
        r#"
rate_limiting:
  redis: {{ url: "redis://127.0.0.1:{dead}", password_file: "{}", replicas_env: REPLICAS, readiness: reported }}
  policies:
    six: {{ limit: 6, window: 60s, key: [client] }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: limited, match: {{ path: /limited }}, upstream: svc, public: true, rate_limits: [six] }}
"#,
        password.display(),
        upstream.addr
    );
    let gateway = Gateway::start_with_env(&body, &[("REPLICAS", "3")]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(gateway.get("/limited").await.status);
    }
    assert_eq!(statuses, [200, 200, 429, 429], "6 / 3 replicas = 2 each");
    let limited = gateway.get("/limited").await;
    assert_eq!(limited.header("ratelimit-policy"), Some("\"six\";q=2;w=60"));
}
