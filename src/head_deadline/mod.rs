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
//! HTTP/2 (by ALPN, or h2c: a connection whose first bytes are the preface) is watched until
//! its connection preface and first header block are in ([`http2`]), and refused without a
//! 408, which an HTTP/2 client could not read; after that it frames its own headers, and
//! Pingora closes its idle connections (`h2_idle_timeout`, set in server.rs). The TLS
//! handshake comes before any of this; its ClientHello is held to the same deadline by a
//! pre-TLS hook ([`tls`]). After a `101 Switching Protocols` the connection
//! is a tunnel and no longer watched. Pingora closes a connection whose client pipelines
//! requests, so every head passes through `poll_read`.
//!
//! The same watch puts Pingora's own error answers in Usher's shape. Pingora answers some
//! heads before any Usher code runs (its parser refuses one, such as a head of more than
//! 256 headers or a `Connection` header naming `Host`, or the method is `CONNECT`), with a
//! bare response that carries `Server: Pingora`. Such a response is dropped on its way out
//! and Usher's JSON answer written instead (431 when the head had more than
//! `limits.max_headers` headers), with a security event; the connection closes after it.

use crate::config::builtin;
use crate::respond::{pingora_error_status, Rejection};
use crate::security::events::{self, Severity};
use crate::snapshot::Live;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
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
        let (limit, max_headers) =
            self.live
                .current()
                .map_or((FIRST_HEAD_TIMEOUT, FIRST_MAX_HEADERS), |s| {
                    (
                        s.config.limits.request_head_timeout,
                        s.config.limits.max_headers,
                    )
                });
        let http2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        // Pingora's HTTP application serves every request of the connection in this call
        // and hands nothing back for reuse, so the stream is wrapped once.
        let stream: Stream = Box::new(DeadlineStream::new(stream, limit, http2, max_headers));
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// For connections accepted before the first configuration is live: the built-in defaults.
const FIRST_HEAD_TIMEOUT: Duration = builtin::REQUEST_HEAD_TIMEOUT;
const FIRST_MAX_HEADERS: usize = builtin::MAX_HEADERS;

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
    /// HTTP/2 (by ALPN, or a connection that opened with the preface): the head is the
    /// preface and the first header block, and no 408 is written.
    http2: Option<http2::FirstHeaders>,
    /// Made only when a read of an open head has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// `limits.max_headers` when the connection opened, and the lines of the current head.
    max_headers: usize,
    head_lines: usize,
    /// Usher's answer in place of an error Pingora wrote itself, not yet all written; once
    /// set, whatever else Pingora writes on the connection is dropped.
    pending: Vec<u8>,
    replaced: bool,
    /// No byte of the connection has been read yet.
    first_head: bool,
}

impl DeadlineStream {
    pub fn new(inner: Stream, limit: Duration, http2: bool, max_headers: usize) -> Self {
        DeadlineStream {
            inner,
            limit,
            phase: Phase::Head(Instant::now() + limit),
            blank_line: 0,
            wrote_during_head: false,
            http2: http2.then(http2::FirstHeaders::default),
            timer: None,
            max_headers,
            head_lines: 0,
            pending: Vec::new(),
            replaced: false,
            first_head: true,
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
            self.head_lines = 0;
        }
        if !matches!(self.phase, Phase::Head(_)) {
            return;
        }
        // h2c by prior knowledge: the first bytes of the connection are the preface.
        if self.first_head && self.blank_line == 0 && bytes.starts_with(b"PRI * HTTP/2.0") {
            self.http2 = Some(http2::FirstHeaders::default());
        }
        self.first_head = false;
        if let Some(first) = &mut self.http2 {
            if first.read(bytes) {
                // HTTP/2 frames everything after its first head itself.
                self.phase = Phase::Done;
            }
            return;
        }
        let mut rest = bytes;
        while let Some((&byte, after)) = rest.split_first() {
            rest = after;
            if self.blank_line == 1 && byte != b'\n' {
                // Within a line only its end matters: skip to it.
                match memchr::memchr(b'\n', rest) {
                    Some(end) => rest = &rest[end..],
                    None => return,
                }
                continue;
            }
            self.blank_line = match (self.blank_line, byte) {
                (0, b'\r' | b'\n') => 0,
                (2 | 3, b'\n') => {
                    self.phase = Phase::Message;
                    return;
                }
                (_, b'\n') => {
                    self.head_lines += 1;
                    2
                }
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

    /// When `bytes` begin an error response Pingora generated itself (a head its parser
    /// refused, `CONNECT`), queues Usher's answer in the common shape instead, records the
    /// refusal as a security event, and ends the watch: the connection closes after it.
    fn replaces(&mut self, bytes: &[u8]) -> bool {
        if self.http2.is_some() || !matches!(self.phase, Phase::Head(_) | Phase::Message) {
            return false;
        }
        let Some(status) = pingora_error_status(bytes) else {
            return false;
        };
        // The request line is one of the head's lines.
        let too_many = self.head_lines > self.max_headers + 1;
        let rejection = Rejection::for_pingora_status(status, too_many);
        let request_id = crate::telemetry::correlation::request_id(&http::HeaderMap::new());
        self.pending = rejection.wire_response(&request_id, self.inner.get_ssl().is_some());
        self.replaced = true;
        self.phase = Phase::Done;
        let reason = rejection.event_reason().unwrap_or("malformed_request");
        self.event(reason, Severity::Medium, &request_id);
        true
    }

    /// Writes what is left of a queued answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn event(&self, reason: &'static str, severity: Severity, request_id: &str) {
        connection_event(reason, severity, self.inner.get_socket_digest(), request_id);
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
        if !self.wrote_during_head && self.http2.is_none() {
            let response = Rejection::RequestTimeout
                .wire_response(&request_id, self.inner.get_ssl().is_some());
            let _ = Pin::new(&mut self.inner).poll_write(cx, &response);
            let _ = Pin::new(&mut self.inner).poll_flush(cx);
        }
        self.event("request_head_timeout", Severity::Low, &request_id);
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "request head not received within limits.request_head_timeout",
        )
    }
}

/// A security event about a connection, before any request or route is known.
fn connection_event(
    reason: &'static str,
    severity: Severity,
    socket: Option<Arc<pingora::protocols::SocketDigest>>,
    request_id: &str,
) {
    let client = socket.and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
    events::record(
        reason,
        severity,
        &events::Context {
            request_id,
            client,
            route: None,
            path: "-",
            caller: None,
        },
    );
}

/// Whether a response head says `Connection: close`.
fn closes(response: &[u8]) -> bool {
    const NAME: &[u8] = b"connection:";
    // Every response head passes here: no allocation, the scan stops at the blank line,
    // and only a line that starts like the name is looked at further.
    let says_close = |line: &[u8]| {
        line.len() > NAME.len()
            && line[0] | 0x20 == b'c'
            && line[..NAME.len()].eq_ignore_ascii_case(NAME)
            && line[NAME.len()..]
                .windows(5)
                .any(|w| w.eq_ignore_ascii_case(b"close"))
    };
    let mut rest = response;
    while let Some(end) = memchr::memchr(b'\n', rest) {
        let line = &rest[..end];
        if matches!(line, [] | [b'\r']) {
            return false;
        }
        if says_close(line) {
            return true;
        }
        rest = &rest[end + 1..];
    }
    // A head cut short by the write: its last line counts too.
    says_close(rest)
}

mod delegate;
mod http2;
mod io;
mod tls;

pub use tls::ClientHelloDeadline;
#[cfg(test)]
mod tests;
