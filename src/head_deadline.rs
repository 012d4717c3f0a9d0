//! A total deadline for receiving each request head (408, `limits.request_head_timeout`).
//!
//! Pingora times each read of a head (60 s) but not the head as a whole, and runs no Usher
//! code before the head is complete, so a client that sends a byte every few seconds holds
//! a connection for as long as it likes (slowloris); its HTTP/2 handshake waits for the
//! client's connection preface without any limit. [`HeadDeadline`] wraps the proxy
//! application and puts each connection's stream inside a [`DeadlineStream`], which
//! watches the bytes going by:
//! - a head starts when the connection opens (after the TLS handshake), and on a reused
//!   connection with the first byte read after a final response that keeps the connection
//!   open (idle time between requests is Pingora's keep-alive timeout, not a head);
//! - it ends at the blank line that ends every HTTP/1 head (blank lines before the request
//!   line, which parsers skip, do not count);
//! - a read while a head is open past its deadline writes a 408 in the common error shape
//!   (unless response bytes went out meanwhile), records a `request_head_timeout` security
//!   event and fails, so Pingora closes the connection. The h2c preface peek is bounded by
//!   the same deadline.
//!
//! A final response with `Connection: close` ends the watch: Pingora sends it whenever the
//! request body may not have been read to its end, so body bytes are never taken for a head.
//! HTTP/2 (by ALPN, or h2c) is watched only until its connection preface is in (the preface
//! holds a blank line), and refused without a 408, which an HTTP/2 client could not read;
//! after that it frames its own headers, and Pingora closes its idle connections
//! (`h2_idle_timeout`, set in server.rs). After a `101 Switching Protocols` the connection
//! is a tunnel and no longer watched. Pingora closes a connection whose client pipelines
//! requests, so every head passes through `poll_read`.

use crate::filters::security_headers::HSTS;
use crate::respond::Rejection;
use crate::security::events::{self, Severity};
use crate::snapshot::Live;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The proxy application, with a head deadline on each HTTP/1 connection. The deadline in
/// force when a connection opens applies to it (so reloads change it for new connections).
pub struct HeadDeadline<A> {
    inner: Arc<A>,
    live: Arc<Live>,
}

impl<A> HeadDeadline<A> {
    pub fn new(inner: A, live: Arc<Live>) -> Self {
        HeadDeadline {
            inner: Arc::new(inner),
            live,
        }
    }

    pub fn inner_mut(&mut self) -> Option<&mut A> {
        Arc::get_mut(&mut self.inner)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeadDeadline<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limit = self
            .live
            .current()
            .map_or(FIRST_HEAD_TIMEOUT, |s| s.config.limits.request_head_timeout);
        let http2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        // Pingora's HTTP application serves every request of the connection in this call
        // and hands nothing back for reuse, so the stream is wrapped once.
        let stream: Stream = Box::new(DeadlineStream::new(stream, limit, http2));
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// For connections accepted before the first configuration is live (the built-in default).
const FIRST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving a head that must be complete by this instant.
    Head(Instant),
    /// The head is in; the body, the upstream and the response follow.
    Message,
    /// A final response began: the next byte read starts the next head.
    BetweenRequests,
    /// Upgraded (WebSocket), closing after this response, or the deadline passed: nothing
    /// more to watch.
    Done,
}

/// A connection's stream with a deadline on each request head; everything else is passed
/// to the stream inside.
#[derive(Debug)]
pub struct DeadlineStream {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// Progress towards the blank line: 0 before the request line's first byte, 1 within a
    /// line, 2 after `\n`, 3 after `\n\r`.
    blank_line: u8,
    /// Bytes were written since the current head began (a response still under way).
    wrote_during_head: bool,
    /// HTTP/2 by ALPN: the head is the connection preface, and no 408 is written.
    http2: bool,
    /// Made only when a read of an open head has to wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl DeadlineStream {
    pub fn new(inner: Stream, limit: Duration, http2: bool) -> Self {
        DeadlineStream {
            inner,
            limit,
            phase: Phase::Head(Instant::now() + limit),
            blank_line: 0,
            wrote_during_head: false,
            http2,
            timer: None,
        }
    }

    /// Follows the bytes just read through the head.
    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::BetweenRequests {
            self.phase = Phase::Head(Instant::now() + self.limit);
            self.blank_line = 0;
            self.wrote_during_head = false;
        }
        if !matches!(self.phase, Phase::Head(_)) {
            return;
        }
        for &byte in bytes {
            self.blank_line = match (self.blank_line, byte) {
                (0, b'\r' | b'\n') => 0,
                (2 | 3, b'\n') => {
                    self.phase = Phase::Message;
                    return;
                }
                (_, b'\n') => 2,
                (2, b'\r') => 3,
                _ => 1,
            };
        }
    }

    /// Follows a write: the status line of a final response ends the message; what comes
    /// next depends on whether the response keeps the connection open.
    fn wrote(&mut self, bytes: &[u8]) {
        if matches!(self.phase, Phase::Head(_)) {
            self.wrote_during_head = true;
        }
        if self.phase != Phase::Message || !bytes.starts_with(b"HTTP/1.") || bytes.len() < 12 {
            return;
        }
        match &bytes[9..12] {
            b"101" => self.phase = Phase::Done,
            [b'1', _, _] => {}
            _ if closes(bytes) => self.phase = Phase::Done,
            _ => self.phase = Phase::BetweenRequests,
        }
    }

    /// True when an open head is past its deadline (and registers a wake-up for it when
    /// not, if the read has to wait).
    fn expired(&mut self, cx: &mut Context<'_>, waiting: bool) -> bool {
        let Phase::Head(deadline) = self.phase else {
            return false;
        };
        if Instant::now() >= deadline {
            return true;
        }
        if waiting {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            return timer.as_mut().poll(cx).is_ready();
        }
        false
    }

    /// Answers 408 if no response is under way and the socket takes it at once, and
    /// records the event.
    fn refuse(&mut self, cx: &mut Context<'_>) -> std::io::Error {
        self.phase = Phase::Done;
        let request_id = crate::telemetry::correlation::request_id(&http::HeaderMap::new());
        if !self.wrote_during_head && !self.http2 {
            let response = timeout_response(&request_id, self.inner.get_ssl().is_some());
            let _ = Pin::new(&mut self.inner).poll_write(cx, &response);
            let _ = Pin::new(&mut self.inner).poll_flush(cx);
        }
        let client = self
            .inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        events::record(
            "request_head_timeout",
            Severity::Low,
            &events::Context {
                request_id: &request_id,
                client,
                route: None,
                path: "-",
            },
        );
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request head not received within limits.request_head_timeout",
        )
    }
}

/// Whether a response head says `Connection: close`.
fn closes(response: &[u8]) -> bool {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    response[..end].split(|&b| b == b'\n').any(|line| {
        let line = line.to_ascii_lowercase();
        line.strip_prefix(b"connection:")
            .is_some_and(|value| value.windows(5).any(|w| w == b"close"))
    })
}

/// The 408 in the common error shape, closing the connection.
fn timeout_response(request_id: &str, tls: bool) -> Vec<u8> {
    let rejection = Rejection::RequestTimeout;
    let body = rejection.body(request_id);
    let mut response = b"HTTP/1.1 408 Request Timeout\r\n".to_vec();
    let hsts = [("strict-transport-security", HSTS.to_string())];
    let extra: &[(&'static str, String)] = if tls { &hsts } else { &[] };
    if let Ok(header) = rejection.header(request_id, body.len(), extra) {
        for (name, value) in header.headers.iter() {
            response.extend_from_slice(name.as_str().as_bytes());
            response.extend_from_slice(b": ");
            response.extend_from_slice(value.as_bytes());
            response.extend_from_slice(b"\r\n");
        }
    }
    response.extend_from_slice(b"connection: close\r\n\r\n");
    response.extend_from_slice(&body);
    response
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read(&buf.filled()[before..]);
                if this.expired(cx, false) {
                    return Poll::Ready(Err(this.refuse(cx)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx, true) => Poll::Ready(Err(this.refuse(cx))),
            other => other,
        }
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.wrote(buf);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            this.wrote(first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for DeadlineStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl UniqueID for DeadlineStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for DeadlineStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for DeadlineStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for DeadlineStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest);
    }
}

impl GetSocketDigest for DeadlineStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for DeadlineStream {
    /// Pingora peeks for the h2c preface before reading anything: within the deadline too.
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let Phase::Head(deadline) = self.phase else {
            return self.inner.try_peek(buf).await;
        };
        match tokio::time::timeout_at(deadline, self.inner.try_peek(buf)).await {
            Ok(result) => result,
            Err(_) => Err(std::future::poll_fn(|cx| Poll::Ready(self.refuse(cx))).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> DeadlineStream {
        let io = tokio_test_stream();
        DeadlineStream::new(io, Duration::from_secs(10), false)
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
    async fn the_http2_preface_is_the_head_and_frames_are_not_watched() {
        let mut s = DeadlineStream::new(tokio_test_stream(), Duration::from_secs(10), true);
        s.wrote(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        s.read(b"PRI * HTTP/2.0\r\n\r\n");
        assert_eq!(s.phase, Phase::Message);
        s.read(b"SM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        s.wrote(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00");
        assert_eq!(
            s.phase,
            Phase::Message,
            "nothing after the preface is timed"
        );
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
}
