//! Who the caller is, as established by a verified credential. Nothing in an [`Identity`]
//! comes from a header the client could set.

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Jwt,
    ApiKey,
}

impl CredentialKind {
    /// The value of the `x-tenant-source` header sent upstream.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Jwt => "jwt",
            CredentialKind::ApiKey => "api-key",
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
}

impl Identity {
    pub fn has_any_role(&self, roles: &[String]) -> bool {
        roles.iter().any(|role| self.roles.contains(role))
    }
}
