//! Client-sent identity headers never reach an upstream.
//!
//! Upstreams trust these headers because only the gateway may set them (the audit's
//! CVE-GATE-003: a client-settable `x-tenant-id`). They are removed from every request, in
//! any letter case and however often they appear, before anything is forwarded.

use pingora::http::RequestHeader;

const DENIED: &[&str] = &[
    "x-tenant-id",
    "x-tenant-source",
    "x-user-id",
    "x-user-roles",
    "x-venue-ids",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
];
const DENIED_PREFIXES: &[&str] = &["x-internal-", "x-gateway-"];

/// Removes every denied header; returns how many distinct names were removed.
pub fn strip(request: &mut RequestHeader) -> usize {
    let denied: Vec<http::HeaderName> = request
        .headers
        .keys()
        .filter(|name| is_denied(name.as_str()))
        .cloned()
        .collect();
    for name in &denied {
        while request.remove_header(name).is_some() {}
    }
    denied.len()
}

/// Header names arrive lower-cased from the `http` crate.
fn is_denied(name: &str) -> bool {
    DENIED.contains(&name)
        || DENIED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_copy_in_any_case() {
        let mut request = RequestHeader::build("GET", b"/", None).unwrap();
        request.append_header("X-Tenant-ID", "evil").unwrap();
        request.append_header("x-tenant-id", "evil2").unwrap();
        request.append_header("X-Internal-Secret", "1").unwrap();
        request
            .append_header("X-Gateway-Forwarded", "true")
            .unwrap();
        request.append_header("Accept", "application/json").unwrap();
        assert_eq!(strip(&mut request), 3);
        assert!(request.headers.get("x-tenant-id").is_none());
        assert!(request.headers.get("x-internal-secret").is_none());
        assert_eq!(request.headers.len(), 1);
    }
}
