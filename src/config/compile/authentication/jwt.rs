//! `authentication.jwt`: the issuer, audiences and lifetimes tokens must have, the claims
//! read from them, and the keys (listed, or the issuer's JWK set) that verify them.

use crate::config::builtin;
use crate::config::compile::{merged, Compiler};
use crate::config::raw::RawJwt;
use crate::config::{ClaimNames, JwksSpec, JwtKeySpec, JwtSpec, KeyMaterial};
use std::str::FromStr;
use std::time::Duration;

/// The most clock skew tolerated.
const MAX_LEEWAY: Duration = Duration::from_secs(60);

impl Compiler<'_> {
    pub(super) fn jwt(&mut self, raw: &RawJwt) -> JwtSpec {
        let at = "authentication.jwt";
        if raw.issuer.trim().is_empty() {
            self.error(
                format!("{at}.issuer"),
                "must name the issuer tokens must carry in `iss`",
            );
        }
        if raw.audiences.is_empty() || raw.audiences.iter().any(|a| a.trim().is_empty()) {
            self.error(
                format!("{at}.audiences"),
                "list at least one audience; a token's `aud` must contain one of them",
            );
        }
        let leeway = merged(raw.leeway, None, builtin::LEEWAY);
        if leeway > MAX_LEEWAY {
            self.error(
                format!("{at}.leeway"),
                "at most 60s of clock skew is tolerated",
            );
        }
        let max_lifetime = merged(raw.max_lifetime, None, builtin::MAX_LIFETIME);
        self.positive(&format!("{at}.max_lifetime"), max_lifetime);
        let claim = |name: &Option<String>, builtin: &str| {
            merged(name.as_deref(), None, builtin).to_string()
        };
        let claims = ClaimNames {
            tenant: claim(&raw.claims.tenant, builtin::CLAIM_TENANT),
            roles: claim(&raw.claims.roles, builtin::CLAIM_ROLES),
            venues: claim(&raw.claims.venues, builtin::CLAIM_VENUES),
            token_type: claim(&raw.claims.token_type, builtin::CLAIM_TOKEN_TYPE),
            tier: claim(&raw.claims.tier, builtin::CLAIM_TIER),
        };
        if raw.keys.is_empty() && raw.jwks.is_none() {
            self.error(
                format!("{at}.keys"),
                "list at least one key, or configure jwks",
            );
        }
        let jwks = raw.jwks.as_ref().and_then(|jwks| {
            let at = format!("{at}.jwks");
            let url = match jwks.url.parse::<http::Uri>() {
                Ok(url)
                    if matches!(url.scheme_str(), Some("http" | "https"))
                        && url.host().is_some() =>
                {
                    url
                }
                _ => {
                    self.error(
                        format!("{at}.url"),
                        format!(
                            "invalid URL \"{}\": expected http(s)://host[:port]/path",
                            jwks.url
                        ),
                    );
                    return None;
                }
            };
            let refresh_interval =
                merged(jwks.refresh_interval, None, builtin::JWKS_REFRESH_INTERVAL);
            let min_refresh_interval = merged(
                jwks.min_refresh_interval,
                None,
                builtin::JWKS_MIN_REFRESH_INTERVAL,
            );
            self.positive(&format!("{at}.min_refresh_interval"), min_refresh_interval);
            let timeout = merged(jwks.timeout, None, builtin::JWKS_TIMEOUT);
            self.positive(&format!("{at}.refresh_interval"), refresh_interval);
            self.positive(&format!("{at}.timeout"), timeout);
            Some(JwksSpec {
                url,
                refresh_interval,
                min_refresh_interval,
                timeout,
            })
        });
        let mut kids: Vec<&str> = Vec::new();
        let mut keys = Vec::new();
        for (index, key) in raw.keys.iter().enumerate() {
            let at = format!("{at}.keys[{index}]");
            if let Some(kid) = key.kid.as_deref() {
                if kids.contains(&kid) {
                    self.error(
                        format!("{at}.kid"),
                        format!("kid \"{kid}\" is used by another key"),
                    );
                }
                kids.push(kid);
            } else if raw.keys.len() > 1 {
                self.error(
                    format!("{at}.kid"),
                    "with more than one key, every key needs a kid",
                );
            }
            let algorithm = match key.algorithm.as_str() {
                "none" | "None" | "NONE" => {
                    self.error(
                        format!("{at}.algorithm"),
                        "unsigned tokens (alg none) are never accepted",
                    );
                    continue;
                }
                name => match jsonwebtoken::Algorithm::from_str(name) {
                    Ok(algorithm) => algorithm,
                    Err(_) => {
                        self.error(format!("{at}.algorithm"), format!("unknown algorithm \"{name}\": expected HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"));
                        continue;
                    }
                },
            };
            let hmac = matches!(
                algorithm,
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            );
            let material = match (
                hmac,
                &key.secret_env,
                &key.secret_file,
                &key.public_key_file,
            ) {
                (true, Some(name), None, None) => KeyMaterial::SecretEnv(name.clone()),
                (true, None, Some(path), None) => KeyMaterial::SecretFile(path.clone()),
                (false, None, None, Some(path)) => KeyMaterial::PublicKeyFile(path.clone()),
                (true, ..) => {
                    self.error(
                        at,
                        "an HMAC key needs exactly one of secret_env or secret_file",
                    );
                    continue;
                }
                (false, ..) => {
                    self.error(
                        at,
                        "a public-key algorithm needs public_key_file (and no secret)",
                    );
                    continue;
                }
            };
            keys.push(JwtKeySpec {
                kid: key.kid.clone(),
                algorithm,
                material,
            });
        }
        JwtSpec {
            issuer: raw.issuer.clone(),
            audiences: raw.audiences.clone(),
            leeway,
            max_lifetime,
            token_type: merged(raw.token_type.as_deref(), None, builtin::TOKEN_TYPE).to_string(),
            claims,
            keys,
            jwks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::section;

    fn jwt(yaml: &str) -> (JwtSpec, Vec<String>) {
        section(yaml, |c, raw| c.jwt(raw))
    }

    #[test]
    fn jwt_defaults_and_claims() {
        let (spec, errors) =
            jwt("{ issuer: i, audiences: [a], keys: [{ algorithm: HS256, secret_file: s }] }");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            (spec.leeway, spec.max_lifetime),
            (builtin::LEEWAY, builtin::MAX_LIFETIME)
        );
        assert_eq!(spec.token_type, builtin::TOKEN_TYPE);
        let claims = [
            &spec.claims.tenant,
            &spec.claims.roles,
            &spec.claims.venues,
            &spec.claims.token_type,
            &spec.claims.tier,
        ];
        assert_eq!(
            claims,
            [
                builtin::CLAIM_TENANT,
                builtin::CLAIM_ROLES,
                builtin::CLAIM_VENUES,
                builtin::CLAIM_TOKEN_TYPE,
                builtin::CLAIM_TIER
            ]
        );
        assert_eq!(spec.keys[0].material, KeyMaterial::SecretFile("s".into()));
        let (spec, errors) = jwt("{ issuer: i, audiences: [a], claims: { tenant: org }, jwks: { url: \"https://issuer/keys\" } }");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(spec.claims.tenant, "org");
        let jwks = spec.jwks.unwrap();
        assert_eq!(
            (
                jwks.refresh_interval,
                jwks.min_refresh_interval,
                jwks.timeout
            ),
            (
                builtin::JWKS_REFRESH_INTERVAL,
                builtin::JWKS_MIN_REFRESH_INTERVAL,
                builtin::JWKS_TIMEOUT
            )
        );
    }

    #[test]
    fn jwt_errors() {
        let at = "authentication.jwt";
        for (yaml, expected) in [
            ("{ issuer: \" \", audiences: [], leeway: 61s, max_lifetime: 0s, keys: [] }", vec![
                format!("{at}.issuer: must name the issuer tokens must carry in `iss`"),
                format!("{at}.audiences: list at least one audience; a token's `aud` must contain one of them"),
                format!("{at}.leeway: at most 60s of clock skew is tolerated"),
                format!("{at}.max_lifetime: must be greater than zero"),
                format!("{at}.keys: list at least one key, or configure jwks"),
            ]),
            ("{ issuer: i, audiences: [a], keys: [{ algorithm: none, secret_env: S }] }", vec![
                format!("{at}.keys[0].algorithm: unsigned tokens (alg none) are never accepted"),
            ]),
            ("{ issuer: i, audiences: [a], keys: [{ algorithm: XS1, secret_env: S }] }", vec![
                format!("{at}.keys[0].algorithm: unknown algorithm \"XS1\": expected HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"),
            ]),
            ("{ issuer: i, audiences: [a], keys: [{ algorithm: HS256, public_key_file: p }, { kid: b, algorithm: RS256, secret_env: S }] }", vec![
                format!("{at}.keys[0].kid: with more than one key, every key needs a kid"),
                format!("{at}.keys[0]: an HMAC key needs exactly one of secret_env or secret_file"),
                format!("{at}.keys[1]: a public-key algorithm needs public_key_file (and no secret)"),
            ]),
            ("{ issuer: i, audiences: [a], keys: [{ kid: k, algorithm: HS256, secret_env: S }, { kid: k, algorithm: HS256, secret_env: T }] }", vec![
                format!("{at}.keys[1].kid: kid \"k\" is used by another key"),
            ]),
            ("{ issuer: i, audiences: [a], jwks: { url: \"ftp://issuer/keys\" } }", vec![
                format!("{at}.jwks.url: invalid URL \"ftp://issuer/keys\": expected http(s)://host[:port]/path"),
            ]),
            ("{ issuer: i, audiences: [a], jwks: { url: \"http://issuer/keys\", timeout: 0s } }", vec![
                format!("{at}.jwks.timeout: must be greater than zero"),
            ]),
        ] {
            assert_eq!(jwt(yaml).1, expected, "{yaml}");
        }
    }
}
