//! The body stage, on routes with `buffer_body`: the whole request body is read before any
//! upstream contact, so a body that is too large, badly framed or too slow is refused and
//! the upstream sees nothing of the request.
//!
//! Pingora 0.9 consumes a body read this early; what it replays to the upstream is its
//! retry buffer, which holds 64 KiB (the compiler keeps such routes' `max_body` within it).
//! Retry buffering is switched on before the first read, so the buffer holds every byte and
//! Pingora sends exactly those on the first attempt and on retries
//! (docs/research/pingora-body-buffering.md). The bytes a request may hold are reserved
//! first against `limits.max_buffered_bytes`, and the reservation lives as long as the
//! request.

use crate::config::{Limits, RouteSpec};
use crate::load::BufferedBody;
use crate::proxy::RequestCtx;
use crate::respond::Rejection;
use crate::security::events::Severity;
use pingora::proxy::Session;
use pingora::ErrorType;
use std::time::Duration;

/// How long a refusal tells the client to wait when buffers are full.
const BUFFERS_FULL_RETRY: Duration = Duration::from_secs(1);

pub async fn buffer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: &RouteSpec,
    limits: &Limits,
) -> Result<(), Rejection> {
    if !route.buffer_body || session.is_body_empty() {
        return Ok(());
    }
    let declared = super::reserve::declared_length(session.req_header());
    let reserve = declared.unwrap_or(route.max_body).min(route.max_body);
    let reservation =
        BufferedBody::reserve(reserve, limits.max_buffered_bytes).ok_or_else(|| {
            ctx.event("body_buffers_full", Severity::Low);
            Rejection::Overloaded {
                retry_after: BUFFERS_FULL_RETRY,
            }
        })?;
    session.enable_retry_buffering();
    // A client that waits for the go-ahead before its body gets it from Usher, which reads
    // the body itself (the upstream gets no `Expect`: see `attempt::prepare_request`).
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .write_continue_response()
            .await
            .map_err(|_| Rejection::Malformed("the request body did not arrive whole"))?;
    }
    let deadline = tokio::time::Instant::now() + limits.request_body_timeout;
    let mut received: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => break,
            Ok(Err(error)) => return Err(refusal_for(ctx, &error)),
            Err(_) => {
                ctx.event("request_body_timeout", Severity::Low);
                return Err(Rejection::RequestTimeout);
            }
        };
        received += chunk.len() as u64;
        if received > route.max_body {
            return Err(Rejection::PayloadTooLarge {
                limit: route.max_body,
            });
        }
    }
    if session.retry_buffer_truncated() {
        // Not reachable while max_body is held within the retry buffer; never forward a
        // body that would arrive cut short.
        return Err(Rejection::PayloadTooLarge {
            limit: route.max_body,
        });
    }
    ctx.buffered = Some(reservation);
    Ok(())
}

/// A body that could not be read: its framing was wrong (400), or the client went away
/// (answered the same way, though nobody may read it).
fn refusal_for(ctx: &RequestCtx, error: &pingora::Error) -> Rejection {
    let framing = matches!(
        error.etype(),
        ErrorType::Custom("InvalidChunk") | ErrorType::Custom("InvalidTrailerEnd")
    );
    if framing {
        ctx.event("malformed_body", Severity::Medium);
        Rejection::Malformed("the request body's chunked framing is invalid")
    } else {
        tracing::debug!(request_id = %ctx.request_id, %error, "request body not received");
        Rejection::Malformed("the request body did not arrive whole")
    }
}
