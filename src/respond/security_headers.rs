//! Headers every response carries, whoever made it: no MIME sniffing, no framing, no
//! referrer leaks, HSTS when the listener is TLS; and no `Server` or `X-Powered-By` from
//! upstreams, which only tell attackers what to try. Gateway-made responses also carry a
//! strict Content-Security-Policy (they are JSON, never meant to run anything).

use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::*;

/// Every response's, whatever its listener.
static EVERY_RESPONSE: [(HeaderName, HeaderValue); 3] = [
    (
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    ),
    (
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    ),
    (
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    ),
];
static STRICT_TRANSPORT_SECURITY: HeaderName = HeaderName::from_static("strict-transport-security");
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");
pub const GATEWAY_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers an upstream's answer loses at the edge: those above, and its own
/// `Access-Control-*` headers, since Usher's CORS policy is the only one (filters/cors.rs):
/// a permissive upstream cannot open a route that Usher keeps closed.
pub fn strip_upstream(response: &mut ResponseHeader) {
    // One removal takes every value of a name, so a pass per stripped name (most answers
    // have one, `Server`) and no list of them to allocate.
    while let Some(name) = response.headers.keys().find(|name| stripped(name)).cloned() {
        response.remove_header(&name);
    }
}

fn stripped(name: &HeaderName) -> bool {
    *name == http::header::SERVER
        || name.as_str() == "x-powered-by"
        || name.as_str().starts_with("access-control-")
}

/// How many headers [`apply`] writes.
pub fn count(tls: bool) -> usize {
    EVERY_RESPONSE.len() + usize::from(tls)
}

pub fn apply(response: &mut ResponseHeader, tls: bool) -> Result<()> {
    for (name, value) in &EVERY_RESPONSE {
        response.insert_header_static(name, value.clone())?;
    }
    if tls {
        response.insert_header_static(&STRICT_TRANSPORT_SECURITY, HSTS)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_loses_every_value_of_what_is_stripped_and_keeps_the_rest() {
        let mut response = ResponseHeader::build(200, None).unwrap();
        for (name, value) in [
            ("Server", "nginx"),
            ("Content-Type", "application/json"),
            ("X-Powered-By", "Express"),
            ("Access-Control-Allow-Origin", "*"),
            ("Vary", "Origin"),
            ("Access-Control-Expose-Headers", "a"),
            ("Access-Control-Expose-Headers", "b"),
        ] {
            response.append_header(name, value).unwrap();
        }
        strip_upstream(&mut response);
        let mut wire = Vec::new();
        response.header_to_h1_wire(&mut wire);
        // A removal may reorder what is left (the header map swaps into the gap).
        let mut left: Vec<&str> = std::str::from_utf8(&wire).unwrap().split("\r\n").collect();
        left.sort_unstable();
        assert_eq!(left, ["", "Content-Type: application/json", "Vary: Origin"]);
    }
}
