//! Request hardening: refuse requests whose framing or headers are ambiguous or abusive,
//! before routing looks at them. Pingora's HTTP/1 parser already refuses much (see
//! tests/hardening.rs, which checks every case against the running gateway); these checks
//! make each rule explicit and independent of the parser's version.

use crate::config::Limits;
use crate::respond::Rejection;
use http::{header, HeaderMap, Method, Version};
use pingora::http::RequestHeader;

/// `raw_head` is the request head as received, when Pingora parsed it from HTTP/1 and the
/// request has `Transfer-Encoding`: Pingora then removes a `Content-Length` (RFC 9112
/// §6.3), so only the raw bytes still show that the client sent both.
pub fn check(
    request: &RequestHeader,
    raw_head: Option<&[u8]>,
    limits: &Limits,
) -> Result<(), Rejection> {
    if raw_head.is_some_and(has_content_length_line) {
        return Err(Rejection::Malformed(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    check_method_case(&request.method)?;
    // Pingora passes raw bytes above ASCII in the target to the upstream as they came and
    // shows routing a lossy copy: bytes that are not UTF-8 would mean two different paths.
    if !request.raw_path_is_utf8() {
        return Err(Rejection::BadPath(crate::path::PathError::InvalidUtf8));
    }
    if request.method == Method::CONNECT || request.method == Method::TRACE {
        return Err(Rejection::MethodNotAllowed(Vec::new()));
    }
    if request.raw_path().len() as u64 > limits.max_uri_bytes {
        return Err(Rejection::UriTooLong);
    }
    let headers = &request.headers;
    if headers.len() > limits.max_headers {
        return Err(Rejection::HeadersTooLarge);
    }
    let header_bytes: u64 = headers
        .iter()
        .map(|(name, value)| (name.as_str().len() + value.len() + 4) as u64)
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(Rejection::HeadersTooLarge);
    }
    for (name, value) in headers {
        if name.as_str().contains('_') {
            return Err(Rejection::Malformed(
                "header names may not contain underscores",
            ));
        }
        if has_control(value.as_bytes()) {
            return Err(Rejection::Malformed(
                "header values may not contain control characters",
            ));
        }
    }
    check_framing(headers)?;
    check_host(request)
}

/// Whether `value` holds a control character other than tab.
fn has_control(value: &[u8]) -> bool {
    crate::scan::any(value, |b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

fn check_framing(headers: &HeaderMap) -> Result<(), Rejection> {
    let lengths: Vec<&[u8]> = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if !lengths.is_empty() && headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Rejection::Malformed(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if lengths.len() > 1 {
        return Err(Rejection::Malformed("more than one Content-Length"));
    }
    if let Some(length) = lengths.first() {
        if length.is_empty() || !length.iter().all(u8::is_ascii_digit) {
            return Err(Rejection::Malformed("malformed Content-Length"));
        }
    }
    Ok(())
}

/// Methods are case-sensitive (RFC 9110 §9.1), so `delete` is not `DELETE` to the router,
/// but many frameworks upper-case what they receive and would run the `DELETE` handler for
/// it: a case variant of a standard method would slip past a route that lists `DELETE`.
/// Such methods are refused; unknown methods of any case pass to routing as they are.
fn check_method_case(method: &Method) -> Result<(), Rejection> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    let name = method.as_str();
    let is_variant = STANDARD
        .iter()
        .any(|standard| standard.eq_ignore_ascii_case(name) && *standard != name);
    if is_variant {
        return Err(Rejection::Malformed(
            "method names are case-sensitive: send standard methods in upper case",
        ));
    }
    Ok(())
}

fn has_content_length_line(head: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length";
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        line.len() > NAME.len()
            && line[..NAME.len()].eq_ignore_ascii_case(NAME)
            && line[NAME.len()..]
                .iter()
                .find(|b| **b != b' ' && **b != b'\t')
                == Some(&b':')
    })
}

fn check_host(request: &RequestHeader) -> Result<(), Rejection> {
    let mut hosts = request.headers.get_all(header::HOST).iter();
    let host = hosts.next().map(|v| v.as_bytes());
    if hosts.next().is_some() {
        return Err(Rejection::Malformed("more than one Host"));
    }
    if host.is_none() && request.version == Version::HTTP_11 {
        return Err(Rejection::Malformed("missing Host"));
    }
    // An absolute-form target (`GET http://host/path`) names its own host: it must be the
    // Host header's. Pingora keeps such a target whole in `raw_path`.
    let target = request.raw_path();
    let is_absolute = [&b"http://"[..], b"https://"].iter().any(|scheme| {
        target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme)
    });
    if is_absolute {
        let authority = std::str::from_utf8(target)
            .ok()
            .and_then(|t| t.parse::<http::Uri>().ok())
            .and_then(|uri| uri.authority().cloned())
            .ok_or(Rejection::Malformed(
                "malformed absolute-form request target",
            ))?;
        let agrees =
            host.is_some_and(|host| authority.as_str().as_bytes().eq_ignore_ascii_case(host));
        if !agrees {
            return Err(Rejection::Malformed(
                "the request target's host differs from Host",
            ));
        }
    }
    Ok(())
}

/// `Upgrade` passes only on routes that allow WebSockets, and only to `websocket`.
pub fn check_upgrade(request: &RequestHeader, websocket_allowed: bool) -> Result<(), Rejection> {
    match request.headers.get(header::UPGRADE) {
        None => Ok(()),
        Some(value) if websocket_allowed && value.as_bytes().eq_ignore_ascii_case(b"websocket") => {
            Ok(())
        }
        Some(_) => Err(Rejection::Malformed(
            "protocol upgrade not allowed on this route",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_headers: 5,
            max_header_bytes: 200,
            max_uri_bytes: 40,
            request_head_timeout: std::time::Duration::from_secs(10),
            request_body_timeout: std::time::Duration::from_secs(10),
            max_buffered_bytes: 1 << 20,
            max_route_removal_percent: 50,
        }
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build(method, path.as_bytes(), None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    #[test]
    fn control_characters_are_found_anywhere_but_tab_is_allowed() {
        let token = "eyJhbGciOiJIUzI1NiJ9.".repeat(20);
        assert!(!has_control(token.as_bytes()));
        assert!(!has_control(b"a\tb"));
        assert!(
            !has_control("t\u{e9}nant".as_bytes()),
            "obs-text is not a control"
        );
        for bad in [0x00, 0x01, b'\n', b'\r', 0x1f, 0x7f] {
            for at in [0, 7, token.len() - 1] {
                let mut value = token.clone().into_bytes();
                value[at] = bad;
                assert!(has_control(&value), "{bad:#x} at {at}");
            }
        }
    }

    #[test]
    fn accepts_an_ordinary_request() {
        let ok = request("GET", "/a", &[("host", "x"), ("content-length", "0")]);
        assert_eq!(check(&ok, None, &limits()), Ok(()));
        let chunked = request(
            "POST",
            "/a",
            &[("host", "x"), ("transfer-encoding", "chunked")],
        );
        let raw = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Content-Length-Note: 1\r\n\r\n";
        assert_eq!(check(&chunked, Some(raw), &limits()), Ok(()));
        let both = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(check(&chunked, Some(both), &limits()).is_err());
    }

    #[test]
    fn refuses_each_hardening_case() {
        let long = "x".repeat(150);
        let cases: Vec<(RequestHeader, u16)> = vec![
            (request("TRACE", "/a", &[("host", "x")]), 405),
            (request("delete", "/a", &[("host", "x")]), 400),
            (request("dElEtE", "/a", &[("host", "x")]), 400),
            (request("Get", "/a", &[("host", "x")]), 400),
            (
                request("GET", &format!("/{}", "a".repeat(40)), &[("host", "x")]),
                414,
            ),
            (
                request(
                    "GET",
                    "/a",
                    &[
                        ("host", "x"),
                        ("a", "1"),
                        ("b", "1"),
                        ("c", "1"),
                        ("d", "1"),
                        ("e", "1"),
                    ],
                ),
                431,
            ),
            (
                request(
                    "GET",
                    "/a",
                    &[("host", "x"), ("big", &long), ("big2", &long)],
                ),
                431,
            ),
            (request("GET", "/a", &[("host", "x"), ("x_user", "1")]), 400),
            (
                request(
                    "POST",
                    "/a",
                    &[
                        ("host", "x"),
                        ("content-length", "3"),
                        ("transfer-encoding", "chunked"),
                    ],
                ),
                400,
            ),
            (
                request(
                    "POST",
                    "/a",
                    &[
                        ("host", "x"),
                        ("content-length", "3"),
                        ("content-length", "4"),
                    ],
                ),
                400,
            ),
            (
                request("POST", "/a", &[("host", "x"), ("content-length", "-3")]),
                400,
            ),
            (request("GET", "/a", &[("host", "x"), ("host", "y")]), 400),
            (request("GET", "/a", &[]), 400),
            (
                request("GET", "http://evil.example/a", &[("host", "good.example")]),
                400,
            ),
        ];
        for (request, status) in cases {
            let result = check(&request, None, &limits());
            assert_eq!(result.map_err(|r| r.status()), Err(status), "{request:?}");
        }
    }

    #[test]
    fn refuses_raw_targets_that_are_not_utf8() {
        let mut lossy = RequestHeader::build("GET", b"/x/\xc0\xae/y", None).unwrap();
        lossy.append_header("host", "x").unwrap();
        assert!(!lossy.raw_path_is_utf8());
        assert_eq!(
            check(&lossy, None, &limits()).map_err(|r| r.code()),
            Err("invalid_path")
        );
    }

    #[test]
    fn passes_standard_and_unknown_methods_as_sent() {
        for method in ["GET", "DELETE", "PATCH", "PURGE", "purge", "MKCOL"] {
            let ok = request(method, "/a", &[("host", "x")]);
            assert_eq!(check(&ok, None, &limits()), Ok(()), "{method}");
        }
    }

    #[test]
    fn upgrades_only_to_websocket_where_allowed() {
        let ws = request("GET", "/a", &[("host", "x"), ("upgrade", "websocket")]);
        let h2c = request("GET", "/a", &[("host", "x"), ("upgrade", "h2c")]);
        assert!(check_upgrade(&ws, true).is_ok());
        assert!(check_upgrade(&ws, false).is_err());
        assert!(check_upgrade(&h2c, true).is_err());
    }
}
