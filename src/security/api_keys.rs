//! API keys for service and partner clients.
//!
//! The key file holds only SHA-256 hashes of the keys (hex), each mapped to a tenant, roles
//! and a rate-limit tier; the keys themselves are never stored by Usher. A presented key is
//! hashed and compared with every stored hash in constant time, so the time taken reveals
//! nothing about which entry, or how much of one, matched.
//!
//! ```yaml
//! keys:
//!   - name: partner-acme           # for logs and the caller's subject
//!     sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//!     tenant: acme
//!     roles: [partner]
//!     tier: premium
//! ```

use super::events::Severity;
use super::{is_identity_value, AuthFailure, CredentialKind, Identity};
use crate::config::{ApiKeysSpec, Errors};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    sha256: String,
    tenant: String,
    #[serde(default)]
    roles: Vec<String>,
    tier: Option<String>,
}

struct Entry {
    hash: [u8; 32],
    name: String,
    tenant: String,
    roles: Vec<String>,
    tier: Option<Arc<str>>,
}

pub struct ApiKeyStore {
    entries: Vec<Entry>,
}

impl ApiKeyStore {
    /// Reads the file `authentication.api_keys.file` names; reports a problem there.
    pub fn load(spec: &ApiKeysSpec, errors: &mut Errors) -> Option<ApiKeyStore> {
        let path = &spec.file;
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read \"{path}\": {e}"))
            .and_then(|text| Self::parse(&text).map_err(|e| format!("\"{path}\": {e}")))
            .map_err(|message| errors.error("authentication.api_keys.file", message))
            .ok()
    }

    pub fn parse(text: &str) -> Result<ApiKeyStore, String> {
        let raw: RawFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut entries: Vec<Entry> = Vec::new();
        for (index, key) in raw.keys.into_iter().enumerate() {
            let hash = decode_hex(&key.sha256)
                .ok_or_else(|| format!("keys[{index}].sha256 must be 64 hex digits (the SHA-256 of the key, never the key)"))?;
            if key.tenant.trim().is_empty() {
                return Err(format!("keys[{index}].tenant must not be empty"));
            }
            let rule =
                "1 to 256 visible ASCII characters without commas, as Usher sends it upstream";
            if !is_identity_value(&key.tenant) {
                return Err(format!("keys[{index}].tenant must be {rule}"));
            }
            if !is_identity_value(&format!("api-key:{}", key.name)) {
                return Err(format!("keys[{index}].name must be {rule}"));
            }
            if let Some(role) = key.roles.iter().position(|role| !is_identity_value(role)) {
                return Err(format!("keys[{index}].roles[{role}] must be {rule}"));
            }
            if entries.iter().any(|e| e.hash == hash || e.name == key.name) {
                return Err(format!("keys[{index}] repeats another key's name or hash"));
            }
            entries.push(Entry {
                hash,
                name: key.name,
                tenant: key.tenant,
                roles: key.roles,
                tier: key.tier.map(Into::into),
            });
        }
        Ok(ApiKeyStore { entries })
    }

    pub fn verify(&self, presented: &str) -> Result<Arc<Identity>, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&Entry> = None;
        for entry in &self.entries {
            // Every entry is compared; the branch below does not depend on the hash bytes.
            if bool::from(entry.hash.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        let entry = found.ok_or(AuthFailure::new("invalid_api_key", Severity::Medium))?;
        Ok(Arc::new(Identity {
            subject: format!("api-key:{}", entry.name),
            tenant: entry.tenant.clone(),
            roles: entry.roles.clone(),
            venues: Vec::new(),
            source: CredentialKind::ApiKey,
            tier: entry.tier.clone(),
            token_id: None,
            key_id: Some(entry.name.clone()),
            token_digest: None,
            forwarded: Default::default(),
        }))
    }
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
keys:
  - name: acme
    # sha256("acme-key-1")
    sha256: "__HASH__"
    tenant: acme
    roles: [partner]
    tier: premium
"#;

    fn store() -> ApiKeyStore {
        let hash: String = Sha256::digest(b"acme-key-1")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        ApiKeyStore::parse(&FILE.replace("__HASH__", &hash)).unwrap()
    }

    #[test]
    fn known_key_maps_to_its_tenant_roles_and_tier() {
        let identity = store().verify("acme-key-1").unwrap();
        assert_eq!(identity.tenant, "acme");
        assert_eq!(identity.subject, "api-key:acme");
        assert_eq!(identity.roles, vec!["partner"]);
        assert_eq!(identity.tier.as_deref(), Some("premium"));
        assert_eq!(identity.source, CredentialKind::ApiKey);
    }

    #[test]
    fn unknown_keys_and_bad_files_are_refused() {
        assert_eq!(
            store().verify("acme-key-2").unwrap_err().reason,
            "invalid_api_key"
        );
        assert!(ApiKeyStore::parse("keys: [{name: a, sha256: abc, tenant: t}]").is_err());
        assert!(ApiKeyStore::parse("keys: [{name: a, sha256: 00, tenant: t, secret: x}]").is_err());
    }
}
