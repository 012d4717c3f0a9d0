//! Questions Usher asks other services about a caller (is this user still active? may they
//! act on this venue?), with the answers cached: positive answers for `cache_ttl`, negative
//! ones for the shorter `negative_cache_ttl`, "could not answer" for one second. What a failure means for
//! the request is each route's choice (`on_dependency_failure`), closed by default.
//!
//! A reload keeps the answers when the URL template stays the same, so a configuration
//! change during the service's outage does not forget who was confirmed a moment ago.
//!
//! Caller-supplied values are percent-encoded into the URL template, so a `sub` such as
//! `../admin` cannot change which resource is asked about.

use crate::cache::Cache;
use crate::config::LookupSpec;
use std::sync::Arc;

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
    /// The URL template cut once into text and `{name}` placeholders, so a request fills
    /// it in one pass.
    template: Vec<Piece>,
    /// Answers by URL; shared with the configuration this one took them over from.
    cache: Arc<Cache<String, Answer>>,
}

enum Piece {
    Text(String),
    Value(String),
}

/// `text` cut at its `{name}` placeholders.
fn pieces(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|at| open + at) else {
            break;
        };
        pieces.push(Piece::Text(rest[..open].to_string()));
        pieces.push(Piece::Value(rest[open + 1..close].to_string()));
        rest = &rest[close + 1..];
    }
    pieces.push(Piece::Text(rest.to_string()));
    pieces
}

/// Answers remembered; beyond this the oldest go.
const MAX_ENTRIES: usize = 50_000;
/// "Could not answer" is remembered this long, so an outage does not make every request
/// wait out the timeout and open a connection of its own.
const UNAVAILABLE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

impl Lookup {
    pub fn new(spec: &LookupSpec) -> Lookup {
        Lookup {
            spec: spec.clone(),
            template: pieces(&spec.url_template),
            cache: Arc::new(Cache::new(MAX_ENTRIES, 16)),
        }
    }

    /// Takes over the answers `previous` holds when both ask the same URLs; says whether
    /// it did.
    pub fn inherit(&mut self, previous: &Lookup) -> bool {
        let same = previous.spec.url_template == self.spec.url_template;
        if same {
            self.cache = Arc::clone(&previous.cache);
        }
        same
    }

    /// Asks with `values` filled into the URL template (`{sub}`, `{tenant}`, `{venue}`).
    pub async fn ask(&self, values: &[(&str, &str)]) -> Answer {
        let url = self.url(values);
        if let Some(answer) = self.cached(&url) {
            return answer;
        }
        let answer = match tokio::time::timeout(self.spec.timeout, crate::fetch::get(&url)).await {
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
        self.cache.insert(url, answer);
        answer
    }

    /// The template with `values` filled in, each one path segment; a placeholder without
    /// a value stays as written.
    fn url(&self, values: &[(&str, &str)]) -> String {
        let mut url = String::with_capacity(self.spec.url_template.len() + 32);
        for piece in &self.template {
            match piece {
                Piece::Text(text) => url.push_str(text),
                Piece::Value(name) => match values.iter().find(|(n, _)| n == name) {
                    Some((_, value)) => push_segment(&mut url, value),
                    None => {
                        url.push('{');
                        url.push_str(name);
                        url.push('}');
                    }
                },
            }
        }
        url
    }

    fn cached(&self, url: &str) -> Option<Answer> {
        self.cache.find(url, |answer, age| {
            let ttl = match answer {
                Answer::Allowed => self.spec.cache_ttl,
                Answer::Denied => self.spec.negative_cache_ttl,
                Answer::Unavailable => UNAVAILABLE_TTL,
            };
            (age < ttl).then_some(*answer)
        })
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), so a value is exactly
/// one path segment.
/// Appends `value` to `url` as one path segment, percent-encoding all but the unreserved
/// characters.
fn push_segment(url: &mut String, value: &str) {
    // A lone `.` or `..` would still be a dot segment: encode its dots too.
    if value == "." || value == ".." {
        url.push_str(&value.replace('.', "%2E"));
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            url.push(char::from(byte));
        } else {
            url.push('%');
            url.push(char::from(HEX[usize::from(byte >> 4)]));
            url.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_filled_in_one_pass() {
        let spec = |url: &str| LookupSpec {
            url_template: url.to_string(),
            cache_ttl: std::time::Duration::from_secs(1),
            negative_cache_ttl: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
        };
        let fill =
            |template: &str, values: &[(&str, &str)]| Lookup::new(&spec(template)).url(values);
        assert_eq!(
            fill(
                "http://a/v/{venue}/u/{sub}",
                &[("sub", "u 1"), ("venue", "7")]
            ),
            "http://a/v/7/u/u%201"
        );
        assert_eq!(
            fill("http://a/{other}/{sub}", &[("sub", "x")]),
            "http://a/{other}/x"
        );
    }

    #[test]
    fn values_stay_one_segment() {
        let encode_segment = |value: &str| {
            let mut url = String::new();
            push_segment(&mut url, value);
            url
        };
        assert_eq!(encode_segment("user-1"), "user-1");
        assert_eq!(encode_segment("t\u{e9}\n"), "t%C3%A9%0A");
        assert_eq!(encode_segment("../admin"), "..%2Fadmin");
        assert_eq!(encode_segment("a b?c#d"), "a%20b%3Fc%23d");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("."), "%2E");
    }
}
