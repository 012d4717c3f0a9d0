//! RFC 9421 HTTP Message Signatures as a credential, beside JWTs and API keys, on routes
//! with `auth.signatures`: a partner or service signs its request with a key Usher knows by
//! `keyid` (an HMAC-SHA256 secret, or an Ed25519 public key), and is the principal
//! (tenant, roles) that key maps to.
//!
//! A signature is accepted when its `Signature-Input` and `Signature` fields parse as
//! structured fields (`sfv`), its key is known, it covers every required component
//! (`@method`, `@path`, `@query` by default, and `content-digest` when the request has a
//! body), its `created` is within the skew of now and its `expires` (if any) has not passed,
//! its `alg` (if any) is the key's, and the signature over the signature base (RFC 9421
//! section 2.5) verifies, in constant time for HMAC. The body's digest is checked against
//! `Content-Digest` once the body is in; a `nonce` is used once (the caller records it).

use super::message::{query_component, signature_base, Component};
use crate::config::Errors;
use crate::config::{SignatureKeySpec, SignatureMaterial, SignaturesSpec};
use crate::security::events::Severity;
use crate::security::{AuthFailure, CredentialKind, Identity};
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use pingora::http::RequestHeader;
use sfv::{BareItem, ListEntry, Parser, SerializeValue};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const MALFORMED: AuthFailure = AuthFailure::new("signature_malformed", Severity::Medium);
const UNKNOWN_KEY: AuthFailure = AuthFailure::new("signature_unknown_key", Severity::Medium);
const INCOMPLETE: AuthFailure = AuthFailure::new("signature_incomplete", Severity::Medium);
const STALE: AuthFailure = AuthFailure::new("signature_stale", Severity::Medium);
const MISMATCH: AuthFailure = AuthFailure::new("signature_mismatch", Severity::High);

enum Material {
    Hmac(Vec<u8>),
    Ed25519(VerifyingKey),
}

impl Material {
    fn alg(&self) -> &'static str {
        match self {
            Material::Hmac(_) => "hmac-sha256",
            Material::Ed25519(_) => "ed25519",
        }
    }
}

/// The keys signatures are verified with, and the rules they are held to.
pub struct SignatureKeys {
    keys: HashMap<String, (Material, Arc<Identity>)>,
    required: Vec<String>,
    max_skew: Duration,
    pub nonce_required: bool,
}

impl SignatureKeys {
    /// How long a nonce is remembered: as long as a signature carrying it is accepted.
    pub fn nonce_window(&self) -> Duration {
        self.max_skew * 2
    }
}

/// A request whose signature verified.
#[derive(Debug)]
pub struct Verified {
    pub identity: Arc<Identity>,
    /// `(keyid, nonce)`, to be used once.
    pub nonce: Option<(String, String)>,
    /// The `Content-Digest` the signature covers, to check against the body.
    pub content_digest: Option<String>,
}

impl SignatureKeys {
    pub fn load(spec: &SignaturesSpec, errors: &mut Errors) -> Option<SignatureKeys> {
        let mut keys = HashMap::new();
        let mut failed = false;
        for (i, key) in spec.keys.iter().enumerate() {
            match material(key) {
                Ok(material) => {
                    keys.insert(key.id.clone(), (material, Arc::new(identity(key))));
                }
                Err(message) => {
                    failed = true;
                    errors.error(format!("authentication.signatures.keys[{i}]"), message);
                }
            }
        }
        (!failed).then_some(SignatureKeys {
            keys,
            required: spec.require.clone(),
            max_skew: spec.max_skew,
            nonce_required: spec.nonce_required,
        })
    }

    /// Verifies the request's signature at `now` (seconds since the epoch), and that it
    /// covers what it must: the configured components, the route's own (`also`), and
    /// `content-digest` when there is a body.
    pub fn verify(
        &self,
        request: &RequestHeader,
        also: &[String],
        now: u64,
    ) -> Result<Verified, AuthFailure> {
        let (verified, covered) = self.verify_signature(request, now)?;
        let has_body = carries_body(request);
        let missing = self
            .required
            .iter()
            .chain(also)
            .map(String::as_str)
            .chain(has_body.then_some("content-digest"))
            .any(|required| !covered.iter().any(|name| name == required));
        if missing {
            return Err(INCOMPLETE);
        }
        Ok(verified)
    }

    /// The signature alone: its key, its time, and the signature over its base. Also
    /// returns the components it covers.
    fn verify_signature(
        &self,
        request: &RequestHeader,
        now: u64,
    ) -> Result<(Verified, Vec<String>), AuthFailure> {
        let inputs = Parser::parse_dictionary(joined(request, "signature-input")?.as_bytes())
            .map_err(|_| MALFORMED)?;
        let signatures = Parser::parse_dictionary(joined(request, "signature")?.as_bytes())
            .map_err(|_| MALFORMED)?;
        // The first signature by a key Usher knows is the credential.
        let (label, input, key, material, identity) = inputs
            .iter()
            .find_map(|(label, entry)| {
                let ListEntry::InnerList(list) = entry else {
                    return None;
                };
                let keyid = list.params.get("keyid")?.as_str()?;
                let (material, identity) = self.keys.get(keyid)?;
                Some((label, list, keyid, material, identity))
            })
            .ok_or(UNKNOWN_KEY)?;
        let signature = match signatures.get(label) {
            Some(ListEntry::Item(item)) => item.bare_item.as_byte_seq().ok_or(MALFORMED)?,
            _ => return Err(MALFORMED),
        };
        let params = &input.params;
        let created = params
            .get("created")
            .and_then(BareItem::as_int)
            .ok_or(INCOMPLETE)?;
        if now.abs_diff(created.max(0) as u64) > self.max_skew.as_secs() {
            return Err(STALE);
        }
        if let Some(expires) = params.get("expires") {
            let expires = expires.as_int().ok_or(MALFORMED)?;
            if (now as i64) > expires {
                return Err(STALE);
            }
        }
        if let Some(alg) = params.get("alg") {
            if alg.as_str() != Some(material.alg()) {
                return Err(MISMATCH);
            }
        }
        let nonce = match params.get("nonce") {
            Some(nonce) => Some((
                key.to_string(),
                nonce.as_str().ok_or(MALFORMED)?.to_string(),
            )),
            None if self.nonce_required => return Err(INCOMPLETE),
            None => None,
        };
        let mut names = Vec::with_capacity(input.items.len());
        for item in &input.items {
            // Component parameters (`;sf`, `;key`, `;bs`, `;req`) are not offered.
            let name = item.bare_item.as_str().filter(|_| item.params.is_empty());
            let name = name.ok_or(MALFORMED)?;
            if names.contains(&name) {
                return Err(MALFORMED);
            }
            names.push(name);
        }
        let mut components: Vec<Component> = Vec::with_capacity(names.len());
        for name in &names {
            components.push((name, component(request, name).ok_or(INCOMPLETE)?));
        }
        // The parameters as RFC 9421 section 2.3 serializes them: from what was parsed, so
        // the base covers exactly the parameters checked above (a second member under the
        // same label, which the parser keeps instead, cannot lend its bytes).
        let params_text = serialized(input).ok_or(MALFORMED)?;
        let base = signature_base(&components, &params_text);
        let valid = match material {
            Material::Hmac(secret) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| MISMATCH)?;
                mac.update(base.as_bytes());
                mac.verify_slice(signature).is_ok()
            }
            Material::Ed25519(key) => Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(base.as_bytes(), &signature).is_ok()),
        };
        if !valid {
            return Err(MISMATCH);
        }
        let content_digest = names
            .contains(&"content-digest")
            .then(|| component(request, "content-digest"))
            .flatten();
        let verified = Verified {
            identity: Arc::clone(identity),
            nonce,
            content_digest,
        };
        Ok((verified, names.iter().map(|n| n.to_string()).collect()))
    }
}

/// Whether the request has a body (a declared length above zero, or chunked).
pub fn carries_body(request: &RequestHeader) -> bool {
    let length = request
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0)
        || request
            .headers
            .contains_key(http::header::TRANSFER_ENCODING)
}

/// Every line of a field, joined as structured fields are.
fn joined(request: &RequestHeader, name: &str) -> Result<String, AuthFailure> {
    let values: Vec<&str> = request
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().map_err(|_| MALFORMED))
        .collect::<Result<_, _>>()?;
    if values.is_empty() {
        return Err(MALFORMED);
    }
    Ok(values.join(", "))
}

/// An inner list and its parameters, serialized as a structured field.
fn serialized(list: &sfv::InnerList) -> Option<String> {
    let entries: sfv::List = vec![ListEntry::InnerList(list.clone())];
    entries.serialize_value().ok()
}

/// A covered component's value (RFC 9421 section 2): a derived component, or a field's
/// lines, each trimmed, joined by `, `. `None`: the request has no such component.
fn component(request: &RequestHeader, name: &str) -> Option<String> {
    Some(match name {
        "@method" => request.method.as_str().to_string(),
        "@path" => request.uri.path().to_string(),
        "@query" => query_component(request.uri.query()),
        "@authority" => request
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or(request.uri.authority().map(|a| a.as_str()))?
            .to_ascii_lowercase(),
        "@request-target" => match request.uri.query() {
            Some(query) => format!("{}?{query}", request.uri.path()),
            None => request.uri.path().to_string(),
        },
        name if name.starts_with('@') => return None,
        field => {
            // A line that is not visible ASCII fails the component, rather than being left
            // out of the base while it is still forwarded.
            let lines: Option<Vec<&str>> = request
                .headers
                .get_all(field)
                .iter()
                .map(|v| v.to_str().ok().map(str::trim))
                .collect();
            let lines = lines.filter(|lines| !lines.is_empty())?;
            lines.join(", ")
        }
    })
}

fn material(key: &SignatureKeySpec) -> Result<Material, String> {
    match &key.material {
        SignatureMaterial::HmacSecretFile(path) => {
            let secret = std::fs::read(path).map_err(|e| format!("cannot read \"{path}\": {e}"))?;
            let secret = secret.strip_suffix(b"\n").unwrap_or(&secret).to_vec();
            if secret.len() < 32 {
                return Err(format!(
                    "the secret in \"{path}\" is {} bytes; HMAC secrets need at least 32",
                    secret.len()
                ));
            }
            Ok(Material::Hmac(secret))
        }
        SignatureMaterial::Ed25519PublicKeyFile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read \"{path}\": {e}"))?;
            VerifyingKey::from_public_key_pem(&text)
                .map(Material::Ed25519)
                .map_err(|_| format!("\"{path}\" is not an Ed25519 public key in PEM"))
        }
    }
}

fn identity(key: &SignatureKeySpec) -> Identity {
    Identity {
        subject: key
            .subject
            .clone()
            .unwrap_or_else(|| format!("signature:{}", key.id)),
        tenant: key.tenant.clone(),
        roles: key.roles.clone(),
        venues: Vec::new(),
        source: CredentialKind::Signature,
        tier: key.tier.as_deref().map(Arc::from),
        token_id: None,
        key_id: Some(key.id.clone()),
        token_digest: None,
        forwarded: Default::default(),
    }
}

/// Whether `body` matches a `Content-Digest` value (RFC 9530; `sha-256` or `sha-512`;
/// every member Usher knows must match, and at least one must be there).
pub fn digest_matches(field: &str, body: &[u8]) -> bool {
    use sha2::{Digest, Sha512};
    let Ok(members) = Parser::parse_dictionary(field.as_bytes()) else {
        return false;
    };
    let mut checked = 0;
    for (algorithm, entry) in &members {
        let ListEntry::Item(item) = entry else {
            return false;
        };
        let Some(expected) = item.bare_item.as_byte_seq() else {
            return false;
        };
        let actual = match algorithm.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&actual[..], &expected[..])) {
            return false;
        }
        checked += 1;
    }
    checked > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    const RFC_SECRET: &str =
        "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";
    const RFC_ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n-----END PUBLIC KEY-----\n";

    /// The test request of RFC 9421 appendix B.2 with `fields`.
    fn rfc_request(fields: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build("POST", b"/foo?param=Value&Pet=dog", None).unwrap();
        for (name, value) in [
            ("host", "example.com"),
            ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("content-type", "application/json"),
            ("content-digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"),
            ("content-length", "18"),
        ]
        .iter()
        .chain(fields)
        {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    fn keys(id: &str, material: Material, required: &[&str]) -> SignatureKeys {
        let identity = Identity {
            subject: format!("signature:{id}"),
            tenant: "t".into(),
            roles: vec![],
            venues: vec![],
            source: CredentialKind::Signature,
            tier: None,
            token_id: None,
            key_id: None,
            token_digest: None,
            forwarded: Default::default(),
        };
        SignatureKeys {
            keys: HashMap::from([(id.to_string(), (material, Arc::new(identity)))]),
            required: required.iter().map(|r| r.to_string()).collect(),
            max_skew: Duration::from_secs(300),
            nonce_required: false,
        }
    }

    const CREATED: u64 = 1618884473;

    // RFC 9421 appendix B.2.5: HMAC-SHA256 with test-shared-secret.
    #[test]
    fn the_rfc_9421_hmac_example_verifies() {
        let secret = STANDARD.decode(RFC_SECRET).unwrap();
        let keys = keys("test-shared-secret", Material::Hmac(secret), &[]);
        let request = rfc_request(&[
            (
                "signature-input",
                r#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
            ),
            (
                "signature",
                "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
            ),
        ]);
        let (verified, covered) = keys.verify_signature(&request, CREATED).unwrap();
        assert_eq!(verified.identity.subject, "signature:test-shared-secret");
        assert_eq!(covered, ["date", "@authority", "content-type"]);
        // It leaves the body uncovered, so as a credential it is not enough.
        assert_eq!(keys.verify(&request, &[], CREATED).unwrap_err(), INCOMPLETE);
        // Out of the skew, either way.
        assert_eq!(
            keys.verify_signature(&request, CREATED + 301).unwrap_err(),
            STALE
        );
        assert_eq!(
            keys.verify_signature(&request, CREATED - 301).unwrap_err(),
            STALE
        );
        // One changed covered field: a mismatch.
        let mut changed = rfc_request(&[
            (
                "signature-input",
                r#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
            ),
            (
                "signature",
                "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
            ),
        ]);
        changed.insert_header("content-type", "text/plain").unwrap();
        assert_eq!(
            keys.verify_signature(&changed, CREATED).unwrap_err(),
            MISMATCH
        );
    }

    // RFC 9421 appendix B.2.6: Ed25519 with test-key-ed25519.
    #[test]
    fn the_rfc_9421_ed25519_example_verifies() {
        let key = VerifyingKey::from_public_key_pem(RFC_ED25519_PUBLIC).unwrap();
        let keys = keys(
            "test-key-ed25519",
            Material::Ed25519(key),
            &["@method", "@path"],
        );
        let request = rfc_request(&[
            ("signature-input", r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#),
            ("signature", "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"),
        ]);
        assert!(keys.verify_signature(&request, CREATED).is_ok());
        let unknown = rfc_request(&[
            (
                "signature-input",
                r#"sig-b26=("date");created=1618884473;keyid="someone-else""#,
            ),
            ("signature", "sig-b26=:AAAA:"),
        ]);
        assert_eq!(
            keys.verify(&unknown, &[], CREATED).unwrap_err(),
            UNKNOWN_KEY
        );
        // A second member under the same label (the parser keeps the last) cannot carry a
        // fresh `created` past a captured signature over the first.
        let replayed = rfc_request(&[
            ("signature-input", r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519", sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1700000000;keyid="test-key-ed25519""#),
            ("signature", "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"),
        ]);
        assert_eq!(
            keys.verify_signature(&replayed, 1700000000).unwrap_err(),
            MISMATCH
        );
    }

    #[test]
    fn digests_match_their_body_only() {
        // RFC 9530 appendix B.
        let field = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
        assert!(digest_matches(field, br#"{"hello": "world"}"#));
        assert!(!digest_matches(field, br#"{"hello": "world!"}"#));
        assert!(!digest_matches("md5=:AAAA:", b""));
        assert!(!digest_matches("garbage", b""));
    }
}
