//! The webhook stage, on routes with `webhook`, once the body is in: the provider's
//! signature over the exact body bytes (401 when missing, out of tolerance or wrong), then
//! the delivery taken once (409 when it was received before; 503 while its records cannot
//! be reached, unless the route fails open). See `crate::signatures`.

use crate::config::RouteSpec;
use crate::proxy::RequestCtx;
use crate::respond::Rejection;
use crate::security::events::Severity;
use crate::signatures::deliveries::{record_name, Begun};
use crate::signatures::webhook::{self, Refusal};
use crate::snapshot::Snapshot;
use crate::store::Place;
use crate::telemetry::metrics::{labels, METRICS};
use http::HeaderMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Verifies the delivery and takes it: the delivery's record name, to settle once the
/// service has answered (or not).
pub async fn check(
    snapshot: &Snapshot,
    route: &RouteSpec,
    headers: &HeaderMap,
    body: &[u8],
    ctx: &RequestCtx,
) -> Result<Option<String>, Rejection> {
    let (Some(spec), Some(index)) = (&route.webhook, ctx.route) else {
        return Ok(None);
    };
    let count = |result: &str| {
        labels::check("signature_verifications", &labels::WEBHOOK_RESULTS, result);
        METRICS
            .signature_verifications
            .with_label_values(&[&route.name, spec.scheme.as_str(), result])
            .inc();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let keys = snapshot.webhook_keys.for_route(index);
    let verified = webhook::verify(spec.scheme, headers, body, keys, spec.tolerance, now).map_err(
        |refusal| {
            count(refusal.as_str());
            let (reason, severity, why) = match refusal {
                Refusal::Missing => (
                    "webhook_signature_missing",
                    Severity::Medium,
                    "no signature the scheme accepts",
                ),
                Refusal::OutOfTolerance => (
                    "webhook_signature_stale",
                    Severity::Medium,
                    "its timestamp is too far from now",
                ),
                Refusal::Mismatch => (
                    "webhook_signature_mismatch",
                    Severity::High,
                    "it does not match the body",
                ),
            };
            ctx.event(reason, severity);
            Rejection::WebhookSignatureInvalid(why)
        },
    )?;
    let name = record_name(snapshot.webhook_keys.scope(index), &verified.delivery);
    let begun = snapshot
        .kept
        .deliveries
        .begin(Place::of(snapshot), &name, spec.replay_window)
        .await;
    match begun {
        Begun::Fresh => {
            count("valid");
            Ok(Some(name))
        }
        Begun::InFlight | Begun::Seen => {
            count("replayed");
            ctx.event("webhook_replayed", Severity::High);
            Err(Rejection::WebhookReplayed)
        }
        Begun::Unavailable if spec.fail_open => {
            count("unrecorded");
            ctx.event("webhook_unrecorded", Severity::Low);
            Ok(None)
        }
        Begun::Unavailable => {
            count("unavailable");
            Err(Rejection::WebhookUnavailable)
        }
    }
}
