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
        let (origins, any_origin) = match (&raw.allowed_origins_env, raw.allowed_origins.is_empty())
        {
            (Some(_), false) => {
                self.error(
                    format!("{at}.allowed_origins_env"),
                    "set allowed_origins or allowed_origins_env, not both",
                );
                (Vec::new(), false)
            }
            // Checked by the same rules once the environment is read.
            (Some(_), true) => (Vec::new(), false),
            (None, _) => match origins(&raw.allowed_origins, raw.allow_credentials) {
                Ok(valid) => valid,
                Err(problems) => {
                    for (index, message) in problems {
                        let key = match index {
                            Some(index) => format!("{at}.allowed_origins[{index}]"),
                            None => format!("{at}.allowed_origins"),
                        };
                        self.error(key, message);
                    }
                    (Vec::new(), false)
                }
            },
        };
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
            origins_env: raw
                .allowed_origins_env
                .as_ref()
                .map(|name| (format!("{at}.allowed_origins_env"), name.clone())),
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

/// A problem with a list of origins: the index of the origin it is about (`None`: the list
/// as a whole), and what is wrong.
pub type OriginProblem = (Option<usize>, String);

/// The allowed origins, lower-cased, and whether `*` allows any; else each problem.
pub fn origins(
    listed: &[String],
    credentials: bool,
) -> Result<(Vec<String>, bool), Vec<OriginProblem>> {
    let mut problems = Vec::new();
    let any_origin = listed.iter().any(|o| o == "*");
    if listed.is_empty() {
        problems.push((
            None,
            "list the origins allowed, such as https://app.example.com".to_string(),
        ));
    }
    if any_origin && credentials {
        problems.push((
            None,
            "\"*\" cannot be combined with allow_credentials: list the origins".to_string(),
        ));
    }
    let mut origins = Vec::new();
    for (index, origin) in listed.iter().enumerate() {
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
            problems.push((Some(index), format!("invalid origin \"{origin}\": expected scheme://host[:port], such as https://app.example.com")));
        }
    }
    if problems.is_empty() {
        Ok((origins, any_origin))
    } else {
        Err(problems)
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
        // From the environment: checked by the same rules when it is read.
        let (policy, errors) = cors("allowed_origins_env: WEB_ORIGINS");
        assert!(errors.is_empty() && policy.origins.is_empty(), "{errors:?}");
        assert_eq!(
            policy.origins_env,
            Some(("cors.allowed_origins_env".into(), "WEB_ORIGINS".into()))
        );
        for (yaml, expected) in [
            ("allowed_origins: []", "cors.allowed_origins: list the origins allowed, such as https://app.example.com"),
            ("{ allowed_origins: [\"*\"], allow_credentials: true }", "cors.allowed_origins: \"*\" cannot be combined with allow_credentials: list the origins"),
            ("allowed_origins: [\"https://a.example/\"]", "cors.allowed_origins[0]: invalid origin \"https://a.example/\": expected scheme://host[:port], such as https://app.example.com"),
            ("{ allowed_origins: [\"*\"], allowed_methods: [TRACE] }", "cors.allowed_methods[0]: unsupported method \"TRACE\""),
            ("{ allowed_origins: [\"*\"], exposed_headers: [\"a b\"] }", "cors.exposed_headers[0]: invalid header name \"a b\""),
            ("{ allowed_origins: [\"*\"], max_age: 25h }", "cors.max_age: at most 24h"),
            ("{ allowed_origins: [\"*\"], allowed_origins_env: O }", "cors.allowed_origins_env: set allowed_origins or allowed_origins_env, not both"),
        ] {
            assert_eq!(cors(yaml).1, [expected], "{yaml}");
        }
    }
}
