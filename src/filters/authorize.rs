//! Roles and venue scope, replacing the old gateway's `checkVenueAccess() → true`.
//! A route may require one of a set of roles; a route with a venue parameter may require
//! that the caller's venue claim contains that venue, unless the caller has an admin role;
//! a venue named in the body (`venue_field`) is held to the same rule once the body is in.

use crate::config::RouteAuth;
use crate::security::Identity;

/// `params` are the matched route's parameter values, in pattern order. On refusal, the
/// reason (for logs and metrics).
pub fn authorize(
    identity: &Identity,
    auth: &RouteAuth,
    params: &[String],
) -> Result<(), &'static str> {
    if !auth.roles.is_empty() && !identity.has_any_role(&auth.roles) {
        return Err("missing_role");
    }
    if let Some(index) = auth.venue_param {
        let venue = params.get(index).map(String::as_str);
        if !venue_in_scope(identity, auth, venue) {
            return Err("venue_not_in_scope");
        }
    }
    Ok(())
}

/// Whether the caller may act on `venue` (a path parameter, or `venue_field` in the body;
/// `None` when there is none): its venue claim contains it, or it has an admin role.
pub fn venue_in_scope(identity: &Identity, auth: &RouteAuth, venue: Option<&str>) -> bool {
    let scoped = venue.is_some_and(|venue| identity.venues.iter().any(|v| v == venue));
    scoped || identity.has_any_role(&auth.admin_roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: &[&str], venues: &[&str]) -> Identity {
        Identity {
            venues: venues.iter().map(|v| v.to_string()).collect(),
            ..Identity::caller("u1", "t1", roles)
        }
    }

    #[test]
    fn roles_and_venue_scope() {
        let auth = RouteAuth {
            roles: vec!["venue_manager".into(), "admin".into()],
            venue_param: Some(0),
            admin_roles: vec!["admin".into()],
            ..RouteAuth::default()
        };
        let params = vec!["v7".to_string()];
        assert_eq!(
            authorize(&caller(&["venue_manager"], &["v7"]), &auth, &params),
            Ok(())
        );
        assert_eq!(
            authorize(&caller(&["venue_manager"], &["v8"]), &auth, &params),
            Err("venue_not_in_scope")
        );
        assert_eq!(authorize(&caller(&["admin"], &[]), &auth, &params), Ok(()));
        assert_eq!(
            authorize(&caller(&["customer"], &["v7"]), &auth, &params),
            Err("missing_role")
        );
        assert_eq!(
            authorize(&caller(&[], &[]), &RouteAuth::default(), &[]),
            Ok(())
        );
    }
}
