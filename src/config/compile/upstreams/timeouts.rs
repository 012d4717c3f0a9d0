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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::{assert_file_errors, file};

    #[test]
    fn timeouts_merge_field_by_field() {
        let config = file("defaults: { upstream: { timeouts: { read: 3s, total: 4s } } }\nupstreams: { a: { targets: [\"a:1\"], timeouts: { total: 5s } } }\n");
        let t = &config.upstreams[0].timeouts;
        assert_eq!(
            (t.connect, t.read, t.write, t.total),
            (
                builtin::CONNECT,
                Duration::from_secs(3),
                builtin::WRITE,
                Duration::from_secs(5)
            )
        );
        assert_file_errors(&[(
            "defaults: { upstream: { timeouts: { connect: 0s } } }\nupstreams: { a: { targets: [\"a:1\"] } }",
            &["upstreams.a.timeouts.connect: must be greater than zero"],
        )]);
    }
}
