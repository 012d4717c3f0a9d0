//! `routes` and `defaults.route`: each route's match, upstream, rewrite, access, deadline and
//! body limit; its `auth` is [`auth`]'s, and the checks across routes (duplicate names,
//! routes that can never match) are [`unreachable`]'s.

use super::{closest, is_label, merged, Compiler, METHODS};
use crate::config::raw::{RawMatch, RawRoute, RawRouteDefaults, RawRouteTracing};
use crate::config::{
    bounds, builtin, Access, AuthenticationSpec, CorsPolicy, IdempotencySpec, PublicPath,
    RateLimiting, RouteSpec, RouteTarget, StoreFailure, UpstreamSpec,
};
use crate::router::{PathPattern, PathTemplate};
use crate::telemetry::traces::sampler::{self, Sampler};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

mod approval;
mod auth;
mod unreachable;
mod validate;
mod webhook;

/// What a route or an alias matches; `None` where its key had an error.
pub(super) struct Matcher {
    pub pattern: Option<PathPattern>,
    pub methods: Option<Vec<http::Method>>,
    pub host: Option<String>,
}

/// What every route is compiled against: already compiled sections of the file.
pub(super) struct RouteInputs<'a> {
    pub defaults: &'a RawRouteDefaults,
    pub upstreams: &'a [UpstreamSpec],
    pub authentication: &'a AuthenticationSpec,
    pub cors: &'a Option<Arc<CorsPolicy>>,
    pub rate_limiting: &'a RateLimiting,
}

impl Compiler<'_> {
    /// Every route that compiles, in file order; then the checks across routes.
    pub(super) fn routes(&mut self, raw: &[RawRoute], inputs: &RouteInputs<'_>) -> Vec<RouteSpec> {
        let names: HashMap<&str, usize> = inputs
            .upstreams
            .iter()
            .enumerate()
            .map(|(index, upstream)| (&*upstream.name, index))
            .collect();
        let mut routes = Vec::new();
        for (index, route) in raw.iter().enumerate() {
            if let Some(route) = self.route(index, route, inputs, &names) {
                routes.push((index, route));
            }
        }
        self.check_unreachable(&routes);
        self.check_approvals_served(&routes);
        self.check_credential_sources(&routes, inputs.authentication);
        routes.into_iter().map(|(_, route)| route).collect()
    }

    fn route(
        &mut self,
        index: usize,
        raw: &RawRoute,
        inputs: &RouteInputs<'_>,
        names: &HashMap<&str, usize>,
    ) -> Option<RouteSpec> {
        let RouteInputs {
            defaults,
            upstreams,
            authentication,
            cors: global_cors,
            rate_limiting,
        } = *inputs;
        let at = format!("routes[{index}]");
        let errors_before = self.errors.count();
        self.entry_name(&at, "route", &raw.name);
        let Matcher {
            pattern,
            methods,
            host,
        } = self.matcher(&at, &raw.matcher);
        let target = match (&raw.upstream, raw.serve.as_deref()) {
            (Some(name), None) => match names.get(name.as_str()) {
                Some(&upstream) => Some(RouteTarget::Upstream(upstream)),
                None => {
                    let hint = closest(name, names.keys().copied())
                        .map(|name| format!(" (did you mean \"{name}\"?)"))
                        .unwrap_or_default();
                    self.error(
                        format!("{at}.upstream"),
                        format!("unknown upstream \"{name}\"{hint}"),
                    );
                    None
                }
            },
            (None, Some("approvals")) => {
                self.served_route(&at, raw);
                Some(RouteTarget::Approvals)
            }
            (None, Some(other)) => {
                self.error(
                    format!("{at}.serve"),
                    format!("\"{other}\": expected approvals"),
                );
                None
            }
            _ => {
                self.error(&at, "set exactly one of upstream: NAME or serve: approvals");
                None
            }
        };
        let rewrite = raw.rewrite.as_ref().and_then(|rewrite| {
            let (key, text) = match (rewrite.strip_prefix, &rewrite.replace_prefix) {
                (Some(true), None) => ("strip_prefix", "/"),
                (None, Some(template)) => ("replace_prefix", template.as_str()),
                _ => {
                    self.error(
                        format!("{at}.rewrite"),
                        "set exactly one of strip_prefix: true or replace_prefix: /path",
                    );
                    return None;
                }
            };
            match PathTemplate::compile(text, pattern.as_ref()?) {
                Ok(template) => Some(template),
                Err(message) => {
                    self.error(format!("{at}.rewrite.{key}"), message);
                    None
                }
            }
        });
        let access = match (raw.public, raw.public_paths.is_empty()) {
            (true, true) => Access::Public,
            (false, true) => Access::Authenticated,
            (true, false) => {
                self.error(
                    format!("{at}.public_paths"),
                    "the whole route is already public; remove public_paths or public: true",
                );
                Access::Public
            }
            (false, false) => {
                let mut paths = Vec::new();
                for (i, text) in raw.public_paths.iter().enumerate() {
                    let (tail, subtree) = match text.strip_suffix("/*") {
                        Some(tail) => (if tail.is_empty() { "/" } else { tail }, true),
                        None => (text.as_str(), false),
                    };
                    match (PathPattern::parse(tail), &pattern) {
                        (Ok(tail), Some(pattern)) => paths.push(PublicPath { pattern: pattern.join(&tail), subtree }),
                        (Err(message), _) => self.error(format!("{at}.public_paths[{i}]"), format!("{message} (public paths are relative to the route's path; end with /* for a subtree)")),
                        (Ok(_), None) => {}
                    }
                }
                Access::PublicPaths(paths)
            }
        };
        let timeout = raw
            .timeout
            .map(|d| self.positive(&format!("{at}.timeout"), d.0));
        let max_body = merged(raw.max_body, defaults.max_body, builtin::MAX_BODY);
        let idempotency = raw.idempotency.as_ref().map(|own| IdempotencySpec {
            required: merged(own.required, None, builtin::IDEMPOTENCY_REQUIRED),
            ttl: merged(own.ttl, None, builtin::IDEMPOTENCY_TTL),
            max_response: merged(own.max_response, None, builtin::IDEMPOTENCY_MAX_RESPONSE),
            on_store_failure: match merged(
                own.on_store_failure.as_deref(),
                None,
                builtin::IDEMPOTENCY_ON_STORE_FAILURE,
            ) {
                "open" => StoreFailure::Open,
                "closed" => StoreFailure::Closed,
                other => {
                    self.error(
                        format!("{at}.idempotency.on_store_failure"),
                        format!("\"{other}\": expected closed or open (a record kept by one replica protects nothing on the others)"),
                    );
                    StoreFailure::Closed
                }
            },
        });
        if idempotency.is_some() {
            if raw.public {
                self.error(
                    format!("{at}.idempotency"),
                    "needs an authenticated route: keys are scoped to the caller",
                );
            }
            self.reads_whole_body(&format!("{at}.idempotency"), raw, max_body);
        }
        let (body_schema, param_patterns) =
            self.route_validation(&at, raw, pattern.as_ref(), max_body);
        let rate_limits = self.route_limits(&at, raw, pattern.as_ref(), rate_limiting);
        let budgets = rate_limits
            .iter()
            .any(|attached| rate_limiting.policies[attached.policy].amount.is_some());
        if budgets {
            self.reads_whole_body(&format!("{at}.rate_limits"), raw, max_body);
        }
        let signed = raw.auth.as_ref().is_some_and(|a| a.signatures);
        if signed {
            self.reads_whole_body(&format!("{at}.auth.signatures"), raw, max_body);
        }
        let venue_in_body = raw.auth.as_ref().is_some_and(|a| a.venue_field.is_some());
        if venue_in_body {
            if raw.public {
                self.error(
                    format!("{at}.auth.venue_field"),
                    "needs an authenticated route: the scope is the caller's",
                );
            }
            self.reads_whole_body(&format!("{at}.auth.venue_field"), raw, max_body);
        }
        let approval = self.route_approval(&at, raw, max_body);
        let webhook = self.route_webhook(&at, raw, max_body);
        // Idempotency, body schemas, budgets, a venue in the body and approvals read the
        // body: they need it before the upstream.
        let reads_body = idempotency.is_some()
            || body_schema.is_some()
            || budgets
            || venue_in_body
            || approval.is_some()
            || webhook.is_some()
            || signed;
        let buffer_body = reads_body
            || raw
                .buffer_body
                .unwrap_or_else(|| builtin::buffer_body(max_body));
        if buffer_body && !reads_body && max_body > builtin::MAX_BUFFERED_BODY {
            self.error(
                format!("{at}.buffer_body"),
                format!(
                    "a buffered body may be at most {} KiB (max_body is {max_body} bytes): Pingora forwards it from its retry buffer",
                    builtin::MAX_BUFFERED_BODY >> 10
                ),
            );
        }
        let auth = self.route_auth(&at, raw, pattern.as_ref(), authentication, defaults);
        let cors = match &raw.cors {
            Some(own) => Some(Arc::new(self.cors(&format!("{at}.cors"), own))),
            None => global_cors.clone(),
        };
        let trace_sampler = raw
            .tracing
            .as_ref()
            .and_then(|tracing| self.route_sampler(&at, tracing));
        if self.errors.count() > errors_before {
            return None;
        }
        let target = target?;
        let default_timeout = match target {
            RouteTarget::Upstream(upstream) => upstreams[upstream].timeouts.total,
            RouteTarget::Approvals => builtin::SERVED_TIMEOUT,
        };
        Some(RouteSpec {
            name: Arc::from(raw.name.as_str()),
            host,
            pattern_text: Arc::from(pattern.as_ref()?.to_string()),
            pattern: pattern?,
            methods,
            exact: raw.matcher.exact,
            target,
            rewrite,
            access,
            timeout: timeout.unwrap_or(default_timeout),
            max_body,
            buffer_body,
            reads_body,
            idempotency,
            body_schema,
            param_patterns,
            auth,
            websocket: raw.websocket,
            cors,
            rate_limits,
            has_budgets: budgets,
            approval,
            webhook,
            trace_sampler,
        })
    }

    /// A route's `tracing`: a sampler the specification names, and a ratio for those that
    /// take one.
    fn route_sampler(&mut self, at: &str, tracing: &RawRouteTracing) -> Option<Sampler> {
        let name = tracing.sampler.as_str();
        if !sampler::NAMES.contains(&name) {
            let hint = closest(name, sampler::NAMES.into_iter())
                .map(|name| format!(" (did you mean \"{name}\"?)"))
                .unwrap_or_default();
            let names = sampler::NAMES.join(", ");
            self.error(
                format!("{at}.tracing.sampler"),
                format!("unknown sampler \"{name}\"{hint}: expected one of {names}"),
            );
            return None;
        }
        sampler::parse(name, tracing.ratio)
            .map_err(|message| self.error(format!("{at}.tracing.ratio"), message))
            .ok()
    }

    /// A feature that reads the whole body before the upstream (idempotency, a body schema)
    /// needs it within the retry buffer Pingora forwards it from.
    /// What `key` names reads the whole body before the upstream: the route must not say
    /// `buffer_body: false`, and its body must fit the retry buffer.
    pub(super) fn reads_whole_body(&mut self, key: &str, raw: &RawRoute, max_body: u64) {
        if raw.buffer_body == Some(false) {
            self.error(
                key,
                "needs the whole body before the upstream; remove buffer_body: false",
            );
        } else if max_body > builtin::MAX_BUFFERED_BODY {
            self.error(
                key,
                format!(
                    "needs the whole body, which may be at most {} KiB (max_body is {max_body} bytes)",
                    builtin::MAX_BUFFERED_BODY >> 10
                ),
            );
        }
    }

    /// A route's or an alias's `name` (`kind` says which): it becomes a metric label and
    /// a log field.
    pub(super) fn entry_name(&mut self, at: &str, kind: &str, name: &str) {
        if !is_label(name) {
            self.error(
                format!("{at}.name"),
                format!("{kind} names may hold only lower-case letters, digits, - and _"),
            );
        } else if name.len() > bounds::MAX_NAME {
            self.error(
                format!("{at}.name"),
                format!(
                    "{kind} names may be at most {} characters",
                    bounds::MAX_NAME
                ),
            );
        }
    }

    /// A route's or an alias's `match`.
    pub(super) fn matcher(&mut self, at: &str, raw: &RawMatch) -> Matcher {
        let pattern = PathPattern::parse(&raw.path)
            .map_err(|message| self.error(format!("{at}.match.path"), message))
            .ok();
        let methods = raw.methods.as_ref().map(|methods| {
            if methods.is_empty() {
                self.error(
                    format!("{at}.match.methods"),
                    "an empty list matches nothing; leave methods out to accept every method",
                );
            }
            let mut parsed: Vec<http::Method> = Vec::new();
            for (i, method) in methods.iter().enumerate() {
                let path = format!("{at}.match.methods[{i}]");
                if !METHODS.contains(&method.as_str()) {
                    self.error(
                        path,
                        format!(
                            "unsupported method \"{method}\": expected one of {}",
                            METHODS.join(", ")
                        ),
                    );
                } else if parsed.iter().any(|m| m.as_str() == method) {
                    self.error(path, format!("method {method} is listed twice"));
                } else {
                    parsed.push(http::Method::from_str(method).expect("listed methods parse"));
                }
            }
            parsed
        });
        let host = raw.host.as_ref().map(|host| {
            let valid = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !valid {
                self.error(format!("{at}.match.host"), format!("invalid host \"{host}\": expected a host name without port, such as api.example.com"));
            }
            crate::router::host_name(host).to_ascii_lowercase()
        });
        Matcher {
            pattern,
            methods,
            host,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::builtin;
    use crate::config::compile::testing::{assert_file_errors, file};
    use std::time::Duration;

    const UPSTREAMS: &str =
        "upstreams: { tickets: { targets: [\"t:1\"], timeouts: { total: 7s } } }\n";

    fn routes(routes: &str) -> String {
        format!("{UPSTREAMS}routes:\n{routes}")
    }

    #[test]
    fn routes_take_their_upstream_deadline_and_the_default_body_limit() {
        let config = file(&routes("  - { name: a, match: { path: /a, host: A.example.com }, upstream: tickets, public: true, rewrite: { strip_prefix: true } }\n  - { name: b, match: { path: /b }, upstream: tickets, public: true, timeout: 2s, max_body: 1KiB }\n"));
        let (a, b) = (&config.routes[0], &config.routes[1]);
        assert_eq!(
            (a.timeout, a.max_body),
            (Duration::from_secs(7), builtin::MAX_BODY)
        );
        assert_eq!(
            (a.host.as_deref(), a.rewrite.as_ref().map(|r| r.to_string())),
            (Some("a.example.com"), Some("/".to_string()))
        );
        assert_eq!((b.timeout, b.max_body), (Duration::from_secs(2), 1024));
        let config = file(&format!(
            "defaults: {{ route: {{ max_body: 2KiB }} }}\n{}",
            routes("  - { name: a, match: { path: /a }, upstream: tickets, public: true }\n")
        ));
        assert_eq!(config.routes[0].max_body, 2048);
    }

    #[test]
    fn only_a_route_with_a_stage_that_reads_the_body_runs_those_stages() {
        let config = file(&routes(concat!(
            "  - { name: streamed, match: { path: /a }, upstream: tickets, public: true }\n",
            "  - { name: buffered, match: { path: /b }, upstream: tickets, public: true, max_body: 8KiB }\n",
            "  - { name: schema, match: { path: /c }, upstream: tickets, public: true, max_body: 8KiB, validate: { body_schema: s.json } }\n",
        )));
        let read = |route: &super::RouteSpec| (route.buffer_body, route.reads_body);
        let [streamed, buffered, schema] = [0, 1, 2].map(|i| read(&config.routes[i]));
        assert_eq!(streamed, (false, false));
        assert_eq!(
            buffered,
            (true, false),
            "a small body is buffered, and read by no stage"
        );
        assert_eq!(schema, (true, true));
    }

    #[test]
    fn route_errors() {
        let one = |route: &str| routes(&format!("  - {{ {route} }}\n"));
        let served = "  - { name: approvals, match: { path: /approvals }, serve: approvals }\n";
        assert_file_errors(&[
            (&one("name: a, match: { path: /a }, upstream: tickets, max_body: 1KiB, approval: { length_of: /ids, above: 5 }"), &[
                "routes[0].approval.roles: name the roles an approver needs (or give the route auth.roles)",
            ]),
            (&one("name: a, match: { path: /a }, upstream: tickets, max_body: 1KiB, auth: { roles: [admin] }, approval: { length_of: /ids, above: 5 }"), &[
                "authentication: neither jwt nor api_keys is configured, so these authenticated routes would refuse every caller: \"a\" (configure authentication, or mark a route public: true)",
                "routes[0].approval: no route has serve: approvals, so nobody could approve",
            ]),
            (&routes(&format!("{served}  - {{ name: a, match: {{ path: /a }}, upstream: tickets, public: true, max_body: 1KiB, approval: {{ number_at: /n, above: 1, roles: [admin], approvals: 0, expires: 0s }} }}\n")), &[
                "authentication: neither jwt nor api_keys is configured, so these authenticated routes would refuse every caller: \"approvals\" (configure authentication, or mark a route public: true)",
                "routes[1].approval: needs an authenticated route: approvals are bound to the submitter",
                "routes[1].approval.approvals: must be at least 1",
                "routes[1].approval.expires: must be greater than zero",
            ]),
            (&one("name: a, match: { path: /a }, serve: approvals, public: true, rewrite: { strip_prefix: true }"), &[
                "routes[0].public: the approvals endpoint acts for the caller; it cannot be public",
                "routes[0].rewrite: applies to requests that go upstream; serve: approvals answers at the edge",
            ]),
            (&one("name: a, match: { path: /a }, serve: coffee"), &["routes[0].serve: \"coffee\": expected approvals"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, serve: approvals"), &["routes[0]: set exactly one of upstream: NAME or serve: approvals"]),
            (&one("name: A, match: { path: /a }, upstream: tickets, public: true"), &["routes[0].name: route names may hold only lower-case letters, digits, - and _"]),
            (&one("name: a, match: { path: a }, upstream: tickts, public: true"), &[
                "routes[0].match.path: path \"a\" must start with /",
                "routes[0].upstream: unknown upstream \"tickts\" (did you mean \"tickets\"?)",
            ]),
            (&one("name: a, match: { path: /a, methods: [] }, upstream: tickets, public: true"), &["routes[0].match.methods: an empty list matches nothing; leave methods out to accept every method"]),
            (&one("name: a, match: { path: /a, methods: [GET, GET, get] }, upstream: tickets, public: true"), &[
                "routes[0].match.methods[1]: method GET is listed twice",
                "routes[0].match.methods[2]: unsupported method \"get\": expected one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS",
            ]),
            (&one("name: a, match: { path: /a, host: \"a:80\" }, upstream: tickets, public: true"), &["routes[0].match.host: invalid host \"a:80\": expected a host name without port, such as api.example.com"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, public: true, rewrite: { replace_prefix: x }"), &["routes[0].rewrite.replace_prefix: path \"x\" must start with /"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, max_body: 1KiB, idempotency: { on_store_failure: local }"), &["routes[0].idempotency.on_store_failure: \"local\": expected closed or open (a record kept by one replica protects nothing on the others)"]),
            (&one("name: a, match: { path: /a/:id }, upstream: tickets, public: true, rewrite: { replace_prefix: /b/:key }"), &["routes[0].rewrite.replace_prefix: \"/b/:key\" uses :key, which the route's path \"/a/:id\" does not have"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, public: true, public_paths: [/b]"), &["routes[0].public_paths: the whole route is already public; remove public_paths or public: true"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, public: true, timeout: 0s"), &["routes[0].timeout: must be greater than zero"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, public: true, buffer_body: true"), &["routes[0].buffer_body: a buffered body may be at most 64 KiB (max_body is 1048576 bytes): Pingora forwards it from its retry buffer"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, public: true, buffer_body: true, max_body: 64KiB"), &[]),
            (&one("name: a, match: { path: /a }, upstream: tickets, public: true, max_body: 1KiB, idempotency: {}"), &["routes[0].idempotency: needs an authenticated route: keys are scoped to the caller"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, tracing: { sampler: alway_on }"), &["routes[0].tracing.sampler: unknown sampler \"alway_on\" (did you mean \"always_on\"?): expected one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, tracing: { sampler: always_on, ratio: 0.5 }"), &["routes[0].tracing.ratio: a ratio applies to traceidratio and parentbased_traceidratio only, not always_on"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, tracing: { sampler: traceidratio, ratio: 2 }"), &["routes[0].tracing.ratio: ratio 2: expected a number from 0 to 1"]),
            (&one("name: a, match: { path: /a }, upstream: tickets, public: true, idempotency: { ttl: 1h }, buffer_body: false, auth: {}"), &[
                "routes[0].idempotency: needs an authenticated route: keys are scoped to the caller",
                "routes[0].idempotency: needs the whole body before the upstream; remove buffer_body: false",
                "routes[0].auth: a public route has no caller to check; remove auth or public: true",
            ]),
        ]);
    }
}
