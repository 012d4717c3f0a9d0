//! Headers every response carries, whoever made it: no MIME sniffing, no framing, no
//! referrer leaks, HSTS when the listener is TLS; and no `Server` or `X-Powered-By` from
//! upstreams, which only tell attackers what to try. Gateway-made responses also carry a
//! strict Content-Security-Policy (they are JSON, never meant to run anything).

use pingora::http::ResponseHeader;
use pingora::prelude::*;

const HSTS: &str = "max-age=31536000; includeSubDomains";
pub const GATEWAY_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

pub fn apply(response: &mut ResponseHeader, tls: bool) -> Result<()> {
    response.remove_header("server");
    response.remove_header("x-powered-by");
    response.insert_header("x-content-type-options", "nosniff")?;
    response.insert_header("x-frame-options", "DENY")?;
    response.insert_header("referrer-policy", "no-referrer")?;
    if tls {
        response.insert_header("strict-transport-security", HSTS)?;
    }
    Ok(())
}
