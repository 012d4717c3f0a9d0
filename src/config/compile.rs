//! Raw file format to validated [`Config`]: defaults merged, names resolved, patterns parsed,
//! every error collected with the path of the key that caused it. Pure: no I/O, no clock.

use super::error::{ConfigError, ConfigErrors};
use super::raw::*;
use super::units::Dur;
use super::*;
use crate::router::PathPattern;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::str::FromStr;

mod rate_limits;

pub use rate_limits::check_redis_url;

/// Built-in defaults, used where neither the upstream nor `defaults.upstream` sets a value.
pub(crate) mod builtin {
    use std::time::Duration;
    pub const GRACE_PERIOD: Duration = Duration::from_secs(20);
    pub const HC_INTERVAL: Duration = Duration::from_secs(5);
    pub const HC_TIMEOUT: Duration = Duration::from_secs(1);
    pub const HC_HEALTHY: usize = 2;
    pub const HC_UNHEALTHY: usize = 3;
    pub const CONNECT: Duration = Duration::from_secs(1);
    pub const READ: Duration = Duration::from_secs(10);
    pub const WRITE: Duration = Duration::from_secs(10);
    pub const TOTAL: Duration = Duration::from_secs(10);
    pub const RETRIES: u32 = 1;
    pub const MAX_IN_FLIGHT: u32 = 1000;
    pub const ERROR_PERCENT: u32 = 50;
    pub const MIN_REQUESTS: u32 = 20;
    pub const WINDOW: Duration = Duration::from_secs(10);
    pub const OPEN_FOR: Duration = Duration::from_secs(30);
    pub const HALF_OPEN_PROBES: u32 = 3;
    pub const PASSIVE_EJECTION: Duration = Duration::from_secs(10);
    pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(10);
    pub const MAX_BODY: u64 = 1 << 20;
    pub const LEEWAY: Duration = Duration::from_secs(30);
    pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
    pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
    pub const MAX_HEADERS: usize = 100;
    pub const MAX_HEADER_BYTES: u64 = 32 << 10;
    pub const MAX_URI_BYTES: u64 = 8 << 10;
    pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
    pub const MAX_ROUTE_REMOVAL_PERCENT: u8 = 50;
}

/// The most a configuration may hold: past these, `usher check` and a reload refuse the
/// file (documented in docs/routes.md, "Limits of a file"). They keep a reload well under a
/// few seconds and `/metrics` bounded.
pub mod bounds {
    pub const MAX_FILE_BYTES: u64 = 16 << 20;
    pub const MAX_ROUTES: usize = 20_000;
    pub const MAX_UPSTREAMS: usize = 1_000;
    /// Route and upstream names, in bytes.
    pub const MAX_NAME: usize = 100;
}

/// Client headers that carry identity or steer internal routing: removed from every request,
/// whatever routes.yaml says. `identity.strip_headers` adds to them.
const STRIPPED_HEADERS: &[&str] = &[
    "x-tenant-id",
    "x-tenant-source",
    "x-user-id",
    "x-user-roles",
    "x-venue-ids",
    "x-original-ip",
    // Headers that make a framework route by another URL or method than the one Usher
    // routed by and checked (a POST becoming a DELETE behind a route that allows POST):
    // X-Original-URL and X-Rewrite-URL (IIS URL Rewrite, Symfony before 2.8.44/3.4.14),
    // X-Original-URI and X-Original-Method (nginx auth_request setups), X-Forwarded-Uri and
    // X-Forwarded-Method (Traefik forwardAuth, read by auth services such as Authelia),
    // X-HTTP-Method-Override (Google APIs, Express method-override, Symfony, Laravel,
    // Jersey), X-HTTP-Method (Microsoft OData, ASP.NET) and X-Method-Override (IBM,
    // Express method-override).
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-method",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    // Forwarding headers Usher does not set itself (it overwrites X-Forwarded-For and
    // X-Forwarded-Proto): a client's copy would be taken for the gateway's word.
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
];
const STRIPPED_PREFIXES: &[&str] = &["x-internal-", "x-gateway-"];

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Compiles a parsed file. `text` is only hashed, to name the configuration's version.
pub fn compile(source: &str, text: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut c = Compiler {
        source,
        errors: Vec::new(),
    };
    let server = c.server(&raw.server);
    let authentication = c.authentication(&raw.authentication);
    let identity = c.identity(&raw.identity);
    let limits = c.limits(&raw.limits);
    let cors = raw.cors.as_ref().map(|raw| Arc::new(c.cors("cors", raw)));
    let listeners = c.listeners(&raw.listeners);
    let rate_limiting = c.rate_limiting(&raw.rate_limiting);
    if let Some(revocation) = &authentication.revocation {
        if revocation.file.is_none() && rate_limiting.redis.is_none() {
            c.error(
                "authentication.revocation",
                "no store to look revoked tokens up in: configure rate_limiting.redis (shared with the auth service) or a file",
            );
        }
    }
    for (key, count, most) in [
        ("routes", raw.routes.len(), bounds::MAX_ROUTES),
        ("upstreams", raw.upstreams.len(), bounds::MAX_UPSTREAMS),
    ] {
        if count > most {
            c.error(
                key,
                format!("{count} {key}, more than the {most} a configuration may hold"),
            );
        }
    }
    if !raw.defaults.upstream.targets.is_empty() {
        c.error(
            "defaults.upstream.targets",
            "targets belong to each upstream, not to defaults",
        );
    }
    let upstreams: Vec<UpstreamSpec> = raw
        .upstreams
        .iter()
        .map(|(name, upstream)| c.upstream(name, upstream, &raw.defaults.upstream))
        .collect();
    let names: HashMap<&str, usize> = upstreams
        .iter()
        .enumerate()
        .map(|(index, upstream)| (&*upstream.name, index))
        .collect();
    let mut routes = Vec::new();
    let shared = RouteInputs {
        defaults: &raw.defaults.route,
        upstream_names: &names,
        upstreams: &upstreams,
        authentication: &authentication,
        cors: &cors,
        rate_limiting: &rate_limiting,
    };
    for (index, route) in raw.routes.iter().enumerate() {
        if let Some(route) = c.route(index, route, &shared) {
            routes.push((index, route));
        }
    }
    c.check_unreachable(&routes);
    c.check_credential_sources(&routes, &authentication);
    // Route errors in file order; everything else stays where it was found.
    c.errors.sort_by_key(|e| route_index(&e.path));
    if c.errors.is_empty() {
        Ok(Config {
            hash: content_hash(text),
            server,
            listeners: listeners.expect("listeners are valid when there are no errors"),
            upstreams,
            routes: routes.into_iter().map(|(_, route)| route).collect(),
            authentication,
            identity,
            limits,
            rate_limiting,
        })
    } else {
        Err(ConfigErrors(c.errors))
    }
}

/// First 12 hex digits of the SHA-256 of the file, the configuration's visible version.
pub fn content_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// What every route is compiled against: already compiled sections of the file.
struct RouteInputs<'a> {
    defaults: &'a RawRouteDefaults,
    upstream_names: &'a HashMap<&'a str, usize>,
    upstreams: &'a [UpstreamSpec],
    authentication: &'a AuthenticationSpec,
    cors: &'a Option<Arc<CorsPolicy>>,
    rate_limiting: &'a RateLimiting,
}

struct Compiler<'a> {
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl Compiler<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            source: self.source.to_string(),
            location: None,
            path: path.into(),
            message: message.into(),
        });
    }

    fn positive(&mut self, path: &str, value: Duration) -> Duration {
        if value.is_zero() {
            self.error(path, "must be greater than zero");
        }
        value
    }

    fn server(&mut self, raw: &RawServer) -> ServerSettings {
        let threads = raw.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if !(1..=1024).contains(&threads) {
            self.error("server.threads", "must be between 1 and 1024");
        }
        ServerSettings {
            threads,
            grace_period: raw.grace_period.map_or(builtin::GRACE_PERIOD, |d| d.0),
            access_log: raw.access_log.unwrap_or(true),
        }
    }

    fn authentication(&mut self, raw: &RawAuthentication) -> AuthenticationSpec {
        let jwt = raw.jwt.as_ref().map(|jwt| self.jwt(jwt));
        let api_keys = raw.api_keys.as_ref().map(|keys| {
            if keys.file.trim().is_empty() {
                self.error(
                    "authentication.api_keys.file",
                    "must name the file of hashed keys",
                );
            }
            let header = keys
                .header
                .as_deref()
                .unwrap_or("x-api-key")
                .to_ascii_lowercase();
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
            user_status,
            venue_access,
            revocation,
        }
    }

    fn revocation(&mut self, raw: &RawRevocation) -> RevocationSpec {
        let at = "authentication.revocation";
        let key_template = raw
            .key_template
            .clone()
            .unwrap_or_else(|| "session:blacklist:{jti}".to_string());
        if !key_template.contains("{jti}") {
            self.error(
                format!("{at}.key_template"),
                format!("\"{key_template}\" must contain {{jti}}"),
            );
        }
        if raw.file.as_deref().is_some_and(|f| f.trim().is_empty()) {
            self.error(format!("{at}.file"), "must name a file");
        }
        let cache_ttl = raw.cache_ttl.map_or(Duration::from_secs(1), |d| d.0);
        let stale_if_error = raw.stale_if_error.map_or(Duration::from_secs(300), |d| d.0);
        if cache_ttl > Duration::from_secs(60) {
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
            cache_ttl: raw.cache_ttl.map_or(Duration::from_secs(300), |d| d.0),
            negative_cache_ttl: raw
                .negative_cache_ttl
                .map_or(Duration::from_secs(30), |d| d.0),
            timeout: raw.timeout.map_or(Duration::from_secs(2), |d| d.0),
        };
        self.positive(&format!("{at}.timeout"), spec.timeout);
        spec
    }

    fn jwt(&mut self, raw: &RawJwt) -> JwtSpec {
        let at = "authentication.jwt";
        if raw.issuer.trim().is_empty() {
            self.error(
                format!("{at}.issuer"),
                "must name the issuer tokens must carry in `iss`",
            );
        }
        if raw.audiences.is_empty() || raw.audiences.iter().any(|a| a.trim().is_empty()) {
            self.error(
                format!("{at}.audiences"),
                "list at least one audience; a token's `aud` must contain one of them",
            );
        }
        let leeway = raw.leeway.map_or(builtin::LEEWAY, |d| d.0);
        if leeway > builtin::MAX_LEEWAY {
            self.error(
                format!("{at}.leeway"),
                "at most 60s of clock skew is tolerated",
            );
        }
        let max_lifetime = raw.max_lifetime.map_or(builtin::MAX_LIFETIME, |d| d.0);
        self.positive(&format!("{at}.max_lifetime"), max_lifetime);
        let claim = |name: &Option<String>, default: &str| {
            name.clone().unwrap_or_else(|| default.to_string())
        };
        let claims = ClaimNames {
            tenant: claim(&raw.claims.tenant, "tenant_id"),
            roles: claim(&raw.claims.roles, "roles"),
            venues: claim(&raw.claims.venues, "venue_ids"),
            token_type: claim(&raw.claims.token_type, "type"),
            tier: claim(&raw.claims.tier, "tier"),
        };
        if raw.keys.is_empty() && raw.jwks.is_none() {
            self.error(
                format!("{at}.keys"),
                "list at least one key, or configure jwks",
            );
        }
        let jwks = raw.jwks.as_ref().and_then(|jwks| {
            let at = format!("{at}.jwks");
            let url = match jwks.url.parse::<http::Uri>() {
                Ok(url)
                    if matches!(url.scheme_str(), Some("http" | "https"))
                        && url.host().is_some() =>
                {
                    url
                }
                _ => {
                    self.error(
                        format!("{at}.url"),
                        format!(
                            "invalid URL \"{}\": expected http(s)://host[:port]/path",
                            jwks.url
                        ),
                    );
                    return None;
                }
            };
            let refresh_interval = jwks
                .refresh_interval
                .map_or(Duration::from_secs(300), |d| d.0);
            let min_refresh_interval = jwks
                .min_refresh_interval
                .map_or(Duration::from_secs(30), |d| d.0);
            self.positive(&format!("{at}.min_refresh_interval"), min_refresh_interval);
            let timeout = jwks.timeout.map_or(Duration::from_secs(2), |d| d.0);
            self.positive(&format!("{at}.refresh_interval"), refresh_interval);
            self.positive(&format!("{at}.timeout"), timeout);
            Some(JwksSpec {
                url,
                refresh_interval,
                min_refresh_interval,
                timeout,
            })
        });
        let mut kids: Vec<&str> = Vec::new();
        let mut keys = Vec::new();
        for (index, key) in raw.keys.iter().enumerate() {
            let at = format!("{at}.keys[{index}]");
            if let Some(kid) = key.kid.as_deref() {
                if kids.contains(&kid) {
                    self.error(
                        format!("{at}.kid"),
                        format!("kid \"{kid}\" is used by another key"),
                    );
                }
                kids.push(kid);
            } else if raw.keys.len() > 1 {
                self.error(
                    format!("{at}.kid"),
                    "with more than one key, every key needs a kid",
                );
            }
            let algorithm = match key.algorithm.as_str() {
                "none" | "None" | "NONE" => {
                    self.error(
                        format!("{at}.algorithm"),
                        "unsigned tokens (alg none) are never accepted",
                    );
                    continue;
                }
                name => match jsonwebtoken::Algorithm::from_str(name) {
                    Ok(algorithm) => algorithm,
                    Err(_) => {
                        self.error(format!("{at}.algorithm"), format!("unknown algorithm \"{name}\": expected HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"));
                        continue;
                    }
                },
            };
            let hmac = matches!(
                algorithm,
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            );
            let material = match (
                hmac,
                &key.secret_env,
                &key.secret_file,
                &key.public_key_file,
            ) {
                (true, Some(name), None, None) => KeyMaterial::SecretEnv(name.clone()),
                (true, None, Some(path), None) => KeyMaterial::SecretFile(path.clone()),
                (false, None, None, Some(path)) => KeyMaterial::PublicKeyFile(path.clone()),
                (true, ..) => {
                    self.error(
                        at,
                        "an HMAC key needs exactly one of secret_env or secret_file",
                    );
                    continue;
                }
                (false, ..) => {
                    self.error(
                        at,
                        "a public-key algorithm needs public_key_file (and no secret)",
                    );
                    continue;
                }
            };
            keys.push(JwtKeySpec {
                kid: key.kid.clone(),
                algorithm,
                material,
            });
        }
        JwtSpec {
            issuer: raw.issuer.clone(),
            audiences: raw.audiences.clone(),
            leeway,
            max_lifetime,
            token_type: raw
                .token_type
                .clone()
                .unwrap_or_else(|| "access".to_string()),
            claims,
            keys,
            jwks,
        }
    }

    fn identity(&mut self, raw: &RawIdentity) -> IdentitySpec {
        let mut strip_headers: Vec<String> =
            STRIPPED_HEADERS.iter().map(|h| h.to_string()).collect();
        let mut strip_prefixes: Vec<String> =
            STRIPPED_PREFIXES.iter().map(|h| h.to_string()).collect();
        for (index, name) in raw.strip_headers.iter().enumerate() {
            let name = name.to_ascii_lowercase();
            let (bare, prefix) = match name.strip_suffix('*') {
                Some(bare) => (bare.to_string(), true),
                None => (name.clone(), false),
            };
            if bare.is_empty() || http::HeaderName::from_str(&bare).is_err() {
                self.error(
                    format!("identity.strip_headers[{index}]"),
                    format!("invalid header name \"{name}\" (end with * for a prefix)"),
                );
            } else if prefix {
                strip_prefixes.push(bare);
            } else {
                strip_headers.push(bare);
            }
        }
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(index, text)| {
                let parsed = text
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                if parsed.is_err() {
                    self.error(
                        format!("identity.trusted_proxies[{index}]"),
                        format!("invalid address or CIDR \"{text}\", such as 10.0.0.0/8"),
                    );
                }
                parsed.ok()
            })
            .collect();
        IdentitySpec {
            strip_headers,
            strip_prefixes,
            trusted_proxies,
        }
    }

    fn cors(&mut self, at: &str, raw: &RawCors) -> CorsPolicy {
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
        let method_names = raw.allowed_methods.clone().unwrap_or_else(|| {
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec()
        });
        let mut methods = Vec::new();
        for (index, method) in method_names.iter().enumerate() {
            match METHODS.contains(&method.as_str()) {
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
        let max_age = raw.max_age.map_or(Duration::from_secs(600), |d| d.0);
        if max_age > Duration::from_secs(86_400) {
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

    fn limits(&mut self, raw: &RawLimits) -> Limits {
        let limits = Limits {
            max_headers: raw.max_headers.unwrap_or(builtin::MAX_HEADERS),
            max_header_bytes: raw
                .max_header_bytes
                .map_or(builtin::MAX_HEADER_BYTES, |s| s.0),
            max_uri_bytes: raw.max_uri_bytes.map_or(builtin::MAX_URI_BYTES, |s| s.0),
            request_head_timeout: raw
                .request_head_timeout
                .map_or(builtin::REQUEST_HEAD_TIMEOUT, |d| d.0),
            max_route_removal_percent: raw
                .max_route_removal_percent
                .unwrap_or(builtin::MAX_ROUTE_REMOVAL_PERCENT),
        };
        if limits.max_route_removal_percent > 100 {
            self.error(
                "limits.max_route_removal_percent",
                "must be between 0 and 100",
            );
        }
        self.positive("limits.request_head_timeout", limits.request_head_timeout);
        for (key, zero) in [
            ("max_headers", limits.max_headers == 0),
            ("max_header_bytes", limits.max_header_bytes == 0),
            ("max_uri_bytes", limits.max_uri_bytes == 0),
        ] {
            if zero {
                self.error(format!("limits.{key}"), "must be greater than zero");
            }
        }
        limits
    }

    fn listeners(&mut self, raw: &RawListeners) -> Option<Listeners> {
        let public = self.address("listeners.public.address", &raw.public.address);
        let admin = self.address("listeners.admin.address", &raw.admin.address);
        if public.is_some() && public == admin {
            self.error(
                "listeners.admin.address",
                "must differ from listeners.public.address: the admin endpoints are never served on the public port",
            );
        }
        let tls = raw.public.tls.as_ref().map(|tls| {
            for (key, value) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
                if value.trim().is_empty() {
                    self.error(format!("listeners.public.tls.{key}"), "must name a file");
                }
            }
            TlsSettings {
                cert_file: tls.cert_file.clone(),
                key_file: tls.key_file.clone(),
                http2: tls.http2.unwrap_or(true),
            }
        });
        Some(Listeners {
            public: public?,
            tls,
            h2c: raw.public.h2c,
            admin: admin?,
        })
    }

    fn address(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        let parsed = SocketAddr::from_str(text).ok();
        if parsed.is_none() {
            self.error(
                path,
                format!("invalid address \"{text}\": expected ip:port, such as 0.0.0.0:8080"),
            );
        }
        parsed
    }

    fn upstream(&mut self, name: &str, raw: &RawUpstream, defaults: &RawUpstream) -> UpstreamSpec {
        let at = format!("upstreams.{name}");
        if !is_label(name) {
            self.error(
                &at,
                "upstream names may hold only lower-case letters, digits, - and _",
            );
        } else if name.len() > bounds::MAX_NAME {
            self.error(
                &at,
                format!(
                    "upstream names may be at most {} characters",
                    bounds::MAX_NAME
                ),
            );
        }
        if raw.targets.is_empty() {
            self.error(
                format!("{at}.targets"),
                "at least one host:port target is required",
            );
        }
        let targets = raw
            .targets
            .iter()
            .enumerate()
            .filter_map(|(index, text)| {
                let target = parse_target(text);
                if target.is_none() {
                    self.error(
                        format!("{at}.targets[{index}]"),
                        format!("invalid target \"{text}\": expected host:port, such as tickets:3004 or 10.0.0.7:3004"),
                    );
                }
                target
            })
            .collect();

        let lb = self.load_balancing(&at, raw, defaults);
        let health_check = self.health_check(
            &at,
            raw.health_check.as_ref(),
            defaults.health_check.as_ref(),
        );
        let timeouts = self.timeouts(&at, raw.timeouts.as_ref(), defaults.timeouts.as_ref());
        let circuit_breaker = self.breaker(
            &at,
            raw.circuit_breaker.as_ref(),
            defaults.circuit_breaker.as_ref(),
        );
        let retries = raw.retries.or(defaults.retries).unwrap_or(builtin::RETRIES);
        if retries > 5 {
            self.error(format!("{at}.retries"), "at most 5 retries");
        }
        let max_in_flight = raw
            .max_in_flight
            .or(defaults.max_in_flight)
            .unwrap_or(builtin::MAX_IN_FLIGHT);
        if max_in_flight == 0 {
            self.error(format!("{at}.max_in_flight"), "must be at least 1");
        }
        let resolve_interval = raw
            .resolve_interval
            .or(defaults.resolve_interval)
            .map_or(builtin::RESOLVE_INTERVAL, |d| d.0);
        UpstreamSpec {
            name: Arc::from(name),
            targets,
            critical: raw.critical.or(defaults.critical).unwrap_or(false),
            lb,
            health_check,
            timeouts,
            retries,
            max_in_flight,
            circuit_breaker,
            passive_ejection: raw
                .passive_ejection
                .or(defaults.passive_ejection)
                .map_or(builtin::PASSIVE_EJECTION, |d| d.0),
            resolve_interval: self.positive(&format!("{at}.resolve_interval"), resolve_interval),
        }
    }

    fn load_balancing(
        &mut self,
        at: &str,
        raw: &RawUpstream,
        defaults: &RawUpstream,
    ) -> LoadBalancing {
        let lb = raw
            .lb
            .as_deref()
            .or(defaults.lb.as_deref())
            .unwrap_or("round_robin");
        let hash_key = raw.hash_key.as_deref().or(defaults.hash_key.as_deref());
        match lb {
            "round_robin" | "random" if raw.hash_key.is_some() => {
                self.error(
                    format!("{at}.hash_key"),
                    "hash_key applies only to lb: consistent_hash",
                );
                LoadBalancing::RoundRobin
            }
            "round_robin" => LoadBalancing::RoundRobin,
            "random" => LoadBalancing::Random,
            "consistent_hash" => match hash_key.unwrap_or("client_address") {
                "client_address" => LoadBalancing::ConsistentHash(HashKey::ClientAddress),
                key => match key.strip_prefix("header:") {
                    Some(header) if http::HeaderName::from_str(header).is_ok() => {
                        LoadBalancing::ConsistentHash(HashKey::Header(header.to_ascii_lowercase()))
                    }
                    _ => {
                        self.error(
                            format!("{at}.hash_key"),
                            format!("invalid hash_key \"{key}\": expected client_address or header:<name>"),
                        );
                        LoadBalancing::RoundRobin
                    }
                },
            },
            other => {
                self.error(
                    format!("{at}.lb"),
                    format!("unknown load balancing \"{other}\": expected round_robin, random or consistent_hash"),
                );
                LoadBalancing::RoundRobin
            }
        }
    }

    fn health_check(
        &mut self,
        at: &str,
        raw: Option<&RawHealthCheck>,
        defaults: Option<&RawHealthCheck>,
    ) -> HealthCheckSpec {
        let empty = RawHealthCheck::default();
        let (raw, defaults) = (raw.unwrap_or(&empty), defaults.unwrap_or(&empty));
        let at = format!("{at}.health_check");
        let path = raw.path.as_ref().or(defaults.path.as_ref());
        let kind = match raw
            .kind
            .as_deref()
            .or(defaults.kind.as_deref())
            .unwrap_or("tcp")
        {
            "tcp" => {
                if raw.path.is_some() {
                    self.error(format!("{at}.path"), "a path applies only to type: http");
                }
                HealthCheckKind::Tcp
            }
            "http" => match path {
                Some(path) if path.starts_with('/') => HealthCheckKind::Http { path: path.clone() },
                Some(path) => {
                    self.error(
                        format!("{at}.path"),
                        format!("path \"{path}\" must start with /"),
                    );
                    HealthCheckKind::Tcp
                }
                None => {
                    self.error(
                        format!("{at}.path"),
                        "type: http needs a path, such as /health",
                    );
                    HealthCheckKind::Tcp
                }
            },
            other => {
                self.error(
                    format!("{at}.type"),
                    format!("unknown health check type \"{other}\": expected tcp or http"),
                );
                HealthCheckKind::Tcp
            }
        };
        let interval = raw
            .interval
            .or(defaults.interval)
            .map_or(builtin::HC_INTERVAL, |d| d.0);
        let timeout = raw
            .timeout
            .or(defaults.timeout)
            .map_or(builtin::HC_TIMEOUT, |d| d.0);
        self.positive(&format!("{at}.interval"), interval);
        self.positive(&format!("{at}.timeout"), timeout);
        if timeout > interval {
            self.error(
                format!("{at}.timeout"),
                "must not be longer than the interval",
            );
        }
        let healthy_threshold = raw
            .healthy_threshold
            .or(defaults.healthy_threshold)
            .unwrap_or(builtin::HC_HEALTHY);
        let unhealthy_threshold = raw
            .unhealthy_threshold
            .or(defaults.unhealthy_threshold)
            .unwrap_or(builtin::HC_UNHEALTHY);
        for (key, value) in [
            ("healthy_threshold", healthy_threshold),
            ("unhealthy_threshold", unhealthy_threshold),
        ] {
            if value == 0 {
                self.error(format!("{at}.{key}"), "must be at least 1");
            }
        }
        HealthCheckSpec {
            kind,
            interval,
            timeout,
            healthy_threshold,
            unhealthy_threshold,
        }
    }

    fn timeouts(
        &mut self,
        at: &str,
        raw: Option<&RawTimeouts>,
        defaults: Option<&RawTimeouts>,
    ) -> UpstreamTimeouts {
        let empty = RawTimeouts::default();
        let (raw, defaults) = (raw.unwrap_or(&empty), defaults.unwrap_or(&empty));
        let mut pick = |key: &str, own: Option<Dur>, inherited: Option<Dur>, builtin: Duration| {
            let value = own.or(inherited).map_or(builtin, |d| d.0);
            self.positive(&format!("{at}.timeouts.{key}"), value)
        };
        UpstreamTimeouts {
            connect: pick("connect", raw.connect, defaults.connect, builtin::CONNECT),
            read: pick("read", raw.read, defaults.read, builtin::READ),
            write: pick("write", raw.write, defaults.write, builtin::WRITE),
            total: pick("total", raw.total, defaults.total, builtin::TOTAL),
        }
    }

    fn breaker(
        &mut self,
        at: &str,
        raw: Option<&RawCircuitBreaker>,
        defaults: Option<&RawCircuitBreaker>,
    ) -> BreakerSpec {
        let empty = RawCircuitBreaker::default();
        let (raw, defaults) = (raw.unwrap_or(&empty), defaults.unwrap_or(&empty));
        let at = format!("{at}.circuit_breaker");
        let error_percent = raw
            .error_percent
            .or(defaults.error_percent)
            .unwrap_or(builtin::ERROR_PERCENT);
        if !(1..=100).contains(&error_percent) {
            self.error(format!("{at}.error_percent"), "must be between 1 and 100");
        }
        let min_requests = raw
            .min_requests
            .or(defaults.min_requests)
            .unwrap_or(builtin::MIN_REQUESTS);
        let half_open_probes = raw
            .half_open_probes
            .or(defaults.half_open_probes)
            .unwrap_or(builtin::HALF_OPEN_PROBES);
        for (key, value) in [
            ("min_requests", min_requests),
            ("half_open_probes", half_open_probes),
        ] {
            if value == 0 {
                self.error(format!("{at}.{key}"), "must be at least 1");
            }
        }
        let window = raw
            .window
            .or(defaults.window)
            .map_or(builtin::WINDOW, |d| d.0);
        let open_for = raw
            .open_for
            .or(defaults.open_for)
            .map_or(builtin::OPEN_FOR, |d| d.0);
        BreakerSpec {
            error_percent,
            min_requests,
            window: self.positive(&format!("{at}.window"), window),
            open_for: self.positive(&format!("{at}.open_for"), open_for),
            half_open_probes,
            count_5xx: raw.count_5xx.or(defaults.count_5xx).unwrap_or(true),
        }
    }

    fn route(
        &mut self,
        index: usize,
        raw: &RawRoute,
        shared: &RouteInputs<'_>,
    ) -> Option<RouteSpec> {
        let RouteInputs {
            defaults,
            upstream_names: names,
            upstreams,
            authentication,
            cors: global_cors,
            rate_limiting,
        } = *shared;
        let at = format!("routes[{index}]");
        let errors_before = self.errors.len();
        if !is_label(&raw.name) {
            self.error(
                format!("{at}.name"),
                "route names may hold only lower-case letters, digits, - and _",
            );
        } else if raw.name.len() > bounds::MAX_NAME {
            self.error(
                format!("{at}.name"),
                format!("route names may be at most {} characters", bounds::MAX_NAME),
            );
        }
        let pattern = PathPattern::parse(&raw.matcher.path)
            .map_err(|message| self.error(format!("{at}.match.path"), message))
            .ok();
        let methods = raw.matcher.methods.as_ref().map(|methods| {
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
        let host = raw.matcher.host.as_ref().map(|host| {
            let valid = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !valid {
                self.error(format!("{at}.match.host"), format!("invalid host \"{host}\": expected a host name without port, such as api.example.com"));
            }
            crate::router::host_name(host).to_ascii_lowercase()
        });
        let upstream = match names.get(raw.upstream.as_str()) {
            Some(&upstream) => Some(upstream),
            None => {
                let hint = closest(&raw.upstream, names.keys().copied())
                    .map(|name| format!(" (did you mean \"{name}\"?)"))
                    .unwrap_or_default();
                self.error(
                    format!("{at}.upstream"),
                    format!("unknown upstream \"{}\"{hint}", raw.upstream),
                );
                None
            }
        };
        let rewrite = raw.rewrite.as_ref().and_then(|rewrite| {
            match (rewrite.strip_prefix, &rewrite.replace_prefix) {
                (Some(true), None) => Some("/".to_string()),
                (None, Some(prefix)) if prefix.starts_with('/') => Some(prefix.clone()),
                (None, Some(prefix)) => {
                    self.error(
                        format!("{at}.rewrite.replace_prefix"),
                        format!("\"{prefix}\" must start with /"),
                    );
                    None
                }
                _ => {
                    self.error(
                        format!("{at}.rewrite"),
                        "set exactly one of strip_prefix: true or replace_prefix: /path",
                    );
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
        let max_body = raw
            .max_body
            .or(defaults.max_body)
            .map_or(builtin::MAX_BODY, |s| s.0);
        let auth = self.route_auth(&at, raw, pattern.as_ref(), authentication);
        let cors = match &raw.cors {
            Some(own) => Some(Arc::new(self.cors(&format!("{at}.cors"), own))),
            None => global_cors.clone(),
        };
        let rate_limits = self.route_limits(&at, raw, pattern.as_ref(), rate_limiting);
        if self.errors.len() > errors_before {
            return None;
        }
        let upstream = upstream?;
        Some(RouteSpec {
            name: Arc::from(raw.name.as_str()),
            host,
            pattern: pattern?,
            methods,
            upstream,
            rewrite,
            access,
            timeout: timeout.unwrap_or(upstreams[upstream].timeouts.total),
            max_body,
            auth,
            websocket: raw.websocket,
            cors,
            rate_limits,
        })
    }

    fn route_auth(
        &mut self,
        at: &str,
        raw: &RawRoute,
        pattern: Option<&PathPattern>,
        authentication: &AuthenticationSpec,
    ) -> RouteAuth {
        let Some(auth) = &raw.auth else {
            return RouteAuth {
                token_sources: vec![TokenSource::BearerHeader],
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
        if auth.api_keys && authentication.api_keys.is_none() {
            self.error(
                format!("{at}.api_keys"),
                "authentication.api_keys is not configured",
            );
        }
        let mut token_sources = Vec::new();
        for (index, source) in auth.token_from.iter().enumerate() {
            let parsed = match source.split_once(':') {
                None if source == "header" => Some(TokenSource::BearerHeader),
                Some(("query", name)) if !name.is_empty() => {
                    Some(TokenSource::Query(name.to_string()))
                }
                Some(("cookie", name)) if !name.is_empty() => {
                    Some(TokenSource::Cookie(name.to_string()))
                }
                _ => None,
            };
            match parsed {
                Some(parsed) => token_sources.push(parsed),
                None => self.error(format!("{at}.token_from[{index}]"), format!("unknown token source \"{source}\": expected header, query:<name> or cookie:<name>")),
            }
        }
        if token_sources.is_empty() {
            token_sources.push(TokenSource::BearerHeader);
        }
        if auth.user_status && authentication.user_status.is_none() {
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
        let fail_open = match auth.on_dependency_failure.as_deref() {
            None | Some("closed") => false,
            Some("open") => true,
            Some(other) => {
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
            admin_roles: auth.admin_roles.clone(),
            api_keys: auth.api_keys,
            token_sources,
            user_status: auth.user_status,
            venue_check: auth.venue_check,
            fail_open,
            forward_credential: auth.forward_credential,
        }
    }

    /// Duplicate names, and routes that an earlier route with the same host, path shape and
    /// methods always wins over.
    /// An authenticated route with no credential Usher could verify would refuse every
    /// caller: a configuration mistake, not a policy. One error when nothing is configured
    /// at all, otherwise one per route that accepts only what is missing.
    fn check_credential_sources(
        &mut self,
        routes: &[(usize, RouteSpec)],
        authentication: &AuthenticationSpec,
    ) {
        // What a broken authentication section or route lacks is reported there already.
        let reported = |prefix: &str| self.errors.iter().any(|e| e.path.starts_with(prefix));
        if reported("authentication") {
            return;
        }
        let has_jwt = authentication.jwt.is_some();
        let has_api_keys = authentication.api_keys.is_some();
        let stranded: Vec<&(usize, RouteSpec)> = routes
            .iter()
            .filter(|(_, route)| !matches!(route.access, Access::Public))
            .filter(|(_, route)| !(has_jwt || (route.auth.api_keys && has_api_keys)))
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

    fn check_unreachable(&mut self, routes: &[(usize, RouteSpec)]) {
        let mut seen_names: HashMap<&str, usize> = HashMap::new();
        for (index, route) in routes {
            if let Some(first) = seen_names.insert(&*route.name, *index) {
                self.error(
                    format!("routes[{index}].name"),
                    format!(
                        "route name \"{}\" is already used by routes[{first}]",
                        route.name
                    ),
                );
            }
        }
        // Routes that match exactly the same requests, in file order.
        let mut same_place: HashMap<PlaceKey, Vec<&(usize, RouteSpec)>> = HashMap::new();
        for entry in routes {
            let (_, route) = entry;
            same_place
                .entry((route.host.as_deref(), route.pattern.shape()))
                .or_default()
                .push(entry);
        }
        let mut groups: Vec<_> = same_place.into_values().filter(|g| g.len() > 1).collect();
        groups.sort_by_key(|group| group[0].0);
        for group in groups {
            for (position, (index, route)) in group.iter().enumerate() {
                let mut covered: Vec<&http::Method> = Vec::new();
                for (earlier_index, earlier) in &group[..position] {
                    // A route that lists methods beats one that accepts every method at the
                    // same pattern (see the router), so only like shadows like.
                    let shadowed = match (&earlier.methods, &route.methods) {
                        (None, None) => true,
                        (None, Some(_)) | (Some(_), None) => false,
                        (Some(earlier_methods), Some(methods)) => {
                            covered.extend(earlier_methods);
                            methods.iter().all(|m| covered.contains(&m))
                        }
                    };
                    if shadowed {
                        self.error(
                            format!("routes[{index}]"),
                            format!("can never match: routes[{earlier_index}] (\"{}\") already matches the same host, path and methods", earlier.name),
                        );
                        break;
                    }
                }
            }
        }
    }
}

/// Host and path shape: routes with equal keys match exactly the same requests.
type PlaceKey<'a> = (Option<&'a str>, Vec<Option<&'a str>>);

/// `routes[7].x` → 7; other paths sort first.
fn route_index(path: &str) -> Option<usize> {
    path.strip_prefix("routes[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn parse_target(text: &str) -> Option<Target> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let valid = !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    valid.then(|| Target {
        host: host.to_string(),
        port,
    })
}

/// The candidate nearest to `word` by edit distance, if it is close enough to be a typo.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (edit_distance(word, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2.max(word.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
