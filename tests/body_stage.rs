//! The body stage through the real gateway: on a route with `buffer_body`, a body that is
//! too large, badly framed or too slow is refused and the upstream sees nothing of the
//! request (its request count stays put); a good body reaches it byte for byte, over
//! HTTP/1.1 (Content-Length and chunked) and HTTP/2; and buffers across requests are
//! bounded.

mod common;

use common::*;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn gateway(upstream: &EchoServer, limits: &str) -> Gateway {
    Gateway::start_h2c(&format!(
        r#"
limits: {{ request_body_timeout: 1s{limits} }}
upstreams:
  svc: {{ targets: ["{}"], health_check: {{ type: tcp, interval: 10s }} }}
routes:
  - {{ name: buffered, match: {{ path: /buffered }}, upstream: svc, public: true, max_body: 1KiB, buffer_body: true }}
  - {{ name: small, match: {{ path: /small }}, upstream: svc, public: true, max_body: 1KiB }}
  - {{ name: streamed, match: {{ path: /streamed }}, upstream: svc, public: true, max_body: 1KiB, buffer_body: false }}
"#,
        upstream.addr
    ))
    .await
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn chunked(body: &[u8], pieces: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(body.len().div_ceil(pieces).max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_bodies_never_reach_the_upstream() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = gateway(&upstream, "").await;
    let head =
        |framing: &str| format!("POST /buffered HTTP/1.1\r\nHost: x\r\n{framing}\r\n").into_bytes();

    // Over the limit, chunked (no declared length to refuse early).
    let mut over = head("Transfer-Encoding: chunked\r\n");
    over.extend(chunked(&[b'a'; 1025], 4));
    let response = raw_request(gateway.public, &over).await;
    assert_eq!(raw_status(&response), 413, "{response}");

    // A chunk size that is not hex.
    let mut malformed = head("Transfer-Encoding: chunked\r\n");
    malformed.extend_from_slice(b"5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n");
    let response = raw_request(gateway.public, &malformed).await;
    assert_eq!(raw_status(&response), 400, "{response}");

    // A body that stops arriving: 408 at the body deadline (1 s here).
    let mut slow = TcpStream::connect(gateway.public).await.unwrap();
    slow.write_all(&head("Content-Length: 10\r\n"))
        .await
        .unwrap();
    slow.write_all(b"abc").await.unwrap();
    let started = Instant::now();
    let response = read_response(&mut slow).await;
    assert_eq!(raw_status(&response), 408, "{response}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The same over HTTP/2: a stream that declares a body and never sends it.
    let seen = h2_client(gateway.public.port(), &["stall", "/buffered"]).await;
    assert_eq!(seen["statuses"], serde_json::json!([408]), "{seen}");

    // A route with a small max_body and no buffer_body buffers by default.
    let mut small = over.clone();
    small.splice(5..14, b"/small".iter().copied());
    let response = raw_request(gateway.public, &small).await;
    assert_eq!(raw_status(&response), 413, "{response}");

    assert_eq!(
        upstream.hits(),
        0,
        "the upstream saw none of the refused requests"
    );

    // The same over-long body on a route that streams reaches the upstream: the stage is
    // what keeps it away.
    let mut streamed = over.clone();
    streamed.splice(5..14, b"/streamed".iter().copied());
    let response = raw_request(gateway.public, &streamed).await;
    assert_eq!(raw_status(&response), 413, "{response}");
    assert!(
        eventually(Duration::from_secs(2), || async { upstream.hits() == 1 }).await,
        "a streamed body reaches the upstream before its limit is known"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn good_bodies_arrive_byte_for_byte() {
    let upstream = EchoServer::start("svc").await.unwrap();
    let gateway = gateway(&upstream, "").await;
    let body: Vec<u8> = (0..1024u32).map(|n| (n * 7 % 251) as u8).collect();

    let response = request(
        gateway.public,
        "POST",
        "/buffered",
        &[("content-type", "application/octet-stream")],
        Some(&body),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["body_sha256"], sha256(&body));
    assert_eq!(response.json()["body_bytes"], 1024);

    let mut raw =
        b"POST /buffered HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend(chunked(&body, 7));
    let response = raw_request(gateway.public, &raw).await;
    assert_eq!(raw_status(&response), 200, "{response}");
    assert!(response.contains(&sha256(&body)), "{response}");

    // A client that waits for 100 Continue gets it from Usher, which reads the body; the
    // upstream gets the body and no Expect.
    let mut waiting = TcpStream::connect(gateway.public).await.unwrap();
    waiting
        .write_all(b"POST /buffered HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut interim = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read(&mut waiting, &mut interim),
    )
    .await
    .expect("a 100 Continue in time")
    .unwrap();
    assert!(
        interim[..n].starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim[..n])
    );
    waiting.write_all(b"hello").await.unwrap();
    let answer = read_response(&mut waiting).await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains(&sha256(b"hello")), "{answer}");
    assert!(
        !answer.contains("\"expect\""),
        "the upstream got no Expect: {answer}"
    );

    // HTTP/2 (cleartext, prior knowledge): a body within the limit passes, one over it
    // never reaches the upstream.
    let hits = upstream.hits();
    let port = gateway.public.port();
    let seen = h2_client(port, &["post", "/buffered", "1024"]).await;
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["body"]["body_bytes"], 1024, "{seen}");
    let seen = h2_client(port, &["post", "/buffered", "1025"]).await;
    assert_eq!(seen["status"], 413, "{seen}");
    assert_eq!(
        upstream.hits(),
        hits + 1,
        "only the good HTTP/2 body reached it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn buffers_across_requests_are_bounded() {
    let upstream = EchoServer::start("svc").await.unwrap();
    // Room for one declared 1 KiB body at a time.
    let gateway = gateway(&upstream, ", max_buffered_bytes: 1500").await;
    let mut holder = TcpStream::connect(gateway.public).await.unwrap();
    holder
        .write_all(b"POST /buffered HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\nabc")
        .await
        .unwrap();
    let metrics = eventually(Duration::from_secs(2), || async {
        metric_value(
            &gateway.metrics().await,
            "usher_request_body_buffered_bytes",
        ) == Some(1024.0)
    })
    .await;
    assert!(metrics, "{}", gateway.metrics().await);
    let response = request(gateway.public, "POST", "/buffered", &[], Some(&[b'x'; 600]))
        .await
        .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.error_code(), "overloaded");
    // Once the slow body is refused (408), its room is given back.
    assert_eq!(raw_status(&read_response(&mut holder).await), 408);
    let freed = eventually(Duration::from_secs(2), || async {
        metric_value(
            &gateway.metrics().await,
            "usher_request_body_buffered_bytes",
        ) == Some(0.0)
    })
    .await;
    assert!(freed);
    let response = request(gateway.public, "POST", "/buffered", &[], Some(&[b'x'; 600]))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

/// Reads one response from `stream` (to its end or 5 s).
async fn read_response(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buffer[..n]);
                    if String::from_utf8_lossy(&out).contains("\r\n\r\n{") && out.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}
