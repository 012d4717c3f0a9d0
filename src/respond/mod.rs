//! Every response that Usher makes itself, in one small JSON shape:
//! `{"error":{"code":"...","message":"...","request_id":"..."}}`.
//!
//! A [`Rejection`] is a value that knows its status, its stable `code` and its headers.
//! Filters return one; this module alone turns it into bytes (`write`). Messages name the
//! service (the upstream's name), never peers, addresses or internal errors: those go to
//! the log. `security_headers` lists the headers every response carries, whoever made it.

pub mod security_headers;
#[cfg(test)]
mod tests;
mod write;

pub use write::send;

use crate::path::PathError;
use http::Method;
use pingora::prelude::*;
use pingora::ErrorType;
use std::sync::Arc;
use std::time::Duration;

/// The status of an error response Pingora generated itself, when `bytes` begin with such
/// a head: Pingora puts `Server: Pingora` first on those (upstream `Server` headers never
/// reach a client, and Usher's own answers carry none). Every response head passes here,
/// so only the status line and the line after it are looked at.
pub fn pingora_error_status(bytes: &[u8]) -> Option<u16> {
    const GENERATED: &[u8] = b"server: pingora\r\n";
    if !bytes.starts_with(b"HTTP/1.") || bytes.len() < 12 {
        return None;
    }
    let status_line = bytes.iter().take(64).position(|&b| b == b'\n')?;
    let next = bytes.get(status_line + 1..status_line + 1 + GENERATED.len())?;
    if !next.eq_ignore_ascii_case(GENERATED) {
        return None;
    }
    std::str::from_utf8(&bytes[9..12]).ok()?.parse().ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    BadPath(PathError),
    NoRoute,
    MethodNotAllowed(Vec<Method>),
    Unauthenticated,
    PayloadTooLarge {
        limit: u64,
    },
    NotReady,
    CircuitOpen {
        upstream: String,
        retry_after: Duration,
    },
    Busy {
        upstream: String,
    },
    NoHealthyPeer {
        upstream: String,
    },
    UpstreamRefused {
        upstream: String,
    },
    UpstreamTimeout {
        upstream: String,
    },
    BadGateway {
        upstream: String,
    },
    BadRequest,
    /// The request's framing or headers are ambiguous or abusive; the text says which.
    Malformed(&'static str),
    UriTooLong,
    /// The request head did not arrive within `limits.request_head_timeout`.
    RequestTimeout,
    HeadersTooLarge,
    Forbidden,
    /// A CORS preflight that the route's policy does not allow.
    CorsRefused,
    /// No key to verify credentials with could be obtained (the issuer's JWKS is down).
    AuthUnavailable,
    /// A rate-limit policy refused the request; the caller may retry after this long.
    RateLimited {
        retry_after: Duration,
    },
    /// The shared rate-limit store cannot answer and the policy fails closed.
    RateLimitUnavailable {
        retry_after: Duration,
    },
    /// Usher or the route's upstream is overloaded and the caller's tier is being shed.
    Overloaded {
        retry_after: Duration,
    },
    /// A path parameter does not match its route's pattern.
    InvalidParameter(String),
    /// The route's body must be JSON (`Content-Type`), and is not said to be.
    UnsupportedMediaType,
    /// The body is not JSON.
    MalformedJson,
    /// The body breaks the route's schema at these JSON pointers.
    InvalidBody(Vec<String>),
    /// The route needs an `Idempotency-Key` and the request has none.
    IdempotencyKeyMissing,
    /// The `Idempotency-Key` is not one structured-field string; the text says why.
    IdempotencyKeyInvalid(&'static str),
    /// A request with the same key is being served now.
    IdempotencyInFlight,
    /// A request with the same key reached the upstream and its answer is not known.
    IdempotencyOutcomeUnknown,
    /// A request with the same key completed, but its answer was too large to keep.
    IdempotencyNotReplayable,
    /// The key was used for another request (method, path or body).
    IdempotencyKeyReused,
    /// The idempotency store cannot take the key.
    IdempotencyUnavailable,
    /// A budget's amount is not in the body where the policy says (`pointer`), as a `what`.
    AmountInvalid {
        pointer: String,
        what: &'static str,
    },
    /// The body asks for more than a budget allows in one request.
    AmountOverCap {
        policy: Arc<str>,
        cap: u32,
    },
    /// Not enough of a budget is left in its window for this request's amount.
    BudgetExhausted {
        retry_after: Duration,
    },
    /// The request asks for more than its route allows without approval; `status` is the
    /// approval's path at the approvals endpoint.
    ApprovalRequired {
        id: String,
        approvals: u32,
        needed: u32,
        status: String,
    },
    ApprovalNotFound,
    /// Nobody approves their own request.
    ApprovalSelf,
    ApprovalExpired,
    /// The approval was granted already, or used.
    ApprovalClosed,
    ApprovalDuplicate,
    /// The approval was used by an earlier request.
    ApprovalUsed,
    /// The approvals store cannot answer.
    ApprovalUnavailable,
    /// A webhook's signature is missing, out of its time tolerance, or wrong (the text
    /// says which, in general terms).
    WebhookSignatureInvalid(&'static str),
    /// This webhook delivery was forwarded before (or is being forwarded now).
    WebhookReplayed,
    /// The webhook delivery records cannot be reached.
    WebhookUnavailable,
    Internal,
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::BadPath(_)
            | Rejection::BadRequest
            | Rejection::Malformed(_)
            | Rejection::IdempotencyKeyMissing
            | Rejection::IdempotencyKeyInvalid(_)
            | Rejection::InvalidParameter(_)
            | Rejection::MalformedJson => 400,
            Rejection::UnsupportedMediaType => 415,
            Rejection::InvalidBody(_)
            | Rejection::AmountInvalid { .. }
            | Rejection::AmountOverCap { .. } => 422,
            Rejection::IdempotencyInFlight
            | Rejection::IdempotencyOutcomeUnknown
            | Rejection::IdempotencyNotReplayable => 409,
            Rejection::IdempotencyKeyReused => 422,
            Rejection::Forbidden
            | Rejection::CorsRefused
            | Rejection::ApprovalRequired { .. }
            | Rejection::ApprovalSelf => 403,
            Rejection::ApprovalNotFound => 404,
            Rejection::ApprovalExpired => 410,
            Rejection::ApprovalClosed
            | Rejection::ApprovalDuplicate
            | Rejection::ApprovalUsed
            | Rejection::WebhookReplayed => 409,
            Rejection::UriTooLong => 414,
            Rejection::RequestTimeout => 408,
            Rejection::HeadersTooLarge => 431,
            Rejection::Unauthenticated | Rejection::WebhookSignatureInvalid(_) => 401,
            Rejection::NoRoute => 404,
            Rejection::MethodNotAllowed(_) => 405,
            Rejection::PayloadTooLarge { .. } => 413,
            Rejection::RateLimited { .. } | Rejection::BudgetExhausted { .. } => 429,
            Rejection::Internal => 500,
            Rejection::UpstreamRefused { .. } | Rejection::BadGateway { .. } => 502,
            Rejection::NotReady
            | Rejection::CircuitOpen { .. }
            | Rejection::Busy { .. }
            | Rejection::NoHealthyPeer { .. }
            | Rejection::AuthUnavailable
            | Rejection::RateLimitUnavailable { .. }
            | Rejection::Overloaded { .. }
            | Rejection::IdempotencyUnavailable
            | Rejection::ApprovalUnavailable
            | Rejection::WebhookUnavailable => 503,
            Rejection::UpstreamTimeout { .. } => 504,
        }
    }

    /// Stable, machine-readable; clients and dashboards may depend on it.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::BadPath(_) => "invalid_path",
            Rejection::BadRequest | Rejection::Malformed(_) => "bad_request",
            Rejection::Forbidden => "forbidden",
            Rejection::CorsRefused => "cors_refused",
            Rejection::AuthUnavailable => "auth_unavailable",
            Rejection::UriTooLong => "uri_too_long",
            Rejection::RequestTimeout => "request_timeout",
            Rejection::HeadersTooLarge => "headers_too_large",
            Rejection::Unauthenticated => "unauthenticated",
            Rejection::NoRoute => "route_not_found",
            Rejection::MethodNotAllowed(_) => "method_not_allowed",
            Rejection::PayloadTooLarge { .. } => "payload_too_large",
            Rejection::RateLimited { .. } => "rate_limited",
            Rejection::RateLimitUnavailable { .. } => "rate_limit_unavailable",
            Rejection::Overloaded { .. } => "overloaded",
            Rejection::InvalidParameter(_) => "invalid_parameter",
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::MalformedJson => "malformed_json",
            Rejection::InvalidBody(_) => "invalid_body",
            Rejection::IdempotencyKeyMissing => "idempotency_key_missing",
            Rejection::IdempotencyKeyInvalid(_) => "idempotency_key_invalid",
            Rejection::IdempotencyInFlight => "idempotency_in_flight",
            Rejection::IdempotencyOutcomeUnknown => "idempotency_outcome_unknown",
            Rejection::IdempotencyNotReplayable => "idempotency_not_replayable",
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::IdempotencyUnavailable => "idempotency_unavailable",
            Rejection::AmountInvalid { .. } => "invalid_amount",
            Rejection::AmountOverCap { .. } => "amount_over_cap",
            Rejection::BudgetExhausted { .. } => "budget_exhausted",
            Rejection::ApprovalRequired { .. } => "approval_required",
            Rejection::ApprovalNotFound => "approval_not_found",
            Rejection::ApprovalSelf => "approval_self",
            Rejection::ApprovalExpired => "approval_expired",
            Rejection::ApprovalClosed => "approval_closed",
            Rejection::ApprovalDuplicate => "approval_duplicate",
            Rejection::ApprovalUsed => "approval_used",
            Rejection::ApprovalUnavailable => "approval_unavailable",
            Rejection::WebhookSignatureInvalid(_) => "webhook_signature_invalid",
            Rejection::WebhookReplayed => "webhook_replayed",
            Rejection::WebhookUnavailable => "webhook_unavailable",
            Rejection::Internal => "internal_error",
            Rejection::UpstreamRefused { .. } => "upstream_refused",
            Rejection::BadGateway { .. } => "bad_gateway",
            Rejection::NotReady => "not_ready",
            Rejection::CircuitOpen { .. } => "circuit_open",
            Rejection::Busy { .. } => "upstream_busy",
            Rejection::NoHealthyPeer { .. } => "upstream_unavailable",
            Rejection::UpstreamTimeout { .. } => "upstream_timeout",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::BadPath(reason) => format!("invalid request path: {reason}"),
            Rejection::BadRequest => "the request is malformed".into(),
            Rejection::Malformed(what) => format!("the request is malformed: {what}"),
            Rejection::Forbidden => "the caller may not access this resource".into(),
            Rejection::CorsRefused => "this cross-origin request is not allowed".into(),
            Rejection::AuthUnavailable => "credentials cannot be verified right now".into(),
            Rejection::UriTooLong => "the request target is too long".into(),
            Rejection::RequestTimeout => "the request was not received in time".into(),
            Rejection::HeadersTooLarge => "the request headers are too many or too large".into(),
            Rejection::Unauthenticated => "authentication is required".into(),
            Rejection::NoRoute => "no route matches this request".into(),
            Rejection::MethodNotAllowed(_) => "this method is not allowed here".into(),
            Rejection::PayloadTooLarge { limit } => {
                format!("the request body exceeds {limit} bytes")
            }
            Rejection::InvalidParameter(name) => {
                format!("the path parameter :{name} is not valid here")
            }
            Rejection::UnsupportedMediaType => "the request body must be JSON (Content-Type: application/json)".into(),
            Rejection::MalformedJson => "the request body is not valid JSON".into(),
            Rejection::InvalidBody(pointers) => format!(
                "the request body does not match its schema at {}",
                pointers
                    .iter()
                    .map(|p| if p.is_empty() { "the top level" } else { p.as_str() })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Rejection::IdempotencyKeyMissing => {
                "this request needs an Idempotency-Key header (see docs/routes.md#idempotency)".into()
            }
            Rejection::IdempotencyKeyInvalid(why) => {
                format!("the Idempotency-Key is invalid: {why} (see docs/routes.md#idempotency)")
            }
            Rejection::IdempotencyInFlight => {
                "a request with this Idempotency-Key is in progress; retry later".into()
            }
            Rejection::IdempotencyOutcomeUnknown => {
                "a request with this Idempotency-Key reached the service and its outcome is unknown; ask the service, or use a new key (see docs/routes.md#idempotency)".into()
            }
            Rejection::IdempotencyNotReplayable => {
                "a request with this Idempotency-Key completed; its response is too large to replay (see docs/routes.md#idempotency)".into()
            }
            Rejection::IdempotencyKeyReused => {
                "this Idempotency-Key was used for a different request (see docs/routes.md#idempotency)".into()
            }
            Rejection::IdempotencyUnavailable => {
                "idempotency keys cannot be recorded right now; retry later".into()
            }
            Rejection::AmountInvalid { pointer, what } => {
                format!("the request body must hold {what} at {pointer}")
            }
            Rejection::AmountOverCap { policy, cap } => {
                format!("the request asks for more than {policy} allows in one request ({cap})")
            }
            Rejection::BudgetExhausted { .. } => {
                "the request's amount exceeds what is left of its budget; retry later".into()
            }
            Rejection::ApprovalRequired { approvals, needed, .. } => format!(
                "this request needs approval by another principal ({approvals} of {needed} so far); send it again, unchanged, once approved (see docs/routes.md#approvals)"
            ),
            Rejection::ApprovalNotFound => "no such approval".into(),
            Rejection::ApprovalSelf => {
                "nobody approves their own request (see docs/routes.md#approvals)".into()
            }
            Rejection::ApprovalExpired => {
                "this approval has expired; send the request again for a new one".into()
            }
            Rejection::ApprovalClosed => "this approval is no longer pending".into(),
            Rejection::ApprovalDuplicate => "you have approved this request already".into(),
            Rejection::ApprovalUsed => {
                "this approval was used by an earlier request; a new request needs a new Idempotency-Key and a new approval (see docs/routes.md#approvals)".into()
            }
            Rejection::ApprovalUnavailable => {
                "approvals cannot be recorded right now; retry later".into()
            }
            Rejection::WebhookSignatureInvalid(why) => {
                format!("the webhook signature is not valid: {why} (see docs/routes.md#webhooks)")
            }
            Rejection::WebhookReplayed => "this webhook delivery was received before".into(),
            Rejection::WebhookUnavailable => {
                "webhook deliveries cannot be recorded right now; retry later".into()
            }
            Rejection::Internal => "internal error".into(),
            Rejection::RateLimited { .. } => "too many requests; retry later".into(),
            Rejection::RateLimitUnavailable { .. } => {
                "this request cannot be rate-limited right now; retry later".into()
            }
            Rejection::Overloaded { .. } => "the service is overloaded; retry later".into(),
            Rejection::NotReady => "the gateway is starting".into(),
            Rejection::CircuitOpen { upstream, .. } => {
                format!("service {upstream} is failing; requests are paused")
            }
            Rejection::Busy { upstream } => format!("service {upstream} is at capacity"),
            Rejection::NoHealthyPeer { upstream } => format!("service {upstream} is unavailable"),
            Rejection::UpstreamRefused { upstream } => {
                format!("service {upstream} refused the connection")
            }
            Rejection::UpstreamTimeout { upstream } => {
                format!("service {upstream} did not answer in time")
            }
            Rejection::BadGateway { upstream } => {
                format!("service {upstream} sent an invalid response")
            }
        }
    }

    /// The security event a refusal is worth (probing, smuggling and traversal attempts),
    /// wherever it is made: in `request_filter` or at the connection.
    pub fn event_reason(&self) -> Option<&'static str> {
        Some(match self {
            Rejection::BadPath(_) => "invalid_path",
            Rejection::Malformed(_) => "malformed_request",
            Rejection::UriTooLong => "uri_too_long",
            Rejection::HeadersTooLarge => "headers_too_large",
            Rejection::MethodNotAllowed(allowed) if allowed.is_empty() => "method_refused",
            _ => return None,
        })
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Rejection::CircuitOpen { retry_after, .. }
            | Rejection::RateLimited { retry_after }
            | Rejection::BudgetExhausted { retry_after }
            | Rejection::RateLimitUnavailable { retry_after }
            | Rejection::Overloaded { retry_after } => {
                Some((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
            }
            Rejection::Busy { .. }
            | Rejection::NoHealthyPeer { .. }
            | Rejection::NotReady
            | Rejection::AuthUnavailable
            | Rejection::IdempotencyInFlight
            | Rejection::IdempotencyUnavailable
            | Rejection::ApprovalUnavailable
            | Rejection::WebhookUnavailable => Some(1),
            _ => None,
        }
    }

    /// Maps a Pingora error that no filter turned into a rejection. `upstream` names the
    /// service the request was going to, when it got that far.
    pub fn from_error(error: &Error, upstream: Option<&str>) -> Option<Rejection> {
        let service = || upstream.unwrap_or("upstream").to_string();
        if let ErrorType::HTTPStatus(code) = error.etype() {
            return Some(match code {
                400 => Rejection::BadRequest,
                413 => Rejection::PayloadTooLarge { limit: 0 },
                504 => Rejection::UpstreamTimeout {
                    upstream: service(),
                },
                502 => Rejection::BadGateway {
                    upstream: service(),
                },
                _ => Rejection::Internal,
            });
        }
        Some(match (error.esource(), error.etype()) {
            (
                ErrorSource::Downstream,
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
            ) => return None,
            (ErrorSource::Downstream, _) => Rejection::BadRequest,
            (
                _,
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
            ) => Rejection::UpstreamTimeout {
                upstream: service(),
            },
            (
                _,
                ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError,
            ) => Rejection::UpstreamRefused {
                upstream: service(),
            },
            (ErrorSource::Upstream, _) => Rejection::BadGateway {
                upstream: service(),
            },
            _ => Rejection::Internal,
        })
    }

    /// What Usher answers in place of an error response Pingora wrote itself with `status`
    /// (its parser refused the head, or it refused `CONNECT`). `too_many_headers` says the
    /// head had more header lines than `limits.max_headers`.
    pub fn for_pingora_status(status: u16, too_many_headers: bool) -> Rejection {
        match status {
            400 | 431 if too_many_headers => Rejection::HeadersTooLarge,
            400 => Rejection::Malformed("the request head could not be parsed"),
            405 => Rejection::MethodNotAllowed(Vec::new()),
            414 => Rejection::UriTooLong,
            431 => Rejection::HeadersTooLarge,
            _ => Rejection::Internal,
        }
    }
}
