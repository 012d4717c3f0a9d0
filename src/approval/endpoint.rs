//! The approvals endpoint, on a route with `serve: approvals`, answered by Usher after
//! authentication and rate limits:
//!
//! - `GET <path>/<id>`: the approval's status, to its submitter and to principals of its
//!   tenant holding an approver role; anyone else gets 404, as for an id that never was.
//! - `POST <path>/<id>/approve`: one approval by the caller (another principal of the same
//!   tenant, with an approver role, and the approval's venue in its own venues unless it
//!   holds one of the route's `admin_roles`); answers the status.
//!
//! A status names the route, the amount and the venue, never the body.

use super::{Approvals, Approved, Approver, Record};
use crate::respond::Rejection;
use crate::security::events::{self, Severity};
use crate::security::Identity;
use crate::store::Place;
use crate::telemetry::metrics::{labels, METRICS};
use http::Method;

/// What a request to the endpoint asks.
#[derive(Debug, PartialEq, Eq)]
pub enum Call<'a> {
    Read(&'a str),
    Approve(&'a str),
}

/// `tail` is the path after the route's own (`/<id>` or `/<id>/approve`).
pub fn call<'a>(method: &Method, tail: &'a str) -> Result<Call<'a>, Rejection> {
    let segments: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    let (id, call, allowed) = match segments[..] {
        [id] => (id, Call::Read(id), Method::GET),
        [id, "approve"] => (id, Call::Approve(id), Method::POST),
        _ => return Err(Rejection::NoRoute),
    };
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::ApprovalNotFound);
    }
    if *method != allowed {
        return Err(Rejection::MethodNotAllowed(vec![allowed]));
    }
    Ok(call)
}

/// The caller as approvals name principals: `<credential kind>:<subject>`.
pub fn principal(identity: &Identity) -> String {
    format!("{}:{}", identity.source.as_str(), identity.subject)
}

pub async fn answer(
    approvals: &Approvals,
    place: Place<'_>,
    identity: &Identity,
    call: Call<'_>,
    at: &events::Context<'_>,
) -> Result<serde_json::Value, Rejection> {
    let who = principal(identity);
    let id = match call {
        Call::Read(id) => id,
        Call::Approve(id) => {
            let approver = Approver {
                tenant: &identity.tenant,
                principal: &who,
                roles: &identity.roles,
                venues: &identity.venues,
            };
            let (approved, submitter) = approvals.approve(place, id, &approver).await;
            let event = |reason, severity| {
                let submitter = submitter.as_deref();
                events::record_approval(reason, severity, at, id, submitter, &who);
            };
            let refused = |reason: &'static str, rejection: Rejection| {
                count("refused");
                event(reason, Severity::Medium);
                Err(rejection)
            };
            match approved {
                Approved::Recorded { granted: true, .. } => {
                    count("granted");
                    event("approval_granted", Severity::Low);
                }
                Approved::Recorded { granted: false, .. } => {
                    count("approved");
                    event("approval_recorded", Severity::Low);
                }
                Approved::NotFound => {
                    return refused("approval_not_found", Rejection::ApprovalNotFound)
                }
                Approved::SelfApproval => return refused("approval_self", Rejection::ApprovalSelf),
                Approved::MissingRole => return refused("approval_role", Rejection::Forbidden),
                Approved::Expired => {
                    return refused("approval_expired", Rejection::ApprovalExpired)
                }
                Approved::Closed => return refused("approval_closed", Rejection::ApprovalClosed),
                Approved::Duplicate => {
                    return refused("approval_duplicate", Rejection::ApprovalDuplicate)
                }
                Approved::Unavailable => {
                    event("approval_unavailable", Severity::Low);
                    return Err(Rejection::ApprovalUnavailable);
                }
            }
            id
        }
    };
    let record = approvals
        .read(place, id)
        .await
        .map_err(|()| Rejection::ApprovalUnavailable)?
        .filter(|record| visible(record, identity, &who))
        .ok_or(Rejection::ApprovalNotFound)?;
    Ok(view(id, &record))
}

/// Its submitter, and the principals of its tenant who could approve it.
fn visible(record: &Record, identity: &Identity, who: &str) -> bool {
    record.tenant == identity.tenant
        && (record.submitter == who || identity.has_any_role(&record.roles))
}

pub fn view(id: &str, record: &Record) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "status": record.state.as_str(),
        "route": record.route,
        "amount": record.amount,
        "venue": record.venue,
        "submitter": record.submitter,
        "approvals": record.approvers.len(),
        "needed": record.needed,
        "approvers": record.approvers,
        "expires_in": record.expires_in.as_secs(),
    })
}

pub fn count(outcome: &str) {
    labels::check("approvals", &labels::APPROVALS, outcome);
    METRICS.approvals.with_label_values(&[outcome]).inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn calls_are_an_id_or_its_approval() {
        assert_eq!(call(&Method::GET, &format!("/{ID}")), Ok(Call::Read(ID)));
        assert_eq!(
            call(&Method::POST, &format!("/{ID}/approve")),
            Ok(Call::Approve(ID))
        );
        assert_eq!(
            call(&Method::POST, &format!("/{ID}")),
            Err(Rejection::MethodNotAllowed(vec![Method::GET]))
        );
        assert_eq!(call(&Method::GET, "/xyz"), Err(Rejection::ApprovalNotFound));
        assert_eq!(call(&Method::GET, "/"), Err(Rejection::NoRoute));
        assert_eq!(
            call(&Method::GET, &format!("/{ID}/approve/x")),
            Err(Rejection::NoRoute)
        );
    }
}
