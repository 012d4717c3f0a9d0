//! `usher run --config FILE`: serve.

use std::path::Path;

pub fn run(path: &Path, threads: Option<usize>) -> i32 {
    crate::telemetry::logging::init();
    let mut prepared = match super::prepare_file(path) {
        Ok(prepared) => prepared,
        Err(errors) => {
            eprint!("{errors}");
            return 1;
        }
    };
    if let Some(threads) = threads {
        prepared.config.server.threads = threads.max(1);
    }
    match crate::server::run(path.to_path_buf(), prepared) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("usher: {message}");
            1
        }
    }
}
