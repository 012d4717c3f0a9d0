//! JWT verification, following RFC 8725 (JWT best current practices):
//! - the algorithm comes from the configured key, never from the token; `none` never verifies;
//! - a key is chosen by `kid`; a token without `kid` is accepted only when one key exists;
//! - `jku`, `x5u`, `jwk` and `x5c` headers are never followed: a token carrying them is refused;
//! - `exp`, `iss`, `aud`, `sub` and the tenant claim are required, `nbf` is checked, clock skew
//!   is bounded by the configured leeway, and a token may not live longer than `max_lifetime`;
//! - the token-type claim must say `access`, so a refresh token is not an access token.

use super::events::Severity;
use super::keys;
use super::{AuthFailure, CredentialKind, Identity};
use crate::config::{JwtSpec, KeyMaterial};
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct JwtVerifier {
    spec: JwtSpec,
    keys: Vec<VerifyingKey>,
}

struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

const fn fail(reason: &'static str, severity: Severity) -> AuthFailure {
    AuthFailure::new(reason, severity)
}

impl JwtVerifier {
    /// Loads every key; returns `(config path, message)` for each that cannot be loaded.
    pub fn load(spec: &JwtSpec) -> Result<JwtVerifier, Vec<(String, String)>> {
        let mut keys = Vec::new();
        let mut problems = Vec::new();
        for (index, key_spec) in spec.keys.iter().enumerate() {
            match keys::decoding_key(key_spec) {
                Ok(key) => {
                    let mut validation = Validation::new(key_spec.algorithm);
                    validation.leeway = spec.leeway.as_secs();
                    validation.validate_nbf = true;
                    validation.set_issuer(&[&spec.issuer]);
                    validation.set_audience(&spec.audiences);
                    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                    keys.push(VerifyingKey {
                        kid: key_spec.kid.clone(),
                        algorithm: key_spec.algorithm,
                        key,
                        validation,
                    });
                }
                Err(message) => {
                    let field = match key_spec.material {
                        KeyMaterial::SecretEnv(_) => "secret_env",
                        KeyMaterial::SecretFile(_) => "secret_file",
                        KeyMaterial::PublicKeyFile(_) => "public_key_file",
                    };
                    problems.push((format!("authentication.jwt.keys[{index}].{field}"), message));
                }
            }
        }
        if problems.is_empty() {
            Ok(JwtVerifier {
                spec: spec.clone(),
                keys,
            })
        } else {
            Err(problems)
        }
    }

    /// Verifies `token` at `now` and returns the identity it carries.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Identity, AuthFailure> {
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
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or(fail("unknown_key", Severity::Medium))?;
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
        self.identity(&claims, now)
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
        Ok(Identity {
            subject: subject.to_string(),
            tenant: tenant.to_string(),
            roles: strings(claims.get(&names.roles)),
            venues: strings(claims.get(&names.venues)),
            source: CredentialKind::Jwt,
            tier: text("tier").map(Into::into),
            token_id: text("jti").map(str::to_string),
        })
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
