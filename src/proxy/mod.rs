//! The only `impl ProxyHttp`. Each phase is a few lines that delegate.
//!
//! ```text
//! request_filter      correlation ids → CORS preflight answered at the edge (204/403)
//!                     → snapshot → hardening (400/405/414/431) → normalize path (400)
//!                     → route (404/405) → Upgrade only where allowed → strip client
//!                     identity headers → authenticate (401; 503 without keys) → revoked
//!                     token (401; 503 when unknown and Redis is down) → roles and
//!                     venue scope (403) → overload shedding by tier (503) → rate limits
//!                     (429; 503 when a fail-closed policy's store is down) → user status
//!                     / venue service (401/403/503) → body limit (413) → bulkhead (503)
//!                     → circuit breaker (503)
//! request_body_filter body limit for chunked bodies (413)
//! upstream_peer       a healthy, untried peer; timeouts capped by the route's deadline
//! upstream_request_filter  rewritten path, x-request-id, traceparent, identity and
//!                     forwarding headers, the verified credential alone (every attempt)
//! fail_to_connect     count, eject a refusing peer, retry another (idempotent only)
//! error_while_proxy   a read timeout while the client's body is incomplete is the
//!                     client's (408), not the upstream's; count, retry stale connections
//! upstream_response_filter  status → breaker outcome, attempt metrics; a bodiless
//!                     response gives its bulkhead slot back
//! upstream_response_body_filter  the route's deadline; end of stream gives the slot back
//! response_filter     x-request-id, security headers, CORS, RateLimit fields; upstream
//!                     Server and Access-Control-* removed; writes to the client bounded
//!                     by the route's deadline (and in response_body_filter)
//! fail_to_proxy       every failure → one JSON error shape (respond.rs)
//! logging             breaker outcome if still open, the slot (parked while the upstream
//!                     works if the client left first), metrics, access log
//! ```
//!
//! Authentication runs before anything that spends upstream capacity (bulkhead, breaker
//! probes), so anonymous traffic cannot exhaust them. Rate limits come after it, because
//! they are keyed by the verified identity, and before the calls to other services (user
//! status, venue access), so a flood is refused before it costs them anything. Revocation
//! belongs to authentication: a revoked token is no credential, whatever it grants, and its
//! answer is cached per `jti`, so a flood with one token costs one lookup per `cache_ttl`.

mod context;

pub use context::RequestCtx;

use crate::config::HashKey;
use crate::config::LoadBalancing;
use crate::config::RouteSpec;
use crate::config::Tiers;
use crate::filters::authenticate::{authenticate, forward_verified};
use crate::filters::authorize::authorize;
use crate::filters::{access, client_address, cors, hardening, identity_headers, security_headers};
use crate::path;
use crate::ratelimit::{self, headers as ratelimit_headers, key::KeySource, shedding, Admission};
use crate::respond::{self, Rejection};
use crate::router::{rewrite_path, RouteMatch};
use crate::security::events::{self, Severity};
use crate::security::lookup::Answer;
use crate::security::{jwt, revocation, CredentialKind, Identity};
use crate::snapshot::Live;
use crate::snapshot::Snapshot;
use crate::telemetry::access_log::{AccessLog, AccessRecord};
use crate::telemetry::correlation;
use crate::telemetry::metrics::{METRICS, UNMATCHED};
use crate::upstream::Outcome;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorType;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub struct UsherProxy {
    live: Arc<Live>,
    access_log: Option<AccessLog>,
}

impl UsherProxy {
    pub fn new(live: Arc<Live>, access_log: Option<AccessLog>) -> Self {
        UsherProxy { live, access_log }
    }

    /// Everything `request_filter` decides before the request may go upstream, in order.
    async fn admit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Rejection> {
        let snapshot = self.live.current().ok_or(Rejection::NotReady)?;
        ctx.snapshot = Some(Arc::clone(&snapshot));
        if let Some((client, chain)) =
            client_addresses(session, &snapshot.config.identity.trusted_proxies)
        {
            ctx.client = Some(client);
            ctx.forwarded_for = Some(chain);
        }
        let route = self
            .route_request(session, ctx, &snapshot)
            .inspect_err(|rejection| {
                if let Some(reason) = rejection.event_reason() {
                    security_event(ctx, reason, Severity::Medium);
                }
            })?;
        self.identify(session, ctx, &snapshot, route).await?;
        self.limit(session, ctx, &snapshot, route).await?;
        if let Some(identity) = ctx.identity.clone() {
            self.confirm(ctx, &snapshot, &snapshot.config.routes[route], &identity)
                .await?;
        }
        self.reserve_upstream(session, ctx, &snapshot, route)
    }

    /// Hardening, normalization and routing; returns the route's index.
    fn route_request(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
    ) -> Result<usize, Rejection> {
        let request = session.req_header();
        let raw_head = request
            .headers
            .contains_key(http::header::TRANSFER_ENCODING)
            .then(|| {
                session
                    .as_downstream()
                    .as_http1()
                    .map(|h1| h1.get_headers_raw_bytes())
            })
            .flatten();
        hardening::check(request, raw_head.as_deref(), &snapshot.config.limits)?;
        let normalized = path::normalize(request.uri.path()).map_err(Rejection::BadPath)?;
        ctx.path_normalized = matches!(normalized, std::borrow::Cow::Owned(_));
        ctx.path = normalized.into_owned();
        let matched = match snapshot
            .router
            .route(request_host(request), &request.method, &ctx.path)
        {
            RouteMatch::Found(matched) => matched,
            RouteMatch::MethodNotAllowed(allowed) => {
                return Err(Rejection::MethodNotAllowed(allowed))
            }
            RouteMatch::NotFound => return Err(Rejection::NoRoute),
        };
        ctx.route = Some(matched.route);
        ctx.depth = matched.depth;
        ctx.params = matched.params;
        hardening::check_upgrade(request, snapshot.config.routes[matched.route].websocket)?;
        Ok(matched.route)
    }

    /// Strips client identity headers, then authenticates the caller, refuses a revoked
    /// token, and checks the caller's roles and venue scope where the route requires it.
    async fn identify(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
        route: usize,
    ) -> Result<(), Rejection> {
        let route = &snapshot.config.routes[route];
        if identity_headers::strip(session.req_header_mut(), &snapshot.config.identity) > 0 {
            security_event(ctx, "spoofed_identity_header", Severity::Medium);
        }
        if !access::requires_authentication(route, &ctx.path) {
            return Ok(());
        }
        let api_key_header = snapshot
            .config
            .authentication
            .api_keys
            .as_ref()
            .map(|k| k.header.as_str());
        let attempt = |session: &Session| {
            authenticate(
                session.req_header(),
                &route.auth,
                api_key_header,
                &snapshot.security,
                SystemTime::now(),
            )
        };
        let mut result = attempt(session);
        // A kid Usher does not know may be a freshly rotated key: refresh the issuer's
        // key set (one at a time, rate-limited) and try once more.
        if let Err(failure) = &result {
            let jwks = snapshot.security.jwt.as_ref().and_then(|jwt| jwt.jwks());
            if let (true, Some(jwks)) = (
                matches!(failure.reason, jwt::UNKNOWN_KEY | jwt::KEYS_UNAVAILABLE),
                jwks,
            ) {
                if jwks.refresh_if_due().await {
                    result = attempt(session);
                }
            }
        }
        let (identity, consumed) = result.map_err(|failure| {
            security_event(ctx, failure.reason, failure.severity);
            if failure.reason == jwt::KEYS_UNAVAILABLE {
                Rejection::AuthUnavailable
            } else {
                Rejection::Unauthenticated
            }
        })?;
        self.check_revocation(ctx, snapshot, route, &identity)
            .await?;
        authorize(&identity, &route.auth, &ctx.params).map_err(|reason| {
            security_event(ctx, reason, Severity::Medium);
            Rejection::Forbidden
        })?;
        ctx.identity = Some(identity);
        ctx.credential = Some(consumed);
        Ok(())
    }

    /// Sheds the caller's tier when Usher or the route's upstream is overloaded, then counts
    /// the request against the route's rate-limit policies.
    async fn limit(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
        route: usize,
    ) -> Result<(), Rejection> {
        let config = &snapshot.config.rate_limiting;
        let route = &snapshot.config.routes[route];
        let tier = tier_of(&config.tiers, ctx.identity.as_deref());
        if let Some(shedding) = &config.shedding {
            let pool = &snapshot.pools[route.upstream];
            let load = shedding::load(
                shedding,
                crate::load::requests_in_flight(),
                Some(pool.bulkhead_fill()),
            );
            METRICS
                .shed_level
                .set(shedding::level(&config.tiers, load) as i64);
            if shedding::sheds(&config.tiers, tier, load) {
                METRICS
                    .shed_requests
                    .with_label_values(&[&config.tiers.levels[tier].name])
                    .inc();
                return Err(Rejection::Overloaded {
                    retry_after: shedding.retry_after,
                });
            }
        }
        if route.rate_limits.is_empty() {
            return Ok(());
        }
        let outcome = {
            let request = session.req_header();
            let source = KeySource {
                identity: ctx.identity.as_deref(),
                client: ctx.client,
                headers: &request.headers,
                params: &ctx.params,
                query: request.uri.query(),
            };
            let event = |reason, severity| security_event(ctx, reason, severity);
            ratelimit::admit(
                &snapshot.limiter,
                config,
                route,
                &source,
                config.tiers.levels[tier].multiplier,
                &event,
            )
            .await
        };
        match outcome {
            Admission::Admitted(quotas) => {
                ctx.quotas = quotas;
                Ok(())
            }
            Admission::Limited {
                quotas,
                retry_after,
            } => {
                ctx.quotas = quotas;
                Err(Rejection::RateLimited { retry_after })
            }
            Admission::Unavailable { retry_after } => {
                Err(Rejection::RateLimitUnavailable { retry_after })
            }
        }
    }

    /// Refuses a revoked token, by its `jti`, before anything else looks at what it grants:
    /// a stolen token shows as `token_revoked` on every route, not as a role refusal. When
    /// the answer cannot be had, the route's `on_dependency_failure` decides (closed: 503).
    async fn check_revocation(
        &self,
        ctx: &RequestCtx,
        snapshot: &Snapshot,
        route: &RouteSpec,
        identity: &Identity,
    ) -> Result<(), Rejection> {
        let (Some(revocation), CredentialKind::Jwt) =
            (&snapshot.security.revocation, identity.source)
        else {
            return Ok(());
        };
        let Some(jti) = &identity.token_id else {
            security_event(ctx, "token_without_jti", Severity::Medium);
            return Err(Rejection::Unauthenticated);
        };
        let redis = snapshot.config.rate_limiting.redis.as_ref();
        match revocation.check(jti, &snapshot.limiter, redis).await {
            revocation::Status::Valid => Ok(()),
            revocation::Status::Revoked => {
                security_event(ctx, "token_revoked", Severity::High);
                Err(Rejection::Unauthenticated)
            }
            revocation::Status::Unavailable => {
                dependency_unavailable(ctx, route, "revocation_unavailable")
            }
        }
    }

    /// Asks the services themselves where the route wants it: whether the token's user is
    /// still active (a banned user's unexpired token stops working), and whether the user
    /// may act on the venue. Answers are cached; when a service cannot answer, the route's
    /// `on_dependency_failure` decides (closed: 503).
    async fn confirm(
        &self,
        ctx: &RequestCtx,
        snapshot: &Snapshot,
        route: &RouteSpec,
        identity: &Identity,
    ) -> Result<(), Rejection> {
        let security = &snapshot.security;
        let auth = &route.auth;
        let unavailable = |reason| dependency_unavailable(ctx, route, reason);
        let values = [
            ("sub", identity.subject.as_str()),
            ("tenant", identity.tenant.as_str()),
        ];
        if let (true, Some(lookup), CredentialKind::Jwt) =
            (auth.user_status, &security.user_status, identity.source)
        {
            match lookup.ask(&values).await {
                Answer::Allowed => {}
                Answer::Denied => {
                    security_event(ctx, "user_inactive", Severity::Medium);
                    return Err(Rejection::Unauthenticated);
                }
                Answer::Unavailable => unavailable("user_status_unavailable")?,
            }
        }
        let venue = auth.venue_param.and_then(|index| ctx.params.get(index));
        let is_admin = identity.has_any_role(&auth.admin_roles);
        if let (true, Some(lookup), Some(venue), false) =
            (auth.venue_check, &security.venue_access, venue, is_admin)
        {
            let [sub, tenant] = values;
            match lookup.ask(&[sub, tenant, ("venue", venue.as_str())]).await {
                Answer::Allowed => {}
                Answer::Denied => {
                    security_event(ctx, "venue_denied", Severity::Medium);
                    return Err(Rejection::Forbidden);
                }
                Answer::Unavailable => unavailable("venue_check_unavailable")?,
            }
        }
        Ok(())
    }

    /// Body limit, the upstream's bulkhead and its circuit breaker.
    fn reserve_upstream(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        snapshot: &Snapshot,
        route: usize,
    ) -> Result<(), Rejection> {
        let route = &snapshot.config.routes[route];
        let declared_length = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > route.max_body) {
            return Err(Rejection::PayloadTooLarge {
                limit: route.max_body,
            });
        }
        let pool = Arc::clone(&snapshot.pools[route.upstream]);
        ctx.pool = Some(Arc::clone(&pool));
        let reject = |reason: &str| {
            METRICS
                .upstream_rejections
                .with_label_values(&[pool.name(), reason])
                .inc();
        };
        // An HTTP/2 connection's streams share one slot budget, keyed by the connection;
        // a trusted proxy's connection carries many clients and is not held to it.
        let trusted = &snapshot.config.identity.trusted_proxies;
        let connection = (session.req_header().version == http::Version::HTTP_2)
            .then(|| session.client_addr().and_then(|a| a.as_inet()).copied())
            .flatten()
            .filter(|peer| !trusted.iter().any(|net| net.contains(&peer.ip())));
        let slot = pool.bulkhead.try_acquire(connection).map_err(|refusal| {
            reject(refusal.as_str());
            Rejection::Busy {
                upstream: pool.name().to_string(),
            }
        })?;
        ctx.slot = Some(slot);
        match pool.admit() {
            Ok(pass) => ctx.breaker = Some(pass),
            Err(retry_after) => {
                reject("circuit_open");
                return Err(Rejection::CircuitOpen {
                    upstream: pool.name().to_string(),
                    retry_after,
                });
            }
        }
        // A WebSocket lives as long as its peers want; the route's deadline applies to the
        // handshake only (see upstream_peer), and its frames are not a request body.
        ctx.upgraded = route.websocket && session.is_upgrade_req();
        ctx.deadline = Some(ctx.started + route.timeout);
        Ok(())
    }

    /// What upstreams may trust, set on every attempt (retries included): the verified
    /// identity, the client's address, and forwarding headers written by Usher alone. The
    /// client's copies were stripped in `request_filter`; Pingora has already removed the
    /// headers named in `Connection`, so nothing can remove these.
    fn inject_identity(
        &self,
        upstream_request: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        if let Some(identity) = &ctx.identity {
            upstream_request.insert_header("x-tenant-id", &identity.tenant)?;
            upstream_request.insert_header("x-tenant-source", identity.source.as_str())?;
            upstream_request.insert_header("x-user-id", &identity.subject)?;
            upstream_request.insert_header("x-user-roles", identity.roles.join(","))?;
        }
        upstream_request.insert_header("x-gateway-forwarded", "true")?;
        let Some(snapshot) = &ctx.snapshot else {
            return Ok(());
        };
        if let (Some(client), Some(chain)) = (ctx.client, &ctx.forwarded_for) {
            upstream_request.insert_header("x-original-ip", client.to_string())?;
            upstream_request.insert_header("x-forwarded-for", chain.as_str())?;
        }
        let scheme = if snapshot.config.listeners.tls.is_some() {
            "https"
        } else {
            "http"
        };
        upstream_request.insert_header("x-forwarded-proto", scheme)?;
        Ok(())
    }

    /// Answers a CORS preflight at the edge: 204 with the route's `Access-Control-*` headers,
    /// or 403 when its policy (or the lack of one) refuses it. Returns whether it answered;
    /// requests it cannot route are left to `admit`, which answers them as usual.
    async fn answer_preflight(&self, session: &mut Session, ctx: &mut RequestCtx) -> bool {
        let Some(snapshot) = self.live.current() else {
            return false;
        };
        let request = session.req_header();
        let Some(preflight) = cors::preflight_of(request) else {
            return false;
        };
        // Refusals of malformed requests are `admit`'s to make, preflight or not.
        if hardening::check(request, None, &snapshot.config.limits).is_err() {
            return false;
        }
        let Ok(path) = path::normalize(request.uri.path()) else {
            return false;
        };
        let RouteMatch::Found(matched) =
            snapshot
                .router
                .route(request_host(request), &preflight.method, &path)
        else {
            return false;
        };
        let headers = snapshot.config.routes[matched.route]
            .cors
            .as_ref()
            .and_then(|policy| cors::preflight_headers(policy, &preflight));
        ctx.route = Some(matched.route);
        ctx.path = path.into_owned();
        ctx.snapshot = Some(Arc::clone(&snapshot));
        let Some(headers) = headers else {
            self.reject(session, ctx, &Rejection::CorsRefused).await;
            return true;
        };
        let answer = async {
            let mut response = ResponseHeader::build(204, Some(headers.len() + 4))?;
            security_headers::apply(&mut response, snapshot.config.listeners.tls.is_some())?;
            response.insert_header("x-request-id", &ctx.request_id)?;
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
        ctx.gateway_status = Some(204);
        true
    }

    /// Headers a gateway-made answer needs beyond its fixed ones: HSTS on TLS listeners,
    /// and CORS headers where the route allows the request's origin (not on a refused
    /// preflight).
    fn answer_headers(
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
        if ctx
            .snapshot
            .as_ref()
            .is_some_and(|s| s.config.listeners.tls.is_some())
        {
            headers.push((
                "strict-transport-security",
                security_headers::HSTS.to_string(),
            ));
        }
        headers.extend(ratelimit_fields(ctx));
        headers
    }

    async fn reject(&self, session: &mut Session, ctx: &mut RequestCtx, rejection: &Rejection) {
        ctx.gateway_status = Some(rejection.status());
        ctx.rejection_code = Some(rejection.code());
        if session.response_written().is_some() {
            return;
        }
        let extra = Self::answer_headers(session, ctx, rejection);
        match respond::send(session, rejection, &ctx.request_id, &extra).await {
            Ok(sent) => ctx.response_bytes += sent as u64,
            Err(e) => {
                tracing::debug!(request_id = %ctx.request_id, error = %e, "could not send the error response")
            }
        }
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

    fn may_retry(&self, session: &Session, ctx: &RequestCtx) -> bool {
        let Some(pool) = &ctx.pool else {
            return false;
        };
        let retries_left = ctx.tried.len() <= pool.spec.retries as usize;
        let time_left = ctx.deadline.is_some_and(|d| Instant::now() < d);
        session.req_header().method.is_idempotent()
            && retries_left
            && time_left
            && pool
                .select(&Self::hash_key(session, ctx), &ctx.tried)
                .is_some()
    }

    /// Tells the breaker how this request went, once: as soon as the upstream's status is
    /// known, or before a failure is answered, so the next request already sees the result.
    /// A response that fails mid-body after a good header has already counted as a success;
    /// such failures show in `usher_upstream_errors_total`, not in the breaker.
    fn settle_breaker(ctx: &mut RequestCtx) {
        let (Some(pool), Some(pass)) = (&ctx.pool, ctx.breaker.take()) else {
            return;
        };
        let outcome = match (ctx.upstream_failure, ctx.upstream_status) {
            (Some(_), _) => Outcome::Failure,
            (None, Some(s)) if s >= 500 && pool.spec.circuit_breaker.count_5xx => Outcome::Failure,
            (None, Some(_)) => Outcome::Success,
            (None, None) => Outcome::Neutral,
        };
        pass.settle(outcome);
    }

    /// The route's deadline covers delivering the response too: each write to the client
    /// may take only what is left of it, so a client that stops reading (an HTTP/2 window
    /// kept at zero, a full TCP window) is cut off at the deadline. Pingora times each write;
    /// this runs before every one. Tunnels are not timed.
    fn bound_delivery(session: &mut Session, ctx: &RequestCtx) {
        if let (Some(deadline), false) = (ctx.deadline, ctx.upgraded) {
            let left = deadline.saturating_duration_since(Instant::now());
            session.set_write_timeout(Some(left.max(Duration::from_millis(1))));
        }
    }

    /// Frees the request's bulkhead slot, or parks it when the client left while the
    /// upstream was still working on its request (see `upstream::bulkhead`).
    fn give_back_slot(ctx: &mut RequestCtx, error: Option<&Error>) {
        let Some(slot) = ctx.slot.take() else {
            return;
        };
        let client_left = error.is_some_and(|e| *e.esource() == ErrorSource::Downstream);
        let (Some(pool), Some(started), None, true, false) = (
            &ctx.pool,
            ctx.attempt_started,
            ctx.upstream_status,
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

    fn note_upstream_failure(ctx: &mut RequestCtx, error: &Error) {
        let kind = failure_kind(error);
        ctx.upstream_failure = Some(kind);
        if let Some(pool) = &ctx.pool {
            METRICS
                .upstream_errors
                .with_label_values(&[pool.name(), kind])
                .inc();
        }
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
        ctx.traceparent = correlation::traceparent(headers);
        if self.answer_preflight(session, ctx).await {
            return Ok(true);
        }
        match self.admit(session, ctx).await {
            Ok(()) => Ok(false),
            Err(rejection) => {
                self.reject(session, ctx, &rejection).await;
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
                ctx.upstream_failure = Some("deadline");
            }
            return Error::e_explain(
                ErrorType::HTTPStatus(504),
                "request deadline passed before an attempt",
            );
        }
        let Some(peer) = pool.select(&Self::hash_key(session, ctx), &ctx.tried) else {
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

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let route = ctx.route();
        let rewrite = route.and_then(|route| route.rewrite.as_deref());
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
        // Forward the client's URI untouched unless normalization, a rewrite or a token
        // taken out of the query changed it.
        if rewrite.is_some() || ctx.path_normalized || stripped_query.is_some() {
            let path = match rewrite {
                Some(prefix) => rewrite_path(&ctx.path, ctx.depth, prefix),
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
        upstream_request.insert_header("x-request-id", &ctx.request_id)?;
        upstream_request.insert_header("traceparent", &ctx.traceparent)?;
        self.inject_identity(upstream_request, ctx)
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        Self::note_upstream_failure(ctx, &e);
        if matches!(e.etype(), ErrorType::ConnectRefused) {
            if let (Some(pool), Some(addr)) = (&ctx.pool, peer._address.as_inet()) {
                pool.eject(*addr);
            }
        }
        e.set_retry(self.may_retry(session, ctx));
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        // While the client has not sent its whole request, an upstream whose answer does
        // not come in time is waiting for the client: the timeout is the client's, and
        // counting it would let anyone open the breaker with requests that declare a body
        // and never send it. An upstream that stops taking the body (a write timeout) or
        // breaks the connection is still charged.
        let client_incomplete = !session.is_body_done();
        if client_incomplete && matches!(e.etype(), ErrorType::ReadTimedout) {
            security_event(ctx, "request_body_timeout", Severity::Low);
            ctx.failure = Some(Rejection::RequestTimeout);
        } else if *e.esource() == ErrorSource::Upstream {
            Self::note_upstream_failure(ctx, &e);
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
        let _ = peer;
        e
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        if upstream_response.status.is_informational() && status != 101 {
            // `100 Continue` and friends come before the real answer.
            return Ok(());
        }
        ctx.upstream_status = Some(status);
        ctx.upstream_failure = None;
        Self::settle_breaker(ctx);
        // A response without a body is complete with its head: no end of stream follows
        // in upstream_response_body_filter to give the slot back.
        let bodiless = session.req_header().method == http::Method::HEAD
            || matches!(status, 204 | 304)
            || upstream_response
                .headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() == b"0");
        if bodiless && status != 101 {
            ctx.slot = None;
        }
        if let (Some(pool), Some(started)) = (&ctx.pool, ctx.attempt_started) {
            pool.observe_attempt(started.elapsed());
            if status >= 500 {
                METRICS
                    .upstream_errors
                    .with_label_values(&[pool.name(), "status_5xx"])
                    .inc();
            }
        }
        Ok(())
    }

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if end_of_stream && !ctx.upgraded {
            // The upstream's part is done, whatever the client's reading speed.
            ctx.slot = None;
        }
        if !end_of_stream && !ctx.upgraded && ctx.deadline.is_some_and(|d| Instant::now() > d) {
            ctx.upstream_failure = Some("deadline");
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
        Self::bound_delivery(session, ctx);
        upstream_response.insert_header("x-request-id", &ctx.request_id)?;
        let tls = ctx
            .snapshot
            .as_ref()
            .is_some_and(|s| s.config.listeners.tls.is_some());
        security_headers::apply(upstream_response, tls)?;
        cors::strip_upstream(upstream_response);
        if let Some(policy) = ctx.route().and_then(|route| route.cors.as_deref()) {
            for (name, value) in cors::response_headers(policy, session.req_header()) {
                upstream_response.append_header(name, value)?;
            }
        }
        for (name, value) in ratelimit_fields(ctx) {
            upstream_response.insert_header(name, value)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        Self::bound_delivery(session, ctx);
        ctx.response_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        Self::settle_breaker(ctx);
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
        self.reject(session, ctx, &rejection).await;
        FailToProxy {
            error_code: rejection.status(),
            can_reuse_downstream: false,
        }
    }

    /// Pingora's own log lines name a request by this; the default includes the query string,
    /// where tokens may travel (`token_from: query:...`).
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let path = if ctx.path.is_empty() {
            session.req_header().uri.path()
        } else {
            ctx.path.as_str()
        };
        format!("{} {path}", session.req_header().method)
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // `logging` writes one structured line per failed request instead.
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.gateway_status)
            .unwrap_or(0);
        Self::settle_breaker(ctx);
        Self::give_back_slot(ctx, e);

        let elapsed = ctx.started.elapsed();
        let route_metrics = match (&ctx.snapshot, ctx.route) {
            (Some(snapshot), Some(route)) => &snapshot.route_metrics[route],
            _ => &*UNMATCHED,
        };
        route_metrics.observe(&session.req_header().method, status, elapsed);
        let route = ctx.route_name().unwrap_or("unmatched");

        if let Some(e) = e {
            tracing::warn!(
                request_id = %ctx.request_id,
                route,
                upstream = ctx.upstream_name().unwrap_or("-"),
                status,
                error = %e,
                "request failed"
            );
        }
        if let Some(log) = &self.access_log {
            let path = if ctx.path.is_empty() {
                session.req_header().uri.path().to_string()
            } else {
                std::mem::take(&mut ctx.path)
            };
            log.log(AccessRecord {
                time: SystemTime::now(),
                request_id: std::mem::take(&mut ctx.request_id),
                traceparent: std::mem::take(&mut ctx.traceparent),
                client: ctx.client,
                method: session.req_header().method.clone(),
                path,
                route: ctx.route().map(|route| Arc::clone(&route.name)),
                upstream: ctx.pool.as_ref().map(|pool| Arc::clone(&pool.spec.name)),
                peer: ctx.tried.last().copied(),
                attempts: ctx.tried.len(),
                status,
                duration: elapsed,
                request_bytes: ctx.request_bytes,
                response_bytes: ctx.response_bytes,
                error: ctx.rejection_code.or(ctx.upstream_failure),
            });
        }
    }
}

/// The host a request is for: the `Host` header, or the authority of its target (HTTP/2's
/// `:authority`).
fn request_host(request: &RequestHeader) -> Option<&str> {
    request
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri.host())
}

/// The client's address, through trusted proxies' `X-Forwarded-For`.
fn client_addresses(session: &Session, trusted: &[ipnet::IpNet]) -> Option<(IpAddr, String)> {
    let peer = session.client_addr()?.as_inet()?.ip();
    let forwarded = || {
        session
            .req_header()
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
    };
    Some((
        client_address::client_address(peer, forwarded(), trusted),
        client_address::forwarded_for(peer, forwarded(), trusted),
    ))
}

/// A service the route asks about its callers could not answer: the route's
/// `on_dependency_failure` decides (closed: 503 `auth_unavailable`).
fn dependency_unavailable(
    ctx: &RequestCtx,
    route: &RouteSpec,
    reason: &'static str,
) -> Result<(), Rejection> {
    security_event(ctx, reason, Severity::Low);
    if route.auth.fail_open {
        Ok(())
    } else {
        Err(Rejection::AuthUnavailable)
    }
}

/// The caller's tier: the one its credential names, else the default; anonymous callers
/// have their own.
fn tier_of(tiers: &Tiers, identity: Option<&Identity>) -> usize {
    match identity {
        None => tiers.anonymous,
        Some(identity) => identity
            .tier
            .as_deref()
            .and_then(|name| tiers.find(name))
            .unwrap_or(tiers.default),
    }
}

/// `RateLimit-Policy` and `RateLimit`, when the request was counted by a policy.
fn ratelimit_fields(ctx: &RequestCtx) -> Vec<(&'static str, String)> {
    [
        (
            ratelimit_headers::POLICY,
            ratelimit_headers::policy_value(&ctx.quotas),
        ),
        (
            ratelimit_headers::STATE,
            ratelimit_headers::state_value(&ctx.quotas),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| (name, value)))
    .collect()
}

fn security_event(ctx: &RequestCtx, reason: &'static str, severity: Severity) {
    events::record(
        reason,
        severity,
        &events::Context {
            request_id: &ctx.request_id,
            client: ctx.client,
            route: ctx.route_name(),
            path: &ctx.path,
        },
    );
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
