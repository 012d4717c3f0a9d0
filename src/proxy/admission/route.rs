//! The route stage: a request fit to be routed (hardening, a normalized path), and the
//! route it goes to, or the answer to a CORS preflight for that route.

use crate::filters::{cors, hardening};
use crate::path;
use crate::proxy::request::Request;
use crate::respond::Rejection;
use crate::router::{RouteMatch, Via};
use crate::snapshot::Snapshot;

pub enum Routed {
    Request(Route),
    /// A CORS preflight for `route`: the headers its policy answers with, or `None` when
    /// the policy (or the lack of one) refuses it.
    Preflight {
        route: usize,
        headers: Option<cors::Headers>,
    },
}

/// A request fit to be routed: its head passes hardening and its path normalizes.
pub struct Screened {
    /// The normalized path, the only path any later stage looks at.
    pub path: String,
    /// Whether normalization changed the path, so the upstream must get a new URI.
    pub normalized: bool,
}

pub fn screen(request: &Request<'_>, snapshot: &Snapshot) -> Result<Screened, Rejection> {
    let head = &*request.head;
    hardening::check(head, request.raw_head.as_deref(), &snapshot.config.limits)?;
    let normalized = path::normalize(head.uri.path()).map_err(Rejection::BadPath)?;
    Ok(Screened {
        normalized: matches!(normalized, std::borrow::Cow::Owned(_)),
        path: normalized.into_owned(),
    })
}

pub struct Route {
    /// Index into the snapshot's routes.
    pub route: usize,
    /// Path segments the route's pattern matched, for prefix rewrites.
    pub depth: usize,
    /// Values of the route's `:param` segments, in pattern order.
    pub params: Vec<String>,
    /// The alias the request came through, and the path it led to.
    pub via: Option<Via>,
}

/// Only a route that allows WebSockets lets an `Upgrade` through (checked once the route is
/// known, so the refusal is counted and answered as that route's).
pub fn upgrade_allowed(
    request: &Request<'_>,
    route: &crate::config::RouteSpec,
) -> Result<(), Rejection> {
    hardening::check_upgrade(request.head, route.websocket)
}

/// The route for a screened request's `path`.
pub fn route(request: &Request<'_>, snapshot: &Snapshot, path: &str) -> Result<Routed, Rejection> {
    let head = &*request.head;
    let config = &snapshot.config;
    // A preflight for a method no route takes is an ordinary OPTIONS request.
    if let Some(preflight) = cors::preflight_of(head) {
        if let RouteMatch::Found(matched) =
            snapshot
                .router
                .route(request.host(), &preflight.method, path)
        {
            let headers = config.routes[matched.route]
                .cors
                .as_ref()
                .and_then(|policy| cors::preflight_headers(policy, &preflight));
            return Ok(Routed::Preflight {
                route: matched.route,
                headers,
            });
        }
    }
    let matched = match snapshot.router.route(request.host(), &head.method, path) {
        RouteMatch::Found(matched) => matched,
        RouteMatch::MethodNotAllowed(allowed) => return Err(Rejection::MethodNotAllowed(allowed)),
        RouteMatch::NotFound => return Err(Rejection::NoRoute),
    };
    Ok(Routed::Request(Route {
        route: matched.route,
        depth: matched.depth,
        params: matched.params,
        via: matched.via,
    }))
}
