use super::*;

fn stream() -> DeadlineStream {
    let io = tokio_test_stream();
    DeadlineStream::new(io, Duration::from_secs(10), false, 100)
}

/// A real socket pair end, as a Pingora stream (never read here).
fn tokio_test_stream() -> Stream {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let a = tokio::net::UnixStream::from_std(a).unwrap();
    Box::new(pingora::protocols::l4::stream::Stream::from(a))
}

#[tokio::test]
async fn heads_end_at_the_blank_line_in_any_split() {
    for ending in [&b"\r\n\r\n"[..], b"\n\n", b"\n\r\n"] {
        let mut s = stream();
        s.read(b"GET / HTTP/1.1\r\nhost: a");
        assert!(matches!(s.phase, Phase::Head(_)));
        for byte in ending {
            s.read(&[*byte]);
        }
        assert_eq!(s.phase, Phase::Message, "{ending:?}");
    }
    let mut s = stream();
    s.read(b"GET / HTTP/1.1\r\nhost: a\r\n\r\nbody with\r\n\r\n");
    assert_eq!(s.phase, Phase::Message);
}

#[tokio::test]
async fn http2_is_watched_until_its_first_header_block_by_alpn_or_prior_knowledge() {
    let settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let headers = b"\x00\x00\x01\x01\x05\x00\x00\x00\x01\x82";
    for alpn in [true, false] {
        let mut s = DeadlineStream::new(tokio_test_stream(), Duration::from_secs(10), alpn, 100);
        s.wrote(settings);
        s.read(b"PRI * HTTP/2.0\r\n\r\n");
        s.read(b"SM\r\n\r\n");
        s.read(settings);
        assert!(
            matches!(s.phase, Phase::Head(_)),
            "the preface alone is no head"
        );
        assert!(s.http2.is_some(), "alpn {alpn}: HTTP/2, no 408");
        s.read(headers);
        assert_eq!(
            s.phase,
            Phase::Done,
            "nothing after the first header block is timed"
        );
    }
}

#[tokio::test]
async fn pingora_answers_are_replaced_and_nothing_else() {
    let pingora_400 = b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nContent-Length: 0\r\n\r\n";
    let mut s = stream();
    let headers: String = (0..150).map(|i| format!("x-{i}: v\r\n")).collect();
    s.read(format!("GET / HTTP/1.1\r\n{headers}\r\n").as_bytes());
    assert!(s.replaces(pingora_400));
    let text = String::from_utf8(s.pending.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    assert!(text.contains("\"code\":\"headers_too_large\""), "{text}");
    assert!(!s.replaces(pingora_400), "once");

    let mut s = stream();
    s.read(b"GET / HTTP/1.1\r\nconnection: host\r\n\r\n");
    assert!(s.replaces(pingora_400));
    assert!(String::from_utf8_lossy(&s.pending).contains("\"code\":\"bad_request\""));

    let mut s = stream();
    s.read(b"GET / HTTP/1.1\r\n\r\n");
    for own in [
        &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nserver-timing: pingora\r\n\r\n",
    ] {
        assert!(!s.replaces(own), "{}", String::from_utf8_lossy(own));
    }
}

#[tokio::test]
async fn blank_lines_before_the_request_line_are_not_a_head() {
    let mut s = stream();
    s.read(b"\r\n\r\n\n");
    assert!(matches!(s.phase, Phase::Head(_)));
    s.read(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(s.phase, Phase::Message);
}

#[tokio::test]
async fn a_closing_response_ends_the_watch_and_late_writes_are_noticed() {
    let mut s = stream();
    s.read(b"POST / HTTP/1.1\r\ncontent-length: 9000\r\n\r\n");
    s.wrote(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n");
    assert_eq!(
        s.phase,
        Phase::Done,
        "body bytes that follow are not a head"
    );
    let mut s = stream();
    s.read(b"GET / HTTP/1.1\r\n\r\n");
    s.wrote(b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\n\r\n");
    assert_eq!(s.phase, Phase::BetweenRequests);
    s.read(b"G");
    assert!(!s.wrote_during_head);
    s.wrote(b"the rest of a long response body");
    assert!(s.wrote_during_head, "a 408 now would land inside that body");
}

#[tokio::test]
async fn the_next_head_starts_after_a_final_response() {
    let mut s = stream();
    s.read(b"POST / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n");
    s.wrote(b"HTTP/1.1 100 Continue\r\n\r\n");
    s.read(b"a body without a blank line");
    assert_eq!(s.phase, Phase::Message, "an interim response ends nothing");
    s.wrote(b"HTTP/1.1 200 OK\r\n");
    assert_eq!(s.phase, Phase::BetweenRequests);
    s.wrote(b"HTTP/1.1 200 OK\r\n");
    assert_eq!(s.phase, Phase::BetweenRequests);
    s.read(b"G");
    assert!(matches!(s.phase, Phase::Head(_)));
    s.read(b"ET / HTTP/1.1\r\n\r\n");
    s.wrote(b"HTTP/1.1 101 Switching Protocols\r\n");
    assert_eq!(s.phase, Phase::Done, "a tunnel is not watched");
    s.read(b"frames");
    assert_eq!(s.phase, Phase::Done);
}

#[test]
fn connection_close_is_found_in_the_head_only() {
    assert!(closes(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    ));
    assert!(closes(
        b"HTTP/1.1 200 OK\r\nCONNECTION: keep-alive, Close\r\n\r\n"
    ));
    assert!(closes(b"HTTP/1.1 400 Bad\nconnection:close\n\n"));
    assert!(!closes(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n"
    ));
    assert!(!closes(b"HTTP/1.1 200 OK\r\nX-Connection: close\r\n\r\n"));
    assert!(!closes(b"HTTP/1.1 200 OK\r\nContent-Type: close\r\n\r\n"));
    // After the blank line is the body.
    assert!(!closes(b"HTTP/1.1 200 OK\r\n\r\nConnection: close\r\n"));
    // A head cut short by its write: its last line counts.
    assert!(closes(b"HTTP/1.1 200 OK\r\nConnection: close"));
}
