//! Which bucket a request counts against.
//!
//! A key is built only from what a client cannot vary at will: the verified identity, the
//! client address Usher worked out itself (through trusted proxies only, so a rotated
//! `X-Forwarded-For` changes nothing), and values taken from the normalized path. Values are
//! lower-cased and trimmed, IPv6 clients are grouped by /64 (one host owns a whole /64), and
//! a query parameter is read by name, so added parameters are noise. A new token for the same
//! user has the same `sub`, hence the same bucket.
//!
//! Unauthenticated callers have no identity: where a policy keys on tenant, user or API key,
//! the client address stands in for them.

use crate::config::{KeyPart, PolicySpec, RouteLimit};
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
                CredentialKind::ApiKey => ("k", Some(identity.subject.clone())),
                CredentialKind::Jwt => ("u", Some(identity.subject.clone())),
            },
            (KeyPart::Tenant | KeyPart::User | KeyPart::ApiKey, None) | (KeyPart::Client, _) => {
                if client_added {
                    continue;
                }
                client_added = true;
                ("c", Some(client_group(source.client)))
            }
            (KeyPart::Header(name), _) => (
                "h",
                source
                    .headers
                    .get(name.as_str())
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_lowercase()),
            ),
            (KeyPart::Param(_), _) => (
                "p",
                params
                    .next()
                    .and_then(|&index| source.params.get(index))
                    .map(|v| v.to_lowercase()),
            ),
            (KeyPart::Query(name), _) => (
                "q",
                source
                    .query
                    .and_then(|q| query_value(q, name))
                    .map(|v| v.trim().to_lowercase()),
            ),
        };
        key.push('|');
        key.push_str(tag);
        key.push('=');
        match value {
            Some(value) => push_escaped(&mut key, &value),
            None => key.push('-'),
        }
    }
    key
}

/// The client's bucket name: its IPv4 address, or its IPv6 /64.
fn client_group(client: Option<IpAddr>) -> String {
    match client {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_string(),
    }
}

/// The first value of query parameter `name`, percent-decoded.
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
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
        let digest = Sha256::digest(value.as_bytes());
        key.push('#');
        for byte in &digest[..16] {
            let _ = write!(key, "{byte:02x}");
        }
        return;
    }
    for c in value.chars() {
        match c {
            '|' | '=' | '{' | '}' | '%' | '#' => {
                let _ = write!(key, "%{:02X}", c as u32);
            }
            c if c.is_control() || c.is_whitespace() => {
                let _ = write!(key, "%{:02X}", c as u32);
            }
            c => key.push(c),
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
        }
    }

    fn identity(sub: &str, source: CredentialKind) -> Identity {
        Identity {
            subject: sub.into(),
            tenant: "acme".into(),
            roles: vec![],
            venues: vec![],
            source,
            tier: None,
            token_id: None,
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
    fn case_noise_and_separators_do_not_make_new_buckets() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-device", " Phone|1 ".parse().unwrap());
        let p = policy(vec![
            KeyPart::Param("eventId".into()),
            KeyPart::Query("seat".into()),
            KeyPart::Header("x-device".into()),
        ]);
        let params = vec!["EVT-9".to_string()];
        let source = KeySource {
            identity: None,
            client: None,
            headers: &headers,
            params: &params,
            query: Some("utm=1&seat=A%2012&seat=B"),
        };
        assert_eq!(
            key_for(&p, vec![0], &source),
            "p|p=evt-9|q=a%2012|h=phone%7C1"
        );
        let no_query = KeySource {
            query: Some("utm=2"),
            ..source
        };
        assert_eq!(key_for(&p, vec![0], &no_query), "p|p=evt-9|q=-|h=phone%7C1");
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
