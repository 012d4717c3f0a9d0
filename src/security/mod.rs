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

pub use identity::{is_identity_value, CredentialKind, Identity};

use crate::config::{Config, ConfigError, ConfigErrors};

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
}

impl Security {
    /// Loads key material and API keys. `source` names the config file in errors.
    pub fn load(source: &str, config: &Config) -> Result<Security, ConfigErrors> {
        let mut errors = Vec::new();
        let mut error = |path: String, message: String| {
            errors.push(ConfigError {
                source: source.to_string(),
                location: None,
                path,
                message,
            })
        };
        let jwt = config.authentication.jwt.as_ref().and_then(|spec| {
            jwt::JwtVerifier::load(spec)
                .map_err(|problems| {
                    for (path, message) in problems {
                        error(path, message);
                    }
                })
                .ok()
        });
        let api_keys = config.authentication.api_keys.as_ref().and_then(|spec| {
            api_keys::ApiKeyStore::load(&spec.file)
                .map_err(|message| error("authentication.api_keys.file".to_string(), message))
                .ok()
        });
        let revocation = config.authentication.revocation.as_ref().and_then(|spec| {
            revocation::Revocation::load(spec)
                .map_err(|message| error("authentication.revocation.file".to_string(), message))
                .ok()
        });
        if errors.is_empty() {
            let auth = &config.authentication;
            Ok(Security {
                jwt,
                api_keys,
                user_status: auth.user_status.as_ref().map(lookup::Lookup::new),
                venue_access: auth.venue_access.as_ref().map(lookup::Lookup::new),
                revocation,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}
