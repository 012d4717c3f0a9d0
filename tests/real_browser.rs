//! CORS judged by a real browser (Debian's headless Chromium, installed by `.ci/setup`): a
//! page from an allowed origin calls the gateway with credentials and reads the answer; the
//! same page from another origin is stopped by the browser itself, after the gateway
//! refused its preflight, and the upstream never sees the call.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const SECRET: &str = "0123456789abcdef0123456789abcdef-chromium";
const CHROMIUM: &str = "chromium-headless-shell";

/// The page: one credentialed, authorized fetch to the gateway; what happened ends up in
/// the page's text, which `--dump-dom` prints.
fn page(gateway: std::net::SocketAddr, token: &str) -> String {
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>front end</title></head>
<body>waiting
<script>
fetch("http://{gateway}/api/orders/7", {{
  credentials: "include",
  headers: {{ "Authorization": "Bearer {token}", "Content-Type": "application/json" }},
}})
  .then(async (response) => {{
    const body = await response.json();
    document.body.textContent = "answered " + response.status + " by " + body.service +
      " request-id " + (response.headers.get("x-request-id") ? "readable" : "hidden");
  }})
  .catch((error) => {{ document.body.textContent = "blocked " + error.name; }});
</script></body></html>"#
    )
}

/// What the page says once its fetch settled, loaded from `url`.
fn visit(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
            "--timeout=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .unwrap_or_else(|e| panic!("running {CHROMIUM} (.ci/setup installs it): {e}"));
    assert!(
        output.status.success(),
        "{CHROMIUM}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_lets_allowed_origins_through_and_stops_the_others() {
    let upstream = EchoServer::start("orders").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    // The front end's page server. The same server is two origins to a browser:
    // http://127.0.0.1:port (allowed) and http://localhost:port (not).
    let now = unix_now();
    let token = hs256_jwt(
        SECRET,
        &json!({"sub": "u1", "tenant_id": "t1", "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600}),
    );
    let gateway_addr = std::sync::Arc::new(std::sync::Mutex::new(None));
    let shared = std::sync::Arc::clone(&gateway_addr);
    let token_for_page = token.clone();
    let pages = StubServer::start(move |_| {
        let gateway = shared.lock().unwrap().expect("the gateway runs");
        (200, page(gateway, &token_for_page))
    })
    .await;
    let allowed = format!("http://127.0.0.1:{}", pages.addr.port());
    let gateway = Gateway::start(&format!(
        r#"
authentication:
  jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_file: "{}" }}] }}
cors:
  allowed_origins: ["{allowed}"]
  allowed_headers: [authorization, content-type]
  exposed_headers: [x-request-id]
  allow_credentials: true
upstreams:
  orders: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: orders, match: {{ path: /api/orders }}, upstream: orders }}
"#,
        secret.display(),
        upstream.addr
    ))
    .await;
    *gateway_addr.lock().unwrap() = Some(gateway.public);

    let seen = visit(&format!("{allowed}/app"));
    assert!(
        seen.contains("answered 200 by orders request-id readable"),
        "from the allowed origin: {seen}"
    );
    assert_eq!(upstream.hits(), 1);

    let other = format!("http://localhost:{}/app", pages.addr.port());
    let seen = visit(&other);
    assert!(
        seen.contains("blocked TypeError"),
        "from another origin: {seen}"
    );
    assert_eq!(upstream.hits(), 1, "the browser never sent the call");
    // The gateway refused the preflight, and logged it.
    let refused = eventually(Duration::from_secs(2), || async {
        gateway
            .access_log()
            .lines()
            .any(|line| line.contains("\"method\":\"OPTIONS\"") && line.contains("\"status\":403"))
    })
    .await;
    assert!(refused, "{}", gateway.access_log());
}
