//! The `limits` section: what a request head may hold and how long it may take, and how much
//! of the running routes a reload may remove.

use super::{merged, Compiler};
use crate::config::builtin;
use crate::config::raw::RawLimits;
use crate::config::Limits;

impl Compiler<'_> {
    pub(super) fn limits(&mut self, raw: &RawLimits) -> Limits {
        let limits = Limits {
            max_headers: merged(raw.max_headers, None, builtin::MAX_HEADERS),
            max_header_bytes: merged(raw.max_header_bytes, None, builtin::MAX_HEADER_BYTES),
            max_uri_bytes: merged(raw.max_uri_bytes, None, builtin::MAX_URI_BYTES),
            request_head_timeout: merged(
                raw.request_head_timeout,
                None,
                builtin::REQUEST_HEAD_TIMEOUT,
            ),
            request_body_timeout: merged(
                raw.request_body_timeout,
                None,
                builtin::REQUEST_BODY_TIMEOUT,
            ),
            max_buffered_bytes: merged(raw.max_buffered_bytes, None, builtin::MAX_BUFFERED_BYTES),
            max_route_removal_percent: merged(
                raw.max_route_removal_percent,
                None,
                builtin::MAX_ROUTE_REMOVAL_PERCENT,
            ),
        };
        if limits.max_route_removal_percent > 100 {
            self.error(
                "limits.max_route_removal_percent",
                "must be between 0 and 100",
            );
        }
        self.positive("limits.request_head_timeout", limits.request_head_timeout);
        self.positive("limits.request_body_timeout", limits.request_body_timeout);
        for (key, zero) in [
            ("max_headers", limits.max_headers == 0),
            ("max_header_bytes", limits.max_header_bytes == 0),
            ("max_uri_bytes", limits.max_uri_bytes == 0),
            ("max_buffered_bytes", limits.max_buffered_bytes == 0),
        ] {
            if zero {
                self.error(format!("limits.{key}"), "must be greater than zero");
            }
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::section;
    use std::time::Duration;

    #[test]
    fn limits_default_and_refuse_zero() {
        let (limits, errors) = section("{}", |c, raw| c.limits(raw));
        assert!(errors.is_empty());
        assert_eq!(
            (
                limits.max_headers,
                limits.max_header_bytes,
                limits.max_uri_bytes
            ),
            (
                builtin::MAX_HEADERS,
                builtin::MAX_HEADER_BYTES,
                builtin::MAX_URI_BYTES
            )
        );
        assert_eq!(limits.request_head_timeout, builtin::REQUEST_HEAD_TIMEOUT);
        assert_eq!(
            limits.max_route_removal_percent,
            builtin::MAX_ROUTE_REMOVAL_PERCENT
        );
        let (limits, _) = section(
            "{ max_header_bytes: 4KiB, request_head_timeout: 2s }",
            |c, raw| c.limits(raw),
        );
        assert_eq!(limits.max_header_bytes, 4096);
        assert_eq!(limits.request_head_timeout, Duration::from_secs(2));
        for (yaml, expected) in [
            (
                "max_headers: 0",
                "limits.max_headers: must be greater than zero",
            ),
            (
                "max_header_bytes: 0",
                "limits.max_header_bytes: must be greater than zero",
            ),
            (
                "max_uri_bytes: 0",
                "limits.max_uri_bytes: must be greater than zero",
            ),
            (
                "request_head_timeout: 0s",
                "limits.request_head_timeout: must be greater than zero",
            ),
            (
                "max_route_removal_percent: 101",
                "limits.max_route_removal_percent: must be between 0 and 100",
            ),
        ] {
            assert_eq!(
                section(yaml, |c, raw| c.limits(raw)).1,
                [expected],
                "{yaml}"
            );
        }
    }
}
