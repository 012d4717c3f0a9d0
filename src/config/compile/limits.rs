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
        for (key, zero) in [
            ("max_headers", limits.max_headers == 0),
            ("max_header_bytes", limits.max_header_bytes == 0),
            ("max_uri_bytes", limits.max_uri_bytes == 0),
        ] {
            if zero {
                self.error(format!("limits.{key}"), "must be greater than zero");
            }
        }
        limits
    }
}
