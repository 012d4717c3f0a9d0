//! A route's `auth`: roles, venue scope, accepted credentials and token sources, the
//! lookups it asks; and the check that every authenticated route has a credential Usher can
//! verify.

use crate::config::compile::{merged, Compiler};
use crate::config::raw::{RawRoute, RawRouteDefaults};
use crate::config::{builtin, Access, AuthenticationSpec, RouteAuth, RouteSpec, TokenSource};
use crate::router::PathPattern;

impl Compiler<'_> {
    pub(super) fn route_auth(
        &mut self,
        at: &str,
        raw: &RawRoute,
        pattern: Option<&PathPattern>,
        authentication: &AuthenticationSpec,
        defaults: &RawRouteDefaults,
    ) -> RouteAuth {
        // A public route has no caller to ask about; `defaults` reports its own mistakes.
        let inherited_user_status = match raw.public || authentication.user_status.is_none() {
            true => None,
            false => defaults.user_status,
        };
        let Some(auth) = &raw.auth else {
            return RouteAuth {
                token_sources: builtin_token_sources(),
                user_status: merged(None, inherited_user_status, builtin::USER_STATUS),
                ..RouteAuth::default()
            };
        };
        let at = format!("{at}.auth");
        if raw.public {
            self.error(
                &at,
                "a public route has no caller to check; remove auth or public: true",
            );
        }
        for (key, roles) in [("roles", &auth.roles), ("admin_roles", &auth.admin_roles)] {
            if roles.iter().any(|r| r.trim().is_empty()) {
                self.error(format!("{at}.{key}"), "role names must not be empty");
            }
        }
        let venue_param = auth.venue_param.as_ref().and_then(|name| {
            let index = pattern.and_then(|p| p.param_names().position(|n| n == name));
            if index.is_none() && pattern.is_some() {
                self.error(
                    format!("{at}.venue_param"),
                    format!("the route's path has no :{name} parameter"),
                );
            }
            index
        });
        if let Some(pointer) = auth.venue_field.as_ref().filter(|p| !p.starts_with('/')) {
            self.error(
                format!("{at}.venue_field"),
                format!("\"{pointer}\" is not a JSON pointer: it starts with / (\"/venueId\")"),
            );
        }
        if !auth.signature_covers.is_empty() && !auth.signatures {
            self.error(
                format!("{at}.signature_covers"),
                "applies to signatures; set signatures: true",
            );
        }
        if auth.signatures && authentication.signatures.is_none() {
            self.error(
                format!("{at}.signatures"),
                "authentication.signatures is not configured",
            );
        }
        if auth.api_keys && authentication.api_keys.is_none() {
            self.error(
                format!("{at}.api_keys"),
                "authentication.api_keys is not configured",
            );
        }
        let mut token_sources = Vec::new();
        for (index, source) in auth.token_from.iter().enumerate() {
            match token_source(source) {
                Some(parsed) => token_sources.push(parsed),
                None => self.error(format!("{at}.token_from[{index}]"), format!("unknown token source \"{source}\": expected header, query:<name> or cookie:<name>")),
            }
        }
        if token_sources.is_empty() {
            token_sources = builtin_token_sources();
        }
        if auth.user_status == Some(true) && authentication.user_status.is_none() {
            self.error(
                format!("{at}.user_status"),
                "authentication.user_status is not configured",
            );
        }
        if auth.venue_check && authentication.venue_access.is_none() {
            self.error(
                format!("{at}.venue_check"),
                "authentication.venue_access is not configured",
            );
        }
        if auth.venue_check && auth.venue_param.is_none() {
            self.error(format!("{at}.venue_check"), "venue_check needs venue_param");
        }
        let fail_open = match merged(
            auth.on_dependency_failure.as_deref(),
            None,
            builtin::ON_DEPENDENCY_FAILURE,
        ) {
            "closed" => false,
            "open" => true,
            other => {
                self.error(
                    format!("{at}.on_dependency_failure"),
                    format!("\"{other}\": expected closed or open"),
                );
                false
            }
        };
        RouteAuth {
            roles: auth.roles.clone(),
            venue_param,
            venue_field: auth.venue_field.clone(),
            admin_roles: auth.admin_roles.clone(),
            api_keys: auth.api_keys,
            signatures: auth.signatures,
            signature_covers: auth
                .signature_covers
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            token_sources,
            user_status: merged(
                auth.user_status,
                inherited_user_status,
                builtin::USER_STATUS,
            ),
            venue_check: auth.venue_check,
            fail_open,
            forward_credential: auth.forward_credential,
        }
    }

    /// An authenticated route with no credential Usher could verify would refuse every
    /// caller: a configuration mistake, not a policy. One error when nothing is configured
    /// at all, otherwise one per route that accepts only what is missing.
    pub(super) fn check_credential_sources(
        &mut self,
        routes: &[(usize, RouteSpec)],
        authentication: &AuthenticationSpec,
    ) {
        // What a broken authentication section or route lacks is reported there already.
        let reported = |prefix: &str| self.errors.any_under(prefix);
        if reported("authentication") {
            return;
        }
        let has_jwt = authentication.jwt.is_some();
        let has_api_keys = authentication.api_keys.is_some();
        let has_signatures = authentication.signatures.is_some();
        let stranded: Vec<&(usize, RouteSpec)> = routes
            .iter()
            .filter(|(_, route)| !matches!(route.access, Access::Public))
            .filter(|(_, route)| {
                !(has_jwt
                    || (route.auth.api_keys && has_api_keys)
                    || (route.auth.signatures && has_signatures))
            })
            .filter(|(index, _)| !reported(&format!("routes[{index}].auth")))
            .collect();
        if stranded.is_empty() {
            return;
        }
        if !has_jwt && !has_api_keys {
            let names: Vec<String> = stranded
                .iter()
                .map(|(_, route)| format!("\"{}\"", route.name))
                .collect();
            self.error(
                "authentication",
                format!(
                    "neither jwt nor api_keys is configured, so these authenticated routes would refuse every caller: {} (configure authentication, or mark a route public: true)",
                    names.join(", ")
                ),
            );
            return;
        }
        for (index, _) in stranded {
            self.error(
                format!("routes[{index}].auth"),
                "accepts only JWTs, and authentication.jwt is not configured: set auth.api_keys: true or configure jwt",
            );
        }
    }
}

/// `header`, `query:<name>` or `cookie:<name>`.
fn token_source(text: &str) -> Option<TokenSource> {
    match text.split_once(':') {
        None if text == "header" => Some(TokenSource::BearerHeader),
        Some(("query", name)) if !name.is_empty() => Some(TokenSource::Query(name.to_string())),
        Some(("cookie", name)) if !name.is_empty() => Some(TokenSource::Cookie(name.to_string())),
        _ => None,
    }
}

/// Where a route that names no token source takes tokens from.
fn builtin_token_sources() -> Vec<TokenSource> {
    builtin::TOKEN_FROM
        .iter()
        .map(|text| token_source(text).expect("the built-in token sources parse"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::{assert_file_errors, file};

    const HEAD: &str = "authentication: { jwt: { issuer: i, audiences: [a], keys: [{ algorithm: HS256, secret_env: S }] } }\nupstreams: { u: { targets: [\"u:1\"] } }\nroutes:\n";

    fn route(auth: &str) -> String {
        format!(
            "{HEAD}  - {{ name: r, match: {{ path: /venues/:venueId }}, upstream: u, {auth} }}\n"
        )
    }

    #[test]
    fn route_auth() {
        let config = file(&route("auth: { roles: [admin], venue_param: venueId, token_from: [\"query:t\", header], on_dependency_failure: open }"));
        let auth = &config.routes[0].auth;
        assert_eq!((auth.venue_param, auth.fail_open), (Some(0), true));
        assert_eq!(
            auth.token_sources,
            [TokenSource::Query("t".into()), TokenSource::BearerHeader]
        );
        for written in ["timeout: 1s", "auth: { roles: [a] }"] {
            let config = file(&route(written));
            assert_eq!(config.routes[0].auth.token_sources, builtin_token_sources());
            assert!(!config.routes[0].auth.fail_open);
        }
        let at = "routes[0].auth";
        assert_file_errors(&[
            (&route("public: true, auth: {}"), &[&format!("{at}: a public route has no caller to check; remove auth or public: true")]),
            (&route("auth: { roles: [\"\"], venue_param: id }"), &[
                &format!("{at}.roles: role names must not be empty"),
                &format!("{at}.venue_param: the route's path has no :id parameter"),
            ]),
            (&route("auth: { api_keys: true, user_status: true, venue_check: true }"), &[
                &format!("{at}.api_keys: authentication.api_keys is not configured"),
                &format!("{at}.user_status: authentication.user_status is not configured"),
                &format!("{at}.venue_check: authentication.venue_access is not configured"),
                &format!("{at}.venue_check: venue_check needs venue_param"),
            ]),
            (&route("auth: { token_from: [\"cookie:\"], on_dependency_failure: maybe }"), &[
                &format!("{at}.token_from[0]: unknown token source \"cookie:\": expected header, query:<name> or cookie:<name>"),
                &format!("{at}.on_dependency_failure: \"maybe\": expected closed or open"),
            ]),
        ]);
    }

    #[test]
    fn user_status_is_inherited_from_defaults_by_authenticated_routes() {
        let table = |lookup: &str| {
            format!("authentication: {{ jwt: {{ issuer: i, audiences: [a], keys: [{{ algorithm: HS256, secret_env: S }}] }}{lookup} }}\ndefaults: {{ route: {{ user_status: true }} }}\nupstreams: {{ u: {{ targets: [\"u:1\"] }} }}\nroutes:\n  - {{ name: a, match: {{ path: /a }}, upstream: u }}\n  - {{ name: b, match: {{ path: /b }}, upstream: u, auth: {{ user_status: false }} }}\n  - {{ name: c, match: {{ path: /c }}, upstream: u, public: true }}\n  - {{ name: d, match: {{ path: /d }}, upstream: u, public_paths: [/open], auth: {{ roles: [x] }} }}\n")
        };
        let config = file(&table(", user_status: { url: \"http://auth/u/{sub}\" }"));
        let asks: Vec<bool> = config.routes.iter().map(|r| r.auth.user_status).collect();
        assert_eq!(asks, [true, false, false, true]);
        // Without the lookup, the default is one mistake with one error.
        assert_file_errors(&[(
            &table(""),
            &["defaults.route.user_status: authentication.user_status is not configured"],
        )]);
    }

    #[test]
    fn authenticated_routes_need_a_verifiable_credential() {
        let upstream = "upstreams: { u: { targets: [\"u:1\"] } }\n";
        assert_file_errors(&[
            (&format!("{upstream}routes: [{{ name: a, match: {{ path: /a }}, upstream: u }}, {{ name: b, match: {{ path: /b }}, upstream: u, public: true }}]"), &["authentication: neither jwt nor api_keys is configured, so these authenticated routes would refuse every caller: \"a\" (configure authentication, or mark a route public: true)"]),
            (&format!("authentication: {{ api_keys: {{ file: k }} }}\n{upstream}routes: [{{ name: a, match: {{ path: /a }}, upstream: u }}, {{ name: b, match: {{ path: /b }}, upstream: u, auth: {{ api_keys: true }} }}]"), &["routes[0].auth: accepts only JWTs, and authentication.jwt is not configured: set auth.api_keys: true or configure jwt"]),
        ]);
    }
}
