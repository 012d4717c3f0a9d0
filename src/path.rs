//! Path normalization, done once before anything looks at the path.
//!
//! Routing, authentication and rate limiting must all see the same path as the upstream,
//! or a crafted path can be judged as one route and served as another. So every request
//! path is reduced to one canonical form here:
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, other
//!   escapes are kept with upper-case hex;
//! - repeated slashes are merged and dot segments removed (RFC 3986, section 5.2.4);
//! - a path that is ambiguous or hostile is refused: an encoded slash or backslash, a raw
//!   backslash, NUL, a malformed escape, or `..` that would climb above the root.

use std::borrow::Cow;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path contains an encoded slash or backslash")]
    EncodedSeparator,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a NUL byte")]
    Nul,
    #[error("the path contains a malformed percent escape")]
    BadEscape,
    #[error("the path climbs above the root")]
    AboveRoot,
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
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
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
                i += ch.len_utf8();
            }
        }
    }
    Ok(out)
}

fn remove_dot_segments(path: &str) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = false;
        let before_parameters = segment.split(';').next().unwrap_or("");
        let lower = segment.to_ascii_lowercase();
        let parameters = segment.contains(';') || lower.contains("%3b");
        let stem = if segment.contains(';') {
            before_parameters
        } else {
            lower.split("%3b").next().unwrap_or("")
        };
        if parameters && (stem == "." || stem == "..") {
            return Err(PathError::DotSegmentParameters);
        }
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
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
            ("/public/..%3B/admin", PathError::DotSegmentParameters),
            ("/public/%2e%2e;/admin", PathError::DotSegmentParameters),
            ("a/b", PathError::NotAbsolute),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize(raw), Err(expected), "normalizing {raw}");
        }
    }
}
