//! Who the caller is, as established by a verified credential. Nothing in an [`Identity`]
//! comes from a header the client could set.

use http::HeaderValue;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Jwt,
    ApiKey,
    /// An RFC 9421 message signature (`crate::signatures::verify`).
    Signature,
}

impl CredentialKind {
    /// The value of the `x-tenant-source` header sent upstream.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Jwt => "jwt",
            CredentialKind::ApiKey => "api-key",
            CredentialKind::Signature => "http-signature",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`, or `api-key:<name>`.
    pub subject: String,
    pub tenant: String,
    pub roles: Vec<String>,
    pub venues: Vec<String>,
    pub source: CredentialKind,
    /// The rate-limit tier, when the credential names one.
    pub tier: Option<Arc<str>>,
    /// The token's `jti`, for revocation.
    pub token_id: Option<String>,
    /// The API key's name, or the signing key's `keyid`, for the logs.
    pub key_id: Option<String>,
    /// What the logs say of `token_id` ([`token_digest`]), made once per verified token.
    pub token_digest: Option<String>,
    /// The identity headers' values, made from the fields above on the first request
    /// forwarded ([`Identity::forwarded_values`]).
    pub forwarded: ForwardedValues,
}

/// `x-tenant-id`, `x-user-id` and `x-user-roles` as header values, kept with the identity:
/// a verified token's identity is cached across its requests, and an API key's lives as
/// long as its file, so each request shares these bytes instead of copying them.
#[derive(Debug, Clone, Default)]
pub struct ForwardedValues(OnceLock<Option<[HeaderValue; 3]>>);

/// Made from the identity's other fields, so they decide whether two identities are equal.
impl PartialEq for ForwardedValues {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ForwardedValues {}

/// What the logs say of a token's `jti`: 16 hex digits of its SHA-256, never the id itself,
/// which is enough to follow one token through the logs.
pub fn token_digest(jti: &str) -> String {
    crate::digest::sha256_hex(&[jti.as_bytes()], 8)
}

/// The longest identity value Usher injects, in bytes.
pub const MAX_IDENTITY_VALUE: usize = 256;

/// The one rule for the values Usher sends upstream as identity headers (`x-user-id`,
/// `x-tenant-id`, and each role of `x-user-roles`): 1 to [`MAX_IDENTITY_VALUE`] bytes of
/// visible ASCII (`!` to `~`: no spaces, control characters or non-ASCII), and no comma,
/// which separates roles. A credential whose values break it is refused when it is
/// verified (a JWT: 401 `invalid_identity_value`) or loaded (an API key file).
pub fn is_identity_value(value: &str) -> bool {
    (1..=MAX_IDENTITY_VALUE).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

impl Identity {
    pub fn has_any_role(&self, roles: &[String]) -> bool {
        roles.iter().any(|role| self.roles.contains(role))
    }

    /// `[tenant, subject, roles]` as the headers upstream carry them (the roles joined by
    /// commas), or `None` when one is not a header value, which [`is_injectable`]
    /// (checked when the credential is verified) excludes.
    ///
    /// [`is_injectable`]: Identity::is_injectable
    pub fn forwarded_values(&self) -> Option<&[HeaderValue; 3]> {
        let made = || {
            let value = |text: &str| HeaderValue::from_str(text).ok();
            let roles = self.roles.join(",");
            Some([value(&self.tenant)?, value(&self.subject)?, value(&roles)?])
        };
        self.forwarded.0.get_or_init(made).as_ref()
    }

    /// Whether every value Usher injects for this identity follows [`is_identity_value`].
    pub fn is_injectable(&self) -> bool {
        is_identity_value(&self.subject)
            && is_identity_value(&self.tenant)
            && self.roles.iter().all(|role| is_identity_value(role))
    }
}

/// A verified JWT caller for tests, with no venues, tier or token.
#[cfg(test)]
impl Identity {
    pub fn caller(subject: &str, tenant: &str, roles: &[&str]) -> Identity {
        Identity {
            subject: subject.into(),
            tenant: tenant.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            venues: Vec::new(),
            source: CredentialKind::Jwt,
            tier: None,
            token_id: None,
            key_id: None,
            token_digest: None,
            forwarded: ForwardedValues::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_values_are_visible_ascii_without_commas() {
        for good in [
            "user-1",
            "tenant_a",
            "auth0|5f1c",
            "a@b.example",
            "x".repeat(256).as_str(),
        ] {
            assert!(is_identity_value(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a\rb",
            "a\nb",
            "a\0b",
            "a\u{7f}b",
            "tënant",
            "admin,customer",
            "x".repeat(257).as_str(),
        ] {
            assert!(!is_identity_value(bad), "{bad:?}");
        }
    }

    fn caller(tenant: &str) -> Identity {
        Identity::caller("user-1", tenant, &["customer", "organizer"])
    }

    #[test]
    fn forwarded_values_are_made_once_and_shared() {
        let identity = caller("tenant-a");
        let [tenant, subject, roles] = identity.forwarded_values().unwrap();
        assert_eq!(
            (tenant.as_bytes(), subject.as_bytes()),
            (&b"tenant-a"[..], &b"user-1"[..])
        );
        assert_eq!(roles.as_bytes(), b"customer,organizer");
        let again = identity.forwarded_values().unwrap();
        assert!(std::ptr::eq(again, identity.forwarded_values().unwrap()));
        assert_eq!(again[0].as_bytes().as_ptr(), tenant.as_bytes().as_ptr());
        assert_eq!(caller("tenant\na").forwarded_values(), None);
        assert_eq!(caller("tenant-a"), identity, "equal whether made or not");
    }
}
