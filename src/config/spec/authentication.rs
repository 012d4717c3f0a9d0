//! Authentication, compiled: JWT, API keys, revocation and the lookups.

use super::*;

#[derive(Debug, Clone, Default)]
pub struct AuthenticationSpec {
    pub jwt: Option<JwtSpec>,
    pub api_keys: Option<ApiKeysSpec>,
    pub signatures: Option<SignaturesSpec>,
    /// Asked whether a token's user is still active (`{sub}`, `{tenant}` in the URL).
    pub user_status: Option<LookupSpec>,
    /// Asked whether a user may act on a venue (`{venue}`, `{sub}`, `{tenant}`).
    pub venue_access: Option<LookupSpec>,
    pub revocation: Option<RevocationSpec>,
}

/// Where a token's `jti` is looked up before the token is accepted. With revocation on,
/// a token without `jti` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSpec {
    /// The Redis key that marks a token revoked, `{jti}` filled in; asked in
    /// `rate_limiting.redis` when that is configured.
    pub key_template: String,
    /// Revoked ids, one per line, read with every snapshot.
    pub file: Option<String>,
    /// How long one answer from Redis is reused for the same `jti`.
    pub cache_ttl: Duration,
    /// While Redis cannot answer, an answer up to this old still counts.
    pub stale_if_error: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupSpec {
    pub url_template: String,
    pub cache_ttl: Duration,
    pub negative_cache_ttl: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct JwtSpec {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    /// The longest a token may live: `exp - iat` (or `exp - now` without `iat`).
    pub max_lifetime: Duration,
    /// The value the token-type claim must have (`access`).
    pub token_type: String,
    pub claims: ClaimNames,
    pub keys: Vec<JwtKeySpec>,
    pub jwks: Option<JwksSpec>,
}

/// Keys published by the token issuer as a JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSpec {
    /// An `http://` or `https://` URL (the issuer's in-cluster address).
    pub url: http::Uri,
    pub refresh_interval: Duration,
    /// A token with an unknown `kid` triggers a refresh at most this often.
    pub min_refresh_interval: Duration,
    pub timeout: Duration,
}

/// The names of the claims Usher reads besides the registered ones.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub tenant: String,
    pub roles: String,
    pub venues: String,
    pub token_type: String,
    /// Names the caller's rate-limit tier.
    pub tier: String,
}

#[derive(Debug, Clone)]
pub struct JwtKeySpec {
    pub kid: Option<String>,
    /// The only algorithm this key verifies; the token's header never chooses it.
    pub algorithm: jsonwebtoken::Algorithm,
    pub material: KeyMaterial,
}

/// Where key material comes from. Secrets never appear in routes.yaml itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    SecretEnv(String),
    SecretFile(String),
    PublicKeyFile(String),
}

#[derive(Debug, Clone)]
pub struct ApiKeysSpec {
    pub file: String,
    /// Lower-cased header name, `x-api-key` by default.
    pub header: String,
}

/// RFC 9421 signatures as a credential (see `crate::signatures::verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignaturesSpec {
    pub keys: Vec<SignatureKeySpec>,
    pub require: Vec<String>,
    pub max_skew: std::time::Duration,
    pub nonce_required: bool,
}

/// One signing key a caller may use, and the principal it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureKeySpec {
    pub id: String,
    pub material: SignatureMaterial,
    pub tenant: String,
    pub roles: Vec<String>,
    pub subject: Option<String>,
    pub tier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureMaterial {
    HmacSecretFile(String),
    Ed25519PublicKeyFile(String),
}
