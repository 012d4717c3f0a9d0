//! An upstream's `timeouts`: connect, read, write and the total deadline of a request,
//! merged with `defaults.upstream`.

use crate::config::compile::{merged, Compiler};
use crate::config::raw::RawTimeouts;
use crate::config::units::Dur;
use crate::config::{builtin, UpstreamTimeouts};
use std::time::Duration;

impl Compiler<'_> {
    pub(super) fn timeouts(
        &mut self,
        at: &str,
        raw: Option<&RawTimeouts>,
        defaults: Option<&RawTimeouts>,
    ) -> UpstreamTimeouts {
        let empty = RawTimeouts::default();
        let (raw, defaults) = (raw.unwrap_or(&empty), defaults.unwrap_or(&empty));
        let mut pick = |key: &str, own: Option<Dur>, inherited: Option<Dur>, builtin: Duration| {
            self.positive(
                &format!("{at}.timeouts.{key}"),
                merged(own, inherited, builtin),
            )
        };
        UpstreamTimeouts {
            connect: pick("connect", raw.connect, defaults.connect, builtin::CONNECT),
            read: pick("read", raw.read, defaults.read, builtin::READ),
            write: pick("write", raw.write, defaults.write, builtin::WRITE),
            total: pick("total", raw.total, defaults.total, builtin::TOTAL),
        }
    }
}
