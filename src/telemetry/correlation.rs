//! Request correlation: `x-request-id` and W3C `traceparent`.
//!
//! A client's request id is kept when it is short and printable, so a caller can follow its
//! own id through our logs; otherwise Usher makes one. A valid `traceparent` is forwarded as
//! it came (Usher does not take part in the trace); a missing or malformed one is replaced by
//! a new trace, so every upstream request can be correlated.

use http::HeaderMap;

const MAX_REQUEST_ID: usize = 128;

pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| hex(rand::random::<u128>(), 32), str::to_string)
}

pub fn traceparent(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|value| is_valid_traceparent(value))
        .map_or_else(new_traceparent, str::to_ascii_lowercase)
}

/// The 32-hex-digit trace id inside a traceparent made or checked by [`traceparent`].
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.get(3..35).unwrap_or("")
}

fn new_traceparent() -> String {
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    let mut value = String::with_capacity(55);
    value.push_str("00-");
    value.push_str(&hex(trace, 32));
    value.push('-');
    value.push_str(&hex(u128::from(span), 16));
    value.push_str("-01");
    value
}

/// The low `digits` hex digits of `value`, zero-padded (`format!` costs several times more
/// on the request path).
fn hex(value: u128, digits: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buffer = [0u8; 32];
    let mut rest = value;
    for slot in buffer[..digits].iter_mut().rev() {
        *slot = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
    }
    std::str::from_utf8(&buffer[..digits])
        .expect("hex digits are ASCII")
        .to_string()
}

fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, value.parse().unwrap());
        map
    }

    #[test]
    fn hex_pads_and_truncates() {
        assert_eq!(hex(0xab, 4), "00ab");
        assert_eq!(hex(u128::MAX, 32), "f".repeat(32));
        assert_eq!(hex(0x1234_5678, 4), "5678");
    }

    #[test]
    fn keeps_a_sane_client_request_id() {
        assert_eq!(request_id(&headers("x-request-id", "abc-123")), "abc-123");
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
        assert_eq!(
            request_id(&headers("x-request-id", &"x".repeat(200))).len(),
            32
        );
    }

    #[test]
    fn traceparent_is_propagated_or_made() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(traceparent(&headers("traceparent", valid)), valid);
        let made = traceparent(&headers("traceparent", "00-0000-bad"));
        assert!(is_valid_traceparent(&made), "{made}");
        assert_eq!(trace_id(valid), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
