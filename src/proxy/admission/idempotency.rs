//! The idempotency stage, on routes with `idempotency`, once the body is in: the request's
//! key is reserved for its caller, or the request is answered from the record the key
//! already has (see `crate::idempotency` for the rules and what is stored).

use crate::config::{RouteSpec, StoreFailure, TokenSource};
use crate::filters::authenticate::query_without;
use crate::idempotency::key::{key_of, KeyError};
use crate::idempotency::{fingerprint, scoped, Pending, Reserved, Stored};
use crate::proxy::RequestCtx;
use crate::respond::Rejection;
use crate::security::events::Severity;
use crate::snapshot::Snapshot;
use crate::store::Place;
use crate::telemetry::metrics::{labels, METRICS};
use bytes::Bytes;
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;

/// A lease outlives the route's deadline by this much, so a request that runs to its
/// deadline still records its answer (or gives its key back) before the lease runs out.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

pub enum Begun {
    /// Go upstream holding the key.
    Reserved(Pending),
    /// Answer with the stored response.
    Replay(Arc<Stored>),
}

/// `body` is the request's whole body (the body stage read it).
pub async fn begin(
    head: &RequestHeader,
    body: &Bytes,
    snapshot: &Arc<Snapshot>,
    route: &RouteSpec,
    ctx: &RequestCtx,
) -> Result<Option<Begun>, Rejection> {
    let (Some(spec), Some(identity)) = (&route.idempotency, &ctx.identity) else {
        // No idempotency here, or a public path of the route: no caller to scope a key to.
        return Ok(None);
    };
    // The other methods are idempotent by definition (RFC 9110 section 9.2.2); the key is
    // for the ones that are not.
    if !matches!(head.method, http::Method::POST | http::Method::PATCH) {
        return Ok(None);
    }
    let count = |outcome: &str| {
        labels::check("idempotency", &labels::IDEMPOTENCY, outcome);
        METRICS
            .idempotency
            .with_label_values(&[&route.name, outcome])
            .inc();
    };
    let key = match key_of(&head.headers) {
        Ok(key) => key,
        Err(KeyError::Missing) if !spec.required => return Ok(None),
        Err(KeyError::Missing) => {
            count("key_missing");
            return Err(Rejection::IdempotencyKeyMissing);
        }
        Err(KeyError::Invalid(why)) => {
            count("key_invalid");
            return Err(Rejection::IdempotencyKeyInvalid(why));
        }
    };
    let scoped = scoped(
        &identity.tenant,
        identity.source.as_str(),
        &identity.subject,
        &key,
    );
    let query = fingerprinted_query(head.uri.query(), &route.auth.token_sources);
    let fingerprint = fingerprint(head.method.as_str(), &ctx.path, &query, body);
    let token = format!("{:016x}", rand::random::<u64>());
    let reserved = snapshot
        .kept
        .idempotency
        .reserve(
            Place::of(snapshot),
            &scoped,
            fingerprint,
            &token,
            route.timeout + LEASE_MARGIN,
            spec.ttl,
        )
        .await;
    let (outcome, result) = match reserved {
        Reserved::Fresh => (
            "reserved",
            Ok(Some(Begun::Reserved(Pending::new(
                Arc::clone(snapshot),
                scoped,
                token,
                spec.max_response,
            )))),
        ),
        Reserved::Replay(answer) => ("replayed", Ok(Some(Begun::Replay(answer)))),
        Reserved::InFlight => ("in_flight", Err(Rejection::IdempotencyInFlight)),
        Reserved::OutcomeUnknown => ("outcome_unknown", Err(Rejection::IdempotencyOutcomeUnknown)),
        Reserved::NotReplayable => ("not_replayable", Err(Rejection::IdempotencyNotReplayable)),
        Reserved::Mismatch => ("key_reused", Err(Rejection::IdempotencyKeyReused)),
        Reserved::Unavailable if spec.on_store_failure == StoreFailure::Open => {
            ctx.event("idempotency_unrecorded", Severity::Medium);
            ("unrecorded", Ok(None))
        }
        Reserved::Unavailable => ("unavailable", Err(Rejection::IdempotencyUnavailable)),
    };
    count(outcome);
    result
}

/// The query as it counts for the fingerprint: as sent, without the parameters a token may
/// travel in (a refreshed token is the same request).
pub(super) fn fingerprinted_query(query: Option<&str>, sources: &[TokenSource]) -> String {
    let query = query.unwrap_or_default().to_string();
    sources.iter().fold(query, |query, source| match source {
        TokenSource::Query(name) => query_without(&query, name),
        _ => query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_counts_but_a_token_in_it_does_not() {
        let sources = [
            TokenSource::BearerHeader,
            TokenSource::Query("access_token".into()),
        ];
        assert_eq!(fingerprinted_query(None, &sources), "");
        assert_eq!(
            fingerprinted_query(Some("qty=2&note=x"), &sources),
            "qty=2&note=x"
        );
        assert_eq!(
            fingerprinted_query(Some("qty=2&access_token=abc"), &sources),
            "qty=2"
        );
    }
}
