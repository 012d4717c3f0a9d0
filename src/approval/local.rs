//! Approvals in this process, when no Redis is configured (one replica): the same rules as
//! the scripts beside this file, on the monotonic clock, at most [`MAX_APPROVALS`] at once
//! (records past their expiry and keeping time are dropped first; a store full of live
//! ones refuses new submissions, 503).

use super::{Approved, Approver, Record, State, Submission, Submitted, KEPT_AFTER_EXPIRY};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_APPROVALS: usize = 10_000;

#[derive(Default)]
pub struct LocalApprovals {
    records: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    record: Record,
    expires: Instant,
}

impl Entry {
    /// The state as of `now`: a granted or pending approval past its expiry is expired.
    fn state(&self, now: Instant) -> State {
        match self.record.state {
            State::Used => State::Used,
            _ if now >= self.expires => State::Expired,
            other => other,
        }
    }
}

impl LocalApprovals {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn submit(&self, id: &str, submission: &Submission<'_>) -> Submitted {
        let now = Instant::now();
        let mut records = self.records();
        let replaced = match records.get_mut(id) {
            Some(entry) => match entry.state(now) {
                State::Approved => {
                    entry.record.state = State::Used;
                    return Submitted::Use {
                        approvers: entry.record.approvers.clone(),
                    };
                }
                State::Pending => {
                    return Submitted::Pending {
                        approvals: entry.record.approvers.len() as u32,
                    }
                }
                State::Used => return Submitted::Used,
                State::Expired => true,
            },
            None => false,
        };
        if records.len() >= MAX_APPROVALS {
            records.retain(|_, entry| now < entry.expires + KEPT_AFTER_EXPIRY);
            if records.len() >= MAX_APPROVALS {
                return Submitted::Unavailable;
            }
        }
        records.insert(
            id.to_string(),
            Entry {
                record: Record {
                    tenant: submission.tenant.to_string(),
                    submitter: submission.submitter.to_string(),
                    route: submission.route.to_string(),
                    amount: submission.amount,
                    venue: submission.venue.map(str::to_string),
                    needed: submission.needed,
                    roles: submission.roles.to_vec(),
                    scope_roles: submission.scope_roles.to_vec(),
                    approvers: Vec::new(),
                    state: State::Pending,
                    expires_in: Duration::ZERO,
                },
                expires: now + submission.expires,
            },
        );
        Submitted::Created { replaced }
    }

    pub fn approve(&self, id: &str, approver: &Approver<'_>) -> (Approved, Option<String>) {
        let mut records = self.records();
        let Some(entry) = records
            .get_mut(id)
            .filter(|e| e.record.tenant == approver.tenant)
        else {
            return (Approved::NotFound, None);
        };
        let submitter = entry.record.submitter.clone();
        (Self::approve_entry(entry, approver), Some(submitter))
    }

    fn approve_entry(entry: &mut Entry, who: &Approver<'_>) -> Approved {
        let now = Instant::now();
        let approver = who.principal;
        let record = &entry.record;
        if record.submitter == approver {
            return Approved::SelfApproval;
        }
        let in_scope = record
            .venue
            .as_ref()
            .is_none_or(|venue| who.venues.contains(venue))
            || who
                .roles
                .iter()
                .any(|role| record.scope_roles.contains(role));
        if !who.roles.iter().any(|role| record.roles.contains(role)) || !in_scope {
            return Approved::MissingRole;
        }
        match entry.state(now) {
            State::Expired => return Approved::Expired,
            State::Approved | State::Used => return Approved::Closed,
            State::Pending => {}
        }
        if record.approvers.iter().any(|a| a == approver) {
            return Approved::Duplicate;
        }
        let record = &mut entry.record;
        record.approvers.push(approver.to_string());
        let approvals = record.approvers.len() as u32;
        let granted = approvals >= record.needed;
        if granted {
            record.state = State::Approved;
        }
        Approved::Recorded {
            approvals,
            needed: record.needed,
            granted,
        }
    }

    pub fn read(&self, id: &str) -> Option<Record> {
        let now = Instant::now();
        let records = self.records();
        let entry = records.get(id)?;
        Some(Record {
            state: entry.state(now),
            expires_in: entry.expires.saturating_duration_since(now),
            ..entry.record.clone()
        })
    }

    pub fn restore(&self, id: &str) {
        if let Some(entry) = self.records().get_mut(id) {
            if entry.record.state == State::Used {
                entry.record.state = State::Approved;
            }
        }
    }
}
