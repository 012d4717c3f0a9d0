//! Headers every response carries, whoever made it: no MIME sniffing, no framing, no
//! referrer leaks, HSTS when the listener is TLS; and no `Server` or `X-Powered-By` from
//! upstreams, which only tell attackers what to try. Gateway-made responses also carry a
//! strict Content-Security-Policy (they are JSON, never meant to run anything).

use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

const HSTS: &str = "max-age=31536000; includeSubDomains";
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

pub fn apply(response: &mut ResponseHeader, tls: bool) -> Result<()> {
    response.insert_header(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    )?;
    response.insert_header("x-frame-options", HeaderValue::from_static("DENY"))?;
    response.insert_header("referrer-policy", HeaderValue::from_static("no-referrer"))?;
    if tls {
        response.insert_header("strict-transport-security", HeaderValue::from_static(HSTS))?;
    }
    Ok(())
}
