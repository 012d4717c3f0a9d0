//! CORS for browsers: preflights answered at the edge (they never carry credentials, so
//! they are decided before authentication and never reach an upstream), and the
//! `Access-Control-*` headers on responses to allowed origins. Nothing is permissive by
//! default: without a policy a response carries no CORS headers and browsers refuse
//! cross-origin calls.

use crate::config::CorsPolicy;
use http::{header, Method};
use pingora::http::RequestHeader;

/// Headers to add to a response: names are static, values built per request.
pub type Headers = Vec<(&'static str, String)>;

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub struct Preflight<'a> {
    pub origin: &'a str,
    pub method: Method,
    pub headers: Vec<String>,
}

pub fn preflight_of(request: &RequestHeader) -> Option<Preflight<'_>> {
    if request.method != Method::OPTIONS {
        return None;
    }
    let origin = request.headers.get(header::ORIGIN)?.to_str().ok()?;
    let method = request.headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let headers = request
        .headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    Some(Preflight {
        origin,
        method,
        headers,
    })
}

fn allows_origin(policy: &CorsPolicy, origin: &str) -> bool {
    policy.any_origin
        || policy
            .origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
}

/// The answer's headers for an allowed preflight; `None` when the policy refuses it.
pub fn preflight_headers(policy: &CorsPolicy, preflight: &Preflight<'_>) -> Option<Headers> {
    let allowed = allows_origin(policy, preflight.origin)
        && policy.methods.contains(&preflight.method)
        && preflight.headers.iter().all(|h| policy.headers.contains(h));
    if !allowed {
        return None;
    }
    let mut headers = origin_headers(policy, preflight.origin);
    headers.push(("access-control-allow-methods", policy.methods_value.clone()));
    if !policy.headers_value.is_empty() {
        headers.push(("access-control-allow-headers", policy.headers_value.clone()));
    }
    headers.push(("access-control-max-age", policy.max_age_value.clone()));
    Some(headers)
}

/// Headers for an actual (non-preflight) request's response; empty unless the request
/// carries an allowed `Origin`.
pub fn response_headers(policy: &CorsPolicy, request: &RequestHeader) -> Headers {
    let Some(origin) = request
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Vec::new();
    };
    if !allows_origin(policy, origin) {
        return Vec::new();
    }
    let mut headers = origin_headers(policy, origin);
    if let Some(exposed) = &policy.exposed_value {
        headers.push(("access-control-expose-headers", exposed.clone()));
    }
    headers
}

fn origin_headers(policy: &CorsPolicy, origin: &str) -> Headers {
    let mut headers = vec![
        (
            "access-control-allow-origin",
            if policy.any_origin {
                "*".to_string()
            } else {
                origin.to_string()
            },
        ),
        ("vary", "Origin".to_string()),
    ];
    if policy.credentials {
        headers.push(("access-control-allow-credentials", "true".to_string()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn policy() -> std::sync::Arc<CorsPolicy> {
        let config = config::load(
            "t.yaml",
            r#"
listeners: { public: { address: "127.0.0.1:1" }, admin: { address: "127.0.0.1:2" } }
authentication: { jwt: { issuer: i, audiences: [a], keys: [{ kid: k, algorithm: HS256, secret_env: UNUSED_SECRET }] } }
cors: { allowed_origins: [https://app.example.com], allowed_headers: [authorization, content-type], exposed_headers: [x-request-id], allow_credentials: true, max_age: 5m }
upstreams: { svc: { targets: ["127.0.0.1:3"] } }
routes: [{ name: a, match: { path: /a }, upstream: svc }]
"#,
        )
        .unwrap();
        config.routes[0].cors.clone().unwrap()
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build(method, b"/a", None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    #[test]
    fn preflights_are_allowed_only_for_listed_origins_methods_and_headers() {
        let policy = policy();
        let ok = request(
            "OPTIONS",
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "Authorization, content-type",
                ),
            ],
        );
        let headers = preflight_headers(&policy, &preflight_of(&ok).unwrap()).unwrap();
        assert!(headers.contains(&(
            "access-control-allow-origin",
            "https://app.example.com".into()
        )));
        assert!(headers.contains(&("access-control-allow-credentials", "true".into())));
        assert!(headers.contains(&("access-control-max-age", "300".into())));
        for refused in [
            request(
                "OPTIONS",
                &[
                    ("origin", "https://evil.example"),
                    ("access-control-request-method", "GET"),
                ],
            ),
            request(
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "OPTIONS"),
                ],
            ),
            request(
                "OPTIONS",
                &[
                    ("origin", "https://app.example.com"),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "x-tenant-id"),
                ],
            ),
        ] {
            assert!(preflight_headers(&policy, &preflight_of(&refused).unwrap()).is_none());
        }
        assert!(
            preflight_of(&request(
                "OPTIONS",
                &[("origin", "https://app.example.com")]
            ))
            .is_none(),
            "not a preflight"
        );
    }

    #[test]
    fn responses_carry_cors_headers_only_for_allowed_origins() {
        let policy = policy();
        let allowed = response_headers(
            &policy,
            &request("GET", &[("origin", "https://app.example.com")]),
        );
        assert!(allowed.contains(&("access-control-expose-headers", "x-request-id".into())));
        assert!(response_headers(
            &policy,
            &request("GET", &[("origin", "https://evil.example")])
        )
        .is_empty());
        assert!(response_headers(&policy, &request("GET", &[])).is_empty());
    }
}
