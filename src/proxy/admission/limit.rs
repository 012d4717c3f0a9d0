//! The limit stage: sheds the caller's tier when Usher or the route's upstream is
//! overloaded, then counts the request against the route's rate-limit policies.

use crate::config::{RouteSpec, Tiers};
use crate::ratelimit::{self, key::KeySource, shedding, Admission, Quota};
use crate::respond::Rejection;
use crate::security::events;
use crate::security::Identity;
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::METRICS;
use pingora::http::RequestHeader;
use std::net::IpAddr;

/// Where the caller stands under each policy (also on a 429, for its `RateLimit` fields),
/// and whether the request may go on.
pub struct Counted {
    pub quotas: Vec<Quota>,
    pub verdict: Result<(), Rejection>,
}

impl Counted {
    fn refused(rejection: Rejection) -> Self {
        Counted {
            quotas: Vec::new(),
            verdict: Err(rejection),
        }
    }
}

/// What a request is counted by.
pub struct Caller<'a> {
    pub identity: Option<&'a Identity>,
    pub client: Option<IpAddr>,
    pub params: &'a [String],
}

pub async fn limit(
    head: &RequestHeader,
    snapshot: &Snapshot,
    route: &RouteSpec,
    caller: &Caller<'_>,
    at: &events::Context<'_>,
) -> Counted {
    let config = &snapshot.config.rate_limiting;
    let tier = tier_of(&config.tiers, caller.identity);
    if let Some(shedding) = &config.shedding {
        let pool = route
            .target
            .upstream()
            .map(|upstream| &snapshot.pools[upstream]);
        let load = shedding::load(
            shedding,
            crate::load::requests_in_flight(),
            pool.map(|pool| pool.bulkhead_fill()),
        );
        METRICS
            .shed_level
            .set(shedding::level(&config.tiers, load) as i64);
        if shedding::sheds(&config.tiers, tier, load) {
            METRICS
                .shed_requests
                .with_label_values(&[&config.tiers.levels[tier].name])
                .inc();
            return Counted::refused(Rejection::Overloaded {
                retry_after: shedding.retry_after,
            });
        }
    }
    if route.rate_limits.is_empty() {
        return Counted {
            quotas: Vec::new(),
            verdict: Ok(()),
        };
    }
    let source = KeySource {
        identity: caller.identity,
        client: caller.client,
        headers: &head.headers,
        params: caller.params,
        query: head.uri.query(),
    };
    let event = |reason, severity| events::record(reason, severity, at);
    let outcome = ratelimit::admit(
        &snapshot.limiter,
        config,
        &snapshot.policy_decisions,
        route,
        &source,
        config.tiers.levels[tier].multiplier,
        &event,
    )
    .await;
    match outcome {
        Admission::Admitted(quotas) => Counted {
            quotas,
            verdict: Ok(()),
        },
        Admission::Limited {
            quotas,
            retry_after,
        } => Counted {
            quotas,
            verdict: Err(Rejection::RateLimited { retry_after }),
        },
        Admission::Unavailable { retry_after } => {
            Counted::refused(Rejection::RateLimitUnavailable { retry_after })
        }
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
