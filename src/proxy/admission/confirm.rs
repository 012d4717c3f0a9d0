//! The confirm stage: asks the services themselves where the route wants it, whether the
//! token's user is still active (a banned user's unexpired token stops working) and whether
//! the user may act on the venue. Answers are cached by the lookups.

use crate::config::RouteSpec;
use crate::respond::Rejection;
use crate::security::events::{self, Severity};
use crate::security::lookup::Answer;
use crate::security::{CredentialKind, Identity};
use crate::snapshot::Snapshot;

pub async fn confirm(
    snapshot: &Snapshot,
    route: &RouteSpec,
    identity: &Identity,
    params: &[String],
    at: &events::Context<'_>,
) -> Result<(), Rejection> {
    let security = &snapshot.security;
    let auth = &route.auth;
    let unavailable = |reason| super::dependency_unavailable(route, reason, at);
    let values = [
        ("sub", identity.subject.as_str()),
        ("tenant", identity.tenant.as_str()),
    ];
    if let (true, Some(lookup), CredentialKind::Jwt) =
        (auth.user_status, &security.user_status, identity.source)
    {
        match lookup.ask(&values).await {
            Answer::Allowed => {}
            Answer::Denied => {
                events::record("user_inactive", Severity::Medium, at);
                return Err(Rejection::Unauthenticated);
            }
            Answer::Unavailable => unavailable("user_status_unavailable")?,
        }
    }
    let venue = auth.venue_param.and_then(|index| params.get(index));
    let is_admin = identity.has_any_role(&auth.admin_roles);
    if let (true, Some(lookup), Some(venue), false) =
        (auth.venue_check, &security.venue_access, venue, is_admin)
    {
        let [sub, tenant] = values;
        match lookup.ask(&[sub, tenant, ("venue", venue.as_str())]).await {
            Answer::Allowed => {}
            Answer::Denied => {
                events::record("venue_denied", Severity::Medium, at);
                return Err(Rejection::Forbidden);
            }
            Answer::Unavailable => unavailable("venue_check_unavailable")?,
        }
    }
    Ok(())
}
