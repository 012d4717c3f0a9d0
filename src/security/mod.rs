//! Credentials to a verified [`Identity`]: JWT verification and API keys.
//!
//! [`Security`] holds what the configuration's `authentication` section names, loaded:
//! decoding keys and hashed API keys. It is built with every snapshot (so key files are
//! read again on reload), takes over what the running one learned from other services (the
//! issuer's key set, lookup answers), and is immutable afterwards.

pub mod api_keys;
pub mod events;
mod identity;
mod jose;
pub mod jwks;
pub mod jwt;
mod keys;
pub mod lookup;
pub mod revocation;

pub use identity::{is_identity_value, token_digest, CredentialKind, Identity};

use crate::config::{Config, Errors};

/// Why a request could not be authenticated. The `reason` is for logs and metrics only;
/// clients get one generic 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFailure {
    pub reason: &'static str,
    pub severity: events::Severity,
}

impl AuthFailure {
    pub const fn new(reason: &'static str, severity: events::Severity) -> Self {
        AuthFailure { reason, severity }
    }
}

#[derive(Default)]
pub struct Security {
    pub jwt: Option<jwt::JwtVerifier>,
    pub api_keys: Option<api_keys::ApiKeyStore>,
    pub user_status: Option<lookup::Lookup>,
    pub venue_access: Option<lookup::Lookup>,
    pub revocation: Option<revocation::Revocation>,
    /// The keys RFC 9421 signatures are verified with.
    pub signatures: Option<crate::signatures::verify::SignatureKeys>,
}

impl Security {
    /// Loads key material, API keys and revoked ids, reporting what cannot be loaded to
    /// `errors`; what failed is left out, and the caller discards the result.
    pub fn load(config: &Config, errors: &mut Errors) -> Security {
        let auth = &config.authentication;
        Security {
            jwt: auth
                .jwt
                .as_ref()
                .and_then(|spec| jwt::JwtVerifier::load(spec, errors)),
            api_keys: auth
                .api_keys
                .as_ref()
                .and_then(|spec| api_keys::ApiKeyStore::load(spec, errors)),
            user_status: auth.user_status.as_ref().map(lookup::Lookup::new),
            venue_access: auth.venue_access.as_ref().map(lookup::Lookup::new),
            revocation: auth
                .revocation
                .as_ref()
                .and_then(|spec| revocation::Revocation::load(spec, errors)),
            signatures: auth
                .signatures
                .as_ref()
                .and_then(|spec| crate::signatures::verify::SignatureKeys::load(spec, errors)),
        }
    }
}
