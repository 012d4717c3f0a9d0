//! Request correlation: `x-request-id` and W3C `traceparent`.
//!
//! A client's request id is kept when it is short and printable, so a caller can follow its
//! own id through our logs; otherwise Usher makes one. A valid `traceparent` continues the
//! client's trace; a missing or malformed one is replaced by a new trace, so every upstream
//! request can be correlated. With tracing off it is forwarded as it came (a later
//! version's as version 00, the fields Usher knows); with tracing on, Usher's spans join it
//! (`telemetry::traces`).

use http::HeaderMap;

const MAX_REQUEST_ID: usize = 128;

pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(new_request_id, str::to_string)
}

/// The client's `traceparent` when it is valid, else a new one; and whether it is the
/// client's (only then does its `tracestate` belong to it).
pub fn traceparent(headers: &HeaderMap) -> (String, bool) {
    let valid = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|value| is_valid_traceparent(value));
    match valid {
        // A later version's fields beyond these four are its own: what goes on is 00.
        Some(value) if !value.starts_with("00") => {
            let value = value.to_ascii_lowercase();
            let [trace, parent, flags] = fields(&value);
            (format!("00-{trace}-{parent}-{flags}"), true)
        }
        Some(value) => (value.to_ascii_lowercase(), true),
        None => (new_traceparent(), false),
    }
}

// Statics, not constants: Pingora inserts a `&'static` name without parsing or copying it
// (`insert_header_static`, patches/README.md).
pub static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
pub static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// Vendors' trace state, which goes with the client's `traceparent`.
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// The trace id (32 hex digits), the parent's span id (16) and the flags (2) of a
/// traceparent made or checked by [`traceparent`]: `vv-trace-parent-flags`.
pub fn fields(traceparent: &str) -> [&str; 3] {
    let field = |range: std::ops::Range<usize>| traceparent.get(range).unwrap_or("");
    [field(3..35), field(36..52), field(53..55)]
}

/// The trace id inside a traceparent made or checked by [`traceparent`].
pub fn trace_id(traceparent: &str) -> &str {
    fields(traceparent)[0]
}

fn new_request_id() -> String {
    let mut id = [0u8; 32];
    hex_into(&rand::random::<[u8; 16]>(), &mut id);
    ascii(&id)
}

fn new_traceparent() -> String {
    // One draw for both ids; neither may be all zeros.
    let mut random: [u8; 24] = rand::random();
    random[15] |= 1;
    random[23] |= 1;
    let (trace_id, parent) = random.split_at(16);
    traceparent_text(trace_id, parent, true)
}

/// A version-00 `traceparent`: 16 bytes of trace id and 8 of parent id, as hex.
pub fn traceparent_text(trace_id: &[u8], parent: &[u8], sampled: bool) -> String {
    let mut value = *b"00-________________________________-________________-00";
    hex_into(trace_id, &mut value[3..35]);
    hex_into(parent, &mut value[36..52]);
    if sampled {
        value[54] = b'1';
    }
    ascii(&value)
}

/// `bytes` as lower-case hex into `out` (twice as long): a table lookup per digit, since
/// ids are made on the request path (`format!` costs several times more).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

fn ascii(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("hex digits and dashes are ASCII")
}

/// Version 00 has exactly these four fields; a later version (not `ff`) may add more after
/// them, and is read as 00 is (W3C Trace Context, "versioning of traceparent").
fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let fields = match parts.first() {
        Some(&"00") => parts.len() == 4,
        Some(version) => hex(version, 2) && !version.eq_ignore_ascii_case("ff") && parts.len() >= 4,
        None => false,
    };
    fields
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
    fn hex_is_lower_case_and_zero_padded() {
        let mut out = [0u8; 6];
        hex_into(&[0x0a, 0xff, 0x10], &mut out);
        assert_eq!(&out, b"0aff10");
    }

    #[test]
    fn made_ids_are_fresh_hex() {
        let (first, second) = (new_request_id(), new_request_id());
        assert_ne!(first, second);
        assert!(first.len() == 32 && first.bytes().all(|b| b.is_ascii_hexdigit()));
        for _ in 0..100 {
            let made = new_traceparent();
            assert!(is_valid_traceparent(&made), "{made}");
            assert!(made.starts_with("00-") && made.ends_with("-01"));
        }
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
        assert_eq!(
            traceparent(&headers("traceparent", valid)),
            (valid.to_string(), true)
        );
        let (made, continued) = traceparent(&headers("traceparent", "00-0000-bad"));
        assert!(is_valid_traceparent(&made) && !continued, "{made}");
        // A later version continues the trace; ff, or 00 with more fields, does not.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert_eq!(
            traceparent(&headers("traceparent", later)),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
                true
            )
        );
        for invalid in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                !traceparent(&headers("traceparent", invalid)).1,
                "{invalid}"
            );
        }
        assert_eq!(trace_id(valid), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
