//! Two-person approval (the four-eyes rule) for requests above an amount, at the edge, for
//! every replica at once (MINT-003: a stolen admin credential alone cannot mint a large
//! batch).
//!
//! A request on a route with `approval` that asks for more than `above` is answered 403
//! `approval_required` with an approval id, bound to what it asks: the tenant, the
//! submitter (credential kind and subject), the route, the method, the path and query,
//! the body's digest and its Idempotency-Key. The id is the digest of those, so the
//! identical request finds its approval again and a changed one needs a new approval.
//! Other principals of the same tenant with an approver role, each a different subject,
//! approve it at the approvals endpoint ([`endpoint`]); once `needed` have, the identical
//! request is forwarded once, with the approvers in `X-Approved-By`. An approval expires
//! (`expires` after it was asked for) and is single use; a request that did not happen
//! (never sent, or refused by the service with a 4xx) gives it back.
//!
//! Approvals live in the Redis every replica shares (one hash per approval, atomic
//! scripts: `submit.lua`, `approve.lua`, `read.lua`, `restore.lua`), or in this process
//! when no Redis is configured ([`local`]). While Redis cannot answer, approvals fail
//! closed (503).

pub mod endpoint;
mod local;

use crate::store::redis::{LuaScript, StoreError};
use crate::store::Place;
use fred::types::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long a record is kept after it expired, so its status still reads "expired".
const KEPT_AFTER_EXPIRY: Duration = Duration::from_secs(3600);

/// What a submission binds, and the approval it asks for.
pub struct Submission<'a> {
    pub tenant: &'a str,
    /// `<credential kind>:<subject>`.
    pub submitter: &'a str,
    pub route: &'a str,
    pub method: &'a str,
    /// The normalized path and the query, as forwarded.
    pub path: &'a str,
    pub amount: u64,
    pub venue: Option<&'a str>,
    pub needed: u32,
    pub roles: &'a [String],
    /// Roles that may approve for any venue; others only for a venue in their own claim.
    pub scope_roles: &'a [String],
    pub expires: Duration,
}

impl Submission<'_> {
    /// The approval's id: a digest of everything it binds (length-prefixed, so no two
    /// bindings share one), the body and the Idempotency-Key (empty without one) included.
    pub fn id(&self, body: &[u8], key: &str) -> String {
        let body = Sha256::digest(body);
        let parts: [&[u8]; 7] = [
            self.tenant.as_bytes(),
            self.submitter.as_bytes(),
            self.route.as_bytes(),
            self.method.as_bytes(),
            self.path.as_bytes(),
            &body,
            key.as_bytes(),
        ];
        crate::digest::sha256_prefixed_hex(&parts, 16)
    }
}

/// Who approves: `principal` is `<credential kind>:<subject>`.
pub struct Approver<'a> {
    pub tenant: &'a str,
    pub principal: &'a str,
    pub roles: &'a [String],
    pub venues: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// A new approval was asked for (`replaced`: an expired one with the same binding).
    Created {
        replaced: bool,
    },
    Pending {
        approvals: u32,
    },
    /// Granted: it is now used by this request.
    Use {
        approvers: Vec<String>,
    },
    /// Used by an earlier request.
    Used,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approved {
    Recorded {
        approvals: u32,
        needed: u32,
        granted: bool,
    },
    /// No such approval for the approver's tenant.
    NotFound,
    SelfApproval,
    MissingRole,
    Expired,
    /// Already granted or used.
    Closed,
    /// This approver approved it already.
    Duplicate,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Approved,
    Used,
    Expired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Used => "used",
            State::Expired => "expired",
        }
    }

    fn parse(text: &str) -> State {
        match text {
            "pending" => State::Pending,
            "approved" => State::Approved,
            "used" => State::Used,
            _ => State::Expired,
        }
    }
}

/// An approval as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub tenant: String,
    pub submitter: String,
    pub route: String,
    pub amount: u64,
    pub venue: Option<String>,
    pub needed: u32,
    pub roles: Vec<String>,
    pub scope_roles: Vec<String>,
    pub approvers: Vec<String>,
    pub state: State,
    /// Until it expires (zero once it has).
    pub expires_in: Duration,
}

/// Approvals of this process, and the scripts that keep them in Redis.
pub struct Approvals {
    local: local::LocalApprovals,
    submit: LuaScript,
    approve: LuaScript,
    read: LuaScript,
    restore: LuaScript,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            local: local::LocalApprovals::default(),
            submit: LuaScript::new(include_str!("submit.lua")),
            approve: LuaScript::new(include_str!("approve.lua")),
            read: LuaScript::new(include_str!("read.lua")),
            restore: LuaScript::new(include_str!("restore.lua")),
        }
    }
}

fn record_key(prefix: &str, id: &str) -> String {
    format!("{prefix}approval:{{{id}}}")
}

fn json(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

impl Approvals {
    pub async fn submit(
        &self,
        place: Place<'_>,
        id: &str,
        submission: &Submission<'_>,
    ) -> Submitted {
        let (store, spec) = match place {
            Place::Local => return self.local.submit(id, submission),
            Place::Missing => return Submitted::Unavailable,
            Place::Shared(store, spec) => (store, spec),
        };
        let key = record_key(&spec.key_prefix, id);
        let reply: Option<Result<Vec<String>, StoreError>> = store
            .guarded(spec, |redis| {
                redis.run_script(
                    &self.submit,
                    || vec![key.clone()],
                    || {
                        vec![
                            Value::from(submission.tenant),
                            Value::from(submission.submitter),
                            Value::from(submission.route),
                            Value::from(submission.method),
                            Value::from(submission.path),
                            Value::from(submission.amount as i64),
                            Value::from(submission.venue.unwrap_or_default()),
                            Value::from(i64::from(submission.needed)),
                            Value::from(json(submission.roles)),
                            Value::from(submission.expires.as_millis() as i64),
                            Value::from(KEPT_AFTER_EXPIRY.as_millis() as i64),
                            Value::from(json(submission.scope_roles)),
                        ]
                    },
                )
            })
            .await;
        let Some(Ok(reply)) = reply else {
            return Submitted::Unavailable;
        };
        match reply.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["use", approvers] => Submitted::Use {
                approvers: serde_json::from_str(approvers).unwrap_or_default(),
            },
            ["pending", approvals] => Submitted::Pending {
                approvals: approvals.parse().unwrap_or(0),
            },
            ["used", _] => Submitted::Used,
            ["created", was] => Submitted::Created {
                replaced: was == "expired",
            },
            _ => Submitted::Unavailable,
        }
    }

    /// One approval by `approver`. Also returns the approval's submitter, when the approval
    /// is the approver's tenant's.
    pub async fn approve(
        &self,
        place: Place<'_>,
        id: &str,
        approver: &Approver<'_>,
    ) -> (Approved, Option<String>) {
        let (store, spec) = match place {
            Place::Local => return self.local.approve(id, approver),
            Place::Missing => return (Approved::Unavailable, None),
            Place::Shared(store, spec) => (store, spec),
        };
        let key = record_key(&spec.key_prefix, id);
        let reply: Option<Result<(String, i64, i64, String), StoreError>> = store
            .guarded(spec, |redis| {
                redis.run_script(
                    &self.approve,
                    || vec![key.clone()],
                    || {
                        vec![
                            Value::from(approver.tenant),
                            Value::from(approver.principal),
                            Value::from(json(approver.roles)),
                            Value::from(json(approver.venues)),
                        ]
                    },
                )
            })
            .await;
        let Some(Ok((outcome, approvals, needed, submitter))) = reply else {
            return (Approved::Unavailable, None);
        };
        let recorded = |granted| Approved::Recorded {
            approvals: approvals.max(0) as u32,
            needed: needed.max(0) as u32,
            granted,
        };
        let approved = match outcome.as_str() {
            "approved" => recorded(true),
            "pending" => recorded(false),
            "not_found" => Approved::NotFound,
            "self" => Approved::SelfApproval,
            "role" => Approved::MissingRole,
            "expired" => Approved::Expired,
            "closed" => Approved::Closed,
            "duplicate" => Approved::Duplicate,
            _ => Approved::Unavailable,
        };
        (approved, Some(submitter).filter(|s| !s.is_empty()))
    }

    /// `Err(())`: the store cannot answer.
    pub async fn read(&self, place: Place<'_>, id: &str) -> Result<Option<Record>, ()> {
        let (store, spec) = match place {
            Place::Local => return Ok(self.local.read(id)),
            Place::Missing => return Err(()),
            Place::Shared(store, spec) => (store, spec),
        };
        let key = record_key(&spec.key_prefix, id);
        let reply: Option<Result<Vec<String>, StoreError>> = store
            .guarded(spec, |redis| {
                redis.run_script(&self.read, || vec![key.clone()], Vec::new)
            })
            .await;
        let Some(Ok(fields)) = reply else {
            return Err(());
        };
        let field = |name: &str| {
            fields
                .chunks(2)
                .find(|pair| pair[0] == name)
                .and_then(|pair| pair.get(1))
                .map(String::as_str)
        };
        let Some(state) = field("state") else {
            return Ok(None);
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let left = number("expires").saturating_sub(number("now"));
        let state = match State::parse(state) {
            State::Used => State::Used,
            _ if left == 0 => State::Expired,
            other => other,
        };
        let list = |name: &str| -> Vec<String> {
            field(name)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default()
        };
        Ok(Some(Record {
            tenant: field("tenant").unwrap_or_default().to_string(),
            submitter: field("submitter").unwrap_or_default().to_string(),
            route: field("route").unwrap_or_default().to_string(),
            amount: number("amount"),
            venue: field("venue").filter(|v| !v.is_empty()).map(str::to_string),
            needed: number("needed") as u32,
            roles: list("roles"),
            scope_roles: list("scope_roles"),
            approvers: list("approvers"),
            state,
            expires_in: Duration::from_millis(left),
        }))
    }

    /// Grants a used approval again: the request that used it did not happen.
    pub async fn restore(&self, place: Place<'_>, id: &str) {
        match place {
            Place::Local => self.local.restore(id),
            Place::Missing => {}
            Place::Shared(store, spec) => {
                let key = record_key(&spec.key_prefix, id);
                let _: Result<i64, _> = store
                    .unguarded()
                    .run_script(&self.restore, || vec![key.clone()], Vec::new)
                    .await;
            }
        }
    }
}
