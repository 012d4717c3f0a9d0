//! Client-sent identity headers never reach an upstream.
//!
//! Upstreams trust these headers because only the gateway may set them (the audit's
//! CVE-GATE-003: a client-settable `x-tenant-id`). Every header in the configured deny-list
//! (a built-in list that routes.yaml can extend, never shrink) is removed from every
//! request, in any letter case and however often it appears, before anything else looks at
//! the request. Headers named in `Connection` are removed by Pingora before Usher injects its
//! own, so a client cannot use `Connection` to make Usher drop them.

use crate::config::IdentitySpec;
use pingora::http::RequestHeader;

/// Removes every denied header; returns how many distinct names were removed.
pub fn strip(request: &mut RequestHeader, spec: &IdentitySpec) -> usize {
    let denied: Vec<http::HeaderName> = request
        .headers
        .keys()
        .filter(|name| is_denied(name.as_str(), spec))
        .cloned()
        .collect();
    for name in &denied {
        while request.remove_header(name).is_some() {}
    }
    denied.len()
}

/// Header names arrive lower-cased from the `http` crate.
fn is_denied(name: &str, spec: &IdentitySpec) -> bool {
    spec.strip_headers.iter().any(|denied| denied == name)
        || spec
            .strip_prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn strips_every_copy_in_any_case_including_configured_names() {
        let config = config::load(
            "t.yaml",
            "listeners: { public: { address: \"127.0.0.1:1\" }, admin: { address: \"127.0.0.1:2\" } }\nidentity: { strip_headers: [x-debug-user, x-legacy-*] }\n",
        )
        .unwrap();
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in [
            ("X-Tenant-ID", "evil"),
            ("x-tenant-id", "evil2"),
            ("X-Internal-Secret", "1"),
            ("X-Gateway-Forwarded", "true"),
            ("X-Debug-User", "root"),
            ("X-Legacy-Auth", "1"),
            ("Accept", "application/json"),
        ] {
            request.append_header(name, value).unwrap();
        }
        assert_eq!(strip(&mut request, &config.identity), 5);
        assert_eq!(request.headers.len(), 1);
        assert!(request.headers.get("accept").is_some());
    }
}
