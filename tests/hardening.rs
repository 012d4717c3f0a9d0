//! Request hardening against the running gateway, with raw HTTP/1.1 so that malformed
//! requests reach it exactly as written. For each case: the status, whether the answer is
//! Usher's JSON (Usher refused it) or Pingora's own (its parser refused it first), and that
//! the upstream never saw the request.

mod common;

use common::*;

/// One upstream `svc` behind a public catch-all route and a public WebSocket route.
fn open_routes(upstream: &EchoServer) -> String {
    format!(
        r#"
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: open, match: {{ path: / }}, upstream: svc, public: true }}
  - {{ name: socket, match: {{ path: /socket }}, upstream: svc, public: true, websocket: true }}
"#,
        upstream.addr
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_abusive_requests_are_refused_before_the_upstream() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&open_routes(&upstream)).await;
    let long_uri = format!("/{}", "a".repeat(9 * 1024));
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let too_many_to_parse: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "b".repeat(33 * 1024));
    // (case, raw request, accepted statuses)
    let cases: Vec<(&str, String, &[u16])> = vec![
        ("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".into(), &[400, 405]),
        ("TRACE", "TRACE / HTTP/1.1\r\nHost: x\r\n\r\n".into(), &[405]),
        ("URI over 8 KiB", format!("GET {long_uri} HTTP/1.1\r\nHost: x\r\n\r\n"), &[414]),
        ("over 100 headers", format!("GET / HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"), &[431]),
        ("over 256 headers (more than Pingora's parser takes)", format!("GET / HTTP/1.1\r\nHost: x\r\n{too_many_to_parse}\r\n"), &[431]),
        ("Connection naming Host", "GET / HTTP/1.1\r\nHost: x\r\nConnection: host\r\n\r\n".into(), &[400]),
        ("Connection naming X-Forwarded-For", "GET / HTTP/1.1\r\nHost: x\r\nConnection: x-forwarded-for\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n".into(), &[400]),
        ("over 32 KiB of headers", format!("GET / HTTP/1.1\r\nHost: x\r\n{big_header}\r\n"), &[431, 400]),
        ("Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), &[400]),
        ("two Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd".into(), &[400]),
        ("malformed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4x\r\n\r\nabcd".into(), &[400]),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n".into(), &[400]),
        ("two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), &[400]),
        ("underscore in a header name", "GET / HTTP/1.1\r\nHost: x\r\nX_Tenant_Id: evil\r\n\r\n".into(), &[400]),
        ("control character in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n".into(), &[400]),
        ("absolute-form host mismatch", "GET http://evil.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n".into(), &[400]),
        ("h2c upgrade", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n".into(), &[400]),
        ("websocket upgrade on a plain route", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".into(), &[400]),
    ];
    let before = upstream.hits();
    let mut report = Vec::new();
    for (name, raw, statuses) in &cases {
        let response = raw_request(gateway.public, raw.as_bytes()).await;
        let status = raw_status(&response);
        let by = if response.contains("\"error\":{\"code\"") {
            "usher"
        } else {
            "pingora"
        };
        report.push(format!("{status} by {by}: {name}"));
        assert!(
            statuses.contains(&status),
            "{name}: got {status}\n{response}"
        );
        // Whoever refused it, the answer has Usher's shape; Pingora's bare ones are replaced.
        assert_eq!(by, "usher", "{name}: {response}");
        assert!(
            !response.to_ascii_lowercase().contains("server: pingora"),
            "{response}"
        );
        assert_eq!(upstream.hits(), before, "{name} reached the upstream");
    }
    eprintln!("hardening results:\n  {}", report.join("\n  "));

    // Raw bytes that are not UTF-8 in the target: Pingora would forward them as they are
    // while routing saw a lossy copy.
    let raw = raw_request(
        gateway.public,
        b"GET /x/\xc0\xae\xc0\xae/y HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&raw), 400, "{raw}");
    assert!(
        raw.contains("\"invalid_path\"") || raw.contains("\"bad_request\""),
        "{raw}"
    );
    assert_eq!(
        upstream.hits(),
        before,
        "raw invalid UTF-8 reached the upstream"
    );

    // The same requests without the fault pass.
    let ok = raw_request(
        gateway.public,
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&ok), 200);
    let metrics = gateway.metrics().await;
    assert!(
        metric_value(
            &metrics,
            r#"usher_security_events_total{reason="malformed_request",severity="medium"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
}

/// Reads until the server closes the connection or `limit` passes; returns what came and
/// whether the server closed.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    limit: std::time::Duration,
) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let closed = tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread")]
async fn request_heads_have_a_total_deadline_but_bodies_and_idle_keepalive_do_not() {
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&format!(
        r#"
limits: {{ request_head_timeout: 1s }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: open, match: {{ path: / }}, upstream: svc, public: true }}
"#,
        upstream.addr
    ))
    .await;
    let hits = upstream.hits();

    // Slowloris: a header byte every 200 ms would satisfy any per-read timeout forever.
    let mut slow = TcpStream::connect(gateway.public).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Drip: ")
        .await
        .unwrap();
    let drip = async {
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1600), drip).await;
    let (answer, closed) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(closed, "the connection is closed after the 408");
    assert!(started.elapsed() < Duration::from_secs(4));

    // Blank lines before the request line (which parsers skip) do not end the head.
    let mut blank_first = TcpStream::connect(gateway.public).await.unwrap();
    blank_first
        .write_all(b"\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut blank_first, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408 ") && closed, "{answer:?}");

    // A connection that never sends anything is closed at the deadline too.
    let mut silent = TcpStream::connect(gateway.public).await.unwrap();
    let (answer, closed) = read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408 ") && closed, "{answer:?}");
    assert_eq!(
        upstream.hits(),
        hits,
        "no timed-out head reached the upstream"
    );

    // A quick head with a slow body is fine, and so is idling between keep-alive requests
    // for longer than the deadline.
    let mut patient = TcpStream::connect(gateway.public).await.unwrap();
    patient
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        .await
        .unwrap();
    for chunk in [b"ab", b"cd", b"ef"] {
        tokio::time::sleep(Duration::from_millis(600)).await;
        patient.write_all(chunk).await.unwrap();
    }
    let response = read_response(&mut patient).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    patient
        .write_all(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut patient).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");

    let metrics = gateway.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"usher_security_events_total{reason="request_head_timeout",severity="low"}"#
        ),
        Some(3.0),
        "{metrics}"
    );
}

/// Reads one response with a Content-Length body from a kept-alive connection.
async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buffer = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return;
                }
            }
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A werkzeug upstream upper-cases methods: `delete` runs its DELETE handler. A case variant
/// of DELETE must therefore not pass as some other method past the route that lists DELETE
/// with a role rule.
#[tokio::test(flavor = "multi_thread")]
async fn method_case_variants_cannot_bypass_a_method_specific_route() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef-methods";
    let framework = PythonServer::start("werkzeug_upstream.py");
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("jwt"), SECRET).unwrap();
    let gateway = Gateway::start(&format!(
        r#"
authentication:
  jwt:
    issuer: i
    audiences: [a]
    keys: [{{ kid: k, algorithm: HS256, secret_file: "{}" }}]
upstreams:
  venues: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - name: venue-manage
    match: {{ path: /api/v1/venues/:venue, methods: [DELETE] }}
    upstream: venues
    auth: {{ roles: [venue_manager] }}
  - {{ name: venues, match: {{ path: /api/v1/venues }}, upstream: venues }}
"#,
        secret.path().join("jwt").display(),
        framework.addr
    ))
    .await;
    let now = unix_now();
    let claims = serde_json::json!({"sub": "fan", "tenant_id": "t1", "roles": ["customer"],
        "type": "access", "iss": "i", "aud": "a", "iat": now, "exp": now + 600});
    let token = hs256_jwt(SECRET, &claims);
    let send = |method: &str| {
        format!("{method} /api/v1/venues/7 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
    };
    let response = raw_request(gateway.public, send("GET").as_bytes()).await;
    assert_eq!(raw_status(&response), 200, "{response}");
    let response = raw_request(gateway.public, send("DELETE").as_bytes()).await;
    assert_eq!(raw_status(&response), 403, "{response}");
    for variant in ["delete", "dElEtE", "Delete"] {
        let response = raw_request(gateway.public, send(variant).as_bytes()).await;
        assert_eq!(raw_status(&response), 400, "{variant}: {response}");
        assert!(response.contains("\"bad_request\""), "{response}");
    }
    let ran = get(framework.addr, "/ran").await.unwrap().json();
    assert_eq!(
        ran,
        serde_json::json!(["GET /api/v1/venues/7"]),
        "the framework ran only the GET"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn method_case_variants_are_refused_over_http2_too() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start_h2c(&open_routes(&upstream)).await;
    let port = gateway.public.port();
    let seen = h2_client(port, &["case", "DELETE", "/x"]).await;
    assert_eq!(seen["statuses"], serde_json::json!([200]), "{seen}");
    let seen = h2_client(port, &["case", "dElEtE", "/x"]).await;
    assert_eq!(seen["statuses"], serde_json::json!([400]), "{seen}");
    assert_eq!(upstream.hits(), 1, "only the DELETE reached the upstream");
}

/// An HTTP/2 client that sends its preface and then nothing, or a HEADERS frame that never
/// ends its header block, is held to the head deadline like an HTTP/1 one (it held its
/// connection for Pingora's 60 s idle timeout before).
#[tokio::test(flavor = "multi_thread")]
async fn http2_clients_must_finish_their_first_head_within_the_deadline() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let body = format!(
        "limits: {{ request_head_timeout: 1s }}\n{}",
        open_routes(&upstream)
    );
    let gateway = Gateway::start_h2c(&body).await;
    let port = gateway.public.port();
    for mode in ["silent", "partial-headers"] {
        let seen = h2_client(port, &[mode, "4"]).await;
        assert_eq!(seen["closed"], true, "{mode}: {seen}");
        let after = seen["after"].as_f64().unwrap();
        assert!(
            (0.8..3.0).contains(&after),
            "{mode}: closed after {after} s"
        );
    }
    // A client that finishes its head in time is served, and may then idle.
    let seen = h2_client(port, &["case", "GET", "/x"]).await;
    assert_eq!(seen["statuses"], serde_json::json!([200]));
    assert_eq!(upstream.hits(), 1);
}
