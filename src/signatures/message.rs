//! RFC 9421 HTTP Message Signatures, the parts Usher needs to sign what it forwards: the
//! signature base (section 2.5) over derived components and header fields, the signature
//! parameters as a structured field (serialized with `sfv`), and RFC 9530's
//! `Content-Digest`. Checked against the RFC's own examples (appendix B.2.6) and RFC 9530
//! appendix B.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sfv::{RefBareItem, RefListSerializer};
use sha2::{Digest, Sha256};

/// One covered component and its value, as the signature base lists it: a derived
/// component (`@method`) or a lower-cased field name.
pub type Component<'a> = (&'a str, String);

/// What a signature's parameters say besides its components.
pub struct Params<'a> {
    pub created: u64,
    pub keyid: &'a str,
    pub alg: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

/// The signature parameters of `components`:
/// `("@method" …);created=…;keyid="…";alg="…";nonce="…"`.
pub fn signature_params(components: &[Component<'_>], params: &Params<'_>) -> String {
    let mut out = String::new();
    let mut serialize = || -> Result<(), &'static str> {
        let mut list = RefListSerializer::new(&mut out).open_inner_list();
        for (name, _) in components {
            list = list.inner_list_bare_item(&RefBareItem::String(name))?;
        }
        let mut list = list
            .close_inner_list()
            .parameter("created", &RefBareItem::Integer(params.created as i64))?
            .parameter("keyid", &RefBareItem::String(params.keyid))?;
        if let Some(alg) = params.alg {
            list = list.parameter("alg", &RefBareItem::String(alg))?;
        }
        if let Some(nonce) = params.nonce {
            list = list.parameter("nonce", &RefBareItem::String(nonce))?;
        }
        let _ = list;
        Ok(())
    };
    // Names, key ids and algorithms are Usher's own, printable ASCII: this cannot fail.
    serialize().expect("signature parameters are printable ASCII");
    out
}

/// The signature base (RFC 9421 section 2.5): each component on its line, then the
/// parameters.
pub fn signature_base(components: &[Component<'_>], params: &str) -> String {
    let mut base = String::new();
    for (name, value) in components {
        base.push_str(&format!("\"{name}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {params}"));
    base
}

/// RFC 9530 `Content-Digest` of `body`, with SHA-256.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// `@query` as RFC 9421 derives it: `?` and the query, `?` alone without one.
pub fn query_component(query: Option<&str>) -> String {
    format!("?{}", query.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::{Signer, SigningKey};

    // RFC 9421 appendix B.2.6: the test request, key test-key-ed25519 (appendix B.1.4, its
    // private scalar as in the RFC's JWK), and the signature the RFC prints.
    #[test]
    fn the_rfc_9421_ed25519_example_signs_to_the_rfc_signature() {
        let components: Vec<Component> = vec![
            ("date", "Tue, 20 Apr 2021 02:07:55 GMT".into()),
            ("@method", "POST".into()),
            ("@path", "/foo".into()),
            ("@authority", "example.com".into()),
            ("content-type", "application/json".into()),
            ("content-length", "18".into()),
        ];
        let params = signature_params(
            &components,
            &Params {
                created: 1618884473,
                keyid: "test-key-ed25519",
                alg: None,
                nonce: None,
            },
        );
        assert_eq!(
            params,
            r#"("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#
        );
        let base = signature_base(&components, &params);
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
            .unwrap()
            .try_into()
            .unwrap();
        let signature = SigningKey::from_bytes(&seed).sign(base.as_bytes());
        assert_eq!(
            STANDARD.encode(signature.to_bytes()),
            "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
        );
    }

    // RFC 9530 appendix B.1.
    #[test]
    fn the_rfc_9530_content_digest_example() {
        assert_eq!(
            content_digest(b"{\"hello\": \"world\"}"),
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
        );
        assert_eq!(query_component(None), "?");
        assert_eq!(query_component(Some("a=1")), "?a=1");
    }
}
