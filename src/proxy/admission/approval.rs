//! The approval stage, on routes with `approval`, once the body is in and its
//! Idempotency-Key is held: a request asking for more than `above` goes on only with a
//! granted approval, which it then uses (see `crate::approval` for the rules).

use super::budget::amount_in;
use super::idempotency::fingerprinted_query;
use crate::approval::endpoint::{self, principal};
use crate::approval::{Submission, Submitted};
use crate::config::{RouteSpec, RouteTarget};
use crate::respond::Rejection;
use crate::security::events::{self, Severity};
use crate::security::Identity;
use crate::snapshot::Snapshot;
use crate::store::Place;
use pingora::http::RequestHeader;

/// A granted approval this request uses, and who approved it (for `X-Approved-By`).
#[derive(Debug)]
pub struct Approved {
    pub id: String,
    pub approvers: Vec<String>,
}

/// What the stage reads of the request.
pub struct Asked<'a> {
    pub head: &'a RequestHeader,
    pub path: &'a str,
    pub params: &'a [String],
    pub body: &'a [u8],
    pub document: Option<&'a serde_json::Value>,
}

pub async fn check(
    snapshot: &Snapshot,
    route: &RouteSpec,
    identity: Option<&Identity>,
    asked: &Asked<'_>,
    at: &events::Context<'_>,
) -> Result<Option<Approved>, Rejection> {
    let (Some(spec), Some(document)) = (&route.approval, asked.document) else {
        return Ok(None);
    };
    let amount = amount_in(&spec.amount, document)?;
    if amount <= spec.above {
        return Ok(None);
    }
    // A public path of the route has no submitter to bind: such a request never passes.
    let identity = identity.ok_or(Rejection::Unauthenticated)?;
    let who = principal(identity);
    let venue = match (&route.auth.venue_field, route.auth.venue_param) {
        (Some(pointer), _) => document.pointer(pointer).and_then(|v| v.as_str()),
        (None, Some(index)) => asked.params.get(index).map(String::as_str),
        (None, None) => None,
    };
    // The query as idempotency fingerprints it: without a token that travels in it.
    let query = fingerprinted_query(asked.head.uri.query(), &route.auth.token_sources);
    let path = match query.as_str() {
        "" => asked.path.to_string(),
        query => format!("{}?{query}", asked.path),
    };
    let submission = Submission {
        tenant: &identity.tenant,
        submitter: &who,
        route: &route.name,
        method: asked.head.method.as_str(),
        path: &path,
        amount,
        venue,
        needed: spec.needed,
        roles: &spec.roles,
        scope_roles: &route.auth.admin_roles,
        expires: spec.expires,
    };
    let key = asked
        .head
        .headers
        .get("idempotency-key")
        .map_or(&b""[..], |v| v.as_bytes());
    let id = submission.id(asked.body, &String::from_utf8_lossy(key));
    let event =
        |reason, severity| events::record_approval(reason, severity, at, &id, Some(&who), &who);
    let required = |approvals| Rejection::ApprovalRequired {
        id: id.clone(),
        approvals,
        needed: spec.needed,
        status: status_path(snapshot, &id),
    };
    match snapshot
        .kept
        .approvals
        .submit(Place::of(snapshot), &id, &submission)
        .await
    {
        Submitted::Created { replaced } => {
            if replaced {
                endpoint::count("expired");
            }
            endpoint::count("requested");
            event("approval_requested", Severity::Low);
            Err(required(0))
        }
        Submitted::Pending { approvals } => {
            endpoint::count("pending");
            event("approval_pending", Severity::Low);
            Err(required(approvals))
        }
        Submitted::Use { approvers } => {
            endpoint::count("used");
            let approved_by = approvers.join(",");
            events::record_approval(
                "approval_used",
                Severity::Low,
                at,
                &id,
                Some(&who),
                &approved_by,
            );
            Ok(Some(Approved { id, approvers }))
        }
        Submitted::Used => {
            endpoint::count("refused");
            event("approval_reused", Severity::Medium);
            Err(Rejection::ApprovalUsed)
        }
        Submitted::Unavailable => {
            event("approval_unavailable", Severity::Low);
            Err(Rejection::ApprovalUnavailable)
        }
    }
}

/// Where the submitter and the approvers read the approval: under the route that serves
/// approvals.
fn status_path(snapshot: &Snapshot, id: &str) -> String {
    let base = snapshot
        .config
        .routes
        .iter()
        .find(|route| route.target == RouteTarget::Approvals)
        .map(|route| route.pattern_text.to_string())
        .unwrap_or_default();
    format!("{}/{id}", base.trim_end_matches('/'))
}

/// Gives a used approval back: the request that used it did not happen.
pub async fn restore(snapshot: &Snapshot, approved: Approved) {
    snapshot
        .kept
        .approvals
        .restore(Place::of(snapshot), &approved.id)
        .await;
    endpoint::count("restored");
}
