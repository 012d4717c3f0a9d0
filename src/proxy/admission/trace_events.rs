//! Admission's decisions as events of the request's server span (`telemetry::traces`):
//! who the caller is and whether the services asked about callers confirmed them, what the
//! rate limits said, what became of an Idempotency-Key, and whether the circuit breaker
//! let the request through. Each records nothing unless the request is sampled, and never
//! a credential.

use super::idempotency::Begun;
use super::identify::Caller;
use crate::ratelimit::Quota;
use crate::respond::Rejection;
use crate::telemetry::traces::RequestTrace;
use opentelemetry::KeyValue;

fn outcome(value: &'static str) -> KeyValue {
    KeyValue::new("usher.outcome", value)
}

fn refusal(rejection: &Rejection) -> [KeyValue; 2] {
    [
        outcome("refused"),
        KeyValue::new("usher.code", rejection.code()),
    ]
}

/// Authentication: the verified credential's kind and tenant, or the refusal. Paths a
/// route leaves public have no event.
pub fn auth(trace: &mut Option<Box<RequestTrace>>, identified: &Result<Option<Caller>, Rejection>) {
    let Some(trace) = trace else { return };
    match identified {
        Ok(None) => {}
        Ok(Some(caller)) => trace.event("usher.auth", || {
            vec![
                outcome("verified"),
                KeyValue::new("usher.credential", caller.identity.source.as_str()),
                KeyValue::new("usher.tenant", caller.identity.tenant.clone()),
            ]
        }),
        Err(rejection) => trace.event("usher.auth", || refusal(rejection).to_vec()),
    }
}

/// The services asked about a verified caller (user status, venue access) refused it, or
/// could not answer; a confirmed caller needs no second event.
pub fn confirm(trace: &mut Option<Box<RequestTrace>>, confirmed: &Result<(), Rejection>) {
    if let (Some(trace), Err(rejection)) = (trace, confirmed) {
        trace.event("usher.confirm", || refusal(rejection).to_vec());
    }
}

/// The route's rate limits: admitted with the least remaining, or the refusal. A route
/// without limits has no event.
pub fn rate_limit(
    trace: &mut Option<Box<RequestTrace>>,
    quotas: &[Quota],
    verdict: &Result<(), Rejection>,
) {
    let Some(trace) = trace else { return };
    if quotas.is_empty() && verdict.is_ok() {
        return;
    }
    trace.event("usher.rate_limit", || {
        let mut attributes = match verdict {
            Ok(()) => vec![outcome("admitted")],
            Err(rejection) => refusal(rejection).to_vec(),
        };
        let policies: Vec<&str> = quotas.iter().map(|q| &*q.policy).collect();
        attributes.push(KeyValue::new(
            "usher.rate_limit.policies",
            policies.join(","),
        ));
        if let Some(least) = quotas.iter().map(|q| q.remaining).min() {
            attributes.push(KeyValue::new(
                "usher.rate_limit.remaining",
                i64::from(least),
            ));
        }
        attributes
    });
}

/// An Idempotency-Key: reserved for this request, its stored answer replayed, or refused.
/// A request without one (on a route where it is optional) has no event.
pub fn idempotency(
    trace: &mut Option<Box<RequestTrace>>,
    begun: &Result<Option<Begun>, Rejection>,
) {
    let Some(trace) = trace else { return };
    if matches!(begun, Ok(None)) {
        return;
    }
    trace.event("usher.idempotency", || match begun {
        Ok(Some(Begun::Replay(_))) => vec![outcome("replayed")],
        Ok(_) => vec![outcome("reserved")],
        Err(rejection) => refusal(rejection).to_vec(),
    });
}

/// The upstream's bulkhead and circuit breaker: let through, or which one refused.
pub fn reserve(trace: &mut Option<Box<RequestTrace>>, upstream: &str, refused: Option<&Rejection>) {
    let Some(trace) = trace else { return };
    let (name, decision) = match refused {
        None => ("usher.circuit_breaker", "allowed"),
        Some(Rejection::CircuitOpen { .. }) => ("usher.circuit_breaker", "open"),
        Some(_) => ("usher.bulkhead", "full"),
    };
    trace.event(name, || {
        vec![
            outcome(decision),
            KeyValue::new("usher.upstream", upstream.to_string()),
        ]
    });
}
