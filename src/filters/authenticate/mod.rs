//! Credentials to an [`Identity`]: an API key where the route accepts them, otherwise a
//! bearer token from the sources the route allows (the `Authorization` header unless the
//! route opts in to a query parameter or a cookie). Fails closed: no credential, no
//! verifier, or a credential that does not verify is a 401.
//!
//! A credential is read from exactly one place. Two of a kind (two `Authorization`
//! headers, two API key headers, a cookie or query parameter named twice) are refused
//! (`ambiguous_credentials`): verifying the first and forwarding both would hand the
//! upstream a forged token beside the verified one. What the upstream then receives is the
//! verified credential alone, in its usual place ([`forward_verified`]).

use crate::config::{RouteAuth, TokenSource};
use crate::security::events::Severity;
use crate::security::{AuthFailure, Identity, Security};
use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderValue;
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::SystemTime;

/// Which credential a request was authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    ApiKey,
    /// An RFC 9421 signature (`Signature-Input`, `Signature`).
    Signature,
    /// A bearer token from the route's `token_sources[i]`.
    Token(usize),
}

const AMBIGUOUS: AuthFailure = AuthFailure::new("ambiguous_credentials", Severity::Medium);

pub fn authenticate(
    request: &RequestHeader,
    auth: &RouteAuth,
    api_key_header: Option<&str>,
    security: &Security,
    now: SystemTime,
) -> Result<(Arc<Identity>, Consumed), AuthFailure> {
    if let (true, Some(store), Some(header)) = (auth.api_keys, &security.api_keys, api_key_header) {
        let mut keys = request.headers.get_all(header).iter();
        if let Some(key) = keys.next() {
            if keys.next().is_some() {
                return Err(AMBIGUOUS);
            }
            let key = text(key).ok_or(AMBIGUOUS)?;
            return store
                .verify(key)
                .map(|identity| (identity, Consumed::ApiKey));
        }
    }
    let mut found = None;
    for (index, source) in auth.token_sources.iter().enumerate() {
        if let Some(token) = token_from(request, source)? {
            found = Some((index, token));
            break;
        }
    }
    let (index, token) = found.ok_or(AuthFailure::new("missing_credentials", Severity::Low))?;
    let verifier = security
        .jwt
        .as_ref()
        .ok_or(AuthFailure::new("no_verifier_configured", Severity::Low))?;
    verifier
        .verify(token, now)
        .map(|identity| (identity, Consumed::Token(index)))
}

/// The token at `source`, when there is exactly one; two are refused.
fn token_from<'a>(
    request: &'a RequestHeader,
    source: &'a TokenSource,
) -> Result<Option<&'a str>, AuthFailure> {
    match source {
        TokenSource::BearerHeader => only_one(
            request
                .headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(|value| bearer(value).unwrap_or("")),
        ),
        TokenSource::Query(name) => only_one(query_values(request.uri.query(), name)),
        TokenSource::Cookie(name) => only_one(cookie_values(request, name)),
    }
}

fn only_one<'a>(mut values: impl Iterator<Item = &'a str>) -> Result<Option<&'a str>, AuthFailure> {
    let first = values.next();
    if values.next().is_some() {
        return Err(AMBIGUOUS);
    }
    Ok(first.filter(|token| !token.is_empty()))
}

/// `value` as text when it is visible ASCII or tab, as `HeaderValue::to_str` reads it, but
/// checked by [`crate::scan`]: a credential is a few hundred bytes, read on every
/// authenticated request.
fn text(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    if crate::scan::any(bytes, |b| b != b'\t' && !(0x20..0x7f).contains(&b)) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// The token of an `Authorization: Bearer` value.
fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = text(value)?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether a query or cookie key names `name` as the upstream will read it: frameworks
/// percent-decode keys (`access%5Ftoken`), and PHP also turns `.`, ` ` and `+` into `_`.
fn names(raw_key: &str, name: &str) -> bool {
    let fold = |c: char| if matches!(c, '.' | ' ' | '+') { '_' } else { c };
    let decoded = crate::path::percent_decode(raw_key.trim().as_bytes());
    let decoded = String::from_utf8_lossy(&decoded);
    decoded.chars().map(fold).eq(name.chars().map(fold))
}

/// Query parameters as `(key, value)`, split on `&` and on `;` (which some parsers, Python's
/// before 3.10 among them, also take as a separator).
fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or("")
        .split(['&', ';'])
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn query_values<'a>(query: Option<&'a str>, name: &'a str) -> impl Iterator<Item = &'a str> {
    query_pairs(query).filter_map(move |(key, value)| names(key, name).then_some(value))
}

fn cookie_values<'a>(request: &'a RequestHeader, name: &'a str) -> impl Iterator<Item = &'a str> {
    request
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(text)
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            names(key, name).then_some(value)
        })
}

/// Makes the upstream request carry no credential, or, where the route forwards it
/// (`auth.forward_credential`), the verified credential alone. Injected identity headers
/// say who the caller is; a token passed on would let any service that is compromised
/// replay its callers' tokens elsewhere. When forwarding:
/// - an `Authorization` header goes unless it holds the verified token, and an API key
///   header unless the key was the credential;
/// - every other place the route reads tokens from is emptied (a cookie or query token
///   beside a header token);
/// - a token read from a cookie or the query moves to `Authorization: Bearer`, out of the
///   URL upstreams log.
///
/// Returns the query to forward when it changed.
pub fn forward_verified(
    upstream: &mut RequestHeader,
    auth: &RouteAuth,
    api_key_header: Option<&str>,
    consumed: Consumed,
) -> Option<String> {
    let sources = &auth.token_sources;
    let forward = auth.forward_credential;
    let from_header =
        matches!(consumed, Consumed::Token(i) if sources[i] == TokenSource::BearerHeader);
    // An API key header stays only when the key is the credential forwarded.
    if let (false, Some(header)) = (forward && consumed == Consumed::ApiKey, api_key_header) {
        upstream.remove_header(header);
    }
    // So does a signature.
    if auth.signatures && !(forward && consumed == Consumed::Signature) {
        upstream.remove_header("signature");
        upstream.remove_header("signature-input");
    }
    if forward && from_header && sources.len() == 1 {
        return None; // the one source, read once: nothing else to remove
    }
    // A forwarded token read from a cookie or the query moves to `Authorization`.
    let moved = match consumed {
        Consumed::Token(index) if forward && !from_header => token_from(upstream, &sources[index])
            .ok()
            .flatten()
            .map(str::to_string),
        _ => None,
    };
    // `Authorization` stays only when it holds the token forwarded.
    if !(forward && from_header) {
        upstream.remove_header(&AUTHORIZATION);
    }
    let mut query = None;
    for source in sources {
        match source {
            TokenSource::BearerHeader => {}
            TokenSource::Query(name) => {
                let current = query.as_deref().or(upstream.uri.query());
                if query_values(current, name).next().is_some() {
                    query = Some(query_without(current.unwrap_or(""), name));
                }
            }
            TokenSource::Cookie(name) => remove_cookie(upstream, name),
        }
    }
    if let Some(token) = moved {
        // Only a token that verified moves; it is visible ASCII, so this cannot fail.
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            let _ = upstream.insert_header(AUTHORIZATION, value);
        }
    }
    query
}

/// `query` without the parameters named `name`, its separators kept.
/// `query` without the parameter `name` (as a token source names it).
pub(crate) fn query_without(query: &str, name: &str) -> String {
    let keep = |pair: &&str| !names(pair.split('=').next().unwrap_or(pair), name);
    query
        .split('&')
        .map(|part| part.split(';').filter(keep).collect::<Vec<_>>().join(";"))
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

/// Removes the cookie `name` from every `Cookie` header, dropping headers left empty.
fn remove_cookie(request: &mut RequestHeader, name: &str) {
    if cookie_values(request, name).next().is_none() {
        return;
    }
    let kept: Vec<String> = request
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(text)
        .map(|v| {
            v.split(';')
                .map(str::trim)
                .filter(|pair| !names(pair.split('=').next().unwrap_or(pair), name))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|v| !v.is_empty())
        .collect();
    request.remove_header(&COOKIE);
    for value in kept {
        let _ = request.append_header(COOKIE, value);
    }
}

#[cfg(test)]
mod tests;
