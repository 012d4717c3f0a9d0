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
