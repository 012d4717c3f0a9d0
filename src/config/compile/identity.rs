//! The `identity` section: the client headers removed from every request, and the proxies
//! whose `X-Forwarded-For` is believed.

use super::Compiler;
use crate::config::raw::RawIdentity;
use crate::config::IdentitySpec;
use std::str::FromStr;

/// Client headers that carry identity or steer internal routing: removed from every request,
/// whatever routes.yaml says. `identity.strip_headers` adds to them.
const STRIPPED_HEADERS: &[&str] = &[
    "x-tenant-id",
    "x-tenant-source",
    "x-user-id",
    "x-user-roles",
    "x-venue-ids",
    "x-original-ip",
    "x-approved-by",
    // Headers that make a framework route by another URL or method than the one Usher
    // routed by and checked (a POST becoming a DELETE behind a route that allows POST):
    // X-Original-URL and X-Rewrite-URL (IIS URL Rewrite, Symfony before 2.8.44/3.4.14),
    // X-Original-URI and X-Original-Method (nginx auth_request setups), X-Forwarded-Uri and
    // X-Forwarded-Method (Traefik forwardAuth, read by auth services such as Authelia),
    // X-HTTP-Method-Override (Google APIs, Express method-override, Symfony, Laravel,
    // Jersey), X-HTTP-Method (Microsoft OData, ASP.NET) and X-Method-Override (IBM,
    // Express method-override).
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-method",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // Forwarding headers Usher does not set itself (it overwrites X-Forwarded-For and
    // X-Forwarded-Proto): a client's copy would be taken for the gateway's word.
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
];
const STRIPPED_PREFIXES: &[&str] = &["x-internal-", "x-gateway-"];

impl Compiler<'_> {
    pub(super) fn identity(&mut self, raw: &RawIdentity) -> IdentitySpec {
        let mut strip_headers: Vec<String> =
            STRIPPED_HEADERS.iter().map(|h| h.to_string()).collect();
        let mut strip_prefixes: Vec<String> =
            STRIPPED_PREFIXES.iter().map(|h| h.to_string()).collect();
        for (index, name) in raw.strip_headers.iter().enumerate() {
            let name = name.to_ascii_lowercase();
            let (bare, prefix) = match name.strip_suffix('*') {
                Some(bare) => (bare.to_string(), true),
                None => (name.clone(), false),
            };
            if bare.is_empty() || http::HeaderName::from_str(&bare).is_err() {
                self.error(
                    format!("identity.strip_headers[{index}]"),
                    format!("invalid header name \"{name}\" (end with * for a prefix)"),
                );
            } else if prefix {
                strip_prefixes.push(bare);
            } else {
                strip_headers.push(bare);
            }
        }
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(index, text)| {
                let parsed = text
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                if parsed.is_err() {
                    self.error(
                        format!("identity.trusted_proxies[{index}]"),
                        format!("invalid address or CIDR \"{text}\", such as 10.0.0.0/8"),
                    );
                }
                parsed.ok()
            })
            .collect();
        IdentitySpec {
            strip_headers,
            strip_prefixes,
            trusted_proxies,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile::testing::section;

    #[test]
    fn stripped_headers_add_to_the_built_in_list() {
        let (identity, errors) = section(
            "{ strip_headers: [X-Debug-User, x-legacy-*], trusted_proxies: [10.0.0.0/8, 192.0.2.10] }",
            |c, raw| c.identity(raw),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(identity.strip_headers.iter().any(|h| h == "x-tenant-id"));
        assert_eq!(identity.strip_headers.last().unwrap(), "x-debug-user");
        assert_eq!(
            identity.strip_prefixes,
            ["x-internal-", "x-gateway-", "x-legacy-"]
        );
        assert_eq!(identity.trusted_proxies.len(), 2);
        for (yaml, expected) in [
            ("strip_headers: [\"bad header\"]", "identity.strip_headers[0]: invalid header name \"bad header\" (end with * for a prefix)"),
            ("strip_headers: [\"*\"]", "identity.strip_headers[0]: invalid header name \"*\" (end with * for a prefix)"),
            ("trusted_proxies: [10.0.0.0/33]", "identity.trusted_proxies[0]: invalid address or CIDR \"10.0.0.0/33\", such as 10.0.0.0/8"),
        ] {
            assert_eq!(section(yaml, |c, raw| c.identity(raw)).1, [expected], "{yaml}");
        }
    }
}
