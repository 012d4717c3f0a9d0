//! The `server` section: process settings.

use super::{merged, Compiler};
use crate::config::builtin;
use crate::config::raw::RawServer;
use crate::config::ServerSettings;

impl Compiler<'_> {
    pub(super) fn server(&mut self, raw: &RawServer) -> ServerSettings {
        let threads = raw.threads.unwrap_or_else(builtin::threads);
        if !(1..=1024).contains(&threads) {
            self.error("server.threads", "must be between 1 and 1024");
        }
        ServerSettings {
            threads,
            grace_period: merged(raw.grace_period, None, builtin::GRACE_PERIOD),
            access_log: merged(raw.access_log, None, builtin::ACCESS_LOG),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile::testing::section;
    use std::time::Duration;

    #[test]
    fn server_settings() {
        let defaults = ServerSettings {
            threads: builtin::threads(),
            grace_period: builtin::GRACE_PERIOD,
            access_log: builtin::ACCESS_LOG,
        };
        let set = ServerSettings {
            threads: 2,
            grace_period: Duration::from_secs(5),
            access_log: false,
        };
        for (yaml, expected, errors) in [
            ("{}", defaults, &[][..]),
            (
                "{ threads: 2, grace_period: 5s, access_log: false }",
                set,
                &[],
            ),
        ] {
            let (server, found) = section(yaml, |c, raw| c.server(raw));
            assert_eq!((server, found.as_slice()), (expected, errors), "{yaml}");
        }
        for threads in ["0", "1025"] {
            let (_, found) = section(&format!("threads: {threads}"), |c, raw| c.server(raw));
            assert_eq!(found, ["server.threads: must be between 1 and 1024"]);
        }
    }
}
