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
    // One pass over the few names a response has; a removal (a hash lookup in each of
    // Pingora's two maps) only for what is there.
    let strip: Vec<http::HeaderName> = response
        .headers
        .keys()
        .filter(|name| {
            *name == http::header::SERVER
                || name.as_str() == "x-powered-by"
                || name.as_str().starts_with("access-control-")
        })
        .cloned()
        .collect();
    for name in strip {
        while response.remove_header(&name).is_some() {}
    }
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
