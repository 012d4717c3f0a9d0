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

/// Every event's reason and its severity, as docs/security.md lists them (a test keeps the
/// two in step): `usher_security_events_total` has each series from the start, and
/// [`record`] checks its reason against this list in debug builds.
pub const REASONS: [(&str, Severity); 71] = [
    ("alg_none", Severity::High),
    ("wrong_algorithm", Severity::High),
    ("bad_signature", Severity::High),
    ("untrusted_key_reference", Severity::High),
    ("token_revoked", Severity::High),
    ("rate_limit_bot_suspected", Severity::High),
    ("webhook_signature_mismatch", Severity::High),
    ("webhook_replayed", Severity::High),
    ("signature_mismatch", Severity::High),
    ("signature_replayed", Severity::High),
    ("signature_digest_mismatch", Severity::High),
    ("malformed_token", Severity::Medium),
    ("ambiguous_credentials", Severity::Medium),
    ("duplicate_member", Severity::Medium),
    ("critical_extension", Severity::Medium),
    ("invalid_identity_value", Severity::Medium),
    ("unknown_key", Severity::Medium),
    ("not_yet_valid", Severity::Medium),
    ("issued_in_future", Severity::Medium),
    ("wrong_issuer", Severity::Medium),
    ("wrong_audience", Severity::Medium),
    ("missing_claim", Severity::Medium),
    ("wrong_token_type", Severity::Medium),
    ("missing_tenant", Severity::Medium),
    ("lifetime_too_long", Severity::Medium),
    ("invalid_api_key", Severity::Medium),
    ("missing_role", Severity::Medium),
    ("venue_not_in_scope", Severity::Medium),
    ("user_inactive", Severity::Medium),
    ("token_without_jti", Severity::Medium),
    ("venue_denied", Severity::Medium),
    ("spoofed_identity_header", Severity::Medium),
    ("invalid_path", Severity::Medium),
    ("malformed_request", Severity::Medium),
    ("uri_too_long", Severity::Medium),
    ("headers_too_large", Severity::Medium),
    ("method_refused", Severity::Medium),
    ("rate_limit_blocked", Severity::Medium),
    ("signature_malformed", Severity::Medium),
    ("signature_unknown_key", Severity::Medium),
    ("signature_incomplete", Severity::Medium),
    ("signature_stale", Severity::Medium),
    ("webhook_signature_missing", Severity::Medium),
    ("webhook_signature_stale", Severity::Medium),
    ("approval_self", Severity::Medium),
    ("approval_role", Severity::Medium),
    ("approval_not_found", Severity::Medium),
    ("approval_expired", Severity::Medium),
    ("approval_closed", Severity::Medium),
    ("approval_duplicate", Severity::Medium),
    ("approval_reused", Severity::Medium),
    ("malformed_body", Severity::Medium),
    ("idempotency_unrecorded", Severity::Medium),
    ("missing_credentials", Severity::Low),
    ("expired", Severity::Low),
    ("no_verifier_configured", Severity::Low),
    ("keys_unavailable", Severity::Low),
    ("user_status_unavailable", Severity::Low),
    ("venue_check_unavailable", Severity::Low),
    ("revocation_unavailable", Severity::Low),
    ("request_head_timeout", Severity::Low),
    ("request_body_timeout", Severity::Low),
    ("approval_requested", Severity::Low),
    ("approval_granted", Severity::Low),
    ("approval_used", Severity::Low),
    ("webhook_unrecorded", Severity::Low),
    ("signature_nonce_unavailable", Severity::Low),
    ("body_buffers_full", Severity::Low),
    ("approval_pending", Severity::Low),
    ("approval_recorded", Severity::Low),
    ("approval_unavailable", Severity::Low),
];

fn count(reason: &'static str, severity: Severity) {
    debug_assert!(
        REASONS.contains(&(reason, severity)),
        "security event {reason} ({}) is not in security::events::REASONS",
        severity.as_str()
    );
    METRICS
        .security_events
        .with_label_values(&[reason, severity.as_str()])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_notes(text: &str) -> String {
        let mut depth = 0;
        text.chars()
            .filter(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0 && *c != ')'
            })
            .collect()
    }

    /// The reasons docs/security.md lists, by severity, are exactly [`REASONS`].
    #[test]
    fn the_documented_reasons_are_the_listed_ones() {
        let doc = include_str!("../../docs/security.md");
        let table = &doc[doc
            .find("| reason | severity |")
            .expect("the reasons table")..];
        let mut documented: Vec<(String, String)> = Vec::new();
        for row in table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
        {
            let cells: Vec<&str> = row.split('|').collect();
            let severity = cells[2].trim().to_string();
            // The reasons, without the notes in parentheses (which may name other things).
            let names = strip_notes(cells[1]);
            for (i, name) in names.split('`').enumerate() {
                let entry = (name.to_string(), severity.clone());
                if i % 2 == 1 && !documented.contains(&entry) {
                    documented.push(entry);
                }
            }
        }
        let listed: Vec<(String, String)> = REASONS
            .iter()
            .map(|(reason, severity)| (reason.to_string(), severity.as_str().to_string()))
            .collect();
        documented.sort();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(documented, sorted);
    }
}
