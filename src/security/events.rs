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
struct Caller {
    subject: String,
    tenant: String,
    credential: &'static str,
    key_id: String,
    jti: String,
}

impl Caller {
    fn of(identity: Option<&crate::security::Identity>) -> Caller {
        let dash = || "-".to_string();
        match identity {
            None => Caller {
                subject: dash(),
                tenant: dash(),
                credential: "-",
                key_id: dash(),
                jti: dash(),
            },
            Some(identity) => Caller {
                subject: identity.subject.clone(),
                tenant: identity.tenant.clone(),
                credential: identity.source.as_str(),
                key_id: identity.key_id.clone().unwrap_or_else(dash),
                jti: identity.jti_digest().unwrap_or_else(dash),
            },
        }
    }
}

pub fn record(reason: &'static str, severity: Severity, at: &Context<'_>) {
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
        "security event"
    );
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
    count(reason, severity);
    let client = at.client.map(|c| c.to_string());
    tracing::warn!(
        target: "usher::security",
        kind = "security_event",
        reason,
        severity = severity.as_str(),
        request_id = at.request_id,
        client = client.as_deref().unwrap_or("-"),
        route = at.route.unwrap_or("-"),
        path = at.path,
        approval,
        submitter = submitter.unwrap_or("-"),
        actor,
        "security event"
    );
}

fn count(reason: &'static str, severity: Severity) {
    METRICS
        .security_events
        .with_label_values(&[reason, severity.as_str()])
        .inc();
}
