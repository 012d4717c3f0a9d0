//! Which bucket a request counts against.
//!
//! Identity parts come only from what a client cannot vary at will: the verified identity
//! and the client address Usher worked out itself (through trusted proxies only, so a
//! rotated `X-Forwarded-For` changes nothing). A new token for the same user has the same
//! `sub`, hence the same bucket; IPv6 clients are grouped by /64 (one host owns a whole /64).
//!
//! Path parameters are read from the normalized path, cut at `;` (servlet containers drop
//! `;...` parameters), percent-decoded, trimmed and lower-cased, so spelling variants of one
//! value share a bucket. Header and query values are chosen by the client: every value of
//! the name counts (a repeated name cannot pick the one that is keyed), added parameters are
//! noise, and the values are hashed, so a credential used as a key never reaches Redis in
//! clear. A policy keyed on them alone limits what the client says, not who it is: pair them
//! with an identity or `client` part.
//!
//! Unauthenticated callers have no identity: where a policy keys on tenant, user or API key,
//! the client address stands in for them.

use crate::config::{KeyPart, PolicySpec, RouteLimit};
use crate::filters::client_address;
use crate::security::{CredentialKind, Identity};
use sha2::{Digest, Sha256};
use std::fmt::Write;
use std::net::IpAddr;

/// Values longer than this are replaced by a digest, so keys stay short.
const MAX_VALUE: usize = 96;

/// What a key may be built from, for one request.
pub struct KeySource<'a> {
    pub identity: Option<&'a Identity>,
    pub client: Option<IpAddr>,
    pub headers: &'a http::HeaderMap,
    pub params: &'a [String],
    pub query: Option<&'a str>,
}

/// The bucket's name: the policy, then each part as `tag=value`.
pub fn bucket_key(policy: &PolicySpec, attached: &RouteLimit, source: &KeySource<'_>) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(&policy.name);
    let mut params = attached.params.iter();
    let mut client_added = false;
    for part in &policy.key {
        let (tag, value): (&str, Option<String>) = match (part, source.identity) {
            (KeyPart::Tenant, Some(identity)) => ("t", Some(identity.tenant.clone())),
            (KeyPart::User, Some(identity)) => ("u", Some(identity.subject.clone())),
            (KeyPart::ApiKey, Some(identity)) => match identity.source {
                CredentialKind::ApiKey | CredentialKind::Signature => {
                    ("k", Some(identity.subject.clone()))
                }
                CredentialKind::Jwt => ("u", Some(identity.subject.clone())),
            },
            (KeyPart::Tenant | KeyPart::User | KeyPart::ApiKey, None) | (KeyPart::Client, _) => {
                if client_added {
                    continue;
                }
                client_added = true;
                ("c", Some(client_group(source.client)))
            }
            (KeyPart::Header(name), _) => {
                let values: Vec<String> = source
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_lowercase())
                    .collect();
                ("h", (!values.is_empty()).then(|| digest(&values.join(","))))
            }
            (KeyPart::Param(_), _) => (
                "p",
                params
                    .next()
                    .and_then(|&index| source.params.get(index))
                    .map(|v| param_value(v)),
            ),
            (KeyPart::Query(name), _) => {
                let values = source
                    .query
                    .map(|q| query_values(q, name))
                    .unwrap_or_default();
                ("q", (!values.is_empty()).then(|| digest(&values.join("&"))))
            }
        };
        key.push('|');
        key.push_str(tag);
        key.push('=');
        match (tag, value) {
            (_, None) => key.push('-'),
            // Digests: `#` and hex, which no escaped value can imitate.
            ("h" | "q", Some(digest)) => key.push_str(&digest),
            (_, Some(value)) => push_escaped(&mut key, &value),
        }
    }
    key
}

/// The client's bucket name: its IPv4 address, or its IPv6 /64.
fn client_group(client: Option<IpAddr>) -> String {
    match client {
        // Without `Display`'s machinery, as the forwarding headers write it.
        Some(v4 @ IpAddr::V4(_)) => client_address::text(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => client_address::text(v4.into()),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_string(),
    }
}

/// Every value of query parameter `name`, percent-decoded, trimmed and lower-cased.
fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value).trim().to_lowercase())
        })
        .collect()
}

/// A path parameter as the upstream most likely reads it.
fn param_value(raw: &str) -> String {
    let value = raw.split(';').next().unwrap_or_default();
    percent_decode(value).trim().to_lowercase()
}

/// `#` and the first 16 bytes of the value's SHA-256, in hex.
fn digest(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(33);
    out.push('#');
    for byte in &digest[..16] {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `value` so that no value can imitate a separator or a Redis hash tag.
fn push_escaped(key: &mut String, value: &str) {
    if value.len() > MAX_VALUE {
        key.push_str(&digest(value));
        return;
    }

    for c in value.chars() {
        if matches!(c, '|' | '=' | '{' | '}' | '%' | '#') || c.is_control() || c.is_whitespace() {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(key, "%{byte:02X}");
            }
        } else {
            key.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreFailure;
    use std::sync::Arc;

    fn policy(parts: Vec<KeyPart>) -> PolicySpec {
        PolicySpec {
            name: Arc::from("p"),
            limit: 1,
            window: std::time::Duration::from_secs(1),
            key: parts,
            block: None,
            bot_after: None,
            on_store_failure: StoreFailure::Local,
            tiered: true,
            amount: None,
        }
    }

    fn identity(sub: &str, source: CredentialKind) -> Identity {
        Identity {
            source,
            ..Identity::caller(sub, "acme", &[])
        }
    }

    fn key_for(policy: &PolicySpec, params: Vec<usize>, source: &KeySource<'_>) -> String {
        bucket_key(policy, &RouteLimit { policy: 0, params }, source)
    }

    #[test]
    fn identity_parts_fall_back_to_the_client_once() {
        let headers = http::HeaderMap::new();
        let p = policy(vec![KeyPart::Tenant, KeyPart::User, KeyPart::Client]);
        let anonymous = KeySource {
            identity: None,
            client: Some("10.1.2.3".parse().unwrap()),
            headers: &headers,
            params: &[],
            query: None,
        };
        assert_eq!(key_for(&p, vec![], &anonymous), "p|c=10.1.2.3");
        let alice = identity("alice", CredentialKind::Jwt);
        let known = KeySource {
            identity: Some(&alice),
            ..anonymous
        };
        assert_eq!(key_for(&p, vec![], &known), "p|t=acme|u=alice|c=10.1.2.3");
    }

    #[test]
    fn spelling_variants_of_one_value_share_a_bucket() {
        let headers = http::HeaderMap::new();
        let p = policy(vec![KeyPart::Param("eventId".into())]);
        let key = |raw: &str| {
            let params = vec![raw.to_string()];
            let source = KeySource {
                identity: None,
                client: None,
                headers: &headers,
                params: &params,
                query: None,
            };
            key_for(&p, vec![0], &source)
        };
        for variant in [
            "EVT-9",
            "evt-9;jsessionid=1",
            "evt-9;2",
            "%45VT-9",
            "evt-9%20",
        ] {
            assert_eq!(key(variant), "p|p=evt-9", "{variant}");
        }
        assert_eq!(key("a|b=c"), "p|p=a%7Cb%3Dc", "separators are escaped");
        assert_eq!(
            key("a\u{2028}b"),
            "p|p=a%E2%80%A8b",
            "escapes are UTF-8 bytes"
        );
    }

    #[test]
    fn header_and_query_values_count_all_repeats_and_are_hashed() {
        let p = policy(vec![
            KeyPart::Query("seat".into()),
            KeyPart::Header("x-device".into()),
        ]);
        let key = |query: &str, devices: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for device in devices {
                headers.append("x-device", device.parse().unwrap());
            }
            let source = KeySource {
                identity: None,
                client: None,
                headers: &headers,
                params: &[],
                query: Some(query),
            };
            key_for(&p, vec![], &source)
        };
        let base = key("utm=1&seat=A%2012", &[" Phone "]);
        assert_eq!(
            base,
            key("seat=a 12&utm=2", &["phone"]),
            "noise, case and spaces"
        );
        assert_ne!(
            base,
            key("seat=a 12&seat=b", &["phone"]),
            "a repeat cannot hide"
        );
        assert_ne!(base, key("seat=a 12", &["phone", "tablet"]));
        assert!(!base.contains("phone") && !base.contains("12"), "{base}");
        assert!(key("utm=2", &[]).ends_with("|q=-|h=-"));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64() {
        let a = client_group(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = client_group(Some("2001:db8:1:2:bbbb::7".parse().unwrap()));
        assert_eq!(a, b);
        assert_eq!(
            client_group(Some("::ffff:10.0.0.1".parse().unwrap())),
            "10.0.0.1"
        );
    }

    #[test]
    fn api_keys_and_long_values() {
        let headers = http::HeaderMap::new();
        let partner = identity("api-key:partner", CredentialKind::ApiKey);
        let p = policy(vec![KeyPart::ApiKey, KeyPart::Query("q".into())]);
        let long = format!("q={}", "x".repeat(500));
        let source = KeySource {
            identity: Some(&partner),
            client: None,
            headers: &headers,
            params: &[],
            query: Some(&long),
        };
        let key = key_for(&p, vec![], &source);
        assert!(key.starts_with("p|k=api-key:partner|q=#"), "{key}");
        assert_eq!(key.len(), "p|k=api-key:partner|q=#".len() + 32);
    }
}
