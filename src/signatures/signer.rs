//! Usher's own signature on what it forwards to upstreams with `sign_requests` (shipped:
//! the minting pool), so a service can refuse anything that did not pass Usher's checks.
//! Each request is signed per RFC 9421 with Ed25519, as label `usher`, over:
//!
//! `@method`, `@path`, `@query`, `content-digest` (RFC 9530 SHA-256 of the body, set by
//! Usher; only when there is a body), each identity header Usher injected and is present
//! (`x-tenant-id`, `x-tenant-source`, `x-user-id`, `x-user-roles`, `x-approved-by`), and
//! `x-request-id`; with `created`, `keyid`, `alg="ed25519"` and a random `nonce`.
//!
//! Keys are read with the environment (startup, every reload) from PKCS#8 PEM files, each
//! under its id; one signs, and every configured key is published (a JWK set at the admin
//! listener's `/signing-keys`), so a key rotates by adding the new one, making it active,
//! then removing the old one once services have fetched the new set.

use super::message::{
    content_digest, query_component, signature_base, signature_params, Component, Params,
};
use crate::config::{Config, Errors};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey};
use pingora::http::RequestHeader;
use std::time::{SystemTime, UNIX_EPOCH};

/// What [`Signer::sign`] writes: `content-digest` (for a body), `signature-input` and
/// `signature`.
pub const MOST_WRITTEN: usize = 3;

/// The headers Usher sets and signs, when present, in this order.
const SIGNED_HEADERS: [&str; 6] = [
    "x-tenant-id",
    "x-tenant-source",
    "x-user-id",
    "x-user-roles",
    "x-approved-by",
    "x-request-id",
];

pub struct Signer {
    /// `(id, key)`; `active` signs.
    keys: Vec<(String, SigningKey)>,
    active: usize,
}

impl Signer {
    pub fn load(config: &Config, errors: &mut Errors) -> Option<Signer> {
        let spec = config.signing.as_ref()?;
        let mut keys = Vec::new();
        for (i, (id, file)) in spec.keys.iter().enumerate() {
            match read_key(file) {
                Ok(key) => keys.push((id.clone(), key)),
                Err(message) => {
                    errors.error(format!("signing.keys[{i}].private_key_file"), message)
                }
            }
        }
        (keys.len() == spec.keys.len()).then_some(Signer {
            keys,
            active: spec.active,
        })
    }

    /// Signs `request` as it will be sent, `body` being its whole body, adding at most
    /// [`MOST_WRITTEN`] headers.
    pub fn sign(&self, request: &mut RequestHeader, body: &[u8]) -> pingora::Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sign_at(request, body, now)
    }

    fn sign_at(
        &self,
        request: &mut RequestHeader,
        body: &[u8],
        created: u64,
    ) -> pingora::Result<()> {
        // Only Usher's own values are signed and sent: a client's copies go.
        for name in ["signature", "signature-input", "content-digest"] {
            request.remove_header(name);
        }
        if !body.is_empty() {
            request.insert_header("content-digest", content_digest(body))?;
        }
        let mut components: Vec<Component> = vec![
            ("@method", request.method.as_str().to_string()),
            ("@path", request.uri.path().to_string()),
            ("@query", query_component(request.uri.query())),
        ];
        let present = ["content-digest"].into_iter().chain(SIGNED_HEADERS);
        for name in present {
            if let Some(value) = request.headers.get(name).and_then(|v| v.to_str().ok()) {
                components.push((name, value.trim().to_string()));
            }
        }
        let (id, key) = &self.keys[self.active];
        // Each signature is unique, so a service that remembers nonces refuses a copy of
        // a forwarded request replayed inside the cluster.
        let nonce = format!("{:032x}", rand::random::<u128>());
        let params = signature_params(
            &components,
            &Params {
                created,
                keyid: id,
                alg: Some("ed25519"),
                nonce: Some(&nonce),
            },
        );
        let signature = key.sign(signature_base(&components, &params).as_bytes());
        request.insert_header("signature-input", format!("usher={params}"))?;
        request.insert_header(
            "signature",
            format!("usher=:{}:", STANDARD.encode(signature.to_bytes())),
        )?;
        Ok(())
    }

    /// Every configured key's public half, as a JWK set (RFC 8037 `OKP`).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|(id, key)| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "kid": id,
                    "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                    "alg": "EdDSA",
                    "use": "sig",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn read_key(file: &str) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read \"{file}\": {e}"))?;
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| format!("\"{file}\" is not a PEM file"))?;
    SigningKey::from_pkcs8_der(&der)
        .map_err(|_| format!("\"{file}\" is not an Ed25519 private key (PKCS#8 PEM, as openssl genpkey -algorithm ed25519 writes)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    #[test]
    fn a_signature_covers_what_usher_set_and_verifies() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let signer = Signer {
            keys: vec![("k1".into(), key.clone())],
            active: 0,
        };
        let mut request = RequestHeader::build("POST", b"/admin/batch-mint?dry=1", None).unwrap();
        request.insert_header("x-tenant-id", "t1").unwrap();
        request.insert_header("x-user-id", "alice").unwrap();
        request.insert_header("signature", "forged=:AA==:").unwrap();
        signer.sign_at(&mut request, b"{}", 1700000000).unwrap();
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        let input = header("signature-input");
        assert!(
            input.starts_with(r#"usher=("@method" "@path" "@query" "content-digest" "x-tenant-id" "x-user-id");created=1700000000;keyid="k1";alg="ed25519";nonce=""#),
            "{input}"
        );
        let base = format!(
            "\"@method\": POST\n\"@path\": /admin/batch-mint\n\"@query\": ?dry=1\n\"content-digest\": {}\n\"x-tenant-id\": t1\n\"x-user-id\": alice\n\"@signature-params\": {}",
            content_digest(b"{}"),
            header("signature-input").trim_start_matches("usher=")
        );
        let signature = header("signature");
        let bytes = STANDARD
            .decode(
                signature
                    .trim_start_matches("usher=:")
                    .trim_end_matches(':'),
            )
            .unwrap();
        let signature = Signature::from_slice(&bytes).unwrap();
        assert!(key
            .verifying_key()
            .verify(base.as_bytes(), &signature)
            .is_ok());
        assert_eq!(signer.jwks()["keys"][0]["kid"], "k1");
    }

    /// `proxy::attempt` reserves [`MOST_WRITTEN`] headers for a signature: what signing a
    /// request with a body adds.
    #[test]
    fn signing_adds_the_headers_it_counts() {
        let signer = Signer {
            keys: vec![("k1".into(), SigningKey::from_bytes(&[7; 32]))],
            active: 0,
        };
        let mut request = RequestHeader::build("POST", b"/admin/batch-mint", None).unwrap();
        request.insert_header("x-tenant-id", "t1").unwrap();
        let before = request.headers.len();
        signer.sign_at(&mut request, b"{}", 1700000000).unwrap();
        assert_eq!(request.headers.len() - before, MOST_WRITTEN);
    }
}
