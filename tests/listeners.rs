//! The public listener's protocols: TLS with HTTP/2 through ALPN, HTTP/1.1 fallback, and
//! HTTP/2 over cleartext when `h2c` is on; an HTTP/2 client that never sends its preface is
//! closed at the head deadline. Driven with curl and `openssl s_client`; the certificate is
//! made with the openssl command line tool.

mod common;

use common::*;
use std::process::Command;

/// `curl` → (HTTP version, status), e.g. ("2", "200").
fn curl(args: &[&str]) -> (String, String) {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "--max-time",
            "5",
        ])
        .args(args)
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (version, status) = text.split_once(' ').unwrap_or(("", ""));
    (version.to_string(), status.to_string())
}

fn upstream_yaml(upstream: &EchoServer) -> String {
    format!(
        r#"
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: svc, match: {{ path: / }}, upstream: svc, public: true }}
"#,
        upstream.addr
    )
}

/// A self-signed certificate for localhost: (certificate file, key file).
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-subj", "/CN=localhost", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

/// Usher with a TLS public listener and `extra` settings.
async fn tls_gateway(upstream: &EchoServer, certs: &std::path::Path, extra: &str) -> Gateway {
    let (cert, key) = self_signed(certs);
    Gateway::launch(|public, admin| {
        format!(
            "listeners:\n  public:\n    address: \"{public}\"\n    tls: {{ cert_file: \"{cert}\", key_file: \"{key}\" }}\n  admin: {{ address: \"{admin}\" }}\n{extra}\n{}",
            upstream_yaml(upstream)
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_offers_http2_through_alpn() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let certs = tempfile::tempdir().unwrap();
    let gateway = tls_gateway(&upstream, certs.path(), "").await;
    let port = gateway.public.port();
    let url = format!("https://localhost:{port}/x");
    let h2 = curl(&["-k", "--http2", &url]);
    let h1 = curl(&["-k", "--http1.1", &url]);
    let plain = curl(&[&format!("http://127.0.0.1:{port}/x")]);
    assert_eq!(h2, ("2".into(), "200".into()), "HTTP/2 through ALPN");
    assert_eq!(h1, ("1.1".into(), "200".into()), "HTTP/1.1 fallback");
    assert_ne!(plain.1, "200", "cleartext is not served on the TLS port");
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_clients_that_never_send_the_preface_are_closed_at_the_head_deadline() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let upstream = EchoServer::start("svc").await.unwrap();
    let certs = tempfile::tempdir().unwrap();
    let limits = "limits: { request_head_timeout: 1s }";
    let gateway = tls_gateway(&upstream, certs.path(), limits).await;

    // TLS with HTTP/2 chosen by ALPN, then silence: Pingora's handshake would wait forever.
    let started = Instant::now();
    let mut silent = Command::new("openssl")
        .args(["s_client", "-connect", &gateway.public.to_string()])
        .args(["-alpn", "h2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running openssl s_client");
    let mut closed = None;
    while started.elapsed() < Duration::from_secs(5) {
        if let Some(status) = silent.try_wait().unwrap() {
            closed = Some((status, started.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = silent.kill();
    let _ = silent.wait();
    let mut report = String::new();
    std::io::Read::read_to_string(silent.stdout.as_mut().unwrap(), &mut report).unwrap();
    assert!(report.contains("ALPN protocol: h2"), "{report}");
    let (_, after) = closed.unwrap_or_else(|| panic!("still open after 5 s: {report}"));
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );

    // Clients that do send it are served.
    let url = format!("https://localhost:{}/x", gateway.public.port());
    assert_eq!(curl(&["-k", "--http2", &url]), ("2".into(), "200".into()));
    assert_eq!(
        metric_value(
            &gateway.metrics().await,
            r#"usher_security_events_total{reason="request_head_timeout",severity="low"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_is_off_by_default_and_on_when_configured() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::start(&upstream_yaml(&upstream)).await;
    let url = format!("http://{}/x", gateway.public);
    assert_ne!(
        curl(&["--http2-prior-knowledge", &url]),
        ("2".into(), "200".into())
    );
    assert_eq!(curl(&[&url]), ("1.1".into(), "200".into()));
    drop(gateway);

    let gateway = Gateway::launch(|public, admin| {
        format!(
            "listeners:\n  public: {{ address: \"{public}\", h2c: true }}\n  admin: {{ address: \"{admin}\" }}\n{}",
            upstream_yaml(&upstream)
        )
    })
    .await;
    let h2c = curl(&[
        "--http2-prior-knowledge",
        &format!("http://{}/x", gateway.public),
    ]);
    assert_eq!(h2c, ("2".into(), "200".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_clients_must_send_their_client_hello_within_the_head_deadline() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = EchoServer::start("svc").await.unwrap();
    let certs = tempfile::tempdir().unwrap();
    let gateway = tls_gateway(
        &upstream,
        certs.path(),
        "limits: { request_head_timeout: 1s }",
    )
    .await;
    // Nothing at all, and a record header announcing 300 bytes of ClientHello with 10 sent:
    // Pingora's handshake would wait 60 s for either.
    let partial: &[u8] = &[
        0x16, 0x03, 0x01, 0x01, 0x2c, 0x01, 0x00, 0x01, 0x28, 0x03, 0x03, 0, 0, 0, 0,
    ];
    for sent in [&[][..], partial] {
        let mut stream = tokio::net::TcpStream::connect(gateway.public)
            .await
            .unwrap();
        stream.write_all(sent).await.unwrap();
        let started = Instant::now();
        let mut buffer = [0u8; 64];
        let end = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
        let after = started.elapsed();
        assert!(
            matches!(end, Ok(Ok(0)) | Ok(Err(_))),
            "{} bytes sent: still open after 5 s ({end:?})",
            sent.len()
        );
        assert!(
            (Duration::from_millis(800)..Duration::from_secs(3)).contains(&after),
            "{} bytes sent: closed after {after:?}",
            sent.len()
        );
    }
    let url = format!("https://localhost:{}/x", gateway.public.port());
    assert_eq!(
        curl(&["-k", "--http1.1", &url]),
        ("1.1".into(), "200".into())
    );
    assert_eq!(
        metric_value(
            &gateway.metrics().await,
            r#"usher_security_events_total{reason="request_head_timeout",severity="low"}"#
        ),
        Some(2.0)
    );
}

/// The harness's answer to port races between test processes: a launch whose port is held
/// elsewhere is retried on new ports instead of failing the test.
#[tokio::test(flavor = "multi_thread")]
async fn a_launch_on_a_port_held_elsewhere_is_retried_on_new_ports() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let gateway = Gateway::launch(|public, admin| {
        let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        let public = if first { taken } else { public };
        format!(
            "listeners:\n  public: {{ address: \"{public}\" }}\n  admin: {{ address: \"{admin}\" }}\n{}",
            upstream_yaml(&upstream)
        )
    })
    .await;
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_ne!(gateway.public, taken);
    assert_eq!(gateway.get("/x").await.status, 200);
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_buffer_smaller_than_a_head_or_body_still_reads_them_whole() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = Gateway::launch(|public, admin| {
        format!(
            "listeners:\n  public: {{ address: \"{public}\", read_buffer: 512 }}\n  admin: {{ address: \"{admin}\" }}\n{}",
            upstream_yaml(&upstream)
        )
    })
    .await;
    let url = format!("http://{}/x", gateway.public);
    // A head of about 6 KiB and a body of 200 KiB, both far past the 512-byte buffer.
    let header = format!("x-padding: {}", "p".repeat(6000));
    let body = "b".repeat(200 * 1024);
    let output = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-H",
            &header,
            "--data-binary",
            "@-",
            &url,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(body.as_bytes())?;
            child.wait_with_output()
        })
        .expect("running curl");
    let echoed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert_eq!(
        echoed["service"],
        "svc",
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(echoed["body_bytes"], body.len(), "{echoed}");
    assert_eq!(
        echoed["headers"]["x-padding"][0].as_str().map(str::len),
        Some(6000),
        "{echoed}"
    );
}
