//! Per-request state shared across the proxy phases.

use crate::config::RouteSpec;
use crate::filters::authenticate::Consumed;
use crate::idempotency::Pending;
use crate::load::{BufferedBody, InFlightRequest};
use crate::proxy::admission::approval::Approved;
use crate::proxy::admission::budget::Spent;
use crate::ratelimit::Quota;
use crate::respond::Rejection;
use crate::security::events::{self, Severity};
use crate::security::Identity;
use crate::snapshot::Snapshot;
use crate::telemetry::correlation;
use crate::telemetry::traces::{self, RequestTrace};
use crate::upstream::{BreakerPass, Pool, Slot};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub struct RequestCtx {
    pub started: Instant,
    pub request_id: correlation::Id,
    pub traceparent: correlation::Id,
    /// Whether `traceparent` is the client's, whose `tracestate` then goes on with it.
    pub trace_continued: bool,
    /// This request's spans, when tracing is on. Boxed, as are the other large fields few
    /// requests use: Pingora's per-request future holds this context and is copied whole.
    pub trace: Option<Box<RequestTrace>>,
    /// Loaded once in `request_filter`; every later phase reads this same snapshot.
    pub snapshot: Option<Arc<Snapshot>>,
    pub route: Option<usize>,
    /// The normalized path, the only path any later phase looks at.
    pub path: String,
    /// Path segments the route's pattern matched, for prefix rewrites.
    pub depth: usize,
    /// Values of the route's `:param` segments, in pattern order.
    pub params: Vec<String>,
    /// The alias the request came through, and the path it asked for (`path` is then the
    /// one the alias led to).
    pub alias: Option<(usize, String)>,
    /// The client's address (through trusted proxies).
    pub client: Option<IpAddr>,
    /// The `X-Forwarded-For` every upstream attempt carries, worked out once.
    pub forwarded_for: Option<String>,
    /// A refusal decided in a phase that can only fail; `fail_to_proxy` answers with it.
    pub failure: Option<Rejection>,
    /// A WebSocket upgrade on a route that allows them: no body limit, no deadline.
    pub upgraded: bool,
    /// The verified caller, on routes that require one.
    pub identity: Option<Arc<Identity>>,
    /// The credential the identity came from, so that only it is forwarded.
    pub credential: Option<Consumed>,
    /// Whether normalization changed the path, so the upstream must get a new URI.
    pub path_normalized: bool,
    pub pool: Option<Arc<Pool>>,
    pub slot: Option<Slot>,
    /// Room for the body read before any upstream contact (`buffer_body`), held to the end.
    pub buffered: Option<BufferedBody>,
    /// The Idempotency-Key this request holds, and what it learns of its answer.
    pub idempotency: Option<Box<Pending>>,
    /// Amounts this request spent from budgets, given back if it does not happen.
    pub budget: Vec<Spent>,
    /// The approval this request uses, given back if it does not happen.
    pub approved: Option<Box<Approved>>,
    /// The `Content-Digest` the caller's verified signature covers, checked against the
    /// body once it is in.
    pub signed_digest: Option<String>,
    /// The webhook delivery this request carries, recorded as answered or dropped once
    /// its fate is known.
    pub delivery: Option<String>,
    /// The circuit breaker's permission, until the request's outcome is recorded.
    pub breaker: Option<BreakerPass>,
    pub deadline: Option<Instant>,
    /// Where the caller stands under each rate-limit policy of the route.
    pub quotas: Vec<Quota>,
    pub tried: Vec<SocketAddr>,
    pub attempt_started: Option<Instant>,
    /// How the request went, as far as it has gone.
    pub outcome: Outcome,
    pub request_bytes: u64,
    pub response_bytes: u64,
    _in_flight: InFlightRequest,
}

/// What the breaker, the metrics and the access log learn about a request's end.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The upstream's final status, once its response head came.
    pub upstream_status: Option<u16>,
    /// The kind of the last upstream failure (`connect_refused`, `read_timeout`, ...).
    pub upstream_failure: Option<&'static str>,
    /// The status Usher answered with itself, when it did.
    pub gateway_status: Option<u16>,
    /// The stable code of Usher's own answer, when it refused the request.
    pub rejection_code: Option<&'static str>,
}

impl Outcome {
    /// What went wrong, as the access log's `error` and a span's `usher.code` name it: Usher's
    /// refusal, else the upstream's last failure.
    pub fn error_code(&self) -> Option<&'static str> {
        self.rejection_code.or(self.upstream_failure)
    }
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: correlation::Id::default(),
            traceparent: correlation::Id::default(),
            trace_continued: false,
            trace: None,
            snapshot: None,
            route: None,
            path: String::new(),
            depth: 0,
            params: Vec::new(),
            alias: None,
            client: None,
            forwarded_for: None,
            failure: None,
            identity: None,
            credential: None,
            upgraded: false,
            path_normalized: false,
            pool: None,
            slot: None,
            buffered: None,
            idempotency: None,
            budget: Vec::new(),
            approved: None,
            delivery: None,
            signed_digest: None,
            breaker: None,
            deadline: None,
            quotas: Vec::new(),
            tried: Vec::new(),
            attempt_started: None,
            outcome: Outcome::default(),
            request_bytes: 0,
            response_bytes: 0,
            _in_flight: InFlightRequest::start(),
        }
    }

    pub fn route(&self) -> Option<&RouteSpec> {
        Some(&self.snapshot.as_ref()?.config.routes[self.route?])
    }

    pub fn route_name(&self) -> Option<&str> {
        self.route().map(|route| &*route.name)
    }

    /// Where a security event about this request happened, as far as it is known.
    pub fn event_context(&self) -> events::Context<'_> {
        events::Context {
            request_id: &self.request_id,
            client: self.client,
            route: self.route_name(),
            path: &self.path,
            caller: self.identity.as_deref(),
        }
    }

    /// Records a security event about this request.
    pub fn event(&self, reason: &'static str, severity: Severity) {
        events::record(reason, severity, &self.event_context());
    }

    /// Decides whether this request is traced, once: by its route's sampler where it has
    /// one, else the process's. Called when the route is known, or at the end.
    pub fn sample(&mut self) {
        let (Some(trace), Some(tracer)) = (&mut self.trace, traces::tracer()) else {
            return;
        };
        let route = (self.snapshot.as_ref()).and_then(|s| Some(&s.config.routes[self.route?]));
        let sampler = route.and_then(|r| r.trace_sampler.as_ref());
        let name = route.map_or("unmatched", |r| &*r.name);
        trace.decide(sampler.unwrap_or(&tracer.sampler), name);
    }

    /// The current attempt at the upstream failed this way: for the access log, the
    /// breaker's outcome and the attempt's span.
    pub fn attempt_failed(&mut self, kind: &'static str) {
        self.outcome.upstream_failure = Some(kind);
        if let Some(trace) = &mut self.trace {
            trace.attempt_failed(kind);
        }
    }

    /// The request's path as admission normalized it, or as it came when admission did not
    /// get that far.
    pub fn path_or<'a>(&'a self, head: &'a pingora::http::RequestHeader) -> &'a str {
        match self.path.as_str() {
            "" => head.uri.path(),
            path => path,
        }
    }

    pub fn upstream_name(&self) -> Option<&str> {
        self.pool.as_ref().map(|pool| pool.name())
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    /// Pingora's per-request future holds the context and is copied whole (into its box,
    /// and again on the way), so the large fields few requests use are boxed.
    #[test]
    fn the_context_stays_small() {
        let size = std::mem::size_of::<super::RequestCtx>();
        assert!(size <= 704, "RequestCtx is {size} bytes");
    }
}
