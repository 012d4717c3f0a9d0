//! Path normalization, done once before anything looks at the path.
//!
//! Routing, authentication and rate limiting must all see the same path as the upstream,
//! or a crafted path can be judged as one route and served as another. So every request
//! path is reduced to one canonical form here:
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other
//!   escapes are kept with upper-case hex;
//! - repeated slashes are merged and dot segments removed (RFC 3986, section 5.2.4), and so
//!   are segments of `;` parameters alone; parameters after a segment (`/a;v=1`) stay,
//!   routing compares the segment before them (`router::segment_stem`), as servlet
//!   containers read it, and public paths match only the segment as written;
//! - a path that is ambiguous or hostile is refused: an encoded slash, backslash or
//!   semicolon, a raw backslash, NUL, a malformed escape, or `..` that would climb above the root;
//! - escaped bytes that do not decode as UTF-8 are refused: overlong forms (`%c0%ae` is
//!   `.` to a lenient decoder, so `/public/%c0%ae%c0%ae/private` would be `/private`
//!   upstream), lone continuation bytes, surrogates, code points above U+10FFFF. Envoy and
//!   nginx refuse such paths too.

use std::borrow::Cow;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path contains an encoded slash or backslash")]
    EncodedSeparator,
    /// `%3B`: decoders disagree on whether it starts parameters, so it has no one meaning.
    #[error("the path contains an encoded semicolon")]
    EncodedSemicolon,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path contains a malformed percent escape")]
    BadEscape,
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path's percent escapes are not valid UTF-8")]
    InvalidUtf8,
    /// `..;x` or `.;x`: servlet containers read these as dot segments.
    #[error("the path contains a dot segment with parameters")]
    DotSegmentParameters,
}

/// Returns the canonical form of `raw` (a path without query), borrowing when it already is.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode_unreserved(raw)?;
    remove_dot_segments(&decoded).map(Cow::Owned)
}

/// One pass over the bytes: no escapes, backslashes or NUL, no empty or dot segments.
fn is_canonical(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let segment_end = |at: usize| at == bytes.len() || bytes[at] == b'/';
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b'\\' | b';' | 0 => return false,
            b'/' => match bytes.get(i + 1) {
                Some(b'/') => return false,
                Some(b'.') if segment_end(i + 2) => return false,
                Some(b'.') if bytes.get(i + 2) == Some(&b'.') && segment_end(i + 3) => {
                    return false
                }
                _ => {}
            },
            _ => {}
        }
    }
    true
}

fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    // Every byte as the upstream's decoder will see it, once an escape above ASCII appears.
    let mut decoded: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
                let value = std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::BadEscape)?;
                if value >= 0x80 && decoded.is_none() {
                    decoded = Some(percent_decode(&bytes[..i]));
                }
                if let Some(decoded) = &mut decoded {
                    decoded.push(value);
                }
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    b';' => return Err(PathError::EncodedSemicolon),
                    0 => return Err(PathError::Nul),
                    b if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                        out.push(b as char)
                    }
                    b => out.push_str(&format!("%{b:02X}")),
                }
                i += 3;
            }
            _ => {
                let ch = raw[i..]
                    .chars()
                    .next()
                    .expect("index is on a char boundary");
                out.push(ch);
                if let Some(decoded) = &mut decoded {
                    decoded.extend_from_slice(&bytes[i..i + ch.len_utf8()]);
                }
                i += ch.len_utf8();
            }
        }
    }
    if decoded.is_some_and(|decoded| std::str::from_utf8(&decoded).is_err()) {
        return Err(PathError::InvalidUtf8);
    }
    Ok(out)
}

/// `bytes` with every well-formed `%XX` decoded.
pub fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = false;
        let stem = segment.split(';').next().unwrap_or("");
        if segment.contains(';') && (stem == "." || stem == "..") {
            return Err(PathError::DotSegmentParameters);
        }
        match segment {
            // A segment of parameters alone (`/;x=1/`) is an empty one to servlet containers.
            "" | "." => trailing_slash = true,
            _ if segment.starts_with(';') => trailing_slash = true,
            ".." => {
                kept.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            other => kept.push(other),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_are_borrowed() {
        for path in [
            "/api/v1/venues/7",
            "/",
            "/a/",
            "/a/.b",
            "/a/..b/c",
            "/.well-known/x",
        ] {
            assert!(matches!(normalize(path), Ok(Cow::Borrowed(_))), "{path}");
        }
        for path in ["//", "/a/./b", "/a/.", "/a/..", "/a/../b", "/a%41"] {
            assert!(!is_canonical(path), "{path}");
        }
    }

    #[test]
    fn normalizes() {
        let cases = [
            ("/a/../b", "/b"),
            ("/a/./b", "/a/b"),
            ("//a///b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/%61pi/v1", "/api/v1"),
            ("/api/%2e%2e/admin", "/admin"),
            ("/api/%2E%2E/admin", "/admin"),
            ("/a/%7euser", "/a/~user"),
            ("/a/%3a%3A", "/a/%3A%3A"),
            ("/a/caf%C3%A9", "/a/caf%C3%A9"),
            ("/public/..//private", "/private"),
            ("/a;b=1/c", "/a;b=1/c"),
            ("/;b=1/c", "/c"),
            ("/a/;b=1", "/a/"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw).as_deref(), Ok(expected), "normalizing {raw}");
        }
    }

    #[test]
    fn refuses_hostile_paths() {
        let cases = [
            ("/a/%2fb", PathError::EncodedSeparator),
            ("/a/%2Fb", PathError::EncodedSeparator),
            ("/a/%5cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::Backslash),
            ("/a/%00", PathError::Nul),
            ("/a/%zz", PathError::BadEscape),
            ("/a/%4", PathError::BadEscape),
            ("/..", PathError::AboveRoot),
            ("/a/../../b", PathError::AboveRoot),
            ("/%2e%2e/etc", PathError::AboveRoot),
            ("/public/..;/admin", PathError::DotSegmentParameters),
            ("/public/.;/admin", PathError::DotSegmentParameters),
            (
                "/public/..;jsessionid=1/admin",
                PathError::DotSegmentParameters,
            ),
            ("/public/..%3B/admin", PathError::EncodedSemicolon),
            ("/public/%2e%2e;/admin", PathError::DotSegmentParameters),
            ("/admin%3bx", PathError::EncodedSemicolon),
            ("a/b", PathError::NotAbsolute),
            ("/public/%c0%ae%c0%ae/private", PathError::InvalidUtf8),
            ("/a/%c0%af", PathError::InvalidUtf8),
            ("/a/%e0%80%ae", PathError::InvalidUtf8),
            ("/a/%f0%80%80%ae", PathError::InvalidUtf8),
            ("/a/%80", PathError::InvalidUtf8),
            ("/a/%C3", PathError::InvalidUtf8),
            ("/a/%C3x", PathError::InvalidUtf8),
            ("/a/%ed%a0%80", PathError::InvalidUtf8),
            ("/a/%f4%90%80%80", PathError::InvalidUtf8),
            ("/a/%ff", PathError::InvalidUtf8),
            ("/é/%A9", PathError::InvalidUtf8),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw), Err(expected), "normalizing {raw}");
        }
    }
}
