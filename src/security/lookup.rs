//! Questions Usher asks other services about a caller (is this user still active? may they
//! act on this venue?), with the answers cached: positive answers for `cache_ttl`, negative
//! ones for the shorter `negative_cache_ttl`, "could not answer" for one second. What a failure means for
//! the request is each route's choice (`on_dependency_failure`), closed by default.
//!
//! Caller-supplied values are percent-encoded into the URL template, so a `sub` such as
//! `../admin` cannot change which resource is asked about.

use crate::config::LookupSpec;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// What the service said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allowed,
    Denied,
    /// The service could not answer (unreachable, timeout, 5xx): not cached.
    Unavailable,
}

pub struct Lookup {
    spec: LookupSpec,
    cache: Mutex<HashMap<String, (Answer, Instant)>>,
}

/// Entries beyond this empty the cache (the cheapest bounded policy).
const MAX_ENTRIES: usize = 50_000;
/// "Could not answer" is remembered this long, so an outage does not make every request
/// wait out the timeout and open a connection of its own.
const UNAVAILABLE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Lookup {
    pub fn new(spec: &LookupSpec) -> Lookup {
        Lookup {
            spec: spec.clone(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Asks with `values` filled into the URL template (`{sub}`, `{tenant}`, `{venue}`).
    pub async fn ask(&self, values: &[(&str, &str)]) -> Answer {
        let mut url = self.spec.url_template.clone();
        for (name, value) in values {
            url = url.replace(&format!("{{{name}}}"), &encode_segment(value));
        }
        if let Some(answer) = self.cached(&url) {
            return answer;
        }
        let answer = match tokio::time::timeout(self.spec.timeout, get(&url)).await {
            Ok(Ok(status)) if status.is_success() => Answer::Allowed,
            Ok(Ok(status)) if matches!(status.as_u16(), 401 | 403 | 404 | 410) => Answer::Denied,
            // Logged by template: the URL itself holds user ids.
            Ok(Ok(status)) => {
                tracing::warn!(template = %self.spec.url_template, %status, "lookup answered with an error");
                Answer::Unavailable
            }
            Ok(Err(reason)) => {
                tracing::warn!(template = %self.spec.url_template, reason, "lookup failed");
                Answer::Unavailable
            }
            Err(_) => {
                tracing::warn!(template = %self.spec.url_template, "lookup timed out");
                Answer::Unavailable
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(url, (answer, Instant::now()));
        answer
    }

    fn cached(&self, url: &str) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (answer, at) = cache.get(url)?;
        let ttl = match answer {
            Answer::Allowed => self.spec.cache_ttl,
            Answer::Denied => self.spec.negative_cache_ttl,
            Answer::Unavailable => UNAVAILABLE_TTL,
        };
        (at.elapsed() < ttl).then_some(*answer)
    }
}

/// A GET on a fresh connection; the status of the answer.
pub async fn get(url: &str) -> Result<http::StatusCode, String> {
    get_body(url, 0).await.map(|(status, _)| status)
}

/// A GET on a fresh connection; the status and up to `max_body` bytes of body.
pub async fn get_body(url: &str, max_body: usize) -> Result<(http::StatusCode, Bytes), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let host = uri.host().ok_or("no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            http::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
        )
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, "usher")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = if max_body > 0 {
        http_body_util::Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
    } else {
        Bytes::new()
    };
    connection.abort();
    Ok((status, body))
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so a value is exactly
/// one path segment.
fn encode_segment(value: &str) -> String {
    // A lone `.` or `..` would still be a dot segment: encode its dots too.
    if value == "." || value == ".." {
        return value.replace('.', "%2E");
    }
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    #[test]
    fn values_stay_one_segment() {
        assert_eq!(encode_segment("user-1"), "user-1");
        assert_eq!(encode_segment("../admin"), "..%2Fadmin");
        assert_eq!(encode_segment("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("."), "%2E");
    }
}
