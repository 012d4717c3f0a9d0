//! Admission: everything `request_filter` decides before a request may go upstream. Each
//! stage reads the request and the matched route's spec and returns a value; [`admit`] runs
//! them in this order and keeps what they return in the request's context:
//!
//! ```text
//! route     hardening (400/405/414/431) → normalize path (400) → a CORS preflight the
//!           route's policy answers (204/403) → route (404/405; an alias is routed again
//!           as the path it leads to) → Upgrade only where allowed (400)
//! identify  strip client identity headers → authenticate (401; 503 without keys) →
//!           revoked token (401; 503 when unknown and its store is down) → roles and venue
//!           scope (403)
//! limit     overload shedding by tier (503) → rate limits (429; 503 when a fail-closed
//!           policy's store is down)
//! confirm   user status and venue access, asked of the services (401/403/503)
//! body      declared body over the limit (413); path parameters against the route's
//!           patterns (400); where the route buffers its body (`buffer_body`), the whole
//!           body read before any upstream contact (413 over the limit, 400 malformed, 408
//!           too slow, 503 when buffers are full): body.rs
//! webhook   where the route has one: the provider's signature over the body (401), the
//!           delivery taken once (409 seen before; 503 records unreachable) (webhook.rs)
//! validate  where the route has a body schema: 415 not JSON, 400 malformed, 422 invalid
//!           (crate::validation); a venue in the body out of the caller's scope (403)
//! idempotency  where the route has it: the key (400), reserved for the caller, or the
//!           stored answer replayed; 409 in flight or unknown, 422 reused (idempotency.rs)
//! approval  where the route has approval and the amount is above it: a granted approval
//!           is used, else 403 approval_required (409 used; 503 store down) (approval.rs)
//! budget    where the route has budgets: the body's amount (422 missing or over the
//!           cap), spent from each (429 not enough left; 503 store down) (budget.rs)
//! reserve   bulkhead (503) → circuit breaker (503)
//! ```
//!
//! Authentication runs before anything that spends upstream capacity (bulkhead, breaker
//! probes), so anonymous traffic cannot exhaust them. Rate limits come after it, because
//! they are keyed by the verified identity, and before the calls to other services (user
//! status, venue access), so a flood is refused before it costs them anything. Revocation
//! belongs to authentication: a revoked token is no credential, whatever it grants, and its
//! answer is cached per `jti`, so a flood with one token costs one lookup per `cache_ttl`.
//! A preflight is a mode of the route stage: it is routed by the method it asks about and
//! answered there, before any credential is looked at (browsers send none with it).

pub mod approval;
pub mod body;
pub mod budget;
mod confirm;
pub mod idempotency;
mod identify;
mod limit;
mod reserve;
mod route;
#[cfg(test)]
mod tests;
mod trace_events;
mod webhook;

use super::request::Request;
use super::RequestCtx;
use crate::approval::endpoint as approval_endpoint;
use crate::config::{RouteSpec, RouteTarget};
use crate::filters::authenticate::Consumed;
use crate::filters::client_address;
use crate::filters::{authorize, cors};
use crate::ratelimit::key::KeySource;
use crate::respond::Rejection;
use crate::security::events::{self, Severity};
use crate::signatures::verify::digest_matches;
use crate::snapshot::Snapshot;
use crate::store::Place;
use crate::telemetry::metrics::{labels, METRICS};
use crate::validation;
use idempotency::Begun;
use pingora::proxy::Session;
use std::sync::Arc;

/// What admission decided, when it did not refuse the request.
#[derive(Debug)]
pub enum Verdict {
    /// Go on: the context holds the route, the caller and the quotas; the body stage (where
    /// the route buffers) and [`reserve`] follow.
    Proxy,
    /// A CORS preflight that the route's policy allows, answered at the edge with these
    /// headers.
    Preflight(cors::Headers),
    /// A request whose Idempotency-Key already has its answer: replayed at the edge.
    Replay(Arc<crate::idempotency::Stored>),
    /// An endpoint Usher serves itself (approvals): 200 with this JSON.
    Answer(serde_json::Value),
}

/// Every stage, in order, on a session: those that read only the request view ([`admit`]),
/// then those that need the session's body, then [`reserve`], so a slow body holds no
/// upstream capacity.
pub async fn run(
    session: &mut Session,
    snapshot: &Arc<Snapshot>,
    ctx: &mut RequestCtx,
) -> Result<Verdict, Rejection> {
    let verdict = admit(&mut Request::of(session), snapshot, ctx).await?;
    let (Verdict::Proxy, Some(route)) = (&verdict, ctx.route) else {
        return Ok(verdict);
    };
    let route = &snapshot.config.routes[route];
    if route.target == RouteTarget::Approvals {
        return serve_approvals(session.req_header(), snapshot, ctx).await;
    }
    validation::check_params(route, &ctx.params)
        .inspect_err(|refusal| count_refusal(route, refusal))?;
    body::buffer(session, ctx, route, &snapshot.config.limits).await?;
    if route.reads_body {
        if let Some(verdict) = read_body(session, snapshot, route, ctx).await? {
            return Ok(verdict);
        }
    }
    if let Err(refusal) = reserve(&Request::of(session), snapshot, ctx) {
        // Refused before anything was sent: what the request spent comes back now.
        give_back(snapshot, ctx).await;
        return Err(refusal);
    }
    Ok(Verdict::Proxy)
}

/// Counts a refusal of the validation stages (parameters, the body as JSON, its schema).
fn count_refusal(route: &RouteSpec, refusal: &Rejection) {
    labels::check("validation_refusals", &labels::VALIDATION, refusal.code());
    METRICS
        .validation_refusals
        .with_label_values(&[&route.name, refusal.code()])
        .inc();
}

/// The stages that read the buffered body, on a route that has one of them
/// ([`RouteSpec::reads_body`]): webhook, validate, idempotency, approval, budget. A stored
/// answer to replay is the verdict; `None` goes on to [`reserve`].
async fn read_body(
    session: &mut Session,
    snapshot: &Arc<Snapshot>,
    route: &RouteSpec,
    ctx: &mut RequestCtx,
) -> Result<Option<Verdict>, Rejection> {
    let refused = |refusal: &Rejection| count_refusal(route, refusal);
    let body = session.get_retry_buffer().unwrap_or_default();
    ctx.delivery =
        webhook::check(snapshot, route, &session.req_header().headers, &body, ctx).await?;
    if ctx.credential == Some(Consumed::Signature) {
        // A signed request's body is the one its signature's Content-Digest names.
        let matches = match &ctx.signed_digest {
            Some(digest) => digest_matches(digest, &body),
            None => body.is_empty(),
        };
        if !matches {
            ctx.event("signature_digest_mismatch", Severity::High);
            return Err(Rejection::Unauthenticated);
        }
    }
    let schema = ctx
        .route
        .and_then(|index| snapshot.schemas.for_route(index));
    let head = session.req_header();
    let reads_document = route.reads_document();
    let document = match reads_document {
        true => validation::document(&head.method, &head.headers, &body).inspect_err(refused)?,
        false => None,
    };
    if let (Some(schema), Some(document)) = (schema, &document) {
        validation::check_body(document, schema).inspect_err(refused)?;
    }
    if let (Some(pointer), Some(identity), Some(document)) =
        (&route.auth.venue_field, &ctx.identity, &document)
    {
        let venue = document.pointer(pointer).and_then(|v| v.as_str());
        if !authorize::venue_in_scope(identity, &route.auth, venue) {
            ctx.event("venue_not_in_scope", Severity::Medium);
            return Err(Rejection::Forbidden);
        }
    }
    let begun = idempotency::begin(session.req_header(), &body, snapshot, route, ctx).await;
    trace_events::idempotency(&mut ctx.trace, &begun);
    match begun? {
        Some(Begun::Reserved(pending)) => ctx.idempotency = Some(Box::new(pending)),
        Some(Begun::Replay(answer)) => return Ok(Some(Verdict::Replay(answer))),
        None => {}
    }
    let head = session.req_header();
    let at = ctx.event_context();
    let asked = approval::Asked {
        head,
        path: &ctx.path,
        params: &ctx.params,
        body: &body,
        document: document.as_ref(),
    };
    // Amounts are checked against their caps before anyone is asked to approve them.
    let measured = budget::measure(snapshot, route, document.as_ref())?;
    let approved = approval::check(snapshot, route, ctx.identity.as_deref(), &asked, &at).await?;
    ctx.approved = approved.map(Box::new);
    let source = KeySource {
        identity: ctx.identity.as_deref(),
        client: ctx.client,
        headers: &head.headers,
        params: &ctx.params,
        query: head.uri.query(),
    };
    match budget::spend(snapshot, measured, &source, &mut ctx.quotas).await {
        Ok(spent) => ctx.budget = spent,
        Err(refusal) => {
            give_back(snapshot, ctx).await;
            return Err(refusal);
        }
    }
    Ok(None)
}

/// Gives back what a request spent (budget, an approval) when it did not happen.
pub async fn give_back(snapshot: &Snapshot, ctx: &mut RequestCtx) {
    let spent = std::mem::take(&mut ctx.budget);
    if !spent.is_empty() {
        budget::give_back(snapshot, Place::of(snapshot), spent).await;
    }
    if let Some(approved) = ctx.approved.take() {
        approval::restore(snapshot, *approved).await;
    }
}

/// A request to the approvals endpoint, once its caller is known and counted.
async fn serve_approvals(
    head: &pingora::http::RequestHeader,
    snapshot: &Snapshot,
    ctx: &RequestCtx,
) -> Result<Verdict, Rejection> {
    let identity = ctx.identity.as_deref().ok_or(Rejection::Unauthenticated)?;
    let tail = crate::router::PathTemplate::literal("/").apply(&ctx.path, ctx.depth, &[]);
    let call = approval_endpoint::call(&head.method, &tail)?;
    let at = ctx.event_context();
    let answer = approval_endpoint::answer(
        &snapshot.kept.approvals,
        Place::of(snapshot),
        identity,
        call,
        &at,
    )
    .await?;
    Ok(Verdict::Answer(answer))
}

/// Runs the stages up to the body in order against one snapshot. On a refusal, the context keeps what the
/// stages before it found (the route, the quotas), for the error response and the log.
pub async fn admit(
    request: &mut Request<'_>,
    snapshot: &Arc<Snapshot>,
    ctx: &mut RequestCtx,
) -> Result<Verdict, Rejection> {
    ctx.snapshot = Some(Arc::clone(snapshot));
    let config = &snapshot.config;
    if let Some(peer) = request.peer {
        let forwarded = || {
            request
                .head
                .headers
                .get_all(&client_address::X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
        };
        let trusted = &config.identity.trusted_proxies;
        if let Some(trace) = &mut ctx.trace {
            trace.trust_caller(client_address::is_trusted(peer.ip(), trusted));
        }
        ctx.client = Some(client_address::client_address(
            peer.ip(),
            forwarded(),
            trusted,
        ));
        ctx.forwarded_for = Some(client_address::forwarded_for(
            peer.ip(),
            forwarded(),
            trusted,
        ));
    }

    let routed = route::screen(request, snapshot).and_then(|screened| {
        ctx.path = screened.path;
        ctx.path_normalized = screened.normalized;
        route::route(request, snapshot, &ctx.path)
    });
    let routed = match routed {
        Ok(route::Routed::Request(routed)) => routed,
        Ok(route::Routed::Preflight { route, headers }) => {
            ctx.route = Some(route);
            return headers
                .map(Verdict::Preflight)
                .ok_or(Rejection::CorsRefused);
        }
        Err(rejection) => {
            if let Some(reason) = rejection.event_reason() {
                ctx.event(reason, Severity::Medium);
            }
            return Err(rejection);
        }
    };
    ctx.route = Some(routed.route);
    ctx.sample();
    ctx.depth = routed.depth;
    ctx.params = routed.params;
    if let Some(via) = routed.via {
        // From here on the request is the route's: its path is the one the alias led to.
        let asked = std::mem::replace(&mut ctx.path, via.path);
        ctx.alias = Some((via.alias, asked));
        ctx.path_normalized = true;
    }
    let spec = &config.routes[routed.route];
    route::upgrade_allowed(request, spec).inspect_err(|rejection| {
        if let Some(reason) = rejection.event_reason() {
            ctx.event(reason, Severity::Medium);
        }
    })?;

    let at = events::Context {
        request_id: &ctx.request_id,
        client: ctx.client,
        route: Some(&spec.name),
        path: &ctx.path,
        caller: None,
    };
    let identified =
        identify::identify(request.head, snapshot, spec, &ctx.path, &ctx.params, &at).await;
    trace_events::auth(&mut ctx.trace, &identified);
    let caller = identified?;
    let identity = caller.as_ref().map(|caller| &*caller.identity);
    // Events from here on name the caller.
    let at = events::Context {
        caller: identity,
        ..at
    };
    let counted = limit::limit(
        request.head,
        snapshot,
        spec,
        &limit::Caller {
            identity,
            client: ctx.client,
            params: &ctx.params,
        },
        &at,
    )
    .await;
    ctx.quotas = counted.quotas;
    trace_events::rate_limit(&mut ctx.trace, &ctx.quotas, &counted.verdict);
    counted.verdict?;
    if let Some(identity) = identity {
        let confirmed = confirm::confirm(snapshot, spec, identity, &ctx.params, &at).await;
        trace_events::confirm(&mut ctx.trace, &confirmed);
        confirmed?;
    }
    if let Some(caller) = caller {
        ctx.identity = Some(caller.identity);
        ctx.credential = Some(caller.credential);
        ctx.signed_digest = caller.signed_digest;
    }

    reserve::within_body_limit(request.head, spec)?;
    Ok(Verdict::Proxy)
}

/// The last stage, once the body is in where the route buffers it (`body::buffer`): the
/// upstream's bulkhead slot and its breaker's permission. Holds upstream capacity, so it
/// comes after everything that may wait on the client.
pub fn reserve(
    request: &Request<'_>,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
) -> Result<(), Rejection> {
    let spec = ctx.route().ok_or(Rejection::Internal)?;
    let upstream = spec.target.upstream().ok_or(Rejection::Internal)?;
    let (websocket, timeout) = (spec.websocket, spec.timeout);
    let pool = Arc::clone(&snapshot.pools[upstream]);
    ctx.pool = Some(Arc::clone(&pool));
    let trusted = &snapshot.config.identity.trusted_proxies;
    let reserved = reserve::reserve(request, trusted, &pool);
    trace_events::reserve(&mut ctx.trace, pool.name(), reserved.as_ref().err());
    let reserved = reserved?;
    ctx.slot = Some(reserved.slot);
    ctx.breaker = Some(reserved.breaker);
    // A WebSocket lives as long as its peers want; the route's deadline applies to the
    // handshake only (see `attempt`), and its frames are not a request body.
    ctx.upgraded = websocket && request.upgrade;
    ctx.deadline = Some(ctx.started + timeout);
    Ok(())
}

/// A service the route asks about its callers could not answer: the route's
/// `on_dependency_failure` decides (closed: 503 `auth_unavailable`).
fn dependency_unavailable(
    route: &RouteSpec,
    reason: &'static str,
    at: &events::Context<'_>,
) -> Result<(), Rejection> {
    events::record(reason, Severity::Low, at);
    if route.auth.fail_open {
        Ok(())
    } else {
        Err(Rejection::AuthUnavailable)
    }
}
