//! The most a configuration may hold: past these, `usher check` and a reload refuse the
//! file (documented in docs/routes.md, "Limits of a file"). They keep a reload well under a
//! few seconds and `/metrics` bounded.

pub const MAX_FILE_BYTES: u64 = 16 << 20;
pub const MAX_ROUTES: usize = 20_000;
pub const MAX_UPSTREAMS: usize = 2_000;
/// Route and upstream names, in bytes.
pub const MAX_NAME: usize = 100;
