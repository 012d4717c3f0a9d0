//! The reserve stage, last because it holds upstream capacity: a declared body within the
//! route's limit, a slot in the upstream's bulkhead and its circuit breaker's permission.

use crate::config::RouteSpec;
use crate::filters::client_address;
use crate::proxy::request::Request;
use crate::respond::Rejection;
use crate::telemetry::metrics::{labels, METRICS};
use crate::upstream::{BreakerPass, Pool, Slot};
use ipnet::IpNet;
use pingora::http::RequestHeader;
use std::sync::Arc;

/// A declared body over the limit is refused before it is read; a chunked one is counted
/// as it streams (`request_body_filter`).
pub fn within_body_limit(head: &RequestHeader, route: &RouteSpec) -> Result<(), Rejection> {
    if declared_length(head).is_some_and(|length| length > route.max_body) {
        return Err(Rejection::PayloadTooLarge {
            limit: route.max_body,
        });
    }
    Ok(())
}

/// The body's length as its `Content-Length` declares it.
pub fn declared_length(head: &RequestHeader) -> Option<u64> {
    head.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// What the request holds of its upstream until it is done.
pub struct Reserved {
    pub slot: Slot,
    /// The circuit breaker's permission, until the request's outcome is recorded.
    pub breaker: BreakerPass,
}

pub fn reserve(
    request: &Request<'_>,
    trusted: &[IpNet],
    pool: &Arc<Pool>,
) -> Result<Reserved, Rejection> {
    let reject = |reason: &str| {
        labels::check("upstream_rejections", &labels::UPSTREAM_REJECTIONS, reason);
        METRICS
            .upstream_rejections
            .with_label_values(&[pool.name(), reason])
            .inc();
    };
    // An HTTP/2 connection's streams share one slot budget, keyed by the connection; a
    // trusted proxy's connection carries many clients and is not held to it.
    let connection = (request.head.version == http::Version::HTTP_2)
        .then_some(request.peer)
        .flatten()
        .filter(|peer| !client_address::is_trusted(peer.ip(), trusted));
    let slot = pool.bulkhead.try_acquire(connection).map_err(|refusal| {
        reject(refusal.as_str());
        Rejection::Busy {
            upstream: pool.name().to_string(),
        }
    })?;
    let breaker = pool.admit().map_err(|retry_after| {
        reject("circuit_open");
        Rejection::CircuitOpen {
            upstream: pool.name().to_string(),
            retry_after,
        }
    })?;
    Ok(Reserved { slot, breaker })
}
