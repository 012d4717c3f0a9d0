//! Routes, compiled: what matches, where it goes, who may call it.

use super::*;

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: Arc<str>,
    /// Lower-cased, without port.
    pub host: Option<String>,
    pub pattern: PathPattern,
    /// `pattern` as text, made once: what spans name the route by (`http.route`).
    pub pattern_text: Arc<str>,
    /// `None` accepts every method.
    pub methods: Option<Vec<Method>>,
    /// Matches `pattern` itself only, not the paths under it.
    pub exact: bool,
    /// Where its requests go.
    pub target: RouteTarget,
    /// Replaces the matched prefix before forwarding; `None` forwards the path unchanged.
    pub rewrite: Option<PathTemplate>,
    pub access: Access,
    /// The total deadline for one request on this route: its `timeout`, else its
    /// upstream's `timeouts.total`.
    pub timeout: Duration,
    pub max_body: u64,
    /// Whether the whole body is read, and refused if need be, before any upstream contact.
    pub buffer_body: bool,
    /// Whether a stage after the body reads it (idempotency, a body schema, budgets, a venue
    /// in the body, an approval, a webhook, signatures): such a route buffers its body, and
    /// only on such a route does admission run those stages.
    pub reads_body: bool,
    /// Idempotency-Key handling, when the route has it (its body is then buffered).
    pub idempotency: Option<IdempotencySpec>,
    /// The JSON Schema file its bodies must match (its body is then buffered), as written;
    /// loaded with the environment (`crate::validation`).
    pub body_schema: Option<String>,
    /// Path parameters that must match a pattern (whole value): index into the route's
    /// params, name, pattern.
    pub param_patterns: Vec<(usize, String, regex::Regex)>,
    pub auth: RouteAuth,
    /// Whether WebSocket upgrades may pass; other `Upgrade` requests are always refused.
    pub websocket: bool,
    /// The route's own CORS policy, else the global one; `None`: no cross-origin access.
    pub cors: Option<Arc<CorsPolicy>>,
    /// The policies a request on this route counts against: the defaults, then its own.
    pub rate_limits: Vec<RouteLimit>,
    /// Whether one of them is a budget (it counts an amount from the body).
    pub has_budgets: bool,
    /// Requests asking for more than an amount wait for other principals' approval.
    pub approval: Option<ApprovalSpec>,
    /// Deliveries must carry a provider's signature over the body.
    pub webhook: Option<WebhookSpec>,
    /// Its own trace sampler, in place of the process's (`OTEL_TRACES_SAMPLER`).
    pub trace_sampler: Option<crate::telemetry::traces::sampler::Sampler>,
}

impl RouteSpec {
    /// Whether admission reads the body as a JSON document: for its schema, its budgets'
    /// amounts, a venue in the body, or the amount an approval is above.
    pub fn reads_document(&self) -> bool {
        self.body_schema.is_some()
            || self.has_budgets
            || self.auth.venue_field.is_some()
            || self.approval.is_some()
    }

    /// The codes `usher_validation_refusals_total` can count for this route.
    pub fn validation_codes(&self) -> impl Iterator<Item = &'static str> {
        let params = (!self.param_patterns.is_empty()).then_some("invalid_parameter");
        let document = self.reads_document();
        let read = [
            document.then_some("unsupported_media_type"),
            document.then_some("malformed_json"),
        ];
        let schema = self.body_schema.is_some().then_some("invalid_body");
        [params].into_iter().chain(read).chain([schema]).flatten()
    }
}

impl crate::router::Routable for RouteSpec {
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    fn pattern(&self) -> &PathPattern {
        &self.pattern
    }

    fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }

    fn exact(&self) -> bool {
        self.exact
    }
}

/// Another spelling of paths that routes serve: a request it matches is routed again as
/// `to` plus the rest of its path (one hop: the second lookup sees routes only), and is
/// then that route's request in every respect.
#[derive(Debug, Clone)]
pub struct AliasSpec {
    pub name: Arc<str>,
    /// Lower-cased, without port.
    pub host: Option<String>,
    pub pattern: PathPattern,
    /// `None` accepts every method.
    pub methods: Option<Vec<Method>>,
    /// The path prefix that replaces the part `pattern` matched: normalized, literal.
    pub to: String,
}

impl crate::router::Routable for AliasSpec {
    fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    fn pattern(&self) -> &PathPattern {
        &self.pattern
    }

    fn methods(&self) -> Option<&[Method]> {
        self.methods.as_deref()
    }

    fn alias(&self) -> Option<&str> {
        Some(&self.to)
    }
}

/// Where a route's requests go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteTarget {
    /// Index into [`Config::upstreams`].
    Upstream(usize),
    /// Usher's approvals endpoint (`crate::approval::endpoint`).
    Approvals,
}

impl RouteTarget {
    pub fn upstream(self) -> Option<usize> {
        match self {
            RouteTarget::Upstream(index) => Some(index),
            RouteTarget::Approvals => None,
        }
    }
}

/// The keys Usher signs with: each by its id, one of them active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSpec {
    /// `(id, private key file)`, as written.
    pub keys: Vec<(String, String)>,
    /// Index into `keys` of the key new signatures use.
    pub active: usize,
}

/// Webhook verification on a route (see `crate::signatures::webhook`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub scheme: crate::signatures::webhook::Scheme,
    /// Every secret a signature may be made with (several while one rotates); read with
    /// the environment (`crate::signatures::keys`).
    pub secrets: Vec<SecretRef>,
    /// How far a signed timestamp may be from now, either way.
    pub tolerance: Duration,
    /// How long a delivery is remembered, so a repeat within it is refused.
    pub replay_window: Duration,
    /// While the delivery records cannot be reached: forward unrecorded (`true`) or refuse
    /// (503, the default).
    pub fail_open: bool,
}

/// Two-person approval on a route (see `crate::approval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSpec {
    /// Where the amount is, as a budget finds it.
    pub amount: AmountSpec,
    /// A request asking for more than this needs approval.
    pub above: u64,
    /// Roles an approver needs (one of them).
    pub roles: Vec<String>,
    /// Approvals needed, each by another principal of the submitter's tenant.
    pub needed: u32,
    /// How long an approval waits to be granted and then used.
    pub expires: Duration,
}

/// How a route handles `Idempotency-Key` (see `crate::idempotency`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencySpec {
    /// A request without a key is refused (400).
    pub required: bool,
    /// How long a key and its answer are kept.
    pub ttl: Duration,
    /// Answers larger than this are not kept (their key then answers 409).
    pub max_response: u64,
    /// While the store cannot answer: `Closed` refuses (503), `Open` forwards without a
    /// record (the service still gets the key). Never `Local`.
    pub on_store_failure: StoreFailure,
}

/// A policy attached to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimit {
    /// Index into [`RateLimiting::policies`].
    pub policy: usize,
    /// For each `Param` part of the policy's key, in order: its index among the route's
    /// parameters.
    pub params: Vec<usize>,
}

/// A compiled CORS policy: header values are built once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Lower-cased origins (`scheme://host[:port]`); `*` alone allows any origin.
    pub origins: Vec<String>,
    /// Where the origins come from when the environment holds them: the key's path and the
    /// variable. `origins` is filled from it when the environment is read (startup, reload).
    pub origins_env: Option<(String, String)>,
    pub any_origin: bool,
    pub methods: Vec<http::Method>,
    /// `Access-Control-Allow-Methods`, ready to send.
    pub methods_value: String,
    /// Lower-cased request headers a browser may send.
    pub headers: Vec<String>,
    pub headers_value: String,
    pub exposed_value: Option<String>,
    pub credentials: bool,
    pub max_age_value: String,
}

/// What an authenticated caller must be on a route, beyond being authenticated.
#[derive(Debug, Clone, Default)]
pub struct RouteAuth {
    /// The caller needs at least one of these roles (none listed: any caller).
    pub roles: Vec<String>,
    /// The index, among the route's parameters, of the venue the caller must be scoped to.
    pub venue_param: Option<usize>,
    /// A JSON pointer to a venue id in the body, which the caller must be scoped to like
    /// `venue_param`'s (checked once the body is in; the route then buffers it).
    pub venue_field: Option<String>,
    /// Roles that pass the venue scope check for every venue.
    pub admin_roles: Vec<String>,
    pub api_keys: bool,
    /// RFC 9421 signatures are accepted as the credential.
    pub signatures: bool,
    /// Components its signatures must cover besides the global ones.
    pub signature_covers: Vec<String>,
    pub token_sources: Vec<TokenSource>,
    /// Ask `authentication.user_status` whether the token's user is still active.
    pub user_status: bool,
    /// Confirm the venue scope with `authentication.venue_access`.
    pub venue_check: bool,
    /// When a service asked above cannot answer: let the request through (`open`) instead
    /// of refusing it with 503 (`closed`, the default).
    pub fail_open: bool,
    /// Forward the verified credential (token or API key) to the upstream, for services that
    /// verify it themselves or act with it; otherwise it stays at the edge.
    pub forward_credential: bool,
}

/// Where a bearer token may come from. Only the `Authorization` header unless a route
/// opts in to more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    BearerHeader,
    Query(String),
    Cookie(String),
}

/// Who may call a route. Authenticated unless the file says otherwise.
#[derive(Debug, Clone)]
pub enum Access {
    Authenticated,
    Public,
    /// Authenticated, except these paths (relative to the route's prefix, already joined).
    PublicPaths(Vec<PublicPath>),
}

/// A public path: exact, or a whole subtree when written with a trailing `/*`.
#[derive(Debug, Clone)]
pub struct PublicPath {
    pub pattern: PathPattern,
    pub subtree: bool,
}
