//! What Usher's spans say, in the OpenTelemetry HTTP semantic conventions' terms: the
//! server span's name (`GET /api/v1/tickets/*`: the route, never the raw path), its
//! attributes and status, and each attempt's client span's; from the facts a finished
//! request leaves (span.rs keeps the trace itself).

use super::span::Attempt;
use opentelemetry::trace::Status;
use opentelemetry::{KeyValue, StringValue, Value};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the server span says of a finished request.
pub struct Finished<'a> {
    pub method: &'a http::Method,
    /// The route's name and its path pattern (`http.route`).
    pub route: Option<(Arc<str>, Arc<str>)>,
    pub status: u16,
    /// The stable code of Usher's refusal, or the kind of the upstream's failure.
    pub error: Option<&'static str>,
    /// The normalized path (never the query, where tokens may travel).
    pub path: &'a str,
    pub scheme: &'static str,
    pub version: http::Version,
    pub client: Option<IpAddr>,
    pub peer: Option<SocketAddr>,
    pub host: Option<&'a str>,
    pub upstream: Option<Arc<str>>,
    pub request_id: &'a str,
    pub tenant: Option<&'a str>,
}

/// An attempt's client span: its attributes and its status (an error on a failure, or on a
/// 4xx or 5xx answer, as the conventions say of clients).
pub(super) fn attempt(
    attempt: &Attempt,
    number: usize,
    method: Option<&'static str>,
    upstream: Option<&Arc<str>>,
) -> (Vec<KeyValue>, Status) {
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.unwrap_or("_OTHER")),
        KeyValue::new("server.address", address(attempt.peer.ip())),
        KeyValue::new("server.port", i64::from(attempt.peer.port())),
        KeyValue::new("usher.attempt", number as i64 + 1),
    ];
    // Pingora hands over the request it sends once connected: an attempt that never
    // connected has no URL.
    if !attempt.path.is_empty() {
        let url = format!("http://{}{}", attempt.peer, attempt.path);
        attributes.push(KeyValue::new("url.full", url));
    }
    if number > 0 {
        attributes.push(KeyValue::new("http.request.resend_count", number as i64));
    }
    if let Some(upstream) = upstream {
        attributes.push(KeyValue::new("usher.upstream", shared(upstream)));
    }
    if let Some(status) = attempt.status {
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    let error: Option<Cow<'static, str>> = match (attempt.failure, attempt.status) {
        (Some(kind), _) => Some(kind.into()),
        (None, Some(status)) if status >= 400 => Some(status.to_string().into()),
        _ => None,
    };
    if let Some(error) = &error {
        attributes.push(KeyValue::new("error.type", error.clone()));
    }
    (attributes, error.map_or(Status::Unset, Status::error))
}

/// A server span's error is Usher failing to answer (5xx, or no answer), not a refusal.
pub(super) fn server_status(request: &Finished<'_>) -> Status {
    match request.status {
        0 | 500.. => Status::error(request.error.unwrap_or("")),
        _ => Status::Unset,
    }
}

/// `{method} {route}`, as the semantic conventions name server spans; `HTTP` for a method
/// they do not know, the method alone for a request no route matched.
pub(super) fn server_span_name(
    method: Option<&'static str>,
    route: Option<&str>,
) -> Cow<'static, str> {
    match (method, route) {
        (Some(method), Some(route)) => format!("{method} {route}").into(),
        (None, Some(route)) => format!("HTTP {route}").into(),
        (Some(method), None) => method.into(),
        (None, None) => "HTTP".into(),
    }
}

pub(super) fn server_attributes(
    request: &Finished<'_>,
    method: Option<&'static str>,
) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.unwrap_or("_OTHER")),
        KeyValue::new("url.path", request.path.to_string()),
        KeyValue::new("url.scheme", request.scheme),
        KeyValue::new(
            "network.protocol.version",
            protocol_version(request.version),
        ),
        KeyValue::new("usher.request_id", request.request_id.to_string()),
    ];
    if method.is_none() {
        let original = request.method.as_str().to_string();
        attributes.push(KeyValue::new("http.request.method_original", original));
    }
    if request.status != 0 {
        let status = i64::from(request.status);
        attributes.push(KeyValue::new("http.response.status_code", status));
    }
    if let Some((name, pattern)) = &request.route {
        attributes.push(KeyValue::new("http.route", shared(pattern)));
        attributes.push(KeyValue::new("usher.route", shared(name)));
    }
    if let Some(client) = request.client {
        attributes.push(KeyValue::new("client.address", address(client)));
    }
    if let Some(peer) = request.peer {
        attributes.push(KeyValue::new("network.peer.address", address(peer.ip())));
        attributes.push(KeyValue::new("network.peer.port", i64::from(peer.port())));
    }
    if let Some(authority) = request
        .host
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
    {
        let default_port = if request.scheme == "https" { 443 } else { 80 };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        attributes.push(KeyValue::new("server.address", host.to_string()));
        let port = authority.port_u16().unwrap_or(default_port);
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    if let Some(upstream) = &request.upstream {
        attributes.push(KeyValue::new("usher.upstream", shared(upstream)));
    }
    if let Some(tenant) = request.tenant {
        attributes.push(KeyValue::new("usher.tenant", tenant.to_string()));
    }
    if let Some(code) = request.error {
        attributes.push(KeyValue::new("usher.code", code));
    }
    // A server span's error is Usher failing to answer (5xx, or no answer); a refusal
    // (401, 429) is not one, as the semantic conventions say.
    let error: Option<Cow<'static, str>> = match (request.error, request.status) {
        (_, 1..=499) => None,
        (Some(code), _) => Some(code.into()),
        (None, 0) => Some("no_response".into()),
        (None, status) => Some(status.to_string().into()),
    };
    if let Some(error) = error {
        attributes.push(KeyValue::new("error.type", error));
    }
    attributes
}

/// A name the configuration holds, shared rather than copied.
fn shared(name: &Arc<str>) -> Value {
    Value::String(StringValue::from(Arc::clone(name)))
}

fn address(ip: IpAddr) -> String {
    crate::filters::client_address::text(ip)
}

/// The method as the semantic conventions spell it; `None` for one they do not know
/// (then `_OTHER`, with the method itself in `http.request.method_original`).
pub(super) fn known_method(method: &http::Method) -> Option<&'static str> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|known| *known == method.as_str())
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
