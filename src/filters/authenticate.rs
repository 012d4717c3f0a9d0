//! Credentials to an [`Identity`]: an API key where the route accepts them, otherwise a
//! bearer token from the sources the route allows (the `Authorization` header unless the
//! route opts in to a query parameter or a cookie). Fails closed: no credential, no
//! verifier, or a credential that does not verify is a 401.

use crate::config::{RouteAuth, TokenSource};
use crate::security::events::Severity;
use crate::security::{AuthFailure, Identity, Security};
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::SystemTime;

pub fn authenticate(
    request: &RequestHeader,
    auth: &RouteAuth,
    api_key_header: Option<&str>,
    security: &Security,
    now: SystemTime,
) -> Result<Arc<Identity>, AuthFailure> {
    if let (true, Some(store), Some(header)) = (auth.api_keys, &security.api_keys, api_key_header) {
        if let Some(key) = request.headers.get(header).and_then(|v| v.to_str().ok()) {
            return store.verify(key);
        }
    }
    let token = auth
        .token_sources
        .iter()
        .find_map(|source| token_from(request, source))
        .ok_or(AuthFailure::new("missing_credentials", Severity::Low))?;
    let verifier = security
        .jwt
        .as_ref()
        .ok_or(AuthFailure::new("no_verifier_configured", Severity::Low))?;
    verifier.verify(token, now)
}

fn token_from<'a>(request: &'a RequestHeader, source: &TokenSource) -> Option<&'a str> {
    match source {
        TokenSource::BearerHeader => {
            let value = request
                .headers
                .get(http::header::AUTHORIZATION)?
                .to_str()
                .ok()?;
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        }
        TokenSource::Query(name) => request.uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then_some(value)
        }),
        TokenSource::Cookie(name) => request
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then_some(value)
            }),
    }
    .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    #[test]
    fn tokens_come_only_from_allowed_sources() {
        let r = request(
            "/a?access_token=q",
            &[("authorization", "Bearer h"), ("cookie", "a=1; session=c")],
        );
        assert_eq!(token_from(&r, &TokenSource::BearerHeader), Some("h"));
        assert_eq!(
            token_from(&r, &TokenSource::Query("access_token".into())),
            Some("q")
        );
        assert_eq!(
            token_from(&r, &TokenSource::Cookie("session".into())),
            Some("c")
        );
        let basic = request("/", &[("authorization", "Basic abc")]);
        assert_eq!(token_from(&basic, &TokenSource::BearerHeader), None);
        let lower = request("/", &[("authorization", "bearer t")]);
        assert_eq!(token_from(&lower, &TokenSource::BearerHeader), Some("t"));
    }

    #[test]
    fn fails_closed_without_credentials_or_verifier() {
        let auth = RouteAuth {
            token_sources: vec![TokenSource::BearerHeader],
            ..RouteAuth::default()
        };
        let security = Security::default();
        let none = authenticate(
            &request("/", &[]),
            &auth,
            None,
            &security,
            SystemTime::now(),
        );
        assert_eq!(none.unwrap_err().reason, "missing_credentials");
        let query_only = authenticate(
            &request("/?access_token=t", &[]),
            &auth,
            None,
            &security,
            SystemTime::now(),
        );
        assert_eq!(
            query_only.unwrap_err().reason,
            "missing_credentials",
            "query tokens need an opt-in"
        );
        let unverifiable = authenticate(
            &request("/", &[("authorization", "Bearer t")]),
            &auth,
            None,
            &security,
            SystemTime::now(),
        );
        assert_eq!(unverifiable.unwrap_err().reason, "no_verifier_configured");
    }
}
