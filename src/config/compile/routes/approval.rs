//! A route's `approval` (the four-eyes rule above an amount) and `serve` (an endpoint Usher
//! answers itself: the one where approvals are granted and read).

use crate::config::compile::Compiler;
use crate::config::raw::RawRoute;
use crate::config::{builtin, AmountSpec, ApprovalSpec, RouteSpec, RouteTarget};

impl Compiler<'_> {
    pub(super) fn route_approval(
        &mut self,
        at: &str,
        raw: &RawRoute,
        max_body: u64,
    ) -> Option<ApprovalSpec> {
        let approval = raw.approval.as_ref()?;
        let at = format!("{at}.approval");
        if raw.public {
            self.error(
                &at,
                "needs an authenticated route: approvals are bound to the submitter",
            );
        }
        self.reads_whole_body(&at, raw, max_body);
        let (pointer, measure) = self.amount_at(&at, &approval.length_of, &approval.number_at)?;
        let roles = match (&approval.roles, raw.auth.as_ref()) {
            (own, _) if !own.is_empty() => own.clone(),
            (_, Some(auth)) if !auth.roles.is_empty() => auth.roles.clone(),
            _ => {
                self.error(
                    format!("{at}.roles"),
                    "name the roles an approver needs (or give the route auth.roles)",
                );
                Vec::new()
            }
        };
        let needed = approval.approvals.unwrap_or(builtin::APPROVALS_NEEDED);
        if needed == 0 {
            self.error(format!("{at}.approvals"), "must be at least 1");
        }
        let expires = approval.expires.map_or(builtin::APPROVAL_EXPIRES, |d| d.0);
        let expires = self.positive(&format!("{at}.expires"), expires);
        Some(ApprovalSpec {
            amount: AmountSpec {
                pointer,
                measure,
                max_per_request: None,
            },
            above: approval.above,
            roles,
            needed,
            expires,
        })
    }

    /// What a route that Usher serves may not have: it is answered at the edge, after
    /// authentication and rate limits.
    pub(super) fn served_route(&mut self, at: &str, raw: &RawRoute) {
        if raw.public {
            self.error(
                format!("{at}.public"),
                "the approvals endpoint acts for the caller; it cannot be public",
            );
        }
        let upstream_only = [
            ("rewrite", raw.rewrite.is_some()),
            ("idempotency", raw.idempotency.is_some()),
            ("validate", raw.validate.is_some()),
            ("approval", raw.approval.is_some()),
            ("webhook", raw.webhook.is_some()),
            ("websocket", raw.websocket),
        ];
        for (key, set) in upstream_only {
            if set {
                self.error(
                    format!("{at}.{key}"),
                    "applies to requests that go upstream; serve: approvals answers at the edge",
                );
            }
        }
    }

    /// Routes that need approval need somewhere to approve.
    pub(super) fn check_approvals_served(&mut self, routes: &[(usize, RouteSpec)]) {
        if routes
            .iter()
            .any(|(_, r)| r.target == RouteTarget::Approvals)
        {
            return;
        }
        if let Some((index, _)) = routes.iter().find(|(_, r)| r.approval.is_some()) {
            self.error(
                format!("routes[{index}].approval"),
                "no route has serve: approvals, so nobody could approve",
            );
        }
    }
}
