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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::section;

    fn cors(yaml: &str) -> (CorsPolicy, Vec<String>) {
        section(yaml, |c, raw| c.cors("cors", raw))
    }

    #[test]
    fn cors_policies() {
        let (policy, errors) = cors("allowed_origins: [\"https://App.example.com\"]");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policy.origins, ["https://app.example.com"]);
        assert_eq!(policy.methods_value, builtin::CORS_METHODS.join(", "));
        assert_eq!(
            policy.max_age_value,
            builtin::CORS_MAX_AGE.as_secs().to_string()
        );
        assert_eq!(policy.exposed_value, None);
        let (policy, _) = cors("{ allowed_origins: [\"*\"], allowed_methods: [GET], allowed_headers: [Authorization], max_age: 1m }");
        assert!(policy.any_origin && policy.origins.is_empty());
        assert_eq!(
            (policy.methods_value.as_str(), policy.headers_value.as_str()),
            ("GET", "authorization")
        );
        assert_eq!(policy.max_age_value, "60");
        for (yaml, expected) in [
            ("allowed_origins: []", "cors.allowed_origins: list the origins allowed, such as https://app.example.com"),
            ("{ allowed_origins: [\"*\"], allow_credentials: true }", "cors.allowed_origins: \"*\" cannot be combined with allow_credentials: list the origins"),
            ("allowed_origins: [\"https://a.example/\"]", "cors.allowed_origins[0]: invalid origin \"https://a.example/\": expected scheme://host[:port], such as https://app.example.com"),
            ("{ allowed_origins: [\"*\"], allowed_methods: [TRACE] }", "cors.allowed_methods[0]: unsupported method \"TRACE\""),
            ("{ allowed_origins: [\"*\"], exposed_headers: [\"a b\"] }", "cors.exposed_headers[0]: invalid header name \"a b\""),
            ("{ allowed_origins: [\"*\"], max_age: 25h }", "cors.max_age: at most 24h"),
        ] {
            assert_eq!(cors(yaml).1, [expected], "{yaml}");
        }
    }
}
