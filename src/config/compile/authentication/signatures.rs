//! `authentication.signatures`: the keys RFC 9421 signatures are verified with (read later,
//! with the environment), the principal each stands for, and the rules signatures follow.

use crate::config::compile::{is_label, Compiler};
use crate::config::raw::RawSignatures;
use crate::config::{builtin, SignatureKeySpec, SignatureMaterial, SignaturesSpec};

impl Compiler<'_> {
    pub(super) fn signatures(&mut self, raw: &RawSignatures) -> SignaturesSpec {
        let at = "authentication.signatures";
        if raw.keys.is_empty() {
            self.error(format!("{at}.keys"), "list at least one key");
        }
        let mut keys: Vec<SignatureKeySpec> = Vec::new();
        for (i, key) in raw.keys.iter().enumerate() {
            let here = format!("{at}.keys[{i}]");
            if key.id.is_empty()
                || !key
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
            {
                self.error(
                    format!("{here}.id"),
                    "a key id of visible ASCII, without quotes",
                );
            } else if keys.iter().any(|k| k.id == key.id) {
                self.error(
                    format!("{here}.id"),
                    format!("\"{}\" is listed twice", key.id),
                );
            }
            if key.tenant.trim().is_empty() {
                self.error(format!("{here}.tenant"), "name the tenant the key acts for");
            }
            let material = match (&key.hmac_secret_file, &key.ed25519_public_key_file) {
                (Some(file), None) => SignatureMaterial::HmacSecretFile(file.clone()),
                (None, Some(file)) => SignatureMaterial::Ed25519PublicKeyFile(file.clone()),
                _ => {
                    self.error(
                        &here,
                        "set exactly one of hmac_secret_file or ed25519_public_key_file",
                    );
                    continue;
                }
            };
            keys.push(SignatureKeySpec {
                id: key.id.clone(),
                material,
                tenant: key.tenant.clone(),
                roles: key.roles.clone(),
                subject: key.subject.clone(),
                tier: key.tier.clone(),
            });
        }
        let require = raw.require.clone().unwrap_or_else(|| {
            builtin::SIGNATURE_REQUIRED
                .iter()
                .map(|c| c.to_string())
                .collect()
        });
        for (i, component) in require.iter().enumerate() {
            let known = [
                "@method",
                "@path",
                "@query",
                "@authority",
                "@request-target",
            ];
            let field = !component.starts_with('@')
                && is_label(component.trim_start_matches("x-"))
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !(known.contains(&component.as_str()) || field) {
                self.error(
                    format!("{at}.require[{i}]"),
                    format!("\"{component}\": expected @method, @path, @query, @authority, @request-target or a lower-case field name"),
                );
            }
        }
        let nonce_required = match raw.nonce.as_deref().unwrap_or("optional") {
            "optional" => false,
            "required" => true,
            other => {
                self.error(
                    format!("{at}.nonce"),
                    format!("\"{other}\": expected optional or required"),
                );
                false
            }
        };
        SignaturesSpec {
            keys,
            require,
            max_skew: self.positive(
                &format!("{at}.max_skew"),
                raw.max_skew.map_or(builtin::SIGNATURE_MAX_SKEW, |d| d.0),
            ),
            nonce_required,
        }
    }
}
