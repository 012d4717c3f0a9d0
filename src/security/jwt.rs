//! JWT verification, following RFC 8725 (JWT best current practices):
//! - the algorithm comes from the configured key, never from the token; `none` never verifies;
//! - a key is chosen by `kid`; a token without `kid` is accepted only when one key exists;
//! - `jku`, `x5u`, `jwk` and `x5c` headers are never followed: a token carrying them is refused;
//! - `exp`, `iss`, `aud`, `sub` and the tenant claim are required, `nbf` is checked, clock skew
//!   is bounded by the configured leeway, and a token may not live longer than `max_lifetime`;
//! - the token-type claim must say `access`, so a refresh token is not an access token;
//! - no member of the header or claims may appear twice, and no `crit` header (`jose.rs`);
//! - the subject, tenant and roles Usher injects follow one character rule
//!   ([`Identity::is_injectable`]), checked here rather than when headers are built.
//!
//! Verified tokens are cached (keyed by the whole token, bounded in size) until they expire,
//! because clients send the same token with many requests and verification is the larger
//! part of an authenticated request's cost (ES256 and RS256 far more than HS256). The cache
//! lives in the verifier, which every reload builds anew, so a removed key stops verifying
//! at once; expiry and not-before are checked again on every hit.

use super::events::Severity;
use super::jose;
use super::jwks::Jwks;
use super::keys::{self, VerifyingKey};
use super::{AuthFailure, CredentialKind, Identity};
use crate::cache::Cache;
use crate::config::{Errors, JwtSpec, KeyMaterial};
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct JwtVerifier {
    spec: JwtSpec,
    keys: Vec<Arc<VerifyingKey>>,
    jwks: Option<Arc<Jwks>>,
    cache: VerifiedCache,
}

/// Verified tokens by their text; a hit counts only while the token is still valid.
struct VerifiedCache(Cache<Box<str>, Verified>);

struct Verified {
    identity: Arc<Identity>,
    /// The key that verified the token, and the kid it was found under: a hit counts only
    /// while that kid still resolves to this very key (a JWKS refresh or reload that drops or
    /// replaces it ends the entry).
    kid: Option<String>,
    key: Arc<VerifyingKey>,
    /// `exp` and `nbf` (0 when absent), in seconds since the epoch.
    expires: u64,
    not_before: u64,
}

/// Verified tokens remembered; beyond this the oldest go.
const CACHE_ENTRIES: usize = 16 * 1024;

impl VerifiedCache {
    fn new() -> Self {
        VerifiedCache(Cache::new(CACHE_ENTRIES, 16))
    }

    fn get(
        &self,
        token: &str,
        now: u64,
        leeway: u64,
    ) -> Option<(Arc<Identity>, Option<String>, Arc<VerifyingKey>)> {
        self.0.find(token, |entry, _| {
            (now < entry.expires + leeway && entry.not_before <= now + leeway).then(|| {
                (
                    Arc::clone(&entry.identity),
                    entry.kid.clone(),
                    Arc::clone(&entry.key),
                )
            })
        })
    }

    fn insert(&self, token: &str, verified: Verified) {
        self.0.insert(token.into(), verified);
    }
}

/// A token that just verified: who it names, its claims, and the key that verified it.
struct Verification {
    identity: Identity,
    claims: Map<String, Value>,
    key: Arc<VerifyingKey>,
}

/// A token's `kid` names no known key; a JWKS refresh may bring it.
pub const UNKNOWN_KEY: &str = "unknown_key";
/// The subject, tenant or a role breaks the identity value rule (see `Identity`).
pub const INVALID_IDENTITY_VALUE: &str = "invalid_identity_value";
/// No key could be obtained at all: the answer is 503, not 401.
pub const KEYS_UNAVAILABLE: &str = "keys_unavailable";

const fn fail(reason: &'static str, severity: Severity) -> AuthFailure {
    AuthFailure::new(reason, severity)
}

impl JwtVerifier {
    /// Loads every key; reports each that cannot be loaded at the key that names it.
    pub fn load(spec: &JwtSpec, errors: &mut Errors) -> Option<JwtVerifier> {
        let mut keys = Vec::new();
        let errors_before = errors.count();
        for (index, key_spec) in spec.keys.iter().enumerate() {
            match keys::decoding_key(key_spec) {
                Ok(key) => keys.push(Arc::new(VerifyingKey::new(
                    key_spec.kid.clone(),
                    key_spec.algorithm,
                    key,
                    spec,
                ))),
                Err(message) => {
                    let field = match key_spec.material {
                        KeyMaterial::SecretEnv(_) => "secret_env",
                        KeyMaterial::SecretFile(_) => "secret_file",
                        KeyMaterial::PublicKeyFile(_) => "public_key_file",
                    };
                    errors.error(format!("authentication.jwt.keys[{index}].{field}"), message);
                }
            }
        }
        (errors.count() == errors_before).then(|| JwtVerifier {
            spec: spec.clone(),
            keys,
            jwks: spec
                .jwks
                .as_ref()
                .map(|jwks| Arc::new(Jwks::new(jwks, spec))),
            cache: VerifiedCache::new(),
        })
    }

    /// The issuer's key set, when configured.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// Verifies `token` at `now` and returns the identity it carries.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Arc<Identity>, AuthFailure> {
        let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let leeway = self.spec.leeway.as_secs();
        if let Some((identity, kid, key)) = self.cache.get(token, seconds, leeway) {
            if self
                .key_for(kid.as_deref())
                .is_some_and(|current| Arc::ptr_eq(&current, &key))
            {
                return Ok(identity);
            }
        }
        let Verification {
            identity,
            claims,
            key,
        } = self.verify_uncached(token, now)?;
        let number = |name: &str| claims.get(name).and_then(Value::as_u64).unwrap_or(0);
        let identity = Arc::new(identity);
        self.cache.insert(
            token,
            Verified {
                identity: Arc::clone(&identity),
                kid: key.kid.clone(),
                key,
                expires: number("exp"),
                not_before: number("nbf"),
            },
        );
        Ok(identity)
    }

    /// The key a token naming `kid` (or no kid) is verified with now.
    fn key_for(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .cloned()
                .or_else(|| self.jwks.as_ref()?.key(kid)),
            None if self.keys.len() == 1 => self.keys.first().cloned(),
            None => None,
        }
    }

    fn verify_uncached(&self, token: &str, now: SystemTime) -> Result<Verification, AuthFailure> {
        jose::check(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            if names_alg_none(token) {
                fail("alg_none", Severity::High)
            } else {
                fail("malformed_token", Severity::Medium)
            }
        })?;
        if header.jku.is_some()
            || header.x5u.is_some()
            || header.jwk.is_some()
            || header.x5c.is_some()
        {
            return Err(fail("untrusted_key_reference", Severity::High));
        }
        let key = match self.key_for(header.kid.as_deref()) {
            Some(key) => key,
            // Nothing to verify with at all (the JWKS never loaded): unavailable, not invalid.
            None if self.keys.is_empty() && self.jwks.as_ref().is_some_and(|j| !j.loaded()) => {
                return Err(fail(KEYS_UNAVAILABLE, Severity::Low));
            }
            None => return Err(fail(UNKNOWN_KEY, Severity::Medium)),
        };
        if header.alg != key.algorithm {
            return Err(fail("wrong_algorithm", Severity::High));
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &key.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => fail("bad_signature", Severity::High),
                ErrorKind::ExpiredSignature => fail("expired", Severity::Low),
                ErrorKind::ImmatureSignature => fail("not_yet_valid", Severity::Medium),
                ErrorKind::InvalidIssuer => fail("wrong_issuer", Severity::Medium),
                ErrorKind::InvalidAudience => fail("wrong_audience", Severity::Medium),
                ErrorKind::InvalidAlgorithm => fail("wrong_algorithm", Severity::High),
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    fail("missing_claim", Severity::Medium)
                }
                _ => fail("malformed_token", Severity::Medium),
            })?
            .claims;
        let identity = self.identity(&claims, now)?;
        Ok(Verification {
            identity,
            claims,
            key,
        })
    }

    fn identity(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<Identity, AuthFailure> {
        let names = &self.spec.claims;
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.trim().is_empty())
        };
        let subject = text("sub").ok_or(fail("missing_claim", Severity::Medium))?;
        if text(&names.token_type) != Some(self.spec.token_type.as_str()) {
            return Err(fail("wrong_token_type", Severity::Medium));
        }
        let tenant = text(&names.tenant).ok_or(fail("missing_tenant", Severity::Medium))?;
        self.check_lifetime(claims, now)?;
        let identity = Identity {
            subject: subject.to_string(),
            tenant: tenant.to_string(),
            roles: strings(claims.get(&names.roles)),
            venues: strings(claims.get(&names.venues)),
            source: CredentialKind::Jwt,
            tier: text(&names.tier).map(Into::into),
            token_id: text("jti").map(str::to_string),
            key_id: None,
            token_digest: text("jti").map(super::token_digest),
            forwarded: Default::default(),
        };
        if !identity.is_injectable() {
            return Err(fail(INVALID_IDENTITY_VALUE, Severity::Medium));
        }
        Ok(identity)
    }

    /// `exp - iat` (or `exp - now` without `iat`) may not exceed `max_lifetime`, and `iat`
    /// may not lie in the future beyond the leeway.
    fn check_lifetime(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<(), AuthFailure> {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let number = |name: &str| claims.get(name).and_then(Value::as_u64);
        let exp = number("exp").ok_or(fail("missing_claim", Severity::Medium))?;
        let leeway = self.spec.leeway.as_secs();
        let issued = match claims.get("iat") {
            None => now,
            Some(value) => {
                let iat = value
                    .as_u64()
                    .ok_or(fail("missing_claim", Severity::Medium))?;
                if iat > now + leeway {
                    return Err(fail("issued_in_future", Severity::Medium));
                }
                iat
            }
        };
        if exp.saturating_sub(issued) > self.spec.max_lifetime.as_secs() + leeway {
            return Err(fail("lifetime_too_long", Severity::Medium));
        }
        Ok(())
    }
}

/// A claim holding a list of strings, one string, or numbers (venue ids often are).
fn strings(value: Option<&Value>) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(other) => one(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Whether the token's header asks for no signature (`"alg": "none"` in any case), which
/// `jsonwebtoken` cannot even parse: worth a high-severity event of its own.
fn names_alg_none(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .and_then(|header| header.get("alg")?.as_str().map(str::to_ascii_lowercase))
        .is_some_and(|alg| alg == "none")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey};

    fn identity() -> Arc<Identity> {
        Arc::new(Identity::caller("u", "t", &[]))
    }

    fn key() -> Arc<VerifyingKey> {
        let spec = JwtSpec {
            issuer: "i".into(),
            audiences: vec!["a".into()],
            leeway: std::time::Duration::from_secs(30),
            max_lifetime: std::time::Duration::from_secs(3600),
            token_type: "access".into(),
            claims: crate::config::ClaimNames {
                tenant: "tenant_id".into(),
                roles: "roles".into(),
                venues: "venue_ids".into(),
                token_type: "type".into(),
                tier: "tier".into(),
            },
            keys: Vec::new(),
            jwks: None,
        };
        Arc::new(VerifyingKey::new(
            None,
            Algorithm::HS256,
            DecodingKey::from_secret(b"k"),
            &spec,
        ))
    }

    #[test]
    fn cached_tokens_still_expire_and_respect_not_before() {
        let cache = VerifiedCache::new();
        cache.insert(
            "a.b.c",
            Verified {
                identity: identity(),
                kid: None,
                key: key(),
                expires: 1_000,
                not_before: 500,
            },
        );
        let leeway = 30;
        assert!(cache.get("a.b.c", 600, leeway).is_some());
        assert!(
            cache.get("a.b.c", 1_029, leeway).is_some(),
            "within the leeway"
        );
        assert!(cache.get("a.b.c", 1_030, leeway).is_none(), "expired");
        assert!(cache.get("a.b.c", 469, leeway).is_none(), "not yet valid");
        assert!(
            cache.get("a.b.d", 600, leeway).is_none(),
            "only the same token"
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = VerifiedCache::new();
        for n in 0..(CACHE_ENTRIES * 3) {
            cache.insert(
                &format!("token-{n}"),
                Verified {
                    identity: identity(),
                    kid: None,
                    key: key(),
                    expires: u64::MAX - 100,
                    not_before: 0,
                },
            );
        }
        let total = cache.0.len();
        assert!(total <= CACHE_ENTRIES, "{total} entries");
    }
}
