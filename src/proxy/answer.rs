//! What the client gets back: the headers Usher adds to an upstream's response, the answers
//! Usher makes itself (a refusal in the one JSON shape of `respond`, a preflight's 204),
//! and the deadline on writing them.

use super::RequestCtx;
use crate::filters::cors;
use crate::idempotency::Stored;
use crate::ratelimit::headers as ratelimit_headers;
use crate::respond::{self, security_headers, Rejection};
use crate::telemetry::correlation;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::time::{Duration, Instant};

/// Usher's headers on an upstream's response: the request id, security headers, the
/// route's CORS headers (the upstream's own `Access-Control-*` removed) and the
/// `RateLimit` fields.
pub fn decorate(
    session: &Session,
    upstream_response: &mut ResponseHeader,
    ctx: &RequestCtx,
) -> Result<()> {
    security_headers::strip_upstream(upstream_response);
    let tls = on_tls(ctx);
    let cors = match ctx.route().and_then(|route| route.cors.as_deref()) {
        Some(policy) => cors::response_headers(policy, session.req_header()),
        None => Vec::new(),
    };
    let fields = ratelimit_fields(ctx);
    let field_count = fields.as_ref().map_or(0, |fields| fields.len());
    // Room for all of them at once: Pingora sizes its two header maps to the upstream's
    // headers, and would otherwise grow (and rehash) both on the way.
    upstream_response.reserve(1 + security_headers::count(tls) + cors.len() + field_count)?;
    let request_id = ctx.request_id.header_value();
    upstream_response.insert_header_static(&correlation::X_REQUEST_ID, request_id)?;
    security_headers::apply(upstream_response, tls)?;
    for (name, value) in cors {
        upstream_response.append_header(name, value)?;
    }
    for (name, value) in fields.into_iter().flatten() {
        upstream_response.insert_header_static(name, value)?;
    }
    Ok(())
}

/// Answers a CORS preflight the route's policy allows: 204 with its `Access-Control-*`
/// headers.
pub async fn preflight(session: &mut Session, ctx: &mut RequestCtx, headers: cors::Headers) {
    let answer = async {
        let tls = on_tls(ctx);
        let size = headers.len() + 1 + security_headers::count(tls);
        let mut response = ResponseHeader::build(204, Some(size))?;
        security_headers::apply(&mut response, tls)?;
        response.insert_header_static(&correlation::X_REQUEST_ID, ctx.request_id.header_value())?;
        for (name, value) in &headers {
            response.append_header(*name, value.as_str())?;
        }
        session
            .write_response_header(Box::new(response), true)
            .await
    };
    if let Err(e) = answer.await {
        tracing::debug!(request_id = %ctx.request_id, error = %e, "could not answer a preflight");
    }
    ctx.outcome.gateway_status = Some(204);
}

/// Answers with the response an Idempotency-Key recorded, marked `Idempotent-Replayed`, with
/// Usher's headers as on any upstream response; the upstream is not asked.
pub async fn replay(session: &mut Session, ctx: &mut RequestCtx, stored: &Stored) {
    let mut headers = stored.headers.clone();
    headers.push((
        http::HeaderName::from_static("idempotent-replayed"),
        http::HeaderValue::from_static("true"),
    ));
    whole(session, ctx, stored.status, &headers, stored.body.clone()).await;
}

/// Answers for an endpoint Usher serves itself (approvals): 200 with `body` as JSON, never
/// cached.
pub async fn served(session: &mut Session, ctx: &mut RequestCtx, body: &serde_json::Value) {
    let headers = [
        (
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        ),
        (
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        ),
    ];
    let body = bytes::Bytes::from(body.to_string());
    whole(session, ctx, 200, &headers, body).await;
}

/// Writes a whole response made at the edge, with Usher's headers as on any upstream
/// response.
async fn whole(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    headers: &[(http::HeaderName, http::HeaderValue)],
    body: bytes::Bytes,
) {
    let answer = async {
        let mut response = ResponseHeader::build(status, Some(headers.len() + 8))?;
        for (name, value) in headers {
            response.append_header(name.clone(), value.clone())?;
        }
        if !matches!(status, 100..=199 | 204 | 304) {
            response.insert_header("content-length", body.len().to_string())?;
        }
        decorate(session, &mut response, ctx)?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(response), head_only)
            .await?;
        if !head_only {
            session
                .write_response_body(Some(body.clone()), true)
                .await?;
        }
        Ok::<_, Box<pingora::Error>>(())
    };
    if let Err(e) = answer.await {
        tracing::debug!(request_id = %ctx.request_id, error = %e, "could not write an answer made at the edge");
    }
    ctx.outcome.gateway_status = Some(status);
    ctx.response_bytes += body.len() as u64;
}

/// Answers with `rejection`, unless a response has already begun.
pub async fn reject(session: &mut Session, ctx: &mut RequestCtx, rejection: &Rejection) {
    ctx.outcome.gateway_status = Some(rejection.status());
    ctx.outcome.rejection_code = Some(rejection.code());
    if session.response_written().is_some() {
        return;
    }
    let extra = refusal_headers(session, ctx, rejection);
    match respond::send(session, rejection, &ctx.request_id, on_tls(ctx), &extra).await {
        Ok(sent) => ctx.response_bytes += sent as u64,
        Err(e) => {
            tracing::debug!(request_id = %ctx.request_id, error = %e, "could not send the error response")
        }
    }
}

/// Headers a refusal needs beyond its fixed ones: CORS headers where the route allows the
/// request's origin (not on a refused preflight), and the `RateLimit` fields.
fn refusal_headers(
    session: &Session,
    ctx: &RequestCtx,
    rejection: &Rejection,
) -> Vec<(&'static str, String)> {
    let policy = ctx.route().and_then(|route| route.cors.as_deref());
    let mut headers = match policy {
        Some(policy) if *rejection != Rejection::CorsRefused => {
            cors::response_headers(policy, session.req_header())
        }
        _ => Vec::new(),
    };
    let fields = ratelimit_fields(ctx).into_iter().flatten();
    headers.extend(fields.map(|(name, value)| (name.as_str(), value)));
    headers
}

/// The route's deadline covers delivering the response too: each write to the client may
/// take only what is left of it, so a client that stops reading (an HTTP/2 window kept at
/// zero, a full TCP window) is cut off at the deadline. Pingora times each write; this
/// runs before every one. Tunnels are not timed.
pub fn bound_delivery(session: &mut Session, ctx: &RequestCtx) {
    if let (Some(deadline), false) = (ctx.deadline, ctx.upgraded) {
        let left = deadline.saturating_duration_since(Instant::now());
        session.set_write_timeout(Some(left.max(Duration::from_millis(1))));
    }
}

fn on_tls(ctx: &RequestCtx) -> bool {
    ctx.snapshot
        .as_ref()
        .is_some_and(|s| s.config.listeners.tls.is_some())
}

/// `RateLimit-Policy` and `RateLimit`, when the request was counted by a policy.
fn ratelimit_fields(ctx: &RequestCtx) -> Option<[(&'static http::HeaderName, String); 2]> {
    Some([
        (
            &ratelimit_headers::POLICY,
            ratelimit_headers::policy_value(&ctx.quotas)?,
        ),
        (
            &ratelimit_headers::STATE,
            ratelimit_headers::state_value(&ctx.quotas)?,
        ),
    ])
}
