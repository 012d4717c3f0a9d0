//! Request correlation: `x-request-id` and W3C `traceparent`.
//!
//! A client's request id is kept when it is short and printable, so a caller can follow its
//! own id through our logs; otherwise Usher makes one. A valid `traceparent` continues the
//! client's trace; a missing or malformed one is replaced by a new trace, so every upstream
//! request can be correlated. With tracing off it is forwarded as it came (a later
//! version's as version 00, the fields Usher knows); with tracing on, Usher's spans join it
//! (`telemetry::traces`).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

const MAX_REQUEST_ID: usize = 128;

/// An id Usher both sends in headers and writes in its logs (a request id, a
/// `traceparent`): visible ASCII, checked or made once per request, then shared by every
/// head that carries it (a header value's bytes are reference-counted) instead of copied
/// into each.
#[derive(Clone, Debug)]
pub struct Id(HeaderValue);

impl Id {
    /// An id Usher made: one allocation, whose clones are reference counts.
    fn made<T: AsRef<[u8]> + Send + 'static>(text: T) -> Id {
        let value = HeaderValue::from_maybe_shared(Bytes::from_owner(text));
        Id(value.unwrap_or_else(|_| HeaderValue::from_static("")))
    }

    /// A value of a client's header, already checked to be visible ASCII.
    fn kept(value: &HeaderValue) -> Id {
        Id(value.clone())
    }

    pub fn as_str(&self) -> &str {
        // Visible ASCII by construction, so this never falls back.
        std::str::from_utf8(self.0.as_bytes()).unwrap_or_default()
    }

    /// The id as a header value, sharing its bytes.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl Default for Id {
    fn default() -> Self {
        Id(HeaderValue::from_static(""))
    }
}

impl Deref for Id {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
impl From<&'static str> for Id {
    fn from(text: &'static str) -> Id {
        Id(HeaderValue::from_static(text))
    }
}

pub fn request_id(headers: &HeaderMap) -> Id {
    let sane = |id: &&HeaderValue| {
        let id = id.as_bytes();
        !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.iter().all(u8::is_ascii_graphic)
    };
    headers
        .get(&X_REQUEST_ID)
        .filter(sane)
        .map_or_else(new_request_id, Id::kept)
}

/// The client's `traceparent` when it is valid, else a new one; and whether it is the
/// client's (only then does its `tracestate` belong to it).
pub fn traceparent(headers: &HeaderMap) -> (Id, bool) {
    let header = headers.get(&TRACEPARENT);
    let valid = header
        .and_then(|v| v.to_str().ok())
        .filter(|value| is_valid_traceparent(value));
    match (valid, header) {
        // A later version's fields beyond these four are its own: what goes on is 00.
        (Some(value), _) if !value.starts_with("00") => {
            let value = value.to_ascii_lowercase();
            let [trace, parent, flags] = fields(&value);
            (Id::made(format!("00-{trace}-{parent}-{flags}")), true)
        }
        (Some(value), Some(header)) if !value.bytes().any(|b| b.is_ascii_uppercase()) => {
            (Id::kept(header), true)
        }
        (Some(value), _) => (Id::made(value.to_ascii_lowercase()), true),
        (None, _) => (new_traceparent(), false),
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

thread_local! {
    /// Where made ids come from: a small generator per thread, seeded once from the
    /// operating system. Ids must be unique, not secret: a client may send its own request id
    /// and traceparent, and Usher keeps them, so nothing may rely on an id being
    /// unpredictable. 256 bits of state seeded from entropy make a collision of two 128-bit
    /// ids as unlikely as from the CSPRNG, at a fraction of ChaCha12's cost per request
    /// (docs/benchmarks.md, "Profiling, fourth pass"). What must be unguessable (idempotency
    /// tokens, signature nonces) keeps drawing from `rand::random`.
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_entropy());
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    IDS.with(|ids| ids.borrow_mut().fill_bytes(&mut bytes));
    bytes
}

fn new_request_id() -> Id {
    let mut id = [0u8; 32];
    hex_into(&random_bytes::<16>(), &mut id);
    Id::made(id)
}

fn new_traceparent() -> Id {
    // One draw for both ids; neither may be all zeros.
    let mut random = random_bytes::<24>();
    random[15] |= 1;
    random[23] |= 1;
    let (trace_id, parent) = random.split_at(16);
    Id::made(traceparent_bytes(trace_id, parent, true))
}

/// A version-00 `traceparent`: 16 bytes of trace id and 8 of parent id, as hex.
pub fn traceparent_text(trace_id: &[u8], parent: &[u8], sampled: bool) -> String {
    let value = traceparent_bytes(trace_id, parent, sampled);
    String::from_utf8(value.to_vec()).expect("hex digits and dashes are ASCII")
}

fn traceparent_bytes(trace_id: &[u8], parent: &[u8], sampled: bool) -> [u8; 55] {
    let mut value = *b"00-________________________________-________________-00";
    hex_into(trace_id, &mut value[3..35]);
    hex_into(parent, &mut value[36..52]);
    if sampled {
        value[54] = b'1';
    }
    value
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

/// Version 00 has exactly these four fields; a later version (not `ff`) may add more after
/// them, and is read as 00 is (W3C Trace Context, "versioning of traceparent").
fn is_valid_traceparent(value: &str) -> bool {
    let mut parts = value.split('-');
    let (Some(version), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let more = parts.next().is_some();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let version = match version {
        "00" => !more,
        version => hex(version, 2) && !version.eq_ignore_ascii_case("ff"),
    };
    version
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0')
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
        assert_ne!(first.as_str(), second.as_str());
        assert!(first.len() == 32 && first.bytes().all(|b| b.is_ascii_hexdigit()));
        for _ in 0..100 {
            let made = new_traceparent();
            assert!(is_valid_traceparent(&made), "{made}");
            assert!(made.starts_with("00-") && made.ends_with("-01"));
        }
    }

    #[test]
    fn threads_make_distinct_ids() {
        // Each thread seeds its own generator; a shared or fixed seed would repeat ids.
        let made: Vec<Vec<String>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..1000).map(|_| new_request_id().to_string()).collect()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let distinct: std::collections::HashSet<_> = made.iter().flatten().collect();
        assert_eq!(distinct.len(), 4000);
    }

    #[test]
    fn keeps_a_sane_client_request_id() {
        assert_eq!(
            request_id(&headers("x-request-id", "abc-123")).as_str(),
            "abc-123"
        );
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
        assert_eq!(
            request_id(&headers("x-request-id", &"x".repeat(200))).len(),
            32
        );
    }

    #[test]
    fn traceparent_is_propagated_or_made() {
        let traceparent = |headers: &HeaderMap| {
            let (id, continued) = traceparent(headers);
            (id.as_str().to_string(), continued)
        };
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            traceparent(&headers("traceparent", valid)),
            (valid.to_string(), true)
        );
        assert_eq!(
            traceparent(&headers("traceparent", &valid.to_ascii_uppercase())),
            (valid.to_string(), true),
            "continued in lower case"
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
