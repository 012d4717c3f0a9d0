//! Credentials from each place, one at a time, and what is forwarded after verification.

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
    assert_eq!(token_from(&r, &TokenSource::BearerHeader), Ok(Some("h")));
    assert_eq!(
        token_from(&r, &TokenSource::Query("access_token".into())),
        Ok(Some("q"))
    );
    assert_eq!(
        token_from(&r, &TokenSource::Cookie("session".into())),
        Ok(Some("c"))
    );
    let basic = request("/", &[("authorization", "Basic abc")]);
    assert_eq!(token_from(&basic, &TokenSource::BearerHeader), Ok(None));
    let lower = request("/", &[("authorization", "bearer t")]);
    assert_eq!(
        token_from(&lower, &TokenSource::BearerHeader),
        Ok(Some("t"))
    );
}

#[test]
fn two_credentials_of_a_kind_are_refused() {
    let cookie = TokenSource::Cookie("access_token".into());
    let query = TokenSource::Query("access_token".into());
    let cases = [
        (
            request(
                "/",
                &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
            ),
            TokenSource::BearerHeader,
        ),
        (
            request(
                "/",
                &[("authorization", "Basic x"), ("authorization", "Bearer b")],
            ),
            TokenSource::BearerHeader,
        ),
        (
            request("/", &[("cookie", "access_token=a; access_token=b")]),
            cookie.clone(),
        ),
        (
            request(
                "/",
                &[
                    ("cookie", "access_token=a"),
                    ("cookie", "x=1; access_token=b"),
                ],
            ),
            cookie,
        ),
        (
            request("/?access_token=a&access_token=b", &[]),
            query.clone(),
        ),
        (request("/?access_token=a&access_token", &[]), query.clone()),
        (
            request("/?access_token=a&access%5Ftoken=b", &[]),
            query.clone(),
        ),
        (request("/?x=1;access_token=a&access_token=b", &[]), query),
    ];
    for (request, source) in cases {
        assert_eq!(
            token_from(&request, &source).map_err(|f| f.reason),
            Err("ambiguous_credentials"),
            "{request:?}"
        );
    }
}

/// A route that forwards the verified credential, reading tokens from `sources`.
fn route(sources: Vec<TokenSource>) -> RouteAuth {
    RouteAuth {
        token_sources: sources,
        forward_credential: true,
        ..RouteAuth::default()
    }
}

#[test]
fn by_default_no_credential_leaves_the_edge() {
    let query = TokenSource::Query("access_token".into());
    let auth = RouteAuth {
        token_sources: vec![TokenSource::BearerHeader, query],
        ..RouteAuth::default()
    };
    let mut r = request(
        "/a?access_token=good&b=1",
        &[("authorization", "Bearer good"), ("x-api-key", "k")],
    );
    let forwarded_query = forward_verified(&mut r, &auth, Some("x-api-key"), Consumed::Token(1));
    assert_eq!(forwarded_query.as_deref(), Some("b=1"));
    assert!(r.headers.get("authorization").is_none());
    assert!(r.headers.get("x-api-key").is_none());
    let mut r = request("/a", &[("x-api-key", "k")]);
    forward_verified(&mut r, &auth, Some("x-api-key"), Consumed::ApiKey);
    assert!(r.headers.get("x-api-key").is_none());
}

#[test]
fn only_the_verified_credential_is_forwarded() {
    let cookie = TokenSource::Cookie("access_token".into());
    let query = TokenSource::Query("access_token".into());
    let auth = route(vec![
        TokenSource::BearerHeader,
        cookie.clone(),
        query.clone(),
    ]);

    // From the header: the cookie and query tokens beside it go.
    let mut r = request(
        "/a?x=1&access_token=forged",
        &[
            ("authorization", "Bearer good"),
            ("cookie", "a=1; access_token=forged"),
        ],
    );
    let forwarded_query = forward_verified(&mut r, &auth, Some("x-api-key"), Consumed::Token(0));
    assert_eq!(forwarded_query.as_deref(), Some("x=1"));
    assert_eq!(r.headers["authorization"], "Bearer good");
    assert_eq!(r.headers["cookie"], "a=1");

    // From a cookie: it moves to Authorization.
    let mut r = request("/a", &[("cookie", "access_token=good; b=2")]);
    assert_eq!(
        forward_verified(&mut r, &auth, Some("x-api-key"), Consumed::Token(1)),
        None
    );
    assert_eq!(r.headers["authorization"], "Bearer good");
    assert_eq!(r.headers["cookie"], "b=2");

    // From the query (a WebSocket URL): out of the URL, into Authorization.
    let mut r = request("/socket?access_token=good", &[("authorization", "Basic x")]);
    assert_eq!(
        forward_verified(&mut r, &auth, Some("x-api-key"), Consumed::Token(2)).as_deref(),
        Some("")
    );
    assert_eq!(r.headers["authorization"], "Bearer good");

    // An API key: no token the route accepts goes with it.
    let mut r = request(
        "/a",
        &[("authorization", "Bearer forged"), ("x-api-key", "k")],
    );
    forward_verified(&mut r, &auth, Some("x-api-key"), Consumed::ApiKey);
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.headers["x-api-key"], "k");

    // A route whose only source is the query: a forged Authorization does not ride along.
    let only_query = route(vec![query.clone()]);
    let mut r = request(
        "/ws?access_token=good",
        &[("authorization", "Bearer forged")],
    );
    assert_eq!(
        forward_verified(&mut r, &only_query, None, Consumed::Token(0)).as_deref(),
        Some("")
    );
    assert_eq!(r.headers["authorization"], "Bearer good");

    // Keys as frameworks decode them, and `;` as a separator, are found and removed.
    let mut r = request(
        "/a?x=1;access_token=f1&access%5Ftoken=f2&access.token=f3&y=2",
        &[("authorization", "Bearer good"), ("x-api-key", "forged")],
    );
    assert_eq!(
        forward_verified(&mut r, &auth, Some("x-api-key"), Consumed::Token(0)).as_deref(),
        Some("x=1&y=2")
    );
    assert!(
        r.headers.get("x-api-key").is_none(),
        "an unverified key goes"
    );

    // The usual case touches nothing.
    let mut r = request("/a?b=1", &[("authorization", "Bearer good")]);
    let only_header = route(vec![TokenSource::BearerHeader]);
    assert_eq!(
        forward_verified(&mut r, &only_header, Some("x-api-key"), Consumed::Token(0)),
        None
    );
    assert_eq!(r.headers["authorization"], "Bearer good");
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

/// `text` reads a header value exactly as `HeaderValue::to_str` does.
#[test]
fn header_text_agrees_with_the_http_crate() {
    let mut values: Vec<Vec<u8>> = vec![
        b"Bearer abc.def-ghi_jkl".to_vec(),
        b"a\tb c".to_vec(),
        Vec::new(),
    ];
    for byte in 0..=255u8 {
        for at in [0, 5, 299] {
            let mut value = vec![b'x'; 300];
            value[at] = byte;
            values.push(value);
        }
    }
    for value in values {
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            continue;
        };
        assert_eq!(text(&value), value.to_str().ok(), "{value:?}");
    }
}
