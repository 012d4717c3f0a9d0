//! A CORS policy, the global `cors` section or a route's own: origins checked and header
//! values built once.

use super::{merged, Compiler, METHODS};
use crate::config::builtin;
use crate::config::raw::RawCors;
use crate::config::CorsPolicy;
use std::str::FromStr;
use std::time::Duration;

/// The longest a browser may cache a preflight's answer.
const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);

impl Compiler<'_> {
    pub(super) fn cors(&mut self, at: &str, raw: &RawCors) -> CorsPolicy {
        let any_origin = raw.allowed_origins.iter().any(|o| o == "*");
        if raw.allowed_origins.is_empty() {
            self.error(
                format!("{at}.allowed_origins"),
                "list the origins allowed, such as https://app.example.com",
            );
        }
        if any_origin && raw.allow_credentials {
            self.error(
                format!("{at}.allowed_origins"),
                "\"*\" cannot be combined with allow_credentials: list the origins",
            );
        }
        let mut origins = Vec::new();
        for (index, origin) in raw.allowed_origins.iter().enumerate() {
            if origin == "*" {
                continue;
            }
            let valid = origin
                .parse::<http::Uri>()
                .ok()
                .filter(|uri| {
                    matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.host().is_some()
                        && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
                })
                .is_some()
                && !origin.ends_with('/');
            if valid {
                origins.push(origin.to_ascii_lowercase());
            } else {
                self.error(format!("{at}.allowed_origins[{index}]"), format!("invalid origin \"{origin}\": expected scheme://host[:port], such as https://app.example.com"));
            }
        }
        let method_names: Vec<&str> = match &raw.allowed_methods {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => builtin::CORS_METHODS.to_vec(),
        };
        let mut methods = Vec::new();
        for (index, method) in method_names.iter().enumerate() {
            match METHODS.contains(method) {
                true => methods.push(http::Method::from_str(method).expect("listed methods parse")),
                false => self.error(
                    format!("{at}.allowed_methods[{index}]"),
                    format!("unsupported method \"{method}\""),
                ),
            }
        }
        let mut header_names = |key: &str, list: &[String]| -> Vec<String> {
            list.iter()
                .enumerate()
                .filter_map(|(index, name)| {
                    let lower = name.to_ascii_lowercase();
                    if http::HeaderName::from_str(&lower).is_err() {
                        self.error(
                            format!("{at}.{key}[{index}]"),
                            format!("invalid header name \"{name}\""),
                        );
                        return None;
                    }
                    Some(lower)
                })
                .collect()
        };
        let headers = header_names("allowed_headers", &raw.allowed_headers);
        let exposed = header_names("exposed_headers", &raw.exposed_headers);
        let max_age = merged(raw.max_age, None, builtin::CORS_MAX_AGE);
        if max_age > MAX_MAX_AGE {
            self.error(format!("{at}.max_age"), "at most 24h");
        }
        CorsPolicy {
            origins,
            any_origin,
            methods_value: methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            methods,
            headers_value: headers.join(", "),
            headers,
            exposed_value: (!exposed.is_empty()).then(|| exposed.join(", ")),
            credentials: raw.allow_credentials,
            max_age_value: max_age.as_secs().to_string(),
        }
    }
}
