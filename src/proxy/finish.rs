//! What a finished request leaves behind: its breaker outcome and bulkhead slot settled,
//! its route's metrics, its spans when it is traced, a log line when it failed, and its
//! access-log record.

use super::admission::{self, budget};
use super::attempt;
use super::RequestCtx;
use crate::idempotency::Ending;
use crate::store::Place;
use crate::telemetry::access_log::{AccessLog, AccessRecord};
use crate::telemetry::metrics::UNMATCHED;
use crate::telemetry::traces::{self, Finished};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::SystemTime;

/// How the request ended upstream: for its idempotency record, and whether budget it spent
/// comes back.
fn upstream_ending(ctx: &RequestCtx, error: Option<&Error>) -> Ending {
    let connected = !ctx.tried.is_empty()
        && !ctx.outcome.upstream_failure.is_some_and(|kind| {
            kind.starts_with("connect") && ctx.outcome.upstream_status.is_none()
        });
    match (ctx.outcome.upstream_status, error) {
        (Some(_), None) => Ending::Answered,
        _ if !connected => Ending::NotSent,
        _ => Ending::Unknown,
    }
}

/// Decides, once, whether what this request spent (budget, an approval) stays spent: as
/// soon as the upstream's answer has a head, or the request failed, so a client that sees
/// the answer sees it settled; here at the end for whatever is left.
pub async fn settle_spent(ctx: &mut RequestCtx, error: Option<&Error>) {
    if let (Some(snapshot), Some(delivery)) = (ctx.snapshot.clone(), ctx.delivery.take()) {
        // Answered by the service (below 500): a repeat is a replay. Otherwise the
        // provider's retry must go through.
        let answered = ctx
            .outcome
            .upstream_status
            .is_some_and(|status| status < 500);
        let deliveries = &snapshot.kept.deliveries;
        deliveries
            .end(Place::of(&snapshot), &delivery, answered)
            .await;
    }
    let spent_any = !ctx.budget.is_empty() || ctx.approved.is_some();
    let Some(snapshot) = ctx.snapshot.clone().filter(|_| spent_any) else {
        return;
    };
    let sent = upstream_ending(ctx, error) != Ending::NotSent;
    let status = ctx.outcome.upstream_status;
    if budget::did_not_happen(sent, status) {
        admission::give_back(&snapshot, ctx).await;
    } else {
        ctx.budget.clear();
        ctx.approved = None;
    }
}

/// Ends the request's idempotency record (completed, released, or left in flight when it
/// is unknown whether the upstream acted). Called before Usher answers a request it refused
/// or could not proxy, so a client that sees that answer may send the request again at once,
/// and at the end for every other request.
pub async fn settle_idempotency(ctx: &mut RequestCtx, error: Option<&Error>) {
    if let Some(pending) = ctx.idempotency.take() {
        let ending = match pending.answered() {
            true => Ending::Answered,
            false => upstream_ending(ctx, error),
        };
        pending.finish(ending).await;
    }
}

/// The request's spans, when tracing is on and it was sampled (nothing is built otherwise).
fn trace(session: &Session, ctx: &mut RequestCtx, status: u16, error: Option<&Error>) {
    // A request has a trace only when tracing is on.
    let (true, Some(tracer)) = (ctx.trace.is_some(), traces::tracer()) else {
        return;
    };
    ctx.sample();
    let Some(trace) = ctx.trace.take().filter(|trace| trace.sampled()) else {
        return;
    };
    let head = session.req_header();
    let host = head.headers.get(http::header::HOST);
    tracer.finish(
        *trace,
        &Finished {
            method: &head.method,
            route: ctx
                .route()
                .map(|route| (Arc::clone(&route.name), Arc::clone(&route.pattern_text))),
            status,
            error: (ctx.outcome.error_code()).or(error
                .filter(|e| *e.esource() == ErrorSource::Downstream)
                .map(|_| "client_closed")),
            path: ctx.path_or(head),
            scheme: (ctx.snapshot.as_ref()).map_or("http", |s| s.config.listeners.scheme()),
            version: head.version,
            client: ctx.client,
            peer: session.client_addr().and_then(|a| a.as_inet()).copied(),
            host: host
                .and_then(|h| h.to_str().ok())
                .or_else(|| head.uri.authority().map(|a| a.as_str())),
            upstream: ctx.pool.as_ref().map(|pool| Arc::clone(&pool.spec.name)),
            request_id: &ctx.request_id,
            tenant: ctx.identity.as_ref().map(|i| i.tenant.as_str()),
        },
    );
}

pub async fn finish(
    session: &Session,
    error: Option<&Error>,
    ctx: &mut RequestCtx,
    access_log: Option<&AccessLog>,
) {
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .or(ctx.outcome.gateway_status)
        .unwrap_or(0);
    attempt::settle_breaker(ctx);
    attempt::give_back_slot(ctx, error);
    settle_idempotency(ctx, error).await;
    settle_spent(ctx, error).await;

    let elapsed = ctx.started.elapsed();
    let route_metrics = match (&ctx.snapshot, ctx.route) {
        (Some(snapshot), Some(route)) => &snapshot.route_metrics[route],
        _ => &*UNMATCHED,
    };
    route_metrics.observe(&session.req_header().method, status, elapsed);

    trace(session, ctx, status, error);
    if let Some(e) = error {
        tracing::warn!(
            request_id = %ctx.request_id,
            route = ctx.route_name().unwrap_or("unmatched"),
            upstream = ctx.upstream_name().unwrap_or("-"),
            status,
            error = %e,
            "request failed"
        );
    }
    let Some(log) = access_log else {
        return;
    };
    let (alias, asked) = match ctx.alias.take() {
        Some((alias, asked)) => (
            ctx.snapshot
                .as_ref()
                .map(|s| Arc::clone(&s.config.aliases[alias].name)),
            Some(asked),
        ),
        None => (None, None),
    };
    let path = match asked {
        Some(asked) => asked,
        None if ctx.path.is_empty() => session.req_header().uri.path().to_string(),
        None => std::mem::take(&mut ctx.path),
    };
    log.log(AccessRecord {
        time: SystemTime::now(),
        request_id: std::mem::take(&mut ctx.request_id),
        traceparent: std::mem::take(&mut ctx.traceparent),
        client: ctx.client,
        method: session.req_header().method.clone(),
        path,
        route: ctx.route().map(|route| Arc::clone(&route.name)),
        alias,
        upstream: ctx.pool.as_ref().map(|pool| Arc::clone(&pool.spec.name)),
        peer: ctx.tried.last().copied(),
        attempts: ctx.tried.len(),
        status,
        duration: elapsed,
        request_bytes: ctx.request_bytes,
        response_bytes: ctx.response_bytes,
        error: ctx.outcome.error_code(),
        caller: ctx.identity.clone(),
    });
}
