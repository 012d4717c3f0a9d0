//! The only `impl ProxyHttp`. Each phase is a few lines that delegate. This is Usher's
//! request-phase chart; other places link here rather than repeat it.
//!
//! ```text
//! (before any phase)  the request head within its deadline (head_deadline: 408)
//! request_filter      correlation ids and the request's trace → snapshot (loaded once;
//!                     503 before the first) → admission (admission/mod.rs: route,
//!                     identify, limit, confirm, body, validate, idempotency, reserve; a
//!                     CORS preflight is answered there, an idempotent replay too); a
//!                     refusal releases the idempotency key it reserved before it is sent
//! request_body_filter body limit for chunked bodies (413)
//! upstream_peer       a healthy, untried peer; timeouts capped by the route's deadline;
//!                     the attempt's client span begins
//! upstream_request_filter  rewritten path, x-request-id, traceparent (with tracing on,
//!                     the attempt's span as parent), identity and forwarding headers,
//!                     the verified credential alone (every attempt)
//! fail_to_connect     count, eject a refusing peer, retry another (idempotent only)
//! error_while_proxy   a read timeout while the client's body is incomplete is the
//!                     client's (408), not the upstream's; count, retry stale connections
//! upstream_response_filter  status → breaker outcome, attempt metrics; a bodiless
//!                     response gives its bulkhead slot back; budget and an approval
//!                     spent on a request the upstream refused (4xx) are given back
//! upstream_response_body_filter  the route's deadline; end of stream gives the slot back
//! response_filter     x-request-id, security headers, CORS, RateLimit fields; upstream
//!                     Server and Access-Control-* removed; writes to the client bounded
//!                     by the route's deadline (and in response_body_filter)
//! fail_to_proxy       what a request never sent spent is given back, its idempotency
//!                     record settled (before the answer); every failure
//!                     → one JSON error shape (respond/)
//! logging             breaker outcome if still open, the slot (parked while the upstream
//!                     works if the client left first), metrics, spans, access log
//! ```
//!
//! Files: `request.rs` (what admission reads of a request), `admission/` (its stages),
//! `attempt.rs` (each try at the upstream), `answer.rs` (what the client gets back),
//! `finish.rs` (what a finished request leaves), `context.rs` (state across phases).

mod admission;
mod answer;
mod attempt;
mod context;
mod finish;
mod request;

pub use context::RequestCtx;

use crate::respond::Rejection;
use crate::snapshot::Live;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::correlation;
use crate::telemetry::traces::{self, RequestTrace};
use admission::Verdict;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorType;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct UsherProxy {
    live: Arc<Live>,
    access_log: Option<AccessLog>,
}

impl UsherProxy {
    pub fn new(live: Arc<Live>, access_log: Option<AccessLog>) -> Self {
        UsherProxy { live, access_log }
    }
}

#[async_trait]
impl ProxyHttp for UsherProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// Usher compresses nothing; skip Pingora's default (disabled) compression module.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let headers = &session.req_header().headers;
        ctx.request_id = correlation::request_id(headers);
        (ctx.traceparent, ctx.trace_continued) = correlation::traceparent(headers);
        if traces::tracer().is_some() {
            let state = headers
                .get(correlation::TRACESTATE)
                .and_then(|v| v.to_str().ok());
            let continued = ctx.trace_continued;
            ctx.trace = Some(Box::new(RequestTrace::begin(
                &ctx.traceparent,
                continued,
                state,
            )));
        }
        let verdict = match self.live.current() {
            Some(snapshot) => admission::run(session, &snapshot, ctx).await,
            None => Err(Rejection::NotReady),
        };
        match verdict {
            Ok(Verdict::Proxy) => Ok(false),
            Ok(Verdict::Preflight(headers)) => {
                answer::preflight(session, ctx, headers).await;
                Ok(true)
            }
            Ok(Verdict::Replay(stored)) => {
                answer::replay(session, ctx, &stored).await;
                Ok(true)
            }
            Ok(Verdict::Answer(body)) => {
                answer::served(session, ctx, &body).await;
                Ok(true)
            }
            Err(rejection) => {
                finish::settle_idempotency(ctx, None).await;
                answer::reject(session, ctx, &rejection).await;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.request_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        let limit = ctx.route().map_or(u64::MAX, |route| route.max_body);
        if ctx.request_bytes > limit && !ctx.upgraded {
            ctx.failure = Some(Rejection::PayloadTooLarge { limit });
            return Error::e_explain(
                ErrorType::HTTPStatus(413),
                "request body over the route's limit",
            );
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        attempt::peer(session, ctx)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        attempt::prepare_request(session, upstream_request, ctx)
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        attempt::connect_failed(session, peer, ctx, &mut e);
        e
    }

    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        attempt::proxy_failed(session, ctx, e, client_reused)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status;
        // `100 Continue` and friends come before the real answer.
        if !status.is_informational() || status == http::StatusCode::SWITCHING_PROTOCOLS {
            let length = upstream_response.headers.get(http::header::CONTENT_LENGTH);
            let complete = attempt::answered(session, ctx, status, length.map(|v| v.as_bytes()));
            finish::settle_spent(ctx, None).await;
            if let Some(pending) = &mut ctx.idempotency {
                pending.record_head(status.as_u16(), &upstream_response.headers);
                if complete {
                    pending.record_end();
                }
            }
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some(pending) = &mut ctx.idempotency {
            if let Some(chunk) = body.as_ref() {
                pending.record_body(chunk);
            }
            if end_of_stream {
                pending.record_end();
            }
        }
        if let (true, Some(trace)) = (end_of_stream, &mut ctx.trace) {
            trace.attempt_done();
        }
        if end_of_stream && !ctx.upgraded {
            // The upstream's part is done, whatever the client's reading speed.
            ctx.slot = None;
        }
        if !end_of_stream && !ctx.upgraded && ctx.deadline.is_some_and(|d| Instant::now() > d) {
            ctx.attempt_failed("deadline");
            return Error::e_explain(
                ErrorType::ReadTimedout,
                "the route's deadline passed mid-response",
            );
        }
        Ok(None)
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        answer::bound_delivery(session, ctx);
        answer::decorate(session, upstream_response, ctx)
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        answer::bound_delivery(session, ctx);
        ctx.response_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        attempt::settle_breaker(ctx);
        finish::settle_idempotency(ctx, Some(e)).await;
        finish::settle_spent(ctx, Some(e)).await;
        let upstream = ctx.upstream_name().map(str::to_string);
        let rejection = ctx
            .failure
            .take()
            .or_else(|| Rejection::from_error(e, upstream.as_deref()));
        let Some(rejection) = rejection else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        answer::reject(session, ctx, &rejection).await;
        FailToProxy {
            error_code: rejection.status(),
            can_reuse_downstream: false,
        }
    }

    /// Pingora's own log lines name a request by this; the default includes the query string,
    /// where tokens may travel (`token_from: query:...`).
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let head = session.req_header();
        format!("{} {}", head.method, ctx.path_or(head))
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // `logging` writes one structured line per failed request instead.
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        finish::finish(session, e, ctx, self.access_log.as_ref()).await;
    }
}
