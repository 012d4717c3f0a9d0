//! The `authentication` section: API keys, the user-status and venue-access lookups and token
//! revocation; JWT verification is [`jwt`]'s.

use super::{merged, Compiler};
use crate::config::builtin;
use crate::config::raw::{RawAuthentication, RawLookup, RawRevocation};
use crate::config::{ApiKeysSpec, AuthenticationSpec, LookupSpec, RevocationSpec};
use std::str::FromStr;
use std::time::Duration;

mod jwt;
mod signatures;

/// The longest a revocation may take to reach every replica.
const MAX_REVOCATION_CACHE_TTL: Duration = Duration::from_secs(60);

impl Compiler<'_> {
    pub(super) fn authentication(&mut self, raw: &RawAuthentication) -> AuthenticationSpec {
        let jwt = raw.jwt.as_ref().map(|jwt| self.jwt(jwt));
        let api_keys = raw.api_keys.as_ref().map(|keys| {
            if keys.file.trim().is_empty() {
                self.error(
                    "authentication.api_keys.file",
                    "must name the file of hashed keys",
                );
            }
            let header =
                merged(keys.header.as_deref(), None, builtin::API_KEY_HEADER).to_ascii_lowercase();
            if http::HeaderName::from_str(&header).is_err() {
                self.error(
                    "authentication.api_keys.header",
                    format!("invalid header name \"{header}\""),
                );
            }
            ApiKeysSpec {
                file: keys.file.clone(),
                header,
            }
        });
        let signatures = raw.signatures.as_ref().map(|raw| self.signatures(raw));
        let user_status = raw
            .user_status
            .as_ref()
            .map(|l| self.lookup("authentication.user_status", l, &["{sub}"]));
        // The service is asked only through the URL: without {sub} every caller would get the
        // same (cached) answer for a venue.
        let venue_access = raw
            .venue_access
            .as_ref()
            .map(|l| self.lookup("authentication.venue_access", l, &["{venue}", "{sub}"]));
        let revocation = raw.revocation.as_ref().map(|r| self.revocation(r));
        if revocation.is_some() && jwt.is_none() {
            self.error(
                "authentication.revocation",
                "revocation applies to tokens: configure authentication.jwt",
            );
        }
        AuthenticationSpec {
            jwt,
            api_keys,
            signatures,
            user_status,
            venue_access,
            revocation,
        }
    }

    fn revocation(&mut self, raw: &RawRevocation) -> RevocationSpec {
        let at = "authentication.revocation";
        let key_template = merged(
            raw.key_template.as_deref(),
            None,
            builtin::REVOCATION_KEY_TEMPLATE,
        )
        .to_string();
        if !key_template.contains("{jti}") {
            self.error(
                format!("{at}.key_template"),
                format!("\"{key_template}\" must contain {{jti}}"),
            );
        }
        if raw.file.as_deref().is_some_and(|f| f.trim().is_empty()) {
            self.error(format!("{at}.file"), "must name a file");
        }
        let cache_ttl = merged(raw.cache_ttl, None, builtin::REVOCATION_CACHE_TTL);
        let stale_if_error = merged(raw.stale_if_error, None, builtin::REVOCATION_STALE_IF_ERROR);
        if cache_ttl > MAX_REVOCATION_CACHE_TTL {
            self.error(
                format!("{at}.cache_ttl"),
                "at most 1m: a revocation takes this long to reach every replica",
            );
        }
        if stale_if_error < cache_ttl {
            self.error(
                format!("{at}.stale_if_error"),
                "must be at least cache_ttl (an answer is reused that long anyway)",
            );
        }
        RevocationSpec {
            key_template,
            file: raw.file.clone(),
            cache_ttl,
            stale_if_error,
        }
    }

    fn lookup(&mut self, at: &str, raw: &RawLookup, required: &[&str]) -> LookupSpec {
        let valid = (raw.url.starts_with("http://") || raw.url.starts_with("https://"))
            && raw
                .url
                .replace(['{', '}'], "")
                .parse::<http::Uri>()
                .is_ok_and(|u| u.host().is_some());
        if !valid {
            self.error(format!("{at}.url"), format!("invalid URL \"{}\": expected http(s)://host[:port]/path with {{sub}}, {{tenant}} or {{venue}} placeholders", raw.url));
        }
        for placeholder in required {
            if !raw.url.contains(placeholder) {
                self.error(
                    format!("{at}.url"),
                    format!("the URL must contain {placeholder}"),
                );
            }
        }
        let spec = LookupSpec {
            url_template: raw.url.clone(),
            cache_ttl: merged(raw.cache_ttl, None, builtin::LOOKUP_CACHE_TTL),
            negative_cache_ttl: merged(
                raw.negative_cache_ttl,
                None,
                builtin::LOOKUP_NEGATIVE_CACHE_TTL,
            ),
            timeout: merged(raw.timeout, None, builtin::LOOKUP_TIMEOUT),
        };
        self.positive(&format!("{at}.timeout"), spec.timeout);
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::section;

    fn authentication(yaml: &str) -> (AuthenticationSpec, Vec<String>) {
        section(yaml, |c, raw| c.authentication(raw))
    }

    const JWT: &str =
        "jwt: { issuer: i, audiences: [a], keys: [{ algorithm: HS256, secret_env: S }] }";

    #[test]
    fn api_keys_lookups_and_revocation_default() {
        let (spec, errors) = authentication(&format!(
            "{{ {JWT}, api_keys: {{ file: k.yaml }}, user_status: {{ url: \"http://users/{{sub}}\" }}, revocation: {{ file: r.txt }} }}"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(spec.api_keys.unwrap().header, builtin::API_KEY_HEADER);
        let lookup = spec.user_status.unwrap();
        assert_eq!(
            (lookup.cache_ttl, lookup.negative_cache_ttl, lookup.timeout),
            (
                builtin::LOOKUP_CACHE_TTL,
                builtin::LOOKUP_NEGATIVE_CACHE_TTL,
                builtin::LOOKUP_TIMEOUT
            )
        );
        let revocation = spec.revocation.unwrap();
        assert_eq!(revocation.key_template, builtin::REVOCATION_KEY_TEMPLATE);
        assert_eq!(
            (revocation.cache_ttl, revocation.stale_if_error),
            (
                builtin::REVOCATION_CACHE_TTL,
                builtin::REVOCATION_STALE_IF_ERROR
            )
        );
        let (spec, _) = authentication("api_keys: { file: k.yaml, header: X-Key }");
        assert_eq!(spec.api_keys.unwrap().header, "x-key");
    }

    #[test]
    fn authentication_errors() {
        for (yaml, expected) in [
            ("api_keys: { file: \" \" }", &["authentication.api_keys.file: must name the file of hashed keys"][..]),
            ("api_keys: { file: k, header: \"a b\" }", &["authentication.api_keys.header: invalid header name \"a b\""]),
            ("user_status: { url: \"ftp://users/{sub}\" }", &["authentication.user_status.url: invalid URL \"ftp://users/{sub}\": expected http(s)://host[:port]/path with {sub}, {tenant} or {venue} placeholders"]),
            ("venue_access: { url: \"http://venues/{venue}\", timeout: 0s }", &["authentication.venue_access.url: the URL must contain {sub}", "authentication.venue_access.timeout: must be greater than zero"]),
            ("revocation: { file: r }", &["authentication.revocation: revocation applies to tokens: configure authentication.jwt"]),
            (&format!("{{ {JWT}, revocation: {{ key_template: \"x\", file: \"\", cache_ttl: 2m }} }}"), &[
                "authentication.revocation.key_template: \"x\" must contain {jti}",
                "authentication.revocation.file: must name a file",
                "authentication.revocation.cache_ttl: at most 1m: a revocation takes this long to reach every replica",
            ]),
            (&format!("{{ {JWT}, revocation: {{ file: r, cache_ttl: 10s, stale_if_error: 5s }} }}"), &["authentication.revocation.stale_if_error: must be at least cache_ttl (an answer is reused that long anyway)"]),
        ] {
            assert_eq!(authentication(yaml).1, expected, "{yaml}");
        }
    }
}
