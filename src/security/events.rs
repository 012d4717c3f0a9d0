//! Security events: one structured log line (target `usher::security`) and one metric
//! increment (`usher_security_events_total{reason, severity}`) per event. Events name what
//! happened and where; they never contain tokens, keys or header values.

use crate::telemetry::metrics::METRICS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// Where an event happened: enough to find the request and its caller, nothing secret.
pub struct Context<'a> {
    pub request_id: &'a str,
    pub client: Option<std::net::IpAddr>,
    pub route: Option<&'a str>,
    pub path: &'a str,
    /// The verified caller, once there is one.
    pub caller: Option<&'a crate::security::Identity>,
}

/// The caller's fields in a log line: subject, tenant, credential kind, key id and the
/// digest of the token's `jti` (`-` where there is none).
struct Caller<'a> {
    subject: &'a str,
    tenant: &'a str,
    credential: &'static str,
    key_id: &'a str,
    jti: &'a str,
}

impl<'a> Caller<'a> {
    fn of(identity: Option<&'a crate::security::Identity>) -> Caller<'a> {
        match identity {
            None => Caller {
                subject: "-",
                tenant: "-",
                credential: "-",
                key_id: "-",
                jti: "-",
            },
            Some(identity) => Caller {
                subject: &identity.subject,
                tenant: &identity.tenant,
                credential: identity.source.as_str(),
                key_id: identity.key_id.as_deref().unwrap_or("-"),
                jti: identity.token_digest.as_deref().unwrap_or("-"),
            },
        }
    }
}

/// One security event: counted, and logged with where it happened, the caller, and the
/// fields the kind of event adds.
macro_rules! security_event {
    ($reason:expr, $severity:expr, $at:expr $(, $field:ident = $value:expr)*) => {{
        let (reason, severity, at): (&'static str, Severity, &Context<'_>) = ($reason, $severity, $at);
        count(reason, severity);
        let client = at.client.map(|c| c.to_string());
        let caller = Caller::of(at.caller);
        tracing::warn!(
            target: "usher::security",
            kind = "security_event",
            reason,
            severity = severity.as_str(),
            request_id = at.request_id,
            client = client.as_deref().unwrap_or("-"),
            route = at.route.unwrap_or("-"),
            path = at.path,
            subject = caller.subject,
            tenant = caller.tenant,
            credential = caller.credential,
            key_id = caller.key_id,
            jti_sha256 = caller.jti,
            $($field = $value,)*
            "security event"
        );
    }};
}

pub fn record(reason: &'static str, severity: Severity, at: &Context<'_>) {
    security_event!(reason, severity, at);
}

/// An approval's event: its id, the submitter (when known) and the principal acting
/// (submitting, approving, using), so both identities are in the one line.
pub fn record_approval(
    reason: &'static str,
    severity: Severity,
    at: &Context<'_>,
    approval: &str,
    submitter: Option<&str>,
    actor: &str,
) {
    security_event!(
        reason,
        severity,
        at,
        approval = approval,
        submitter = submitter.unwrap_or("-"),
        actor = actor
    );
}

fn count(reason: &'static str, severity: Severity) {
    METRICS
        .security_events
        .with_label_values(&[reason, severity.as_str()])
        .inc();
}
