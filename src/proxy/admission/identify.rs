//! The identify stage: who is calling, from a credential Usher verified itself. Client-sent
//! identity headers go first, so no later stage (nor an upstream) can take them for Usher's
//! word; a revoked token is refused before anything looks at what it grants.

use crate::config::RouteSpec;
use crate::filters::access;
use crate::filters::authenticate::{authenticate, Consumed};
use crate::filters::authorize::authorize;
use crate::filters::identity_headers;
use crate::respond::Rejection;
use crate::security::events::{self, Severity};
use crate::security::{jwt, revocation, CredentialKind, Identity};
use crate::signatures::deliveries::{record_name, Begun};
use crate::snapshot::Snapshot;
use crate::store::Place;
use crate::telemetry::metrics::{labels, METRICS};
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::SystemTime;

/// A verified caller and the credential it was verified by (the only one forwarded).
pub struct Caller {
    pub identity: Arc<Identity>,
    pub credential: Consumed,
    /// The `Content-Digest` a verified signature covers, to check against the body.
    pub signed_digest: Option<String>,
}

/// The route's caller, or `None` on a path the route leaves public.
pub async fn identify(
    head: &mut RequestHeader,
    snapshot: &Snapshot,
    route: &RouteSpec,
    path: &str,
    params: &[String],
    at: &events::Context<'_>,
) -> Result<Option<Caller>, Rejection> {
    if identity_headers::strip(head, &snapshot.config.identity) > 0 {
        events::record("spoofed_identity_header", Severity::Medium, at);
    }
    if !access::requires_authentication(route, path) {
        return Ok(None);
    }
    let head = &*head;
    if route.auth.signatures && head.headers.contains_key("signature-input") {
        return signed(head, snapshot, route, params, at).await.map(Some);
    }
    let api_key_header = snapshot
        .config
        .authentication
        .api_keys
        .as_ref()
        .map(|k| k.header.as_str());
    let attempt = || {
        authenticate(
            head,
            &route.auth,
            api_key_header,
            &snapshot.security,
            SystemTime::now(),
        )
    };
    let mut result = attempt();
    // A kid Usher does not know may be a freshly rotated key: refresh the issuer's key set
    // (one at a time, rate-limited) and try once more.
    if let Err(failure) = &result {
        let jwks = snapshot.security.jwt.as_ref().and_then(|jwt| jwt.jwks());
        if let (true, Some(jwks)) = (
            matches!(failure.reason, jwt::UNKNOWN_KEY | jwt::KEYS_UNAVAILABLE),
            jwks,
        ) {
            if jwks.refresh_if_due().await {
                result = attempt();
            }
        }
    }
    let (identity, credential) = result.map_err(|failure| {
        events::record(failure.reason, failure.severity, at);
        if failure.reason == jwt::KEYS_UNAVAILABLE {
            Rejection::AuthUnavailable
        } else {
            Rejection::Unauthenticated
        }
    })?;
    not_revoked(snapshot, route, &identity, at).await?;
    authorize(&identity, &route.auth, params).map_err(|reason| {
        events::record(reason, Severity::Medium, at);
        Rejection::Forbidden
    })?;
    Ok(Some(Caller {
        identity,
        credential,
        signed_digest: None,
    }))
}

/// A caller who signed the request (RFC 9421): the signature verified, its nonce (if any)
/// not seen before on any replica, and the key's principal authorized for the route.
async fn signed(
    head: &RequestHeader,
    snapshot: &Snapshot,
    route: &RouteSpec,
    params: &[String],
    at: &events::Context<'_>,
) -> Result<Caller, Rejection> {
    let keys = snapshot
        .security
        .signatures
        .as_ref()
        .ok_or(Rejection::Unauthenticated)?;
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let count = |result: &str| {
        labels::check(
            "signature_verifications",
            &labels::SIGNATURE_RESULTS,
            result,
        );
        METRICS
            .signature_verifications
            .with_label_values(&[&route.name, "rfc9421", result])
            .inc();
    };
    let verified = keys
        .verify(head, &route.auth.signature_covers, now)
        .map_err(|failure| {
            count(failure.reason.trim_start_matches("signature_"));
            events::record(failure.reason, failure.severity, at);
            Rejection::Unauthenticated
        })?;
    if let Some((keyid, nonce)) = &verified.nonce {
        let name = record_name(&format!("nonce:{keyid}"), nonce);
        let deliveries = &snapshot.kept.deliveries;
        match deliveries
            .begin(Place::of(snapshot), &name, keys.nonce_window())
            .await
        {
            Begun::Fresh => {}
            Begun::InFlight | Begun::Seen => {
                count("replayed");
                events::record("signature_replayed", Severity::High, at);
                return Err(Rejection::Unauthenticated);
            }
            Begun::Unavailable => {
                count("unavailable");
                events::record("signature_nonce_unavailable", Severity::Low, at);
                return Err(Rejection::AuthUnavailable);
            }
        }
    }
    count("valid");
    authorize(&verified.identity, &route.auth, params).map_err(|reason| {
        events::record(reason, Severity::Medium, at);
        Rejection::Forbidden
    })?;
    Ok(Caller {
        identity: verified.identity,
        credential: Consumed::Signature,
        signed_digest: verified.content_digest,
    })
}

/// Refuses a revoked token, by its `jti`: a stolen token shows as `token_revoked` on every
/// route, not as a role refusal. When the answer cannot be had, the route's
/// `on_dependency_failure` decides (closed: 503).
async fn not_revoked(
    snapshot: &Snapshot,
    route: &RouteSpec,
    identity: &Identity,
    at: &events::Context<'_>,
) -> Result<(), Rejection> {
    let (Some(revocation), CredentialKind::Jwt) = (&snapshot.security.revocation, identity.source)
    else {
        return Ok(());
    };
    let Some(jti) = &identity.token_id else {
        events::record("token_without_jti", Severity::Medium, at);
        return Err(Rejection::Unauthenticated);
    };
    let redis = snapshot.config.rate_limiting.redis.as_ref();
    match revocation
        .check(jti, snapshot.store.as_deref(), redis)
        .await
    {
        revocation::Status::Valid => Ok(()),
        revocation::Status::Revoked => {
            events::record("token_revoked", Severity::High, at);
            Err(Rejection::Unauthenticated)
        }
        revocation::Status::Unavailable => {
            super::dependency_unavailable(route, "revocation_unavailable", at)
        }
    }
}
