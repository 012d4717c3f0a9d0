//! The README's first command: `usher demo` on free ports, followed the way its banner says,
//! claim by claim, with the credentials the banner prints.

mod common;

use common::{documented_metric_families, eventually, free_port, get, request, Response};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `usher demo`; killed, and its directory removed, when dropped.
struct Demo {
    child: Child,
    public: SocketAddr,
    admin: SocketAddr,
    banner: String,
    _output: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        let output = tempfile::tempdir().unwrap();
        let stdout = output.path().join("stdout.log");
        let stderr = output.path().join("stderr.log");
        let (port, admin_port) = (free_port(), free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["demo", "--port", &port.to_string()])
            .args(["--admin-port", &admin_port.to_string()])
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .expect("starting usher demo");
        let public: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "usher demo exited early ({status}):\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            let started = matches!(get(admin, "/health/startup").await, Ok(r) if r.status == 200)
                && tokio::net::TcpStream::connect(public).await.is_ok();
            if started {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "usher demo did not start in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let banner = std::fs::read_to_string(&stdout).unwrap();
        Demo {
            child,
            public,
            admin,
            banner,
            _output: output,
        }
    }

    /// What the banner prints between `start` and the next `end` (or the end of the line),
    /// on the first line holding `start`.
    fn printed(&self, start: &str, end: char) -> String {
        self.banner
            .lines()
            .find_map(|line| {
                let (_, rest) = line.split_once(start)?;
                Some(rest.split(end).next().unwrap_or(rest).to_string())
            })
            .unwrap_or_else(|| panic!("the banner prints no {start:?}:\n{}", self.banner))
    }

    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.public, method, path, headers, None)
            .await
            .expect("request to the demo")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let directory = std::env::temp_dir().join(format!("usher-demo-{}", self.child.id()));
        let _ = std::fs::remove_dir_all(directory);
    }
}

/// What the echo upstream received: its service name, path and headers.
fn echoed(response: &Response) -> serde_json::Value {
    assert_eq!(
        response.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    response.json()
}

#[tokio::test]
async fn the_demo_does_what_its_banner_says() {
    let mut demo = Demo::start().await;
    let token = demo.printed("TOKEN=", ' ');
    // The admin token is the one printed in full, not as $TOKEN.
    let admin_token = format!("eyJ{}", demo.printed("Bearer eyJ", '"'));
    let api_key = demo.printed("x-api-key: ", '\'');
    let bearer = format!("Bearer {token}");

    // Before any request, on the shipped configuration: every family docs/metrics.md
    // documents is there, zero-valued where nothing happened yet.
    let metrics = get(demo.admin, "/metrics").await.unwrap();
    let metrics = String::from_utf8(metrics.body).unwrap();
    let missing: Vec<String> = documented_metric_families()
        .into_iter()
        .filter(|name| !metrics.contains(&format!("# TYPE {name} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "documented, not exported at start: {missing:?}"
    );
    for series in [
        r#"usher_upstream_errors_total{kind="connect_refused",upstream="tickets"} 0"#,
        r#"usher_idempotency_total{outcome="replayed",route="ticket-purchase"} 0"#,
        r#"usher_budget_amount_total{outcome="spent",policy="mint-tenant-daily"} 0"#,
        r#"usher_signature_verifications_total{result="mismatch",route="payment-webhooks",scheme="stripe"} 0"#,
        r#"usher_security_events_total{reason="bad_signature",severity="high"} 0"#,
        r#"usher_shed_requests_total{tier="free"} 0"#,
        r#"usher_trace_spans_total{outcome="queue_full"} 0"#,
    ] {
        assert!(metrics.contains(series), "{series} missing at start");
    }

    let login = request(
        demo.public,
        "POST",
        "/api/v1/auth/login",
        &[("content-type", "application/json")],
        Some(br#"{"email":"a@b.c"}"#),
    )
    .await
    .unwrap();
    let login = echoed(&login);
    assert_eq!(login["service"], "auth");
    assert_eq!(login["path"], "/auth/login");

    let anonymous = demo.call("GET", "/api/v1/venues/7", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.error_code(), "unauthenticated");

    let venue = demo
        .call(
            "GET",
            "/api/v1/venues/7",
            &[("authorization", &bearer), ("x-tenant-id", "victim")],
        )
        .await;
    let venue = echoed(&venue);
    assert_eq!(
        venue["headers"]["x-tenant-id"],
        serde_json::json!(["tenant-demo"])
    );
    assert_eq!(
        venue["headers"]["x-user-id"],
        serde_json::json!(["demo-user"])
    );

    let other_venue = demo
        .call("PATCH", "/api/v1/venues/8", &[("authorization", &bearer)])
        .await;
    assert_eq!(other_venue.status, 403);

    let dashboard = "/api/v1/minting/admin/stats/7";
    let customer = demo
        .call("GET", dashboard, &[("authorization", &bearer)])
        .await;
    assert_eq!(customer.status, 403);
    let admin = format!("Bearer {admin_token}");
    let admin_call = demo
        .call("GET", dashboard, &[("authorization", &admin)])
        .await;
    assert_eq!(echoed(&admin_call)["service"], "minting");
    // What reaches the minting service carries Usher's signature, by a published key.
    let signed = &echoed(&admin_call)["headers"]["signature-input"][0];
    assert!(
        signed
            .as_str()
            .is_some_and(|s| s.contains(r#"keyid="usher-1""#)),
        "{signed}"
    );
    let keys = get(demo.admin, "/signing-keys").await.unwrap().json();
    assert_eq!(keys["keys"][0]["kid"], "usher-1");
    // A venue in the path keeps its place through the rewrite; a ticket id must have its
    // shape.
    let history = demo
        .call(
            "GET",
            "/api/v1/minting/admin/reconcile/7/history?page=2",
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(
        echoed(&history)["path"],
        "/admin/reconcile/7/history?page=2"
    );
    let platform = format!(
        "Bearer {}",
        demo_token(&demo, "platform-1", &["platform_admin"], &[])
    );
    let odd_ticket = demo
        .call(
            "GET",
            "/api/v1/minting/admin/mints/ticket.7",
            &[("authorization", &platform)],
        )
        .await;
    assert_eq!(
        (odd_ticket.status, odd_ticket.error_code().as_str()),
        (400, "invalid_parameter")
    );

    // A purchase needs an Idempotency-Key and a body its schema accepts; with both, retried,
    // it is replayed.
    const ORDER: &[u8] = br#"{"eventId":"evt-1","tickets":[{"ticketTypeId":"ga","quantity":2}]}"#;
    let purchase = |key: Option<&'static str>, body: &'static [u8]| {
        let mut headers = vec![
            ("authorization", bearer.clone()),
            ("content-type", "application/json".to_string()),
        ];
        if let Some(key) = key {
            headers.push(("idempotency-key", key.to_string()));
        }
        let public = demo.public;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            request(
                public,
                "POST",
                "/api/v1/tickets/purchase",
                &headers,
                Some(body),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(
        purchase(None, ORDER).await.error_code(),
        "idempotency_key_missing"
    );
    let invalid = purchase(Some("\"order-1\""), br#"{"eventId":"evt-1","tickets":[]}"#).await;
    assert_eq!(
        (invalid.status, invalid.error_code().as_str()),
        (422, "invalid_body")
    );
    let first = purchase(Some("\"order-1\""), ORDER).await;
    assert_eq!(echoed(&first)["service"], "tickets");
    // (recorded once delivered: a retry in that very instant is told 409, in flight)
    let mut replayed = purchase(Some("\"order-1\""), ORDER).await;
    for _ in 0..40 {
        if replayed.status != 409 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        replayed = purchase(Some("\"order-1\""), ORDER).await;
    }
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, first.body);

    // A batch of more than 100 tickets, as the banner walks it: held for approval, the
    // submitter cannot approve it, the other admin can, and then it goes through once.
    let admin_bearer = format!("Bearer {}", demo.printed("ADMIN=", ' '));
    let approver = format!("Bearer {}", demo.printed("APPROVER=", ' '));
    let batch_file = demo.printed("-d @", '\'');
    let batch = std::fs::read(&batch_file).unwrap();
    let mint = |who: &str| {
        let headers = [
            ("authorization", who.to_string()),
            ("content-type", "application/json".to_string()),
            ("idempotency-key", "\"batch-1\"".to_string()),
        ];
        let (public, batch) = (demo.public, batch.clone());
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            request(
                public,
                "POST",
                "/api/v1/minting/admin/batch-mint",
                &headers,
                Some(&batch),
            )
            .await
            .unwrap()
        }
    };
    let held = mint(&admin_bearer).await;
    assert_eq!(
        (held.status, held.error_code().as_str()),
        (403, "approval_required")
    );
    let id = held.json()["error"]["details"]["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let status_path = format!("/api/v1/approvals/{id}");
    let approve_path = format!("{status_path}/approve");
    let pending = demo
        .call("GET", &status_path, &[("authorization", &approver)])
        .await;
    assert_eq!(
        (
            pending.json()["status"].as_str(),
            pending.json()["amount"].as_u64()
        ),
        (Some("pending"), Some(150))
    );
    let own = demo
        .call("POST", &approve_path, &[("authorization", &admin_bearer)])
        .await;
    assert_eq!(own.error_code(), "approval_self");
    let approved = demo
        .call("POST", &approve_path, &[("authorization", &approver)])
        .await;
    assert_eq!(approved.json()["status"], "approved");
    let mut minted = mint(&admin_bearer).await;
    for _ in 0..40 {
        if minted.status != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        minted = mint(&admin_bearer).await;
    }
    assert_eq!(
        echoed(&minted)["headers"]["x-approved-by"],
        serde_json::json!(["jwt:demo-approver"])
    );

    // A signed webhook, run as the banner prints it (openssl signs, curl sends): passes
    // once, a replay is 409, a changed body 401.
    let webhook_lines: Vec<&str> = demo
        .banner
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("WHSEC="))
        .take(6)
        .collect();
    let run = std::process::Command::new("bash")
        .args(["-c", &webhook_lines.join("\n")])
        .output()
        .expect("bash runs the banner's webhook lines");
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(said.contains(r#""service":"payments""#), "{said}");
    assert!(
        said.contains("HTTP/1.1 409") && said.contains("webhook_replayed"),
        "{said}"
    );
    assert!(
        said.contains("HTTP/1.1 401") && said.contains("webhook_signature_invalid"),
        "{said}"
    );

    let partner = demo
        .call(
            "GET",
            "/api/v1/integrations/sync",
            &[("x-api-key", &api_key)],
        )
        .await;
    assert_eq!(
        echoed(&partner)["headers"]["x-tenant-id"],
        serde_json::json!(["partner-demo"])
    );

    let register = demo
        .call(
            "POST",
            "/api/v1/auth/register",
            &[("x-tenant-id", "victim")],
        )
        .await;
    assert!(echoed(&register)["headers"].get("x-tenant-id").is_none());

    let trick = demo
        .call("GET", "/api/v1/auth/login/..%2f..%2fvenues", &[])
        .await;
    assert_eq!(trick.status, 400);
    assert_eq!(demo.call("GET", "/nope", &[]).await.status, 404);

    // Revoke the token the way the banner says, and reload.
    let revoked = PathBuf::from(demo.printed("echo demo-token >> ", ' '));
    let pid = demo.printed("kill -HUP ", ' ');
    assert_eq!(pid, demo.child.id().to_string());
    let mut ids = std::fs::read_to_string(&revoked).unwrap();
    ids.push_str("demo-token\n");
    std::fs::write(&revoked, ids).unwrap();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    let refused = eventually(Duration::from_secs(5), || async {
        let response = demo
            .call("GET", "/api/v1/venues/7", &[("authorization", &bearer)])
            .await;
        response.status == 401
    })
    .await;
    assert!(refused, "the revoked demo token is still accepted");
    let dashboard_again = demo
        .call("GET", dashboard, &[("authorization", &bearer)])
        .await;
    assert_eq!(dashboard_again.status, 401, "revoked, whatever its roles");

    let ready = get(demo.admin, "/health/ready").await.unwrap();
    assert_eq!(ready.status, 200);
    let metrics = get(demo.admin, "/metrics").await.unwrap();
    let metrics = String::from_utf8(metrics.body).unwrap();
    assert!(metrics.contains("usher_http_requests_total"), "{metrics}");

    // Stopped as the banner's process is (SIGTERM), the demo takes its secrets with it.
    let directory = revoked.parent().unwrap().to_path_buf();
    assert!(directory.join("jwt-secret").exists());
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let stop = Instant::now() + Duration::from_secs(30);
    while demo.child.try_wait().unwrap().is_none() && Instant::now() < stop {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        demo.child.try_wait().unwrap().is_some(),
        "the demo did not stop on SIGTERM"
    );
    assert!(
        !directory.exists(),
        "{} was left behind",
        directory.display()
    );
}

/// A token for the demo, signed with the secret it wrote to its directory.
fn demo_token(demo: &Demo, sub: &str, roles: &[&str], venues: &[&str]) -> String {
    let directory = std::env::temp_dir().join(format!("usher-demo-{}", demo.child.id()));
    let secret = std::fs::read_to_string(directory.join("jwt-secret")).unwrap();
    let now = common::unix_now();
    common::hs256_jwt(
        &secret,
        &serde_json::json!({
            "sub": sub, "tenant_id": "tenant-demo", "roles": roles, "venue_ids": venues,
            "type": "access", "iss": "tickettoken-auth", "aud": "tickettoken-api",
            "iat": now, "exp": now + 600, "jti": format!("{sub}-jti"),
        }),
    )
}

#[tokio::test]
async fn minting_admins_act_within_their_scope() {
    let demo = Demo::start().await;
    let tenant_admin = format!(
        "Bearer {}",
        demo_token(&demo, "admin-7", &["admin"], &["7"])
    );
    let platform = format!(
        "Bearer {}",
        demo_token(&demo, "platform-1", &["platform_admin"], &[])
    );
    let customer = format!("Bearer {}", demo_token(&demo, "fan-1", &["customer"], &[]));
    let call =
        |method: &'static str, path: &'static str, who: &String, body: Option<&'static str>| {
            let who = who.clone();
            let public = demo.public;
            async move {
                let mut headers = vec![("authorization", who.as_str())];
                if body.is_some() {
                    headers.push(("content-type", "application/json"));
                    headers.push(("idempotency-key", "\"scope-1\""));
                }
                request(public, method, path, &headers, body.map(str::as_bytes))
                    .await
                    .unwrap()
            }
        };
    // A tenant admin: its own venue, not another, and nothing destructive.
    let own = call("GET", "/api/v1/minting/admin/stats/7", &tenant_admin, None).await;
    assert_eq!(echoed(&own)["path"], "/admin/stats/7");
    let status = |r: Response| (r.status, r.error_code());
    let forbidden = (403, "forbidden".to_string());
    for (method, path) in [
        ("GET", "/api/v1/minting/admin/stats/8"),
        ("GET", "/api/v1/minting/admin/reconcile/8/history"),
        ("DELETE", "/api/v1/minting/admin/cache/clear"),
    ] {
        assert_eq!(
            status(call(method, path, &tenant_admin, None).await),
            forbidden,
            "{method} {path}"
        );
    }
    let fix = call(
        "POST",
        "/api/v1/minting/admin/reconcile/7/fix",
        &tenant_admin,
        Some("{}"),
    )
    .await;
    assert_eq!(status(fix), forbidden);
    // A batch names its venue in the body, held to the same scope.
    let elsewhere = call(
        "POST",
        "/api/v1/minting/admin/batch-mint",
        &tenant_admin,
        Some(r#"{"venueId":"8","ticketIds":["a","b"]}"#),
    )
    .await;
    assert_eq!(status(elsewhere), forbidden);
    let batch = call(
        "POST",
        "/api/v1/minting/admin/batch-mint",
        &tenant_admin,
        Some(r#"{"venueId":"7","ticketIds":["a","b","c"]}"#),
    )
    .await;
    assert_eq!(echoed(&batch)["path"], "/admin/batch-mint");
    let standing = batch.header("ratelimit").unwrap_or_default().to_string();
    assert!(
        standing.contains(r#""mint-tenant-daily";r=4997"#)
            && standing.contains(r#""mint-admin-hourly";r=997"#),
        "{standing}"
    );

    // A platform admin: every venue, and the destructive routes.
    let other = call("GET", "/api/v1/minting/admin/stats/8", &platform, None).await;
    assert_eq!(echoed(&other)["path"], "/admin/stats/8");
    let clear = call(
        "DELETE",
        "/api/v1/minting/admin/cache/clear",
        &platform,
        None,
    )
    .await;
    assert_eq!(echoed(&clear)["path"], "/admin/cache/clear");
    // A customer reaches no admin route, and its own mint status, as itself.
    let refused = call("GET", "/api/v1/minting/admin/stats/7", &customer, None).await;
    assert_eq!(status(refused), forbidden);
    // What spans tenants is the platform's: a tenant admin reads no dashboard or mint.
    for path in [
        "/api/v1/minting/admin/dashboard",
        "/api/v1/minting/admin/mints/t-1",
    ] {
        let listing = call("GET", path, &tenant_admin, None).await;
        assert_eq!(status(listing), forbidden, "{path}");
        assert_eq!(
            call("GET", path, &platform, None).await.status,
            200,
            "{path}"
        );
    }
    // Writes pass through their own routes only: another spelling is not one.
    let odd = call(
        "POST",
        "/api/v1/minting/admin/Batch-Mint",
        &platform,
        Some("{}"),
    )
    .await;
    assert_eq!(odd.status, 405);
    let mine = call("GET", "/api/v1/minting/status/t-1", &customer, None).await;
    let mine = echoed(&mine);
    assert_eq!(
        (mine["service"].as_str(), mine["path"].as_str()),
        (Some("minting"), Some("/status/t-1"))
    );
    assert_eq!(mine["headers"]["x-user-id"], serde_json::json!(["fan-1"]));
}
