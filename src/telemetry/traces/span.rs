//! One request's trace, kept in its context and turned into spans when it ends: the server
//! span; a client span for each attempt at an upstream, whose id the upstream receives as
//! its parent; and what admission decided, as the server span's events. Until the request
//! is sampled nothing is recorded, so an unsampled request costs its ids and its
//! `traceparent` only. What each span is named and says is semantics.rs'.

use super::sampler::Sampler;
use super::semantics::{self, Finished};
use crate::telemetry::{correlation, VERSION};
use once_cell::sync::Lazy;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample, SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::SystemTime;

static SCOPE: Lazy<InstrumentationScope> = Lazy::new(|| {
    InstrumentationScope::builder("usher")
        .with_version(VERSION)
        .build()
});

pub struct RequestTrace {
    trace_id: TraceId,
    /// The server span's id; each attempt's client span is its child.
    span_id: SpanId,
    /// The caller's span, when the request came with a valid `traceparent`.
    remote_parent: Option<(SpanId, TraceFlags)>,
    /// The caller's `tracestate`, as the sampler left it.
    state: TraceState,
    /// `None` until the route is known (a route may choose its own sampler).
    sampled: Option<bool>,
    /// Whether the caller's sampled flag counts: it came through a trusted proxy.
    caller_trusted: bool,
    started: SystemTime,
    events: Vec<Event>,
    attempts: Vec<Attempt>,
}

/// One try at an upstream: its client span.
pub(super) struct Attempt {
    span_id: SpanId,
    started: SystemTime,
    ended: Option<SystemTime>,
    pub(super) peer: SocketAddr,
    /// The path it was sent, without the query.
    pub(super) path: String,
    pub(super) status: Option<u16>,
    pub(super) failure: Option<&'static str>,
}

fn new_span_id() -> SpanId {
    SpanId::from(rand::random::<u64>() | 1)
}

impl RequestTrace {
    /// A request's trace from its `traceparent` (valid: the client's, or one Usher made):
    /// the client's continues, and its span becomes the server span's parent; a made one
    /// starts a trace whose server span takes the made id.
    pub fn begin(traceparent: &str, continued: bool, tracestate: Option<&str>) -> RequestTrace {
        let [trace_id, parent, flags] = correlation::fields(traceparent);
        let trace_id = TraceId::from_hex(trace_id).unwrap_or(TraceId::INVALID);
        let parent = SpanId::from_hex(parent).unwrap_or(SpanId::INVALID);
        let flags = u8::from_str_radix(flags, 16).unwrap_or(0);
        let (span_id, remote_parent) = match continued {
            true => (new_span_id(), Some((parent, TraceFlags::new(flags)))),
            false => (parent, None),
        };
        let state = tracestate
            .filter(|_| continued)
            .and_then(|value| value.parse().ok())
            .unwrap_or_default();
        RequestTrace {
            trace_id,
            span_id,
            remote_parent,
            state,
            sampled: None,
            caller_trusted: false,
            started: SystemTime::now(),
            events: Vec::new(),
            attempts: Vec::new(),
        }
    }

    /// The connection comes from one of `identity.trusted_proxies`: the caller's sampled
    /// flag counts. From anyone else the trace is continued but sampled as a new one would
    /// be, so that no client can make Usher trace (and queue) every request it sends.
    pub fn trust_caller(&mut self, trusted: bool) {
        self.caller_trusted = trusted;
    }

    /// Decides, once, whether this request is sampled: by the route's sampler or the
    /// process's, from the trace id and a trusted caller's decision (the samplers Usher
    /// offers read nothing else).
    pub fn decide(&mut self, sampler: &Sampler, route: &str) {
        if self.sampled.is_some() {
            return;
        }
        let parent =
            match self.remote_parent.filter(|_| self.caller_trusted) {
                Some((span_id, flags)) => Context::new().with_remote_span_context(
                    SpanContext::new(self.trace_id, span_id, flags, true, self.state.clone()),
                ),
                None => Context::new(),
            };
        let result = sampler.should_sample(
            Some(&parent),
            self.trace_id,
            route,
            &SpanKind::Server,
            &[],
            &[],
        );
        self.sampled = Some(result.decision == SamplingDecision::RecordAndSample);
        self.state = result.trace_state;
    }

    pub fn sampled(&self) -> bool {
        self.sampled == Some(true)
    }

    /// Records a decision as an event on the server span, when the request is sampled.
    pub fn event(&mut self, name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
        if self.sampled() {
            let event = Event::new(name, SystemTime::now(), attributes(), 0);
            self.events.push(event);
        }
    }

    /// A new attempt at `peer`: its client span starts. An unsampled request records
    /// none; its upstream gets the server span's id as the parent.
    pub fn attempt(&mut self, peer: SocketAddr) {
        if !self.sampled() {
            return;
        }
        self.attempts.push(Attempt {
            span_id: new_span_id(),
            started: SystemTime::now(),
            ended: None,
            peer,
            path: String::new(),
            status: None,
            failure: None,
        });
    }

    /// The current attempt's request went out with `path`.
    pub fn sent(&mut self, path: &str) {
        if let Some(attempt) = self.open_attempt() {
            path.clone_into(&mut attempt.path);
        }
    }

    /// The current attempt failed (`kind` as `usher_upstream_errors_total` names it).
    pub fn attempt_failed(&mut self, kind: &'static str) {
        if let Some(attempt) = self.open_attempt() {
            attempt.failure = Some(kind);
            attempt.ended = Some(SystemTime::now());
        }
    }

    /// The current attempt's answer has a head; it ends here when `complete`, else at the
    /// end of its body ([`RequestTrace::attempt_done`]).
    pub fn attempt_answered(&mut self, status: u16, complete: bool) {
        if let Some(attempt) = self.open_attempt() {
            attempt.status = Some(status);
            if complete {
                attempt.ended = Some(SystemTime::now());
            }
        }
    }

    /// The current attempt's answer is all in.
    pub fn attempt_done(&mut self) {
        if let Some(attempt) = self.open_attempt() {
            attempt.ended = Some(SystemTime::now());
        }
    }

    fn open_attempt(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut().filter(|a| a.ended.is_none())
    }

    /// The `traceparent` the upstream gets: this trace, the current attempt's span as its
    /// parent, and whether it is sampled.
    pub fn upstream_traceparent(&self) -> String {
        let parent = self.attempts.last().map_or(self.span_id, |a| a.span_id);
        let (trace_id, parent) = (self.trace_id.to_bytes(), parent.to_bytes());
        correlation::traceparent_text(&trace_id, &parent, self.sampled())
    }

    /// The spans of a sampled request, each handed to `export`.
    pub fn finish(mut self, request: &Finished<'_>, mut export: impl FnMut(SpanData)) {
        if !self.sampled() {
            return;
        }
        let ended = SystemTime::now();
        if let Some(attempt) = self.open_attempt() {
            // Neither answered nor failed: the request ended first (the client left, or
            // the route's deadline passed).
            if attempt.status.is_none() && attempt.failure.is_none() {
                attempt.failure = Some(request.error.unwrap_or("abandoned"));
            }
            attempt.ended = Some(ended);
        }
        let flags = TraceFlags::SAMPLED;
        let method = semantics::known_method(request.method);
        for (number, attempt) in self.attempts.iter().enumerate() {
            let (attributes, status) =
                semantics::attempt(attempt, number, method, request.upstream.as_ref());
            export(SpanData {
                span_context: SpanContext::new(
                    self.trace_id,
                    attempt.span_id,
                    flags,
                    false,
                    self.state.clone(),
                ),
                parent_span_id: self.span_id,
                parent_span_is_remote: false,
                span_kind: SpanKind::Client,
                name: Cow::Borrowed(method.unwrap_or("HTTP")),
                start_time: attempt.started,
                end_time: attempt.ended.unwrap_or(ended),
                attributes,
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status,
                instrumentation_scope: SCOPE.clone(),
            });
        }
        let mut events = SpanEvents::default();
        events.events = std::mem::take(&mut self.events);
        let (parent_span_id, parent_span_is_remote) = match self.remote_parent {
            Some((parent, _)) => (parent, true),
            None => (SpanId::INVALID, false),
        };
        export(SpanData {
            span_context: SpanContext::new(self.trace_id, self.span_id, flags, false, self.state),
            parent_span_id,
            parent_span_is_remote,
            span_kind: SpanKind::Server,
            name: semantics::server_span_name(method, request.route.as_ref().map(|(_, p)| &**p)),
            start_time: self.started,
            end_time: ended,
            attributes: semantics::server_attributes(request, method),
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: semantics::server_status(request),
            instrumentation_scope: SCOPE.clone(),
        });
    }
}
