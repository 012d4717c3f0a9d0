//! The rate-limit fields of draft-ietf-httpapi-ratelimit-headers-09, on admitted and refused
//! responses alike:
//!
//! ```text
//! RateLimit-Policy: "global";q=100;w=60, "ticket-purchase";q=5;w=60
//! RateLimit: "global";r=97;t=41, "ticket-purchase";r=0;t=12
//! ```
//!
//! `q` is the caller's quota (its tier applied), `w` the window in seconds, `r` what is left
//! after this request and `t` the seconds until `r` grows again (until the oldest counted
//! request leaves the window). Both come from the sliding-window log itself: from one
//! request to the next `r` falls by one and `t` counts down, except when a counted request
//! leaves the window (`r` grows, `t` moves to the next oldest) or the store changes
//! (Redis to its fallback share and back, `q` with it).

use super::Quota;
use std::time::Duration;

pub static POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
pub static STATE: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// `RateLimit-Policy`, or `None` when no policy was decided.
pub fn policy_value(quotas: &[Quota]) -> Option<String> {
    list(quotas, |out, quota| {
        param(out, ";q=", u64::from(quota.limit));
        param(out, ";w=", seconds(quota.window));
    })
}

/// `RateLimit`, or `None` when no policy was decided.
pub fn state_value(quotas: &[Quota]) -> Option<String> {
    list(quotas, |out, quota| {
        param(out, ";r=", u64::from(quota.remaining));
        param(out, ";t=", seconds(quota.reset));
    })
}

// Written piece by piece rather than with `write!`: on every response of a limited route,
// the formatting machinery cost several thousand instructions for the two fields.
fn list(quotas: &[Quota], params: impl Fn(&mut String, &Quota)) -> Option<String> {
    if quotas.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(40 * quotas.len());
    for (i, quota) in quotas.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        // Policy names are labels (letters, digits, - and _): nothing to escape.
        out.push('"');
        out.push_str(&quota.policy);
        out.push('"');
        params(&mut out, quota);
    }
    Some(out)
}

fn param(out: &mut String, name: &str, value: u64) {
    out.push_str(name);
    out.push_str(itoa::Buffer::new().format(value));
}

/// Whole seconds, rounded up: a client waiting `t` seconds is never early.
pub fn seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lists_every_policy() {
        let quotas = [
            Quota {
                policy: Arc::from("global"),
                limit: 100,
                window: Duration::from_secs(60),
                remaining: 97,
                reset: Duration::from_millis(40_200),
            },
            Quota {
                policy: Arc::from("ticket-purchase"),
                limit: 5,
                window: Duration::from_secs(60),
                remaining: 0,
                reset: Duration::from_secs(12),
            },
        ];
        assert_eq!(
            policy_value(&quotas).unwrap(),
            "\"global\";q=100;w=60, \"ticket-purchase\";q=5;w=60"
        );
        assert_eq!(
            state_value(&quotas).unwrap(),
            "\"global\";r=97;t=41, \"ticket-purchase\";r=0;t=12"
        );
        assert_eq!(policy_value(&[]), None);
    }
}
