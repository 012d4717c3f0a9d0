//! Each attempt at the upstream: the peer and its timeouts, the request it is sent (the
//! rewritten path and what upstreams may trust), whether a failure may be retried, and
//! what the breaker and the bulkhead learn from how it went.

use super::RequestCtx;
use crate::config::{HashKey, LoadBalancing};
use crate::filters::authenticate::forward_verified;
use crate::filters::client_address;
use crate::respond::Rejection;
use crate::signatures::signer::MOST_WRITTEN as SIGNATURE_HEADERS;
use crate::telemetry::correlation;
use crate::telemetry::metrics::{labels, METRICS};
use crate::upstream::Outcome;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::ErrorType;
use std::time::{Duration, Instant};

/// A healthy peer not yet tried, with connect, read and write timeouts capped at what is
/// left of the route's deadline.
pub fn peer(session: &Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let pool = ctx
        .pool
        .clone()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no upstream chosen"))?;
    let now = Instant::now();
    let remaining = match ctx.deadline {
        _ if ctx.upgraded => Duration::MAX,
        Some(deadline) => deadline.saturating_duration_since(now),
        None => pool.spec.timeouts.total,
    };
    if remaining.is_zero() {
        // Time spent before any attempt (say, waiting for a key refresh) is not the
        // upstream's failure.
        if !ctx.tried.is_empty() {
            ctx.outcome.upstream_failure = Some("deadline");
        }
        return Error::e_explain(
            ErrorType::HTTPStatus(504),
            "request deadline passed before an attempt",
        );
    }
    let Some(peer) = pool.select(&hash_key(session, ctx), &ctx.tried) else {
        METRICS
            .upstream_rejections
            .with_label_values(&[pool.name(), "no_healthy_peer"])
            .inc();
        ctx.failure = Some(Rejection::NoHealthyPeer {
            upstream: pool.name().to_string(),
        });
        return Error::e_explain(ErrorType::HTTPStatus(503), "no healthy peer");
    };
    ctx.tried.push(peer);
    ctx.attempt_started = Some(now);
    if let Some(trace) = &mut ctx.trace {
        trace.attempt(peer);
    }
    // A retry sends the body again from Pingora's retry buffer, through
    // request_body_filter: count this attempt's bytes only, or a retried body would count
    // twice against the route's limit.
    ctx.request_bytes = 0;
    let timeouts = &pool.spec.timeouts;
    let mut http_peer = HttpPeer::new(peer, false, String::new());
    let options = &mut http_peer.options;
    options.connection_timeout = Some(timeouts.connect.min(remaining));
    options.total_connection_timeout = Some(timeouts.connect.min(remaining));
    options.read_timeout = Some(timeouts.read.min(remaining));
    options.write_timeout = Some(timeouts.write.min(remaining));
    options.idle_timeout = Some(Duration::from_secs(60));
    Ok(Box::new(http_peer))
}

/// The request as the upstream gets it, on every attempt (retries included): the client's
/// URI unless normalization, a rewrite or a token taken out of the query changed it; the
/// verified credential alone; correlation ids (with tracing on, the attempt's span as the
/// parent); and what upstreams may trust.
pub fn prepare_request(
    session: &Session,
    upstream_request: &mut RequestHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let route = ctx.route();
    let rewrite = route.and_then(|route| route.rewrite.as_ref());
    let api_key_header = ctx.snapshot.as_ref().and_then(|s| {
        let keys = s.config.authentication.api_keys.as_ref();
        keys.map(|keys| keys.header.as_str())
    });
    let stripped_query = match (route, ctx.credential) {
        (Some(route), Some(consumed)) => {
            forward_verified(upstream_request, &route.auth, api_key_header, consumed)
        }
        _ => None,
    };
    if rewrite.is_some() || ctx.path_normalized || stripped_query.is_some() {
        let path = match rewrite {
            Some(template) => template.apply(&ctx.path, ctx.depth, &ctx.params),
            None => ctx.path.clone(),
        };
        let query = stripped_query
            .as_deref()
            .or(session.req_header().uri.query())
            .filter(|query| !query.is_empty());
        let uri = match query {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let uri = uri
            .parse()
            .map_err(|e| Error::because(ErrorType::InternalError, "rewritten URI", e))?;
        upstream_request.set_uri(uri);
    }
    if ctx.buffered.is_some() {
        // The body was read at the edge, after Usher answered any `Expect` itself.
        upstream_request.remove_header(&http::header::EXPECT);
    }
    let signs = ctx
        .pool
        .as_ref()
        .is_some_and(|pool| pool.spec.sign_requests);
    // Room for every header written below at once: Pingora's two header maps are sized to
    // the client's headers, and would otherwise grow (and rehash) on the way.
    let written = MOST_WRITTEN
        + ctx.identity.as_ref().map_or(0, |_| IDENTITY_WRITTEN)
        + usize::from(ctx.approved.is_some())
        + if signs { SIGNATURE_HEADERS } else { 0 };
    upstream_request.reserve(written)?;
    let request_id = ctx.request_id.header_value();
    upstream_request.insert_header_static(&correlation::X_REQUEST_ID, request_id)?;
    match &mut ctx.trace {
        Some(trace) => {
            trace.sent(upstream_request.uri.path());
            let traceparent = trace.upstream_traceparent();
            upstream_request.insert_header_static(&correlation::TRACEPARENT, traceparent)?;
        }
        None => upstream_request
            .insert_header_static(&correlation::TRACEPARENT, ctx.traceparent.header_value())?,
    }
    if !ctx.trace_continued {
        // The client's tracestate belongs to a trace this request does not continue.
        upstream_request.remove_header(&correlation::TRACESTATE);
    }
    inject_identity(upstream_request, ctx)?;
    if let (true, Some(signer)) = (signs, ctx.snapshot.as_ref().and_then(|s| s.signer.as_ref())) {
        // Routes to this upstream read their bodies whole (the compiler holds them to it).
        let body = session.get_retry_buffer().unwrap_or_default();
        signer.sign(upstream_request, &body)?;
    }
    Ok(())
}

/// The most headers a forwarded request gets without a caller: `x-request-id`,
/// `traceparent`, and four of [`inject_identity`]'s.
const MOST_WRITTEN: usize = 6;
/// How many more [`inject_identity`] writes for a verified caller (and one more for an
/// approval).
const IDENTITY_WRITTEN: usize = 4;

static X_TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
static X_TENANT_SOURCE: HeaderName = HeaderName::from_static("x-tenant-source");
static X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
static X_USER_ROLES: HeaderName = HeaderName::from_static("x-user-roles");
static X_APPROVED_BY: HeaderName = HeaderName::from_static("x-approved-by");
static X_GATEWAY_FORWARDED: HeaderName = HeaderName::from_static("x-gateway-forwarded");
static X_ORIGINAL_IP: HeaderName = HeaderName::from_static("x-original-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The verified identity, the client's address, and forwarding headers written by Usher
/// alone. The client's copies were stripped at admission; Pingora has already removed the
/// headers named in `Connection`, so nothing can remove these.
fn inject_identity(upstream_request: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    if let Some(identity) = &ctx.identity {
        let Some([tenant, subject, roles]) = identity.forwarded_values().cloned() else {
            return Error::e_explain(ErrorType::InvalidHTTPHeader, "identity header value");
        };
        let source = HeaderValue::from_static(identity.source.as_str());
        upstream_request.insert_header_static(&X_TENANT_ID, tenant)?;
        upstream_request.insert_header_static(&X_TENANT_SOURCE, source)?;
        upstream_request.insert_header_static(&X_USER_ID, subject)?;
        upstream_request.insert_header_static(&X_USER_ROLES, roles)?;
    }
    if let Some(approved) = &ctx.approved {
        upstream_request.insert_header_static(&X_APPROVED_BY, approved.approvers.join(","))?;
    }
    let forwarded = HeaderValue::from_static("true");
    upstream_request.insert_header_static(&X_GATEWAY_FORWARDED, forwarded)?;
    let Some(snapshot) = &ctx.snapshot else {
        return Ok(());
    };
    if let (Some(client), Some(chain)) = (ctx.client, &ctx.forwarded_for) {
        let client = client_address::text(client);
        upstream_request.insert_header_static(&X_ORIGINAL_IP, client)?;
        let chain = chain.as_str();
        upstream_request.insert_header_static(&client_address::X_FORWARDED_FOR, chain)?;
    }
    let scheme = HeaderValue::from_static(snapshot.config.listeners.scheme());
    upstream_request.insert_header_static(&X_FORWARDED_PROTO, scheme)?;
    Ok(())
}

/// A connection that could not be made: counted, a refusing peer ejected, and retried on
/// another peer where the request allows it.
pub fn connect_failed(session: &Session, peer: &HttpPeer, ctx: &mut RequestCtx, e: &mut Error) {
    note_failure(ctx, e);
    if matches!(e.etype(), ErrorType::ConnectRefused) {
        if let (Some(pool), Some(addr)) = (&ctx.pool, peer._address.as_inet()) {
            pool.eject(*addr);
        }
    }
    e.set_retry(may_retry(session, ctx));
}

/// A failure on an established connection. While the client has not sent its whole
/// request, an upstream whose answer does not come in time is waiting for the client: the
/// timeout is the client's (408), and counting it would let anyone open the breaker with
/// requests that declare a body and never send it. An upstream that stops taking the body
/// (a write timeout) or breaks the connection is still charged. Only a stale reused
/// connection of an idempotent request with its whole body at hand is retried.
pub fn proxy_failed(
    session: &mut Session,
    ctx: &mut RequestCtx,
    e: Box<Error>,
    client_reused: bool,
) -> Box<Error> {
    let client_incomplete = !session.is_body_done();
    if client_incomplete && matches!(e.etype(), ErrorType::ReadTimedout) {
        ctx.event(
            "request_body_timeout",
            crate::security::events::Severity::Low,
        );
        ctx.failure = Some(Rejection::RequestTimeout);
    } else if *e.esource() == ErrorSource::Upstream {
        note_failure(ctx, &e);
    }
    let mut e = e.more_context(format!("upstream {}", ctx.upstream_name().unwrap_or("?")));
    if client_incomplete
        || !session.req_header().method.is_idempotent()
        || session.as_ref().retry_buffer_truncated()
    {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
        if e.retry() {
            // The connection went stale, not the peer: the retry may use it again.
            ctx.tried.pop();
        }
    }
    e
}

/// The upstream's answer has a head: the breaker learns the status, the attempt is timed,
/// and a response without a body gives its bulkhead slot back (no end of stream follows).
/// Returns whether the answer is complete with its head.
pub fn answered(
    session: &Session,
    ctx: &mut RequestCtx,
    status: http::StatusCode,
    length: Option<&[u8]>,
) -> bool {
    let code = status.as_u16();
    ctx.outcome.upstream_status = Some(code);
    ctx.outcome.upstream_failure = None;
    settle_breaker(ctx);
    let bodiless = session.req_header().method == http::Method::HEAD
        || matches!(code, 204 | 304)
        || length == Some(b"0");
    if bodiless && code != 101 {
        ctx.slot = None;
    }
    if let Some(trace) = &mut ctx.trace {
        trace.attempt_answered(code, bodiless || code == 101);
    }
    if let (Some(pool), Some(started)) = (&ctx.pool, ctx.attempt_started) {
        pool.observe_attempt(started.elapsed());
        if code >= 500 {
            METRICS
                .upstream_errors
                .with_label_values(&[pool.name(), "status_5xx"])
                .inc();
        }
    }
    bodiless && code != 101
}

/// Tells the breaker how this request went, once: as soon as the upstream's status is
/// known, or before a failure is answered, so the next request already sees the result.
/// A response that fails mid-body after a good header has already counted as a success;
/// such failures show in `usher_upstream_errors_total`, not in the breaker.
pub fn settle_breaker(ctx: &mut RequestCtx) {
    let (Some(pool), Some(pass)) = (&ctx.pool, ctx.breaker.take()) else {
        return;
    };
    let outcome = match (ctx.outcome.upstream_failure, ctx.outcome.upstream_status) {
        (Some(_), _) => Outcome::Failure,
        (None, Some(s)) if s >= 500 && pool.spec.circuit_breaker.count_5xx => Outcome::Failure,
        (None, Some(_)) => Outcome::Success,
        (None, None) => Outcome::Neutral,
    };
    pass.settle(outcome);
}

/// Frees the request's bulkhead slot, or parks it when the client left while the upstream
/// was still working on its request (see `upstream::bulkhead`).
pub fn give_back_slot(ctx: &mut RequestCtx, error: Option<&Error>) {
    let Some(slot) = ctx.slot.take() else {
        return;
    };
    let client_left = error.is_some_and(|e| *e.esource() == ErrorSource::Downstream);
    let (Some(pool), Some(started), None, true, false) = (
        &ctx.pool,
        ctx.attempt_started,
        ctx.outcome.upstream_status,
        client_left,
        ctx.upgraded,
    ) else {
        return;
    };
    let attempt_limit = match ctx.deadline {
        Some(deadline) => pool
            .spec
            .timeouts
            .read
            .min(deadline.saturating_duration_since(started)),
        None => pool.spec.timeouts.read,
    };
    METRICS
        .upstream_abandoned
        .with_label_values(&[pool.name()])
        .inc();
    slot.park_until(started + pool.bulkhead.abandoned_hold(attempt_limit));
}

fn hash_key(session: &Session, ctx: &RequestCtx) -> Vec<u8> {
    let Some(pool) = &ctx.pool else {
        return Vec::new();
    };
    let LoadBalancing::ConsistentHash(key) = &pool.spec.lb else {
        return Vec::new();
    };
    let client = || {
        session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_string().into_bytes())
            .unwrap_or_default()
    };
    match key {
        HashKey::ClientAddress => client(),
        HashKey::Header(name) => session
            .req_header()
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_else(client),
    }
}

fn may_retry(session: &Session, ctx: &RequestCtx) -> bool {
    let Some(pool) = &ctx.pool else {
        return false;
    };
    let retries_left = ctx.tried.len() <= pool.spec.retries as usize;
    let time_left = ctx.deadline.is_some_and(|d| Instant::now() < d);
    session.req_header().method.is_idempotent()
        && retries_left
        && time_left
        && pool.select(&hash_key(session, ctx), &ctx.tried).is_some()
}

fn note_failure(ctx: &mut RequestCtx, error: &Error) {
    let kind = failure_kind(error);
    labels::check("upstream_errors", &labels::UPSTREAM_ERRORS, kind);
    ctx.attempt_failed(kind);
    if let Some(pool) = &ctx.pool {
        METRICS
            .upstream_errors
            .with_label_values(&[pool.name(), kind])
            .inc();
    }
}

/// The `kind` label of `usher_upstream_errors_total`.
fn failure_kind(error: &Error) -> &'static str {
    match error.etype() {
        ErrorType::ConnectRefused => "connect_refused",
        ErrorType::ConnectTimedout => "connect_timeout",
        ErrorType::ReadTimedout => "read_timeout",
        ErrorType::WriteTimedout => "write_timeout",
        ErrorType::ConnectNoRoute | ErrorType::ConnectError | ErrorType::ConnectProxyFailure => {
            "connect_error"
        }
        ErrorType::WriteError => "write_error",
        _ => "read_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::admission::approval::Approved;
    use crate::security::Identity;
    use crate::snapshot::Snapshot;
    use std::sync::Arc;

    /// The room `prepare_request` reserves is counted by hand beside the code that writes
    /// the headers: with every optional header present (a verified caller, an approval, a
    /// client address), the count is exactly what is written, so a header added without
    /// its count fails here rather than growing both maps on every request.
    #[test]
    fn the_reserved_room_is_what_is_written() {
        let yaml = r#"
listeners:
  public: { address: "127.0.0.1:0" }
  admin: { address: "127.0.0.1:1" }
upstreams:
  svc: { targets: ["127.0.0.1:9"] }
routes:
  - { name: open, match: { path: /open }, upstream: svc, public: true }
"#;
        let mut ctx = RequestCtx::new();
        ctx.snapshot = Some(Arc::new(Snapshot::compiled(yaml)));
        ctx.identity = Some(Arc::new(Identity::caller("u1", "t1", &["buyer"])));
        ctx.approved = Some(Box::new(Approved {
            id: "a1".into(),
            approvers: vec!["ops".into()],
        }));
        ctx.client = Some("203.0.113.9".parse().unwrap());
        ctx.forwarded_for = Some("203.0.113.9".into());
        let mut head = RequestHeader::build("GET", b"/open", None).unwrap();
        inject_identity(&mut head, &ctx).unwrap();
        // `prepare_request` writes `x-request-id` and `traceparent` itself.
        let written = head.headers.len() + 2;
        assert_eq!(written, MOST_WRITTEN + IDENTITY_WRITTEN + 1);
    }
}
